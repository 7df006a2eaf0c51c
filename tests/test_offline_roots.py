"""A vanished root loses nothing (issue 7, build item 1): a root is known by its identity (its
directory's (dev, inode) and the mount it lives on), not by whether its path is empty, and a
pass that would suddenly make a large share of a root's photos vanish holds them as suspect.
Against the real daemon, with real bind mounts (skipped with a message where mounting is not
permitted; required under LIGHTBOX_REQUIRE_SERVICES=1).
"""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from lbtest import DaemonProcess, need
from test_library_scan import consistent, rows, scan

from lightbox.daemon.library import vanish
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


# -- the mass-vanish guard --------------------------------------------------------------------

def test_decide_holds_a_mass_vanishing_until_confirmed_after_the_delay() -> None:
    """The guard's rule on its own (pure: no daemon, no database)."""
    held = vanish.Held()
    gone = [(i, i % 3) for i in range(60)]          # 60 of 100 photos, folders 0..2
    out = vanish.decide(held, gone, covered={0, 1, 2}, total=100, delay=10, now=0)
    assert (out.vanish, out.held, out.newly_held) == ([], 60, 60)
    # Too early: still held, even when fewer are gone now than the limit.
    out = vanish.decide(held, gone[:5], covered={0, 1, 2}, total=100, delay=10, now=5)
    assert out.vanish == [] and out.held == 5      # the other 55 were seen again
    out = vanish.decide(held, gone[:5], covered={0, 1, 2}, total=100, delay=10, now=11)
    assert sorted(out.vanish) == list(range(5)) and out.held == 0
    # A few at a time vanish at once; a pass over other folders leaves suspects alone.
    assert vanish.decide(held, gone[:50], set(), 100, 10, 20).vanish == list(range(50))
    vanish.decide(held, gone, {0, 1, 2}, 100, 10, 30)
    assert vanish.decide(held, [], covered={7}, total=100, delay=10, now=31).held == 60
    # 10 % of a big root is the limit there.
    big = vanish.Held()
    assert vanish.decide(big, [(i, 0) for i in range(100)], {0}, 1000, 10, 0).held == 0
    assert vanish.decide(big, [(i, 0) for i in range(101)], {0}, 1000, 10, 0).held == 101


SLOW_CONFIRM = {"library": {"watch": False, "reconcile_interval": 0, "vanish_delay": 3}}


def test_a_mass_vanishing_is_held_as_suspect(make_daemon: Any, tmp_path: Path) -> None:
    root = tmp_path / "photos"
    fill(root, folders=4, per_folder=20)           # 80 photos: the limit is 50
    d: DaemonProcess = make_daemon(config=SLOW_CONFIRM)
    out = d.call("roots.add", {"path": str(root)})
    assert d.call("jobs.wait", {"id": out["job"], "timeout": 120}, timeout=130)["state"] == \
        "succeeded"
    before = snapshot(d)
    name = root_state(d)["name"]
    for f in ("day00", "day01", "day02"):          # 60 photos gone at once
        for p in (root / f).iterdir():
            p.unlink()
    job = scan(d)
    report = job["result"]["roots"][name]
    assert (report["missing"], report["removed"], report["suspect"]) == (0, 0, 60), report
    assert snapshot(d) == before
    state = root_state(d)
    assert state["suspect"]["count"] == 60 and state["photos"] == 80, state
    assert d.call("system.status")["components"]["sources"]["suspect"][name]["count"] == 60
    events = [e for e in d.call("events.since", {"seq": 0, "topics": ["source"]})["events"]
              if e["type"] == "suspect"]
    assert events and events[-1]["data"]["count"] == 60
    # Files put back: no longer suspect, nothing happened to their rows.
    fill(root, folders=1, per_folder=20)           # day00 again, same content
    job = scan(d)
    assert job["result"]["roots"][name]["suspect"] == 40
    assert root_state(d)["suspect"]["count"] == 40
    # After the delay a later pass confirms: missing, not removed; the pass after removes.
    until(lambda: root_state(d)["suspect"]["confirm_in"] == 0, what="delay over")
    job = scan(d)
    assert job["result"]["roots"][name]["missing"] == 40, job["result"]
    assert root_state(d)["suspect"] is None
    assert len([r for r in snapshot(d) if r[3] == "missing"]) == 40
    job = scan(d)
    assert job["result"]["roots"][name]["removed"] == 40
    consistent(d)


def test_the_user_confirms_a_mass_vanishing(make_daemon: Any, tmp_path: Path) -> None:
    root = tmp_path / "photos"
    fill(root, folders=4, per_folder=20)
    d: DaemonProcess = make_daemon(config={"library": {"watch": False, "reconcile_interval": 0}})
    out = d.call("roots.add", {"path": str(root)})
    assert d.call("jobs.wait", {"id": out["job"], "timeout": 120}, timeout=130)["state"] == \
        "succeeded"
    for f in ("day01", "day02", "day03"):          # 60 of 80: more than 50
        shutil.rmtree(root / f)
    for _ in range(2):                             # no delay passed: a second pass holds too
        job = scan(d)
        assert job["result"]["roots"]["photos"]["suspect"] == 60, job["result"]
    assert rows(d, "SELECT count(*) FROM photos WHERE status = 'ok'")[0][0] == 80
    assert rows(d, "SELECT count(*) FROM folders WHERE missing_since IS NOT NULL")[0][0] == 0
    assert d.call("roots.confirm", {"root": "photos"}) == {"root": 1, "confirmed": 60}
    assert root_state(d)["suspect"] is None
    assert rows(d, "SELECT count(*) FROM photos WHERE status = 'missing'")[0][0] == 60
    consistent(d)
    job = scan(d)
    assert job["result"]["roots"]["photos"]["removed"] == 60
    consistent(d)


def test_the_watcher_holds_a_mass_vanishing_too(make_daemon: Any, tmp_path: Path) -> None:
    root = tmp_path / "photos"
    fill(root, folders=1, per_folder=60)
    d: DaemonProcess = make_daemon(config=LIVE)
    out = d.call("roots.add", {"path": str(root)})
    assert d.call("jobs.wait", {"id": out["job"], "timeout": 120}, timeout=130)["state"] == \
        "succeeded"
    until(lambda: root_state(d)["watching"], what="watching")
    for i in range(55):
        (root / "day00" / f"p{i}.jpg").unlink()
    until(lambda: (root_state(d)["suspect"] or {}).get("count") == 55, what="55 held by watcher")
    time.sleep(1.0)   # a later watcher pass does not mark them either
    assert rows(d, "SELECT count(*) FROM photos WHERE status = 'ok'")[0][0] == 60
    # A few deletions afterwards are ordinary: marked missing by the watcher at once.
    (root / "day00" / "p55.jpg").unlink()
    until(lambda: rows(d, "SELECT status FROM photos WHERE name = 'p55.jpg'")[0][0] ==
          "missing", what="p55 missing")
    assert root_state(d)["suspect"]["count"] == 55
