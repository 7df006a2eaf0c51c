"""Backups and import (issue 10), each beside its baseline in the same run.

A library of SMALL small files (1-4 kB) and LARGE camera-sized files (LARGE_MB MB each),
with a catalog that already knows every file (rows written directly with their real
sha256, as indexing would leave them), then per round:

- **first backup** to an empty local target (`backups.run`: manifest lookup, opened through
  the confinement layer, copied into a temp file, a syncfs per batch, page cache dropped and
  read back from the device, hashed against the catalog, rename, syncfs, manifest rows,
  SHA256SUMS) beside `rsync -a` of the same tree into an empty folder (which fsyncs
  nothing); each starts on a flushed file system (an untimed `sync` before it), so neither
  pays for writing out what the other left dirty, and the two take turns going first
  (rsync in the even rounds, lightbox in the odd ones). Every round's copies are kept
  until the end (``--no-keep-copies``: removed, then the run waits out ext4's window for
  recently deleted inodes), because on ext4 without a journal every file created within a
  minute of a mass deletion scans the freed inodes, which would charge whichever side
  runs first after the deletion. Target: >= 0.8x rsync's throughput.
- **nothing new**: the same run again beside `rsync -a` again. Target: <= 0.5x rsync's time.
- **verify** of the whole target (`backups.verify all=true`) beside a bare `hashlib.sha256`
  read loop over the same files in as many threads as the daemon uses. Target: >= 0.8x.
- **import** of JPEGS camera-sized JPEGs (MEGAPIXELS MP, with EXIF; a few encoded, the
  rest those with distinct bytes after their end marker) from a folder into a fresh root
  beside `cp -r` of the folder. The import job's own timings split it: walk + probe (EXIF
  header in the worker pool) + copy (hashed on the way, syncfs per batch) + plan + place is
  the import; the scan and the indexer's work on the new photos (sha256 from the disk,
  which is the copies' read-back for a copy-mode import, and thumbnails) before the "safe
  to erase" verdict is shown apart. Target: >= 0.7x cp -r, excluding the indexer.
  Every timed step starts with the card in the page cache and the writeback settled (a
  `sync`, then a wait until the kernel holds almost no dirty or writeback pages), so no
  step pays for what another left to write; each copy `cp -r` made is removed before its
  pages are written out. The steps take turns going first (lightbox in the odd rounds).
  Beside `cp -r` (into the page cache) two figures that say what a durable, hashed copy
  costs on this machine: `cp -r` + `sync -f` (the same copy made durable), and the
  floor: a bare Python loop in two threads that reads each file once, hashes it and
  writes it (one `syncfs` per 128 MB part, as the importer stages), the least an import
  that hashes and flushes must do.

    .venv/bin/python benchmarks/backups.py [--small 100000] [--large 500] [--rounds 3]
    .venv/bin/python benchmarks/backups.py --quick            # a small run to try it out
    .venv/bin/python benchmarks/backups.py --only import      # one part (backup | import)
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import hashlib
import os
import resource
import shutil
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from harness import Daemon, median, scratch

from lightbox.daemon.catalog import paths, tables
from lightbox.daemon.catalog.database import Database
from lightbox.daemon.catalog.types import utcnow
from lightbox.daemon.media.samples import make_benchmark_set


def _write_small(args: tuple[Path, int, int]) -> int:
    folder, start, stop = args
    folder.mkdir(parents=True, exist_ok=True)
    total = 0
    for i in range(start, stop):
        data = os.urandom(1024 + (i * 37) % 3072)
        (folder / f"IMG_{i:06d}.jpg").write_bytes(data)
        total += len(data)
    return total


def _write_large(args: tuple[Path, int, int]) -> int:
    path, size, _ = args
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(size))
    return size


def make_library(root: Path, small: int, large: int, large_mb: float) -> int:
    """The library, written by a few threads (file writes release the GIL)."""
    root.mkdir(parents=True, exist_ok=True)
    size = int(large_mb * (1 << 20))
    small_jobs = [(root / "small" / f"{i // 1000:03d}", i, min(i + 1000, small))
                  for i in range(0, small, 1000)]
    large_jobs = [(root / "large" / f"{i // 100:02d}" / f"DSC_{i:05d}.jpg", size, 0)
                  for i in range(large)]
    with ThreadPoolExecutor(4) as pool:
        return sum(pool.map(_write_small, small_jobs)) + sum(pool.map(_write_large, large_jobs))


def make_card(card: Path, count: int, megapixels: float) -> None:
    """``count`` camera-sized JPEGs with EXIF: a few encoded for real, the rest copies of
    them with distinct bytes after the end-of-image marker (still valid JPEGs with their
    EXIF, each with its own sha256), so the setup does not spend minutes encoding."""
    base = min(count, 2 * (os.cpu_count() or 2))
    made = make_benchmark_set(card, base, megapixels)
    data = [p.read_bytes() for p in made]
    for i in range(base, count):
        (card / f"DSC{i:05d}.JPG").write_bytes(data[i % base] + b"%lightbox-bench%"
                                               + i.to_bytes(8, "big") + os.urandom(16))


def _digest(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


async def make_catalog(root: Path, data_dir: Path) -> int:
    """Catalog rows for every file, as indexing leaves them (sha256 computed in processes,
    rows inserted in bulk per folder)."""
    db = Database(f"sqlite+aiosqlite:///{data_dir}/catalog.db")
    await db.start()
    now = utcnow()
    st = os.stat(root)
    count = 0
    walked = [(dirpath, sorted(dirnames), sorted(filenames))
              for dirpath, dirnames, filenames in os.walk(root)]
    walked.sort(key=lambda w: w[0])
    every = [os.path.join(d, n) for d, _, names in walked for n in names]
    with ProcessPoolExecutor(os.cpu_count() or 2) as pool:
        digests = dict(zip(every, pool.map(_digest, every, chunksize=256), strict=True))
    async with db.engine.begin() as conn:
        sid = (await conn.execute(tables.sources.insert().values(
            kind="local", name="library", path=str(root), device=st.st_dev, online=True,
            created_at=now))).inserted_primary_key[0]
        folder_ids: dict[str, int] = {}
        for dirpath, dirnames, filenames in walked:
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
                rows.append({"source_id": sid, "folder_id": fid, "name": name,
                             "size": fst.st_size, "mtime_ns": fst.st_mtime_ns,
                             "inode": fst.st_ino, "status": "ok", "first_seen": now,
                             "sha256": digests[path], "thumbs": 3})
            if rows:
                await conn.execute(tables.photos.insert(), rows)
                count += len(rows)
    await db.stop()
    return count


def tree_cpu(d: Daemon) -> float:
    """CPU seconds (user + system) of the daemon and its live child processes (the worker
    pool), from /proc: a figure the machine's load does not inflate the way it does time."""
    assert d.proc is not None
    tick = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[int]] = {}
    times: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rpartition(")")[2].split()
        except OSError:
            continue
        pid, ppid = int(entry), int(fields[1])
        children.setdefault(ppid, []).append(pid)
        times[pid] = (int(fields[11]) + int(fields[12])) / tick
    total, stack = 0.0, [d.proc.pid]
    while stack:
        pid = stack.pop()
        total += times.get(pid, 0.0)
        stack.extend(children.get(pid, []))
    return total


