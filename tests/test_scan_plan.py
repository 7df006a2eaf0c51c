"""The scanner's decisions on their own (issue 7, build item 2): a listing and catalog rows in, a
plan out — no database, no file system. The daemon-level tests (test_library_scan.py) show the
same rules end to end; these pin each rule down where it is decided."""

from __future__ import annotations

from typing import Any, NamedTuple

from lightbox.daemon.library import plan
from lightbox.daemon.library.listing import FileEntry, Listing


class Row(NamedTuple):
    id: int
    folder_id: int
    name: str
    size: int
    mtime_ns: int
    inode: int
    status: str = "ok"
    sha256: str | None = "ab"
    error: str | None = None


def listing(rel: str, *files: FileEntry, complete: bool = True,
            unreadable: set[str] | None = None) -> Listing:
    return Listing(rel, files=list(files), complete=complete, unreadable=unreadable or set(),
                   digest="d" if complete else None)


def by_name(*rows: Row) -> dict[str, Any]:
    return {r.name: r for r in rows}


def test_new_changed_found_again_and_gone() -> None:
    rows = by_name(Row(1, 10, "same.jpg", 5, 50, 500),
                   Row(2, 10, "edited.jpg", 5, 50, 501),
                   Row(3, 10, "back.jpg", 7, 70, 502, status="missing"),
                   Row(4, 10, "broken.jpg", 8, 80, 503, status="missing", sha256=None,
                       error="not an image"),
                   Row(5, 10, "deleted.jpg", 9, 90, 504))
    lst = listing("a", FileEntry("same.jpg", 5, 50, 500), FileEntry("edited.jpg", 6, 60, 501),
                  FileEntry("back.jpg", 7, 70, 502), FileEntry("broken.jpg", 8, 80, 503),
                  FileEntry("new.jpg", 1, 10, 600))
    p = plan.plan_folder(10, lst, rows, full=False, moved=set())
    assert [e.name for e in p.new] == ["new.jpg"]
    assert p.changed == [plan.Change(2, 10, 6, 60, 501)]
    assert p.restored == [plan.Restore(3, 10, "ok"), plan.Restore(4, 10, "error")]
    assert [r.id for r in p.gone] == [5]
    assert (p.files, p.digest) == (5, "d")
    # full=True: every known file is read again.
    full = plan.plan_folder(10, lst, rows, full=True, moved=set())
    assert {c.photo_id for c in full.changed} == {1, 2, 3, 4}


def test_nothing_is_gone_that_was_not_looked_for() -> None:
    rows = by_name(Row(1, 10, "a.jpg", 1, 1, 1), Row(2, 10, "busy.jpg", 1, 1, 2),
                   Row(3, 10, "moved.jpg", 1, 1, 3))
    # An incomplete listing proves nothing gone.
    assert plan.plan_folder(10, listing("x", complete=False), rows, False, set()).gone == []
    # A name seen but not stat-able, and a row this pass already moved, are not gone.
    p = plan.plan_folder(10, listing("x", unreadable={"busy.jpg"}), rows, False, {3})
    assert [r.id for r in p.gone] == [1]


