"""The seam between the library and where photos are: one interface per source kind.

The library (sync, indexer, ``photos.original``) asks a **source kind** five things, and
nothing else touches the world:

- ``list_prefix(prefix)``: every entry below a "/"-separated prefix, with a **completeness
  verdict**. Only a listing whose ``complete`` is True may make anything vanish; a listing
  cut short says why (``reason``, machine-readable) and is never a reason to delete.
- ``stat(rel)``: one entry now, or None when it is not there.
- ``read_range(loc, offset, length)``: bytes of the entry a locator names, refused
  (``confine.Refused`` with reason ``changed``) when it is not the entry that was listed.
- ``fingerprint(entry)``: what tells a changed entry from an unchanged one without reading
  it (local: size, mtime_ns, inode; S3: size, LastModified, ETag).
- ``locator(rel, entry)``: a small, picklable value naming the entry and its fingerprint,
  which is all a worker process gets (never a path to open or a client object).

Kinds are registered by ``sources.kind`` (``lightbox.daemon.kinds.KINDS``); ``local`` wraps
today's code (``media.confine``), ``s3`` talks ListObjectsV2/GetObject (``kinds.s3``).
The methods are blocking: callers run them in a thread or a worker, never on the loop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

# Why a listing is not complete (``Listing.reason``), stable for clients.
TRUNCATED_NO_TOKEN = "truncated_without_token"
REPEATED_TOKEN = "repeated_token"
PAGE_ERROR = "page_error"
PAGE_CAP = "page_cap"
UNREADABLE = "unreadable"


@dataclass(frozen=True)
class Entry:
    """One object or file: ``rel`` is "/"-separated below the source (its prefix removed)."""

    rel: str
    size: int
    mtime_ns: int
    tag: str | None = None        # S3: the ETag (quotes removed); local: None
    inode: int | None = None      # local only


@dataclass
class Listing:
    entries: list[Entry] = field(default_factory=list)
    complete: bool = True
    reason: str | None = None     # why not complete (above)
    message: str | None = None    # for a person
    pages: int = 0
    skipped: list[str] = field(default_factory=list)   # keys left out, and why

    def cut(self, reason: str, message: str) -> None:
        """The listing cannot be trusted to be whole; the first reason is kept."""
        if self.complete:
            self.complete, self.reason, self.message = False, reason, message


class SourceKind(Protocol):
    kind: str

    def list_prefix(self, prefix: str = "",
                    on_page: Callable[[int, int], None] | None = None) -> Listing: ...

    def stat(self, rel: str) -> Entry | None: ...

    def read_range(self, loc: Any, offset: int, length: int) -> bytes: ...

    def fingerprint(self, entry: Entry) -> tuple[Any, ...]: ...

    def locator(self, rel: str, entry: Entry) -> Any: ...
