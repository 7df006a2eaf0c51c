"""Previews made after indexing, in a low-priority pass (issue 13).

The indexing pass makes what the catalog and the grid need: sha256, EXIF, the grid
thumbnail. A large JPEG's preview needs the decoder at 1/4 scale instead of the grid's 1/8
(9 ms more a photo at 12 MP, a fifth of its indexing), so the indexer asks for it as
``later`` (``media.analyze``), the worker leaves it out, and this pass makes it once nothing
is pending: one worker task a photo, at the pool's lowest priority, at most one in flight
per worker process, so indexing that starts meanwhile takes over each worker as soon as its
current preview is done, and the pass waits until the indexer is idle again. A photo opened
before its preview exists gets it on demand (``Indexer.ensure_thumbnail``, interactive
priority), as before.

What is due: the ids the indexer hands over after writing their results (``due``), and at
start a sweep of the catalog for indexed local photos without a preview (a daemon stopped
before its pass ended), in ranges of ``SWEEP_RANGE`` ids so that no query reads more rows
than that. When more than ``DUE_MAX`` ids wait, they are not kept one by one: the sweep
restarts from the lowest instead (memory stays flat for an import of a million photos).

A photo whose preview cannot be made now is dropped from the pass: changed since it was
indexed (it is queued for indexing again), gone, unreadable, undecodable at this size; its
preview is made on demand, or when it is indexed again, or by the next start's sweep. A
thumbnail cache that cannot be written (a full disk) stops the pass for a while, the photos
kept. Bucket photos are never deferred: their downloaded copy is at hand during indexing,
and a second download would cost far more than the larger decode.

The file is not hashed again: it is opened beneath its root and checked against the
catalog's fingerprint (size, mtime, inode: ``confine``), what a rescan trusts too. Its bit in
``photos.thumbs`` is written in batches; no event goes out, since no client shows the bit
(``photos.thumbnail`` serves a preview whether it was made ahead or is made then).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from lightbox.common import logs
from lightbox.daemon.catalog import tables
from lightbox.daemon.catalog.database import Database
from lightbox.daemon.library import writer
from lightbox.daemon.media.confine import CHANGED, LocalFile, Refused
from lightbox.daemon.media.decode import MediaError
from lightbox.daemon.media.ondemand import CacheWriteError, make_thumbnails
from lightbox.daemon.media.thumbs import ThumbSpec, thumbnail_path
from lightbox.daemon.workers.pool import (
    PRIORITY_BACKGROUND,
    PoolClosed,
    WorkerCrashed,
    WorkerPool,
    WorkerTimeout,
)

if TYPE_CHECKING:
    from lightbox.daemon.library.indexer import Indexer

log = logs.get("previews")

P, F, S = tables.photos, tables.folders, tables.sources

BATCH = 64  # photos read, made and written together
SWEEP_RANGE = 20_000  # ids one sweep query covers
DUE_MAX = 50_000  # ids kept one by one before the pass falls back to a sweep
CACHE_BACKOFF = (5.0, 600.0)  # s: first and longest wait after the cache refused a write


class Previews:
    """The deferred sizes (``Indexer.later_specs``) of photos already indexed."""

    name = "previews"

    def __init__(
        self,
        db: Database,
        pool: WorkerPool,
        indexer: Indexer,
        thumbs_dir: Path,
        local_sources: Callable[[], Sequence[int]],
    ) -> None:
        self.db = db
        self.pool = pool
        self.indexer = indexer
        self.thumbs_dir = thumbs_dir
        # The local roots this daemon reads (``Sources.mine``), for the sweep.
        self.local_sources = local_sources
        self._due: set[int] = set()
        self._sweep_from: int | None = None  # sweep ids above this (None: no sweep)
        self._wanted = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._backoff = 0.0
        self.made = 0
        self.failed = 0
        self._running = 0  # worker tasks in flight
        self._batch = False  # a batch taken and not yet written

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        self.sweep()
        self._task = asyncio.get_running_loop().create_task(self._run(), name="previews")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
            self._task = None

    def status(self) -> dict[str, Any]:
        return {
            "pending": self.pending(),
            "due": len(self._due),
            "sweeping": self._sweep_from is not None,
            "in_flight": self._running,
            "made": self.made,
            "failed": self.failed,
        }

    def pending(self) -> bool:
        """Whether any preview is still due (or a sweep may find some)."""
        return bool(self._due) or self._sweep_from is not None or self._batch

    # -- what is due -------------------------------------------------------------------
    def due(self, ids: Sequence[int]) -> None:
        """Photos whose results were just written with their later sizes left out."""
        if not ids:
            return
        if len(self._due) + len(ids) > DUE_MAX:
            low = min(self._due.union(ids))
            self._due.clear()
            self.sweep(low - 1)
        else:
            self._due.update(ids)
        self._wanted.set()

    def sweep(self, after: int = 0) -> None:
        """Look through the catalog, from id ``after`` up, for photos missing a later
        size."""
        self._sweep_from = after if self._sweep_from is None else min(self._sweep_from, after)
        self._wanted.set()

    # -- the pass ----------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            await self._wanted.wait()
            await self.indexer.wait_quiet()
            specs = self.indexer.later_specs()
            if not specs:
                self._due.clear()
                self._sweep_from = None
                self._wanted.clear()
                continue
            ids: list[int] | None = []
            self._batch = True
            try:
                ids = await self._next_ids(specs)
                if ids is None:  # nothing left
                    self._wanted.clear()
                    continue
                if ids:
                    await self._make(ids, specs)
            except PoolClosed:
                return  # the daemon is stopping
            except Exception:
                # The catalog went away for a moment: the ids are kept (those already made
                # are found in the cache next time), and the pass tries again shortly.
                log.exception("making previews failed; retrying")
                self._due.update(ids or ())
                await asyncio.sleep(2.0)
            finally:
                self._batch = False

    def _bit(self, specs: Sequence[ThumbSpec]) -> int:
        bit = 0
        for spec in specs:
            bit |= self.indexer.bits.get(spec.name, 0)
        return bit

    async def _next_ids(self, specs: Sequence[ThumbSpec]) -> list[int] | None:
        """The next batch: ids handed over first, then the sweep's; None when neither has
        any left, [] when a sweep range held none (the loop comes back)."""
        if self._due:
            ids = sorted(self._due)[:BATCH]
            self._due.difference_update(ids)
            return ids
        if self._sweep_from is None:
            return None
        lo = self._sweep_from
        sources = list(self.local_sources())
        async with self.db.engine.connect() as conn:
            top = await conn.scalar(sa.select(sa.func.max(P.c.id)))
            if top is None or lo >= top or not sources:
                self._sweep_from = None
                return []
            bit = self._bit(specs)
            q = (
                sa.select(P.c.id)
                .where(
                    P.c.id > lo,
                    P.c.id <= lo + SWEEP_RANGE,
                    P.c.status == "ok",
                    P.c.thumbs.bitwise_and(bit) != bit,
                    P.c.source_id.in_(sources),
                )
                .order_by(P.c.id)
                .limit(BATCH)
            )
            ids = list((await conn.execute(q)).scalars())
        # A full batch: the range may hold more, go on after its last; else the next range.
        self._sweep_from = ids[-1] if len(ids) == BATCH else lo + SWEEP_RANGE
        return ids

    async def _rows(self, ids: Sequence[int], bit: int) -> list[Any]:
        q = (
            sa.select(
                P.c.id,
                P.c.name,
                P.c.size,
                P.c.mtime_ns,
                P.c.inode,
                P.c.device,
                P.c.sha256,
                F.c.path.label("folder_path"),
                S.c.path.label("source_path"),
            )
            .join(F, F.c.id == P.c.folder_id)
            .join(S, S.c.id == P.c.source_id)
            .where(
                P.c.id.in_(list(ids)),
                P.c.status == "ok",
                P.c.sha256.is_not(None),
                P.c.thumbs.bitwise_and(bit) != bit,
                S.c.kind == "local",
                S.c.online.is_(True),
            )
            .order_by(P.c.id)
        )
        async with self.db.engine.connect() as conn:
            return list((await conn.execute(q)).all())

    async def _make(self, ids: list[int], specs: Sequence[ThumbSpec]) -> None:
        bit = self._bit(specs)
        rows = await self._rows(ids, bit)
        # A duplicate's preview is already there (content-addressed): only its bit.
        present = await asyncio.to_thread(self._present, rows, specs)
        done: list[tuple[int, str]] = [(r.id, r.sha256) for r in rows if r.id in present]
        todo = [r for r in rows if r.id not in present]
        slots = asyncio.Semaphore(max(1, int(self.pool.status().get("processes", 1))))
        running: set[asyncio.Task[None]] = set()
        left: list[int] = []
        stop_cache = False

        async def one(row: Any) -> None:
            nonlocal stop_cache
            try:
                if await self._one(row, specs):
                    done.append((row.id, row.sha256))
            except CacheWriteError as exc:
                stop_cache = True
                left.append(row.id)
                if not self._backoff:
                    log.warning(
                        "previews not made: the thumbnail cache refused a write; "
                        "trying again later",
                        error=str(exc),
                    )
            finally:
                self._running -= 1
                slots.release()

        try:
            for i, row in enumerate(todo):
                await slots.acquire()
                if stop_cache or not self.indexer.quiet():
                    # Indexing came back (or the cache is full): these wait for the next
                    # quiet moment.
                    slots.release()
                    left.extend(r.id for r in todo[i:])
                    break
                self._running += 1
                task = asyncio.get_running_loop().create_task(one(row))
                running.add(task)
                task.add_done_callback(running.discard)
            if running:
                await asyncio.wait(set(running))
        finally:
            if running:  # cancelled (the daemon stopping): nothing more is written
                for task in running:
                    task.cancel()
            self._due.update(left)
        if done:
            async with self.db.engine.begin() as conn:
                await writer.add_thumbnails(conn, done, bit)
        if stop_cache:
            self._backoff = min(CACHE_BACKOFF[1], max(CACHE_BACKOFF[0], self._backoff * 2))
            await asyncio.sleep(self._backoff)
        elif done:
            self._backoff = 0.0

    def _present(self, rows: Sequence[Any], specs: Sequence[ThumbSpec]) -> set[int]:
        return {
            r.id
            for r in rows
            if all(thumbnail_path(self.thumbs_dir, s.name, r.sha256).exists() for s in specs)
        }

    async def _one(self, row: Any, specs: Sequence[ThumbSpec]) -> bool:
        """One photo's later sizes in a worker; True when they were made."""
        rel = f"{row.folder_path}/{row.name}" if row.folder_path else row.name
        loc = LocalFile(
            row.source_path,
            rel,
            size=row.size,
            mtime_ns=row.mtime_ns,
            inode=row.inode,
            device=row.device,
        )
        t = time.monotonic()
        try:
            await self.pool.submit(
                make_thumbnails,
                loc,
                row.sha256,
                tuple(specs),
                str(self.thumbs_dir),
                False,
                priority=PRIORITY_BACKGROUND,
            )
        except (MediaError, Refused) as exc:
            reason = exc.kind if isinstance(exc, MediaError) else exc.reason
            self.failed += 1
            if reason == CHANGED:
                await self.indexer.repend(row.id)
            else:
                log.debug("preview not made", id=row.id, reason=reason, error=str(exc))
            return False
        except CacheWriteError:
            raise
        except (OSError, WorkerTimeout, WorkerCrashed) as exc:
            self.failed += 1
            log.debug("preview not made", id=row.id, error=str(exc) or type(exc).__name__)
            return False
        self.made += 1
        log.debug("preview made", id=row.id, ms=round((time.monotonic() - t) * 1000, 1))
        return True
