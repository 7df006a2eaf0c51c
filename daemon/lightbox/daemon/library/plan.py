"""What a scan pass decides, apart from doing it: listings and catalog rows in, a plan out.

Pure functions, no database and no file system, so every rule of the comparison is tested on
its own (``tests/test_scan_plan.py``) and the writer applies a plan in one transaction per
batch of whole folders, together with the folders' counts and listing digests:

- ``plan_folder``: one listed folder against its rows: new names, changed fingerprints
  (size, mtime_ns, inode; every file with ``full``), photos found again (missing before,
  unchanged now), and rows whose files were not found (only when the listing is complete,
  and never for a name that was seen but could not be stat'ed, nor one already moved);
- ``move_sources`` / ``movable`` / ``plan_moves``: a new name whose inode the catalog knows
  under a path that no longer exists is that photo, moved: it keeps its id. Which old paths
  exist is the one question for the file system, asked by the caller in between
  (``move_sources`` lists them, ``movable`` takes the answer); the pass's own listings answer
  it for the folders they covered.
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
                 folder_rel: Mapping[int, str], listed: set[str]) -> list[str]:
    """The old paths whose existence decides whether a new name is a move: each candidate's
    once, not once per new name and candidate (40,000 hard links to one photo made 1.6e9 of
    them, minutes on the event loop), and none in a folder this pass has listed completely:
    there the listing has answered already (``movable``). A row of another size than every
    new name with its inode cannot be one of them."""
    wanted = {(e.inode, e.size) for p in plans for e in p.new}
    out: set[str] = set()
    for rows in candidates.values():
        for row in rows:
            rel = folder_rel.get(row.folder_id)
            if rel is not None and rel not in listed and (row.inode, row.size) in wanted:
                out.add(paths.join(root, rel, row.name))
    return sorted(out)


def movable(root: str, candidates: Mapping[int, list[Any]], folder_rel: Mapping[int, str],
            listed: set[str], gone: set[int], present: set[str]) -> dict[int, list[Any]]:
    """Per inode, the candidate rows whose old path is gone, the only rows a new name can be
    (the others are hard links or copies, still there). In a folder listed completely in this
    pass a row is gone when the listing did not have its name (``gone``: the pass's vanished
    rows); elsewhere when its path is not ``present`` (``move_sources``, asked of the file
    system)."""
    out: dict[int, list[Any]] = {}
    for inode, rows in candidates.items():
        keep = []
        for row in rows:
            rel = folder_rel.get(row.folder_id)
            if rel is None:
                continue
            if (row.id not in gone) if rel in listed else (paths.join(root, rel, row.name)
                                                          in present):
                continue
            keep.append(row)
        if keep:
            out[inode] = keep
    return out


def plan_moves(plans: Iterable[FolderPlan], movable: Mapping[int, list[Any]], moved: set[int]
               ) -> tuple[list[Move], list[tuple[int, FileEntry]]]:
    """(moves, inserts) for the new names of ``plans``: a ``movable`` row with the same inode
    and size, not moved yet in this pass, moves; a name that matches none is inserted (a
    hard link or a copy of a photo still there is a second photo). Linear in names plus
    movable rows."""
    moves: list[Move] = []
    inserts: list[tuple[int, FileEntry]] = []
    claimed = set(moved)
    for plan in plans:
        for e in plan.new:
            match = None
            for row in movable.get(e.inode, ()):
                if row.id not in claimed and row.size == e.size:
                    match = row
                    break
            if match is None:
                inserts.append((plan.folder_id, e))
            else:
                claimed.add(match.id)
                moves.append(Move(match, plan.folder_id, e.name, e))
    return moves, inserts
