"""The library's job kinds: ``scan`` and ``cleanup``.

``scan`` walks the requested roots (or one folder) and then waits until the indexer has read
every file the walk queued, so ``lightbox scan --wait`` returns when the catalog is complete:
metadata, hashes and grid thumbnails (a large JPEG's preview follows, ``library.previews``,
or is made when it is first opened). Its progress first counts folders walked, then files indexed.
Files the indexer could not read for the machine's reasons (permission denied, an I/O error)
do not hold it up: its result counts them under ``retrying`` by reason, and the indexer reads
them later by itself. When indexing pauses (a full disk), the job fails at once with that
reason instead of waiting for ever.

When several daemons share the catalog, a scan of one root runs where that root's lease is
(its job's ``affinity``); a scan of the whole library walks this daemon's roots and queues a
scan of each other root for the daemon running it, then waits for those too.

``cleanup`` deletes thumbnails no photo needs: those whose hash no longer appears in the
catalog, and those of photos missing for longer than the configured number of days. It works
one hash prefix (of 256) at a time, so memory stays flat however large the library. A
thumbnail younger than ``CLEANUP_GRACE`` stays whatever the catalog says: a worker writes it
before the indexer commits the photo's hash.

Each daemon has its own thumbnail cache (of the photos it indexed or served), so on a shared
catalog each cleans its own: a cleanup job's affinity is this daemon's cache (``cache_key``:
host and directory), only the daemon with that cache claims it, and one daemon's queued
cleanup never stands in for another's. What a cache keeps is decided by the whole catalog
(every daemon's photos), so no daemon drops a thumbnail any photo still needs, and an
orphan in any cache goes when that cache's daemon cleans up.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import os
import socket
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from lightbox.common import logs
from lightbox.daemon.catalog import tables
from lightbox.daemon.catalog.database import Database
from lightbox.daemon.catalog.types import utcnow
from lightbox.daemon.jobs.queue import TERMINAL, JobContext, JobFailed, JobQueue
from lightbox.daemon.library.indexer import Indexer
from lightbox.daemon.library.scanner import Offline, Scanner, ScanReport
from lightbox.daemon.library.sources import Source, Sources
from lightbox.daemon.media.thumbs import TEMP_SUFFIX, is_stale_temp

log = logs.get("library")

P = tables.photos
CLEANUP_GRACE = 600.0  # s: a thumbnail this young may belong to a photo not committed yet


class LibraryTasks:
    name = "tasks"
    settings_keys = ("thumbnails.cleanup_days",)

    async def apply(self, changes: dict[str, Any]) -> None:
        """The next cleanup uses the new age."""
        self.cleanup_days = int(changes["thumbnails.cleanup_days"])

    def __init__(self, db: Database, sources: Sources, scanner: Scanner, indexer: Indexer,
                 thumbs_dir: Path, cleanup_days: int) -> None:
        self.db = db
        self.sources = sources
        self.scanner = scanner
        self.indexer = indexer
        self.thumbs_dir = thumbs_dir
        self.cleanup_days = cleanup_days
        self.jobs: JobQueue | None = None  # for the scans of roots other daemons run
        # This daemon's thumbnail cache, as a job affinity: the host and the directory
        # (two daemons of one host configured with one cache directory share it).
        digest = hashlib.sha256(f"{socket.gethostname()}\0{thumbs_dir.resolve()}".encode())
        self.cache_key = f"cache:{digest.hexdigest()[:24]}"

    def targets(self, params: dict[str, Any]) -> list[tuple[Source, str]]:
        """(root, folder relative to it) pairs a scan's parameters name."""
        if params.get("path"):
            found = self.sources.locate(params["path"])
            if found is None:
                raise JobFailed(f"{params['path']} is not inside any root")
            return [found]
        if params.get("root") is not None:
            source = self.sources.resolve(params["root"])
            if source.kind != "local":
                # A bucket has no directory to walk: it is listed by a sync.
                raise JobFailed(f"{source.name} is a bucket: sync it (sources.sync)",
                                {"reason": "not_a_root"})
            return [(source, "")]
        return [(s, "") for s in self.sources.mine()]

    def affinity(self, kind: str, params: dict[str, Any]) -> str | None:
        """Where a job must run when the catalog is shared: a scan of one root, or a sync of
        one bucket, runs on the daemon holding that source's lease; a cleanup on the daemon
        whose thumbnail cache it sweeps."""
        if kind == "cleanup":
            return self.cache_key
        if kind == "sync" and isinstance(params.get("source"), int):
            return f"source:{params['source']}"  # a bucket's sync, where its lease is
        if kind != "scan" or (params.get("root") is None and not params.get("path")):
            return None
        try:
            targets = self.targets(params)
        except Exception:
            return None  # the job itself will say what is wrong
        return f"source:{targets[0][0].id}" if targets else None

    async def _delegate(self, params: dict[str, Any]) -> dict[str, int]:
        """Scan jobs for the roots other daemons run (a whole-library scan), by name."""
        if self.jobs is None or self.sources.owned is None or params.get("root") is not None \
                or params.get("path"):
            return {}
        mine = {s.id for s in self.sources.mine()}
        extra = {"full": True} if params.get("full") else {}
        return {s.name: await self.jobs.submit("scan", {"root": s.id, **extra})
                for s in self.sources.local() if s.id not in mine}

    async def _wait_delegated(self, ctx: JobContext, jobs: dict[str, int]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, job_id in jobs.items():
            assert self.jobs is not None
            ctx.phase = f"waiting for {name}"
            while True:
                job = await self.jobs.wait(job_id, 30.0)
                if job["state"] in TERMINAL:
                    break
            out[name] = {"job": job_id, "state": job["state"], "owner": job["owner"]}
        return out

    async def scan(self, ctx: JobContext) -> dict[str, Any]:
        targets = self.targets(ctx.params)
        full = bool(ctx.params.get("full"))
        reports: dict[str, Any] = {}
        offline: dict[str, str] = {}
        walked = 0

        def on_progress(report: ScanReport) -> None:
            ctx.phase = "walking"
            ctx.progress(processed=walked + report.folders, total=None)

        delegated = await self._delegate(ctx.params)
        for source, rel in targets:
            try:
                report = await self.scanner.scan(source, rel, full=full, progress=on_progress)
            except Offline as exc:
                offline[source.name] = str(exc)
                continue
            walked += report.folders
            reports[source.name] = report.as_dict()
            ctx.progress(add_errors=len(report.problems))
        if targets and len(offline) == len(targets) and not delegated:
            raise JobFailed("offline: " + "; ".join(f"{k}: {v}" for k, v in offline.items()))
        # Now wait for the indexer to read what the walk queued.
        ids = [s.id for s, _ in targets if s.name not in offline]
        total = await self.indexer.pending(ids)
        ctx.phase = "indexing"
        ctx.progress(processed=0, total=total)
        self.indexer.wake()
        while True:
            left = await self.indexer.pending(ids)
            ctx.progress(processed=max(0, total - left), total=max(total, left))
            if left == 0:
                break
            pause = self.indexer.pause
            if pause is not None:
                # Nothing will be read until the cause is gone: say so now, rather than run
                # on silently. The photos stay pending and are read when it resumes.
                raise JobFailed(f"indexing paused: {pause.message} ({pause.verdict.message}); "
                                "it resumes by itself when that is fixed",
                                {"reason": pause.verdict.reason, "paused": pause.describe(),
                                 "roots": reports, "offline": offline})
            if await self.indexer.only_retrying(ids):
                break   # what is left waits for a retry the indexer makes by itself
            await self.indexer.wait_progress(1.0)
        # Catalog events still being merged go out now, before the job's "finished": a
        # script that waits for the job and then reads events sees them all.
        self.indexer.changes.flush()
        changed = sum(r["new"] + r["changed"] + r["removed"] for r in reports.values())
        if changed > 10_000:
            await self.db.analyze(force=True)
        retrying = self.indexer.backlog.reasons(ids)
        result = {"roots": reports, "offline": offline,
                  "indexed": max(0, total - sum(retrying.values())), "retrying": retrying}
        if delegated:
            result["delegated"] = await self._wait_delegated(ctx, delegated)
        return result

    async def cleanup(self, ctx: JobContext) -> dict[str, Any]:
        days = ctx.params.get("days")
        days = self.cleanup_days if days is None else int(days)
        horizon = utcnow() - dt.timedelta(days=days)
        removed = kept = 0
        freed = 0
        ctx.progress(processed=0, total=256)
        for i in range(256):
            prefix = f"{i:02x}"
            async with self.db.engine.connect() as conn:
                rows = (await conn.execute(sa.select(
                    P.c.sha256, sa.or_(P.c.status != "missing", P.c.missing_since > horizon)
                ).where(P.c.sha256.like(f"{prefix}%")))).all()
            wanted = {h for h, keep in rows if keep}
            known = {h for h, _ in rows}
            r, k, f = await asyncio.to_thread(self._sweep_prefix, prefix, wanted, known)
            removed, kept, freed = removed + r, kept + k, freed + f
            ctx.progress(processed=i + 1, add_bytes=f)
        log.info("thumbnail cleanup", removed=removed, kept=kept, freed=freed, days=days)
        return {"removed": removed, "kept": kept, "bytes_freed": freed, "days": days}

    def _sweep_prefix(self, prefix: str, wanted: set[str], known: set[str]
                      ) -> tuple[int, int, int]:
        removed = kept = freed = 0
        young = time.time() - CLEANUP_GRACE
        if not self.thumbs_dir.is_dir():
            return 0, 0, 0
        for size_dir in self.thumbs_dir.iterdir():
            bucket = size_dir / prefix
            if not bucket.is_dir():
                continue
            with os.scandir(bucket) as it:
                entries = list(it)
            for entry in entries:
                stem = entry.name.split(".", 1)[0]
                if entry.name.endswith(TEMP_SUFFIX):
                    # A worker may be writing it right now: only a dead owner's or an old
                    # leftover goes.
                    try:
                        if not is_stale_temp(entry.name, entry.stat().st_mtime):
                            continue
                    except OSError:
                        continue
                elif stem not in known:
                    try:
                        if entry.stat().st_mtime > young:  # its photo may not be committed yet
                            kept += 1
                            continue
                    except OSError:
                        continue
                if entry.name.endswith(TEMP_SUFFIX) or stem not in wanted:
                    try:
                        freed += entry.stat().st_size
                        os.unlink(entry.path)
                        removed += 1
                    except FileNotFoundError:
                        pass
                else:
                    kept += 1
        return removed, kept, freed
