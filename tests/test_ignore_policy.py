"""One ignore policy for the scanner and the watcher (issue 7, build items 8 and 9): files that
arrive live in `@eaDir`, `#recycle` or a hidden folder are never indexed and those folders
never enter the catalog; FIFOs and links are skipped with a recorded reason and never opened.
Against the real daemon, with real files and real inotify events."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lbtest import DaemonProcess
from test_library_scan import SCAN_ONLY, add_root, consistent, rows

from lightbox.daemon.library import ignore
from lightbox.daemon.media.samples import make_photo, save_jpeg

LIVE = {"library": {"debounce": 0.3, "reconcile_interval": 0}}
IGNORED = ["@eaDir/p.jpg/SYNOPHOTO_THUMB_XL.jpg", "#recycle/old.jpg", ".hidden/h.jpg",
           "#snapshot/daily/s.jpg", ".@__thumb/t.jpg", ".Trash-1000/files/x.jpg",
           "lost+found/l.jpg", "day/@eaDir/d.jpg/SYNOPHOTO_THUMB_M.jpg", "day/.secret.jpg",
           "day/clip.mp4", "day/p.jpg.xmp"]


def until(check: Callable[[], Any], timeout: float = 60.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_policy() -> None:
    for rel in IGNORED:
        assert ignore.ignored_path(rel), rel
    for rel in ("day/p.jpg", "2019/@home/x.jpg", "a/#1.jpg", "recycle/x.jpg", "x.JPG",
                "no_extension"):
        assert not ignore.ignored_path(rel), rel
    assert ignore.ignored_folder_path("a/@eaDir/b") and not ignore.ignored_folder_path("a/b")


def test_live_arrivals_in_ignored_places_are_never_indexed(make_daemon: Any,
                                                           tmp_path: Path) -> None:
    root = tmp_path / "photos"
    (root / "day").mkdir(parents=True)
    save_jpeg(make_photo(64, 48, seed=1), root / "day" / "first.jpg")
    d: DaemonProcess = make_daemon(config=LIVE)
    out = d.call("roots.add", {"path": str(root)})
    assert d.call("jobs.wait", {"id": out["job"], "timeout": 120}, timeout=130)["state"] == \
        "succeeded"
    until(lambda: d.call("roots.list")["roots"][0]["watching"], what="watching")
    folders_before = {r[0] for r in rows(d, "SELECT path FROM folders")}
    for i, rel in enumerate(IGNORED):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        save_jpeg(make_photo(64, 48, seed=10 + i), root / rel)
    # Moved into an ignored folder: gone from the library; out of one: new.
    save_jpeg(make_photo(64, 48, seed=50), root / "day" / "to_bin.jpg")
    until(lambda: rows(d, "SELECT status FROM photos WHERE name = 'to_bin.jpg'") and
          rows(d, "SELECT status FROM photos WHERE name = 'to_bin.jpg'")[0][0] == "ok",
          what="to_bin.jpg indexed")
    os.rename(root / "day" / "to_bin.jpg", root / "#recycle" / "to_bin.jpg")
    os.rename(root / "#recycle" / "old.jpg", root / "day" / "restored.jpg")
    # A marker after all of it: once it is indexed, the watcher has seen everything above.
    save_jpeg(make_photo(64, 48, seed=60), root / "day" / "marker.jpg")
    until(lambda: rows(d, "SELECT status FROM photos WHERE name IN "
                          "('marker.jpg', 'restored.jpg') AND status = 'ok'") and
          len(rows(d, "SELECT id FROM photos WHERE name IN ('marker.jpg', 'restored.jpg') "
                      "AND status = 'ok'")) == 2, what="marker and restored.jpg indexed")
    until(lambda: rows(d, "SELECT status FROM photos WHERE name = 'to_bin.jpg'")[0][0] ==
          "missing", what="to_bin.jpg missing once binned")
    time.sleep(1.0)  # a late pass would show up here
    names = {r[0] for r in rows(d, "SELECT name FROM photos")}
    assert names == {"first.jpg", "to_bin.jpg", "restored.jpg", "marker.jpg"}, names
    assert {r[0] for r in rows(d, "SELECT path FROM folders")} == folders_before
    # The full scan agrees with the watcher: nothing to add, the binned photo confirmed gone.
    job = d.call("library.scan", {})["job"]
    done = d.call("jobs.wait", {"id": job, "timeout": 120}, timeout=130)
    report = done["result"]["roots"]["photos"]
    assert (report["new"], report["removed"]) == (0, 1), report
    assert {r[0] for r in rows(d, "SELECT path FROM folders")} == folders_before
    consistent(d)


def test_fifos_and_links_are_skipped_with_a_reason(make_daemon: Any, tmp_path: Path) -> None:
    root = tmp_path / "photos"
    (root / "d").mkdir(parents=True)
    save_jpeg(make_photo(64, 48, seed=1), root / "d" / "real.jpg")
    os.mkfifo(root / "photo.jpg")       # opening it would block the reader for ever
    (root / "inside.jpg").symlink_to(root / "d" / "real.jpg")
    (root / "alias").symlink_to(root / "d")
    d: DaemonProcess = make_daemon(config=SCAN_ONLY)
    job = add_root(d, root)
    report = job["result"]["roots"]["photos"]
    skipped = {(Path(s["path"]).name, s["reason"]) for s in report["skipped_files"]}
    assert skipped == {("photo.jpg", "not_regular"), ("inside.jpg", "symlink"),
                       ("alias", "symlink")}, report
    assert report["skipped"] == 3
    assert {r[0] for r in rows(d, "SELECT name FROM photos")} == {"real.jpg"}
    assert {r[0] for r in rows(d, "SELECT path FROM folders")} == {"", "d"}


def test_nested_folder_moves_and_back_without_constraint_errors(make_daemon: Any,
                                                                tmp_path: Path) -> None:
    """Folder renames with subfolders, also a -> b -> a and onto the name of a folder the
    catalog still has as missing: ids kept, no IntegrityError (nor any traceback) logged."""
    root = tmp_path / "photos"
    for rel in ("a", "a/x", "a/x/y", "a/z"):
        (root / rel).mkdir(parents=True)
        for i in range(2):
            save_jpeg(make_photo(64, 48, seed=hash(rel) % 1000 + i), root / rel / f"{i}.jpg")
    d: DaemonProcess = make_daemon(config=LIVE)
    out = d.call("roots.add", {"path": str(root)})
    assert d.call("jobs.wait", {"id": out["job"], "timeout": 120}, timeout=130)["state"] == \
        "succeeded"
    until(lambda: d.call("roots.list")["roots"][0]["watching"], what="watching")

    def ids() -> dict[str, int]:
        return {f"{r['path']}/{r['name']}": r["id"] for r in rows(
            d, "SELECT f.path, p.name, p.id FROM photos p JOIN folders f "
               "ON f.id = p.folder_id WHERE p.status = 'ok'")}

    before = ids()
    assert len(before) == 8

    def moved_to(prefix: str) -> bool:
        now = ids()
        return len(now) == 8 and all(k.startswith(prefix) for k in now) and \
            sorted(now.values()) == sorted(before.values())

    os.rename(root / "a", root / "b")
    until(lambda: moved_to("b"), what="a -> b")
    os.rename(root / "b", root / "a")
    until(lambda: moved_to("a"), what="b -> a")
    os.rename(root / "a", root / "b")
    os.rename(root / "b", root / "c")            # a chain faster than the watcher's passes
    os.rename(root / "c" / "x", root / "c" / "z" / "x")
    until(lambda: moved_to("c") and "c/z/x/y/0.jpg" in ids(), what="a -> b -> c, x into z")
    final = ids()
    assert {k.split("/")[-1] + "@" + str(v) for k, v in final.items()} == \
        {k.split("/")[-1] + "@" + str(before[k]) for k in before}
    eventually_consistent(d)
    log = (d.data_dir / "daemon.log").read_text(errors="replace")
    assert "IntegrityError" not in log and "Traceback" not in log, log[-3000:]


def eventually_consistent(d: DaemonProcess, timeout: float = 60.0) -> None:
    """Roll-ups of subtree totals follow a burst within seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            consistent(d)
            return
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)
