"""Live updates from the watcher, with the real daemon and real files."""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from lbtest import DaemonProcess
from test_library_scan import consistent, photo, rows

from lightbox.daemon.media.samples import make_photo, save_jpeg

FAST = {"library": {"debounce": 0.4, "reconcile_interval": 0}}


def until(check: Callable[[], Any], timeout: float = 15.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except (AssertionError, LookupError):
            pass
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what or check}: {last!r}")


def eventually_consistent(d: DaemonProcess) -> None:
    """Subtree totals follow small changes within a second (roll-ups are coalesced)."""
    until(lambda: consistent(d) is None, timeout=5, what="consistent catalog")


def status_of(d: DaemonProcess, name: str) -> str | None:
    found = rows(d, "SELECT status FROM photos WHERE name = ?", name)
    return found[0]["status"] if found else None


@pytest.fixture
def watched(make_daemon: Any, tmp_path: Path) -> tuple[DaemonProcess, Path]:
    root = tmp_path / "photos"
    root.mkdir()
    save_jpeg(make_photo(200, 150, seed=1), root / "first.jpg")
    d: DaemonProcess = make_daemon(config=FAST)
    out = d.call("roots.add", {"path": str(root)})
    assert d.call("jobs.wait", {"id": out["job"], "timeout": 60})["state"] == "succeeded"
    until(lambda: d.call("roots.list")["roots"][0]["watching"], what="watching")
    return d, root


def test_create_modify_delete(watched: tuple[DaemonProcess, Path]) -> None:
    d, root = watched
    save_jpeg(make_photo(200, 150, seed=2), root / "new.jpg")
    until(lambda: status_of(d, "new.jpg") == "ok", what="new.jpg indexed")
    sha = photo(d, "new.jpg")["sha256"]
    save_jpeg(make_photo(300, 200, seed=3), root / "new.jpg")
    until(lambda: photo(d, "new.jpg")["sha256"] != sha and photo(d, "new.jpg")["width"] == 300,
          what="new.jpg re-indexed")
    os.unlink(root / "new.jpg")
    until(lambda: status_of(d, "new.jpg") == "missing", what="new.jpg missing")
    eventually_consistent(d)


