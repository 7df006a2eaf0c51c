"""``library.import`` with the real daemon: a layout template on EXIF dates, undated photos,
name collisions resolved from the sha256 (the same names on a rerun), files the catalog
already has skipped, the "safe to erase" verdict, and ``--move`` keeping a source whose
copy could not be verified (a destination that fills up: a real small tmpfs)."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from lbtest import DaemonProcess, need, run_cli, short_tmpdir

from lightbox.common import errors
from lightbox.daemon.backups.importer import render, safe_component, template_problem
from lightbox.daemon.media.samples import ExifSpec, make_photo, save_jpeg

SCAN_ONLY = {"library": {"watch": False, "reconcile_interval": 0}}


def wait(d: DaemonProcess, job: int, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        done: dict[str, Any] = d.call("jobs.wait", {"id": job, "timeout": 30}, timeout=40)
        if done["state"] in ("succeeded", "failed", "cancelled"):
            return done
        assert time.monotonic() < deadline, done


def do_import(d: DaemonProcess, card: Path, **params: Any) -> dict[str, Any]:
    return wait(d, d.call("library.import", {"source_path": str(card), "root": "lib",
                                             **params})["job"])


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def files_below(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): sha(p) for p in root.rglob("*")
            if p.is_file() and not p.name.startswith(".")}


def make_card(card: Path, known: Path) -> None:
    """Two different photos named IMG_0001.jpg taken the same day, one undated photo, a
    photo the library has already (``known``), and a file that is no photo."""
    may = dt.datetime(2024, 5, 1, 10, 30)
    save_jpeg(make_photo(64, 64, seed=1), card / "DCIM" / "100CANON" / "IMG_0001.jpg",
              ExifSpec(taken=may, make="Canon", model="EOS R6"))
    save_jpeg(make_photo(64, 64, seed=2), card / "DCIM" / "101CANON" / "IMG_0001.jpg",
              ExifSpec(taken=may + dt.timedelta(hours=2), make="Canon", model="EOS R6"))
    save_jpeg(make_photo(64, 64, seed=3), card / "DCIM" / "100CANON" / "IMG_0002.jpg",
              ExifSpec(taken=dt.datetime(2023, 12, 31, 23, 59)))
    save_jpeg(make_photo(64, 64, seed=4), card / "misc" / "scan.jpg")  # no EXIF: undated
    (card / "DCIM" / "known.jpg").write_bytes(known.read_bytes())
    (card / "notes.txt").write_text("not a photo\n")


@pytest.fixture
def lib(make_daemon: Any, tmp_path: Path) -> tuple[DaemonProcess, Path, Path]:
    d: DaemonProcess = make_daemon(config=SCAN_ONLY)
    root = tmp_path / "lib"
    known = save_jpeg(make_photo(64, 64, seed=50), root / "old" / "known.jpg")
    d.call("roots.add", {"path": str(root), "name": "lib", "scan": False})
    assert wait(d, d.call("library.scan", {})["job"])["state"] == "succeeded"
    card = tmp_path / "card"
    make_card(card, known)
    return d, root, card


def test_templates_and_safe_names() -> None:
    meta = {"name": "IMG 1.JPG", "taken": dt.datetime(2024, 5, 1), "mtime": None,
            "sha256": "ab" * 32, "make": None}
    assert render("{taken:%Y}/{taken:%Y-%m-%d}/{name}", meta) == "2024/2024-05-01/IMG 1.JPG"
    assert render("{mtime:%Y|no-date}/{stem}.{ext}", meta) == "no-date/IMG 1.jpg"
    assert render("{make}/{sha8}-{name}", meta) == "unknown/abababab-IMG 1.JPG"
    assert render("{taken:%Y}/../{name}", {**meta, "taken": None}) == "undated/_/IMG 1.JPG"
    assert safe_component('a:b*c?"d<e>f|g') == "a_b_c__d_e_f_g"
    assert safe_component("CON.jpg") == "_CON.jpg"
    assert safe_component("trailing. ") == "trailing"
    long = safe_component("é" * 300 + ".jpeg")
    assert long.endswith(".jpeg") and len(long.encode()) <= 255
    assert template_problem("{taken:%Y}") and template_problem("{nope}/{name}")
    assert template_problem("{taken:%Y}/{name}") is None


def test_import_plans_copies_and_reruns_to_the_same_names(lib: Any, tmp_path: Path) -> None:
    d, root, card = lib
    before_card = files_below(card)
    plan = do_import(d, card, dry_run=True)
    assert plan["state"] == "succeeded", plan
    r = plan["result"]
    assert r["counts"] == {"copy": 4, "skip": 1, "not_photo": 1}, r
    planned = {f["from"]: f["to"] for f in r["files"] if f["action"] == "copy"}
    assert files_below(root).keys() == {"old/known.jpg"}  # a dry run writes nothing
    a, b = "DCIM/100CANON/IMG_0001.jpg", "DCIM/101CANON/IMG_0001.jpg"
    # Same name, other content: the lower sha256 keeps the name, the other gets a suffix.
    low, high = sorted((a, b), key=lambda rel: sha(card / rel))
    assert planned[low] == "2024/2024-05-01/IMG_0001.jpg"
    assert planned[high] == f"2024/2024-05-01/IMG_0001.{sha(card / high)[:8]}.jpg"
    assert planned["DCIM/100CANON/IMG_0002.jpg"] == "2023/2023-12-31/IMG_0002.jpg"
    assert planned["misc/scan.jpg"] == "undated/undated/scan.jpg"

    done = do_import(d, card)
    assert done["state"] == "succeeded", done
    r = done["result"]
    assert r["counts"] == {"copied": 4, "skip": 1, "not_photo": 1}, r
    on_disk = files_below(root)
    for src, dest in planned.items():
        assert on_disk[dest] == sha(card / src)
    assert files_below(card) == before_card  # a copy leaves the card alone
    assert r["not_in_library"] == 0
    assert not r["safe_to_erase"]  # notes.txt is on no list: erasing would lose it
    # The catalog took the new files.
    status = d.call("roots.list")["roots"][0]
    assert status["photos"] == 5

    # Again: everything is in the library now.
    again = do_import(d, card)
    assert again["result"]["counts"] == {"skip": 5, "not_photo": 1}
    assert files_below(root) == on_disk

    # A catalog that forgot the files: the same plan meets the same files, nothing doubles.
    d.call("roots.remove", {"root": "lib"})
    d.call("roots.add", {"path": str(root), "name": "lib", "scan": False})
    third = do_import(d, card)
    assert third["state"] == "succeeded", third
    # The four imported before are found at their names; known.jpg, forgotten with the
    # rest, is imported once more under the template (old/known.jpg is not a file of the
    # plan), which is what the catalog's sha256 would have prevented.
    assert third["result"]["counts"] == {"present": 4, "copied": 1, "not_photo": 1}
    after = files_below(root)
    assert {k: v for k, v in after.items() if k in on_disk} == on_disk
    assert set(after) - set(on_disk) == {"undated/undated/known.jpg"}


def test_import_refuses_bad_requests(lib: Any, tmp_path: Path) -> None:
    d, root, card = lib
    with pytest.raises(errors.InvalidParams):
        d.call("library.import", {"source_path": str(card), "root": "lib",
                                  "template": "{taken:%Y}"})
    with pytest.raises(errors.InvalidParams):  # from inside the library
        d.call("library.import", {"source_path": str(root / "old"), "root": "lib"})
    with pytest.raises(errors.NotFound):
        d.call("library.import", {"source_path": str(tmp_path / "nope"), "root": "lib"})
    # Nor from a folder holding the library or a backup: a move would take the backup's
    # files (its older versions are in no catalog) out of the backup.
    with pytest.raises(errors.InvalidParams) as holds:
        d.call("library.import", {"source_path": str(tmp_path), "root": "lib",
                                  "mode": "move"})
    assert holds.value.data["reason"] == "holds_a_root"
    disk = tmp_path / "disk"
    (disk / "nas").mkdir(parents=True)
    d.call("backups.add", {"name": "nas", "path": str(disk / "nas")})
    kept = save_jpeg(make_photo(64, 64, seed=90), disk / "nas" / "lib" / "old.jpg")
    for source in (disk, disk / "nas", disk / "nas" / "lib"):
        with pytest.raises(errors.InvalidParams) as backup:
            d.call("library.import", {"source_path": str(source), "root": "lib",
                                      "mode": "move"})
        assert backup.value.data["reason"] == "backup_target", source
    assert kept.is_file()


def test_safe_to_erase_needs_the_library_and_the_backup(lib: Any, tmp_path: Path) -> None:
    d, _, card = lib
    (card / "notes.txt").unlink()
    nas = tmp_path / "nas"
    nas.mkdir()
    d.call("backups.add", {"name": "nas", "path": str(nas), "roots": ["lib"]})
    done = do_import(d, card)
    assert done["result"]["not_in_library"] == 0
    assert done["result"]["not_backed_up"] == {"nas": 5}
    assert not done["result"]["safe_to_erase"]
    assert wait(d, d.call("backups.run", {"target": "nas"})["job"])["state"] == "succeeded"
    again = do_import(d, card, dry_run=False)
    assert again["result"]["safe_to_erase"], again["result"]


def test_move_keeps_every_source_whose_copy_could_not_be_verified(
        make_daemon: Any, tmp_path: Path) -> None:
    d: DaemonProcess = make_daemon(config=SCAN_ONLY)
    root = tmp_path / "small"
    root.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=600k,mode=0700", "tmpfs",
                              str(root)], capture_output=True, text=True)
    need(mounted.returncode == 0, "mounting a tmpfs (root, CAP_SYS_ADMIN)",
         f"run the tests as root in a container that allows mounts ({mounted.stderr.strip()})")
    try:
        save_jpeg(make_photo(32, 32, seed=9), root / "first.jpg")
        d.call("roots.add", {"path": str(root), "name": "lib", "scan": False})
        card = tmp_path / "card"
        for i in range(6):
            save_jpeg(make_photo(500, 500, seed=100 + i), card / f"IMG_{i:04d}.jpg",
                      ExifSpec(taken=dt.datetime(2024, 1, 1 + i)), quality=97)
        sizes = [p.stat().st_size for p in card.iterdir()]
        assert sum(sizes) > 600 * 1024 > max(sizes) * 2, sizes
        originals = {p.name: sha(p) for p in card.iterdir()}
        done = do_import(d, card, mode="move", template="{name}")
        assert done["state"] == "failed", done
        assert done["result"]["reason"] == "disk_full"
        left = {p.name: sha(p) for p in card.iterdir()}
        moved = {n for n in originals if n not in left}
        assert moved and left  # some moved, the rest kept
        for name in moved:  # what left the card is in the root, byte for byte
            assert sha(root / name) == originals[name]
        for name, digest in left.items():
            assert digest == originals[name]
            assert not (root / name).exists() or sha(root / name) == digest
        assert not [p for p in root.iterdir() if p.name.startswith(".lbimport")]
        assert not done["result"]["safe_to_erase"]
    finally:
        d.stop()
        subprocess.run(["umount", "-l", str(root)], capture_output=True)


def test_a_move_never_writes_through_a_symlinked_folder_of_the_root(
        lib: Any, tmp_path: Path) -> None:
    """A folder of the root that is a symbolic link would take the imported copies outside
    the library (and the move would then delete the card's originals)."""
    d, root, card = lib
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (root / "2024").symlink_to(outside)
    before = {p.relative_to(card).as_posix(): sha(p) for p in card.rglob("*.jpg")}
    done = do_import(d, card, mode="move")
    assert list(outside.iterdir()) == []
    errors = [f for f in done["result"]["files"] if f["action"] == "error"]
    assert len(errors) == 2, done  # the two taken in May 2024
    assert all("symbolic link" in f["reason"] for f in errors), errors
    for f in errors:  # their originals are still on the card
        assert sha(card / f["from"]) == before[f["from"]]
    assert not done["result"]["safe_to_erase"]
    assert (root / "2023").is_dir()  # the rest went where the template says


def test_copies_the_catalog_has_not_read_back_are_not_safe_to_erase(
        make_daemon: Any, tmp_path: Path) -> None:
    """A copy-mode import leaves each copy's read-back to the indexer's hash of the new
    file. With the thumbnail disk full, indexing pauses before it reads them: the import
    ends (it does not wait for ever) and says the card is NOT safe to erase, counting the
    copies not yet read back; once there is room the indexer reads them by itself and the
    same import again finds every file in the library: safe."""
    data = short_tmpdir()
    cache = data / "cache"
    cache.mkdir()
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m,mode=0700", "tmpfs",
                              str(cache)], capture_output=True, text=True)
    need(mounted.returncode == 0, "mounting a tmpfs (root, CAP_SYS_ADMIN)",
         f"run the tests as root in a container that allows mounts ({mounted.stderr.strip()})")
    d: DaemonProcess | None = None
    try:
        filler = cache / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            with pytest.raises(OSError, match="No space"):  # noqa: PT012
                while True:
                    os.write(fd, b"\0" * 4096)
        finally:
            os.close(fd)
        d = make_daemon(data_dir=data, config=SCAN_ONLY)
        root = tmp_path / "lib"
        root.mkdir()
        d.call("roots.add", {"path": str(root), "name": "lib", "scan": False})
        card = tmp_path / "card"
        for i in range(3):
            save_jpeg(make_photo(200, 150, seed=700 + i), card / f"IMG_{i:04d}.jpg",
                      ExifSpec(taken=dt.datetime(2024, 3, 1 + i)))
        env = {"LIGHTBOX_DATA_DIR": str(data)}
        shown = run_cli("import", str(card), "--root", "lib", "--template", "{name}",
                        "--wait", env=env, timeout=180)
        assert "NOT safe to erase" in shown.stdout, shown.stdout + shown.stderr
        assert "3 copies not yet read back from the disk by the catalog" in shown.stdout
        done = d.call("jobs.list", {"kind": "import"})["jobs"][0]
        result = d.call("jobs.get", {"id": done["id"]})["result"]
        assert result["copies_unverified"] == 3 and result["safe_to_erase"] is False, result
        assert files_below(root) == {p.name: sha(p) for p in card.iterdir()}
        filler.unlink()
        deadline = time.monotonic() + 90
        while d.call("photos.search", {"status": "ok", "limit": 10})["photos"].__len__() < 3:
            assert time.monotonic() < deadline, "not indexed after the disk had room"
            time.sleep(0.2)
        again = do_import(d, card, template="{name}")
        assert again["state"] == "succeeded", again
        assert again["result"]["copies_unverified"] == 0, again["result"]
        assert again["result"]["safe_to_erase"] is True, again["result"]
        assert again["result"]["counts"] == {"skip": 3}, again["result"]
    finally:
        if d is not None:
            d.stop()
        subprocess.run(["umount", "-l", str(cache)], capture_output=True)
        shutil.rmtree(data, ignore_errors=True)


