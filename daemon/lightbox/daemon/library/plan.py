"""What a scan pass decides, apart from doing it: listings and catalog rows in, a plan out.

Pure functions, no database and no file system, so every rule of the comparison is tested on
its own (``tests/test_scan_plan.py``) and the writer applies a plan in one transaction per
batch of whole folders, together with the folders' counts and listing digests:

- ``plan_folder``: one listed folder against its rows: new names, changed fingerprints
  (size, mtime_ns, inode; every file with ``full``), photos found again (missing before,
  unchanged now), and rows whose files were not found (only when the listing is complete,
  and never for a name that was seen but could not be stat'ed, nor one already moved);
- ``move_sources`` / ``plan_moves``: a new name whose inode the catalog knows under a path
  that no longer exists is that photo, moved: it keeps its id. Which old paths exist is the
  one question for the file system, asked by the caller in between (``move_sources`` lists
  them, ``plan_moves`` takes the answer).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from lightbox.daemon.catalog import paths
from lightbox.daemon.library.listing import FileEntry, Listing


def restored_status(row: Any) -> str:
    """The state a photo returns to when its file is found again, unchanged."""
    if row.error is not None:
        return "error"
    return "ok" if row.sha256 is not None else "pending"


@dataclass(frozen=True)
class Change:
    photo_id: int
    folder_id: int
    size: int
    mtime_ns: int
    inode: int


@dataclass(frozen=True)
class Restore:
    photo_id: int
    folder_id: int
    status: str


@dataclass(frozen=True)
class Move:
    row: Any              # the photo's row (id, folder_id, size, mtime_ns, status, …)
    folder_id: int        # where it is now
    name: str
    entry: FileEntry


@dataclass
class FolderPlan:
    folder_id: int
    rel: str
    new: list[FileEntry] = field(default_factory=list)
    changed: list[Change] = field(default_factory=list)
    restored: list[Restore] = field(default_factory=list)
    gone: list[Any] = field(default_factory=list)   # rows whose files were not found
    digest: str | None = None
    files: int = 0


def plan_folder(folder_id: int, listing: Listing, rows: Mapping[str, Any], full: bool,
                moved: set[int]) -> FolderPlan:
    """One folder's listing against its catalog rows (name -> row)."""
    plan = FolderPlan(folder_id, listing.rel, digest=listing.digest, files=len(listing.files))
    left = dict(rows)
    for e in listing.files:
        row = left.pop(e.name, None)
        if row is None:
            plan.new.append(e)
        elif full or (row.size, row.mtime_ns, row.inode) != (e.size, e.mtime_ns, e.inode):
            plan.changed.append(Change(row.id, folder_id, e.size, e.mtime_ns, e.inode))
        elif row.status == "missing":
            plan.restored.append(Restore(row.id, folder_id, restored_status(row)))
    if listing.complete:
        plan.gone = [r for name, r in left.items()
                     if r.id not in moved and name not in listing.unreadable]
    return plan


def _old_path(root: str, row: Any, folder_rel: Mapping[int, str]) -> str | None:
    rel = folder_rel.get(row.folder_id)
    return None if rel is None else paths.join(root, rel, row.name)


def move_sources(root: str, plans: Iterable[FolderPlan], candidates: Mapping[int, list[Any]],
                 folder_rel: Mapping[int, str]) -> list[str]:
    """The old paths whose existence decides whether a new name is a move."""
    out = []
    for plan in plans:
        for e in plan.new:
            for row in candidates.get(e.inode, []):
                old = _old_path(root, row, folder_rel)
                if old is not None and row.size == e.size:
                    out.append(old)
    return out


def plan_moves(root: str, plans: Iterable[FolderPlan], candidates: Mapping[int, list[Any]],
               folder_rel: Mapping[int, str], moved: set[int], present: set[str]
               ) -> tuple[list[Move], list[tuple[int, FileEntry]]]:
    """(moves, inserts) for the new names of ``plans``: a row with the same inode and size,
    not moved yet in this pass, whose old path is not ``present`` any more, moves; a name
    that matches none is inserted. A row whose old path still exists is a hard link or a
    copy: the new name is a second photo."""
    moves: list[Move] = []
    inserts: list[tuple[int, FileEntry]] = []
    claimed = set(moved)
    for plan in plans:
        here = paths.join(root, plan.rel)
        for e in plan.new:
            match = None
            for row in candidates.get(e.inode, []):
                if row.id in claimed or row.size != e.size:
                    continue
                old = _old_path(root, row, folder_rel)
                if old is None or old == paths.join(here, e.name) or old in present:
                    continue
                match = row
                break
            if match is None:
                inserts.append((plan.folder_id, e))
            else:
                claimed.add(match.id)
                moves.append(Move(match, plan.folder_id, e.name, e))
    return moves, inserts
