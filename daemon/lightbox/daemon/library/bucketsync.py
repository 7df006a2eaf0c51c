"""The ``sync`` job: a bucket source's listing reconciled with the catalog.

A sync lists the source's prefix once (``kinds.s3.S3Kind.list_prefix``: ⌈N/1000⌉ LIST
requests and nothing else when nothing changed — no HEAD, no GET) and compares every
object with its row by (size, LastModified, ETag); the ETag is a change detector only (a
multipart upload's is not an MD5). New and changed objects become ``pending`` for the
indexer, which reads each in a worker (a ranged GET to sniff, then one streamed GET).

Nothing vanishes unless the listing is **proven complete** and passes the **mass-vanish
guard** local roots go through (``library.vanish``): an incomplete listing (truncated
without a token, a repeated token, a page that failed, the page cap) or an empty listing
over a source that had photos leaves every photo where it is; more photos gone at once than
``vanish.limit`` allows are held as suspect (a later sync confirms them after the guard's
delay, ``force=true`` or ``roots.confirm`` at once). The job then fails saying why, after
recording what is new.
Vanished photos become ``missing``; the next complete listing that still lacks them
removes them (as for local roots). Folders come from the keys' "/"-separated prefixes.

A failure to reach the bucket at all (endpoint, TLS, clock, credentials, no bucket, no
permission) changes nothing in the catalog; it is the job's error, with a machine-readable
``reason``, and the source's status.

An object whose reads kept failing (every GET a 500, a reset or a stall in every body:
``failures.final_after``) is in ``error`` with its ``error_reason`` (``server_error``,
``throttled``, ``timeout``). A sync reads it again only when the listing shows it changed
(ETag, size or LastModified), or with ``retry=true``; the job's result counts them
(``failed``) and the source's status says how to retry.

Restart-safe: the job is persisted and re-run from the listing after a crash; writes are
idempotent against the catalog (a row inserted before the crash is simply found), and rows
already indexed with the same fingerprint are not read again.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from typing import Any

import sqlalchemy as sa

from lightbox.common import logs
from lightbox.daemon.catalog import tables
from lightbox.daemon.catalog.database import Database
from lightbox.daemon.catalog.types import utcnow
from lightbox.daemon.jobs.queue import JobContext, JobFailed
from lightbox.daemon.kinds.base import Entry, Listing
from lightbox.daemon.kinds.s3 import GET_DENIED, SERVER, THROTTLED, TRANSFER_REASONS, S3Error
from lightbox.daemon.library import vanish
from lightbox.daemon.library.indexer import Indexer
from lightbox.daemon.library.sources import Source, Sources
from lightbox.daemon.library.writer import CatalogWriter
from lightbox.daemon.media.confine import CHANGED

log = logs.get("sync")

P = tables.photos

WRITE_BATCH = 1000
EMPTY_LISTING = "empty_listing"
MASS_VANISH = "mass_vanish"
# Failures that say nothing about whether the bucket is there: it stays online.
_TRANSIENT = (SERVER, THROTTLED, GET_DENIED, CHANGED)


class _Aborted(Exception):
    """The sync was interrupted while listing: the listing thread stops at a page break."""


def _folders_of(rel: str) -> list[str]:
    out = []
    folder = rel.rpartition("/")[0]
    while folder:
        out.append(folder)
        folder = folder.rpartition("/")[0]
    return out


class BucketSync:
    def __init__(self, db: Database, sources: Sources, writer: CatalogWriter,
                 indexer: Indexer) -> None:
        self.db = db
        self.sources = sources
        self.writer = writer
        self.indexer = indexer

    def target(self, params: dict[str, Any]) -> Source:
        src = self.sources.resolve(params["source"])
        if src.kind != "s3":
            raise JobFailed(f"{src.name} is a local root: scan it instead",
                            {"reason": "not_a_bucket"})
        return src

    async def run(self, ctx: JobContext) -> dict[str, Any]:
        src = self.target(ctx.params)
        report = await self.sync(src, ctx, force=bool(ctx.params.get("force")),
                                 retry=bool(ctx.params.get("retry")))
        held = report.pop("held_back", None)
        if held is not None:
            self.indexer.wake()
            raise JobFailed(f"{src.name}: {held['message']}", {**report, **held})
        report.update(await self._wait_indexed(src, ctx))
        failed = await self.failed_reads(src)
        report["failed"] = failed
        if failed:
            count = sum(failed.values())
            what = ", ".join(f"{n} {r}" for r, n in sorted(failed.items()))
            note = (f"{count} objects could not be read ({what}); they are read again when "
                    f"they change, or with `lightbox sync {src.name} --retry`")
            report["message"] = note
            if src.status is None:
                await self.sources.set_status(src, True, note)
        return report

    async def failed_reads(self, src: Source) -> dict[str, int]:
        """This bucket's photos whose reads were given up on, by reason."""
        async with self.db.engine.connect() as conn:
            rows = (await conn.execute(
                sa.select(P.c.error_reason, sa.func.count())
                .where(P.c.source_id == src.id, P.c.status == "error",
                       P.c.error_reason.in_(TRANSFER_REASONS))
                .group_by(P.c.error_reason))).all()
        return {str(reason): int(n) for reason, n in rows}

    async def sync(self, src: Source, ctx: JobContext | None = None, *,
                   force: bool = False, retry: bool = False) -> dict[str, Any]:
        kind = self.sources.kind_of(src)
        if ctx is not None:
            ctx.phase = "listing"
            ctx.progress(processed=0, total=None)
        started = time.monotonic()
        pass_started = utcnow()
        loop = asyncio.get_running_loop()
        abort = threading.Event()

        def on_page(pages: int, entries: int) -> None:
            # From the listing thread: progress (objects listed so far) on the loop; a job
            # interrupted (the daemon stopping) ends the listing at the next page instead
            # of keeping the process alive until the bucket is listed.
            if abort.is_set():
                raise _Aborted
            if ctx is not None:
                loop.call_soon_threadsafe(lambda: ctx.progress(processed=entries, total=None))

        # One sync of a bucket at a time; the catalog's side of the diff (folders, rows) is
        # read while the bucket lists, so an unchanged sync costs little beyond its LISTs.
        async with self.writer.lock(src.id):
            task = asyncio.ensure_future(asyncio.to_thread(kind.list_prefix, "", on_page))
            known = asyncio.ensure_future(self._known(src))
            try:
                listing: Listing = await asyncio.shield(task)
            except BaseException as exc:
                known.cancel()
                with contextlib.suppress(BaseException):
                    await known
                if isinstance(exc, asyncio.CancelledError):
                    abort.set()
                    with contextlib.suppress(BaseException):
                        await task
                    raise
                if not isinstance(exc, S3Error):
                    raise
                err = exc
                online = err.reason in _TRANSIENT
                await self.sources.set_status(src, online, str(err))
                log.warning("bucket sync failed; nothing changed", source=src.name,
                            reason=err.reason, error=str(err))
                raise JobFailed(f"{src.name}: {err}", {"reason": err.reason}) from None
            listed = len(listing.entries)
            listed_at = time.monotonic()
            if ctx is not None:
                ctx.progress(processed=listed, total=listed)
            mapping, rows, read_seconds = await known
            report = await self._apply(src, listing, pass_started, force, retry, mapping,
                                       rows)
        done = time.monotonic()
        report.update(listed=listed, pages=listing.pages, complete=listing.complete,
                      skipped=len(listing.skipped), seconds=round(done - started, 3),
                      list_seconds=round(listed_at - started, 3),
                      apply_seconds=round(done - listed_at, 3),
                      catalog_read_seconds=round(read_seconds, 3))
        if listing.skipped:
            report["skipped_keys"] = listing.skipped[:20]
        if not listing.complete:
            report["held_back"] = {"reason": listing.reason, "message":
                                   f"the listing is not complete ({listing.message}); "
                                   "nothing was marked missing or removed"}
            await self.sources.set_status(src, True, f"last sync incomplete: {listing.message}")
        elif "held_back" not in report:
            await self.sources.set_status(src, True, None)
            await self.sources.mark_scanned(src)
        else:
            await self.sources.set_status(src, True, report["held_back"]["message"])
        self.sources.bus.publish("source", "synced", {
            "id": src.id, "name": src.name, "new": report["new"], "changed": report["changed"],
            "missing": report["missing"], "removed": report["removed"],
            "complete": listing.complete})
        log.info("bucket listed", source=src.name, **{k: v for k, v in report.items()
                                                      if isinstance(v, int | bool | float)})
        return report

    async def _known(self, src: Source) -> tuple[dict[str, Any], list[Any], float]:
        """The catalog's side of a sync: the source's folders and, per photo, what the diff
        compares (its fingerprint and state; sha256 and error only for missing rows, which
        need them to be restored), and how long reading them took."""
        started = time.monotonic()
        mapping = await self.writer.folder_map(src)
        missing = P.c.status == "missing"
        async with self.db.engine.connect() as conn:
            rows = (await conn.execute(sa.select(
                P.c.id, P.c.folder_id, P.c.name, P.c.size, P.c.mtime_ns, P.c.etag, P.c.status,
                sa.case((missing, P.c.sha256), else_=None).label("sha256"),
                sa.case((missing, P.c.error), else_=None).label("error"),
                P.c.error_reason, P.c.missing_since)
                .where(P.c.source_id == src.id))).all()
        return mapping, list(rows), time.monotonic() - started

    async def _apply(self, src: Source, listing: Listing, pass_started: Any,
                     force: bool, retry: bool, mapping: dict[str, Any],
                     rows: list[Any]) -> dict[str, Any]:
        diff_started = time.monotonic()
        rel_of = {info.id: rel for rel, info in mapping.items()}
        by_rel: dict[str, Any] = {}
        for row in rows:
            folder = rel_of.get(row.folder_id, "")
            by_rel[f"{folder}/{row.name}" if folder else row.name] = row
        new: list[tuple[str, str, Entry]] = []
        changed: list[tuple[Any, Entry]] = []
        restored: list[Any] = []
        live_folders: set[str] = set()
        pop = by_rel.pop
        for e in listing.entries:
            rel = e.rel
            folder = rel.rpartition("/")[0]
            if folder and folder not in live_folders:    # its ancestors once per folder
                live_folders.update(_folders_of(rel))
            row = pop(rel, None)
            if row is None:
                new.append((folder, rel.rpartition("/")[2], e))
            elif row.size != e.size or row.mtime_ns != e.mtime_ns or row.etag != e.tag:
                changed.append((row, e))
            elif retry and row.status == "error" and row.error_reason in TRANSFER_REASONS:
                changed.append((row, e))      # asked for: its failed read is tried again
            elif row.status == "missing":
                restored.append(row)
        gone = list(by_rel.values())
        vanishing = [r for r in gone if r.status != "missing"]
        to_remove = [r for r in gone if r.status == "missing"
                     and r.missing_since is not None and r.missing_since < pass_started]
        live = sum(1 for r in rows if r.status != "missing")
        retried = sum(1 for row, e in changed if (row.size, row.mtime_ns, row.etag)
                      == (e.size, e.mtime_ns, e.tag))
        diff_seconds = time.monotonic() - diff_started
        report: dict[str, Any] = {"new": len(new), "changed": len(changed) - retried,
                                  "retried": retried, "diff_seconds": round(diff_seconds, 3),
                                  "restored": len(restored), "missing": 0, "removed": 0}
        held: dict[str, Any] | None = None
        allowed = vanishing
        if listing.complete and not listing.entries and live and not force:
            held = {"reason": EMPTY_LISTING,
                    "message": f"the bucket lists empty but the catalog has {live} photos "
                               "from it; nothing was removed (sync with force=true if it "
                               "was emptied on purpose)"}
        elif listing.complete:
            # The same mass-vanish guard as local roots: a complete listing covers every
            # folder of the bucket. ``force`` is the user's confirmation.
            guard = self.sources.guard
            if force:
                guard.forget(src.id)
            else:
                covered = {i.id for i in mapping.values()}
                ok = set(guard.decide(src, [(r.id, r.folder_id) for r in vanishing],
                                      covered, live))
                allowed = [r for r in vanishing if r.id in ok]
                suspect = len(vanishing) - len(allowed)
                if suspect:
                    report["suspect"] = suspect
                    held = {"reason": MASS_VANISH, "message":
                            f"{suspect} of {live} photos would vanish at once (more than "
                            f"{vanish.limit(live)}); they are held as suspect, not removed. "
                            "A later sync confirms them after a while; sync with "
                            "force=true (or `lightbox roots confirm`) if it is real"}
        # What is new or changed is recorded in any case, a batch per transaction.
        for start in range(0, max(len(new), len(changed), len(restored)), WRITE_BATCH):
            touched: set[int] = set()
            async with self.db.engine.begin() as conn:
                await self.writer.apply_objects(
                    conn, src, new[start:start + WRITE_BATCH],
                    changed[start:start + WRITE_BATCH], restored[start:start + WRITE_BATCH],
                    touched)
                await self.writer.recount(conn, touched)
            self.writer.changes.folders(src.id, touched)
            self.indexer.wake()
        if listing.complete and (held is None or held["reason"] == MASS_VANISH):
            touched = set()
            if allowed or to_remove or (held is None and self._folders_to_retire(
                    mapping, live_folders)):
                async with self.db.engine.begin() as conn:
                    if allowed:
                        await self.writer.mark_missing(conn, src, allowed, touched)
                    if to_remove:
                        await self.writer.delete_photos(conn, src, to_remove, touched)
                    if held is None:
                        await self.writer.retire_folders(conn, src, live_folders,
                                                         pass_started, touched)
                    if touched:
                        await self.writer.recount(conn, touched)
            if touched:
                self.writer.changes.folders(src.id, touched)
            report["missing"], report["removed"] = len(allowed), len(to_remove)
        if held is not None:
            report["held_back"] = held
        await self.writer.rollup(src)    # a read; it writes only totals that differ
        return report

    @staticmethod
    def _folders_to_retire(mapping: dict[str, Any], live: set[str]) -> bool:
        """Whether ``retire_folders`` may have anything to do: every folder but the top one
        is under listed keys and not marked missing, else it does (an unchanged sync opens
        no write transaction)."""
        return any(rel != "" and (rel not in live or info.missing_since is not None)
                   for rel, info in mapping.items())

    async def _wait_indexed(self, src: Source, ctx: JobContext) -> dict[str, Any]:
        """Follow the indexer until this bucket's pending photos are read (as ``scan``)."""
        ids = [src.id]
        total = await self.indexer.pending(ids)
        total_bytes = await self._pending_bytes(src)
        ctx.phase = "processing"
        ctx.progress(processed=0, total=total)
        self.indexer.wake()
        while True:
            left = await self.indexer.pending(ids)
            left_bytes = await self._pending_bytes(src)
            ctx.progress(processed=max(0, total - left), total=max(total, left),
                         bytes_=max(0, total_bytes - left_bytes))
            if left == 0 or not src.online:
                break
            pause = self.indexer.pause
            if pause is not None:
                raise JobFailed(f"indexing paused: {pause.message}",
                                {"reason": pause.verdict.reason})
            if await self.indexer.only_retrying(ids) and not self.indexer.backlog.ending(ids):
                break   # what is left waits on the machine: it follows by itself
            await self.indexer.wait_progress(1.0)
        self.indexer.changes.flush()
        retrying = self.indexer.backlog.reasons(ids)
        return {"processed": max(0, total - sum(retrying.values())), "retrying": retrying}

    async def _pending_bytes(self, src: Source) -> int:
        async with self.db.engine.connect() as conn:
            return int(await conn.scalar(sa.select(sa.func.coalesce(sa.func.sum(P.c.size), 0))
                                         .where(P.c.status == "pending",
                                                P.c.source_id == src.id)) or 0)


