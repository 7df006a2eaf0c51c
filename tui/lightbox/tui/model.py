"""What the centre of the browser shows: a folder's photos or a search, loaded as looked at.

A ``Query`` says what to list (a folder, everything below a folder, or a search with
filters) and in which order; the daemon sorts, so a new order is a new query. ``PhotoSeq``
is the listing as the screens see it: its length is the whole count from the first reply
(the folder's photo count, or ``count`` of a search), its order (photo ids) arrives in large
id-only pages in the background, and the rows themselves (only the fields the grid, list and
preview need) are fetched in batches (``photos.get`` with ``ids``) for the part of the
listing on screen and around it; rows far from the cursor are dropped again. A folder of
100,000 photos opens with one small reply (``folders.list`` ``around`` the photo to show)
and costs an int per photo plus a few thousand small dictionaries, whatever is scrolled
through. ``get`` answers None for a row not here yet and tells ``on_miss``, which fetches it.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

from lightbox.tui.format import DASH
from lightbox.tui.link import Link

FIELDS = ["name", "size", "taken_at", "taken_offset", "make", "model", "width", "height",
          "lens", "orientation", "status", "error", "sha256", "folder_id"]
SEARCH_FIELDS = [*FIELDS, "path"]  # results come from many folders: show where


def _slim(photo: dict[str, Any]) -> dict[str, Any]:
    """Keep a listed photo small: a folder of 100,000 is 100,000 of these. The sha256 only
    versions cached images here (``photos.get`` has the whole of it), and camera names and
    dates repeat."""
    sha = photo.get("sha256")
    if sha:
        photo["sha256"] = sha[:16]
    for key in ("make", "model", "lens", "status", "mime"):
        value = photo.get(key)
        if isinstance(value, str):
            photo[key] = sys.intern(value)
    return photo
SORTS = ("name", "taken", "size")
SORT_LABELS = {"name": "name", "taken": "date taken", "size": "size"}
FIRST_PAGE = 120
PAGE = 2000


@dataclass(frozen=True)
class Filters:
    """The search bar's fields; empty ones are not sent."""

    text: str = ""
    date_from: str = ""
    date_to: str = ""
    camera: str = ""
    has_gps: bool | None = None
    everywhere: bool = False

    @property
    def active(self) -> bool:
        return bool(self.text or self.date_from or self.date_to or self.camera
                    or self.has_gps is not None)

    def params(self) -> dict[str, Any]:
        p: dict[str, Any] = {}
        for name in ("text", "date_from", "date_to", "camera"):
            value = getattr(self, name).strip()
            if value:
                p[name] = value
        if self.has_gps is not None:
            p["has_gps"] = self.has_gps
        return p

    def describe(self) -> str:
        parts = []
        if self.text:
            parts.append(f'"{self.text}"')
        if self.date_from or self.date_to:
            parts.append(f"{self.date_from or '…'} {DASH} {self.date_to or '…'}")
        if self.camera:
            parts.append(f"camera {self.camera}")
        if self.has_gps is not None:
            parts.append("with GPS" if self.has_gps else "without GPS")
        return ", ".join(parts) or "everything"


@dataclass(frozen=True)
class Query:
    folder_id: int | None
    filters: Filters | None = None  # None: the folder's own photos
    recursive: bool = False  # the folder and everything below it
    sort: str = "name"
    order: str = "asc"
    # A folder known only by its path (the one saved from the last run): its first page is
    # asked for by path, in the same call that finds the folder, and the listing's query
    # becomes the folder's id once the reply names it (``pages``).
    path: str | None = None

    @property
    def is_search(self) -> bool:
        return self.filters is not None or self.recursive

    def sorted_by(self, sort: str, order: str) -> Query:
        return replace(self, sort=sort, order=order)

    def method(self) -> tuple[str, dict[str, Any]]:
        params: dict[str, Any] = {"sort": self.sort, "order": self.order, "fields": FIELDS}
        if not self.is_search:
            where: dict[str, Any] = ({"folder": self.folder_id} if self.folder_id is not None
                                     else {"path": self.path})
            return "folders.list", {**params, **where}
        params["fields"] = SEARCH_FIELDS
        if self.filters is not None:
            params.update(self.filters.params())
        everywhere = self.filters is not None and self.filters.everywhere
        if self.folder_id is not None and not everywhere:
            params["folder"] = self.folder_id
            params["recursive"] = True
        return "photos.search", params


