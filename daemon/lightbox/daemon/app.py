"""The daemon process: its components, their order, signals and shutdown.

Components start in the order of ``self.components`` and the ones that started stop in
reverse, in a ``finally``: the database first and the control server last on the way up, so
no request arrives before the catalog can answer it; the control server first on the way
down, so in-flight requests are answered while the catalog is still there.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import signal
import socket
import time
from typing import Any

from lightbox.common import __version__, logs
from lightbox.common.config import Config
from lightbox.daemon.backups.importer import Importer
from lightbox.daemon.backups.service import Backups
from lightbox.daemon.catalog.database import Database
from lightbox.daemon.catalog.dbstate import StateFile
from lightbox.daemon.catalog.switch import Switcher
from lightbox.daemon.cluster.claims import Claims
from lightbox.daemon.cluster.leases import Cluster
from lightbox.daemon.cluster.relay import Relay
from lightbox.daemon.component import Component
from lightbox.daemon.control.events import EventBus
from lightbox.daemon.control.server import ControlServer
from lightbox.daemon.jobs.queue import JobQueue, owner_id
from lightbox.daemon.library.admission import daemon_dirs
from lightbox.daemon.library.bucketsync import BucketScheduler, BucketSync
from lightbox.daemon.library.changes import ChangeFeed
from lightbox.daemon.library.indexer import Indexer
from lightbox.daemon.library.reconcile import Reconciler
from lightbox.daemon.library.scanner import Scanner
from lightbox.daemon.library.sources import Source, Sources
from lightbox.daemon.library.tasks import LibraryTasks
from lightbox.daemon.library.watcher import Watcher
from lightbox.daemon.library.writer import CatalogWriter
from lightbox.daemon.lock import InstanceLock
from lightbox.daemon.media.thumbs import ThumbSpec
from lightbox.daemon.notify import Notifier
from lightbox.daemon.settings import SettingsStore
from lightbox.daemon.workers.pool import WorkerPool

log = logs.get("daemon")



class Daemon:
    def __init__(self, config: Config, notifier: Notifier | None = None) -> None:
        self.config = config
        self.version = __version__
        self.pid = os.getpid()
        self.started_wall = time.time()
        self.started = time.monotonic()
        self.notifier = notifier or Notifier()
        self.instance = InstanceLock(config.socket_dir / "lightboxd.lock")
        self.bus = EventBus(config["events.buffer"])
        self.boot = self.bus.boot
        # A completed database.switch recorded where the catalog went (dbstate.py).
        self.db_state = StateFile(config.paths.data_dir)
        url, persisted = self.db_state.effective(config.database_url)
        self.db = Database(url, completed_switch=persisted.switch_id if persisted else None)
        processes = config["workers.processes"] or os.cpu_count() or 2
        memory = config["workers.memory_mb"]
        self.pool = WorkerPool(processes, task_timeout=config["workers.task_timeout"],
                               memory_limit=memory << 20 if memory else None,
                               wait_ready=False)
        self.sources = Sources(self.db, self.bus, guarded=daemon_dirs(config),
                               vanish_delay=config["library.vanish_delay"])
        # Default bucket credentials from the bootstrap file or LIGHTBOX_S3_* (stored settings,
        # applied at start, win over these).
        self.sources.default_s3.update({
            k.split(".", 1)[1]: str(config.values.get(k) or "")
            for k in ("s3.access_key_id", "s3.secret_access_key")})
        # Several daemons may share a catalog on a server (cluster/): leases say which runs
        # which root, claims which reads which photo, the relay carries events across.
        self.owner = owner_id(self.boot)
        self.cluster = Cluster(self.db, self.sources, self.owner,
                               ttl=config["database.lease_ttl"],
                               info={"host": socket.gethostname(), "pid": self.pid,
                                     "data_dir": str(config.paths.data_dir),
                                     "version": self.version})
        self.relay = Relay(self.db, self.bus, self.owner)
        self.changes = ChangeFeed(self.bus)
        self.writer = CatalogWriter(self.db, self.changes)
        quality = config["thumbnails.quality"]
        preview_min = config["thumbnails.preview_min"] or None
        self.thumb_specs = (ThumbSpec("grid", config["thumbnails.grid"], quality),
                            ThumbSpec("preview", config["thumbnails.preview"], quality,
                                      min_size=preview_min))
        self.indexer = Indexer(self.db, self.pool, self.changes, config.paths.thumbnails_dir,
                               self.thumb_specs, self.sources)
        self.scanner = Scanner(self.db, self.sources, self.writer, self.changes,
                               self.indexer.wake, self.pool)
        self.jobs = JobQueue(self.db, self.bus, self.boot,
                             concurrency=config["jobs.concurrency"],
                             max_attempts=config["jobs.max_attempts"])
        self.tasks = LibraryTasks(self.db, self.sources, self.scanner, self.indexer,
                                  config.paths.thumbnails_dir, config["thumbnails.cleanup_days"])
        self.indexer.claims = Claims(self.db, self.owner, lambda: self.cluster.active,
                                     lambda: self.cluster.readable)
        self.tasks.jobs = self.jobs
        self.jobs.affinity_of = self.tasks.affinity
        self.jobs.affinities = self._affinities
        self.cluster.on_live.append(self._cluster_round)
        self.cluster.on_gained.append(self._source_gained)
        self.cluster.on_lost.append(self._source_lost)
        self.relay.on_remote.append(self._remote_event)
        self.jobs.register("scan", self.tasks.scan)
        self.jobs.register("cleanup", self.tasks.cleanup)
        self.backups = Backups(self.db, self.bus, self.sources, self.jobs,
                               guarded=daemon_dirs(config),
                               threads=config["workers.processes"] or os.cpu_count() or 2)
        # No root inside (or holding) a local backup target, as no target inside a root.
        self.sources.guard_providers.append(self.backups.target_guards)
        self.importer = Importer(self.db, self.sources, self.scanner, self.indexer, self.pool,
                                 owner=self.jobs.owner)
        self.jobs.register("import", self.importer.run, retry=False)
        self.bucketsync = BucketSync(self.db, self.sources, self.writer, self.indexer)
        self.jobs.register("sync", self.bucketsync.run)
        self.buckets = BucketScheduler(self.sources, self.jobs)
        self.reconciler = Reconciler(self.sources, self.jobs, self.writer,
                                     config["library.reconcile_interval"], self.db)
        self.watcher = Watcher(self.sources, self.scanner, self.writer,
                               enabled=config["library.watch"],
                               debounce=config["library.debounce"],
                               max_watches=config["library.max_watches"],
                               poll_interval=config["library.poll_interval"])
        self.sources.on_online.append(self._root_online)
        self.switcher = Switcher(self, self.db_state)
        self.db.on_switch.append(self._catalog_moved)
        self.control = ControlServer(self, config, self.bus)
        # Right after the database: the stored settings are applied (through each
        # component's ``apply``) before the components they configure start.
        self.settings = SettingsStore(self)
        self.db.on_switch.append(self.settings.reload)
        self.components: list[Component] = [
            self.instance, self.db, self.settings, self.bus, self.relay, self.pool,
            self.sources, self.cluster, self.indexer, self.jobs, self.backups, self.importer,
            self.reconciler,
            self.buckets, self.watcher, self.switcher, self.control]
        self._stop = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self.stop_reason: str | None = None
        self.ready = False

    @property
    def _stop_bound(self) -> float:
        """How long one component may take to stop: its drain time plus a margin."""
        return float(self.config["daemon.stop_timeout"]) + 1.0

    def request_stop(self, reason: str) -> None:
        if not self._stop.is_set():
            log.info("stopping", reason=reason)
            self.stop_reason = reason
            self._stop.set()

    def reload(self) -> None:
        """SIGHUP (``systemctl reload``): re-read what can change without a restart."""
        log.info("reload requested")
        for component in self.components:
            hook = getattr(component, "reload", None)
            if hook is not None:
                try:
                    hook()
                except Exception:
                    log.exception("reload failed", component=component.name)

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def uptime(self) -> float:
        return time.monotonic() - self.started

    def watched_roots(self) -> set[int]:
        """Roots kept current live (watched, or polled when watching is not possible)."""
        return self.watcher.watching()

    async def root_added(self, source: Source) -> None:
        """A root joined the library through this daemon: take its lease (when the catalog
        is shared) and start watching it."""
        if await self.cluster.adopt(source):
            self._background(self.watcher.watch(source))

    async def _cluster_round(self, live: set[str]) -> None:
        """Every lease round: jobs of daemons gone are queued again, and the indexer looks
        for work (claims of the dead were just dropped, others may have added photos)."""
        await self.jobs.take_over(live)
        self.indexer.wake()

    async def _source_gained(self, source: Source, previous: str | None) -> None:
        """This daemon took a root over: watch it and rescan it (its last owner may have
        stopped half-way through a walk); clients reload it (the events its last owner had
        not relayed when it died are lost)."""
        if previous is not None:
            self.bus.publish("source", "taken_over", {"id": source.id, "name": source.name,
                                                      "owner": self.owner,
                                                      "previous": previous})
        if source.online:
            self._background(self.watcher.watch(source))
        await self.jobs.submit("scan", {"root": source.id})
        self.jobs.wake()

    async def _source_lost(self, source: Source, _previous: str | None) -> None:
        """Another daemon runs this root now, or it was removed through one."""
        self.watcher.unwatch(source.id)
        if source.id not in self.sources.by_id:
            self.writer.forget(source.id)

    def _affinities(self) -> set[str] | None:
        """Jobs this daemon may claim on a shared catalog: those of the roots it holds and
        the cleanups of its own thumbnail cache (None: every job, the catalog is ours)."""
        held = self.cluster.affinities()
        return None if held is None else held | {self.tasks.cache_key}

    def _remote_event(self, topic: str, type_: str, data: dict[str, Any]) -> None:
        """An event from another daemon sharing the catalog."""
        if topic == "catalog":
            self.indexer.wake()  # it may have queued photos this host can read
        elif topic == "source":
            self.cluster.poke()  # a root was added or removed there

    def root_removing(self, source: Source) -> None:
        """A root leaves the library: stop watching it, drop cached state."""
        self.watcher.unwatch(source.id)
        self.writer.forget(source.id)

    async def _catalog_moved(self) -> None:
        """The catalog now lives in another database (or came back): drop and re-read what
        is cached from its rows. The duplicate groupings follow the engine by themselves."""
        self.writer.drop_caches()
        await self.sources.reload()
        # Leases are written once the write gate opens again (a server catalog may be
        # shared; SQLite is this daemon's alone).
        self.cluster.poke()

    def _root_online(self, source: Source, online: bool) -> None:
        if online:
            self._background(self.watcher.watch(source))
        else:
            self.watcher.unwatch(source.id)

    def _background(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def features(self) -> list[str]:
        """What this daemon can do, for ``hello``; clients adapt to what is listed."""
        feats = ["events.since", "batch", "frames"]
        if self.config["control.tcp"]:
            feats.append("tcp+curve")
        return feats

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.request_stop, sig.name)
        loop.add_signal_handler(signal.SIGHUP, self.reload)
        started: list[Component] = []
        try:
            for component in self.components:
                self.notifier.status(f"starting {component.name}")
                await component.start()
                started.append(component)
                if self._stop.is_set():
                    break
            else:
                self.ready = True
                # Everything allocated at start-up lives as long as the daemon: keep the
                # cyclic collector from walking it again and again (p99 latency).
                gc.collect()
                gc.freeze()
                self.notifier.ready(self.status_line())
                self.notifier.start_watchdog()
                self.bus.publish("system", "started", {"version": self.version, "pid": self.pid})
                log.info("ready", version=self.version, pid=self.pid,
                         ms=round(self.uptime() * 1000))
                await self._stop.wait()
        finally:
            self.notifier.stopping()
            if started and self.bus in started:
                self.bus.publish("system", "stopping", {"reason": self.stop_reason or "error"})
            for component in reversed(started):
                try:
                    await asyncio.wait_for(component.stop(), self._stop_bound)
                except Exception:
                    log.exception("component did not stop cleanly", component=component.name)
            await self.notifier.close()
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                with contextlib.suppress(Exception):
                    loop.remove_signal_handler(sig)
        log.info("stopped", reason=self.stop_reason)
        return 0

    def status_line(self) -> str:
        return f"serving {self.config.control_endpoint}"

    def component_status(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for c in self.components:
            try:
                out[c.name] = c.status()
            except Exception as exc:  # status must never break system.status
                out[c.name] = {"error": str(exc)}
        return out
