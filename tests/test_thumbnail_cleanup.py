"""The cleanup job: orphan thumbnails and those of long-missing photos go, the rest stay."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path
from typing import Any

from lbtest import DaemonProcess
from test_library_scan import SCAN_ONLY, add_root, photo, rows

from lightbox.daemon.media.samples import make_photo, save_jpeg


def run_cleanup(d: DaemonProcess, **params: Any) -> dict[str, Any]:
    job = d.call("library.cleanup", params)["job"]
    done: dict[str, Any] = d.call("jobs.wait", {"id": job, "timeout": 60})
    assert done["state"] == "succeeded", done
    return done


def test_cleanup(make_daemon: Any, tmp_path: Path) -> None:
    d: DaemonProcess = make_daemon(config=SCAN_ONLY)
    root = tmp_path / "photos"
    root.mkdir()
    for i in range(3):
        save_jpeg(make_photo(120, 90, seed=i), root / f"p{i}.jpg")
    add_root(d, root)
    thumbs = d.data_dir / "cache" / "thumbnails"
    keep = photo(d, "p0.jpg")["sha256"]
    gone = photo(d, "p1.jpg")["sha256"]
    # An orphan (no photo has that hash) and a stale temp file left by a crash.
    orphan = thumbs / "grid" / "ab" / ("ab" + "0" * 62 + ".jpg")
    orphan.parent.mkdir(parents=True, exist_ok=True)
    orphan.write_bytes(b"x")
    os.utime(orphan, (1, 1))
    # A thumbnail of a hash the catalog does not know yet, just written (a worker makes it
    # before the indexer commits its photo): kept however it looks like an orphan.
    fresh = thumbs / "grid" / "cd" / ("cd" + "1" * 62 + ".jpg")
    fresh.parent.mkdir(parents=True, exist_ok=True)
    fresh.write_bytes(b"x")
    temp = thumbs / "grid" / keep[:2] / f".{keep[:16]}.crash.tmp"
    temp.write_bytes(b"x")
    os.utime(temp, (1, 1))
    # p1 goes missing: within the grace period its thumbnails are kept.
    os.unlink(root / "p1.jpg")
    job = d.call("library.scan", {})["job"]
    d.call("jobs.wait", {"id": job, "timeout": 60})
    assert photo(d, "p1.jpg")["status"] == "missing"
    done = run_cleanup(d)
    assert done["result"]["removed"] == 2  # the orphan and the temp file
    assert not orphan.exists() and not temp.exists() and fresh.exists()
    assert (thumbs / "grid" / gone[:2] / f"{gone}.jpg").exists()
    # Missing for longer than `days` (0 here): its thumbnails go; the others stay.
    con = sqlite3.connect(d.data_dir / "catalog.db")
    con.execute("UPDATE photos SET missing_since = '2000-01-01 00:00:00' WHERE sha256 = ?",
                (gone,))
    con.commit()
    con.close()
    done = run_cleanup(d, days=1)
    assert done["result"]["removed"] == 2  # grid and preview of p1
    for size in ("grid", "preview"):
        assert not (thumbs / size / gone[:2] / f"{gone}.jpg").exists()
        assert (thumbs / size / keep[:2] / f"{keep}.jpg").exists()
    assert rows(d, "SELECT count(*) FROM photos WHERE status = 'ok'")[0][0] == 2
