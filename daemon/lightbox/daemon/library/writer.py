"""Changes to the library's rows, with the folder counts kept right.

This module is the only code that writes photo and folder rows (``tests/test_writer_rule.py``
holds every other module of the daemon to it, database copies and migrations aside). The
scanner decides what changes (``plan``), the watcher, the indexer, the roots and the
``photos.*`` handlers ask for it here, so the rules live in one place:

- every change to photos happens in a transaction together with the recount of the folders
  it touched, so a crash never leaves a photo without its folder or a count that is off;
- subtree totals are rolled up per source after a batch (cheap: one pass over the source's
  folders in memory);
- a source is changed by one pass at a time (``lock``), so a watcher event and a scan never
  insert the same file twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from lightbox.common import logs
from lightbox.daemon.catalog import paths, tables
from lightbox.daemon.catalog.database import Database
from lightbox.daemon.catalog.types import natural_key, utcnow
from lightbox.daemon.library.changes import ChangeFeed
from lightbox.daemon.library.listing import FileEntry
from lightbox.daemon.library.plan import FolderPlan, Move, restored_status

if TYPE_CHECKING:  # sources.py writes its roots' rows through this module
    from lightbox.daemon.library.sources import Source

__all__ = ["restored_status"]

log = logs.get("writer")

F, P = tables.folders, tables.photos


@dataclass
class FolderInfo:
    id: int
    parent_id: int | None
    missing_since: dt.datetime | None
    listing_hash: str | None = None


@dataclass(frozen=True)
class Analysed:
    """What the indexer learnt about one photo, to be written back only if the row still has
    the fingerprint it was picked with (still pending, same size and mtime): a file that
    changed again meanwhile stays pending and is read once more."""

    photo_id: int
    size: int  # the fingerprint the photo was picked with
    mtime_ns: int
    values: Mapping[str, Any]  # columns to set


async def write_analyses(conn: AsyncConnection, batch: Sequence[Analysed]) -> int:
    """The indexer's results, in as few statements as their column sets allow; returns how
    many rows were still as picked (and so were written)."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for a in batch:
        # Bind names must differ from column names in an UPDATE's SET clause.
        groups.setdefault(tuple(sorted(a.values)), []).append(
            {"pid": a.photo_id, "old_size": a.size, "old_mtime": a.mtime_ns,
             **{f"v_{k}": v for k, v in a.values.items()}})
    written = 0
    for columns, params in groups.items():
        result = await conn.execute(
            P.update().where(P.c.id == sa.bindparam("pid"), P.c.status == "pending",
                             P.c.size == sa.bindparam("old_size"),
                             P.c.mtime_ns == sa.bindparam("old_mtime"))
            .values({c: sa.bindparam(f"v_{c}") for c in columns}), params)
        written += max(0, result.rowcount or 0)
    return written


async def add_thumbnail(conn: AsyncConnection, photo_id: int, bit: int) -> None:
    """A thumbnail size made on demand is recorded in the photo's bit set."""
    await conn.execute(P.update().where(P.c.id == photo_id).values(
        thumbs=P.c.thumbs.bitwise_or(bit)))


async def add_thumbnails(conn: AsyncConnection, made: Sequence[tuple[int, str]],
                         bits: int) -> None:
    """Sizes made after indexing (``library.previews``), for many photos at once: each
    (photo id, the sha256 they were filed under) gets ``bits``, unless its content changed
    meanwhile (another hash: those thumbnails are not its own)."""
    if not made:
        return
    await conn.execute(
        P.update().where(P.c.id == sa.bindparam("pid"), P.c.sha256 == sa.bindparam("sha"))
        .values(thumbs=P.c.thumbs.bitwise_or(bits)),
        [{"pid": pid, "sha": sha} for pid, sha in made])


async def repend(conn: AsyncConnection, photo_id: int) -> None:
    """The file is not what the row says any more (seen while making a thumbnail): read it
    again."""
    await conn.execute(P.update().where(P.c.id == photo_id).values(status="pending"))


async def insert_root_folder(conn: AsyncConnection, source_id: int, name: str,
                             now: dt.datetime) -> None:
    """A new root's top folder (path "")."""
    await conn.execute(F.insert().values(source_id=source_id, parent_id=None, path="",
                                         path_hash=paths.path_hash(""), name=name, depth=0,
                                         first_seen=now))


