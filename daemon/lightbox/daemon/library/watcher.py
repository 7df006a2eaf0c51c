"""Live updates from the file system (watchdog / inotify), debounced and turned into passes.

Watchdog calls us from its own thread; every event is handed to the event loop at once and
all decisions are made there. Rules:

- A changed file is indexed once, when it has been quiet for ``debounce`` seconds and its
  size and mtime did not move meanwhile: a photo still being copied is not read half-way.
- Work is batched per folder: a burst of events in one folder becomes one non-recursive pass
  over that folder (files still settling are excluded from it).
- A new directory is scanned as a whole subtree: inotify cannot report files created in it
  before its watch existed (watchdog loses those ``created`` events).
- Renames and moves inside a root go straight to the catalog, keeping ids; a move in from
  outside is a creation, a move out a deletion.
- Deletions mark photos missing; only a full pass (the reconciler's) removes them.
- When the root itself disappears the root is checked: offline, and nothing under it changes.
- inotify watches are a per-user budget shared with every other program. A root needing more
  directories than ``max_watches`` (or hitting the kernel limit) is not watched; it falls back
  to a rescan every ``poll_interval`` seconds, with a warning.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import time
from dataclasses import dataclass, field
from typing import Any

from watchdog.events import (
    DirCreatedEvent,
    DirDeletedEvent,
    DirMovedEvent,
    FileClosedEvent,
    FileCreatedEvent,
    FileDeletedEvent,
    FileModifiedEvent,
    FileMovedEvent,
    FileSystemEvent,
    FileSystemEventHandler,
)
from watchdog.observers import Observer
from watchdog.observers.api import BaseObserver, ObservedWatch

from lightbox.common import logs
from lightbox.daemon.catalog import paths
from lightbox.daemon.library import ignore
from lightbox.daemon.library.scanner import Offline, Scanner
from lightbox.daemon.library.sources import Source, Sources
from lightbox.daemon.library.writer import CatalogWriter

log = logs.get("watcher")

ROOT_CHECK = 2.0


def inotify_budget() -> int:
    """Half of the kernel's per-user inotify watches: the rest is for every other program."""
    try:
        with open("/proc/sys/fs/inotify/max_user_watches") as f:
            return max(1, int(f.read().strip()) // 2)
    except (OSError, ValueError):
        return 4096


def count_dirs(root: str, limit: int) -> int:
    """Directories a recursive watch of ``root`` would need, counting no further than limit."""
    count, stack = 0, [root]
    while stack and count < limit:
        path = stack.pop()
        count += 1
        try:
            with os.scandir(path) as it:
                stack.extend(e.path for e in it if e.is_dir(follow_symlinks=False))
        except OSError:
            continue
    return count


def _ignored(rel: str, is_dir: bool) -> bool:
    return ignore.ignored_folder_path(rel) if is_dir else ignore.ignored_path(rel)


class _Handler(FileSystemEventHandler):
    """Runs in watchdog's thread: forwards to the loop, nothing else."""

    def __init__(self, watcher: Watcher, source_id: int) -> None:
        self.watcher = watcher
        self.source_id = source_id

    def on_any_event(self, event: FileSystemEvent) -> None:
        loop = self.watcher.loop
        if loop is not None and not loop.is_closed():
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self.watcher.event, self.source_id, event)


@dataclass
class _Pending:
    """Files of one folder waiting to settle (name -> time of their last event), and whether
    the folder needs a pass (and a recursive one)."""

    files: dict[str, float] = field(default_factory=dict)
    dirty: bool = False
    subtree: bool = False


