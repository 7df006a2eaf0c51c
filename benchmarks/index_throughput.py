"""Index throughput of 12-megapixel JPEGs (issue 3, benchmark a), beside a bare Pillow loop.

Baseline: the same files through `Image.open` + `draft` + `thumbnail(256)` + `save`, in as
many processes as the daemon has workers. lightbox: a fresh catalog, `roots.add`, then
photos per second until every photo has its grid thumbnail, and until everything (sha256,
EXIF, perceptual hash, both thumbnail sizes) is done (the scan job finished). Rounds
alternate baseline and lightbox on a warm page cache; medians are reported.

Target: >= 0.8 of the bare loop's rate for each.

    .venv/bin/python benchmarks/index_throughput.py [--count 200] [--megapixels 12] [--rounds 2]

The photo set is cached in $BENCH_CACHE (default ~/.cache/lightbox-bench) between runs.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from harness import Daemon, median, scratch

from lightbox.daemon.media.samples import make_benchmark_set


def bare_one(args: tuple[str, str]) -> None:
    src, out = args
    with Image.open(src) as img:
        img.draft("RGB", (256, 256))
        img.thumbnail((256, 256))
        img.save(out, "JPEG", quality=82)


def bare_loop(files: list[Path], processes: int) -> float:
    with tempfile.TemporaryDirectory() as tmp, mp.get_context("spawn").Pool(processes) as pool:
        pool.map(bare_one, [(str(files[0]), f"{tmp}/warm.jpg")] * processes)
        t0 = time.perf_counter()
        pool.map(bare_one, [(str(f), f"{tmp}/{i}.jpg") for i, f in enumerate(files)],
                 chunksize=1)
        return time.perf_counter() - t0


def lightbox_run(photos: Path, tmp: Path, count: int, processes: int) -> tuple[float, float]:
    data = tmp / f"data-{time.monotonic_ns()}"
    d = Daemon(data, f"[workers]\nprocesses = {processes}\n[library]\nwatch = false\n").start()
    try:
        catalog = data / "catalog.db"
        t0 = time.perf_counter()
        job = d.call("roots.add", {"path": str(photos)})["job"]
        grid_done = None
        con = sqlite3.connect(f"file:{catalog}?mode=ro", uri=True, timeout=30)
        while grid_done is None:
            n = con.execute("SELECT count(*) FROM photos WHERE status = 'ok' "
                            "AND (thumbs & 1) = 1").fetchone()[0]
            if n >= count:
                grid_done = time.perf_counter() - t0
                break
            time.sleep(0.02)
        con.close()
        done = d.wait_job(job)
        all_done = time.perf_counter() - t0
        assert done["state"] == "succeeded", done
        assert done["result"]["indexed"] == count, done["result"]
        return grid_done, all_done
    finally:
        d.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--megapixels", type=float, default=12)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--processes", type=int, default=os.cpu_count() or 2)
    args = ap.parse_args()
    cache = Path(os.environ.get("BENCH_CACHE", Path.home() / ".cache" / "lightbox-bench"))
    photos = cache / f"jpeg-{args.megapixels:g}mp-{args.count}"
    if len(list(photos.glob("*.[jJ][pP][gG]"))) != args.count:
        t0 = time.perf_counter()
        make_benchmark_set(photos, args.count, args.megapixels, processes=args.processes)
        print(f"generated {args.count} photos of {args.megapixels:g} MP in "
              f"{time.perf_counter() - t0:.1f} s")
    files = sorted(photos.glob("*.[jJ][pP][gG]"))
    size_mb = sum(f.stat().st_size for f in files) / 1e6
    with Image.open(files[0]) as img:
        dims = img.size
    print(f"{len(files)} JPEGs, {dims[0]}x{dims[1]}, {size_mb:.0f} MB, "
          f"{args.processes} processes, {os.cpu_count()} CPUs")
    bare, grid, full = [], [], []
    with scratch("lbindex") as tmp:
        for _ in range(args.rounds):
            bare.append(bare_loop(files, args.processes))
            g, a = lightbox_run(photos, tmp, len(files), args.processes)
            grid.append(g)
            full.append(a)
    n = len(files)
    b, g, a = median(bare), median(grid), median(full)
    print("| measure | seconds (median) | photos/s | ratio to bare loop |")
    print("|---|---|---|---|")
    print(f"| bare open+draft+thumbnail(256)+save | {b:.2f} | {n / b:.1f} | 1.00 |")
    print(f"| lightbox: every grid thumbnail | {g:.2f} | {n / g:.1f} | {b / g:.2f} |")
    print(f"| lightbox: everything (both sizes, sha256, EXIF, phash) | {a:.2f} | {n / a:.1f} | "
          f"{b / a:.2f} |")
    print(f"rounds: bare {[round(x, 2) for x in bare]}, grid {[round(x, 2) for x in grid]}, "
          f"all {[round(x, 2) for x in full]}")


if __name__ == "__main__":
    main()