def test_what_a_killed_import_left_is_removed_when_the_daemon_starts(
        make_daemon: Any, tmp_path: Path) -> None:
    """Staged copies of a daemon killed mid-import go at the next start, not only at the
    next import into that root (which may never come); another host's (a shared root) and
    the root's photos are left alone."""
    d: DaemonProcess = make_daemon(config=SCAN_ONLY)
    root = tmp_path / "lib"
    photo = save_jpeg(make_photo(64, 64, seed=5), root / "keep.jpg")
    d.call("roots.add", {"path": str(root), "name": "lib", "scan": False})
    d.stop()
    stage = root / ".lightbox-import"
    dead = stage / f"{socket.gethostname()}!999999999!oldboot!7"
    other = stage / "another-host!1234!boot!3"
    for where in (dead, other):
        where.mkdir(parents=True)
        (where / ".lbimport-1.part").write_bytes(b"half a photo")
    before = sha(photo)
    d.start()
    deadline = time.monotonic() + 60
    while dead.exists():
        assert time.monotonic() < deadline, d.log()
        time.sleep(0.1)
    assert (other / ".lbimport-1.part").read_bytes() == b"half a photo"
    assert sha(photo) == before
    assert d.call("system.status")["components"]["importer"]["cleared_at_start"] == 1