class Watcher:
    name = "watcher"
    settings_keys = ("library.watch", "library.max_watches", "library.debounce",
                     "library.poll_interval", "roots.*.watch")

    def __init__(self, sources: Sources, scanner: Scanner, writer: CatalogWriter, *,
                 enabled: bool, debounce: float, max_watches: int,
                 poll_interval: float) -> None:
        if max_watches == 0:
            max_watches = inotify_budget()
        self.sources = sources
        self.scanner = scanner
        self.writer = writer
        self.enabled = enabled
        self.debounce = debounce
        self.max_watches = max_watches
        self.poll_interval = poll_interval
        self.loop: asyncio.AbstractEventLoop | None = None
        self.observer: BaseObserver | None = None
        self.watches: dict[int, ObservedWatch] = {}
        # (st_dev, st_ino) of each watched root: inotify says nothing when the root itself
        # is renamed away or unmounted, so a sentinel compares them every few seconds.
        self.identity: dict[int, tuple[int, int]] = {}
        self._sentinel: asyncio.Task[None] | None = None
        self.polling: dict[int, asyncio.Task[None]] = {}
        self._pending: dict[tuple[int, str], _Pending] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._worker: asyncio.Task[None] | None = None
        self._kick = asyncio.Event()
        self.events = 0
        self.passes = 0
        self.unwatched: set[int] = set()  # roots whose roots.<id>.watch is off

    async def apply(self, changes: dict[str, Any]) -> None:
        """New settings: a new debounce is used by the next settling pass, a new poll
        interval by the next sleep; ``library.watch`` off stops every watch at once, on
        starts them with a pass over each root (for what changed meanwhile); a root's
        ``watch`` does the same for one root; ``library.max_watches`` is read at start."""
        for key, value in changes.items():
            if key == "library.debounce":
                self.debounce = float(value)
                if self._timer is not None:  # due at the old debounce: look again now
                    self._timer.cancel()
                    self._timer = None
                self._kick.set()
            elif key == "library.poll_interval":
                self.poll_interval = float(value)
            elif key == "library.watch":
                if bool(value) == self.enabled:
                    continue
                self.enabled = bool(value)
                if self.loop is None:
                    continue  # not started yet: start() reads it
                if self.enabled:
                    await self._begin(catch_up=True)
                else:
                    await self._end()
            elif key == "library.max_watches":
                self.max_watches = int(value) or inotify_budget()
            elif key.startswith("roots.") and key.endswith(".watch"):
                root = int(key.split(".")[1])
                if value:
                    self.unwatched.discard(root)
                    source = next((s for s in self.sources.mine() if s.id == root), None)
                    if source is not None and source.online and self.loop is not None:
                        await self.watch(source)  # only a root this daemon runs
                else:
                    self.unwatched.add(root)
                    self.unwatch(root)

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        self.loop = asyncio.get_running_loop()
        if self.enabled:
            await self._begin()

    async def _begin(self, catch_up: bool = False) -> None:
        """Start watching every root this daemon runs. ``catch_up``: watching was off, so
        each root gets a pass for what changed meanwhile."""
        assert self.loop is not None
        self.observer = Observer()
        self.observer.daemon = True
        self.observer.start()
        self._worker = self.loop.create_task(self._work(), name="watcher")
        self._sentinel = self.loop.create_task(self._guard_roots(), name="watcher-roots")
        for source in self.sources.mine():
            if source.online:
                await self.watch(source)
                if catch_up and source.id in self.watching():
                    self._folder(source, "", subtree=True)

    async def stop(self) -> None:
        await self._end()

    async def _end(self) -> None:
        # Stopping the observer drops every inotify watch at once (no unschedule per root).
        self.watches.clear()
        self.identity.clear()
        for task in [*self.polling.values(), self._worker, self._sentinel]:
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self.polling.clear()
        self._worker = self._sentinel = None
        self._pending.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.observer is not None:
            observer = self.observer
            self.observer = None
            observer.stop()
            await asyncio.to_thread(observer.join, 3.0)

    def status(self) -> dict[str, Any]:
        return {"enabled": self.enabled, "watching": sorted(self.watches),
                "polling": sorted(self.polling), "events": self.events, "passes": self.passes,
                "settling": sum(len(p.files) for p in self._pending.values())}

    def watching(self) -> set[int]:
        return set(self.watches) | set(self.polling)

    # -- watches -----------------------------------------------------------------------
    async def watch(self, source: Source) -> None:
        """Start watching a root (or polling it, when watching would cost too much)."""
        if not self.enabled or self.observer is None or source.id in self.watches:
            return
        if source.id in self.unwatched:
            log.info("not watching this root (roots.<id>.watch is off)", root=source.name)
            return
        dirs = await asyncio.to_thread(count_dirs, source.path, self.max_watches + 1)
        if dirs > self.max_watches:
            self._fall_back(source, f"{dirs} folders exceed library.max_watches "
                                    f"({self.max_watches})")
            return
        try:
            st = await asyncio.to_thread(os.stat, source.path)
            watch = await asyncio.to_thread(self.observer.schedule, _Handler(self, source.id),
                                            source.path, recursive=True)
        except OSError as exc:
            reason = ("the inotify watch limit is reached (raise fs.inotify.max_user_watches)"
                      if exc.errno in (errno.ENOSPC, errno.EMFILE) else str(exc))
            self._fall_back(source, reason)
            return
        self.watches[source.id] = watch
        self.identity[source.id] = (st.st_dev, st.st_ino)
        self._stop_polling(source.id)
        log.info("watching", root=source.name, folders=dirs)

    def unwatch(self, source_id: int) -> None:
        self.identity.pop(source_id, None)
        watch = self.watches.pop(source_id, None)
        if watch is not None and self.observer is not None:
            with contextlib.suppress(Exception):
                self.observer.unschedule(watch)
        self._stop_polling(source_id)
        for key in [k for k in self._pending if k[0] == source_id]:
            del self._pending[key]

    def _fall_back(self, source: Source, reason: str) -> None:
        log.warning("not watching this root; rescanning it periodically instead",
                    root=source.name, reason=reason, every=self.poll_interval)
        if source.id not in self.polling and self.loop is not None:
            self.polling[source.id] = self.loop.create_task(self._poll(source))

    def _stop_polling(self, source_id: int) -> None:
        task = self.polling.pop(source_id, None)
        if task is not None:
            task.cancel()

    async def _poll(self, source: Source) -> None:
        while True:
            await asyncio.sleep(self.poll_interval)
            try:
                await self.scanner.scan(source, "", confirm=False)
                self.passes += 1
            except Offline:
                pass
            except Exception:
                log.exception("polling pass failed", root=source.name)

    # -- events (on the loop) ------------------------------------------------------------
    def event(self, source_id: int, ev: FileSystemEvent) -> None:
        source = self.sources.by_id.get(source_id)
        if source is None:
            return
        self.events += 1
        src = os.fsdecode(ev.src_path)
        rel = paths.relative_to(src, source.path)
        if isinstance(ev, (DirMovedEvent, FileMovedEvent)):
            self._moved(source, ev, rel)
            return
        if rel is None:
            return
        if rel == "":
            # The root itself: deleted (or unmounted under us). Other events on it
            # (modified, attrib) only echo changes to its entries, handled below.
            if isinstance(ev, DirDeletedEvent):
                self._root_changed(source)
            return
        # The scanner's ignore policy: nothing in a hidden, NAS or OS metadata folder, and
        # no sidecar or video, starts a pass (so an ignored folder never enters the catalog).
        if _ignored(rel, ev.is_directory):
            return
        if isinstance(ev, DirCreatedEvent):
            self._folder(source, rel, subtree=True)
        elif isinstance(ev, DirDeletedEvent):
            self._folder(source, paths.parent(rel) or "", subtree=True)
        elif isinstance(ev, FileDeletedEvent):
            self._folder(source, paths.parent(rel) or "")
        elif isinstance(ev, (FileCreatedEvent, FileModifiedEvent, FileClosedEvent)):
            self._file(source, rel)

    def _moved(self, source: Source, ev: FileSystemEvent, src_rel: str | None) -> None:
        dest = os.fsdecode(ev.dest_path)
        dst_rel = paths.relative_to(dest, source.path)
        is_dir = isinstance(ev, DirMovedEvent)
        if src_rel == "":
            self._root_changed(source)
            return
        # Into or out of an ignored place is out of or into the library.
        if src_rel is not None and _ignored(src_rel, is_dir):
            src_rel = None
        if dst_rel is not None and dst_rel != "" and _ignored(dst_rel, is_dir):
            dst_rel = None
        if src_rel is not None and dst_rel is not None and dst_rel != "":
            self._spawn(self._apply_move(source, src_rel, dst_rel, is_dir))
        elif src_rel is not None:  # moved out of the root: gone
            self._folder(source, paths.parent(src_rel) or "", subtree=is_dir)
        elif dst_rel is not None:  # moved in from outside: new
            if is_dir:
                self._folder(source, dst_rel, subtree=True)
            else:
                self._file(source, dst_rel)

    async def _apply_move(self, source: Source, src_rel: str, dst_rel: str,
                          is_dir: bool) -> None:
        try:
            if is_dir:
                if not await self.writer.move_folder(source, src_rel, dst_rel):
                    self._folder(source, paths.parent(src_rel) or "", subtree=True)
                self._folder(source, dst_rel, subtree=True)
            elif not await self.scanner.move_file(source, src_rel, dst_rel):
                self._file(source, dst_rel)  # e.g. "photo.jpg.part" -> "photo.jpg"
                self._folder(source, paths.parent(src_rel) or "")
        except Exception:
            log.exception("applying a move failed; rescanning both folders",
                          src=src_rel, dst=dst_rel)
            self._folder(source, paths.parent(src_rel) or "", subtree=is_dir)
            self._folder(source, paths.parent(dst_rel) or "", subtree=is_dir)

    async def _guard_roots(self) -> None:
        while True:
            await asyncio.sleep(ROOT_CHECK)
            for source_id, ident in list(self.identity.items()):
                source = self.sources.by_id.get(source_id)
                if source is None:
                    continue
                try:
                    st = await asyncio.to_thread(os.stat, source.path)
                    same = (st.st_dev, st.st_ino) == ident
                except OSError:
                    same = False
                if not same:
                    log.warning("root moved, deleted or unmounted under the watch",
                                root=source.name)
                    self.unwatch(source_id)
                    self._root_changed(source)

    def _root_changed(self, source: Source) -> None:
        async def check() -> None:
            reason = await self.sources.check(source)
            await self.sources.set_online(source, reason)
            if reason is not None:
                self.unwatch(source.id)
            elif source.id not in self.watches:
                # Another directory with the library's files now stands at the root's path
                # (restored, remounted): watch that one and look at everything in it.
                await self.watch(source)
                self._folder(source, "", subtree=True)
        self._spawn(check())

    def _file(self, source: Source, rel: str) -> None:
        folder = paths.parent(rel) or ""
        pending = self._pending.setdefault((source.id, folder), _Pending())
        pending.files[paths.basename(rel)] = time.monotonic()
        self._schedule(self.debounce)

    def _folder(self, source: Source, rel: str, subtree: bool = False) -> None:
        pending = self._pending.setdefault((source.id, rel), _Pending())
        pending.dirty = True
        pending.subtree = pending.subtree or subtree
        self._schedule(self.debounce / 2)

    def _schedule(self, delay: float) -> None:
        if self._timer is None and self.loop is not None:
            self._timer = self.loop.call_later(delay, self._tick)

    def _tick(self) -> None:
        self._timer = None
        self._kick.set()

    def _spawn(self, coro: Any) -> None:
        assert self.loop is not None
        task = self.loop.create_task(coro)
        task.add_done_callback(lambda t: t.exception() if not t.cancelled() else None)

    # -- settling and passes -----------------------------------------------------------
    async def _work(self) -> None:
        while True:
            await self._kick.wait()
            self._kick.clear()
            try:
                await self._settle()
            except Exception:
                log.exception("watcher pass failed")
            if self._pending:
                # Wake exactly when the next file has been quiet long enough.
                now = time.monotonic()
                due = [last + self.debounce - now for p in self._pending.values()
                       for last in p.files.values()]
                dirty = any(p.dirty for p in self._pending.values())
                self._schedule(0.01 if dirty or not due else max(0.01, min(due)))

    async def _settle(self) -> None:
        """Folders whose files have been quiet for ``debounce`` get their pass now.

        inotify reports every write, so a file with no event for ``debounce`` seconds is not
        being written: it is complete, or its writer stalled (then it is read again when it
        moves on). Files of the same folder still settling are left out of the pass.
        """
        now = time.monotonic()
        due: list[tuple[int, str, bool, frozenset[str]]] = []
        for key, pending in list(self._pending.items()):
            if key[0] not in self.sources.by_id:
                del self._pending[key]
                continue
            settled = [n for n, last in pending.files.items() if now - last >= self.debounce]
            for name in settled:
                del pending.files[name]
            if settled or pending.dirty:
                due.append((key[0], key[1], pending.subtree, frozenset(pending.files)))
                pending.dirty = pending.subtree = False
            if not pending.files:
                del self._pending[key]
        for source_id, rel, subtree, unsettled in due:
            source = self.sources.by_id.get(source_id)
            if source is None or not source.online:
                continue
            try:
                await self.scanner.scan(source, rel, recursive=subtree, confirm=False,
                                        exclude=unsettled)
                self.passes += 1
            except Offline:
                self.unwatch(source.id)
