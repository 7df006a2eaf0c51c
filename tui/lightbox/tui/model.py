"""What the centre of the browser shows: one folder's photos or a search, loaded in pages.

A ``Query`` says what to list (a folder, everything below a folder, or a search with
filters) and in which order; the daemon sorts, so a new order is a new query. ``PhotoSeq``
holds the rows loaded so far with only the fields the grid, the list and the preview need
(the metadata panel asks for the rest of one photo at a time). The first page is small so the
folder paints at once; the rest follows in large pages in the background, and the grid and
list only ever render what is on screen, so a folder of 100,000 photos costs one small
dictionary per photo and nothing per pixel.
"""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from typing import Any

from lightbox.tui.format import DASH
from lightbox.tui.link import Link

FIELDS = ["name", "size", "taken_at", "taken_offset", "make", "model", "width", "height",
          "status", "error", "sha256", "folder_id"]
SEARCH_FIELDS = [*FIELDS, "path"]  # results come from many folders: show where


def _slim(photo: dict[str, Any]) -> dict[str, Any]:
    """Keep a listed photo small: a folder of 100,000 is 100,000 of these. The sha256 only
    versions cached images here (``photos.get`` has the whole of it), and camera names and
    dates repeat."""
    sha = photo.get("sha256")
    if sha:
        photo["sha256"] = sha[:16]
    for key in ("make", "model", "status", "mime"):
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

    @property
    def is_search(self) -> bool:
        return self.filters is not None or self.recursive

    def sorted_by(self, sort: str, order: str) -> Query:
        return replace(self, sort=sort, order=order)

    def method(self) -> tuple[str, dict[str, Any]]:
        params: dict[str, Any] = {"sort": self.sort, "order": self.order, "fields": FIELDS}
        if not self.is_search:
            return "folders.list", {**params, "folder": self.folder_id}
        params["fields"] = SEARCH_FIELDS
        if self.filters is not None:
            params.update(self.filters.params())
        everywhere = self.filters is not None and self.filters.everywhere
        if self.folder_id is not None and not everywhere:
            params["folder"] = self.folder_id
            params["recursive"] = True
        return "photos.search", params


@dataclass
class PhotoSeq:
    query: Query
    expected: int = 0  # from the folder's photo count, when known
    items: list[dict[str, Any]] = field(default_factory=list)
    complete: bool = False
    error: str = ""
    folder: dict[str, Any] | None = None
    breadcrumbs: list[dict[str, Any]] = field(default_factory=list)
    subfolders: list[dict[str, Any]] = field(default_factory=list)
    _index: dict[int, int] | None = None

    def __len__(self) -> int:
        return len(self.items)

    def __bool__(self) -> bool:
        return True  # an empty folder is still a folder (``if seq`` must not mean "has items")

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.items[i]

    def get(self, i: int) -> dict[str, Any] | None:
        return self.items[i] if 0 <= i < len(self.items) else None

    def extend(self, photos: list[dict[str, Any]]) -> None:
        self.items.extend(photos)
        self._index = None

    def index_of(self, photo_id: int | None) -> int | None:
        if photo_id is None:
            return None
        if self._index is None:
            self._index = {int(p["id"]): i for i, p in enumerate(self.items)}
        return self._index.get(photo_id)

    def remove(self, ids: set[int]) -> bool:
        before = len(self.items)
        self.items = [p for p in self.items if int(p["id"]) not in ids]
        self._index = None
        return len(self.items) != before

    @property
    def total(self) -> int:
        return len(self.items) if self.complete else max(self.expected, len(self.items))


async def pages(link: Link, seq: PhotoSeq) -> AsyncIterator[int]:
    """Load ``seq`` page by page; yields the number of photos loaded so far."""
    method, params = seq.query.method()
    cursor: str | None = None
    limit = FIRST_PAGE
    while True:
        page = await link.call(method, {**params, "limit": limit, "cursor": cursor})
        if method == "folders.list" and cursor is None:
            seq.folder = page.get("folder")
            seq.breadcrumbs = page.get("breadcrumbs") or []
            seq.subfolders = page.get("folders") or []
            if seq.folder:
                seq.expected = int(seq.folder.get("photo_count") or 0)
        seq.extend([_slim(p) for p in page.get("photos") or []])
        cursor = page.get("next_cursor")
        if not cursor:
            seq.complete = True
        yield len(seq.items)
        if not cursor:
            return
        limit = PAGE
