"""SIGKILL, again and again (issue 7, build item 2): 30 kills spread over a first index, a
start-up rescan after changes made while the daemon was down (the reported reproduction:
start, ``library.scan``, kill 0.2 s later, restart, scan twice), and a rescan racing live
moves and deletions. After each: restart, two scans, and a consistency check read from the
catalog itself against the disk — every image on disk exactly once and ok, no row for an
absent file, folder counts equal to the disk, every thumbnail decodes, no temporary file left,
ids kept across moves.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import time
from pathlib import Path
from typing import Any

from lbtest import DaemonProcess
from PIL import Image
from test_library_scan import consistent, rows

from lightbox.daemon.media.samples import make_photo, save_jpeg

# One worker: each of the ~60 starts spawns the pool, and the files are small.
CONFIG = {"library": {"watch": False, "reconcile_interval": 0},
          "workers": {"processes": 1}}
KILLS_PER_PHASE = 10


class Library:
    """The photos on disk and what the test knows of their ids."""

    def __init__(self, base: Path, rng: random.Random) -> None:
        self.base = base
        self.rng = rng
        self.roots: list[Path] = []
        self.seed = 0

    def new_photo(self, path: Path) -> None:
        self.seed += 1
        path.parent.mkdir(parents=True, exist_ok=True)
        save_jpeg(make_photo(40 + self.seed % 17, 30, seed=self.seed), path)

    def new_root(self, folders: int = 3, per_folder: int = 4) -> Path:
        root = self.base / f"root{len(self.roots):02d}"
        for f in range(folders):
            for i in range(per_folder):
                self.new_photo(root / f"f{f}" / (f"sub/p{i}.jpg" if i % 3 == 0 else
                                                 f"p{i}.jpg"))
        self.roots.append(root)
        return root

    def files(self) -> list[Path]:
        return sorted(p for r in self.roots for p in r.rglob("*.jpg") if p.is_file())

    def churn(self, moves: list[tuple[Path, Path]]) -> None:
        """Some of everything: new files, rewritten files, deletions, moves of files and of
        a folder with a subfolder (recorded in ``moves`` to check ids)."""
        files = self.files()
        picks = self.rng.sample(files, min(len(files), 8))
        for p in picks[:2]:
            p.unlink()
        rewritten = set(picks[2:4])
        for p in rewritten:
            self.new_photo(p)                                 # rewritten in place
        for p in picks[4:7]:
            dest = p.parent.parent / f"moved{self.seed}_{p.name}"
            if p.exists() and not dest.exists():
                os.rename(p, dest)
                moves.append((p, dest))
        root = self.rng.choice(self.roots)
        for i in range(2):
            self.new_photo(root / f"new{self.seed}" / f"n{i}.jpg")
        subs = [d for d in root.iterdir() if d.is_dir() and (d / "sub").is_dir()]
        if subs:
            src = self.rng.choice(subs)
            dest = root / f"renamed{self.seed}"
            before = list(src.rglob("*.jpg"))
            os.rename(src, dest)
            # A file both rewritten and moved while nobody watched is a new photo: a move
            # is recognised by (inode, size), and a reused inode must not pass for one.
            moves += [(p, dest / p.relative_to(src)) for p in before if p not in rewritten]


def ids_by_path(d: DaemonProcess) -> dict[Path, int]:
    out = {}
    for r in rows(d, "SELECT s.path AS root, f.path AS folder, p.name, p.id FROM photos p "
                     "JOIN folders f ON f.id = p.folder_id JOIN sources s ON s.id = p.source_id"):
        out[Path(r["root"], r["folder"], r["name"])] = r["id"]
    return out


def workers_left(d: DaemonProcess) -> list[int]:
    """Processes of a killed daemon still running (its workers finish the file they hold):
    found by the daemon's unique NOTIFY_SOCKET in their environment."""
    mark = f"NOTIFY_SOCKET={d.notify_path}".encode()
    out = []
    for env in Path("/proc").glob("[0-9]*/environ"):
        try:
            if mark in env.read_bytes().split(b"\0"):
                out.append(int(env.parent.name))
        except OSError:
            continue
    return out


def kill(d: DaemonProcess) -> None:
    d.kill()
    deadline = time.monotonic() + 30
    while (left := workers_left(d)) and time.monotonic() < deadline:
        time.sleep(0.05)
    for pid in left:  # ours (children of the daemon we started), stuck: end them
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def settle(d: DaemonProcess) -> None:
    """Restart, then ``lightbox scan --wait`` twice (the second confirms what is gone)."""
    d.start()
    for _ in range(2):
        job = d.call("library.scan", {})["job"]
        done = d.call("jobs.wait", {"id": job, "timeout": 120}, timeout=130)
        assert done["state"] == "succeeded", done
    # A scan job does not wait for files the indexer retries by itself (one read while the
    # churn rewrote it, say): they are indexed within a backoff step or two.
    deadline = time.monotonic() + 60
    while rows(d, "SELECT count(*) FROM photos WHERE status = 'pending'")[0][0]:
        assert time.monotonic() < deadline, "photos left pending:\n" + d.log()[-3000:]
        time.sleep(0.2)


decoded: set[Path] = set()