def test_moves_keep_ids_and_links_are_second_photos() -> None:
    root = "/lib"
    folder_rel = {10: "old", 20: "new"}
    rows = {700: [Row(1, 10, "a.jpg", 5, 50, 700)],
            701: [Row(2, 10, "b.jpg", 6, 60, 701)],
            702: [Row(3, 10, "c.jpg", 7, 70, 702)],
            703: [Row(4, 10, "d.jpg", 8, 80, 703)]}
    plans = [plan.FolderPlan(20, "new", new=[
        FileEntry("a.jpg", 5, 50, 700),      # old path gone: a move
        FileEntry("b.jpg", 6, 60, 701),      # old path still there: a hard link, new photo
        FileEntry("c.jpg", 9, 70, 702),      # same inode, other size: inode reused, new
        FileEntry("d.jpg", 8, 80, 703),      # already moved by this pass: new
        FileEntry("e.jpg", 1, 10, 704)])]    # unknown inode: new
    asked = plan.move_sources(root, plans, rows, folder_rel, listed={"new"})
    assert asked == ["/lib/old/a.jpg", "/lib/old/b.jpg", "/lib/old/d.jpg"]
    movable = plan.movable(root, rows, folder_rel, {"new"}, set(), present={"/lib/old/b.jpg"})
    moves, inserts = plan.plan_moves(plans, movable, moved={4})
    assert [(m.row.id, m.folder_id, m.name) for m in moves] == [(1, 20, "a.jpg")]
    assert [(fid, e.name) for fid, e in inserts] == [
        (20, "b.jpg"), (20, "c.jpg"), (20, "d.jpg"), (20, "e.jpg")]
    # One row moves once: two new names with its inode make one move and one new photo.
    twice = [plan.FolderPlan(20, "new", new=[FileEntry("a.jpg", 5, 50, 700),
                                             FileEntry("a2.jpg", 5, 50, 700)])]
    movable = plan.movable(root, rows, folder_rel, set(), set(), set())
    moves, inserts = plan.plan_moves(twice, movable, set())
    assert len(moves) == 1 and [e.name for _, e in inserts] == ["a2.jpg"]


def test_a_listed_folder_answers_for_its_rows() -> None:
    """A folder this pass listed completely says which of its rows are gone: its paths are
    not asked of the file system, a row found there is a hard link (a new name is a second
    photo), a row found gone is a move."""
    root = "/lib"
    folder_rel = {10: "seen", 20: "new", 30: "later"}
    rows = {700: [Row(1, 10, "a.jpg", 5, 50, 700), Row(2, 10, "b.jpg", 5, 50, 700),
                  Row(3, 30, "c.jpg", 5, 50, 700)]}
    plans = [plan.FolderPlan(20, "new", new=[FileEntry("x.jpg", 5, 50, 700),
                                             FileEntry("y.jpg", 5, 50, 700)])]
    listed = {"seen", "new"}
    assert plan.move_sources(root, plans, rows, folder_rel, listed) == ["/lib/later/c.jpg"]
    # b.jpg was not in its folder's listing (gone); c.jpg's path is there.
    movable = plan.movable(root, rows, folder_rel, listed, gone={2},
                           present={"/lib/later/c.jpg"})
    assert {i: [r.id for r in rs] for i, rs in movable.items()} == {700: [2]}
    moves, inserts = plan.plan_moves(plans, movable, set())
    assert [(m.row.id, m.name) for m in moves] == [(2, "x.jpg")]
    assert [e.name for _, e in inserts] == ["y.jpg"]


def test_many_hard_links_cost_names_plus_rows() -> None:
    """40,000 names of one inode (the Ctrl-C test's library, a hostile tree) in batches: each
    batch costs its new names plus the rows already known, not their product (the product
    was minutes of the event loop with the catalog's transaction open). Counted in row
    reads, not timed."""
    reads = [0]

    class Counted(Row):
        def __getattribute__(self, name: str) -> Any:
            if name in Row._fields:
                reads[0] += 1
            return super().__getattribute__(name)

    root = "/lib"
    folder_rel = {i: f"f{i}" for i in range(80)}
    known = [Counted(i, i // 500, f"p{i % 500}.jpg", 5, 50, 700) for i in range(20_000)]
    plans = [plan.FolderPlan(fid, f"f{fid}", new=[FileEntry(f"p{n}.jpg", 5, 50, 700)
                                                  for n in range(500)])
             for fid in range(40, 80)]
    listed = {f"f{i}" for i in range(80)}
    asked = plan.move_sources(root, plans, {700: known}, folder_rel, listed)
    movable = plan.movable(root, {700: known}, folder_rel, listed, set(), set())
    moves, inserts = plan.plan_moves(plans, movable, set())
    assert asked == [] and movable == {} and moves == [] and len(inserts) == 20_000
    # A few reads per known row (the product would be 20,000 x 20,000 = 4e8).
    assert len(known) <= reads[0] <= 10 * len(known), reads[0]