async def delete_source_rows(conn: AsyncConnection, source_id: int) -> tuple[int, int]:
    """A root forgotten: its photos and folders leave the catalog; returns their counts."""
    photos = await conn.scalar(sa.select(sa.func.count()).select_from(P)
                               .where(P.c.source_id == source_id))
    folders = await conn.scalar(sa.select(sa.func.count()).select_from(F)
                                .where(F.c.source_id == source_id))
    # Children before parents, explicitly: not every engine cascades the same way.
    await conn.execute(P.delete().where(P.c.source_id == source_id))
    await conn.execute(F.update().where(F.c.source_id == source_id).values(parent_id=None))
    await conn.execute(F.delete().where(F.c.source_id == source_id))
    return int(photos or 0), int(folders or 0)


class CatalogWriter:
    def __init__(self, db: Database, changes: ChangeFeed) -> None:
        self.db = db
        self.changes = changes
        self._folders: dict[int, dict[str, FolderInfo]] = {}
        self._infos: dict[int, FolderInfo] = {}  # folder id -> the same objects, by id
        self._locks: dict[int, asyncio.Lock] = {}
        self._loading: dict[int, asyncio.Lock] = {}
        self._rollups: dict[int, asyncio.TimerHandle] = {}
        self._tasks: set[asyncio.Task[set[int]]] = set()

    def lock(self, source_id: int) -> asyncio.Lock:
        return self._locks.setdefault(source_id, asyncio.Lock())

    @contextlib.asynccontextmanager
    async def transaction(self, source: Source) -> AsyncIterator[AsyncConnection]:
        """One pass's batch: the source's lock and one transaction. When it fails, the
        folders cached during it may name rows that were rolled back: the source's cache
        is dropped and read again at next use."""
        async with self.lock(source.id):
            try:
                async with self.db.engine.begin() as conn:
                    yield conn
            except BaseException:
                self._drop_source_cache(source.id)
                raise

    def _drop_source_cache(self, source_id: int) -> None:
        for info in self._folders.pop(source_id, {}).values():
            self._infos.pop(info.id, None)

    def forget(self, source_id: int) -> None:
        for info in self._folders.pop(source_id, {}).values():
            self._infos.pop(info.id, None)
        self._locks.pop(source_id, None)

    def drop_caches(self) -> None:
        """Forget every cached folder row (the catalog moved to another database); the
        per-source locks stay, a pass holding one keeps it."""
        self._folders.clear()
        self._infos.clear()

    async def folder_map(self, source: Source) -> dict[str, FolderInfo]:
        """rel path -> folder, for one source (loaded once, then kept in step)."""
        cached = self._folders.get(source.id)
        if cached is not None:
            return cached
        # One load at a time per source: two passes starting together (a resumed scan and
        # the start-up one) would each read the table, and the later store would replace a
        # map the other had already added folders to — those folders then look new and are
        # inserted twice.
        async with self._loading.setdefault(source.id, asyncio.Lock()):
            cached = self._folders.get(source.id)
            if cached is not None:
                return cached
            async with self.db.engine.connect() as conn:
                rows = await conn.execute(sa.select(F.c.id, F.c.path, F.c.parent_id,
                                                    F.c.missing_since, F.c.listing_hash).where(
                    F.c.source_id == source.id))
                mapping = {r.path: FolderInfo(r.id, r.parent_id, r.missing_since,
                                              r.listing_hash) for r in rows}
            self._folders[source.id] = mapping
            self._infos.update((info.id, info) for info in mapping.values())
        return mapping

    def path_of(self, source: Source, folder_id: int) -> str:
        """Absolute path of a folder of ``source`` (from the cache)."""
        for rel, info in self._folders.get(source.id, {}).items():
            if info.id == folder_id:
                return paths.join(source.path, rel)
        return source.path

    async def ensure_folder(self, conn: AsyncConnection, source: Source, rel: str,
                            touched: set[int]) -> FolderInfo:
        """The folder row for ``rel``, created (with its ancestors) or revived as needed."""
        mapping = await self.folder_map(source)
        info = mapping.get(rel)
        if info is not None:
            if info.missing_since is not None:
                await conn.execute(F.update().where(F.c.id == info.id)
                                   .values(missing_since=None))
                info.missing_since = None
                if info.parent_id is not None:
                    touched.add(info.parent_id)
            return info
        parent_rel = paths.parent(rel)
        parent = None if parent_rel is None else await self.ensure_folder(
            conn, source, parent_rel, touched)
        name = paths.basename(rel) if rel else source.name
        result = await conn.execute(F.insert().values(
            source_id=source.id, parent_id=parent.id if parent else None, path=rel,
            path_hash=paths.path_hash(rel), name=name, depth=paths.depth(rel),
            first_seen=utcnow()))
        info = FolderInfo(int(result.inserted_primary_key[0]),  # type: ignore[index]
                          parent.id if parent else None, None)
        mapping[rel] = info
        self._infos[info.id] = info
        if parent is not None:
            touched.add(parent.id)
        touched.add(info.id)
        return info

    async def recount(self, conn: AsyncConnection, folder_ids: Iterable[int]) -> None:
        """Direct photo/folder counts and bytes of these folders, from the rows themselves.

        Their rows changed, so their listing digests no longer describe the catalog: cleared.
        """
        ids = sorted(set(folder_ids))
        for fid in ids:
            info = self._infos.get(fid)
            if info is not None:
                info.listing_hash = None
        for start in range(0, len(ids), 500):
            chunk = ids[start:start + 500]
            photos = {r[0]: (int(r[1]), int(r[2] or 0)) for r in await conn.execute(
                sa.select(P.c.folder_id, sa.func.count(), sa.func.sum(P.c.size))
                .where(P.c.folder_id.in_(chunk), P.c.status != "missing")
                .group_by(P.c.folder_id))}
            subs: dict[int, int] = dict((await conn.execute(
                sa.select(F.c.parent_id, sa.func.count())
                .where(F.c.parent_id.in_(chunk), F.c.missing_since.is_(None))
                .group_by(F.c.parent_id))).all())
            await conn.execute(
                F.update().where(F.c.id == sa.bindparam("fid")).values(
                    photo_count=sa.bindparam("pc"), bytes=sa.bindparam("by"),
                    folder_count=sa.bindparam("fc"), listing_hash=None),
                [{"fid": fid, "pc": photos.get(fid, (0, 0))[0],
                  "by": photos.get(fid, (0, 0))[1], "fc": int(subs.get(fid, 0))}
                 for fid in chunk])

    async def invalidate(self, conn: AsyncConnection, folder_ids: Iterable[int]) -> None:
        """Forget the listing digests of folders whose rows changed outside a scan."""
        ids = sorted(set(folder_ids))
        for fid in ids:
            info = self._infos.get(fid)
            if info is not None:
                info.listing_hash = None
        for start in range(0, len(ids), 500):
            await conn.execute(F.update().where(F.c.id.in_(ids[start:start + 500]))
                               .values(listing_hash=None))

    async def remember_listings(self, conn: AsyncConnection,
                                digests: dict[int, str]) -> None:
        """Record that these folders' rows now match the listings with these digests."""
        if not digests:
            return
        await conn.execute(F.update().where(F.c.id == sa.bindparam("fid"))
                           .values(listing_hash=sa.bindparam("lh")),
                           [{"fid": fid, "lh": h} for fid, h in digests.items()])
        for fid, h in digests.items():
            info = self._infos.get(fid)
            if info is not None:
                info.listing_hash = h

    def rollup_soon(self, source: Source, delay: float = 1.0) -> None:
        """Coalesce the roll-ups of a burst of small changes into one."""
        if source.id in self._rollups:
            return

        def run() -> None:
            self._rollups.pop(source.id, None)
            task = asyncio.get_running_loop().create_task(self.rollup(source))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

        self._rollups[source.id] = asyncio.get_running_loop().call_later(delay, run)

    async def rollup(self, source: Source) -> set[int]:
        """Recompute subtree totals for a source; returns the folders whose total changed."""
        async with self.db.engine.begin() as conn:
            rows = (await conn.execute(sa.select(
                F.c.id, F.c.parent_id, F.c.photo_count, F.c.total_count, F.c.missing_since)
                .where(F.c.source_id == source.id))).all()
            totals = {r.id: (r.photo_count if r.missing_since is None else 0) for r in rows}
            children: dict[int, list[int]] = {}
            for r in rows:
                if r.parent_id is not None and r.missing_since is None:
                    children.setdefault(r.parent_id, []).append(r.id)
            order: list[int] = []
            stack = [r.id for r in rows if r.parent_id is None]
            while stack:  # parents before children; sum back up in reverse
                fid = stack.pop()
                order.append(fid)
                stack.extend(children.get(fid, []))
            for fid in reversed(order):
                for child in children.get(fid, []):
                    totals[fid] += totals[child]
            changed = [{"fid": r.id, "tc": totals[r.id]} for r in rows
                       if totals.get(r.id, 0) != r.total_count]
            if changed:
                await conn.execute(F.update().where(F.c.id == sa.bindparam("fid"))
                                   .values(total_count=sa.bindparam("tc")), changed)
        ids = {c["fid"] for c in changed}
        self.changes.folders(source.id, ids)
        return ids

    # -- photo state changes --------------------------------------------------------------
    async def apply_plans(self, conn: AsyncConnection, source: Source,
                          plans: Sequence[FolderPlan], moves: Sequence[Move],
                          inserts: Sequence[tuple[int, FileEntry]],
                          touched: set[int]) -> dict[str, int]:
        """A scan batch's plan (``plan``): changed files pending again, files found again
        back to their state, moves, new rows. Vanishings are the end of the pass's
        (``mark_missing``). Returns how many of each."""
        changed = [c for p in plans for c in p.changed]
        restored = [r for p in plans for r in p.restored]
        if changed:
            await conn.execute(P.update().where(P.c.id == sa.bindparam("pid")).values(
                size=sa.bindparam("size"), mtime_ns=sa.bindparam("mtime_ns"),
                inode=sa.bindparam("inode"), status="pending", missing_since=None,
                error=None, error_reason=None),
                [{"pid": c.photo_id, "size": c.size, "mtime_ns": c.mtime_ns, "inode": c.inode}
                 for c in changed])
            touched.update(c.folder_id for c in changed)
        if restored:
            await conn.execute(P.update().where(P.c.id == sa.bindparam("pid")).values(
                status=sa.bindparam("st"), missing_since=None),
                [{"pid": r.photo_id, "st": r.status} for r in restored])
            back: dict[int, list[int]] = {}
            for r in restored:
                back.setdefault(r.folder_id, []).append(r.photo_id)
                touched.add(r.folder_id)
            for fid, pids in back.items():
                self.changes.photos("added", fid, self.path_of(source, fid), pids)
        for m in moves:
            await self.move_photo(conn, source, m.row, self._infos[m.folder_id], m.name,
                                  (m.entry.size, m.entry.mtime_ns, m.entry.inode), touched)
        if inserts:
            now = utcnow()
            result = await conn.execute(P.insert().returning(P.c.id, P.c.folder_id,
                                                             sort_by_parameter_order=True), [
                {"source_id": source.id, "folder_id": fid, "name": e.name,
                 "size": e.size, "mtime_ns": e.mtime_ns,
                 "inode": e.inode, "status": "pending", "first_seen": now}
                for fid, e in inserts])
            by_folder: dict[int, list[int]] = {}
            for pid, fid in result.all():
                by_folder.setdefault(fid, []).append(pid)
            touched.update(by_folder)
            for fid, pids in by_folder.items():
                self.changes.photos("added", fid, self.path_of(source, fid), pids)
        return {"changed": len(changed), "restored": len(restored), "moved": len(moves),
                "new": len(inserts)}

    async def mark_folders_lost(self, conn: AsyncConnection, infos: Sequence[FolderInfo],
                                touched: set[int]) -> None:
        """Folders a complete pass did not find: missing since now (removed when a later
        confirming pass finds them empty)."""
        now = utcnow()
        for info in infos:
            await conn.execute(F.update().where(F.c.id == info.id).values(missing_since=now))
            info.missing_since = now
            touched.add(info.id)

    async def remove_folder_if_empty(self, conn: AsyncConnection, source: Source, rel: str,
                                     info: FolderInfo) -> bool:
        """A folder confirmed gone leaves the catalog once no photo or folder is in it."""
        left = await conn.scalar(sa.select(sa.func.count()).select_from(P)
                                 .where(P.c.folder_id == info.id))
        kids = await conn.scalar(sa.select(sa.func.count()).select_from(F)
                                 .where(F.c.parent_id == info.id))
        if left or kids:
            return False
        await conn.execute(F.delete().where(F.c.id == info.id))
        self._folders.get(source.id, {}).pop(rel, None)
        self._infos.pop(info.id, None)
        return True

    async def mark_missing(self, conn: AsyncConnection, source: Source,
                           rows: list[Any], touched: set[int]) -> None:
        """Photos whose files are gone: missing now, removed when a later pass confirms."""
        now = utcnow()
        by_folder: dict[int, list[int]] = {}
        for r in rows:
            by_folder.setdefault(r.folder_id, []).append(r.id)
        ids = [r.id for r in rows]
        for start in range(0, len(ids), 500):
            await conn.execute(P.update().where(P.c.id.in_(ids[start:start + 500]))
                               .values(status="missing", missing_since=now))
        for folder_id, fids in by_folder.items():
            touched.add(folder_id)
            self.changes.photos("removed", folder_id, self.path_of(source, folder_id), fids,
                                missing=True)

    async def delete_photos(self, conn: AsyncConnection, source: Source,
                            rows: list[Any], touched: set[int]) -> None:
        ids = [r.id for r in rows]
        for start in range(0, len(ids), 500):
            await conn.execute(P.delete().where(P.c.id.in_(ids[start:start + 500])))
        by_folder: dict[int, list[int]] = {}
        for r in rows:
            by_folder.setdefault(r.folder_id, []).append(r.id)
        for folder_id, fids in by_folder.items():
            touched.add(folder_id)
            self.changes.photos("removed", folder_id, self.path_of(source, folder_id), fids)

    async def move_photo(self, conn: AsyncConnection, source: Source, row: Any,
                         folder: FolderInfo, name: str, fingerprint: tuple[int, int, int | None],
                         touched: set[int]) -> None:
        """Same file, new place: the row (id, hashes, thumbnails, history) follows it."""
        size, mtime_ns, inode = fingerprint
        same = (row.size, row.mtime_ns) == (size, mtime_ns)
        status = restored_status(row) if same else "pending"
        # A file already at the destination name is replaced by the moved one.
        await conn.execute(P.delete().where(P.c.folder_id == folder.id, P.c.name == name,
                                            P.c.id != row.id))
        await conn.execute(P.update().where(P.c.id == row.id).values(
            folder_id=folder.id, name=name, name_key=natural_key(name), size=size,
            mtime_ns=mtime_ns, inode=inode, status=status, missing_since=None))
        touched.update((row.folder_id, folder.id))
        self.changes.photos("moved", folder.id, self.path_of(source, folder.id), [row.id],
                            from_folder_id=row.folder_id)

    async def move_folder(self, source: Source, old_rel: str, new_rel: str) -> bool:
        """A directory renamed or moved inside the root: rewrite the subtree's paths.

        False when there is nothing to rewrite, or when the subtree would land on folders
        the catalog still has (an old, missing folder of a destination's name): the caller
        rescans both places instead, and the scanner's moves (by inode) keep the ids. Decided
        under the source's lock: watchdog reports a moved folder's subfolders as moves of
        their own, and those must find the first move done, not race it.
        """
        if old_rel == "" or new_rel == "":
            return False
        touched: set[int] = set()
        async with self.transaction(source) as conn:
            mapping = await self.folder_map(source)
            if old_rel not in mapping:
                return False     # moved already (as part of its parent), or never known
            moved = sorted((rel for rel in mapping
                            if rel == old_rel or rel.startswith(old_rel + "/")), key=len)
            dests = [new_rel + rel[len(old_rel):] for rel in moved]
            if any(d in mapping for d in dests):
                log.info("a moved folder lands on folders the catalog has; rescanning instead",
                         src=old_rel, dst=new_rel)
                return False
            parent = await self.ensure_folder(conn, source, paths.parent(new_rel) or "",
                                              touched)
            touched.add(parent.id)   # it holds one more folder now
            for rel, dest in zip(moved, dests, strict=True):
                info = mapping.pop(rel)
                values: dict[str, Any] = {"path": dest, "path_hash": paths.path_hash(dest),
                                          "depth": paths.depth(dest), "missing_since": None}
                if rel == old_rel:
                    values.update(parent_id=parent.id, name=paths.basename(dest))
                    if info.parent_id is not None:
                        touched.add(info.parent_id)
                    info.parent_id = parent.id
                await conn.execute(F.update().where(F.c.id == info.id).values(**values))
                info.missing_since = None
                mapping[dest] = info
                touched.add(info.id)
            await self.recount(conn, touched)
        self.changes.folders(source.id, touched)
        return True

    # -- bucket objects (library.bucketsync) ------------------------------------------------
    async def apply_objects(self, conn: AsyncConnection, source: Source,
                            new: Sequence[tuple[str, str, Any]],
                            changed: Sequence[tuple[Any, Any]],
                            restored: Sequence[Any], touched: set[int]) -> int:
        """A bucket listing's news: objects new to the catalog (folder rel, name, entry),
        changed ones (row, entry: pending again under the new fingerprint) and ones found
        again unchanged (rows that were missing). Returns how many rows were inserted."""
        now = utcnow()
        inserts: list[dict[str, Any]] = []
        for folder_rel, name, e in new:
            info = await self.ensure_folder(conn, source, folder_rel, touched)
            inserts.append({"source_id": source.id, "folder_id": info.id, "name": name,
                            "size": e.size, "mtime_ns": e.mtime_ns, "etag": e.tag,
                            "status": "pending", "first_seen": now})
            touched.add(info.id)
        if inserts:
            result = await conn.execute(P.insert().returning(P.c.id, P.c.folder_id,
                                                             sort_by_parameter_order=True),
                                        inserts)
            by_folder: dict[int, list[int]] = {}
            for pid, fid in result.all():
                by_folder.setdefault(fid, []).append(pid)
            for fid, pids in by_folder.items():
                self.changes.photos("added", fid, self.path_of(source, fid), pids)
        if changed:
            await conn.execute(P.update().where(P.c.id == sa.bindparam("pid")).values(
                size=sa.bindparam("size"), mtime_ns=sa.bindparam("mtime_ns"),
                etag=sa.bindparam("etag"), status="pending", missing_since=None, error=None,
                error_reason=None),
                [{"pid": row.id, "size": e.size, "mtime_ns": e.mtime_ns, "etag": e.tag}
                 for row, e in changed])
            touched.update(row.folder_id for row, _ in changed)
        if restored:
            await conn.execute(P.update().where(P.c.id == sa.bindparam("pid")).values(
                status=sa.bindparam("st"), missing_since=None),
                [{"pid": row.id, "st": restored_status(row)} for row in restored])
            back: dict[int, list[int]] = {}
            for row in restored:
                back.setdefault(row.folder_id, []).append(row.id)
                touched.add(row.folder_id)
            for fid, pids in back.items():
                self.changes.photos("added", fid, self.path_of(source, fid), pids)
        return len(inserts)

    async def retire_folders(self, conn: AsyncConnection, source: Source, live: set[str],
                             pass_started: dt.datetime, touched: set[int]) -> None:
        """After a complete listing: folders no key lies under any more become missing;
        those already missing before this pass, and empty, are removed."""
        mapping = await self.folder_map(source)
        now = utcnow()
        for rel, info in sorted(mapping.items(), key=lambda x: -len(x[0])):
            if rel == "" or rel in live:
                if rel in live and info.missing_since is not None:
                    await conn.execute(F.update().where(F.c.id == info.id)
                                       .values(missing_since=None))
                    info.missing_since = None
                    touched.add(info.id)
                continue
            if info.missing_since is None:
                await conn.execute(F.update().where(F.c.id == info.id).values(missing_since=now))
                info.missing_since = now
                touched.add(info.id)
            elif info.missing_since < pass_started:
                left = await conn.scalar(sa.select(sa.func.count()).select_from(P)
                                         .where(P.c.folder_id == info.id))
                kids = await conn.scalar(sa.select(sa.func.count()).select_from(F)
                                         .where(F.c.parent_id == info.id))
                if not left and not kids:
                    await conn.execute(F.delete().where(F.c.id == info.id))
                    mapping.pop(rel, None)
                    self._infos.pop(info.id, None)
                    touched.discard(info.id)
            if info.parent_id is not None:
                touched.add(info.parent_id)
        touched &= {i.id for i in mapping.values()}
