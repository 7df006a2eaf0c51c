"""Turning ``pending`` photos into indexed ones, in the worker pool.

The catalog itself is the queue: the scanner and the watcher set ``status = 'pending'`` and
wake the indexer, which reads pending rows in id order, has each file analysed in a worker
process (sha256, EXIF, dimensions, thumbnails, perceptual hash) and writes the results back
in batches. A daemon killed at any moment loses nothing: rows whose result was not written
are still pending at the next start, and thumbnails are written atomically by the workers.

A result is only applied if the row still has the fingerprint it had when it was picked
(the file did not change again meanwhile); otherwise the row stays pending and is read again.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from lightbox.common import logs
from lightbox.common.errors import NotFound, Unavailable
from lightbox.daemon.catalog import paths, tables
from lightbox.daemon.catalog.database import Database
from lightbox.daemon.catalog.types import utcnow
from lightbox.daemon.library import writer
from lightbox.daemon.library.changes import ChangeFeed
from lightbox.daemon.media.analyze import Analysis, AnalyzeRequest, make_thumbnails
from lightbox.daemon.media.decode import MediaError
from lightbox.daemon.media.thumbs import ThumbSpec, remove_stale_temp_files, thumbnail_path
from lightbox.daemon.workers.pool import (
    PRIORITY_INTERACTIVE,
    PoolClosed,
    WorkerCrashed,
    WorkerPool,
    WorkerTimeout,
    analyze_in_pool,
)

log = logs.get("indexer")

P, F, S = tables.photos, tables.folders, tables.sources

FETCH = 256
FLUSH_EVERY = 64
FLUSH_AFTER = 0.3


def parse_taken(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        return dt.datetime.fromisoformat(text).replace(tzinfo=None)
    except ValueError:
        return None


class Indexer:
    name = "indexer"

    def __init__(self, db: Database, pool: WorkerPool, changes: ChangeFeed, thumbs_dir: Path,
                 specs: Sequence[ThumbSpec]) -> None:
        self.db = db
        self.pool = pool
        self.changes = changes
        self.thumbs_dir = thumbs_dir
        self.specs = tuple(specs)
        self.bits = {spec.name: 1 << i for i, spec in enumerate(self.specs)}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._inflight: set[int] = set()
        self._results: list[tuple[Any, Analysis]] = []
        self._flush_lock = asyncio.Lock()
        self._flush_timer: asyncio.TimerHandle | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._idle = asyncio.Event()
        self._flushed = asyncio.Event()  # set after every batch written (for waiters)
        self.indexed = 0
        self.failed = 0
        self.started = time.monotonic()

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        self.thumbs_dir.mkdir(parents=True, exist_ok=True)
        # Nothing of ours is being written yet: any temp file is a crash's leftover.
        removed = await asyncio.to_thread(remove_stale_temp_files, self.thumbs_dir, 0.0)
        if removed:
            log.info("removed half-written thumbnails left by a crash", count=removed)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="indexer")
        self._wake.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            await self._flush()

    def status(self) -> dict[str, Any]:
        return {"indexed": self.indexed, "failed": self.failed, "in_flight": len(self._inflight)}

    def wake(self) -> None:
        self._idle.clear()
        self._wake.set()

    async def pending(self, source_ids: Sequence[int] | None = None) -> int:
        q = sa.select(sa.func.count()).select_from(P).where(P.c.status == "pending")
        if source_ids is not None:
            q = q.where(P.c.source_id.in_(list(source_ids)))
        async with self.db.engine.connect() as conn:
            return int(await conn.scalar(q) or 0)

    # -- the loop --------------------------------------------------------------------------
    async def _run(self) -> None:
        width = max(2, 2 * int(self.pool.status().get("processes", 2)))
        slots = asyncio.Semaphore(width)
        running: set[asyncio.Task[None]] = set()
        after = 0
        started_any = False
        while True:
            try:
                rows = await self._fetch(after)
            except Exception:
                # The database went away for a moment (a restarted server, a locked file):
                # try again shortly rather than stop indexing for the daemon's lifetime.
                log.exception("reading pending photos failed; retrying")
                await asyncio.sleep(2.0)
                continue
            if not rows:
                if after:
                    # Wrap around: changed files keep their (older) ids.
                    after = 0
                    if not started_any and running:
                        # Everything pending is already being read: wait for one to finish
                        # instead of spinning over the same rows.
                        await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                    started_any = False
                    continue
                if running:
                    await asyncio.wait(running)
                    continue
                await self._safe_flush()
                self._idle.set()
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), 30.0)
                continue
            for row in rows:
                after = row.id
                if row.id in self._inflight:
                    continue
                await slots.acquire()
                self._inflight.add(row.id)
                started_any = True
                task = asyncio.get_running_loop().create_task(self._one(row, slots))
                running.add(task)
                task.add_done_callback(running.discard)

    async def _fetch(self, after: int) -> list[Any]:
        q = (sa.select(P.c.id, P.c.folder_id, P.c.source_id, P.c.name, P.c.size, P.c.mtime_ns,
                       F.c.path.label("folder_path"), S.c.path.label("source_path"))
             .join(F, F.c.id == P.c.folder_id).join(S, S.c.id == P.c.source_id)
             .where(P.c.status == "pending", P.c.id > after, S.c.online.is_(True))
             .order_by(P.c.id).limit(FETCH))
        async with self.db.engine.connect() as conn:
            return list((await conn.execute(q)).all())

    async def _one(self, row: Any, slots: asyncio.Semaphore) -> None:
        try:
            path = paths.join(row.source_path, row.folder_path, row.name)
            req = AnalyzeRequest(path=path, thumbs_dir=str(self.thumbs_dir), thumbs=self.specs)
            try:
                result = await analyze_in_pool(self.pool, req)
            except PoolClosed:
                return
            self._results.append((row, result))
            if len(self._results) >= FLUSH_EVERY:
                try:
                    await self._flush()
                except Exception:
                    log.exception("writing results failed; those photos stay pending")
            elif self._flush_timer is None:
                self._flush_timer = asyncio.get_running_loop().call_later(
                    FLUSH_AFTER, self._timed_flush)
        finally:
            self._inflight.discard(row.id)
            slots.release()

    def _timed_flush(self) -> None:
        self._flush_timer = None
        task = asyncio.get_running_loop().create_task(self._safe_flush())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _safe_flush(self) -> None:
        try:
            await self._flush()
        except Exception:
            log.exception("writing results failed; those photos stay pending")

    async def _flush(self) -> None:
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        async with self._flush_lock:
            results, self._results = self._results, []
            if not results:
                return
            batch = [writer.Analysed(row.id, row.size, row.mtime_ns, self._values(row, a))
                     for row, a in results]
            async with self.db.engine.begin() as conn:
                applied = await writer.write_analyses(conn, batch)
            by_folder: dict[tuple[int, str], list[int]] = {}
            for row, a in results:
                key = (row.folder_id, paths.join(row.source_path, row.folder_path))
                by_folder.setdefault(key, []).append(row.id)
                if a.ok:
                    self.indexed += 1
                else:
                    self.failed += 1
            for (folder_id, folder), ids in by_folder.items():
                self.changes.photos("changed", folder_id, folder, ids)
            self._flushed.set()
            log.debug("indexed batch", count=len(results), applied=applied)

    def _values(self, row: Any, a: Analysis) -> dict[str, Any]:
        status = "ok" if a.ok else "error"
        thumbs = 0
        for name in a.thumbs:
            thumbs |= self.bits.get(name, 0)
        error = a.error
        if a.ok and a.notes:
            error = None
        return {
            "status": status, "error": error,
            "size": a.size or row.size, "mtime_ns": a.mtime_ns or row.mtime_ns,
            "sha256": a.sha256, "mime": a.mime, "format": a.format, "width": a.width,
            "height": a.height, "orientation": a.orientation,
            "taken_at": parse_taken(a.taken_at), "taken_offset": a.taken_offset,
            "make": a.make, "model": a.model, "lens": a.lens,
            "exposure_time": a.exposure_time, "f_number": a.f_number, "iso": a.iso,
            "focal_length": a.focal_length, "gps_lat": a.gps_lat, "gps_lon": a.gps_lon,
            "gps_alt": a.gps_alt, "phash": a.phash, "thumbs": thumbs,
            "indexed_at": utcnow(),
        }

    async def wait_progress(self, timeout: float) -> None:
        """Return after the next batch of results is written (or ``timeout``): how a job
        that waits for indexing follows it without polling on a fixed beat."""
        self._flushed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._flushed.wait(), timeout)

    async def wait_idle(self, timeout: float) -> bool:
        """For tests and tools: True once nothing is pending or in flight."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout)
            return True
        return False

    # -- thumbnails on demand --------------------------------------------------------------
    async def ensure_thumbnail(self, photo_id: int, size: str) -> Path:
        """The thumbnail file for a photo, made now (ahead of bulk work) if it is missing."""
        spec = next((s for s in self.specs if s.name == size), None)
        if spec is None:
            raise NotFound(f"no thumbnail size {size!r}")
        q = (sa.select(P.c.id, P.c.status, P.c.sha256, P.c.error, P.c.thumbs, P.c.name,
                       F.c.path.label("folder_path"), S.c.path.label("source_path"))
             .join(F, F.c.id == P.c.folder_id).join(S, S.c.id == P.c.source_id)
             .where(P.c.id == photo_id))
        async with self.db.engine.connect() as conn:
            row = (await conn.execute(q)).first()
        if row is None:
            raise NotFound(f"no photo {photo_id}")
        if row.status != "ok" or not row.sha256:
            reason = row.error or {"pending": "not indexed yet", "missing": "the file is gone"
                                   }.get(row.status, row.status)
            raise NotFound(f"photo {photo_id} has no thumbnail: {reason}")
        target = thumbnail_path(self.thumbs_dir, spec.name, row.sha256)
        if target.exists():
            return target
        path = paths.join(row.source_path, row.folder_path, row.name)
        try:
            await self.pool.submit(make_thumbnails, path, row.sha256, (spec,),
                                   str(self.thumbs_dir), priority=PRIORITY_INTERACTIVE)
        except MediaError as exc:
            if exc.kind == "changed":
                await self._repend(photo_id)
            raise NotFound(f"photo {photo_id}: cannot make its thumbnail: {exc}") from None
        except FileNotFoundError:
            raise NotFound(f"photo {photo_id}: the file is gone") from None
        except (WorkerTimeout, WorkerCrashed, PoolClosed) as exc:
            raise Unavailable(f"photo {photo_id}: thumbnail not made: {exc}") from None
        async with self.db.engine.begin() as conn:
            await writer.add_thumbnail(conn, photo_id, self.bits[spec.name])
        return target

    async def _repend(self, photo_id: int) -> None:
        async with self.db.engine.begin() as conn:
            await writer.repend(conn, photo_id)
        self.wake()