def timed(cmd: list[str]) -> float:
    return timed_cpu(cmd)[0]


def timed_cpu(cmd: list[str]) -> tuple[float, float]:
    """Seconds and CPU seconds (user + system, of the command and its children)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    elapsed = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return elapsed, (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)


def settle(limit_kb: int = 32 << 10, timeout: float = 30.0) -> None:
    """``sync``, then wait until the kernel holds less than ``limit_kb`` of dirty and
    writeback pages (other programs on the machine write too): a timed step that starts
    here pays for no earlier step's writes."""
    subprocess.run(["sync"], check=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open("/proc/meminfo") as f:
            info = {k: int(v.split()[0]) for k, v in (ln.split(":", 1) for ln in f)}
        if info.get("Dirty", 0) + info.get("Writeback", 0) < limit_kb:
            return
        time.sleep(0.05)


def warm(folder: Path) -> None:
    """Read every file of ``folder`` (untimed), so each step finds it in the page cache."""
    for p in sorted(folder.rglob("*")):
        if p.is_file():
            with open(p, "rb") as f:
                while f.read(1 << 20):
                    pass


def copy_floor(card: Path, dest: Path, threads: int, part_bytes: int = 128 << 20
               ) -> tuple[float, float]:
    """The least an import that hashes and flushes must do, in Python: each file read
    once, hashed and written, in parts of ``part_bytes`` as the importer stages them
    (``threads`` parts at once: hashlib and file I/O release the GIL), each part made
    durable by one ``syncfs`` (one flush for the whole card instead lets gigabytes of dirty
    pages pile up, which the kernel's dirty throttling stalls). (seconds, CPU seconds)."""
    names = sorted(p.name for p in card.iterdir() if p.is_file())
    parts: list[list[str]] = [[]]
    size = 0
    for name in names:
        parts[-1].append(name)
        size += (card / name).stat().st_size
        if size >= part_bytes:
            parts.append([])
            size = 0
    dest.mkdir()
    syncfs = ctypes.CDLL(None, use_errno=True).syncfs

    def one(part: list[str]) -> None:
        for name in part:
            h = hashlib.sha256()
            with open(card / name, "rb") as fin, open(dest / name, "xb") as fout:
                while chunk := fin.read(1 << 20):
                    h.update(chunk)
                    fout.write(chunk)
            h.hexdigest()
        fd = os.open(dest, os.O_RDONLY | os.O_DIRECTORY)
        try:
            syncfs(fd)
        finally:
            os.close(fd)

    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, [p for p in parts if p]))
    elapsed = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    return elapsed, (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)


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


