"""Walking a root and bringing the catalog in line with what is on disk.

Incremental by design: a file whose (size, mtime_ns, inode) match the catalog is not opened;
only new and changed files become ``pending`` for the indexer. Directory listings run in a
thread (``os.scandir`` + ``stat``), the comparison against the catalog in batches of folders
(one query per batch, not per file).

What the walk cannot see is never taken as deleted:

- vanished photos are only marked missing at the end of a complete pass, only in folders
  that were listed successfully, and only if the root is still online at that point;
- a photo already missing before this pass began, and still not found, is removed (the
  second pass "confirms" it);
- a new file whose inode matches a catalog photo whose old path is gone is that photo,
  moved: it keeps its id, hashes, thumbnails and history.

Symbolic links to directories are followed, with loops detected by (device, inode); names
that are not valid UTF-8, unreadable folders and paths too long to open are reported and
skipped, never fatal.
"""

from __future__ import annotations

import asyncio
import os
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from lightbox.common import logs
from lightbox.daemon.catalog import paths, tables
from lightbox.daemon.catalog.database import Database
from lightbox.daemon.catalog.types import utcnow
from lightbox.daemon.library import ignore as policy
from lightbox.daemon.library import plan, vanish
from lightbox.daemon.library.changes import ChangeFeed
from lightbox.daemon.library.listing import FileEntry, Listing, ignored, list_many
from lightbox.daemon.library.sources import Source, Sources
from lightbox.daemon.library.writer import CatalogWriter, FolderInfo
from lightbox.daemon.workers.pool import PoolClosed, WorkerCrashed, WorkerPool, WorkerTimeout

log = logs.get("scanner")

P, F = tables.photos, tables.folders

BATCH_DIRS = 32
POOL_LISTING_DIRS = 64  # passes over more folders than this list them in worker processes
PARALLEL_BATCHES = 4
MAX_PROBLEMS = 100
class Offline(Exception):
    """The root cannot be trusted right now; nothing was changed under it."""


@dataclass
class ScanReport:
    folders: int = 0
    files: int = 0
    new: int = 0
    changed: int = 0
    moved: int = 0
    restored: int = 0
    missing: int = 0
    removed: int = 0
    skipped: int = 0
    suspect: int = 0
    problems: list[str] = field(default_factory=list)
    # Names never opened, with why: "symlink" (links are not followed), "not_regular" (a
    # FIFO, socket or device, whatever its name).
    skipped_files: list[dict[str, str]] = field(default_factory=list)

    def problem(self, text: str) -> None:
        if len(self.problems) < MAX_PROBLEMS:
            self.problems.append(text)
        log.warning("scan problem", problem=text)

    def skip(self, path: str, reason: str) -> None:
        self.skipped += 1
        if len(self.skipped_files) < MAX_PROBLEMS:
            self.skipped_files.append({"path": path, "reason": reason})
        log.info("skipped, never opened", path=path, reason=reason)

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


def _settled(mapping: dict[str, FolderInfo], lst: Listing) -> bool:
    """The folder of ``lst`` and its subfolders are in the catalog and not missing: ensuring
    them would write nothing."""
    info = mapping.get(lst.rel)
    if info is None or info.missing_since is not None:
        return False
    for d in lst.dirs:
        child = mapping.get(f"{lst.rel}/{d}" if lst.rel else d)
        if child is None or child.missing_since is not None:
            return False
    return True


