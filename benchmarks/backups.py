"""Backups and import (issue 10), each beside its baseline in the same run.

A library of SMALL small files (1-4 kB) and LARGE camera-sized files (LARGE_MB MB each),
with a catalog that already knows every file (rows written directly with their real
sha256, as indexing would leave them), then per round:

- **first backup** to an empty local target (`backups.run`: manifest lookup, read through
  the confinement layer, temp file, fsync, page cache dropped and read back, rename, folder
  fsyncs, manifest rows, SHA256SUMS) beside `rsync -a` of the same tree into an empty folder
  (which fsyncs nothing). Target: >= 0.8x rsync's throughput.
- **nothing new**: the same run again beside `rsync -a` again. Target: <= 0.5x rsync's time.
- **verify** of the whole target (`backups.verify all=true`) beside a bare `hashlib.sha256`
  read loop over the same files in as many threads as the daemon uses. Target: >= 0.8x.
- **import** of JPEGS real JPEGs (MEGAPIXELS MP) from a folder into a fresh root beside
  `cp -r` of the folder. The import job's own timings split it: walk + probe (sha256 and EXIF
  in the worker pool) + plan + copy (fsync, read back) is the import; the wait for the
  indexer to make thumbnails of the new photos (before "safe to erase") is shown apart.
  Target: >= 0.7x cp -r, excluding thumbnails.

    .venv/bin/python benchmarks/backups.py [--small 100000] [--large 500] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import shutil
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from harness import Daemon, median, scratch

from lightbox.daemon.catalog import paths, tables
from lightbox.daemon.catalog.database import Database
from lightbox.daemon.catalog.types import utcnow
from lightbox.daemon.media.samples import make_benchmark_set


def make_library(root: Path, small: int, large: int, large_mb: float) -> int:
    total = 0
    rng = os.urandom
    for i in range(small):
        folder = root / "small" / f"{i // 1000:03d}"
        if i % 1000 == 0:
            folder.mkdir(parents=True, exist_ok=True)
        data = rng(1024 + (i * 37) % 3072)
        (folder / f"IMG_{i:06d}.jpg").write_bytes(data)
        total += len(data)
    size = int(large_mb * (1 << 20))
    for i in range(large):
        folder = root / "large" / f"{i // 100:02d}"
        if i % 100 == 0:
            folder.mkdir(parents=True, exist_ok=True)
        (folder / f"DSC_{i:05d}.jpg").write_bytes(rng(size))
        total += size
    return total


def _digest(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


async def make_catalog(root: Path, data_dir: Path) -> int:
    db = Database(f"sqlite+aiosqlite:///{data_dir}/catalog.db")
    await db.start()
    now = utcnow()
    st = os.stat(root)
    count = 0
    async with db.engine.begin() as conn:
        sid = (await conn.execute(tables.sources.insert().values(
            kind="local", name="library", path=str(root), device=st.st_dev, online=True,
            created_at=now))).inserted_primary_key[0]
        folder_ids: dict[str, int] = {}
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            rel = paths.relative_to(dirpath, str(root)) or ""
            parent = folder_ids.get(paths.parent(rel) or "") if rel else None
            fid = (await conn.execute(tables.folders.insert().values(
                source_id=sid, parent_id=parent, path=rel, path_hash=paths.path_hash(rel),
                name=paths.basename(rel) if rel else "library", depth=paths.depth(rel),
                photo_count=len(filenames), folder_count=len(dirnames),
                first_seen=now))).inserted_primary_key[0]
            folder_ids[rel] = fid
            rows = []
            for name in filenames:
                path = os.path.join(dirpath, name)
                fst = os.stat(path)
                digest = _digest(path)
                rows.append({"source_id": sid, "folder_id": fid, "name": name,
                             "size": fst.st_size, "mtime_ns": fst.st_mtime_ns,
                             "inode": fst.st_ino, "status": "ok", "first_seen": now,
                             "sha256": digest, "thumbs": 3})
            if rows:
                await conn.execute(tables.photos.insert(), rows)
                count += len(rows)
    await db.stop()
    return count


def timed(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - t0


def hash_loop(root: Path, threads: int) -> tuple[float, int]:
    """The verify baseline: every file below ``root`` read and hashed, ``threads`` at once."""
    files = [os.path.join(d, n) for d, _, names in os.walk(root) for n in names]

    def one(path: str) -> int:
        with open(path, "rb") as f:
            h = hashlib.sha256()
            n = 0
            while chunk := f.read(1 << 20):
                h.update(chunk)
                n += len(chunk)
        return n

    t0 = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        total = sum(pool.map(one, files, chunksize=64))
    return time.perf_counter() - t0, total


def run_job(d: Daemon, method: str, params: dict[str, object]) -> tuple[float, dict[str, object]]:
    t0 = time.perf_counter()
    job = d.call(method, params)["job"]
    done = d.wait_job(job)
    elapsed = time.perf_counter() - t0
    if done["state"] != "succeeded":
        raise RuntimeError(f"{method} failed: {done['error']} {done.get('result')}")
    return elapsed, done


def spread(values: list[float]) -> str:
    return f"{min(values):.2f}-{max(values):.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--small", type=int, default=100_000)
    ap.add_argument("--large", type=int, default=500)
    ap.add_argument("--large-mb", type=float, default=4.0)
    ap.add_argument("--jpegs", type=int, default=500)
    ap.add_argument("--megapixels", type=float, default=12.0)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    threads = os.cpu_count() or 2
    with scratch("lbbackup") as tmp:
        root = tmp / "library"
        t0 = time.perf_counter()
        nbytes = make_library(root, args.small, args.large, args.large_mb)
        data = tmp / "data"
        data.mkdir()
        n = asyncio.run(make_catalog(root, data))
        card = tmp / "card"
        make_benchmark_set(card, args.jpegs, args.megapixels)
        card_bytes = sum(p.stat().st_size for p in card.rglob("*") if p.is_file())
        print(f"setup: {n} files, {nbytes / 1e6:.0f} MB; card: {args.jpegs} JPEGs "
              f"{card_bytes / 1e6:.0f} MB; {time.perf_counter() - t0:.0f} s")
        d = Daemon(data, "[library]\nwatch = false\nreconcile_interval = 0\n").start()
        rows: dict[str, list[float]] = {k: [] for k in (
            "first", "rsync_first", "again", "rsync_again", "verify", "hash_loop",
            "import", "import_index", "cp")}
        try:
            for job in d.call("jobs.list", {"kind": "scan"})["jobs"]:
                d.wait_job(job["id"])
            for r in range(args.rounds):
                mirror = tmp / f"rsync{r}"
                rows["rsync_first"].append(timed(["rsync", "-a", f"{root}/", f"{mirror}/"]))
                target = tmp / f"target{r}"
                target.mkdir()
                d.call("backups.add", {"name": f"t{r}", "path": str(target), "schedule": None,
                                       "verify_schedule": None})
                elapsed, done = run_job(d, "backups.run", {"target": f"t{r}"})
                assert done["result"]["copied"] == n, done["result"]
                rows["first"].append(elapsed)
                rows["rsync_again"].append(timed(["rsync", "-a", f"{root}/", f"{mirror}/"]))
                elapsed, done = run_job(d, "backups.run", {"target": f"t{r}"})
                assert done["result"]["copied"] == 0
                rows["again"].append(elapsed)
                elapsed, done = run_job(d, "backups.verify", {"target": f"t{r}", "all": True})
                assert done["result"]["ok"] == n, done["result"]
                rows["verify"].append(elapsed)
                rows["hash_loop"].append(hash_loop(target / "library", threads)[0])
                d.call("backups.remove", {"target": f"t{r}"})
                shutil.rmtree(target)
                shutil.rmtree(mirror)
                copy = tmp / f"cp{r}"
                rows["cp"].append(timed(["cp", "-r", str(card), str(copy)]))
                shutil.rmtree(copy)
                dest = tmp / f"imported{r}"
                dest.mkdir()
                d.call("roots.add", {"path": str(dest), "name": f"imp{r}", "scan": False})
                elapsed, done = run_job(d, "library.import", {
                    "source_path": str(card), "root": f"imp{r}",
                    "template": "{taken:%Y}/{taken:%Y-%m-%d}/{name}"})
                t = done["result"]["timings"]
                rows["import"].append(t["walk"] + t["probe"] + t["plan"] + t["copy"])
                rows["import_index"].append(t["index"])
                d.call("roots.remove", {"root": f"imp{r}"})
                shutil.rmtree(dest)
                print(f"round {r + 1}: first {rows['first'][-1]:.2f} s (rsync "
                      f"{rows['rsync_first'][-1]:.2f}), nothing new {rows['again'][-1]:.2f} s "
                      f"(rsync {rows['rsync_again'][-1]:.2f}), verify {rows['verify'][-1]:.2f}"
                      f" s (hashlib {rows['hash_loop'][-1]:.2f}), import "
                      f"{rows['import'][-1]:.2f} s + index {rows['import_index'][-1]:.2f} "
                      f"(cp -r {rows['cp'][-1]:.2f})", flush=True)
        finally:
            d.stop()
        mb = nbytes / 1e6
        m = {k: median(v) for k, v in rows.items()}
        print(f"\nmedians of {args.rounds} rounds, load average {os.getloadavg()[0]:.1f} "
              f"(2 cores shared; noisy)")
        print(f"first backup   {mb / m['first']:7.1f} MB/s  rsync -a {mb / m['rsync_first']:7.1f}"
              f" MB/s  ratio {m['rsync_first'] / m['first']:.2f}x (target >= 0.8)  spread "
              f"{spread(rows['first'])} s / {spread(rows['rsync_first'])} s")
        print(f"nothing new    {m['again']:7.2f} s     rsync -a {m['rsync_again']:7.2f} s     "
              f"ratio {m['again'] / m['rsync_again']:.2f}x (target <= 0.5)  spread "
              f"{spread(rows['again'])} / {spread(rows['rsync_again'])}")
        print(f"verify         {mb / m['verify']:7.1f} MB/s  hashlib  {mb / m['hash_loop']:7.1f}"
              f" MB/s  ratio {m['hash_loop'] / m['verify']:.2f}x (target >= 0.8)  spread "
              f"{spread(rows['verify'])} / {spread(rows['hash_loop'])}")
        cmb = card_bytes / 1e6
        print(f"import         {cmb / m['import']:7.1f} MB/s  cp -r    {cmb / m['cp']:7.1f} MB/s"
              f"  ratio {m['cp'] / m['import']:.2f}x (target >= 0.7)  spread "
              f"{spread(rows['import'])} / {spread(rows['cp'])}; then indexing (thumbnails) "
              f"{m['import_index']:.1f} s")
        print(f"(stdev first {statistics.pstdev(rows['first']):.2f} s)")


if __name__ == "__main__":
    main()