RECENTLY_DELETED_S = 62


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
    ap.add_argument("--quick", action="store_true",
                    help="a small run (2,000 small files, 20 large, 30 JPEGs) to try it out")
    ap.add_argument("--only", choices=("all", "backup", "import"), default="all")
    ap.add_argument("--keep-copies", action=argparse.BooleanOptionalAction, default=True,
                    help="keep each round's target and rsync copy until the end (the "
                         "default): on ext4 without a journal every file created within a "
                         "minute of a mass deletion scans the recently deleted inodes, "
                         "which the side going first in the next round would pay; with "
                         "--no-keep-copies they are removed and the run waits that window "
                         "out before the next round")
    args = ap.parse_args()
    if args.quick:
        args.small, args.large, args.jpegs = 2000, 20, 30
    do_backup = args.only in ("all", "backup")
    do_import = args.only in ("all", "import")
    if not do_backup:
        args.small = args.large = 0
    threads = os.cpu_count() or 2
    with scratch("lbbackup") as tmp:
        root = tmp / "library"
        t0 = time.perf_counter()
        nbytes = make_library(root, args.small, args.large, args.large_mb)
        data = tmp / "data"
        data.mkdir()
        n = asyncio.run(make_catalog(root, data))
        card = tmp / "card"
        if do_import:
            make_card(card, args.jpegs, args.megapixels)
        else:
            card.mkdir()
        card_bytes = sum(p.stat().st_size for p in card.rglob("*") if p.is_file())
        print(f"setup: {n} files, {nbytes / 1e6:.0f} MB; card: {args.jpegs} JPEGs "
              f"{card_bytes / 1e6:.0f} MB; {time.perf_counter() - t0:.0f} s")
        if do_backup and args.keep_copies:
            need = 2 * nbytes * args.rounds * 1.2
            if shutil.disk_usage(tmp).free < need:
                print(f"not enough room to keep every round's copies ({need / 1e9:.1f} GB):"
                      " each round's are removed and the deletions waited out", flush=True)
                args.keep_copies = False
        d = Daemon(data, "[library]\nwatch = false\nreconcile_interval = 0\n").start()
        rows: dict[str, list[float]] = {k: [] for k in (
            "first", "rsync_first", "first_cpu", "rsync_cpu", "load", "again", "rsync_again",
            "verify", "hash_loop", "again_cpu", "import", "import_index", "import_cpu", "cp",
            "cp_sync", "floor", "floor_cpu")}
        try:
            for job in d.call("jobs.list", {"kind": "scan"})["jobs"]:
                d.wait_job(job["id"])
            if do_import:
                # Warm the worker pool (its processes import the EXIF reader on first use)
                # and the page cache, as cp -r's first round is not charged for either.
                warm = tmp / "warm"
                warm.mkdir()
                d.call("roots.add", {"path": str(warm), "name": "warm", "scan": False})
                run_job(d, "library.import", {"source_path": str(card), "root": "warm",
                                              "dry_run": True})
                d.call("roots.remove", {"root": "warm"})
            for r in range(args.rounds):
                if do_backup:
                    backup_round(d, tmp, root, r, n, threads, rows, args.keep_copies)
                if do_import:
                    import_round(d, tmp, card, r, rows, threads)
                print(f"round {r + 1}: " + ", ".join(
                    f"{k} {v[-1]:.2f} s" for k, v in rows.items() if v), flush=True)
        finally:
            d.stop()
        mb = nbytes / 1e6
        m = {k: median(v) for k, v in rows.items() if v}
        load = "/".join(f"{x:.1f}" for x in os.getloadavg())
        print(f"\nmedians of {args.rounds} rounds, load average {load} (1/5/15 min)")
        if do_backup:
            print(f"first backup   {mb / m['first']:7.1f} MB/s  rsync -a "
                  f"{mb / m['rsync_first']:7.1f} MB/s  ratio {m['rsync_first'] / m['first']:.2f}x"
                  f" (target >= 0.8)  spread {spread(rows['first'])} s / "
                  f"{spread(rows['rsync_first'])} s")
            print("first backup per round: " + ", ".join(
                f"{rs / fb:.2f}x ({fb:.1f} s / rsync {rs:.1f} s, CPU {fc:.1f} / {rc:.1f} s, "
                f"load {ld:.1f})" for fb, rs, fc, rc, ld in zip(
                    rows["first"], rows["rsync_first"], rows["first_cpu"], rows["rsync_cpu"],
                    rows["load"], strict=True)))
            print(f"first backup CPU: daemon {m['first_cpu']:.1f} s, rsync -a "
                  f"{m['rsync_cpu']:.1f} s (medians; load-independent)")
            print(f"nothing new    {m['again']:7.2f} s     rsync -a {m['rsync_again']:7.2f} s"
                  f"     ratio {m['again'] / m['rsync_again']:.2f}x (target <= 0.5)  spread "
                  f"{spread(rows['again'])} / {spread(rows['rsync_again'])}; daemon CPU "
                  f"{m['again_cpu']:.2f} s")
            print(f"verify         {mb / m['verify']:7.1f} MB/s  hashlib  "
                  f"{mb / m['hash_loop']:7.1f} MB/s  ratio {m['hash_loop'] / m['verify']:.2f}x "
                  f"(target >= 0.8)  spread {spread(rows['verify'])} / "
                  f"{spread(rows['hash_loop'])}")
        if do_import:
            cmb = card_bytes / 1e6
            print(f"import         {cmb / m['import']:7.1f} MB/s  cp -r    "
                  f"{cmb / m['cp']:7.1f} MB/s  ratio {m['cp'] / m['import']:.2f}x (target >= "
                  f"0.7)  spread {spread(rows['import'])} / {spread(rows['cp'])}; CPU of the "
                  f"daemon and its workers {m['import_cpu']:.2f} s; then indexing "
                  f"(thumbnails) {m['import_index']:.1f} s")
            print(f"  cp -r + sync -f {cmb / m['cp_sync']:7.1f} MB/s (the copy made "
                  f"durable, as the import's are): import {m['cp_sync'] / m['import']:.2f}x of "
                  f"it; spread {spread(rows['cp_sync'])}")
            print(f"  floor (read once, sha256, write, syncfs; {threads} threads, Python) "
                  f"{cmb / m['floor']:7.1f} MB/s, {m['floor']:.2f} s: "
                  f"{m['cp'] / m['floor']:.2f}x cp -r at best; import "
                  f"{m['floor'] / m['import']:.2f}x of the floor; spread {spread(rows['floor'])}"
                  f"; its CPU {m['floor_cpu']:.2f} s")
            print("import per round: " + ", ".join(
                f"{c / i:.2f}x cp -r ({i:.2f} s / cp {c:.2f} / +sync {cs:.2f} / floor "
                f"{fl:.2f})" for i, c, cs, fl in zip(rows["import"], rows["cp"], rows["cp_sync"],
                                                      rows["floor"], strict=True)))