ROWS_KEEP = 6000  # rows held around the cursor; the rest are fetched again when needed
ROWS_BATCH = 300  # rows per photos.get: about two screens of the list, six of the grid


class PhotoSeq:
    """A listing: ``order`` (photo ids, None where not known yet) and the rows loaded."""

    def __init__(self, query: Query, expected: int = 0,
                 items: list[dict[str, Any]] | None = None) -> None:
        self.query = query
        self.expected = expected  # from the folder's photo count or the search's count
        self.complete = False  # the whole order is known
        self.error = ""
        self.folder: dict[str, Any] | None = None
        self.breadcrumbs: list[dict[str, Any]] = []
        self.subfolders: list[dict[str, Any]] = []
        self.order: list[int | None] = []
        self.rows: dict[int, dict[str, Any]] = {}
        self.last_miss: int | None = None
        self.on_miss: Callable[[int], None] | None = None
        self._index: dict[int, int] | None = None
        if items is not None:  # a fixed list (a duplicate group): complete from the start
            self.place(0, items)
            self.complete = True

    def __len__(self) -> int:
        return len(self.order)

    def __bool__(self) -> bool:
        return True  # an empty folder is still a folder (``if seq`` must not mean "has items")

    def __getitem__(self, i: int) -> dict[str, Any]:
        photo = self.get(i)
        if photo is None:
            raise IndexError(i)
        return photo

    @property
    def items(self) -> list[dict[str, Any]]:
        """The rows loaded, in listing order (tests and small listings)."""
        return [self.rows[pid] for pid in self.order if pid is not None and pid in self.rows]

    def get(self, i: int) -> dict[str, Any] | None:
        if not 0 <= i < len(self.order):
            return None
        pid = self.order[i]
        photo = self.rows.get(pid) if pid is not None else None
        if photo is None:
            self.last_miss = i
            if self.on_miss is not None:
                self.on_miss(i)
        return photo

    def id_at(self, i: int) -> int | None:
        """The photo id at ``i`` when the order knows it, whether or not its row is here
        (asks for nothing: a reload keeps the cursor's photo before its row arrived)."""
        return self.order[i] if 0 <= i < len(self.order) else None

    def loaded(self, i: int) -> bool:
        pid = self.order[i] if 0 <= i < len(self.order) else None
        return pid is not None and pid in self.rows

    # -- filled by the loader ---------------------------------------------------------------
    def _reach(self, n: int) -> None:
        if len(self.order) < n:
            self.order.extend([None] * (n - len(self.order)))

    def size_to(self, n: int) -> None:
        """The count the daemon gave: room for every photo before their ids arrive."""
        self._reach(n)

    def place(self, offset: int, photos: list[dict[str, Any]]) -> None:
        """Rows that arrived with their place in the listing (a page)."""
        self._reach(offset + len(photos))
        for k, photo in enumerate(photos):
            pid = int(photo["id"])
            self.order[offset + k] = pid
            self.rows[pid] = photo
        self._index = None

    def set_ids(self, offset: int, ids: list[int]) -> None:
        """Part of the order (an id-only page)."""
        self._reach(offset + len(ids))
        self.order[offset:offset + len(ids)] = ids
        self._index = None

    def finish(self, n: int) -> None:
        """The order is known to its end: ``n`` photos."""
        del self.order[n:]
        self.complete = True
        self._index = None

    def add_rows(self, photos: list[dict[str, Any]]) -> None:
        for photo in photos:
            self.rows[int(photo["id"])] = photo

    def missing(self, lo: int, hi: int) -> list[int]:
        """Ids in ``[lo, hi)`` whose order is known but whose rows are not here."""
        lo, hi = max(0, lo), min(hi, len(self.order))
        return [pid for pid in self.order[lo:hi] if pid is not None and pid not in self.rows]

    def evict(self, center: int, keep: int = ROWS_KEEP) -> None:
        """Drop rows far from ``center`` once more than ``keep`` are held."""
        if len(self.rows) <= keep * 3 // 2:
            return
        lo = max(0, center - keep // 2)
        near = {pid for pid in self.order[lo:lo + keep] if pid is not None}
        self.rows = {pid: row for pid, row in self.rows.items() if pid in near}

    # -- lookups and live changes ---------------------------------------------------------
    def index_of(self, photo_id: int | None) -> int | None:
        if photo_id is None:
            return None
        if self._index is None:
            self._index = {pid: i for i, pid in enumerate(self.order) if pid is not None}
        return self._index.get(photo_id)

    def remove(self, ids: set[int]) -> bool:
        before = len(self.order)
        self.order = [pid for pid in self.order if pid not in ids]
        for pid in ids:
            self.rows.pop(pid, None)
        self._index = None
        return len(self.order) != before

    @property
    def total(self) -> int:
        return len(self.order) if self.complete else max(self.expected, len(self.order))


def saved_folder(folder_id: int | None, path: str | None) -> Query | None:
    """The listing of a folder saved from the last run (by path when known: the path
    survives a new catalog, the id does not), in the browser's initial order."""
    if path:
        return Query(None, path=path)
    if folder_id is not None:
        return Query(int(folder_id))
    return None


def first_call(query: Query, around: int | None = None) -> tuple[str, dict[str, Any]]:
    """The call that brings a listing's first page (with the folder, its breadcrumbs and
    subfolders for a folder): what ``pages`` asks first, and what the app may ask before the
    browser is even built (``LightboxApp.prefetch_start``)."""
    method, params = query.method()
    first: dict[str, Any] = {**params, "limit": FIRST_PAGE}
    if method == "folders.list" and around is not None:
        first["around"] = around
    if method == "photos.search":
        first["count"] = True
    return method, first


async def pages(link: Link, seq: PhotoSeq, around: int | None = None,
                first_page: Awaitable[dict[str, Any]] | None = None) -> AsyncIterator[int]:
    """Load ``seq``: a first page of rows (opening at photo ``around`` in a folder), then the
    whole order in id-only pages. Yields the number of ids known so far.

    ``first_page``: the reply to ``first_call`` already on its way (asked for earlier), used
    instead of asking again."""
    method, first = first_call(seq.query, around)
    page = await (first_page if first_page is not None else link.call(method, first))
    if method == "folders.list":
        seq.folder = page.get("folder")
        seq.breadcrumbs = page.get("breadcrumbs") or []
        seq.subfolders = page.get("folders") or []
        if seq.folder:
            seq.expected = int(seq.folder.get("photo_count") or 0)
            if seq.query.folder_id is None:  # asked by path: from now on, by its id
                seq.query = replace(seq.query, folder_id=int(seq.folder["id"]), path=None)
    else:
        seq.expected = int(page.get("count") or 0)
    offset = int(page.get("offset") or 0)
    photos = [_slim(p) for p in page.get("photos") or []]
    seq.place(offset, photos)
    if not page.get("next_cursor") and offset == 0:
        seq.finish(len(photos))  # all of it in one page
        yield len(seq)
        return
    seq.size_to(seq.expected)
    yield len(seq)
    method, params = seq.query.method()
    # The order, from the start, in id-only pages (a few bytes a photo).
    cursor: str | None = None
    known = 0
    while True:
        part = await link.call(method, {**params, "fields": ["id"], "limit": PAGE,
                                        "cursor": cursor})
        ids = [int(p["id"]) for p in part.get("photos") or []]
        seq.set_ids(known, ids)
        known += len(ids)
        cursor = part.get("next_cursor")
        if not cursor:
            seq.finish(known)
            yield len(seq)
            return
        yield known


async def fetch_rows(link: Link, seq: PhotoSeq, ids: list[int]) -> int:
    """The rows of ``ids`` (``photos.get`` with ``ids``), into ``seq``; how many came."""
    fields = SEARCH_FIELDS if seq.query.is_search else FIELDS
    got = 0
    for i in range(0, len(ids), ROWS_BATCH):
        reply = await link.call("photos.get", {"ids": ids[i:i + ROWS_BATCH], "fields": fields})
        photos = [_slim(p) for p in reply.get("photos") or []]
        seq.add_rows(photos)
        got += len(photos)
    return got
