"""Backups to a local folder with the real daemon: full and incremental runs, the open target
format (``sha256sum -c`` on the target), verify, restore, offline roots, bit rot, a target
that goes away, a full target disk, SIGKILL in the middle of a run; schedules across
daylight-saving changes. Assertions read the target folder and the daemon's SQLite catalog.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
import json
import os
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from lbtest import DaemonProcess, need, run_cli

from lightbox.common import errors, schedule
from lightbox.daemon.media.samples import make_photo, save_jpeg

SCAN_ONLY = {"library": {"watch": False, "reconcile_interval": 0}}


def rows(d: DaemonProcess, sql: str, *args: Any) -> list[sqlite3.Row]:
    con = sqlite3.connect(f"file:{d.data_dir / 'catalog.db'}?mode=ro", uri=True, timeout=30)
    con.row_factory = sqlite3.Row
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


def wait(d: DaemonProcess, job: int, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        done: dict[str, Any] = d.call("jobs.wait", {"id": job, "timeout": 30}, timeout=40)
        if done["state"] in ("succeeded", "failed", "cancelled"):
            return done
        assert time.monotonic() < deadline, done


def scan(d: DaemonProcess) -> None:
    done = wait(d, d.call("library.scan", {})["job"])
    assert done["state"] == "succeeded", done


def backup(d: DaemonProcess, target: str = "nas", **params: Any) -> dict[str, Any]:
    return wait(d, d.call("backups.run", {"target": target, **params})["job"])


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def photos(root: Path, n: int, start: int = 0, size: int = 96) -> list[Path]:
    out = []
    for i in range(start, start + n):
        sub = root / ("2024" if i % 2 else "2025/summer")
        out.append(save_jpeg(make_photo(size, size, seed=i), sub / f"img_{i:03d}.jpg"))
    return out


def target_files(target: Path) -> dict[str, str]:
    out = {}
    for p in target.rglob("*"):
        rel = p.relative_to(target).as_posix()
        if p.is_file() and not rel.startswith(".lightbox") and rel not in ("README.txt",
                                                                           "SHA256SUMS"):
            out[rel] = sha(p)
    return out


def sha256sum_check(target: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["sha256sum", "-c", "--strict", "SHA256SUMS"], cwd=target,
                          capture_output=True, text=True)


@pytest.fixture
def lib(make_daemon: Any, tmp_path: Path) -> tuple[DaemonProcess, Path, Path]:
    d: DaemonProcess = make_daemon(config=SCAN_ONLY)
    root = tmp_path / "photos"
    photos(root, 6)
    target = tmp_path / "nas"
    target.mkdir()
    d.call("roots.add", {"path": str(root), "name": "photos", "scan": False})
    scan(d)
    d.call("backups.add", {"name": "nas", "path": str(target)})
    return d, root, target


# -- schedules ---------------------------------------------------------------------------

def test_schedule_follows_wall_clock_across_daylight_saving_changes() -> None:
    # Spring forward in Berlin: 02:30 does not exist on 29 March 2026; it runs once, at
    # the first minute after the change, and the day after at 02:30 summer time again.
    spring = schedule.next_runs("30 2 * * *", dt.datetime(2026, 3, 27, 12, tzinfo=dt.UTC),
                                "Europe/Berlin", 5)
    assert [w.strftime("%m-%d %H:%M %z") for w in spring] == [
        "03-28 02:30 +0100", "03-29 03:00 +0200", "03-30 02:30 +0200", "03-31 02:30 +0200",
        "04-01 02:30 +0200"]
    # Fall back: 02:30 happens twice on 25 October; it runs once.
    autumn = schedule.next_runs("30 2 * * *", dt.datetime(2026, 10, 23, 12, tzinfo=dt.UTC),
                                "Europe/Berlin", 4)
    utc = [w.astimezone(dt.UTC).strftime("%m-%d %H:%M") for w in autumn]
    assert utc == ["10-24 00:30", "10-25 00:30", "10-26 01:30", "10-27 01:30"]
    # An interval schedule runs on the real clock: every hour, no gap and no double.
    hourly = schedule.next_runs("0 * * * *", dt.datetime(2026, 10, 24, 23, 30, tzinfo=dt.UTC),
                                "Europe/Berlin", 4)
    utc_hours = [w.astimezone(dt.UTC) for w in hourly]
    gaps = {(b - a).total_seconds() for a, b in itertools.pairwise(utc_hours)}
    assert gaps == {3600.0}
    assert schedule.problem("61 * * * *")
    assert schedule.problem("* * *")
    assert schedule.problem("@daily") is None


def test_targets_are_validated_and_show_their_next_runs(lib: Any, tmp_path: Path) -> None:
    d, root, target = lib
    out = d.call("backups.schedule", {"cron": "0 3 * * 1", "timezone": "America/New_York"})
    assert out["valid"] and len(out["next"]) == 5
    assert all(dt.datetime.fromisoformat(w).weekday() == 0 for w in out["next"])
    bad = d.call("backups.schedule", {"cron": "0 25 * * *"})
    assert not bad["valid"] and "hour" in bad["problem"]
    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(errors.InvalidParams) as e:
        d.call("backups.add", {"name": "x", "path": str(other), "schedule": "every day"})
    assert "schedule" in str(e.value)
    with pytest.raises(errors.InvalidParams):
        d.call("backups.add", {"name": "x", "path": str(other), "timezone": "Mars/Olympus"})
    with pytest.raises(errors.InvalidParams) as e:   # inside a root: it would be scanned
        d.call("backups.add", {"name": "x", "path": str(root / "2024")})
    with pytest.raises(errors.InvalidParams):
        d.call("backups.add", {"name": "x", "path": str(other), "roots": ["nope"]})
    with pytest.raises(errors.Conflict):
        d.call("backups.add", {"name": "nas", "path": str(other)})
    listed = d.call("backups.list")["targets"]
    assert [t["name"] for t in listed] == ["nas"]
    nas = listed[0]
    assert nas["retention_days"] is None and nas["enabled"] and len(nas["next_runs"]) == 5
    assert (target / ".lightbox-target").is_file() and (target / "README.txt").is_file()
    upd = d.call("backups.update", {"target": "nas", "schedule": "@weekly", "enabled": False})
    assert upd["schedule"] == "@weekly" and not upd["enabled"]
    # The converse: no root inside a target (its copies would be indexed as photos, and an
    # import into it would write into the backup) or holding one.
    (target / "photos").mkdir()
    with pytest.raises(errors.InvalidParams) as e:
        d.call("roots.add", {"path": str(target / "photos")})
    assert e.value.data["reason"] == "backup_target"
    assert f"inside the backup target nas: {target}" in str(e.value)
    disk = tmp_path / "disk"
    (disk / "bk").mkdir(parents=True)
    d.call("backups.add", {"name": "usb", "path": str(disk / "bk")})
    with pytest.raises(errors.InvalidParams) as e:
        d.call("roots.add", {"path": str(disk)})
    assert e.value.data["reason"] == "backup_target" and "holds the backup target usb" in \
        str(e.value)
    assert [r["name"] for r in d.call("roots.list")["roots"]] == ["photos"]


def test_target_additions_edits_and_removals_are_audited(lib: Any, tmp_path: Path) -> None:
    """Who changed a backup target, what it was and what it became: in the settings audit
    log, one entry per changed key (a key's history is ``settings.audit key=...``)."""
    d, _, _ = lib
    other = tmp_path / "usb"
    other.mkdir()
    with pytest.raises(errors.Conflict):
        d.call("backups.add", {"name": "nas", "path": str(other)})
    d.call("backups.add", {"name": "usb", "path": str(other), "schedule": "0 3 * * *"})
    d.call("backups.update", {"target": "usb", "schedule": "@weekly", "enabled": False})
    d.call("backups.update", {"target": "usb", "enabled": False})     # nothing changes
    d.call("backups.remove", {"target": "usb"})
    entries = d.call("settings.audit", {"limit": 20})["entries"]
    mine = [e for e in entries if e["action"].startswith("backups.")]
    assert [(e["action"], e["result"]) for e in mine] == [
        ("backups.remove", "ok"), ("backups.update", "ok"), ("backups.add", "ok"),
        ("backups.add", "refused"), ("backups.add", "ok")]       # the last: the fixture's
    removed, updated, added, refused = mine[0], mine[1], mine[2], mine[3]
    assert removed["changes"][0]["key"] == "backup_targets.usb"
    assert removed["changes"][0]["old"]["schedule"] == "@weekly"
    assert removed["changes"][0]["new"] is None
    assert {c["key"]: (c["old"], c["new"]) for c in updated["changes"]} == {
        "backup_targets.usb.schedule": ("0 3 * * *", "@weekly"),
        "backup_targets.usb.enabled": (True, False)}
    assert added["changes"][0]["new"]["path"] == str(other)
    assert "next_runs" not in added["changes"][0]["new"]
    assert refused["detail"]["error"] and refused["changes"][0]["key"] == "backup_targets.nas"
    history = d.call("settings.audit", {"key": "backup_targets.usb.schedule"})["entries"]
    assert [e["action"] for e in history] == ["backups.update"]
    assert all(e["by"] for e in mine)


# -- runs --------------------------------------------------------------------------------

def test_full_then_incremental_runs_and_the_target_checks_with_coreutils(lib: Any) -> None:
    d, root, target = lib
    first = backup(d)
    assert first["state"] == "succeeded", first
    assert first["result"]["copied"] == 6
    files = target_files(target)
    assert len(files) == 6
    for rel, digest in files.items():
        assert rel.startswith("photos/")
        assert digest == sha(root / rel.removeprefix("photos/"))
    check = sha256sum_check(target)
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.count(": OK") == 6
    assert not list((target / ".lightbox-tmp").iterdir())
    # Progress went out as job events (files, bytes, rate, ETA) and the end as a backup event.
    events = d.call("events.since", {"seq": 0, "topics": ["job", "backup"]})["events"]
    progress = [e["data"] for e in events if e["type"] == "progress"
                and e["data"]["id"] == first["id"]]
    assert progress and progress[-1]["processed"] == 6 and progress[-1]["total"] == 6
    assert progress[-1]["bytes"] == sum(p.stat().st_size for p in root.rglob("*.jpg"))
    assert {"rate", "eta"} <= set(progress[-1])
    ends = [e["data"] for e in events if e["topic"] == "backup" and e["type"] == "finished"]
    assert ends == [{"target": "nas", "kind": "backup", "run": ends[0]["run"],
                     "state": "succeeded", "files": 6, "bytes": progress[-1]["bytes"],
                     "errors": 0, "reason": None}]

    # Nothing new: nothing copied, nothing read.
    again = backup(d)
    assert again["state"] == "succeeded" and again["result"]["copied"] == 0

    # One new photo, one changed, one deleted.
    photos(root, 1, start=10)
    changed = root / "2024" / "img_001.jpg"
    old_bytes = (target / "photos" / "2024" / "img_001.jpg").read_bytes()
    save_jpeg(make_photo(96, 96, seed=99), changed)
    (root / "2024" / "img_003.jpg").unlink()
    scan(d)
    third = backup(d)
    assert third["state"] == "succeeded", third
    assert third["result"]["copied"] == 2
    files = target_files(target)
    assert len(files) == 8  # the deleted photo's copy is kept; the old version too
    assert (target / "photos" / "2024" / "img_003.jpg").is_file()
    assert (target / "photos" / "2024" / "img_001.jpg").read_bytes() == old_bytes
    variant = target / "photos" / "2024" / f"img_001.{sha(changed)[:8]}.jpg"
    assert variant.read_bytes() == changed.read_bytes()
    assert sha256sum_check(target).returncode == 0
    manifest = rows(d, "SELECT sha256, path, size FROM backup_manifest")
    assert {r["path"] for r in manifest} == set(files)
    history = d.call("backups.history", {"target": "nas"})["runs"]
    assert [r["kind"] for r in history] == ["backup"] * 3
    assert history[0]["files"] >= 2 and history[0]["state"] == "succeeded"
    status = d.call("backups.status")["targets"][0]
    assert status["not_backed_up"] == 0 and status["files"] == 8 and status["online"]


def test_a_symlinked_folder_on_the_target_is_never_written_through(lib: Any,
                                                                   tmp_path: Path) -> None:
    """A folder of the target that is a symbolic link would put copies outside the target
    (rename and makedirs follow links): its files fail with a clear message, the rest of
    the run goes on, and nothing appears where the link points."""
    d, root, target = lib
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (target / "photos").mkdir()
    (target / "photos" / "2024").symlink_to(outside)
    run = backup(d)
    assert run["state"] == "succeeded", run
    assert run["result"]["copied"] == 3, run  # 2025/summer
    assert len(run["result"]["failed"]) == 3, run  # 2024, behind the link
    assert list(outside.iterdir()) == []
    shown = json.dumps(run["result"])
    assert "symbolic link" in shown and str(target / "photos" / "2024") in shown
    assert d.call("backups.status")["targets"][0]["not_backed_up"] == 3
    assert sha256sum_check(target).returncode == 0
    # A script waiting on the run hears that not everything is backed up (exit 1), and a
    # person reads which files and why.
    r = run_cli("backup", "run", "nas", "--wait", env={"LIGHTBOX_DATA_DIR": str(d.data_dir)})
    assert r.returncode == 1, r.stdout + r.stderr
    assert "backup succeeded" in r.stdout and "failed (3):" in r.stdout, r.stdout
    assert f"{root / '2024'}/img_001.jpg: {target / 'photos' / '2024'} is a symbolic link" \
        in r.stdout, r.stdout
    # The link replaced by a real folder: the next run copies what was missing.
    (target / "photos" / "2024").unlink()
    again = backup(d)
    assert again["result"]["copied"] == 3, again
    assert d.call("backups.status")["targets"][0]["not_backed_up"] == 0


def test_verify_finds_a_flipped_byte_a_missing_and_an_extra_file(lib: Any) -> None:
    d, _, target = lib
    assert backup(d)["state"] == "succeeded"
    files = sorted(target_files(target))
    flipped = target / files[0]
    data = bytearray(flipped.read_bytes())
    data[len(data) // 2] ^= 0x01
    flipped.write_bytes(bytes(data))
    (target / files[1]).unlink()
    (target / "photos" / "stray.jpg").write_bytes(b"not from lightbox")
    done = wait(d, d.call("backups.verify", {"target": "nas", "all": True})["job"])
    assert done["state"] == "succeeded", done
    r = done["result"]
    assert r["changed"] == [files[0]] and r["missing"] == [files[1]]
    assert r["extra"] == ["photos/stray.jpg"]
    assert r["ok"] == 4 and r["never_verified"] == 0 and r["whole"]
    # coreutils agrees.
    check = sha256sum_check(target)
    assert check.returncode != 0 and "FAILED" in check.stdout
    # So does the command line, in its exit code (as sha256sum -c) and its words.
    cli = run_cli("backup", "verify", "nas", "--all", "--wait",
                  env={"LIGHTBOX_DATA_DIR": str(d.data_dir)})
    assert cli.returncode == 1, cli.stdout + cli.stderr
    assert "checked 6 of 6: 4 ok" in cli.stdout and f"changed (1):\n  {files[0]}" in cli.stdout
    assert f"missing (1):\n  {files[1]}" in cli.stdout and "extra (1)" in cli.stdout
    # A budgeted verify reads the least recently verified first.
    part = wait(d, d.call("backups.verify", {"target": "nas", "sample": 50})["job"])
    assert part["result"]["checked"] == 3
    status = d.call("backups.status", {"target": "nas"})["targets"][0]
    assert status["last_verify"]["state"] == "succeeded"
    assert status["oldest_verified_age"] is not None


def test_restore_a_folder_reproduces_the_bytes_and_never_overwrites(lib: Any,
                                                                    tmp_path: Path) -> None:
    d, root, target = lib
    assert backup(d)["state"] == "succeeded"
    dest = tmp_path / "restored"
    plan = wait(d, d.call("backups.restore", {"target": "nas", "dest": str(dest),
                                              "folder": str(root / "2025"),
                                              "dry_run": True})["job"])
    assert plan["state"] == "succeeded", plan
    assert plan["result"]["counts"] == {"restore": 3}
    assert not dest.exists()
    assert all(p["from"].startswith(str(target)) for p in plan["result"]["plan"])
    done = wait(d, d.call("backups.restore", {"target": "nas", "dest": str(dest),
                                              "folder": str(root / "2025")})["job"])
    assert done["result"]["counts"] == {"restored": 3}, done
    # Never into the target itself: its files would be extra files of the backup.
    with pytest.raises(errors.InvalidParams) as into_target:
        d.call("backups.restore", {"target": "nas", "dest": str(target / "again"),
                                   "all": True})
    assert into_target.value.data["reason"] == "backup_target"
    assert not (target / "again").exists()
    # A new folder in a home is where a person restores to (``~/restored``): it lies
    # inside the home, it is not the home (this was refused as "is a home directory").
    fresh = Path.home() / f"lb-restore-{os.getpid()}-{time.monotonic_ns()}"
    plan = wait(d, d.call("backups.restore", {"target": "nas", "dest": str(fresh),
                                              "all": True, "dry_run": True})["job"])
    assert plan["state"] == "succeeded" and plan["result"]["counts"] == {"restore": 6}, plan
    assert not fresh.exists()
    with pytest.raises(errors.InvalidParams) as home:
        d.call("backups.restore", {"target": "nas", "dest": str(Path.home()), "all": True})
    assert home.value.data["reason"] == "home_dir"
    for orig in (root / "2025" / "summer").iterdir():
        assert (dest / "photos" / "2025" / "summer" / orig.name).read_bytes() == \
            orig.read_bytes()
    # A file that differs is kept unless asked.
    victim = dest / "photos" / "2025" / "summer" / "img_000.jpg"
    victim.write_bytes(b"mine")
    # What a restore killed mid-way left beside its files (a process that is gone) is
    # removed by the next restore there; a live process's and a person's files are not.
    gone = subprocess.Popen(["true"])
    gone.wait()
    stale = victim.parent / f".img_002.jpg.{gone.pid}-7.lbrestore"
    stale.write_bytes(b"half")
    live = victim.parent / f".img_004.jpg.{os.getppid()}-1.lbrestore"
    live.write_bytes(b"in flight")
    theirs = victim.parent / ".notes.lbrestore"
    theirs.write_bytes(b"a person's")
    again = wait(d, d.call("backups.restore", {"target": "nas", "dest": str(dest),
                                               "all": True})["job"])
    assert again["result"]["counts"] == {"kept": 1, "present": 2, "restored": 3}, again
    assert victim.read_bytes() == b"mine"
    assert again["result"]["leftovers_removed"] == 1
    assert not stale.exists() and live.exists() and theirs.exists()
    forced = wait(d, d.call("backups.restore", {"target": "nas", "dest": str(dest),
                                                "photo": rows(d, "SELECT id FROM photos WHERE "
                                                              "name='img_000.jpg'")[0][0],
                                                "overwrite": True})["job"])
    assert forced["result"]["counts"] == {"restored": 1}
    assert victim.read_bytes() == (root / "2025" / "summer" / "img_000.jpg").read_bytes()
    with pytest.raises(errors.InvalidParams):
        d.call("backups.restore", {"target": "nas", "dest": "/etc/lightbox", "all": True})


def test_an_offline_root_is_skipped_and_nothing_on_the_target_changes(lib: Any,
                                                                      tmp_path: Path) -> None:
    d, root, target = lib
    assert backup(d)["state"] == "succeeded"
    before = target_files(target)
    sums = (target / "SHA256SUMS").read_bytes()
    aside = tmp_path / "aside"
    root.rename(aside)
    root.mkdir()  # an empty mount point, as an unmounted disk leaves
    done = backup(d)
    assert done["state"] == "succeeded", done
    assert "photos" in done["result"]["skipped_roots"]
    assert "offline" in done["result"]["skipped_roots"]["photos"]
    assert target_files(target) == before
    assert (target / "SHA256SUMS").read_bytes() == sums
    assert len(rows(d, "SELECT * FROM backup_manifest")) == len(before)


def test_bit_rot_at_the_source_is_reported_and_the_good_copy_kept(lib: Any) -> None:
    d, root, target = lib
    assert backup(d)["state"] == "succeeded"
    victim = root / "2024" / "img_001.jpg"
    good = victim.read_bytes()
    st = victim.stat()
    rotten = bytearray(good)
    rotten[len(rotten) // 2] ^= 0x40
    victim.write_bytes(bytes(rotten))
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))
    scan(d)  # size and mtime unchanged: the scanner cannot tell
    done = backup(d, check_sources=True)
    assert done["state"] == "succeeded", done
    damaged = done["result"]["damaged"]
    assert [x["path"] for x in damaged] == [str(victim)]
    assert (target / "photos" / "2024" / "img_001.jpg").read_bytes() == good
    # A photo that rots before its first backup is not copied at all.
    new = photos(root, 1, start=20)[0]
    scan(d)
    st = new.stat()
    data = bytearray(new.read_bytes())
    data[-10] ^= 0x01
    new.write_bytes(bytes(data))
    os.utime(new, ns=(st.st_atime_ns, st.st_mtime_ns))
    second = backup(d)
    assert [x["path"] for x in second["result"]["damaged"]] == [str(new)]
    assert not (target / "photos" / new.relative_to(root)).exists()
    assert sha256sum_check(target).returncode == 0


def test_a_missing_or_read_only_target_fails_the_run_writing_nothing(lib: Any,
                                                                     tmp_path: Path) -> None:
    d, _, target = lib
    aside = tmp_path / "nas-unplugged"
    target.rename(aside)
    target.mkdir()  # the empty mount point
    done = backup(d)
    assert done["state"] == "failed"
    assert done["result"]["reason"] == "target_missing", done
    assert "marker" in done["error"]
    assert list(target.iterdir()) == []
    shutil.rmtree(target)
    done = backup(d)
    assert done["result"]["reason"] == "target_missing"
    assert not target.exists()
    aside.rename(target)
    # Read-only: a read-only bind mount of the target (root in a container).
    ro = subprocess.run(["mount", "--bind", "-o", "ro", str(target), str(target)],
                        capture_output=True, text=True)
    if ro.returncode == 0:
        try:
            done = backup(d)
            assert done["result"]["reason"] == "target_read_only", done
        finally:
            subprocess.run(["umount", str(target)], capture_output=True)
    status = d.call("backups.status")["targets"][0]
    assert status["online"]
    assert backup(d)["state"] == "succeeded"


@pytest.fixture
def tmpfs() -> Iterator[Callable[[Path, str], Path]]:
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


def test_a_full_target_disk_stops_the_run_cleanly(make_daemon: Any, tmp_path: Path,
                                                  tmpfs: Any) -> None:
    d: DaemonProcess = make_daemon(config=SCAN_ONLY)
    root = tmp_path / "photos"
    photos(root, 8, size=700)  # ~100-200 kB each
    d.call("roots.add", {"path": str(root), "name": "photos", "scan": False})
    scan(d)
    total = sum(p.stat().st_size for p in root.rglob("*.jpg"))
    target = tmpfs(tmp_path / "usb", f"{total // 2 // 1024}k")
    d.call("backups.add", {"name": "usb", "path": str(target)})
    done = backup(d, "usb")
    assert done["state"] == "failed", done
    assert done["result"]["reason"] == "disk_full"
    copied = done["result"]["copied"]
    assert 0 < copied < 8
    assert not list((target / ".lightbox-tmp").iterdir())  # no partial file left
    on_target = target_files(target)
    assert len(on_target) == copied
    manifest = {r["path"]: r["sha256"] for r in rows(d, "SELECT path, sha256 "
                                                        "FROM backup_manifest")}
    assert manifest == on_target
    assert sha256sum_check(target).returncode == 0


def test_a_restore_stops_at_a_full_destination_and_never_writes_through_a_link(
        make_daemon: Any, tmp_path: Path, tmpfs: Any) -> None:
    d: DaemonProcess = make_daemon(config=SCAN_ONLY)
    root = tmp_path / "photos"
    photos(root, 12, size=700)  # ~100-200 kB each
    d.call("roots.add", {"path": str(root), "name": "photos", "scan": False})
    scan(d)
    target = tmp_path / "nas"
    target.mkdir()
    d.call("backups.add", {"name": "nas", "path": str(target)})
    assert backup(d, "nas")["state"] == "succeeded"
    # A full disk: the restore stops at the first file that does not fit, says how many
    # were not restored, and leaves no temporary file behind.
    total = sum(p.stat().st_size for p in root.rglob("*.jpg"))
    small = tmpfs(tmp_path / "small", f"{total // 3 // 1024}k")
    done = wait(d, d.call("backups.restore", {"target": "nas", "dest": str(small),
                                              "all": True})["job"])
    assert done["state"] == "failed", done
    r = done["result"]
    assert r["reason"] == "disk_full", r
    counts = r["counts"]
    assert counts["disk_full"] == 1 and 0 < counts["restored"] < 11, counts
    assert counts["restored"] + 1 + counts.get("not_started", 0) == 12, counts
    assert [p for p in r["problems"] if p["status"] == "disk_full"], r["problems"]
    restored = [p for p in small.rglob("*") if p.is_file()]
    assert len(restored) == counts["restored"]
    assert not [p for p in restored if p.name.endswith((".lbrestore", ".lbdownload"))]
    for p in restored:
        assert p.read_bytes() == (root / p.relative_to(small / "photos")).read_bytes()
    cli = run_cli("backup", "restore", "nas", str(small), "--all", "--wait",
                  env={"LIGHTBOX_DATA_DIR": str(d.data_dir)})
    assert cli.returncode != 0 and "full" in cli.stdout + cli.stderr, cli.stdout + cli.stderr
    # A folder of the destination that is a symbolic link is not written through.
    dest = tmp_path / "restored"
    elsewhere = tmp_path / "elsewhere"
    (dest / "photos").mkdir(parents=True)
    elsewhere.mkdir()
    (dest / "photos" / "2024").symlink_to(elsewhere)
    done = wait(d, d.call("backups.restore", {"target": "nas", "dest": str(dest),
                                              "all": True})["job"])
    assert done["state"] == "succeeded", done
    counts = done["result"]["counts"]
    assert counts == {"restored": 6, "failed": 6}, counts
    assert list(elsewhere.iterdir()) == []
    assert all("symbolic link" in p["error"] for p in done["result"]["problems"])
    assert len(list((dest / "photos" / "2025").rglob("*.jpg"))) == 6


def test_sigkill_mid_run_then_a_rerun_copies_nothing_twice(make_daemon: Any,
                                                           tmp_path: Path) -> None:
    d: DaemonProcess = make_daemon(config=SCAN_ONLY)
    root = tmp_path / "photos"
    photos(root, 40, size=600)
    d.call("roots.add", {"path": str(root), "name": "photos", "scan": False})
    scan(d)
    target = tmp_path / "nas"
    target.mkdir()
    d.call("backups.add", {"name": "nas", "path": str(target)})
    job = d.call("backups.run", {"target": "nas"})["job"]
    deadline = time.monotonic() + 60
    while not any((target / "photos").rglob("*.jpg")) and time.monotonic() < deadline:
        time.sleep(0.002)
    d.kill()
    assert len(list((target / "photos").rglob("*.jpg"))) < 40  # killed in the middle
    # Nothing under a final name is partial: every final file is a photo's exact bytes.
    originals = {sha(p) for p in root.rglob("*.jpg")}
    assert set(target_files(target).values()) <= originals
    d.start()
    first = wait(d, job)  # the interrupted job was resumed (the lock of the dead daemon
    assert first["state"] == "succeeded", first  # taken over)
    again = backup(d)
    assert again["result"]["copied"] == 0
    on_target = target_files(target)
    assert len(on_target) == 40 and set(on_target.values()) == originals
    manifest = {r["path"]: r["sha256"] for r in rows(d, "SELECT path, sha256 "
                                                        "FROM backup_manifest")}
    assert manifest == on_target
    assert sha256sum_check(target).returncode == 0
    assert not list((target / ".lightbox-tmp").iterdir())
    runs = rows(d, "SELECT state, result FROM backup_runs ORDER BY id")
    assert [r["state"] for r in runs] == ["failed", "succeeded", "succeeded"]
    assert "interrupted" in runs[0]["result"]
    assert first["result"]["adopted"] + first["result"]["copied"] == 40


def test_the_command_line_drives_backups_and_import(make_daemon: Any, tmp_path: Path) -> None:
    d: DaemonProcess = make_daemon(config=SCAN_ONLY)
    env = {"LIGHTBOX_DATA_DIR": str(d.data_dir)}
    root = tmp_path / "photos"
    photos(root, 3)
    d.call("roots.add", {"path": str(root), "name": "photos", "scan": False})
    scan(d)
    target = tmp_path / "usb"
    target.mkdir()
    r = run_cli("backup", "add", "usb", str(target), "--schedule", "30 2 * * *",
                "--timezone", "Europe/Berlin", "--retention-days", "30", env=env)
    assert r.returncode == 0, r.stderr
    assert "At 02:30" in r.stdout and "remove copies 30 days" in r.stdout
    r = run_cli("backup", "add", "bad", str(target), "--schedule", "99 * * * *", env=env)
    assert r.returncode == 2 and "schedule" in r.stderr
    r = run_cli("backup", "schedule", "0 3 * * 0", "--json", env=env)
    assert json.loads(r.stdout)["valid"]
    r = run_cli("backup", "run", "usb", "--wait", "--json", env=env)
    assert r.returncode == 0, r.stderr
    job = json.loads(r.stdout)
    assert job["state"] == "succeeded" and job["result"]["copied"] == 3
    r = run_cli("backup", "verify", "usb", "--all", "--wait", env=env)
    assert r.returncode == 0 and "succeeded" in r.stdout, r.stdout + r.stderr
    assert "checked 3 of 3: 3 ok" in r.stdout, r.stdout
    r = run_cli("backup", "restore", "usb", str(tmp_path / "back"), "--all", "--dry-run",
                "--wait", "--json", env=env)
    assert json.loads(r.stdout)["result"]["counts"] == {"restore": 3}
    r = run_cli("backup", "status", env=env)
    assert "0 photos not backed up" in r.stdout and "last verify: succeeded" in r.stdout
    r = run_cli("backup", "history", "--json", env=env)
    assert [x["kind"] for x in json.loads(r.stdout)] == ["restore", "verify", "backup"]
    (target / ".lightbox-target").unlink()  # as if another disk were mounted there
    r = run_cli("backup", "run", "usb", "--wait", env=env)
    assert r.returncode == 1 and "marker" in r.stdout
    card = tmp_path / "card"
    save_jpeg(make_photo(64, 64, seed=77), card / "IMG_1.jpg")
    r = run_cli("import", str(card), "--root", "photos", "--dry-run", env=env)
    assert r.returncode == 0, r.stderr
    assert "IMG_1.jpg -> undated/undated/IMG_1.jpg" in r.stdout and "plan: 1 copy" in r.stdout
    r = run_cli("import", str(card), "--root", "photos", "--move", "--wait", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    # usb covers the root and lacks the new photo; the card is empty now, so no verdict
    # about erasing it, but the photo is in one place only.
    assert "moved; 1 not yet on backup target usb (lightbox backup run usb)" in r.stdout
    assert "safe to erase" not in r.stdout
    assert not (card / "IMG_1.jpg").exists()
    assert (root / "undated" / "undated" / "IMG_1.jpg").is_file()


def test_retention_removes_only_copies_of_photos_gone_long_enough(lib: Any) -> None:
    d, root, target = lib
    assert backup(d)["state"] == "succeeded"
    gone = root / "2024" / "img_001.jpg"
    kept_dup = root / "2024" / "img_003.jpg"
    gone.unlink()
    scan(d)  # now missing in the catalog
    d.call("backups.update", {"target": "nas", "retention_days": 0})
    first = backup(d)
    # The first run that finds a copy orphaned only marks it: gone for 0 days so far.
    assert first["result"]["retention"] == {"removed": 0}
    assert (target / "photos" / "2024" / "img_001.jpg").is_file()
    second = backup(d)
    assert second["result"]["retention"] == {"removed": 1}
    assert not (target / "photos" / "2024" / "img_001.jpg").exists()
    assert (target / "photos" / "2024" / kept_dup.name).is_file()
    assert len(target_files(target)) == 5
    assert sha256sum_check(target).returncode == 0
    # Without retention (the default) nothing is ever removed.
    d.call("backups.update", {"target": "nas", "clear": ["retention_days"]})
    (root / "2024" / "img_005.jpg").unlink()
    scan(d)
    backup(d)
    third = backup(d)
    assert "retention" not in third["result"]
    assert len(target_files(target)) == 5


def test_a_target_unmounted_mid_run_fails_it_writing_nothing_elsewhere(
        make_daemon: Any, tmp_path: Path, tmpfs: Any) -> None:
    d: DaemonProcess = make_daemon(config=SCAN_ONLY)
    root = tmp_path / "photos"
    photos(root, 300, size=160)
    d.call("roots.add", {"path": str(root), "name": "photos", "scan": False})
    scan(d)
    # The unmount must land while the run copies: a run that finished first (a quick
    # machine, a slow umount) proves nothing, so it is tried again on a new target.
    for attempt in range(4):
        target = tmpfs(tmp_path / f"usb{attempt}", "64m")
        name = f"usb{attempt}"
        d.call("backups.add", {"name": name, "path": str(target)})
        job = d.call("backups.run", {"target": name})["job"]
        # Copying has begun once a temporary name is in the temp dir, or (unnamed copies,
        # which have no name until they are placed) a folder of the copies is made.
        tmp, copies = target / ".lightbox-tmp", target / "photos"
        deadline = time.monotonic() + 60
        while not (copies.is_dir() or (tmp.is_dir() and any(tmp.iterdir()))) \
                and time.monotonic() < deadline:
            time.sleep(0.002)
        subprocess.run(["umount", "-l", str(target)], check=True)
        done = wait(d, job)
        if done["state"] != "succeeded":
            break
    assert done["state"] == "failed", done
    assert done["result"] is not None, (done, d.log())
    assert done["result"]["reason"] == "target_missing", done
    assert list(target.iterdir()) == []  # the mount point: nothing was created there
    assert rows(d, "SELECT count(*) FROM backup_manifest m JOIN backup_targets t "
                "ON t.id = m.target_id WHERE t.name = ?", name)[0][0] == done["result"]["copied"]


def test_what_a_killed_run_left_on_the_target_is_cleared(tmp_path: Path) -> None:
    """A run killed mid-way leaves temp files in .lightbox-tmp (a second writer's in its
    own folder there) and, when it died while rewriting SHA256SUMS, write_atomic's
    temporary file beside it: the next run's clear_temp removes them and nothing else."""
    from lightbox.daemon.backups import files

    target = tmp_path / "nas"
    target.mkdir()
    files.prepare(str(target), "nas", "m1")
    (target / ".lightbox-tmp" / "123-4.part").write_bytes(b"partial")
    (target / ".lightbox-tmp" / "w1").mkdir()
    (target / ".lightbox-tmp" / "w1" / "123-5.part").write_bytes(b"partial too")
    (target / ".SHA256SUMS.123.7.tmp").write_bytes(b"half a list")
    (target / "photos").mkdir()
    (target / "photos" / ".keep.tmp").write_bytes(b"a user's file")
    sums = (target / "SHA256SUMS").read_bytes()
    assert files.clear_temp(str(target)) == 3
    assert not list((target / ".lightbox-tmp").iterdir())
    assert not (target / ".SHA256SUMS.123.7.tmp").exists()
    assert (target / "photos" / ".keep.tmp").exists()
    assert (target / "SHA256SUMS").read_bytes() == sums
    assert files.check(str(target), "m1") is None


def test_a_run_with_nothing_new_trusts_the_clean_mark_only_while_it_holds(
        make_daemon: Any, tmp_path: Path) -> None:
    """After a run that left nothing lacking, the next one compares the catalog's
    fingerprint with the mark it left and skips the anti-join when they match; a new photo,
    a changed one, a copy gone from the manifest or a changed target each make the run
    look at the manifest again, and it copies exactly what is lacking."""
    d: DaemonProcess = make_daemon(config=SCAN_ONLY)
    root = tmp_path / "photos"
    photos(root, 3)
    d.call("roots.add", {"path": str(root), "name": "photos", "scan": False})

    def settled_scan() -> None:
        scan(d)
        deadline = time.monotonic() + 120
        while d.call("roots.list")["roots"][0]["pending"]:
            assert time.monotonic() < deadline
            time.sleep(0.2)

    settled_scan()
    (tmp_path / "nas").mkdir()
    d.call("backups.add", {"name": "nas", "path": str(tmp_path / "nas")})
    first = backup(d)["result"]
    assert (first["copied"], first["lacking_from"]) == (3, "manifest"), first
    again = backup(d)["result"]
    assert (again["copied"], again["lacking_from"]) == (0, "mark"), again

    photos(root, 1, start=10)  # a new photo
    settled_scan()
    new = backup(d)["result"]
    assert (new["copied"], new["lacking_from"]) == (1, "manifest"), new
    assert backup(d)["result"]["lacking_from"] == "mark"

    changed = root / "2024" / "img_001.jpg"  # other content, indexed again
    save_jpeg(make_photo(96, 96, seed=77), changed)
    settled_scan()
    out = backup(d)["result"]
    assert (out["copied"], out["lacking_from"]) == (1, "manifest"), out

    # A copy the manifest lost (as retention would remove one): looked at again, copied.
    con = sqlite3.connect(str(d.data_dir / "catalog.db"), timeout=30)
    try:
        with con:
            con.execute("DELETE FROM backup_manifest WHERE path LIKE '%img_010.jpg'")
    finally:
        con.close()
    out = backup(d)["result"]
    assert out["lacking_from"] == "manifest" and out["copied"] + out["adopted"] == 1, out

    d.call("backups.update", {"target": "nas", "verify_days": 7})  # a changed target
    assert backup(d)["result"]["lacking_from"] == "manifest"
    assert backup(d)["result"]["lacking_from"] == "mark"
    assert sha256sum_check(tmp_path / "nas").returncode == 0