class BucketScheduler:
    """Each bucket syncs on its interval (default 24 h) after its last complete sync; one
    that failed is tried again after ``RETRY_FAILED`` (or its interval, if shorter). It
    sleeps until the next bucket is due (at most ``TICK``), and is poked when one is added."""

    name = "buckets"
    TICK = 60.0
    MIN_SLEEP = 1.0
    RETRY_FAILED = 900.0

    def __init__(self, sources: Sources, jobs: Any) -> None:
        self.sources = sources
        self.jobs = jobs
        self._task: asyncio.Task[None] | None = None
        self._tried: dict[int, float] = {}
        self._poke = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="buckets")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass

    def status(self) -> dict[str, Any]:
        return {"buckets": len(self.sources.buckets())}

    def mark_tried(self, source_id: int) -> None:
        """A sync of this bucket was just queued by hand: the schedule counts from now."""
        self._tried[source_id] = time.monotonic()

    def poke(self) -> None:
        """A bucket was added or changed: look at the schedule now."""
        self._poke.set()

    async def _run(self) -> None:
        while True:
            delay = self.TICK
            try:
                delay = await self.tick()
            except Exception:
                log.exception("bucket schedule check failed")
            self._poke.clear()
            try:
                await asyncio.wait_for(self._poke.wait(),
                                       max(self.MIN_SLEEP, min(self.TICK, delay)))
            except TimeoutError:
                pass

    async def tick(self) -> float:
        """Queue the syncs that are due; returns the seconds until the next one is."""
        now_wall = utcnow()
        now = time.monotonic()
        soonest = self.TICK
        for src in self.sources.buckets():
            every = src.interval
            if every <= 0:
                continue
            last = src.scanned_at
            left = 0.0 if last is None else every - (now_wall - _aware(last)).total_seconds()
            tried = self._tried.get(src.id)
            retry_in = 0.0 if tried is None else min(every, self.RETRY_FAILED) - (now - tried)
            wait_for = max(left, retry_in)
            if wait_for <= 0:
                self._tried[src.id] = now
                await self.jobs.submit("sync", {"source": src.id})
                wait_for = min(every, self.RETRY_FAILED)
            soonest = min(soonest, wait_for)
        return soonest


def _aware(when: Any) -> Any:
    """A stored timestamp as ``utcnow`` gives them: naive UTC (MariaDB drops the zone)."""
    return when.replace(tzinfo=None)
