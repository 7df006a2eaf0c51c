"""``photos.*``: one photo, its thumbnail and original bytes, search, duplicates.

Bytes travel as binary frames (``ctx.attach``), never base64. Files are read off the event
loop. ``photos.original`` serves only photos indexed ``ok``, and reads only the file the
catalog names for that id, opened beneath its root without following links and checked
against the row's (device, inode, size, mtime) before a byte is sent (``media.confine``): a
request never chooses a path.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import weakref
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from PIL import Image
from sqlalchemy.ext.asyncio import AsyncConnection

from lightbox.common import logs
from lightbox.common.errors import InvalidParams, NotFound, Unavailable
from lightbox.daemon.catalog import dupes, queries
from lightbox.daemon.catalog.tables import photos as photos_table
from lightbox.daemon.catalog.types import iso
from lightbox.daemon.kinds import s3 as s3kind
from lightbox.daemon.kinds.s3 import S3Object
from lightbox.daemon.media.confine import CHANGED, LocalFile, Refused, open_photo
from lightbox.daemon.media.thumbs import thumbnail_path
from lightbox.daemon.rpc import Context, method

log = logs.get("photos")

# How long photos.get waits for a first near-duplicate grouping before answering
# ``near: null`` (it keeps building for the next call); photos.duplicates waits longer but
# stays under the clients' default 10 s timeout and then says "try again".
GET_NEAR_WAIT = 0.5
DUPLICATES_WAIT = 8.0
THUMB_MIME = "image/jpeg"

_caches: weakref.WeakKeyDictionary[Any, dupes.DupeCache] = weakref.WeakKeyDictionary()


def dupe_cache(daemon: Any) -> dupes.DupeCache:
    """The daemon's duplicate groupings, invalidated by its catalog and source events."""
    cache = _caches.get(daemon)
    engine = daemon.db.engine
    if cache is None or cache.engine is not engine:  # first use, or the engine was switched
        cache = dupes.DupeCache(engine)
        daemon.bus.listen(cache.on_event)
        _caches[daemon] = cache
    return cache


@method("photos.get")
async def get(ctx: Context, id: int | None, path: str | None, ids: list[int] | None,
              fields: list[str] | None) -> dict[str, Any]:
    if ids is not None:
        if id is not None or path is not None:
            raise InvalidParams("ids: give ids, or one id or path, not both",
                                {"errors": {"ids": "give ids, or one id or path"}})
        async with ctx.daemon.db.engine.connect() as conn:
            return {"photos": await queries.photos_by_id(conn, ids, fields)}
    if fields is not None:
        raise InvalidParams("fields: only with ids (one photo comes whole)",
                            {"errors": {"fields": "only with ids"}})
    async with ctx.daemon.db.engine.connect() as conn:
        rec = await queries.photo_record(conn, id, path)
        same, rep = 0, None
        if rec.row.sha256:
            same, rep = (await conn.execute(
                sa.select(sa.func.count(), sa.func.min(photos_table.c.id)).where(
                    photos_table.c.sha256 == rec.row.sha256,
                    photos_table.c.status == "ok"))).one()
    exact = max(0, int(same) - (1 if rec.row.status == "ok" else 0))
    near: int | None = 0
    if rec.row.status == "ok" and rec.row.phash is not None and rep is not None:
        cache = dupe_cache(ctx.daemon)
        # What is held now, even if a little stale (refreshed in the background); only the
        # very first call waits, briefly, for a grouping to exist.
        grouping = cache.peek_near(dupes.DEFAULT_THRESHOLD)
        if grouping is None:
            with contextlib.suppress(Unavailable, InvalidParams):
                grouping = await cache.near(dupes.DEFAULT_THRESHOLD, wait=GET_NEAR_WAIT)
        near = None if grouping is None else grouping.neighbours(int(rep), rec.row.phash)
    return queries.photo_detail(rec, exact, near)


def _unusable(rec: queries.PhotoRecord, what: str) -> None:
    """Refuse a photo whose file or thumbnail cannot be had, saying why."""
    status = rec.row.status
    if status == "missing":
        since = iso(rec.missing_since)
        raise NotFound(f"photo {rec.id} has no {what}: the file is missing"
                       + (f" (since {since})" if since else ""), {"id": rec.id})
    if status == "error" and what == "thumbnail":
        why = rec.row.error or "the file could not be read"
        raise NotFound(f"photo {rec.id} has no thumbnail: {why}",
                       {"id": rec.id, "error": rec.row.error})
    if status == "pending" and what == "thumbnail":
        raise Unavailable(f"photo {rec.id} is not indexed yet; try again shortly",
                          {"id": rec.id, "retry_after": 2})


