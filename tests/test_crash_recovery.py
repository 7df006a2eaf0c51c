"""SIGKILL the daemon in the middle of a scan: it restarts into a consistent catalog, with no
half-written thumbnail under a final name, and the interrupted scan completes."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from lbtest import DaemonProcess
from PIL import Image
from test_library_scan import consistent, rows

from lightbox.daemon.media.samples import ExifSpec, make_photo, save_jpeg


@pytest.fixture(scope="module")
def big_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("crash") / "photos"
    for folder in range(12):
        d = root / f"folder{folder:02d}"
        d.mkdir(parents=True)
        for i in range(25):
            save_jpeg(make_photo(1200, 900, seed=folder * 100 + i), d / f"p{i:03d}.jpg",
                      ExifSpec(make="Crash", model=f"M{folder}"))
    return root


def thumbnails_are_whole(data_dir: Path, temp_allowed: bool) -> int:
    """Every final-named thumbnail decodes completely; temp files only where allowed."""
    count = 0
    for f in (data_dir / "cache" / "thumbnails").rglob("*"):
        if not f.is_file():
            continue
        if f.suffix == ".tmp" and temp_allowed:
            assert f.name.startswith("."), f
            continue
        assert f.suffix == ".jpg", f"unexpected file in the thumbnail cache: {f}"
        with Image.open(f) as img:
            img.load()  # raises on a truncated file
        count += 1
    return count


@pytest.mark.slow
@pytest.mark.parametrize("kill_after", [0.4, 2.0])
def test_sigkill_mid_scan(make_daemon: Any, big_tree: Path, kill_after: float) -> None:
    d: DaemonProcess = make_daemon()
    job = d.call("roots.add", {"path": str(big_tree)})["job"]
    time.sleep(kill_after)
    state = d.call("jobs.get", {"id": job})["state"]
    d.kill()
    assert state in ("queued", "running"), "the scan finished before the kill; use more files"
    consistent(d, totals=False)  # totals are redone at start: checked after the restart
    thumbnails_are_whole(d.data_dir, temp_allowed=True)
    d.start()
    done = d.call("jobs.wait", {"id": job, "timeout": 180}, timeout=190)
    assert done["state"] == "succeeded", done
    # Anything the interrupted attempt left pending is indexed by now.
    assert rows(d, "SELECT count(*) FROM photos WHERE status != 'ok'")[0][0] == 0
    assert rows(d, "SELECT count(*) FROM photos")[0][0] == 300
    consistent(d)
    assert thumbnails_are_whole(d.data_dir, temp_allowed=False) == 600
    assert "resuming job left running" in d.log()
