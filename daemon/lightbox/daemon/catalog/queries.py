"""The catalog's read side: the SELECTs behind folders.list, photos.get and photos.search.

Every function takes an open ``AsyncConnection`` and runs a small, fixed number of
statements whatever the size of the answer (no N+1): a folder listing is the folder, its
breadcrumbs and subfolders together, and one page of photos; a search page is the page and
the paths of the folders it touches. ``tests/test_catalog_queries.py`` counts them.

Pagination is keyset, never OFFSET: a page asks for rows *after* the last one sent, in the
order ``(sort value, id)``, written as ``v >= :v AND (v > :v OR id > :id)`` so that every
engine can start an index range scan at the cursor (the bare OR form defeats SQLite's
planner). Photos without ``taken_at`` come after the dated ones in both directions; that
makes two phases for ``taken`` (dated, then undated ordered by id), each served by an index,
instead of one ``ORDER BY taken_at IS NULL`` that no index can serve.

Text matching is portable: ``LIKE '%word%' ESCAPE '!'`` with ``%``, ``_`` and ``!`` escaped
in the words, case folded by the engine's own means (see ``_contains``). SQLite folds ASCII
letters only, so there a search for ``été`` does not find ``ÉTÉ.jpg``. That condition says
what matches; each engine's text index (``textindex``) only decides which rows it is tested
on: a rare word's few candidates, fetched through the index and sorted, or, for a common
word, the rows met walking the requested order. Folder subtrees are
matched on a byte-exact path prefix (``_starts_with``), never with LIKE, which ignores case
on SQLite and, through the collation, on MariaDB.

SQLite has no statistics unless someone runs ANALYZE, and then prefers any equality on an
index (``status = 'ok'``, ``source_id = ?``) to the range that makes a page cheap; a few
conditions are therefore written so that SQLite cannot use an index for them (``status ||
''``, ``source_id + 0``), on SQLite only, where that is known to be the better plan.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from lightbox.common.errors import InvalidParams, NotFound
from lightbox.daemon.catalog import paths, present, textindex
from lightbox.daemon.catalog.tables import folders, photos, sources
from lightbox.daemon.catalog.types import iso, natural_key

_AS_STORED = {"taken_at", "first_seen", "indexed_at"}
# The columns every photo query selects (present.PHOTO_COLUMN_NAMES). Timestamps come as the
# driver gives them, without SQLAlchemy's processing: text on SQLite (see present).
PHOTO_COLUMNS = tuple(
    sa.type_coerce(photos.c[name], sa.String).label(name) if name in _AS_STORED
    else photos.c[name] for name in present.PHOTO_COLUMN_NAMES)
# What a page needs whatever fields are asked for: the id, the path (folder and name) and
# every sort value (a cursor is made from the last row).
_ALWAYS = ("id", "folder_id", "name", "size", "taken_at")


def photo_columns(wanted: tuple[str, ...] | None) -> tuple[Any, ...]:
    """The columns to select for ``wanted`` fields (``present.check_fields``): all of them
    for every field, else only what those fields are made from (the grid's seven fields
    from a 500-photo folder: a third of the columns, less for the driver to convert)."""
    if wanted is None:
        return PHOTO_COLUMNS
    found = _PRUNED.get(wanted)
    if found is None:
        need = set(_ALWAYS) | {present.source_column(f) for f in wanted}
        found = _PRUNED[wanted] = tuple(
            c for c, name in zip(PHOTO_COLUMNS, present.PHOTO_COLUMN_NAMES, strict=True)
            if name in need)
    return found


_PRUNED: dict[tuple[str, ...], tuple[Any, ...]] = {}
# By name is natural and case-insensitive (``name_key``, see types.natural_key); a cursor
# holds the key, which is a function of the name.
SORT_COLUMNS = {"name": photos.c.name_key, "size": photos.c.size, "taken": photos.c.taken_at}
FOLDER_COLUMNS = (
    folders.c.id, folders.c.source_id, folders.c.parent_id, folders.c.path, folders.c.name,
    folders.c.depth, folders.c.photo_count, folders.c.folder_count, folders.c.total_count,
    folders.c.bytes, folders.c.missing_since,
    sources.c.path.label("source_path"), sources.c.name.label("source_name"),
    sources.c.online, sources.c.kind.label("source_kind"),
)
AnyRow = Any  # a Row of PHOTO_COLUMNS (+ extras); SQLAlchemy's Row typing is variadic
LIKE_ESCAPE = "!"  # not "\\" (a string escape in MySQL), not "/" (in every path)
# What folders.list shows unless asked otherwise: everything but vanished files (errors
# included, so the UI can mark them).
HIDDEN_IN_FOLDERS = "missing"
BIG_SUBTREE = 20_000  # photos: see Search.conditions


def _bad(name: str, why: str) -> InvalidParams:
    return InvalidParams(f"{name}: {why}", {"errors": {name: why}})


INT64_MAX = (1 << 63) - 1


def clean(name: str, value: str | None) -> str | None:
    """A text parameter that can go into SQL on every engine: no NUL (PostgreSQL refuses
    it, SQLite's LIKE stops at it) and no lone surrogate (not encodable as UTF-8)."""
    if value is None:
        return None
    if "\x00" in value:
        raise _bad(name, "contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _bad(name, "is not valid Unicode text (lone surrogate)") from None
    return value


# -- references: ids and absolute paths -----------------------------------------------------
async def roots(conn: AsyncConnection) -> list[tuple[int, str]]:
    """(id, absolute path) of every source that has a local path."""
    rows = await conn.execute(
        sa.select(sources.c.id, sources.c.path).where(sources.c.path.is_not(None)))
    return [(r.id, r.path) for r in rows]


async def locate(conn: AsyncConnection, path: str) -> tuple[int, str]:
    """(source id, path relative to it) of an absolute path; NotFound outside every root."""
    clean("path", path)
    if not path.startswith("/"):
        raise _bad("path", f"must be absolute, got {path!r}")
    found = paths.locate(path, await roots(conn))
    if found is None:
        raise NotFound(f"{paths.normalize(path)} is not inside any root of the library",
                       {"path": path})
    return found


_FOLDER_SELECT = sa.select(*FOLDER_COLUMNS).select_from(
    folders.join(sources, folders.c.source_id == sources.c.id))
# Built once: a statement made anew for every request is built, and its cache key
# computed, every time (SQLAlchemy memoizes the key on the statement object); of a
# folders.list request's fixed cost, that was the largest part (issue 13).
_FOLDER_BY_ID = _FOLDER_SELECT.where(folders.c.id == sa.bindparam("folder_id"))


async def folder_row(conn: AsyncConnection, folder_id: int | None = None,
                     path: str | None = None) -> RowMapping:
    """A folder with its source's path, name and state, by id or by absolute path."""
    if folder_id is not None and path is not None:
        raise _bad("path", "give folder or path, not both")
    stmt = _FOLDER_SELECT
    if folder_id is not None:
        row = None
        if 0 < folder_id <= INT64_MAX:  # no such id can exist, and drivers overflow on it
            row = (await conn.execute(_FOLDER_BY_ID, {"folder_id": folder_id})
                   ).mappings().first()
        if row is None:
            raise NotFound(f"no folder with id {folder_id}", {"folder": folder_id})
        return row
    assert path is not None
    source_id, rel = await locate(conn, path)
    row = (await conn.execute(stmt.where(folders.c.source_id == source_id,
                                         folders.c.path_hash == paths.path_hash(rel)))
           ).mappings().first()
    if row is None:
        raise NotFound(f"no folder {paths.normalize(path)} in the catalog (not scanned yet, "
                       "or not a folder)", {"path": path})
    return row


@dataclass(frozen=True)
class PhotoRecord:
    """One photo row with what it takes to show and open it."""

    row: AnyRow
    folder_path: str  # relative to the source
    source_path: str | None
    source_name: str
    source_kind: str
    online: bool
    missing_since: dt.datetime | None

    @property
    def id(self) -> int:
        return int(self.row.id)

    @property
    def abs_path(self) -> str | None:
        if self.source_path is None:
            return None
        return paths.join(self.source_path, self.folder_path, self.row.name)

    @property
    def folder_abs_path(self) -> str | None:
        if self.source_path is None:
            return None
        return paths.join(self.source_path, self.folder_path)


_PHOTO_RECORD = sa.select(
    *PHOTO_COLUMNS, folders.c.path.label("folder_path"), sources.c.path.label("source_path"),
    sources.c.name.label("source_name"), sources.c.kind.label("source_kind"), sources.c.online,
    photos.c.missing_since, photos.c.inode, photos.c.device, photos.c.etag,
).select_from(photos.join(folders, photos.c.folder_id == folders.c.id)
              .join(sources, photos.c.source_id == sources.c.id))


def _record(row: AnyRow) -> PhotoRecord:
    return PhotoRecord(row, row.folder_path, row.source_path, row.source_name, row.source_kind,
                       bool(row.online), row.missing_since)


async def photo_record(conn: AsyncConnection, photo_id: int | None = None,
                       path: str | None = None) -> PhotoRecord:
    """A photo by id or by the absolute path of its file; NotFound otherwise."""
    if photo_id is not None and path is not None:
        raise _bad("path", "give id or path, not both")
    if photo_id is not None:
        row = None
        if 0 < photo_id <= INT64_MAX:
            row = (await conn.execute(_PHOTO_RECORD.where(photos.c.id == photo_id))).first()
        if row is None:
            raise NotFound(f"no photo with id {photo_id}", {"id": photo_id})
        return _record(row)
    if path is None:
        raise _bad("id", "give a photo id or path")
    source_id, rel = await locate(conn, path)
    folder_rel = paths.parent(rel)
    if folder_rel is None:
        raise NotFound(f"{paths.normalize(path)} is a root, not a photo", {"path": path})
    row = (await conn.execute(_PHOTO_RECORD.where(
        folders.c.source_id == source_id, folders.c.path_hash == paths.path_hash(folder_rel),
        photos.c.name == paths.basename(rel)))).first()
    if row is None:
        raise NotFound(f"no photo {paths.normalize(path)} in the catalog", {"path": path})
    return _record(row)


IN_CHUNK = 5000  # values per IN (...): SQLite takes at most 32,766 parameters a statement


def chunks(values: Sequence[Any], size: int = IN_CHUNK) -> list[Sequence[Any]]:
    return [values[i:i + size] for i in range(0, len(values), size)]


def ids_in(col: Any, ids: Sequence[int], dialect: str) -> Any:
    """``col IN (ids)``; on PostgreSQL ``col = ANY(:ids)``, one array parameter: the
    expanding IN of a page's 200 ids cost the daemon about 2 ms of CPU a statement
    (SQLAlchemy renders 200 parameters, asyncpg encodes each, and every length is a
    statement of its own to prepare), out of the 6.5 ms it takes to read the page."""
    if dialect == "postgresql":
        return col == sa.any_(sa.bindparam(None, list(ids), type_=ARRAY(sa.BigInteger)))
    return col.in_(ids)


def ids_param(col: Any, dialect: str) -> Any:
    """``ids_in`` with its list as the parameter ``ids`` given at execution: the
    statement is then built once (``by_ids``) and reused with each list."""
    if dialect == "postgresql":
        return col == sa.any_(sa.bindparam("ids", type_=ARRAY(sa.BigInteger)))
    return col.in_(sa.bindparam("ids", expanding=True))


_BY_IDS: dict[tuple[Any, ...], Any] = {}


def by_ids(key: Any, dialect: str, make: Callable[[str], Any]) -> Any:
    """The statement ``make(dialect)`` (with ``ids_param``) for ``key``, built once:
    building a statement and its cache key anew for every page was a quarter of the
    daemon's CPU per search (issue 13); a reused one only binds its list."""
    found = _BY_IDS.get((key, dialect))
    if found is None:  # a few keys: the path book, and each set of fields a client asks
        found = _BY_IDS[(key, dialect)] = make(dialect)
    return found


def _path_book_stmt(dialect: str) -> Any:
    return sa.select(folders.c.id, sources.c.path, folders.c.path) \
        .select_from(folders.join(sources, folders.c.source_id == sources.c.id)) \
        .where(ids_param(folders.c.id, dialect))


async def path_book(conn: AsyncConnection, folder_ids: set[int]) -> present.PathBook:
    """Source and folder paths of the folders a page of photos lives in: one query (one per
    5,000 folders)."""
    found: dict[int, tuple[str | None, str]] = {}
    stmt = by_ids("path_book", conn.dialect.name, _path_book_stmt)
    for part in chunks(sorted(folder_ids)):
        rows = await conn.execute(stmt, {"ids": list(part)})
        found.update((r[0], (r[1], r[2])) for r in rows.all())
    return present.PathBook(found)


# -- keyset pages ---------------------------------------------------------------------------
def _after(col: Any, value: Any, pid: int, desc: bool) -> Any:
    if desc:
        return sa.and_(col <= value, sa.or_(col < value, photos.c.id < pid))
    return sa.and_(col >= value, sa.or_(col > value, photos.c.id > pid))


def _ordered(stmt: Any, col: Any, desc: bool) -> Any:
    if desc:
        return stmt.order_by(col.desc(), photos.c.id.desc())
    return stmt.order_by(col.asc(), photos.c.id.asc())


@dataclass
class Page:
    rows: list[AnyRow]
    next: present.Position | None
    # The rows' folders' paths when the page's statement read them too (``merged_page``
    # on MariaDB): then no ``path_book`` statement.
    book: present.PathBook | None = None


async def photo_page(conn: AsyncConnection, where: Sequence[Any], sort: str, order: str,
                     limit: int, after: present.Position | None,
                     undated: bool = True, few: bool = False,
                     columns: Sequence[Any] = PHOTO_COLUMNS,
                     reuse: tuple[Any, dict[str, Any]] | None = None) -> Page:
    """One page of photos matching ``where`` in ``(sort, id)`` order after ``after``.

    ``undated=False`` says the filters already exclude photos without a date (a date
    range), which saves the second phase of a ``taken`` sort. ``few=True`` says the
    filters hold few rows that an index finds (a rare word's candidates): sort them rather
    than walk the order's index testing every row.

    ``reuse``: (a key, the values of ``where``'s bound parameters) when ``where`` is the
    same expression for every call with that key; the first page's statements are then
    built once per shape and reused (see ``_FOLDER_BY_ID``), only bound to the values.
    """
    col = SORT_COLUMNS[sort]
    desc = order == "desc"
    params: dict[str, Any] | None = None
    memo: Callable[[Any, Callable[[], Any]], Any] = _build
    if reuse is not None and after is None:
        shape = (reuse[0], sort, order, limit, undated, few, tuple(columns),
                 conn.dialect.name)
        params = reuse[1]

        def memo(tag: Any, make: Callable[[], Any]) -> Any:
            key = (shape, tag)
            found = _PAGE_STATEMENTS.get(key)
            if found is None:
                if len(_PAGE_STATEMENTS) >= 256:
                    _PAGE_STATEMENTS.clear()
                found = _PAGE_STATEMENTS[key] = make()
            return found
    elif reuse is not None:
        params = reuse[1]

    def base() -> Any:  # built only when a statement is (memo may have it already)
        return sa.select(*columns).where(*where)

    rows: list[AnyRow] = []
    # The same order, through an expression no index serves.
    sorted_col: Any = sa.func.coalesce(col, col) if few else col
    if sort != "taken":
        order_col: Any = sorted_col
        if not undated and conn.dialect.name == "sqlite" and not few:
            # A date range narrows far more than walking the name (or size) index and
            # filtering would: keep SQLite on the taken_at range and sort what it finds.
            order_col = col.concat("") if sort == "name" else col + 0

        def page() -> Any:
            stmt = base() if after is None else base().where(
                _after(col, after.value, after.id, desc))
            return _ordered(stmt, order_col, desc).limit(limit + 1)

        rows = list((await conn.execute(memo("page", page), params)).all())
    else:
        in_undated = after is not None and after.value is None
        if not in_undated:
            def dated() -> Any:
                stmt = base().where(col.is_not(None))
                if after is not None:
                    stmt = stmt.where(_after(col, after.value, after.id, desc))
                return _ordered(stmt, sorted_col, desc).limit(limit + 1)

            rows = list((await conn.execute(memo("dated", dated), params)).all())
        if undated and len(rows) <= limit:
            rest = limit + 1 - len(rows)

            def undated_rows() -> Any:
                stmt = base().where(col.is_(None))
                if in_undated:
                    assert after is not None
                    stmt = stmt.where(photos.c.id < after.id if desc
                                      else photos.c.id > after.id)
                pid: Any = photos.c.id + 0 if few else photos.c.id
                return stmt.order_by(pid.desc() if desc else pid.asc()).limit(rest)

            rows += (await conn.execute(memo(("undated", rest), undated_rows), params)).all()
    if len(rows) <= limit:
        return Page(rows, None)
    rows = rows[:limit]
    last = rows[-1]
    return Page(rows, position_of(last, sort))


def _build(_tag: Any, make: Callable[[], Any]) -> Any:
    return make()


# First-page statements of photo_page(reuse=...), by shape; a few (sorts x orders x limits
# x field sets a client asks for), cleared if a client varies them without end.
_PAGE_STATEMENTS: dict[Any, Any] = {}


def _before(col: Any, value: Any, pid: int, desc: bool) -> Any:
    """Rows before ``(value, pid)`` in ``(col, id)`` order: the mirror of ``_after``."""
    return _after(col, value, pid, not desc)


def position_of(row: AnyRow, sort: str) -> present.Position:
    """Where ``row`` stands in a ``sort`` order (what a cursor after it would hold)."""
    value = {"name": natural_key(row.name) if sort == "name" else None, "size": row.size,
             "taken": present.wall_value(row.taken_at)}[sort]
    return present.Position(value, int(row.id))


async def count_before(conn: AsyncConnection, where: Sequence[Any], sort: str, order: str,
                       pos: present.Position) -> int:
    """How many rows matching ``where`` come before ``pos``: the index of the photo at
    ``pos`` in the listing. An index range count (one or two for ``taken``, whose undated
    photos come last in both directions), never a walk of the rows."""
    col = SORT_COLUMNS[sort]
    desc = order == "desc"
    count = sa.select(sa.func.count()).select_from(photos).where(*where)
    if sort != "taken":
        return int(await conn.scalar(count.where(_before(col, pos.value, pos.id, desc))) or 0)
    if pos.value is not None:
        return int(await conn.scalar(count.where(
            col.is_not(None), _before(col, pos.value, pos.id, desc))) or 0)
    dated = int(await conn.scalar(count.where(col.is_not(None))) or 0)
    undated = int(await conn.scalar(count.where(
        col.is_(None), photos.c.id > pos.id if desc else photos.c.id < pos.id)) or 0)
    return dated + undated


async def rows_before(conn: AsyncConnection, where: Sequence[Any], sort: str, order: str,
                      limit: int, pos: present.Position,
                      columns: Sequence[Any] = PHOTO_COLUMNS) -> list[AnyRow]:
    """Up to ``limit`` rows just before ``pos``, in listing order (keyset, backwards)."""
    col = SORT_COLUMNS[sort]
    desc = order == "desc"
    base = sa.select(*columns).where(*where)
    rows: list[AnyRow] = []
    if sort != "taken" or pos.value is not None:
        stmt = base.where(_before(col, pos.value, pos.id, desc))
        if sort == "taken":
            stmt = stmt.where(col.is_not(None))
        rows = list((await conn.execute(_ordered(stmt, col, not desc).limit(limit))).all())
    else:
        # Among the undated (by id, after every dated one): the undated before it, then the
        # last dated ones.
        stmt = base.where(col.is_(None), photos.c.id > pos.id if desc else photos.c.id < pos.id)
        stmt = stmt.order_by(photos.c.id.asc() if desc else photos.c.id.desc())
        rows = list((await conn.execute(stmt.limit(limit))).all())
        if len(rows) < limit:
            stmt = _ordered(base.where(col.is_not(None)), col, not desc)
            rows += (await conn.execute(stmt.limit(limit - len(rows)))).all()
    rows.reverse()
    return rows


# -- folders.list ---------------------------------------------------------------------------
async def top_level(conn: AsyncConnection) -> dict[str, Any]:
    """One entry per source: its top folder's counts under the source's name."""
    top = folders.alias("top")
    rows = (await conn.execute(
        sa.select(
            top.c.id, sources.c.id.label("source_id"), top.c.parent_id,
            sa.func.coalesce(top.c.path, "").label("path"), sources.c.name,
            sa.func.coalesce(top.c.photo_count, 0).label("photo_count"),
            sa.func.coalesce(top.c.folder_count, 0).label("folder_count"),
            sa.func.coalesce(top.c.total_count, 0).label("total_count"),
            sa.func.coalesce(top.c.bytes, 0).label("bytes"), top.c.missing_since,
            sources.c.path.label("source_path"), sources.c.online,
        ).select_from(sources.outerjoin(
            top, sa.and_(top.c.source_id == sources.c.id, top.c.parent_id.is_(None))))
        .order_by(sources.c.name, sources.c.id))).mappings().all()
    return {"folder": None, "breadcrumbs": [], "folders": [present.folder(r) for r in rows],
            "photos": [], "next_cursor": None}


_TREE_COLUMNS = (
    folders.c.id, folders.c.source_id, folders.c.parent_id, folders.c.path, folders.c.name,
    folders.c.depth, folders.c.photo_count, folders.c.folder_count, folders.c.total_count,
    folders.c.bytes, folders.c.missing_since, folders.c.path_hash,
)


_CHAIN_OF = sa.and_(folders.c.source_id == sa.bindparam("source_id"),
                    folders.c.path_hash.in_(sa.bindparam("hashes", expanding=True)))
# Built once (see _FOLDER_BY_ID): the breadcrumbs with or without the subfolders.
_TREE_AND_CHAIN = sa.select(*_TREE_COLUMNS).where(
    sa.or_(_CHAIN_OF, folders.c.parent_id == sa.bindparam("parent_id"))
).order_by(folders.c.name, folders.c.id)
_CHAIN = sa.select(*_TREE_COLUMNS).where(_CHAIN_OF).order_by(folders.c.name, folders.c.id)


async def crumbs_and_subfolders(
        conn: AsyncConnection, folder: RowMapping, with_subfolders: bool = True,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Breadcrumbs (the chain from the source's top folder down to ``folder`` itself) and
    the subfolders of ``folder``, in one query: both are in the folder's source, so the
    source's columns come from ``folder``."""
    hashes = [paths.path_hash(p) for p in paths.ancestors(folder["path"])]
    rows = (await conn.execute(
        _TREE_AND_CHAIN if with_subfolders else _CHAIN,
        {"source_id": folder["source_id"], "hashes": hashes, "parent_id": folder["id"]},
    )).mappings().all()
    wanted = set(hashes)
    chain = sorted((r for r in rows if r["source_id"] == folder["source_id"]
                    and r["path_hash"] in wanted), key=lambda r: r["depth"])
    crumbs = [{"id": r["id"], "name": folder["source_name"] if r["parent_id"] is None
               else r["name"]} for r in chain]
    source = {"source_path": folder["source_path"], "online": folder["online"]}
    subs = [present.folder({**r, **source}) for r in rows
            if r["parent_id"] == folder["id"] and r["missing_since"] is None]
    subs.sort(key=lambda f: (natural_key(f["name"]), f["id"]))  # as photos are listed
    return crumbs, subs


_FOLDER_PHOTOS = [photos.c.folder_id == sa.bindparam("folder_id"),
                  photos.c.status != HIDDEN_IN_FOLDERS]


async def list_folder(conn: AsyncConnection, *, folder: int | None = None,
                      path: str | None = None, photos_: bool = True, sort: str = "name",
                      order: str = "asc", limit: int = 200, cursor: str | None = None,
                      fields: Sequence[str] | None = None,
                      around: int | None = None, encoded: bool = False) -> dict[str, Any]:
    """The reply of ``folders.list``; with ``encoded``, its photos already written as JSON
    (``present.photos_json``: the same text in the reply, half the work)."""
    wanted = present.check_fields(fields)
    if around is not None and cursor is not None:
        raise _bad("around", "give around or cursor, not both")
    if folder is None and path is None:
        if cursor is not None or around is not None:
            raise _bad("cursor" if cursor is not None else "around",
                       "the top level has no pages")
        return await top_level(conn)
    row = await folder_row(conn, folder, path)
    scope = present.scope("folders.list", row["id"])
    after = present.decode_cursor(cursor, scope, sort, order)
    doc = present.folder(row, name=row["source_name"] if row["parent_id"] is None else None)
    crumbs, subs = await crumbs_and_subfolders(conn, row, with_subfolders=after is None)
    out: dict[str, Any] = {
        "folder": doc,
        "breadcrumbs": crumbs,
        # Subfolders come with the first page only; later pages carry photos.
        "folders": subs if after is None else [],
        "photos": [],
        "next_cursor": None,
    }
    if photos_:
        columns = photo_columns(wanted)
        reuse: tuple[Any, dict[str, Any]] | None = None
        if after is None and around is None:  # a first page: its statements built once
            where: Sequence[Any] = _FOLDER_PHOTOS
            reuse = ("folders.list", {"folder_id": row["id"]})
        else:  # built only here: two comparisons are a tenth of a ms to make (issue 13)
            where = [photos.c.folder_id == row["id"], photos.c.status != HIDDEN_IN_FOLDERS]
        before: list[AnyRow] = []
        if around is not None:
            out["offset"] = 0
            anchor = await _listed_photo(conn, where, around, columns)
            if anchor is not None:
                # The page opens about a third of the way before the photo, so the photo
                # and what follows it are on screen; ``offset`` places the page in the
                # listing (earlier rows: page from the start, without a cursor).
                at = position_of(anchor, sort)
                before = await rows_before(conn, where, sort, order, limit // 3, at, columns)
                out["offset"] = await count_before(conn, where, sort, order, at) - len(before)
                after = _just_before(anchor, sort, order)
        page = await photo_page(conn, where, sort, order, limit - len(before), after,
                                columns=columns, reuse=reuse)
        book = present.PathBook({row["id"]: (row["source_path"], row["path"])})
        shape = present.photos_json if encoded else present.photos
        out["photos"] = shape([*before, *page.rows], book, wanted)
        if page.next is not None:
            out["next_cursor"] = present.encode_cursor(scope, sort, order, page.next)
    return out


async def _listed_photo(conn: AsyncConnection, where: Sequence[Any], photo_id: int,
                        columns: Sequence[Any] = PHOTO_COLUMNS) -> AnyRow | None:
    """The row of ``photo_id`` if it is in this listing (``around`` of a photo that left the
    folder opens the folder at its start)."""
    if not 0 < photo_id <= INT64_MAX:
        return None
    return (await conn.execute(sa.select(*columns).where(
        photos.c.id == photo_id, *where))).first()


def _just_before(row: AnyRow, sort: str, order: str) -> present.Position:
    """A keyset position from which the next page starts *at* ``row``: its sort value with
    the id just before it in this direction (ties are broken by id, and no id sits between
    id and id±1)."""
    pos = position_of(row, sort)
    return present.Position(pos.value, pos.id - 1 if order == "asc" else pos.id + 1)


# -- photos.search --------------------------------------------------------------------------
_DAY = re.compile(r"^(\d{4})(?:-(\d{1,2})(?:-(\d{1,2}))?)?$")


def parse_when(name: str, text: str | None, end: bool) -> tuple[dt.datetime, bool] | None:
    """A date bound: (time, inclusive). ``YYYY``, ``YYYY-MM`` and ``YYYY-MM-DD`` name a whole
    year, month or day (as an end bound: up to its last instant); anything else must be an
    ISO date-time. A zone, if given, is dropped: ``taken_at`` is the camera's wall clock."""
    if text is None:
        return None
    s = text.strip()
    m = _DAY.match(s)
    try:
        if m:
            year, month, day = int(m[1]), int(m[2] or 1), int(m[3] or 1)
            start = dt.datetime(year, month, day)
            if not end:
                return start, True
            try:
                if m[3]:
                    return start + dt.timedelta(days=1), False
                if m[2]:
                    return (dt.datetime(year + 1, 1, 1) if month == 12
                            else dt.datetime(year, month + 1, 1)), False
                return dt.datetime(year + 1, 1, 1), False
            except (ValueError, OverflowError):  # the end of year 9999
                return dt.datetime.max, True
        value = dt.datetime.fromisoformat(s.replace(" ", "T", 1) if " " in s else s)
        return value.replace(tzinfo=None), True
    except (ValueError, OverflowError):
        raise _bad(name, f"not a date: {text!r} (use YYYY-MM-DD or an ISO date-time such "
                   "as 2008-05-30T15:56:01)") from None


def like_escape(text: str) -> str:
    """``text`` matching only itself in a LIKE pattern with ESCAPE LIKE_ESCAPE."""
    e = LIKE_ESCAPE
    return text.replace(e, e + e).replace("%", e + "%").replace("_", e + "_")


def like_pattern(word: str) -> str:
    """``%word%``, lower-cased, its wildcards escaped."""
    return f"%{like_escape(word.lower())}%"


def contains(col: Any, word: str, dialect: str) -> Any:
    """``col`` contains ``word``, ignoring case. SQLite's LIKE already ignores (ASCII) case,
    and twice as fast without lower(); PostgreSQL has ILIKE; MariaDB needs lower() because
    names have a binary collation, and the lower-cased text compared byte for byte
    (``MYSQL_MATCH``): folder paths, cameras and lenses have the database's collation,
    which also ignores accents (``zürich`` LIKE ``%zurich%``), where PostgreSQL and SQLite
    do not, and where the trigram index (``textindex``), exact bytes, would not offer
    that row: the plan chosen would decide what a search finds."""
    pattern = like_pattern(word)
    if dialect == "sqlite":
        return col.like(pattern, escape=LIKE_ESCAPE)
    if dialect == "postgresql":
        return col.ilike(pattern, escape=LIKE_ESCAPE)
    return sa.func.lower(col).collate(MYSQL_MATCH).like(pattern, escape=LIKE_ESCAPE)


# The collation of MariaDB's text matches (``contains``).
MYSQL_MATCH = "utf8mb4_bin"


_contains = contains


def _starts_with(col: Any, prefix: str, dialect: str) -> Any:
    """``col`` begins with ``prefix``, byte for byte: folder paths are case-sensitive on
    Linux, while LIKE ignores case on SQLite (ASCII) and MariaDB compares with the database's
    case-insensitive collation unless asked for bytes."""
    if dialect in ("mysql", "mariadb"):
        # Both sides as bytes (the prefix sent as text: aiomysql mangles bytes parameters).
        return sa.func.substr(sa.cast(col, sa.LargeBinary), 1, len(prefix.encode())) == \
            sa.cast(sa.literal(prefix, sa.String), sa.LargeBinary)
    return sa.func.substr(col, 1, len(prefix)) == prefix


@dataclass
class Search:
    """Validated filters of photos.search."""

    words: list[str] = field(default_factory=list)
    date_from: tuple[dt.datetime, bool] | None = None
    date_to: tuple[dt.datetime, bool] | None = None
    camera: list[str] = field(default_factory=list)
    has_gps: bool | None = None
    folder: RowMapping | None = None
    recursive: bool = True
    status: str = "ok"
    indexed: list[textindex.Word] = field(default_factory=list)  # textindex.prepare'd

    def scope(self) -> str:
        return present.scope(
            "photos.search", self.words, self.date_from, self.date_to, self.camera,
            self.has_gps, None if self.folder is None else self.folder["id"], self.recursive,
            self.status)

    def text_words(self) -> list[textindex.Word]:
        return [*(textindex.Word(w, textindex.PHOTO_COLUMNS, True) for w in self.words),
                *(textindex.Word(w, textindex.CAMERA_COLUMNS, False) for w in self.camera)]

    def conditions(self, dialect: str, sort: str,
                   implied: frozenset[str] = frozenset()) -> list[Any]:
        """The WHERE clause; ``implied``: words whose conditions are left out (a stream's
        own condition implies them, ``textindex.Arm.implies``)."""
        out: list[Any] = []
        looked_up = {w.text: w for w in self.indexed if w.paths}
        for word in self.words:
            if word in implied:
                continue
            in_path = [_contains(folders.c.path, word, dialect)]
            if word in looked_up:  # the folders the index offers, not every folder
                in_path.insert(0, looked_up[word].folder_ids(dialect))
            # The folder first: a photo of a matching folder (every photo of a place or a
            # month) is then one probe of the folders' ids, not four LIKEs before it
            # (PostgreSQL evaluates an OR in the order written: 2x on a place's page).
            out.append(sa.or_(
                photos.c.folder_id.in_(sa.select(folders.c.id).where(*in_path)),
                *(_contains(photos.c[c], word, dialect) for c in textindex.PHOTO_COLUMNS)))
        if self.date_from is not None:
            out.append(photos.c.taken_at >= self.date_from[0])
        if self.date_to is not None:
            when, inclusive = self.date_to
            out.append(photos.c.taken_at <= when if inclusive else photos.c.taken_at < when)
        for word in self.camera:
            out.append(sa.or_(_contains(photos.c.make, word, dialect),
                              _contains(photos.c.model, word, dialect)))
        if self.has_gps is True:
            out += [photos.c.gps_lat.is_not(None), photos.c.gps_lon.is_not(None)]
        elif self.has_gps is False:
            out.append(sa.or_(photos.c.gps_lat.is_(None), photos.c.gps_lon.is_(None)))
        if self.folder is not None:
            f = self.folder
            if not self.recursive:
                out.append(photos.c.folder_id == f["id"])
            elif f["path"] == "":
                source: Any = photos.c.source_id
                if dialect == "sqlite" and sort == "taken" and \
                        f["total_count"] > BIG_SUBTREE:
                    # A large root: walking the taken_at index and skipping other roots'
                    # photos beats sorting the whole root, which SQLite (without
                    # statistics) would choose.
                    source = source + 0
                out.append(source == f["source_id"])
            else:
                out.append(photos.c.folder_id.in_(sa.select(folders.c.id).where(
                    folders.c.source_id == f["source_id"],
                    sa.or_(folders.c.id == f["id"],
                           _starts_with(folders.c.path, f["path"] + "/", dialect)),
                )))
        if self.status != "any":
            status: Any = photos.c.status
            if dialect == "sqlite" and self.status == "ok":
                # Most photos are ok: without statistics SQLite would pick the status
                # index and walk the whole library instead of the taken_at/date index.
                status = status + ""
            out.append(status == self.status)
        return out


async def search(conn: AsyncConnection, *, text: str | None = None,
                 date_from: str | None = None, date_to: str | None = None,
                 camera: str | None = None, has_gps: bool | None = None,
                 folder: int | None = None, path: str | None = None, recursive: bool = True,
                 status: str = "ok", sort: str = "name", order: str = "asc",
                 limit: int = 200, cursor: str | None = None,
                 fields: Sequence[str] | None = None, count: bool = False,
                 encoded: bool = False) -> dict[str, Any]:
    """The reply of ``photos.search``; ``encoded`` as for ``list_folder``."""
    wanted = present.check_fields(fields)
    f = Search(
        words=(clean("text", text) or "").split(),
        date_from=parse_when("date_from", clean("date_from", date_from), end=False),
        date_to=parse_when("date_to", clean("date_to", date_to), end=True),
        camera=(clean("camera", camera) or "").split(),
        has_gps=has_gps, recursive=recursive, status=status,
    )
    if f.date_from and f.date_to and (f.date_from[0] > f.date_to[0] or (
            f.date_from[0] == f.date_to[0] and not f.date_to[1])):  # --from 2024 --to 2023
        raise _bad("date_to", f"{date_to} is before date_from {date_from}")
    if folder is not None or path is not None:
        f.folder = await folder_row(conn, folder, path)
    scope = f.scope()
    after = present.decode_cursor(cursor, scope, sort, order)
    dated = f.date_from is not None or f.date_to is not None
    f.indexed = await textindex.prepare(conn, f.text_words())
    arms = await textindex.arms(conn, f.indexed) if sort == "name" and not dated else None
    columns = photo_columns(wanted)
    if arms is not None:
        # The conditions are built per set of implied words, when a stream needs them: a
        # place's or a month's one stream implies its word and never tests it.
        page = await merged_page(conn, None, arms, order, limit, after, columns,
                                 lambda implied: f.conditions(conn.dialect.name, sort, implied))
    else:
        where = f.conditions(conn.dialect.name, sort)
        start = await textindex.plan(conn, f.indexed)
        if start is not None:
            where.append(start.candidates(conn.dialect.name))
        page = await photo_page(conn, where, sort, order, limit, after, undated=not dated,
                                few=start is not None, columns=columns)
    book = page.book if page.book is not None \
        else await path_book(conn, {r.folder_id for r in page.rows})
    out: dict[str, Any] = {
        "photos": (present.photos_json if encoded else present.photos)(
            page.rows, book, wanted),
        "next_cursor": None if page.next is None
        else present.encode_cursor(scope, sort, order, page.next),
    }
    if count:
        where = f.conditions(conn.dialect.name, sort)
        if conn.dialect.name in ("sqlite", "mysql", "mariadb") and f.folder is None \
                and not dated:
            # The photos one word's index offers (a superset), each tested by every
            # condition, instead of every photo of the library: on SQLite a place's count
            # 1.0 s -> 0.1 s, a rare word's 1.3 s -> 10 ms at 1,000,000 photos; on MariaDB
            # every count scanned (2.2-2.5 s, a word nothing has included). Not with a
            # folder or a date range, whose own indexes already count from. PostgreSQL's
            # trigram index serves the conditions themselves.
            start = await textindex.count_start(conn, f.indexed)
            if start is not None:
                where.append(start.candidates(conn.dialect.name))
        out["count"] = await count_matching(conn, where)
    return out


async def merged_page(conn: AsyncConnection, where: Sequence[Any] | None,
                      arms: Sequence[textindex.Arm], order: str, limit: int,
                      after: present.Position | None,
                      columns: Sequence[Any] = PHOTO_COLUMNS,
                      narrower: Callable[[frozenset[str]], Sequence[Any]] | None = None
                      ) -> Page:
    """One page by name from several streams (``textindex.arms``): each stream's own
    first page under every condition, merged in ``(name_key, id)`` order. Every photo of
    the true page is on the page of each stream that holds it (what comes before it in a
    stream comes before it in the union), so the merge is exact; a photo in two streams
    is taken once. The streams' pages are one statement (a UNION ALL) of ids and sort keys
    only; the page's own rows are read by id after the merge: a stream sorted from its
    candidates (a place's 25,000 photos) then sorts narrow tuples, not every column of
    each candidate (2-3x less work for PostgreSQL, issue 13). ``narrower(words)``: the
    conditions without those words', for a stream whose condition implies them;
    ``where=None``: ``narrower(frozenset())`` gives the whole conditions, built if a stream
    needs them."""
    if not arms:
        return Page([], None)
    col = SORT_COLUMNS["name"]
    desc = order == "desc"
    stmts = []
    # Each set of implied words' conditions built once: a camera's value streams all imply
    # the word, and building the conditions again for each of them was 0.2 ms a stream.
    narrowed: dict[frozenset[str], Sequence[Any]] = {}
    for i, arm in enumerate(arms):
        # The stream's own condition first: SQLite tests the terms in that order, and it
        # is the cheap one that rejects most rows of a walk.
        implied = arm.implies if narrower is not None else frozenset()
        if not implied and where is not None:
            conds: Sequence[Any] = where
        else:
            assert narrower is not None, "merged_page: neither conditions nor narrower"
            if implied not in narrowed:
                narrowed[implied] = narrower(implied)
            conds = narrowed[implied]
        stmt = sa.select(photos.c.id, col.label("sort_key"), sa.literal(i).label("arm"))
        if arm.ids is not None:  # MariaDB: the ids first, then their photos (textindex.Arm)
            ids = arm.ids.subquery()
            stmt = stmt.select_from(ids.join(photos, photos.c.id == ids.c.id)).where(*conds)
            for name in ("mysql", "mariadb"):
                stmt = stmt.prefix_with("STRAIGHT_JOIN", dialect=name)
        else:
            stmt = stmt.where(arm.condition, *conds)
        if after is not None:
            stmt = stmt.where(_after(col, after.value, after.id, desc))
        if arm.walk_index is not None:
            for name in ("mysql", "mariadb"):
                stmt = stmt.with_hint(photos, f"FORCE INDEX ({arm.walk_index})", name)
        # The same order, through an expression no index serves, for a stream to sort.
        stmts.append(_ordered(stmt, sa.func.coalesce(col, col) if arm.few else col, desc)
                     .limit(limit + 1))
    union: Any = textindex.sorted_folder_stream(conn, list(arms), stmts[0]) \
        if len(stmts) == 1 else sa.union_all(*(s.subquery().select() for s in stmts))
    keys: dict[int, Any] = {}
    per_arm = [0] * len(arms)
    # Fetched whole (``all``): iterating a result fetches row by row through the async
    # adaptor, a few microseconds a row more (issue 13).
    for pid, sort_key, arm_no in (await conn.execute(union)).all():
        per_arm[arm_no] += 1
        keys.setdefault(int(pid), sort_key)
    more = any(n > limit for n in per_arm)
    merged = sorted(keys, key=lambda pid: (keys[pid], pid), reverse=desc)
    if len(merged) > limit:
        merged, more = merged[:limit], True
    if not merged:
        return Page([], None)
    found: dict[int, AnyRow] = {}
    cols = tuple(columns)
    dialect = conn.dialect.name
    mysql = dialect in ("mysql", "mariadb")
    stmt = by_ids(("photos", mysql, *(c.name for c in cols)), dialect,
                  _rows_with_paths(cols) if mysql
                  else lambda d: sa.select(*cols).where(ids_param(photos.c.id, d)))
    book: dict[int, tuple[str | None, str]] | None = {} if mysql else None
    for part in chunks(merged):
        for r in (await conn.execute(stmt, {"ids": list(part)})).all():
            found[int(r[0])] = r
            if book is not None and r[-1] is not None:
                book[r.folder_id] = (r[-2], r[-1])
    # A row removed between the two statements is left out (the page is a moment's).
    rows = [found[pid] for pid in merged if pid in found]
    paths_of = None if book is None else present.PathBook(book)
    if not more or not rows:
        return Page(rows, None, paths_of)
    return Page(rows, position_of(rows[-1], "name"), paths_of)


def _rows_with_paths(cols: tuple[Any, ...]) -> Callable[[str], Any]:
    """MariaDB: the page's rows by id with their folders' source and folder paths (the
    ``path_book`` of the page, two primary-key lookups a row of small tables): one
    statement less a search, a few ms of the daemon's CPU on this engine (issue 13).
    Outer joins: a row is never lost to them; a folder or source not found gives no path,
    as in ``path_book``."""
    def make(d: str) -> Any:
        return sa.select(*cols, sources.c.path.label("book_source_path"),
                         folders.c.path.label("book_folder_path")) \
            .select_from(photos.outerjoin(folders, folders.c.id == photos.c.folder_id)
                         .outerjoin(sources, sources.c.id == folders.c.source_id)) \
            .where(ids_param(photos.c.id, d))
    return make


async def count_matching(conn: AsyncConnection, where: Sequence[Any]) -> int:
    """How many photos match: what a client needs to size a scroll bar before it has the
    rows (one COUNT over the same conditions as the page)."""
    return int(await conn.scalar(sa.select(sa.func.count()).select_from(photos).where(*where))
               or 0)


# -- photos.get -----------------------------------------------------------------------------
async def exact_copies(conn: AsyncConnection, rec: PhotoRecord) -> int:
    """How many other ok photos have the same content (sha256)."""
    sha = rec.row.sha256
    if not sha:
        return 0
    return int(await conn.scalar(
        sa.select(sa.func.count()).select_from(photos).where(
            photos.c.sha256 == sha, photos.c.status == "ok", photos.c.id != rec.id)) or 0)


def photo_detail(rec: PhotoRecord, exact: int, near: int | None) -> dict[str, Any]:
    """The reply of ``photos.get``."""
    doc = present.photo(rec.row, rec.abs_path)
    doc["folder"] = {"id": rec.row.folder_id, "path": rec.folder_abs_path}
    doc["source"] = {"id": rec.row.source_id, "name": rec.source_name,
                     "online": rec.online}
    doc["missing_since"] = iso(rec.missing_since)
    doc["duplicates"] = {"exact": exact, "near": near}
    return doc


async def photos_by_id(conn: AsyncConnection, ids: Sequence[int],
                       fields: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """``photos.get`` with ``ids``: the listed fields of many photos in one query (one per
    5,000 ids) and one for their folders' paths, in the order asked; ids the catalog does
    not have are left out. No duplicate counts: that is one photo's detail."""
    wanted = present.check_fields(fields)
    valid = [i for i in dict.fromkeys(ids) if 0 < i <= INT64_MAX]
    found: dict[int, AnyRow] = {}
    for part in chunks(valid):
        rows = await conn.execute(sa.select(*photo_columns(wanted))
                                  .where(photos.c.id.in_(part)))
        found.update((int(r.id), r) for r in rows)
    ordered = [found[i] for i in valid if i in found]
    book = await path_book(conn, {r.folder_id for r in ordered})
    return present.photos(ordered, book, wanted)