def backup_round(d: Daemon, tmp: Path, root: Path, r: int, n: int, threads: int,
                 rows: dict[str, list[float]], keep: bool = False) -> None:
    mirror = tmp / f"rsync{r}"
    target = tmp / f"target{r}"
    target.mkdir()
    d.call("backups.add", {"name": f"t{r}", "path": str(target), "schedule": None,
                           "verify_schedule": None})

    def rsync_side() -> None:
        # Each first copy starts on a flushed file system (untimed): the backup's syncfs
        # would otherwise also write out what rsync left dirty in the page cache before it.
        subprocess.run(["sync"], check=True)
        elapsed, cpu = timed_cpu(["rsync", "-a", f"{root}/", f"{mirror}/"])
        rows["rsync_first"].append(elapsed)
        rows["rsync_cpu"].append(cpu)

    def lightbox_side() -> dict[str, Any]:
        subprocess.run(["sync"], check=True)
        cpu0 = tree_cpu(d)
        elapsed, done = run_job(d, "backups.run", {"target": f"t{r}"})
        rows["first_cpu"].append(tree_cpu(d) - cpu0)
        rows["first"].append(elapsed)
        return done

    # The sides take turns going first: whatever the first leaves the file system (dirty
    # metadata, allocator state) is paid by the other side as often.
    if r % 2 == 0:
        rsync_side()
        done = lightbox_side()
    else:
        done = lightbox_side()
        rsync_side()
    rows["load"].append(os.getloadavg()[0])
    print(f"  first backup ({'rsync' if r % 2 == 0 else 'lightbox'} first), phases:",
          done["result"]["timings"], "stages:", done["result"].get("copy_stages"),
          f"daemon CPU {rows['first_cpu'][-1]:.1f} s, rsync CPU {rows['rsync_cpu'][-1]:.1f} s,"
          f" load {rows['load'][-1]:.1f}", flush=True)
    assert done["result"]["copied"] == n, done["result"]
    rows["rsync_again"].append(timed(["rsync", "-a", f"{root}/", f"{mirror}/"]))
    cpu0 = tree_cpu(d)
    elapsed, done = run_job(d, "backups.run", {"target": f"t{r}"})
    rows["again_cpu"].append(tree_cpu(d) - cpu0)
    assert done["result"]["copied"] == 0
    rows["again"].append(elapsed)
    print("  nothing new, phases:", done["result"]["timings"], flush=True)
    elapsed, done = run_job(d, "backups.verify", {"target": f"t{r}", "all": True})
    assert done["result"]["ok"] == n, done["result"]
    rows["verify"].append(elapsed)
    rows["hash_loop"].append(hash_loop(target / "library", threads)[0])
    d.call("backups.remove", {"target": f"t{r}"})
    if not keep:
        shutil.rmtree(target)
        shutil.rmtree(mirror)
        # ext4 without a journal skips, at every create, the inodes freed in the last 60 s
        # (360 s while their inode table block is dirty): flushed, then waited out, so the
        # next round's first side does not pay for this round's deletions.
        subprocess.run(["sync"], check=True)
        time.sleep(RECENTLY_DELETED_S)


