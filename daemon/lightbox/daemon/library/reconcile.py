"""Background schedules of the library: the reconcile scan, offline roots, cleanup.

- Every ``library.reconcile_interval`` seconds (default hourly) a full scan of every root
  catches whatever the watcher missed (and confirms vanished photos).
- Offline roots are checked every ``OFFLINE_POLL`` seconds; one that is back is marked online
  (which starts its watch again) and rescanned.
- Once a day, thumbnails nobody needs are cleaned up.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from lightbox.common import logs
from lightbox.daemon.catalog.database import Database
from lightbox.daemon.jobs.queue import JobQueue
from lightbox.daemon.library.sources import Sources
from lightbox.daemon.library.writer import CatalogWriter

log = logs.get("reconcile")

OFFLINE_POLL = 5.0  # a stat and a directory read per offline root: cheap
CLEANUP_EVERY = 86400.0


class Reconciler:
    name = "reconcile"
    settings_keys = ("library.reconcile_interval", "roots.*.reconcile_interval")

    def __init__(self, sources: Sources, jobs: JobQueue, writer: CatalogWriter,
                 interval: float, db: Database | None = None) -> None:
        self.db = db
        self.sources = sources
        self.jobs = jobs
        self.writer = writer
        self.interval = interval
        self._task: asyncio.Task[None] | None = None
        self.next_scan: float | None = None
        self.root_interval: dict[int, float] = {}  # roots.<id>.reconcile_interval
        self.root_next: dict[int, float] = {}

    async def apply(self, changes: dict[str, Any]) -> None:
        """A new interval reschedules the next full rescan from now."""
        now = time.monotonic()
        for key, value in changes.items():
            if key == "library.reconcile_interval":
                self.interval = float(value)
                if self.next_scan is not None:
                    self.next_scan = now + (self.interval if self.interval > 0
                                            else float("inf"))
            else:
                root = int(key.split(".")[1])
                if value is None:
                    self.root_interval.pop(root, None)
                    self.root_next.pop(root, None)
                else:
                    self.root_interval[root] = float(value)
                    self.root_next[root] = now + (float(value) if value > 0
                                                  else float("inf"))

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="reconcile")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def status(self) -> dict[str, Any]:
        left = None if self.next_scan is None else max(0, round(self.next_scan - time.monotonic()))
        return {"interval": self.interval, "next_scan_in": left}

    async def _run(self) -> None:
        # A catalog that had no planner statistics started with sampled ones: the full
        # ones now, while the daemon already serves (a second at a million photos).
        if self.db is not None:
            try:
                await self.db.refine_statistics()
            except Exception:
                log.exception("planner statistics not refreshed")
        # Subtree totals may lag after a crash between a batch and its roll-up: redo them,
        # after the daemon is ready (a second at a million photos; nothing waits on it).
        for source in self.sources.mine():
            try:
                await self.writer.rollup(source)
            except Exception:
                log.exception("subtree totals not redone", root=source.name)
        now = time.monotonic()
        self.next_scan = now + (self.interval if self.interval > 0 else float("inf"))
        next_cleanup = now + CLEANUP_EVERY
        # A start is a good moment to catch up with what changed while we were down.
        if self.sources.mine():
            await self.jobs.submit("scan", {})
        while True:
            await asyncio.sleep(OFFLINE_POLL)
            try:
                await self._offline_roots()
                now = time.monotonic()
                if now >= self.next_scan:
                    self.next_scan = now + self.interval
                    roots = [s.id for s in self.sources.mine()]
                    own = [r for r in roots if r in self.root_interval]
                    if roots and not own:
                        await self.jobs.submit("scan", {})
                    elif own:  # the others have their own schedule
                        for root in roots:
                            if root not in own:
                                await self.jobs.submit("scan", {"root": root})
                for root, due in list(self.root_next.items()):
                    if now >= due and root in self.sources.by_id:
                        interval = self.root_interval.get(root, 0.0)
                        self.root_next[root] = now + (interval if interval > 0
                                                      else float("inf"))
                        await self.jobs.submit("scan", {"root": root})
                if now >= next_cleanup:
                    next_cleanup = now + CLEANUP_EVERY
                    await self.jobs.submit("cleanup", {})
            except Exception:
                log.exception("reconcile round failed")

    async def _offline_roots(self) -> None:
        for source in self.sources.mine():
            if source.online:
                continue
            reason = await self.sources.check(source)
            if reason is None:
                await self.sources.set_online(source, None)
                await self.jobs.submit("scan", {"root": source.id})
            elif reason != source.status:
                await self.sources.set_online(source, reason)