def _read_jpeg(path: Path) -> tuple[bytes, int | None, int | None] | None:
    try:
        data = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        return None
    try:
        with Image.open(io.BytesIO(data)) as img:  # reads the header only
            width, height = img.size
    except Exception:
        return data, None, None
    return data, width, height


@method("photos.thumbnail")
async def thumbnail(ctx: Context, id: int, size: str) -> dict[str, Any]:
    async with ctx.daemon.db.engine.connect() as conn:
        rec = await queries.photo_record(conn, id)
    _unusable(rec, "thumbnail")
    got = None
    if rec.row.sha256:
        thumbs_dir = ctx.daemon.config.paths.thumbnails_dir
        got = await asyncio.to_thread(_read_jpeg, thumbnail_path(thumbs_dir, size,
                                                                 rec.row.sha256))
    if got is None:
        indexer = getattr(ctx.daemon, "indexer", None)
        if indexer is None:
            raise Unavailable(f"photo {id} has no {size} thumbnail yet and the indexer that "
                              "makes them is not running", {"id": id, "retry_after": 5})
        made = await indexer.ensure_thumbnail(id, size)
        got = await asyncio.to_thread(_read_jpeg, Path(made))
        if got is None:
            raise NotFound(f"photo {id}: the {size} thumbnail could not be made", {"id": id})
    data, width, height = got
    return {"id": id, "size": size, "mime": THUMB_MIME, "width": width, "height": height,
            "bytes": len(data), "data": ctx.attach(data)}


def locator(rec: queries.PhotoRecord) -> LocalFile:
    """Where a local photo is, and what its file must be for its bytes to be served."""
    assert rec.source_path is not None
    rel = f"{rec.folder_path}/{rec.row.name}" if rec.folder_path else rec.row.name
    return LocalFile(rec.source_path, rel, size=rec.row.size, mtime_ns=rec.row.mtime_ns,
                     inode=rec.row.inode, device=rec.row.device)


def _read_chunk(loc: LocalFile, offset: int, length: int) -> tuple[bytes, int]:
    """``length`` bytes at ``offset`` of the photo and its size, opened beneath its root
    without links and checked against the catalog's fingerprint first (``confine``)."""
    f, st = open_photo(loc)
    with f:
        data = os.pread(f.fileno(), length, offset) if offset < st.st_size else b""
    return data, st.st_size


def _bucket_object(ctx: Context, rec: queries.PhotoRecord) -> S3Object:
    """The listed object of a bucket photo, If-Match its indexed ETag."""
    sources = ctx.daemon.sources
    cfg = sources.s3_config(sources.get(int(rec.row.source_id)))
    rel = f"{rec.folder_path}/{rec.row.name}" if rec.folder_path else rec.row.name
    return S3Object(cfg, cfg.prefix + rel, int(rec.row.size), int(rec.row.mtime_ns),
                    rec.row.etag)


async def _bucket_original(ctx: Context, rec: queries.PhotoRecord, offset: int, length: int,
                           presign: bool, expires: int) -> dict[str, Any]:
    id = rec.id
    loc = _bucket_object(ctx, rec)
    head = {"id": id, "size": int(rec.row.size), "mime": rec.row.mime,
            "sha256": rec.row.sha256}
    if presign:
        url, ttl = await asyncio.to_thread(s3kind.presign, loc, expires)
        return {**head, "url": url, "expires_in": ttl}
    ctx.reserve(min(length, max(0, int(rec.row.size) - offset)), f"photo {id}'s chunk")
    try:
        data = await asyncio.to_thread(s3kind.read_range, loc, offset, length)
    except Refused as exc:
        await ctx.daemon.indexer.repend(id)
        raise NotFound(f"photo {id}: {exc}; it will be read again",
                       {"id": id, "reason": exc.reason}) from None
    except s3kind.S3Error as exc:
        if exc.reason == s3kind.GONE:
            raise NotFound(f"photo {id}: {loc.path}: {exc}", {"id": id, "reason": "gone"}
                           ) from None
        raise Unavailable(f"photo {id}: {loc.path}: {exc}",
                          {"id": id, "reason": exc.reason, "retry_after": 10}) from None
    size = int(rec.row.size)
    return {**head, "offset": offset, "length": len(data),
            "eof": offset + len(data) >= size, "data": ctx.attach(data)}