class Scanner:
    name = "scanner"
    settings_keys = ("roots.*.ignore",)

    def __init__(self, db: Database, sources: Sources, writer: CatalogWriter,
                 changes: ChangeFeed, wake_indexer: Callable[[], None],
                 pool: WorkerPool | None = None) -> None:
        self.pool = pool
        self.db = db
        self.sources = sources
        self.writer = writer
        self.changes = changes
        self.wake_indexer = wake_indexer
        self._passes: dict[int, asyncio.Lock] = {}
        self.ignore: dict[int, tuple[str, ...]] = {}  # roots.<id>.ignore

    async def apply(self, changes: dict[str, Any]) -> None:
        """A root's new ignore patterns are used by its next pass (whose listings then
        differ, so every folder is read again and matching photos leave as gone)."""
        for key, value in changes.items():
            root = int(key.split(".")[1])
            if value:
                self.ignore[root] = tuple(value)
            else:
                self.ignore.pop(root, None)

    async def _list(self, source: Source, batch: list[str], exclude: frozenset[str],
                    full: bool, in_pool: bool) -> list[Listing]:
        mapping = await self.writer.folder_map(source)
        expected = {} if full else {rel: info.listing_hash for rel in batch
                                    if (info := mapping.get(rel)) and info.listing_hash}
        if in_pool and self.pool is not None:
            try:
                result: list[Listing] = await self.pool.submit(
                    list_many, source.path, batch, exclude, expected,
                    self.ignore.get(source.id, ()))
                return result
            except (PoolClosed, WorkerCrashed, WorkerTimeout):
                pass  # the pool is stopping or unwell: list here instead
        return await asyncio.to_thread(list_many, source.path, batch, exclude, expected,
                                       self.ignore.get(source.id, ()))

    async def move_file(self, source: Source, src_rel: str, dst_rel: str) -> bool:
        """A rename seen by the watcher: move the photo's row. False when there is no row to
        move (the old name was never indexed) or the new file is not there."""
        src_folder, dst_folder = paths.parent(src_rel) or "", paths.parent(dst_rel) or ""
        if policy.ignored_path(dst_rel) or any(
                ignored(part, self.ignore.get(source.id, ())) for part in dst_rel.split("/")):
            return False
        try:
            st = await asyncio.to_thread(os.stat, paths.join(source.path, dst_rel))
        except OSError:
            return False
        touched: set[int] = set()
        async with self.writer.transaction(source) as conn:
            mapping = await self.writer.folder_map(source)
            old = mapping.get(src_folder)
            if old is None:
                return False
            row = (await conn.execute(sa.select(
                P.c.id, P.c.folder_id, P.c.name, P.c.size, P.c.mtime_ns, P.c.inode,
                P.c.status, P.c.sha256, P.c.error).where(
                P.c.folder_id == old.id, P.c.name == paths.basename(src_rel)))).first()
            if row is None:
                return False
            folder = await self.writer.ensure_folder(conn, source, dst_folder, touched)
            await self.writer.move_photo(conn, source, row, folder, paths.basename(dst_rel),
                                         (st.st_size, st.st_mtime_ns, st.st_ino), touched)
            await self.writer.recount(conn, touched)
        self.changes.folders(source.id, touched)
        self.writer.rollup_soon(source)
        if (row.size, row.mtime_ns) != (st.st_size, st.st_mtime_ns):
            self.wake_indexer()
        return True

    async def ensure_online(self, source: Source) -> None:
        reason = await self.sources.check(source)
        await self.sources.set_online(source, reason)
        if reason is not None:
            raise Offline(reason)

    async def scan(self, source: Source, start: str = "", *, recursive: bool = True,
                   full: bool = False, confirm: bool = True,
                   exclude: frozenset[str] = frozenset(),
                   progress: Callable[[ScanReport], None] | None = None) -> ScanReport:
        """One pass over ``source`` from folder ``start`` (relative path).

        ``confirm``: a full pass, whose end marks vanished photos missing and removes those
        a previous pass already found missing. Watcher passes (``confirm=False``) mark
        missing and never remove.

        One pass per root at a time: a pass carries what it found gone from batch to batch
        until its end, and a second pass over the same root (a resumed scan job beside the
        start-up one, a watcher pass) would act on rows the first had moved meanwhile.
        """
        async with self._passes.setdefault(source.id, asyncio.Lock()):
            return await self._scan(source, start, recursive=recursive, full=full,
                                    confirm=confirm, exclude=exclude, progress=progress)

    async def _scan(self, source: Source, start: str, *, recursive: bool, full: bool,
                    confirm: bool, exclude: frozenset[str],
                    progress: Callable[[ScanReport], None] | None) -> ScanReport:
        report = ScanReport()
        patterns = self.ignore.get(source.id, ())
        if policy.ignored_folder_path(start) or (start and any(
                ignored(part, patterns) for part in start.split("/"))):
            report.problem(f"{paths.join(source.path, start)} is an ignored folder (hidden, "
                           "NAS or OS metadata, or the root's ignore patterns): not scanned")
            return report
        await self.ensure_online(source)
        pass_started = utcnow()
        visited: set[tuple[int, int]] = set()
        listed: set[str] = set()  # folders listed completely
        seen: set[str] = set()  # folders that exist on disk
        vanished: list[Any] = []
        # Their ids, kept beside the list: each batch's move check asks them (a set built
        # from the list per batch was quadratic in a pass that renames every photo).
        vanished_ids: set[int] = set()
        moved_ids: set[int] = set()
        # Folders whose listing matched its digest: their photos already missing are read
        # once at the end of the pass (``_vanish``), not batch by batch.
        unchanged_ids: list[int] = []
        # Digests of folders with photos gone: recorded by ``_vanish``, in the transaction
        # that marks those photos missing, never before (a kill in between would leave a
        # digest saying the catalog matches a listing it does not match).
        deferred: dict[int, str] = {}
        queue: deque[str] = deque([start])
        seen.add(start)
        # Big passes list directories in the worker processes, several batches at once (the
        # stat per file is the whole cost of a rescan), and one batch at a time in a thread
        # of the daemon itself: the workers run niced, so on a machine busy with other work
        # they get a small share of it, and the thread keeps the pass going at the daemon's
        # share (on an idle machine it is one more lister). Small passes list in a thread.
        # Batches are taken as they come back, whichever lister was quicker.
        in_pool = recursive and len(await self.writer.folder_map(source)) > POOL_LISTING_DIRS
        width = PARALLEL_BATCHES if in_pool else 1
        in_flight: dict[asyncio.Task[list[Listing]], bool] = {}  # -> listed in a thread here
        loop = asyncio.get_running_loop()
        try:
            while queue or in_flight:
                while queue and len(in_flight) < width:
                    batch = [queue.popleft() for _ in range(min(BATCH_DIRS, len(queue)))]
                    here = not in_pool or not any(in_flight.values())
                    in_flight[loop.create_task(self._list(
                        source, batch, exclude, full, in_pool and not here))] = here
                done, _ = await asyncio.wait(in_flight, return_when=asyncio.FIRST_COMPLETED)
                for task in [t for t in in_flight if t in done]:
                    del in_flight[task]
                    if not await self._take(source, start, recursive, full, task.result(),
                                            report, visited, listed, seen, queue, vanished,
                                            vanished_ids, moved_ids, deferred, unchanged_ids,
                                            progress):
                        return report
        finally:
            for task in in_flight:
                task.cancel()
        # The end of the pass: only now, and only if the root is still there, does anything
        # that was not found change state.
        try:
            await self.ensure_online(source)
        except Offline:
            report.problem("root went offline during the scan; nothing marked missing")
            raise
        await self._vanish(source, start, recursive, confirm, pass_started, listed, seen,
                           vanished, moved_ids, deferred, unchanged_ids, report)
        if confirm:
            await self.writer.rollup(source)
        else:
            self.writer.rollup_soon(source)
        if confirm and start == "":
            await self.sources.mark_scanned(source)
        self.wake_indexer()
        return report

    async def _take(self, source: Source, start: str, recursive: bool, full: bool,
                    listings: list[Listing], report: ScanReport,
                    visited: set[tuple[int, int]], listed: set[str], seen: set[str],
                    queue: deque[str], vanished: list[Any], vanished_ids: set[int],
                    moved_ids: set[int], deferred: dict[int, str], unchanged_ids: list[int],
                    progress: Callable[[ScanReport], None] | None) -> bool:
        """One batch of listings back: report its problems, queue its subfolders, apply it
        (``_apply``). False when ``start`` itself is not there (the pass ends)."""
        kept: list[Listing] = []
        for lst in listings:
            if lst.gone and lst.rel == start:
                if start == "":
                    await self.ensure_online(source)  # raises Offline
                report.problem(f"{paths.join(source.path, start)} is not there")
                return False
            if lst.key is not None:
                if lst.key in visited:
                    report.problem(f"{paths.join(source.path, lst.rel)}: directory already "
                                   "visited (symbolic link loop?); skipped")
                    continue
                visited.add(lst.key)
            for text in lst.problems:
                report.problem(text)
            for name, why in lst.skipped:
                report.skip(paths.join(source.path, lst.rel, name), why)
            kept.append(lst)
            if lst.gone:
                seen.discard(lst.rel)
                continue
            if lst.complete:
                listed.add(lst.rel)
            if recursive:
                for d in lst.dirs:
                    child = f"{lst.rel}/{d}" if lst.rel else d
                    seen.add(child)
                    queue.append(child)
        listings = kept
        wrote = await self._apply(source, listings, full, report, vanished, vanished_ids,
                                  moved_ids, deferred, unchanged_ids, listed)
        report.folders += len(listings)
        if progress:
            progress(report)
        if wrote:
            # What the batch made pending is read while the walk goes on. A batch that
            # wrote nothing queued nothing: waking the indexer for it cost two queries
            # on the event loop per batch of an unchanged rescan (the pass's end wakes
            # it in any case).
            self.wake_indexer()
            # Subtree totals (what the tree and roots.list show) follow a long pass too.
            self.writer.rollup_soon(source, delay=5.0)
        return True

    async def _apply(self, source: Source, listings: list[Listing], full: bool,
                     report: ScanReport, vanished: list[Any], vanished_ids: set[int],
                     moved_ids: set[int], deferred: dict[int, str], unchanged_ids: list[int],
                     listed: set[str]) -> bool:
        """One batch of listings: read the rows, plan (``plan``, pure), have the writer
        apply it, with counts and digests, in one transaction. True when it wrote (or
        could have written) anything.

        A batch of folders that all match their digests, all known and present in the
        catalog with their subfolders, has nothing to read or write: no transaction at all
        (on a rescan of an unchanged tree that is every batch; their BEGIN, read and COMMIT
        were a third of the event loop's time)."""
        live = [lst for lst in listings if not lst.gone]
        mapping = await self.writer.folder_map(source)
        if all(lst.unchanged and _settled(mapping, lst) for lst in live):
            report.files += sum(lst.count for lst in live)
            unchanged_ids.extend(mapping[lst.rel].id for lst in live)
            return False
        touched: set[int] = set()
        async with self.writer.transaction(source) as conn:
            infos: dict[str, FolderInfo] = {}
            for lst in listings:
                if lst.gone:
                    continue
                infos[lst.rel] = await self.writer.ensure_folder(conn, source, lst.rel, touched)
                for d in lst.dirs:
                    child = f"{lst.rel}/{d}" if lst.rel else d
                    await self.writer.ensure_folder(conn, source, child, touched)
            # A folder whose listing has the digest recorded when the catalog last matched
            # it is unchanged: its rows need not even be read.
            same = [lst for lst in live if lst.unchanged]
            report.files += sum(lst.count for lst in same)
            unchanged_ids.extend(infos[lst.rel].id for lst in same)
            todo = [lst for lst in live if not lst.unchanged]
            existing = await self._rows_of(conn, [infos[lst.rel].id for lst in todo])
            plans = [plan.plan_folder(infos[lst.rel].id, lst, existing[infos[lst.rel].id],
                                      full, moved_ids) for lst in todo]
            report.files += sum(p.files for p in plans)
            # Photos not found change state only at the end of the pass (``_vanish``):
            # after the root was checked again, and through the mass-vanish guard. This
            # batch's are known now, for its move check.
            gone = [r for p in plans for r in p.gone]
            vanished_ids.update(r.id for r in gone)
            moves: list[plan.Move] = []
            inserts: list[tuple[int, FileEntry]] = []
            if any(p.new for p in plans):
                moves, inserts = await self._moves(conn, source, plans, moved_ids, listed,
                                                   vanished_ids)
            counts = await self.writer.apply_plans(conn, source, plans, moves, inserts, touched)
            for key, n in counts.items():
                setattr(report, key, getattr(report, key) + n)
            vanished.extend(gone)
            gone_in = {r.folder_id for r in gone if r.status != "missing"}
            if touched:
                await self.writer.recount(conn, touched)
            # What was just reconciled matches its listing now; a folder with photos gone
            # matches it once they are marked missing, so its digest waits for that.
            digests = {p.folder_id: p.digest for p in plans if p.digest is not None}
            deferred.update((fid, h) for fid, h in digests.items() if fid in gone_in)
            await self.writer.remember_listings(conn, {
                fid: h for fid, h in digests.items() if fid not in gone_in})
        if touched:
            self.changes.folders(source.id, touched)
        return True

    async def _rows_of(self, conn: Any, folder_ids: list[int]) -> dict[int, dict[str, Any]]:
        """The photo rows of these folders, by folder and name."""
        existing: dict[int, dict[str, Any]] = {fid: {} for fid in folder_ids}
        for start in range(0, len(folder_ids), 500):
            for row in await conn.execute(sa.select(
                    P.c.id, P.c.folder_id, P.c.name, P.c.size, P.c.mtime_ns, P.c.inode,
                    P.c.status, P.c.sha256, P.c.error, P.c.missing_since)
                    .where(P.c.folder_id.in_(folder_ids[start:start + 500]))):
                existing[row.folder_id][row.name] = row
        return existing

    async def _moves(self, conn: Any, source: Source, plans: list[plan.FolderPlan],
                     moved_ids: set[int], listed: set[str], gone: set[int]
                     ) -> tuple[list[plan.Move], list[tuple[int, FileEntry]]]:
        """Which new names are photos the catalog knows, moved (``plan.plan_moves``)."""
        inodes = sorted({e.inode for p in plans for e in p.new})
        candidates: dict[int, list[Any]] = {}
        for start in range(0, len(inodes), 500):
            for row in await conn.execute(sa.select(
                    P.c.id, P.c.folder_id, P.c.name, P.c.size, P.c.mtime_ns, P.c.inode,
                    P.c.status, P.c.sha256, P.c.error).where(
                    P.c.source_id == source.id, P.c.inode.in_(inodes[start:start + 500]))):
                candidates.setdefault(row.inode, []).append(row)
        if not candidates:
            return [], [(p.folder_id, e) for p in plans for e in p.new]
        folder_rel = {info.id: rel for rel, info in (await self.writer.folder_map(source)).items()}
        olds = plan.move_sources(source.path, plans, candidates, folder_rel, listed)
        present = await asyncio.to_thread(
            lambda: {p for p in olds if os.path.lexists(p)}) if olds else set()
        movable = plan.movable(source.path, candidates, folder_rel, listed, gone, present)
        moves, inserts = plan.plan_moves(plans, movable, moved_ids)
        moved_ids.update(m.row.id for m in moves)
        return moves, inserts

    async def _missing_in(self, conn: Any, folder_ids: list[int], vanished: list[Any],
                          confirm: bool) -> None:
        """Photos already missing in folders skipped as unchanged: a confirming pass must
        still see them, to remove them. Read at the end of the pass, in its last
        transaction: a photo that came back meanwhile (a watcher pass) is no longer
        missing there."""
        if not confirm:
            return
        folder_ids = sorted(set(folder_ids))
        for start in range(0, len(folder_ids), 500):
            vanished.extend((await conn.execute(sa.select(
                P.c.id, P.c.folder_id, P.c.name, P.c.status, P.c.missing_since).where(
                P.c.status == "missing", P.c.folder_id.in_(folder_ids[start:start + 500]))
            )).all())

    async def _vanish(self, source: Source, start: str, recursive: bool, confirm: bool,
                      pass_started: Any, listed: set[str], seen: set[str],
                      vanished: list[Any], moved_ids: set[int], deferred: dict[int, str],
                      unchanged_ids: list[int], report: ScanReport) -> None:
        """End of pass: photos and folders that were not found change state."""
        mapping = await self.writer.folder_map(source)
        touched: set[int] = set()
        # Folders that exist in the catalog below ``start`` but were not seen, whose parent
        # was listed completely (so their absence is a fact, not a failure to look).
        lost_folders: list[tuple[str, Any]] = []
        if recursive:
            prefix = start + "/" if start else ""
            for rel, info in mapping.items():
                if rel in seen or rel == "" or (start and not rel.startswith(prefix)):
                    continue
                # Its nearest ancestor that the walk saw must have been listed completely.
                up = paths.parent(rel)
                while up is not None and up not in seen:
                    up = paths.parent(up)
                if up is not None and up in listed:
                    lost_folders.append((rel, info))
        async with self.writer.transaction(source) as conn:
            if unchanged_ids:
                await self._missing_in(conn, unchanged_ids, vanished, confirm)
            gone_rows = [r for r in vanished if r.id not in moved_ids]
            if lost_folders:
                lost_ids = [info.id for _, info in lost_folders]
                for chunk_start in range(0, len(lost_ids), 500):
                    gone_rows += (await conn.execute(sa.select(
                        P.c.id, P.c.folder_id, P.c.name, P.c.status, P.c.missing_since)
                        .where(P.c.folder_id.in_(lost_ids[chunk_start:chunk_start + 500])))).all()
            live = {r.id: r for r in gone_rows if r.status != "missing"}
            # Rows found gone in earlier batches may have moved since (a watcher move
            # between two batches): only those still where the pass missed them vanish.
            ids = sorted(live)
            still: set[int] = set()
            for chunk in range(0, len(ids), 500):
                still.update(pid for pid, fid in await conn.execute(sa.select(
                    P.c.id, P.c.folder_id).where(P.c.id.in_(ids[chunk:chunk + 500]),
                                                 P.c.status != "missing"))
                    if fid == live[pid].folder_id)
            live = {pid: r for pid, r in live.items() if pid in still}
            covered = {mapping[rel].id for rel in listed if rel in mapping}
            covered.update(info.id for _, info in lost_folders)
            # A photo seen again by this pass is no longer suspect: the guard needs to hear
            # of passes that found nothing gone, too.
            total = await self._live_count(conn, source) if len(live) > vanish.MIN_HELD else 0
            allowed = set(self.sources.guard.decide(
                source, [(r.id, r.folder_id) for r in live.values()], covered, total))
            to_mark = [r for pid, r in live.items() if pid in allowed]
            held = len(live) - len(to_mark)
            if held:
                report.suspect += held
                report.problem(f"{held} photos not found are held as suspect (more than "
                               f"{vanish.limit(total)} at once); nothing under them changes "
                               "until a later pass confirms, or `lightbox roots confirm`")
            to_remove = [r for r in gone_rows if r.status == "missing" and confirm
                         and r.missing_since is not None and r.missing_since < pass_started]
            if to_mark:
                await self.writer.mark_missing(conn, source, to_mark, touched)
                report.missing += len(to_mark)
            if to_remove:
                await self.writer.delete_photos(conn, source, to_remove, touched)
                report.removed += len(to_remove)
            # While photos are held, no folder is taken for lost either.
            for rel, info in sorted(lost_folders if not held else [], key=lambda x: -len(x[0])):
                if info.missing_since is None:
                    await self.writer.mark_folders_lost(conn, [info], touched)
                elif confirm and info.missing_since < pass_started and \
                        await self.writer.remove_folder_if_empty(conn, source, rel, info):
                    touched.discard(info.id)
                if info.parent_id is not None:
                    touched.add(info.parent_id)
            existing_ids = {i.id for i in mapping.values()}
            touched &= existing_ids
            if touched:
                await self.writer.recount(conn, touched)
            # Folders whose gone photos are all marked missing now match their listings.
            unsettled = {r.folder_id for pid, r in live.items() if pid not in allowed}
            await self.writer.remember_listings(conn, {
                fid: h for fid, h in deferred.items()
                if fid not in unsettled and fid in existing_ids})
        if touched:
            self.changes.folders(source.id, touched)

    async def _live_count(self, conn: Any, source: Source) -> int:
        """Photos of the root that are not missing (what the guard's share is of)."""
        return int(await conn.scalar(sa.select(sa.func.count()).select_from(P).where(
            P.c.source_id == source.id, P.c.status != "missing")) or 0)

    async def confirm_vanished(self, source: Source) -> int:
        """``roots.confirm``: the photos held as suspect become missing now (a later
        confirming pass removes them, if they are still not there)."""
        ids = self.sources.guard.take(source)
        touched: set[int] = set()
        marked: list[Any] = []
        async with self.writer.transaction(source) as conn:
            for start in range(0, len(ids), 500):
                marked += (await conn.execute(sa.select(
                    P.c.id, P.c.folder_id, P.c.status).where(
                    P.c.id.in_(ids[start:start + 500]), P.c.status != "missing"))).all()
            if marked:
                await self.writer.mark_missing(conn, source, marked, touched)
                await self.writer.recount(conn, touched)
        if touched:
            self.changes.folders(source.id, touched)
            await self.writer.rollup(source)
        return len(marked)
