"""Errors that are the machine's fault are not verdicts on a file (issue 7, build item 3).

A full thumbnail disk, a full data dir, a file the daemon may not open for a while: the photos
stay pending, one report says why (log, ``system.status``, an event), and they are read by
themselves once the cause is gone, without a ``full=true`` scan. Against the real daemon, on
real tmpfs mounts; the classification table itself is checked without a daemon.
"""

from __future__ import annotations

import errno
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from lbtest import DaemonProcess, need, run_cli, short_tmpdir
from test_library_scan import SCAN_ONLY, photo, rows

from lightbox.common import errors
from lightbox.daemon.library import failures
from lightbox.daemon.media.analyze import Analysis
from lightbox.daemon.media.samples import make_photo, save_jpeg


def until(what: str, check: Callable[[], Any], timeout: float = 60.0) -> Any:
    """Wait for a condition under load (never sleep-then-assert)."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout} s (last: {got!r})")
        time.sleep(0.2)


def statuses(d: DaemonProcess) -> dict[str, int]:
    return {r[0]: r[1] for r in rows(d, "SELECT status, count(*) FROM photos GROUP BY status")}


def events(d: DaemonProcess, seq: int, type_: str) -> list[dict[str, Any]]:
    got = d.call("events.since", {"seq": seq, "topics": ["system"]})["events"]
    return [e for e in got if e["type"] == type_]


@pytest.fixture
def tmpfs() -> Iterator[Callable[[Path, str], Path]]:
    """``mount(path, size)``: a tmpfs there (unmounted afterwards); skips where not allowed."""
    mounted: list[Path] = []

    def mount(path: Path, size: str) -> Path:
        path.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size},mode=0700",
                               "tmpfs", str(path)], capture_output=True, text=True)
        need(done.returncode == 0, "mounting a tmpfs (root, CAP_SYS_ADMIN)",
             f"run the tests as root in a container that allows mounts ({done.stderr.strip()})")
        mounted.append(path)
        return path

    yield mount
    for path in reversed(mounted):
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def fill(where: Path) -> Path:
    """Fill the file system holding ``where`` to the last byte; returns the filler."""
    filler = where / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        for size in (1 << 16, 4096, 512, 1):
            with pytest.raises(OSError, match="No space") as full:  # noqa: PT012
                while True:
                    os.write(fd, b"\xaa" * size)
            assert full.value.errno == errno.ENOSPC
    finally:
        os.close(fd)
    return filler


def photos(root: Path, n: int, size: tuple[int, int] = (640, 480)) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        save_jpeg(make_photo(*size, seed=1000 + i), root / f"p{i:03d}.jpg")


def test_full_thumbnail_disk_pauses_once_and_resumes_by_itself(
        make_daemon: Any, tmp_path: Path, tmpfs: Any) -> None:
    data = short_tmpdir()
    d: DaemonProcess | None = None
    try:
        cache = tmpfs(data / "cache", "4m")
        filler = fill(cache)
        d: DaemonProcess = make_daemon(data_dir=data, config=SCAN_ONLY)
        seq = d.call("hello")["seq"]
        root = tmp_path / "photos"
        photos(root, 12)
        job = d.call("roots.add", {"path": str(root)})["job"]
        done = d.call("jobs.wait", {"id": job, "timeout": 60}, timeout=70)
        # The job says why it cannot finish, at once, with a reason a script can test.
        assert done["state"] == "failed", done
        assert done["result"]["reason"] == "disk_full", done
        assert "thumbnail disk full" in done["error"]
        # Nothing was judged: every photo waits, none is an error.
        assert statuses(d) == {"pending": 12}
        status = d.call("system.status")
        paused = status["indexing"]["paused"]
        assert paused["reason"] == "disk_full" and paused["scope"] == "thumbnail disk"
        assert paused["message"] == "thumbnail disk full: 12 photos waiting"
        shown = run_cli("status", env={"LIGHTBOX_DATA_DIR": str(data)})
        assert "indexing   PAUSED: thumbnail disk full: 12 photos waiting" in shown.stdout
        # Said once, however many photos hit it.
        assert len(events(d, seq, "indexing_paused")) == 1
        filler.unlink()
        until("all photos indexed after space came back", lambda: statuses(d) == {"ok": 12})
        assert len(events(d, seq, "indexing_paused")) == 1
        assert len(events(d, seq, "indexing_resumed")) == 1
        assert d.call("system.status")["indexing"]["paused"] is None
        assert "indexing paused" in d.log() and "indexing resumed" in d.log()
    finally:
        if d is not None:
            d.stop()
        subprocess.run(["umount", "-l", str(data / "cache")], capture_output=True)
        shutil.rmtree(data, ignore_errors=True)


def test_whole_data_dir_full_reaches_the_client(
        make_daemon: Any, tmp_path: Path, tmpfs: Any) -> None:
    base = short_tmpdir()
    data = tmpfs(base / "data", "16m")
    d: DaemonProcess | None = None
    try:
        d: DaemonProcess = make_daemon(data_dir=data, config=SCAN_ONLY, start=False)
        d.log_path = base / "daemon.log"   # the log must not need the full disk
        d.start()
        root = tmp_path / "photos"
        photos(root, 10)
        out = d.call("roots.add", {"path": str(root), "scan": False})
        filler = fill(data)
        # A request that must write gets a clear answer, not an internal error.
        with pytest.raises(errors.Unavailable) as refused:
            d.call("library.scan", {"root": out["root"]["id"]})
        assert refused.value.data["reason"] == "disk_full"
        # Room for the job and the rows, not for the thumbnails: the disk fills during the
        # scan, as it does when a library outgrows it. (384 kB: the rows' pages in the WAL
        # grew with the duplicate counts' triggers and the extended indexes; the 10 photos'
        # thumbnails still need about 600 kB.)
        os.truncate(filler, filler.stat().st_size - (384 << 10))
        job = d.call("library.scan", {"root": out["root"]["id"]})["job"]
        done = d.call("jobs.wait", {"id": job, "timeout": 60}, timeout=70)
        assert done["state"] == "failed", done
        assert done["result"]["reason"] == "disk_full", done
        assert "full" in done["error"], done
        assert d.call("system.status")["indexing"]["paused"]["reason"] == "disk_full"
        assert statuses(d).get("error", 0) == 0
        filler.unlink()
        until("indexed once the disk has room, without a scan",
              lambda: statuses(d) == {"ok": 10}, timeout=60)
    finally:
        if d is not None:
            d.stop()
        subprocess.run(["umount", "-l", str(data)], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def test_a_scan_whose_own_rows_find_no_room_fails_at_once_with_disk_full(
        make_daemon: Any, tmp_path: Path, tmpfs: Any) -> None:
    """Room for the job's row, not for the 300 photos' rows: the scan's own writes meet
    the full disk. It fails at once (one attempt, not retried into the full disk for
    minutes) with ``reason: disk_full``, nothing half-written; with room, a scan finds all."""
    base = short_tmpdir()
    data = tmpfs(base / "data", "16m")
    d: DaemonProcess | None = None
    try:
        d = make_daemon(data_dir=data, config=SCAN_ONLY, start=False)
        d.log_path = base / "daemon.log"
        d.start()
        root = tmp_path / "photos"
        photos(root, 300, (32, 24))
        out = d.call("roots.add", {"path": str(root), "scan": False})
        filler = fill(data)
        os.truncate(filler, filler.stat().st_size - (64 << 10))
        job = d.call("library.scan", {"root": out["root"]["id"]})["job"]
        done = d.call("jobs.wait", {"id": job, "timeout": 60}, timeout=70)
        assert done["state"] == "failed", done
        assert done["result"] == {"reason": "disk_full"}, done
        assert done["attempts"] == 1, done
        assert "no space left" in done["error"] and "free some space" in done["error"], done
        assert set(statuses(d)) <= {"pending"}     # nothing judged on a failed write
        filler.unlink()
        job = d.call("library.scan", {"root": out["root"]["id"]})["job"]
        done = d.call("jobs.wait", {"id": job, "timeout": 120}, timeout=130)
        assert done["state"] == "succeeded", done
        until("all 300 indexed once there is room", lambda: statuses(d) == {"ok": 300},
              timeout=120)
    finally:
        if d is not None:
            d.stop()
        subprocess.run(["umount", "-l", str(data)], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def test_unreadable_file_is_retried_after_its_mode_is_restored(
        make_daemon: Any, tmp_path: Path) -> None:
    base = tmp_path / "u"
    root = base / "photos"
    photos(root, 3, (320, 240))
    locked = root / "p001.jpg"
    bad = root / "bad.jpg"
    bad.write_bytes(b"not a jpeg at all")
    data = base / "data"
    data.mkdir()
    d: DaemonProcess = make_daemon(data_dir=data, start=False, config=SCAN_ONLY)
    if os.getuid() == 0:
        # Root reads everything; without the DAC-override capabilities it obeys modes too.
        need(shutil.which("setpriv") is not None, "setpriv (util-linux)",
             "apt install util-linux")
        caps = "-dac_override,-dac_read_search"
        d.prefix = ["setpriv", f"--bounding-set={caps}", f"--inh-caps={caps}"]
    d.start()
    locked.chmod(0)
    try:
        job = d.call("roots.add", {"path": str(root)})["job"]
        done = d.call("jobs.wait", {"id": job, "timeout": 60}, timeout=70)
        assert done["state"] == "succeeded", done
        assert done["result"]["retrying"] == {"permission_denied": 1}, done["result"]
        assert photo(d, "p001.jpg")["status"] == "pending"      # not an error
        assert photo(d, "bad.jpg")["status"] == "error"          # its content: lasting
        assert d.call("system.status")["indexing"]["retrying"] == {"permission_denied": 1}
    finally:
        locked.chmod(0o644)
    # No scan, no watcher: the indexer's own retry finds it readable.
    until("the restored file indexed", lambda: photo(d, "p001.jpg")["status"] == "ok",
          timeout=45)
    assert d.call("system.status")["indexing"]["retrying"] == {}
    # A changed fingerprint clears a lasting error.
    save_jpeg(make_photo(320, 240, seed=7), bad)
    job = d.call("library.scan", {})["job"]
    assert d.call("jobs.wait", {"id": job, "timeout": 60}, timeout=70)["state"] == "succeeded"
    assert photo(d, "bad.jpg")["status"] == "ok"
    assert photo(d, "bad.jpg")["error"] is None


def _analysis(**kw: Any) -> Analysis:
    a = Analysis(path="/x/y.jpg")
    a.fail(kw.pop("kind", "io"), kw.pop("error", "failed"))
    for k, v in kw.items():
        setattr(a, k, v)
    return a


@pytest.mark.parametrize(("kw", "action", "reason"), [
    ({"error_errno": errno.ENOSPC, "error_where": "cache"}, "pause", "disk_full"),
    ({"error_errno": errno.EDQUOT, "error_where": "cache"}, "pause", "disk_full"),
    ({"error_errno": errno.EROFS, "error_where": "cache"}, "pause", "cache_unwritable"),
    ({"error_errno": errno.ENOENT, "error_where": "cache"}, "retry", "cache_missing"),
    ({"error_errno": errno.EACCES, "error_where": "source"}, "retry", "permission_denied"),
    ({"error_errno": errno.EIO, "error_where": "source"}, "retry", "io_error"),
    ({"error_errno": errno.ENOENT, "error_where": "source"}, "retry", "gone"),
    ({"error_errno": errno.EMFILE, "error_where": "source"}, "retry", "resources"),
    ({"error_refusal": "symlink"}, "error", "symlink"),
    ({"error_refusal": "changed", "kind": "changed"}, "requeue", "changed"),
    ({"kind": "corrupt"}, "error", "corrupt"),
    ({"kind": "unsupported"}, "error", "unsupported"),
    ({"kind": "io", "error": "cannot write thumbnail (encoder error -2)",
      "error_where": None}, "error", "io"),
])
def test_classification(kw: dict[str, Any], action: str, reason: str) -> None:
    verdict = failures.classify(_analysis(**kw))
    assert verdict is not None
    assert (verdict.action, verdict.reason) == (action, reason)


def test_catalog_write_failures_pause() -> None:
    import sqlite3

    full = sqlite3.OperationalError("database or disk is full")
    full.sqlite_errorcode = 13  # type: ignore[attr-defined]
    assert failures.catalog_write(full).reason == "disk_full"
    assert failures.catalog_write(OSError(errno.ENOSPC, "No space")).reason == "disk_full"
    assert failures.catalog_write(RuntimeError("gone")).reason == "catalog_unavailable"
    assert [failures.backoff(i) for i in (1, 2, 3, 12)] == [2.0, 4.0, 8.0, 600.0]


def test_every_driver_s_own_disk_full_error_is_recognised() -> None:
    """The catalog's "no space" in each driver's own exception classes (SQLAlchemy's
    wrapper around them too): the daemon pauses for space instead of retrying blindly. A
    lock timeout is not a full disk."""
    import errno
    import sqlite3

    import asyncmy.errors
    import pymysql.err
    import sqlalchemy.exc

    from lightbox.daemon.library.failures import disk_full

    full_sqlite = sqlite3.OperationalError("database or disk is full")
    full_sqlite.sqlite_errorcode = 13  # type: ignore[attr-defined]  # SQLITE_FULL
    full = [OSError(errno.ENOSPC, "No space left on device"), full_sqlite,
            pymysql.err.OperationalError(1021, "Disk full"),
            asyncmy.errors.OperationalError(1114, "The table 'photos' is full")]
    for orig in full:
        assert disk_full(orig), orig
        assert disk_full(sqlalchemy.exc.OperationalError("INSERT", {}, orig)), orig
    for orig in (pymysql.err.OperationalError(1205, "Lock wait timeout exceeded"),
                 asyncmy.errors.OperationalError(1205, "Lock wait timeout exceeded"),
                 OSError(errno.EIO, "I/O error")):
        assert not disk_full(sqlalchemy.exc.OperationalError("INSERT", {}, orig)), orig