def test_growing_file_is_indexed_once_when_stable(watched: tuple[DaemonProcess, Path]) -> None:
    d, root = watched
    import io

    buf = io.BytesIO()
    make_photo(800, 600, seed=4).save(buf, "JPEG", quality=90)
    data = buf.getvalue()
    target = root / "copying.jpg"
    with open(target, "wb") as f:  # a slow copy: chunks with pauses shorter than debounce
        for start in range(0, len(data), len(data) // 8 + 1):
            f.write(data[start:start + len(data) // 8 + 1])
            f.flush()
            time.sleep(0.15)
    until(lambda: status_of(d, "copying.jpg") == "ok", what="copying.jpg indexed")
    row = photo(d, "copying.jpg")
    assert row["size"] == len(data)
    assert row["width"] == 800
    # Exactly one analysis was applied: one "changed" event for this photo (events are
    # merged for a quarter of a second before they go out).

    def changed() -> list[Any]:
        events = d.call("events.since", {"seq": 0, "topics": ["catalog"]})["events"]
        return [e for e in events if e["type"] == "changed" and row["id"] in e["data"]["ids"]]

    until(changed, what="changed event")
    time.sleep(1.5)
    assert len(changed()) == 1, changed()
    assert status_of(d, "copying.jpg") == "ok"


def test_moves_keep_identity(watched: tuple[DaemonProcess, Path]) -> None:
    d, root = watched
    first = photo(d, "first.jpg")
    (root / "album").mkdir()
    os.rename(root / "first.jpg", root / "album" / "renamed.jpg")
    until(lambda: photo(d, "renamed.jpg")["folder"] == "album", what="move applied")
    moved = photo(d, "renamed.jpg")
    assert (moved["id"], moved["sha256"], moved["status"]) == \
        (first["id"], first["sha256"], "ok")
    os.rename(root / "album", root / "album-2024")
    until(lambda: photo(d, "renamed.jpg")["folder"] == "album-2024", what="folder move")
    assert photo(d, "renamed.jpg")["id"] == first["id"]
    assert not rows(d, "SELECT id FROM photos WHERE status = 'missing'")
    eventually_consistent(d)


def test_mkdir_and_files_in_a_burst(watched: tuple[DaemonProcess, Path]) -> None:
    d, root = watched
    nested = root / "burst" / "a" / "b"
    nested.mkdir(parents=True)  # files made at the same instant as their directories
    for i in range(20):
        save_jpeg(make_photo(64, 48, seed=10 + i), nested / f"n{i:02d}.jpg")
        if i % 5 == 0:
            (nested / f"sub{i}").mkdir()
            save_jpeg(make_photo(64, 48, seed=50 + i), nested / f"sub{i}" / f"s{i}.jpg")
    until(lambda: rows(d, "SELECT count(*) FROM photos WHERE status = 'ok'")[0][0] == 25,
          timeout=30, what="25 photos indexed")
    eventually_consistent(d)


def test_root_renamed_away_and_back(watched: tuple[DaemonProcess, Path],
                                    tmp_path: Path) -> None:
    d, root = watched
    save_jpeg(make_photo(64, 48, seed=7), root / "second.jpg")
    until(lambda: status_of(d, "second.jpg") == "ok")
    before = rows(d, "SELECT id, status FROM photos ORDER BY id")
    away = tmp_path / "unplugged"
    os.rename(root, away)
    until(lambda: not d.call("roots.list")["roots"][0]["online"], what="root offline")
    # Changes made while it is away are not applied to the catalog.
    os.unlink(away / "first.jpg")
    time.sleep(1.5)
    assert rows(d, "SELECT id, status FROM photos ORDER BY id") == before
    os.rename(away, root)
    until(lambda: d.call("roots.list")["roots"][0]["online"], timeout=20, what="back online")
    until(lambda: d.call("roots.list")["roots"][0]["watching"], what="watching again")
    # The rescan after it came back sees the deletion made while it was away.
    until(lambda: status_of(d, "first.jpg") == "missing", timeout=20)
    assert status_of(d, "second.jpg") == "ok"
    save_jpeg(make_photo(64, 48, seed=8), root / "third.jpg")
    until(lambda: status_of(d, "third.jpg") == "ok", what="watched again after return")
    types = [e["type"] for e in d.call("events.since", {"seq": 0, "topics": ["source"]})[
        "events"]]
    assert "offline" in types and "online" in types


def test_unwatchable_root_falls_back_to_polling(make_daemon: Any, tmp_path: Path) -> None:
    root = tmp_path / "big"
    for i in range(5):
        (root / f"d{i}").mkdir(parents=True)
    save_jpeg(make_photo(64, 48, seed=1), root / "d0" / "a.jpg")
    d: DaemonProcess = make_daemon(config={"library": {
        "max_watches": 3, "poll_interval": 1.0, "reconcile_interval": 0, "debounce": 0.4}})
    out = d.call("roots.add", {"path": str(root)})
    assert d.call("jobs.wait", {"id": out["job"], "timeout": 60})["state"] == "succeeded"
    until(lambda: d.call("system.status")["components"]["watcher"]["polling"], what="polling")
    assert "rescanning it periodically instead" in d.log()
    save_jpeg(make_photo(64, 48, seed=2), root / "d3" / "b.jpg")
    until(lambda: status_of(d, "b.jpg") == "ok", what="found by polling")


def test_watching_can_be_disabled(make_daemon: Any, tmp_path: Path) -> None:
    root = tmp_path / "p"
    root.mkdir()
    d: DaemonProcess = make_daemon(config={"library": {"watch": False}})
    out = d.call("roots.add", {"path": str(root)})
    d.call("jobs.wait", {"id": out["job"], "timeout": 60})
    assert d.call("roots.list")["roots"][0]["watching"] is False
    shutil.copy(Path(__file__), root / "not-a-photo.jpg")
    time.sleep(1.5)
    assert rows(d, "SELECT count(*) FROM photos")[0][0] == 0
