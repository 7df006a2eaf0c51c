"""A vanished root loses nothing (issue 7, build item 1): a root is known by its identity (its
directory's (dev, inode) and the mount it lives on), not by whether its path is empty, and a
pass that would suddenly make a large share of a root's photos vanish holds them as suspect.
Against the real daemon, with real bind mounts (skipped with a message where mounting is not
permitted; required under LIGHTBOX_REQUIRE_SERVICES=1).
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from lbtest import DaemonProcess, need
from test_library_scan import consistent, rows, scan

from lightbox.daemon.media.samples import make_photo, save_jpeg


def until(check: Callable[[], Any], timeout: float = 60.0, what: str = "") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or check}: {last!r}")


@pytest.fixture
def bind() -> Iterator[Callable[[Path, Path], None]]:
    mounted: list[Path] = []

    def mount(source: Path, target: Path) -> None:
        done = subprocess.run(["mount", "--bind", str(source), str(target)],
                              capture_output=True, text=True)
        need(done.returncode == 0, "bind mounts (root, CAP_SYS_ADMIN)",
             f"run the tests as root where mounting is allowed ({done.stderr.strip()})")
        mounted.append(target)

    yield mount
    for target in reversed(mounted):
        subprocess.run(["umount", "-l", str(target)], capture_output=True)


def holders(target: Path) -> list[str]:
    """Processes with a file or directory under ``target`` open (for the failure message)."""
    out = []
    for fd in Path("/proc").glob("[0-9]*/fd/*"):
        try:
            link = str(fd.readlink())
        except OSError:
            continue
        if link.startswith(str(target)):
            out.append(f"{fd}: {link}")
    for cwd in Path("/proc").glob("[0-9]*/cwd"):
        try:
            if str(cwd.readlink()).startswith(str(target)):
                out.append(f"{cwd}")
        except OSError:
            continue
    return out


def umount(target: Path) -> None:
    """Unmount as a person would (not lazily): a busy mount is retried for a while, since a
    worker may be closing a file it just read."""
    deadline = time.monotonic() + 30
    while True:
        done = subprocess.run(["umount", str(target)], capture_output=True, text=True)
        if done.returncode == 0:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"umount {target}: {done.stderr} held by {holders(target)}")
        time.sleep(0.2)


def fill(store: Path, folders: int, per_folder: int) -> None:
    for f in range(folders):
        (store / f"day{f:02d}").mkdir(parents=True, exist_ok=True)
        for i in range(per_folder):
            save_jpeg(make_photo(48, 32, seed=f * 1000 + i), store / f"day{f:02d}" / f"p{i}.jpg")


def snapshot(d: DaemonProcess) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in rows(d, "SELECT id, folder_id, name, status, first_seen "
                                      "FROM photos ORDER BY id")]


def root_state(d: DaemonProcess) -> dict[str, Any]:
    out: dict[str, Any] = d.call("roots.list")["roots"][0]
    return out


LIVE = {"library": {"debounce": 0.3, "reconcile_interval": 0}}


def test_unmounted_bind_mount_with_a_hidden_file_is_offline(
        make_daemon: Any, tmp_path: Path, bind: Callable[[Path, Path], None]) -> None:
    """The reported reproduction: the mount point holds `.keep` on the same file system as
    the bind mount's source, so the path is neither missing, nor empty, nor on another
    device once unmounted. Nothing is marked missing; a remount brings the same rows back."""
    store, point = tmp_path / "store", tmp_path / "photos"
    fill(store, folders=3, per_folder=20)
    point.mkdir()
    (point / ".keep").write_bytes(b"")
    bind(store, point)
    d: DaemonProcess = make_daemon(config=LIVE)
    out = d.call("roots.add", {"path": str(point)})
    assert d.call("jobs.wait", {"id": out["job"], "timeout": 120}, timeout=130)["state"] == \
        "succeeded"
    until(lambda: root_state(d)["watching"], what="watching")
    before = snapshot(d)
    assert len(before) == 60 and {r[3] for r in before} == {"ok"}

    unmounted = time.monotonic()
    umount(point)
    until(lambda: not root_state(d)["online"], what="root reported offline")
    offline_after = time.monotonic() - unmounted
    state = root_state(d)
    assert "not the directory that was added" in state["status"], state
    # A scan pass while it is away changes nothing either, and says why.
    job = scan(d)
    assert job["state"] == "failed" and "offline" in job["error"], job
    time.sleep(1.0)  # give a wrong watcher pass the time it took in the report (< 3 s)
    assert snapshot(d) == before
    events = d.call("events.since", {"seq": 0, "topics": ["source"]})["events"]
    assert [e["type"] for e in events].count("offline") == 1

    bind(store, point)
    until(lambda: root_state(d)["online"], timeout=60, what="back online after remount")
    job = scan(d)
    assert job["state"] == "succeeded", job
    report = job["result"]["roots"][state["name"]]
    assert (report["new"], report["missing"], report["removed"]) == (0, 0, 0), report
    assert snapshot(d) == before     # same ids, same first_seen
    consistent(d)
    print(f"unmount -> offline reported: {offline_after:.2f} s")


def test_scan_of_an_unmounted_bind_mount_changes_nothing(
        make_daemon: Any, tmp_path: Path, bind: Callable[[Path, Path], None]) -> None:
    """Without a watcher: the scan pass itself checks the identity."""
    store, point = tmp_path / "store", tmp_path / "photos"
    fill(store, folders=2, per_folder=5)
    point.mkdir()
    (point / ".keep").write_bytes(b"")
    bind(store, point)
    d: DaemonProcess = make_daemon(config={"library": {"watch": False,
                                                       "reconcile_interval": 0}})
    out = d.call("roots.add", {"path": str(point)})
    assert d.call("jobs.wait", {"id": out["job"], "timeout": 120}, timeout=130)["state"] == \
        "succeeded"
    before = snapshot(d)
    umount(point)
    for _ in range(2):     # the second pass is the one that would have removed rows
        job = scan(d)
        assert job["state"] == "failed" and "offline" in job["error"], job
    assert snapshot(d) == before
    assert not root_state(d)["online"]
    # Identity survives a restart: it is in the catalog, not only in memory.
    d.stop()
    d.start()
    job = scan(d)
    assert job["state"] == "failed" and "offline" in job["error"], job
    bind(store, point)
    job = scan(d)
    assert job["state"] == "succeeded", job
    assert snapshot(d) == before
    assert rows(d, "SELECT root_inode, mount_id, mount_device FROM sources")[0][0] == \
        point.stat().st_ino