@method("photos.original")
async def original(ctx: Context, id: int, offset: int, length: int, presign: bool,
                   expires: int) -> dict[str, Any]:
    async with ctx.daemon.db.engine.connect() as conn:
        rec = await queries.photo_record(conn, id)
    _unusable(rec, "original")
    if presign and rec.source_kind != "s3":
        raise InvalidParams(f"photo {id} is a local file: presigned URLs are for bucket "
                            "photos", {"errors": {"presign": "not a bucket photo"}})
    if rec.source_kind == "s3" and rec.row.status == "ok":
        if not rec.online:
            raise Unavailable(f"photo {id}: its bucket {rec.source_name} cannot be reached "
                              "now", {"id": id, "reason": "offline", "retry_after": 30})
        return await _bucket_original(ctx, rec, offset, length, presign, expires)
    if rec.source_kind != "local" or rec.source_path is None or rec.abs_path is None:
        why = {"pending": "it is not indexed yet", "error": f"it is not a readable image "
               f"({rec.row.error or 'error'})"}.get(rec.row.status, rec.row.status)
        raise NotFound(f"photo {id} is not served: {why}",
                       {"id": id, "reason": f"status_{rec.row.status}"})
    if rec.row.status != "ok":
        # Only what was read and found to be an image is served: an ``error`` row may be
        # anything at all (the finding: /etc/shadow, "not an image", served byte for byte).
        why = {"pending": "it is not indexed yet", "error": f"it is not a readable image "
               f"({rec.row.error or 'error'})"}.get(rec.row.status, rec.row.status)
        raise NotFound(f"photo {id} is not served: {why}",
                       {"id": id, "reason": f"status_{rec.row.status}"})
    if not rec.online:
        raise Unavailable(f"photo {id}: its root {rec.source_name} is offline", {"id": id})
    # The bytes come out of the reply budget before a byte is read (busy when it is full):
    # a batch of large chunks cannot make the daemon hold more than the budget.
    ctx.reserve(min(length, max(0, int(rec.row.size) - offset)), f"photo {id}'s chunk")
    loc = locator(rec)
    try:
        data, size = await asyncio.to_thread(_read_chunk, loc, offset, length)
    except Refused as exc:
        log.warning("refused to serve a photo", id=id, path=loc.path, reason=exc.reason,
                    why=str(exc))
        if exc.reason == CHANGED:   # read it again: the indexer checks what it is now
            await ctx.daemon.indexer.repend(id)
        raise NotFound(f"photo {id}: refusing to read {loc.path}: {exc}",
                       {"id": id, "reason": exc.reason}) from None
    except FileNotFoundError:
        raise NotFound(f"photo {id}: the file is gone ({loc.path})",
                       {"id": id, "reason": "gone"}) from None
    except OSError as exc:
        raise NotFound(f"photo {id}: cannot read {loc.path}: {exc.strerror or exc}",
                       {"id": id, "reason": "unreadable"}) from None
    return {"id": id, "size": size, "offset": offset, "length": len(data),
            "eof": offset + len(data) >= size, "mime": rec.row.mime, "sha256": rec.row.sha256,
            "data": ctx.attach(data)}


@method("photos.search")
async def search(
    ctx: Context, text: str | None, date_from: str | None, date_to: str | None,
    camera: str | None, has_gps: bool | None, folder: int | None, path: str | None,
    recursive: bool, status: str, sort: str, order: str, limit: int, cursor: str | None,
    fields: list[str] | None, count: bool,
) -> dict[str, Any]:
    # SELECTs only: the autocommit pool saves the transaction's round trips on a server,
    # and SQLite reads the whole search in one thread hop (issue 13).
    async def found(conn: AsyncConnection) -> dict[str, Any]:
        return await queries.search(
            conn, text=text, date_from=date_from, date_to=date_to, camera=camera,
            has_gps=has_gps, folder=folder, path=path, recursive=recursive, status=status,
            sort=sort, order=order, limit=limit, cursor=cursor, fields=fields, count=count,
            encoded=True)

    return await ctx.daemon.db.read(found, autocommit=True)


@method("photos.duplicates")
async def duplicates(
    ctx: Context, kind: str, threshold: int, limit: int, cursor: str | None,
    fields: list[str] | None,
) -> dict[str, Any]:
    return await dupes.duplicates(dupe_cache(ctx.daemon), kind=kind, threshold=threshold,
                                  limit=limit, cursor=cursor, fields=fields,
                                  wait=DUPLICATES_WAIT)