def import_round(d: Daemon, tmp: Path, card: Path, r: int,
                 rows: dict[str, list[float]], threads: int = 2) -> None:
    copy = tmp / f"cp{r}"

    def ready() -> None:
        # Every step: the card in the page cache, the writeback of what came before done.
        warm(card)
        settle()

    def baselines() -> None:
        ready()
        rows["cp"].append(timed(["cp", "-r", str(card), str(copy)]))
        shutil.rmtree(copy)  # before its pages are written: cp -r never pays a device write
        # Not the baseline, what durability costs: the same copy made durable, as an
        # import's copies are before "safe to erase" or a move deletes a source.
        ready()
        rows["cp_sync"].append(timed(["sh", "-c", 'cp -r "$0" "$1" && sync -f "$1"',
                                      str(card), str(copy)]))
        shutil.rmtree(copy)
        ready()
        elapsed, cpu = copy_floor(card, copy, threads)
        rows["floor"].append(elapsed)
        rows["floor_cpu"].append(cpu)
        shutil.rmtree(copy)

    def lightbox() -> None:
        dest = tmp / f"imported{r}"
        dest.mkdir()
        d.call("roots.add", {"path": str(dest), "name": f"imp{r}", "scan": False})
        # Nothing of the round before still running in the daemon (its jobs; the probe
        # goes through the same worker pool as the indexer's thumbnails).
        for job in d.call("jobs.list", {"state": "running"})["jobs"]:
            d.wait_job(job["id"])
        ready()
        cpu0 = tree_cpu(d)
        _, done = run_job(d, "library.import", {
            "source_path": str(card), "root": f"imp{r}",
            "template": "{taken:%Y}/{taken:%Y-%m-%d}/{name}"})
        t = done["result"]["timings"]
        # Everything but the wait for the indexer's thumbnails of the new photos.
        rows["import"].append(sum(v for k, v in t.items() if k != "index"))
        rows["import_index"].append(t["index"])
        print(f"  import ({'lightbox' if r % 2 else 'cp -r'} first) phases:", t, flush=True)
        rows["import_cpu"].append(tree_cpu(d) - cpu0)
        d.call("roots.remove", {"root": f"imp{r}"})
        shutil.rmtree(dest)

    # The steps take turns going first (what the first leaves, the second meets as often).
    if r % 2:
        lightbox()
        baselines()
    else:
        baselines()
        lightbox()


if __name__ == "__main__":
    main()