def check(d: DaemonProcess, lib: Library, before: dict[Path, int],
          moves: list[tuple[Path, Path]]) -> None:
    on_disk = set(lib.files())
    catalog = rows(d, "SELECT s.path AS root, f.path AS folder, p.name, p.id, p.status, "
                      "p.sha256, p.thumbs FROM photos p JOIN folders f ON f.id = p.folder_id "
                      "JOIN sources s ON s.id = p.source_id")
    seen: dict[Path, Any] = {}
    for r in catalog:
        path = Path(r["root"], r["folder"], r["name"])
        assert path not in seen, f"{path} twice in the catalog"
        seen[path] = r
    extra = set(seen) - on_disk
    assert extra == set(), "rows for files that are not there: " + "; ".join(
        f"{p} {dict(seen[p])} folder on disk: {p.parent.is_dir()} folder rows: "
        f"{[dict(f) for f in rows(d, 'SELECT id, path, missing_since, listing_hash, photo_count FROM folders WHERE path = ?', str(p.parent.relative_to(next(r for r in lib.roots if p.is_relative_to(r)))))]}"  # noqa: E501
        for p in extra) + "\n" + d.log()[-4000:]
    assert on_disk - set(seen) == set(), "files on disk without a row"
    bad = {str(p): r["status"] for p, r in seen.items() if r["status"] != "ok"}
    assert bad == {}, "not ok"
    # Folder counts equal the disk (direct photos and subfolders), every folder once.
    folders = rows(d, "SELECT s.path AS root, f.path, f.photo_count, f.folder_count, "
                      "f.missing_since FROM folders f JOIN sources s ON s.id = f.source_id")
    listed = {Path(r["root"], r["path"]) for r in folders}
    disk_dirs = {Path(dp) for root in lib.roots for dp, _, _ in os.walk(root)}
    assert listed == disk_dirs, (listed ^ disk_dirs)
    for r in folders:
        here = Path(r["root"], r["path"])
        photos = len([p for p in here.iterdir() if p.suffix == ".jpg" and p.is_file()])
        subs = len([p for p in here.iterdir() if p.is_dir()])
        assert (r["photo_count"], r["folder_count"], r["missing_since"]) == \
            (photos, subs, None), str(here)
    consistent(d)
    # Ids kept: files that did not move kept theirs, moved files took theirs along.
    now = {p: r["id"] for p, r in seen.items()}
    for old, new in moves:
        if old in before and new in now:
            assert now[new] == before[old], f"{old} -> {new}: id not kept"
    for p, pid in before.items():
        if p in now and p not in {n for _, n in moves}:
            assert now[p] == pid, f"{p}: id changed"
    # Thumbnails decode; nothing half-written or temporary is left.
    thumbs = d.data_dir / "cache" / "thumbnails"
    for r in seen.values():
        assert r["thumbs"] == 3, dict(r)
        for size in ("grid", "preview"):
            f = thumbs / size / r["sha256"][:2] / f"{r['sha256']}.jpg"
            if f not in decoded:
                with Image.open(f) as img:
                    img.load()
                decoded.add(f)
    temps = [str(p) for p in thumbs.rglob("*") if p.is_file() and p.suffix != ".jpg"]
    assert temps == [], "temporary files left"


def test_thirty_kills_leave_a_consistent_catalog(make_daemon: Any, tmp_path: Path) -> None:
    rng = random.Random(7)
    lib = Library(tmp_path, rng)
    d: DaemonProcess = make_daemon(config=CONFIG)
    consistent_after = 0
    started = time.monotonic()

    # 1. A first index: each kill lands in a new root's first scan and indexing.
    for _ in range(KILLS_PER_PHASE):
        root = lib.new_root()
        d.call("roots.add", {"path": str(root)})
        time.sleep(rng.uniform(0.05, 0.8))
        kill(d)
        settle(d)
        check(d, lib, ids_by_path(d), [])
        consistent_after += 1

    # 2. Changes made while the daemon is down, then the start-up rescan is killed: the
    # reported reproduction (start, library.scan, SIGKILL 0.2 s later).
    for _ in range(KILLS_PER_PHASE):
        before = ids_by_path(d)
        kill(d)               # idle: a kill between passes is one more moment tried
        moves: list[tuple[Path, Path]] = []
        lib.churn(moves)
        d.start()
        d.call("library.scan", {})
        time.sleep(rng.uniform(0.05, 0.4))
        kill(d)
        settle(d)
        check(d, lib, before, moves)
        consistent_after += 1

    # 3. A rescan racing live moves and deletions.
    for _ in range(KILLS_PER_PHASE):
        before = ids_by_path(d)
        moves = []
        d.call("library.scan", {"full": rng.random() < 0.3})
        lib.churn(moves)
        time.sleep(rng.uniform(0.0, 0.5))
        kill(d)
        settle(d)
        check(d, lib, before, moves)
        consistent_after += 1

    assert consistent_after == 3 * KILLS_PER_PHASE
    print(f"kills consistent: {consistent_after}/{3 * KILLS_PER_PHASE} "
          f"in {time.monotonic() - started:.0f} s, {len(lib.files())} photos")
    shutil.rmtree(tmp_path / "root00", ignore_errors=True)
