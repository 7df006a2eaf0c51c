"""Turning ``pending`` photos into indexed ones, in the worker pool.

The catalog itself is the queue: the scanner and the watcher set ``status = 'pending'`` and
wake the indexer, which reads pending rows in id order, has each file analysed in a worker
process (sha256, EXIF, dimensions, thumbnails, perceptual hash) and writes the results back
in batches. A daemon killed at any moment loses nothing: rows whose result was not written
are still pending at the next start, and thumbnails are written atomically by the workers.

A result is only applied if the row still has the fingerprint it had when it was picked
(the file did not change again meanwhile); otherwise the row stays pending and is read again.

When several daemons share the catalog (``cluster``), pending rows are not read but claimed,
a few at a time (``cluster.claims``: ``FOR UPDATE SKIP LOCKED``), from every root this host
can read, whichever daemon runs it; a claim ends with the transaction that writes the
result, so no two daemons read the same photo.

Workers get a locator (``media.confine.LocalFile``: the root, the path below it and the row's
fingerprint), never a path to open: they open the file beneath its root without following
links and refuse one that is not the file that was listed. A failure is classified
(``failures``): only the file's own content makes a lasting ``error``; the machine's faults
leave the photo pending, to be retried with backoff or after a pause (``holdups``).

A bucket photo's network part never runs in a worker process, nor on the event loop: the
sniffing ranged GET and the download (streamed through sha256 into a temporary file) run in
the indexer's **I/O threads** (``media.analyze.prepare_remote``), up to ``fetch width``
objects at once, and only then is the copy (``kinds.s3.Fetched``) handed to a worker for
the CPU work (EXIF, decode, thumbnails, pHash): a slow or stalled endpoint occupies a
thread, never a CPU slot. A non-image is settled by its sniff in the thread, with no worker
at all. An object whose reads keep failing (``failures``: ``final_after``) gets a lasting
``error`` with its reason after that many rounds.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import time
import weakref
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from lightbox.common import logs
from lightbox.common.errors import NotFound, Unavailable
from lightbox.daemon.catalog import paths, tables
from lightbox.daemon.catalog.database import Database
from lightbox.daemon.catalog.types import utcnow
from lightbox.daemon.cluster.claims import Claims
from lightbox.daemon.kinds import s3 as s3kind
from lightbox.daemon.kinds.s3 import Fetched, S3Object
from lightbox.daemon.library import failures, holdups, writer
from lightbox.daemon.library.changes import ChangeFeed
from lightbox.daemon.library.previews import Previews
from lightbox.daemon.media.analyze import (
    Analysis,
    AnalyzeRequest,
    make_thumbnails,
    prepare_remote,
)
from lightbox.daemon.media.confine import CHANGED, LocalFile, Locator, Refused
from lightbox.daemon.media.decode import MediaError
from lightbox.daemon.media.ondemand import CacheWriteError
from lightbox.daemon.media.thumbs import (
    ThumbSpec,
    is_stale_temp,
    remove_stale_temp_files,
    thumbnail_path,
)
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
# Bucket objects downloaded at once by the I/O threads (at least, or twice the processes).
FETCH_WIDTH = 4
# Sizes a local photo's indexing may leave to the pass after it (``library.previews``):
# what the catalog and the grid need comes first.
LATER = ("preview",)


def parse_taken(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        return dt.datetime.fromisoformat(text).replace(tzinfo=None)
    except ValueError:
        return None


class Indexer:
    name = "indexer"
    settings_keys = ("thumbnails.grid", "thumbnails.preview", "thumbnails.preview_min",
                     "thumbnails.quality")

    def __init__(self, db: Database, pool: WorkerPool, changes: ChangeFeed, thumbs_dir: Path,
                 specs: Sequence[ThumbSpec], sources: Any = None) -> None:
        self.db = db
        # ``library.sources.Sources``: a bucket photo's locator needs its source's config
        # and credentials.
        self.sources = sources
        self.pool = pool
        self.changes = changes
        self.thumbs_dir = thumbs_dir
        self.specs = tuple(specs)
        self.bits = {spec.name: 1 << i for i, spec in enumerate(self.specs)}
        self.thumb_settings: dict[str, Any] = {}

        self._wake = asyncio.Event()
        # Counts wake() calls: a wake that comes while a pass is reading or flushing (after
        # its query found nothing) must not be erased by the clear() before the sleep, or a
        # photo made pending then waits out the whole 30 s idle timeout.
        self._wakes = 0
        self._task: asyncio.Task[None] | None = None
        self._inflight: set[int] = set()
        # Rows whose results a flush wrote, by that flush's number: a pass's query that
        # began before the commit still sees them pending, and must not read them again
        # (a second decode, for a bucket a second GET). Pruned at each query.
        self._flushes = 0
        self._written: dict[int, int] = {}
        self._results: list[tuple[Any, dict[str, Any], str]] = []  # (row, values, outcome)
        self._flush_lock = asyncio.Lock()
        self._flush_timer: asyncio.TimerHandle | None = None
        self._background: set[asyncio.Task[None]] = set()
        self._idle = asyncio.Event()
        # Progress for waiters (scan jobs): a count of batches written (and pauses), and an
        # event set at the next one and then replaced, so no waiter ever clears another's.
        self._progress = 0
        self._next_progress = asyncio.Event()
        # The progress count each task saw when it last counted ``pending``: a batch written
        # while it counted is not missed by its next ``wait_progress``.
        self._marks: weakref.WeakKeyDictionary[asyncio.Task[Any], int] = \
            weakref.WeakKeyDictionary()
        self._analysing = 0  # analyses started and not yet judged
        self.backlog = holdups.Backlog()
        self.pause: holdups.Pause | None = None
        self.indexed = 0
        self.failed = 0
        self.started = time.monotonic()
        self._reported = 0.0  # when catalog.indexing last went out
        self._reported_done = 0  # indexed+failed at the last "nothing pending"
        self._window = (self.started, 0)  # (time, indexed+failed) for the rate
        self.claims: Claims | None = None  # set when the catalog may be shared
        # Bucket objects' network I/O (``prepare_remote``, downloads for thumbnails on
        # demand): threads, made when first needed; copies go to ``fetch_dir``.
        self.fetch_dir = thumbs_dir.parent / "fetch"
        self._io: ThreadPoolExecutor | None = None
        self.fetch_width = FETCH_WIDTH
        # Photos whose result left a later size out, until that result is written.
        self._deferred: set[int] = set()
        self.previews = Previews(db, pool, self, thumbs_dir,
                                 lambda: [s.id for s in sources.mine()] if sources else [])

    async def apply(self, changes: dict[str, Any]) -> None:
        """New sizes or quality: thumbnails made from now on use them. Existing ones keep
        their size until rebuilt; the names of the sizes (and so their bits) stay."""
        self.thumb_settings.update(changes)
        t = self.thumb_settings
        specs = []
        for old in self.specs:
            quality = int(t.get("thumbnails.quality", old.quality))
            if old.name == "grid":
                new = replace(old, size=int(t.get("thumbnails.grid", old.size)),
                              quality=quality)
            elif old.name == "preview":
                low = t.get("thumbnails.preview_min", old.min_size or 0)
                new = replace(old, size=int(t.get("thumbnails.preview", old.size)),
                              quality=quality, min_size=int(low) or None)
            else:
                new = replace(old, quality=quality)
            specs.append(new)
        self.specs = tuple(specs)

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        self.thumbs_dir.mkdir(parents=True, exist_ok=True)
        # Temp files whose writer died (a crash, a SIGKILL) go; a live daemon's stay, even
        # one sharing this cache (each name carries its owner).
        removed = await asyncio.to_thread(remove_stale_temp_files, self.thumbs_dir)
        if removed:
            log.info("removed half-written thumbnails left by a crash", count=removed)
        removed = await asyncio.to_thread(_clear_fetch_dir, self.fetch_dir)
        if removed:
            log.info("removed bucket downloads left by a crash", count=removed)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="indexer")
        self._wake.set()
        await self.previews.start()

    async def stop(self) -> None:
        await self.previews.stop()
        tasks = [t for t in (self._task, *self._background) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(Exception):
            await self._flush()
        if self._io is not None:
            # A download blocked on a stalled endpoint must not hold the daemon's exit.
            s3kind.abort_transfers()
            self._io.shutdown(wait=False, cancel_futures=True)
            self._io = None

    @property
    def io(self) -> ThreadPoolExecutor:
        if self._io is None:
            self._io = ThreadPoolExecutor(max_workers=self.fetch_width + 2,
                                          thread_name_prefix="lightbox-s3-io")
        return self._io

    def status(self) -> dict[str, Any]:
        return {"indexed": self.indexed, "failed": self.failed, "in_flight": len(self._inflight),
                "retrying": self.backlog.reasons(),
                "paused": self.pause.describe() if self.pause else None,
                "previews": self.previews.status()}

    def paused(self) -> bool:
        return self.pause is not None

    def now_specs(self) -> tuple[ThumbSpec, ...]:
        """The sizes a local photo's indexing makes in any case (the grid)."""
        return tuple(s for s in self.specs if s.name not in LATER)

    def later_specs(self) -> tuple[ThumbSpec, ...]:
        """The sizes its indexing may leave to ``library.previews`` (the preview)."""
        return tuple(s for s in self.specs if s.name in LATER)

    def quiet(self) -> bool:
        """Nothing to index now (nothing pending that can be read, nothing in flight) and
        not paused: when the passes after indexing may use the workers."""
        return self._idle.is_set() and self.pause is None

    async def wait_quiet(self) -> None:
        """Until ``quiet()``."""
        while not self.quiet():
            if self.pause is not None:
                await self.pause.resumed.wait()
            else:
                await self._idle.wait()

    def wake(self) -> None:
        self._idle.clear()
        self._wakes += 1
        self._wake.set()

    async def pending(self, source_ids: Sequence[int] | None = None) -> int:
        task = asyncio.current_task()
        if task is not None:
            self._marks[task] = self._progress   # see wait_progress
        q = sa.select(sa.func.count()).select_from(P).where(P.c.status == "pending")
        if source_ids is not None:
            q = q.where(P.c.source_id.in_(list(source_ids)))
        async with self.db.engine.connect() as conn:
            return int(await conn.scalar(q) or 0)

    async def only_retrying(self, source_ids: Sequence[int]) -> bool:
        """True when every pending photo of these roots is waiting for a retry: nothing the
        indexer could read now (a scan job is done then; the rest follows by itself)."""
        deferred = self.backlog.ids(source_ids)
        if not deferred:
            return False
        q = sa.select(P.c.id).where(P.c.status == "pending",
                                    P.c.source_id.in_(list(source_ids)))
        async with self.db.engine.connect() as conn:
            pending = set((await conn.execute(q.limit(len(deferred) + 1))).scalars())
        return pending <= deferred

    # -- the loop --------------------------------------------------------------------------
    async def _run(self) -> None:
        processes = int(self.pool.status().get("processes", 2))
        width = max(2, 2 * processes)
        slots = asyncio.Semaphore(width)
        # Bucket rows first take a fetch slot (their download, in an I/O thread), then an
        # analysis slot: the network never waits in the worker pool's place.
        self.fetch_width = max(FETCH_WIDTH, width)
        fetch_slots = asyncio.Semaphore(self.fetch_width)
        running: set[asyncio.Task[None]] = set()
        after = 0
        started_any = False
        seen: set[int] = set()     # pending ids of this pass, to forget stale retries
        while True:
            if self.pause is not None:
                await self.pause.resumed.wait()
                after, started_any = 0, False
                continue
            woken = self._wakes
            since = self._flushes
            if self._written:   # written before this query began: it sees them as written
                self._written = {k: n for k, n in self._written.items() if n > since}
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
                    self.backlog.keep_only(seen)
                    seen = set()
                    if not started_any and running:
                        # Everything pending is already being read: wait for one to finish
                        # instead of spinning over the same rows.
                        await asyncio.wait(running, return_when=asyncio.FIRST_COMPLETED)
                    elif not started_any:
                        # Everything pending waits for a retry: sleep until the first is due.
                        await self._sleep_until_due(woken)
                    started_any = False
                    continue
                if running:
                    await asyncio.wait(running)
                    continue
                self.backlog.keep_only(())
                await self._safe_flush()
                with contextlib.suppress(Exception):
                    await self._report_progress(final=True)
                self._idle.set()
                if self._wakes == woken:     # nothing asked for a new pass meanwhile
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), 30.0)
                continue
            now = time.monotonic()
            for row in rows:
                after = row.id
                seen.add(row.id)
                if self._written.get(row.id, 0) > since:
                    # Read before its result was committed; look once more this pass (it
                    # may have been made pending again since) rather than sleep.
                    started_any = True
                    continue
                if row.id in self._inflight or \
                        self.backlog.waiting(row.id, row.size, row.mtime_ns, now):
                    continue
                remote = row.source_kind == "s3"
                first = fetch_slots if remote else slots
                await first.acquire()
                if self.paused():    # a result that came back meanwhile paused indexing
                    first.release()
                    break
                self._inflight.add(row.id)
                self._analysing += 1
                started_any = True
                task = asyncio.get_running_loop().create_task(
                    self._one(row, slots, fetch_slots if remote else None))
                running.add(task)
                task.add_done_callback(running.discard)

    async def _sleep_until_due(self, woken: int) -> None:
        due = self.backlog.next_due()
        delay = 30.0 if due is None else max(0.05, min(30.0, due - time.monotonic()))
        self._idle.set()
        if self._wakes != woken:     # woken while this pass read: look again at once
            return
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), delay)

    async def _fetch(self, after: int) -> list[Any]:
        q = (sa.select(P.c.id, P.c.folder_id, P.c.source_id, P.c.name, P.c.size, P.c.mtime_ns,
                       P.c.inode, P.c.etag, F.c.path.label("folder_path"),
                       S.c.path.label("source_path"), S.c.kind.label("source_kind"))
             .join(F, F.c.id == P.c.folder_id).join(S, S.c.id == P.c.source_id)
             .where(P.c.status == "pending", P.c.id > after, S.c.online.is_(True))
             .order_by(P.c.id).limit(FETCH))
        if self.claims is not None and self.claims.active():
            ids = await self.claims.claim(after)
            if not ids:
                return []
            q = q.where(P.c.id.in_(ids))
        async with self.db.engine.connect() as conn:
            return list((await conn.execute(q)).all())

    def locator(self, row: Any, device: int | None = None) -> Locator:
        """What a worker gets: a local file beneath its root, or a bucket's object with its
        listed ETag (``kinds.s3.S3Object``, credentials inside, never in its repr)."""
        rel = f"{row.folder_path}/{row.name}" if row.folder_path else row.name
        if row.source_kind == "s3":
            cfg = self.sources.s3_config(self.sources.get(row.source_id))
            return S3Object(cfg, cfg.prefix + rel, row.size, row.mtime_ns, row.etag)
        return LocalFile(row.source_path, rel, size=row.size, mtime_ns=row.mtime_ns,
                         inode=row.inode, device=device)

    async def _one(self, row: Any, slots: asyncio.Semaphore,
                   fetching: asyncio.Semaphore | None = None) -> None:
        """One pending row: (a bucket's: fetched in an I/O thread holding ``fetching``, then)
        analysed in the pool holding ``slots``; the result judged and queued for writing."""
        queued = False
        judged = False
        held = slots if fetching is None else fetching
        copy: Fetched | None = None
        try:
            loc = self.locator(row)
            result: Analysis | None = None
            if fetching is not None:
                prepared = await self._prepare(loc)
                if isinstance(prepared, Analysis):
                    result = prepared          # settled by its sniff, or not readable
                else:
                    assert isinstance(prepared, Fetched)
                    copy = loc = prepared
                    await slots.acquire()
                    held.release()
                    held = slots
            if result is None:
                if loc.kind == "local":
                    # The preview of a large JPEG comes after (``library.previews``).
                    req = AnalyzeRequest(loc, thumbs_dir=str(self.thumbs_dir),
                                         thumbs=self.now_specs(), later=self.later_specs())
                else:      # a bucket's copy is here now: every size from its one decode
                    req = AnalyzeRequest(loc, thumbs_dir=str(self.thumbs_dir),
                                         thumbs=self.specs)
                try:
                    result = await analyze_in_pool(self.pool, req)
                except PoolClosed:
                    return
                finally:
                    if copy is not None:
                        _unlink(copy.copy)
                        copy = None
            ok = await self._judge(row, result)
            self._analysing -= 1
            judged = True
            if not ok:
                if self.claims is not None and self.claims.active():
                    # Given up for now (a retry, a pause): another daemon may read it.
                    with contextlib.suppress(Exception):
                        await self.claims.release_now([row.id])
                return
            # In flight until its result is written: the row is still pending in the
            # catalog meanwhile, and must not be read a second time (for a bucket, a GET).
            queued = True
            if len(self._results) >= FLUSH_EVERY or self._analysing == 0:
                # A full batch, or the last analysis in flight came back (the queue ran
                # dry): written now, not FLUSH_AFTER later, so the end of a pass is seen
                # at once (by scan jobs, clients, a benchmark).
                await self._safe_flush()
            elif self._flush_timer is None:
                self._flush_timer = asyncio.get_running_loop().call_later(
                    FLUSH_AFTER, self._timed_flush)
        finally:
            if not judged:
                self._analysing -= 1
            if copy is not None:
                _unlink(copy.copy)
            if not queued:
                self._inflight.discard(row.id)
            held.release()

    async def _prepare(self, loc: Locator) -> Analysis | Locator:
        """``prepare_remote`` in an I/O thread. Cancelled (the daemon stopping), the copy
        the thread still makes is removed when it is done."""
        fut = asyncio.get_running_loop().run_in_executor(self.io, prepare_remote, loc,
                                                         str(self.fetch_dir))
        try:
            return await asyncio.shield(fut)
        except asyncio.CancelledError:
            fut.add_done_callback(_unlink_result)
            raise

    async def _judge(self, row: Any, a: Analysis) -> bool:
        """What a result means for its photo; True when there is something to write."""
        verdict = failures.classify(a)
        if verdict is None or verdict.action == failures.ERROR:
            self.backlog.done(row.id)
            if a.ok and a.deferred:
                self._deferred.add(row.id)
            self._results.append((row, self._values(row, a, verdict),
                                  "ok" if a.ok else "error"))
            return True
        if verdict.action == failures.REQUEUE:
            # Not the file that was listed: nothing of it was read. Pending again under
            # what is there now, after a short wait (a file still being written).
            now: dict[str, Any] = {"size": a.size, "mtime_ns": a.mtime_ns}
            if getattr(row, "source_kind", "local") == "s3":
                now["etag"] = a.etag or row.etag   # (an object has no inode)
            else:
                now["inode"] = a.inode
            self._results.append((row, now, "requeue"))
            self.backlog.defer(row.id, row.source_id, a.size, a.mtime_ns, verdict)
            return True
        if verdict.action == failures.RETRY:
            entry = self.backlog.defer(row.id, row.source_id, row.size, row.mtime_ns, verdict)
            if verdict.final_after and entry.attempts >= verdict.final_after:
                # Its reads kept failing, round after round: a lasting error that says so,
                # not a photo pending for ever.
                self.backlog.done(row.id)
                final = failures.final(verdict, entry.attempts)
                a.error = final.message
                log.warning("photo could not be read; given up until it changes", id=row.id,
                            path=paths.join(row.source_path, row.folder_path, row.name),
                            reason=final.reason, error=final.message)
                self._results.append((row, self._values(row, a, final), "error"))
                return True
            if entry.attempts == 1:
                log.warning("photo not read; it will be retried", id=row.id,
                            path=paths.join(row.source_path, row.folder_path, row.name),
                            reason=verdict.reason, error=verdict.message)
            return False
        await self._pause(verdict)
        return False

    # -- pausing ---------------------------------------------------------------------------
    async def _pause(self, verdict: failures.Verdict) -> None:
        """Stop reading photos until the cause is gone; say so once."""
        if self.pause is not None:
            return
        try:
            waiting = await self.pending()
        except Exception:
            waiting = 0
        if self.paused():    # another result paused it while we counted
            return
        self.pause = holdups.Pause(verdict, waiting)
        info = self.pause.describe()
        log.warning("indexing paused", reason=verdict.reason, message=self.pause.message,
                    error=verdict.message)
        self.changes.bus.publish("system", "indexing_paused", info)
        task = asyncio.get_running_loop().create_task(self._probe(self.pause),
                                                      name="indexer-probe")
        self._background.add(task)
        task.add_done_callback(self._background.discard)
        self._progressed()   # waiters (scan jobs) look at the state now

    async def _probe(self, pause: holdups.Pause) -> None:
        for delay in holdups.probe_delays():
            await asyncio.sleep(delay)
            if pause.verdict.scope in ("thumbnail disk", "thumbnail cache"):
                problem = await asyncio.to_thread(holdups.cache_writable, self.thumbs_dir)
                if problem is not None:
                    continue
            elif self._results:
                try:
                    await self._flush()
                except Exception:
                    continue
            with contextlib.suppress(Exception):
                pause.waiting = await self.pending()
            break
        self.pause = None
        waited = round(time.time() - pause.since, 1)
        log.info("indexing resumed", reason=pause.verdict.reason, waited=waited,
                 waiting=pause.waiting)
        self.changes.bus.publish("system", "indexing_resumed",
                                 {"reason": pause.verdict.reason, "waited": waited,
                                  "waiting": pause.waiting})
        pause.resumed.set()
        self.wake()

    def _timed_flush(self) -> None:
        self._flush_timer = None
        task = asyncio.get_running_loop().create_task(self._safe_flush())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _safe_flush(self) -> None:
        try:
            await self._flush()
        except Exception as exc:
            # The results are kept and written when the catalog takes them again.
            if self.pause is None:
                log.exception("writing results failed; indexing pauses, those photos stay "
                              "pending")
            await self._pause(failures.catalog_write(exc))

    async def _flush(self) -> None:
        if self._flush_timer is not None:
            self._flush_timer.cancel()
            self._flush_timer = None
        async with self._flush_lock:
            results, self._results = self._results, []
            if not results:
                return
            batch = [writer.Analysed(row.id, row.size, row.mtime_ns, values)
                     for row, values, _ in results]
            try:
                async with self.db.engine.begin() as conn:
                    applied = await writer.write_analyses(conn, batch)
                    if self.claims is not None and self.claims.active():
                        await self.claims.release(conn, [a.photo_id for a in batch])
            except BaseException:
                self._results[:0] = results    # kept for the next attempt
                raise
            self._flushes += 1
            for row, _, _ in results:
                self._inflight.discard(row.id)
                self._written[row.id] = self._flushes
            later = [row.id for row, _, outcome in results
                     if outcome == "ok" and row.id in self._deferred]
            self._deferred.difference_update(row.id for row, _, _ in results)
            self.previews.due(later)
            by_folder: dict[tuple[int, str], list[int]] = {}
            for row, _, outcome in results:
                if outcome == "requeue":
                    continue
                key = (row.folder_id, paths.join(row.source_path, row.folder_path))
                by_folder.setdefault(key, []).append(row.id)
                if outcome == "ok":
                    self.indexed += 1
                else:
                    self.failed += 1
            for (folder_id, folder), ids in by_folder.items():
                self.changes.photos("changed", folder_id, folder, ids)
            self._progressed()
            log.debug("indexed batch", count=len(results), applied=applied)
        await self._report_progress()

    async def _report_progress(self, final: bool = False) -> None:
        """``catalog.indexing``: how many photos wait, for clients to show indexing that no
        job stands for (the watcher's, a restart's). At most once a second (the count is one
        index range), and at once when the queue has run dry."""
        now = time.monotonic()
        if not final and now - self._reported < 1.0:
            return
        self._reported = now
        try:
            # Only what can be read now: a root that is offline keeps its pending photos.
            async with self.db.engine.connect() as conn:
                left = int(await conn.scalar(
                    sa.select(sa.func.count()).select_from(P).where(
                        P.c.status == "pending",
                        P.c.source_id.in_(sa.select(S.c.id).where(S.c.online.is_(True)))))
                    or 0)
        except Exception:  # the database is away: the next batch will say it
            return
        done = self.indexed + self.failed
        if final and left == 0 and done == self._reported_done:
            return  # nothing happened since the last "done"
        rate: float | None = None
        if self._reported_done >= 0:  # idle until now: a new burst, the rate starts here
            self._window = (now, done)
        else:
            rate = round((done - self._window[1]) / max(1e-6, now - self._window[0]), 1)
            self._window = (now, done)
        self._reported_done = done if left == 0 else -1
        bus = self.changes.bus
        bus.publish_throttled("indexing", "catalog", "indexing", {
            "pending": left, "indexed": self.indexed, "failed": self.failed,
            "rate": rate}, interval=1.0)
        if left == 0:
            bus.flush_throttled("indexing")

    def _values(self, row: Any, a: Analysis,
                verdict: failures.Verdict | None = None) -> dict[str, Any]:
        status = "ok" if a.ok else "error"
        thumbs = 0
        for name in a.thumbs:
            thumbs |= self.bits.get(name, 0)
        error = a.error
        if a.ok and a.notes:
            error = None
        return {
            "status": status, "error": error,
            "error_reason": None if a.ok or verdict is None else verdict.reason[:32] or None,
            "size": a.size or row.size, "mtime_ns": a.mtime_ns or row.mtime_ns,
            "device": a.device or None,
            "sha256": a.sha256, "mime": a.mime, "format": a.format, "width": a.width,
            "height": a.height, "orientation": a.orientation,
            "taken_at": parse_taken(a.taken_at), "taken_offset": a.taken_offset,
            "make": a.make, "model": a.model, "lens": a.lens,
            "exposure_time": a.exposure_time, "f_number": a.f_number, "iso": a.iso,
            "focal_length": a.focal_length, "gps_lat": a.gps_lat, "gps_lon": a.gps_lon,
            "gps_alt": a.gps_alt, "phash": a.phash, "thumbs": thumbs,
            "indexed_at": utcnow(),
        }

    def _progressed(self) -> None:
        self._progress += 1
        event, self._next_progress = self._next_progress, asyncio.Event()
        event.set()

    async def wait_progress(self, timeout: float) -> None:
        """Return after the next batch of results is written (or ``timeout``): how a job
        that waits for indexing follows it without polling on a fixed beat.

        "Next" counts from the caller's last ``pending()``: a batch written while it was
        counting (the last one of a pass, say) returns at once instead of leaving the
        caller to wait out its timeout."""
        task = asyncio.current_task()
        since = self._marks.pop(task, None) if task is not None else None
        if since is not None and since != self._progress:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._next_progress.wait(), timeout)

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
                       P.c.size, P.c.mtime_ns, P.c.inode, P.c.device, P.c.etag,
                       P.c.source_id, F.c.path.label("folder_path"),
                       S.c.path.label("source_path"), S.c.kind.label("source_kind"))
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
        data = {"id": photo_id}
        copy: Fetched | None = None
        try:
            loc = self.locator(row, row.device)
            if isinstance(loc, S3Object):
                # Downloaded in an I/O thread; the worker only decodes the copy.
                copy = await asyncio.get_running_loop().run_in_executor(
                    self.io, s3kind.fetch, loc, str(self.fetch_dir))
                loc = copy
            await self.pool.submit(make_thumbnails, loc, row.sha256,
                                   (spec,), str(self.thumbs_dir), priority=PRIORITY_INTERACTIVE)
        except (MediaError, Refused) as exc:
            reason = exc.kind if isinstance(exc, MediaError) else exc.reason
            if reason == CHANGED:
                await self.repend(photo_id)
            raise NotFound(f"photo {photo_id}: cannot make its thumbnail: {exc}",
                           {**data, "reason": reason}) from None
        except FileNotFoundError:
            raise NotFound(f"photo {photo_id}: the file is gone", {**data, "reason": "gone"}
                           ) from None
        except CacheWriteError as exc:
            verdict = failures.classify_cache_error(exc)
            raise Unavailable(f"photo {photo_id}: thumbnail not made: {verdict.message}",
                              {**data, "reason": verdict.reason, "retry_after": 10}) from None
        except OSError as exc:
            raise Unavailable(f"photo {photo_id}: cannot read the file now: "
                              f"{exc.strerror or exc}",
                              {**data, "reason": "unreadable", "retry_after": 10}) from None
        except (WorkerTimeout, WorkerCrashed, PoolClosed) as exc:
            raise Unavailable(f"photo {photo_id}: thumbnail not made: {exc}") from None
        finally:
            if copy is not None:
                _unlink(copy.copy)
        async with self.db.engine.begin() as conn:
            await writer.add_thumbnail(conn, photo_id, self.bits[spec.name])
        return target

    async def repend(self, photo_id: int) -> None:
        """The file is not what its row says: pending again, read at once."""
        async with self.db.engine.begin() as conn:
            await writer.repend(conn, photo_id)
        self.wake()


def _unlink(path: str) -> None:
    with contextlib.suppress(OSError):
        os.unlink(path)


def _unlink_result(fut: Any) -> None:
    """A cancelled fetch's copy, once its thread is done."""
    with contextlib.suppress(BaseException):
        got = fut.result()
        if isinstance(got, Fetched):
            _unlink(got.copy)


def _clear_fetch_dir(where: Path) -> int:
    """Make the download directory (private) and remove copies whose owner died."""
    where.mkdir(mode=0o700, parents=True, exist_ok=True)
    removed = 0
    for entry in os.scandir(where):
        with contextlib.suppress(OSError):
            if entry.name.startswith(s3kind.FETCH_PREFIX) and is_stale_temp(
                    entry.name, entry.stat().st_mtime, older_than=7 * 86400):
                os.unlink(entry.path)
                removed += 1
    return removed
