"""Rescan of an unchanged tree (issue 3, benchmark b), beside `find` in the same run.

Builds a tree of FILES files in DIRS folders, a catalog that already knows every file (rows
written directly with the fingerprints from os.stat, as a first scan would leave them), then
times `library.scan` of the unchanged tree against
`find ROOT -type f -printf '%s %T@\\n' | wc -l`, both with a warm page cache. A last pass runs
under strace (daemon and worker processes) to show that no file was opened.

Target: rescan <= 2x find, no file opened.

    .venv/bin/python benchmarks/rescan.py [--files 200000] [--dirs 2000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from harness import Daemon, median, scratch

from lightbox.daemon.catalog import paths, tables
from lightbox.daemon.catalog.database import Database
from lightbox.daemon.catalog.types import utcnow


def make_tree(root: Path, files: int, dirs: int) -> None:
    per = files // dirs
    payload = b"\xff\xd8\xff\xe0 not really a jpeg"
    for d in range(dirs):
        folder = root / f"{d // 100:02d}" / f"album{d:04d}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per):
            with open(folder / f"IMG_{i:05d}.jpg", "wb") as f:
                f.write(payload)


async def make_catalog(root: Path, data_dir: Path) -> int:
    db = Database(f"sqlite+aiosqlite:///{data_dir}/catalog.db")
    await db.start()
    now = utcnow()
    st = os.stat(root)
    async with db.engine.begin() as conn:
        sid = (await conn.execute(tables.sources.insert().values(
            kind="local", name="bench", path=str(root), device=st.st_dev, online=True,
            created_at=now))).inserted_primary_key[0]
        folder_ids: dict[str, int] = {}
        count = 0
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            rel = paths.relative_to(dirpath, str(root)) or ""
            parent = folder_ids.get(paths.parent(rel)) if rel else None
            fid = (await conn.execute(tables.folders.insert().values(
                source_id=sid, parent_id=parent, path=rel, path_hash=paths.path_hash(rel),
                name=paths.basename(rel) if rel else "bench", depth=paths.depth(rel),
                photo_count=len(filenames), folder_count=len(dirnames),
                first_seen=now))).inserted_primary_key[0]
            folder_ids[rel] = fid
            rows = []
            for name in filenames:
                fst = os.stat(os.path.join(dirpath, name))
                rows.append({"source_id": sid, "folder_id": fid, "name": name,
                             "size": fst.st_size, "mtime_ns": fst.st_mtime_ns,
                             "inode": fst.st_ino, "status": "ok", "first_seen": now,
                             "sha256": "0" * 64, "thumbs": 3})
            if rows:
                await conn.execute(tables.photos.insert(), rows)
                count += len(rows)
    await db.stop()
    return count


def wait_startup_scan(d: Daemon, after: int = 0, timeout: float = 60.0) -> None:
    """Wait for the scan the daemon queues when it takes the root over.

    That job is queued after the daemon answers ``hello`` (when its lease on the root is
    granted), so asking for it once, at once, can miss it: the first timed round then
    waited behind that first pass (a full comparison, the stored digests being absent) and
    came out 2-4x the others. Wait until it has been queued (a scan job with an id above
    ``after``, for a catalog that has older ones) and has finished."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = [j for j in d.call("jobs.list", {"kind": "scan"})["jobs"] if j["id"] > after]
        if jobs:
            for j in jobs:
                d.wait_job(j["id"])
            return
        time.sleep(0.05)
    raise RuntimeError("the daemon queued no scan at start")


def time_find(root: Path) -> tuple[float, int]:
    t0 = time.perf_counter()
    out = subprocess.run(f"find {root} -type f -printf '%s %T@\\n' | wc -l", shell=True,
                         capture_output=True, text=True, check=True)
    return time.perf_counter() - t0, int(out.stdout.strip())


def time_scan(d: Daemon) -> tuple[float, dict[str, object]]:
    t0 = time.perf_counter()
    job = d.call("library.scan")["job"]
    done = d.wait_job(job)
    return time.perf_counter() - t0, done


def opened_files(d: Daemon, root: Path) -> tuple[int, int]:
    """(file opens under root, directory opens under root) during one scan, via strace."""
    assert d.proc is not None
    status = d.call("system.status")
    pids = [d.proc.pid, *status["components"]["workers"].get("pids", [])]
    log = d.data_dir / "strace.txt"
    cmd = ["strace", "-f", "-qq", "-e", "trace=open,openat,openat2", "-o", str(log)]
    for pid in pids:
        cmd += ["-p", str(pid)]
    tracer = subprocess.Popen(cmd)
    time.sleep(1.0)
    time_scan(d)
    tracer.terminate()
    tracer.wait()
    files = dirs = 0
    pattern = re.compile(r'open(?:at2?)?\((?:[^,]*, )?"([^"]*)", ([^,)]*)')
    for line in log.read_text(errors="replace").splitlines():
        m = pattern.search(line)
        if not m or not m.group(1).startswith(str(root)):
            continue
        if "O_DIRECTORY" in m.group(2):
            dirs += 1
        else:
            files += 1
    return files, dirs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--files", type=int, default=200_000)
    ap.add_argument("--dirs", type=int, default=2_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--no-strace", action="store_true")
    args = ap.parse_args()
    with scratch("lbrescan") as tmp:
        root = tmp / "tree"
        t0 = time.perf_counter()
        make_tree(root, args.files, args.dirs)
        data = tmp / "data"
        data.mkdir()
        n = asyncio.run(make_catalog(root, data))
        print(f"setup: {n} files in {args.dirs} folders, catalog written, "
              f"{time.perf_counter() - t0:.1f} s")
        d = Daemon(data, "[library]\nwatch = false\nreconcile_interval = 0\n").start()
        try:
            wait_startup_scan(d)
            finds, scans = [], []
            for _ in range(args.rounds):
                elapsed, count = time_find(root)
                assert count == n, (count, n)
                finds.append(elapsed)
                elapsed, job = time_scan(d)
                report = job["result"]["roots"]["bench"]  # type: ignore[index]
                assert report["files"] == n and report["new"] == 0 and report["changed"] == 0, \
                    report
                scans.append(elapsed)
            rss = d.rss_mb()
            f_med, s_med = median(finds), median(scans)
            print("| tree | find (median) | lightbox rescan (median) | ratio | daemon RSS |")
            print("|---|---|---|---|---|")
            print(f"| {n} files / {args.dirs} folders | {f_med:.2f} s | {s_med:.2f} s | "
                  f"{s_med / f_med:.2f}x | {rss:.0f} MB |")
            print(f"all rounds: find {[round(x, 2) for x in finds]}, "
                  f"scan {[round(x, 2) for x in scans]}")
            if not args.no_strace:
                files, dirs = opened_files(d, root)
                print(f"under strace: {files} files opened, {dirs} directories opened "
                      f"(expected: 0 files, about {args.dirs + args.dirs // 100 + 1} dirs)")
        finally:
            d.stop()


if __name__ == "__main__":
    main()