def test_sigkill_mid_import_leaves_nothing_after_the_next_run(make_daemon: Any,
                                                              tmp_path: Path) -> None:
    """A daemon killed (SIGKILL) while it copies leaves staged copies in the root's hidden
    stage dir; the next import into the root removes them, and every photo ends up once,
    byte for byte, under its name."""
    d: DaemonProcess = make_daemon(config=SCAN_ONLY)
    root = tmp_path / "lib"
    root.mkdir()
    d.call("roots.add", {"path": str(root), "name": "lib", "scan": False})
    card = tmp_path / "card"
    for i in range(40):
        save_jpeg(make_photo(900, 900, seed=300 + i), card / f"IMG_{i:04d}.jpg",
                  ExifSpec(taken=dt.datetime(2024, 2, 1 + i % 20)), quality=97)
    originals = {p.name: sha(p) for p in card.iterdir()}
    d.call("library.import", {"source_path": str(card), "root": "lib", "template": "{name}"})
    stage = root / ".lightbox-import"
    deadline = time.monotonic() + 120
    while not list(stage.glob("*/.lbimport-*.part")):
        assert time.monotonic() < deadline, d.log()
        time.sleep(0.002)
    d.kill()
    left = list(stage.glob("*/.lbimport-*.part"))
    assert left  # killed while copying: staged copies left behind
    # Nothing under a final name is partial.
    for p in root.iterdir():
        if p.is_file():
            assert sha(p) == originals[p.name]
    d.start()
    # The interrupted job may be resumed at start; wait for whatever runs to end.
    for job in d.call("jobs.list", {"kind": "import"})["jobs"]:
        wait(d, job["id"])
    done = do_import(d, card, template="{name}")
    assert done["state"] == "succeeded", done
    assert not stage.exists()
    assert not [p for p in root.rglob("*") if p.name.startswith(".lbimport")]
    assert files_below(root) == originals
    assert done["result"]["not_in_library"] == 0 and done["result"]["copies_unverified"] == 0
