"""Index throughput of 12-megapixel JPEGs (issue 3 a, issue 13), beside a bare Pillow loop.

Baseline: the same files through `Image.open` + `draft` + `thumbnail(256)` + `save`, in as
many processes as the daemon has workers (a warmed pool). lightbox: a fresh catalog, a
daemon whose workers have come up, `roots.add`, then photos per second until every photo
has its grid thumbnail, and until everything (sha256, EXIF, perceptual hash, both
thumbnail sizes) is done (the scan job finished). Rounds alternate baseline and lightbox on
a warm page cache; medians and the spread are reported.

Besides wall time, each side's CPU time per photo (user + sys, from /proc): for the bare
loop its pool processes, for lightbox the daemon and its workers (separately). CPU seconds
are much less sensitive to the machine's load than wall time; the load average is printed
before and after.

Target: >= 0.8 of the bare loop's rate for each.

    .venv/bin/python benchmarks/index_throughput.py [--count 200] [--megapixels 12] [--rounds 3]
    .venv/bin/python benchmarks/index_throughput.py --quick      # 40 photos, 2 rounds

The photo set is cached in $BENCH_CACHE (default ~/.cache/lightbox-bench) between runs.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import multiprocessing as mp
import os
import sqlite3
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

sys.path.insert(0, str(Path(__file__).parent))
from harness import Daemon, median, scratch

from lightbox.daemon.media.samples import make_benchmark_set

_TICK = os.sysconf("SC_CLK_TCK")


def proc_cpu(pid: int, children: bool = False) -> float:
    """CPU seconds (user + sys) of one process; with ``children``, plus those of its
    children it has waited for (a worker that exited)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = text[text.rindex(")") + 2:].split()
    ticks = int(fields[11]) + int(fields[12])      # utime, stime
    if children:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime
    return ticks / _TICK


def child_pids(pid: int) -> list[int]:
    out: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tasks:
        try:
            out += [int(p) for p in Path(f"/proc/{pid}/task/{tid}/children").read_text().split()]
        except OSError:
            continue
    return out


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


# The daemon's workers run at this niceness (``WorkerPool(nice=10)``); the bare loop's
# processes get the same, so that on a loaded machine neither side is favoured. On a quiet
# machine it changes nothing.
NICE = 10


def _nice() -> None:
    os.nice(NICE)


def bare_one(args: tuple[str, str]) -> None:
    src, out = args
    with Image.open(src) as img:
        img.draft("RGB", (256, 256))
        img.thumbnail((256, 256))
        img.save(out, "JPEG", quality=82)


@dataclass
class Run:
    seconds: float
    grid_seconds: float = 0.0
    cpu: float = 0.0          # workers (or the bare loop's processes), seconds
    daemon_cpu: float = 0.0   # the daemon process itself (lightbox only)
    spawn_ms: float = 0.0     # the workers' start before the run (lightbox only)


def bare_loop(files: list[Path], processes: int) -> Run:
    with tempfile.TemporaryDirectory() as tmp, mp.get_context("spawn").Pool(
            processes, initializer=_nice) as pool:
        pool.map(bare_one, [(str(files[0]), f"{tmp}/warm.jpg")] * processes * 2, chunksize=1)
        kids = child_pids(os.getpid())
        c0 = sum(proc_cpu(p) for p in kids)
        t0 = time.perf_counter()
        pool.map(bare_one, [(str(f), f"{tmp}/{i}.jpg") for i, f in enumerate(files)],
                 chunksize=1)
        wall = time.perf_counter() - t0
        return Run(wall, wall, sum(proc_cpu(p) for p in kids) - c0)


def wait_workers(d: Daemon, processes: int, timeout: float = 120.0
                 ) -> tuple[list[int], float]:
    """The worker pids once every worker has reported ready, and how long the last one took
    to come up (ms). The bare loop's pool is warm too: starting interpreters is not
    throughput (the daemon answers before its workers are up, so a benchmark that does not
    wait counts their start as indexing time)."""
    deadline = time.monotonic() + timeout
    while True:
        w = d.call("system.status")["components"]["workers"]
        if w["alive"] >= processes:
            return list(w["pids"]), float(w.get("spawn_ms") or 0.0)
        if time.monotonic() > deadline:
            raise TimeoutError(f"workers not ready: {w}")
        time.sleep(0.05)


def lightbox_run(photos: Path, tmp: Path, count: int, processes: int) -> Run:
    data = tmp / f"data-{time.monotonic_ns()}"
    d = Daemon(data, f"[workers]\nprocesses = {processes}\n[library]\nwatch = false\n").start()
    try:
        assert d.proc is not None
        _pids, spawn_ms = wait_workers(d, processes)
        catalog = data / "catalog.db"
        pid = d.proc.pid
        kids0 = {p: proc_cpu(p) for p in child_pids(pid)}
        own0 = proc_cpu(pid)
        reaped0 = proc_cpu(pid, children=True) - own0
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
        workers = sum(proc_cpu(p) - kids0.get(p, 0.0) for p in child_pids(pid))
        own = proc_cpu(pid)
        # A child that exited meanwhile (a recycled worker) counts with the workers.
        workers += proc_cpu(pid, children=True) - own - reaped0
        daemon_cpu = own - own0
        assert done["state"] == "succeeded", done
        assert done["result"]["indexed"] == count, done["result"]
        return Run(all_done, grid_done, workers, daemon_cpu, spawn_ms)
    finally:
        d.stop()


def floor(files: list[Path], tmp: Path) -> None:
    """The floor, in one process and CPU time: what the bare loop's steps cost, what
    lightbox must do on top of them, and ``analyze`` itself, over the same files."""
    from lightbox.common.settings import BY_KEY
    from lightbox.daemon.media import exif, phash
    from lightbox.daemon.media.analyze import AnalyzeRequest, analyze
    from lightbox.daemon.media.confine import LocalFile
    from lightbox.daemon.media.thumbs import GRID, RESAMPLE, ThumbSpec

    def default(key: str) -> int:
        return int(BY_KEY[key].default)

    # The daemon's default sizes (app.py builds its specs from the same settings).
    quality = default("thumbnails.quality")
    specs = (ThumbSpec("grid", default("thumbnails.grid"), quality),
             ThumbSpec("preview", default("thumbnails.preview"), quality,
                       min_size=default("thumbnails.preview_min") or None))
    preview_edge = max(s.decode_size for s in specs)
    cache: dict[tuple[str, Path], Image.Image] = {}

    def decoded(f: Path, edge: int) -> Image.Image:
        img = Image.open(f)
        img.draft("RGB", (edge, edge * img.size[1] // img.size[0]))
        img.load()
        return img

    def preview(f: Path) -> Image.Image:
        if ("preview", f) not in cache:
            cache["preview", f] = decoded(f, preview_edge)
        return cache["preview", f]

    def resize_grid(f: Path) -> Image.Image:
        big = preview(f)
        return big.resize((GRID.size, GRID.size * big.size[1] // big.size[0]), RESAMPLE,
                          reducing_gap=1.0)

    def grid(f: Path) -> Image.Image:
        if ("grid", f) not in cache:
            cache["grid", f] = resize_grid(f)
        return cache["grid", f]

    def run_analyze(f: Path, sizes: tuple[ThumbSpec, ...] = specs) -> None:
        st = f.stat()
        a = analyze(AnalyzeRequest(LocalFile(str(f.parent), f.name, size=st.st_size,
                                             mtime_ns=st.st_mtime_ns, inode=st.st_ino),
                                   str(tmp / "floor"), sizes))
        assert a.ok, a.error

    def sha256(f: Path) -> None:
        with open(f, "rb", buffering=0) as fp:
            h = hashlib.sha256()
            while chunk := fp.read(1 << 20):
                h.update(chunk)

    def read_exif(f: Path) -> None:
        with open(f, "rb") as fp:
            exif.read_exifread(fp)

    with Image.open(files[0]) as first:
        full = first.size
    shown = decoded(files[0], preview_edge).size
    stages: list[tuple[str, Any]] = [
        ("bare loop: open+draft+thumbnail(256)+save", lambda f: bare_one((str(f), str(
            tmp / "floor-bare.jpg")))),
        ("  of which decode at 1/8 (its draft)", lambda f: decoded(f, 256)),
        (f"decode drafted for the preview (at least {preview_edge} px: "
         f"{shown[0]}x{shown[1]}, 1/{full[0] // shown[0]})", lambda f: decoded(f, preview_edge)),
        ("sha256 of the file", sha256),
        ("EXIF (exifread)", read_exif),
        ("grid resize from the preview pixels (the bare loop resizes too)", resize_grid),
        ("grid encode (the bare loop encodes too)",
         lambda f: grid(f).save(io.BytesIO(), "JPEG", quality=82)),
        ("preview encode", lambda f: preview(f).save(io.BytesIO(), "JPEG", quality=82)),
        ("dHash", lambda f: phash.phash(grid(f))),
        ("lightbox analyze() (all of it, confined open, files written)", run_analyze),
        ("for comparison: analyze() making the grid size only (no preview)",
         lambda f: run_analyze(f, specs[:1])),
    ]
    got: dict[str, float] = {}
    for name, fn in stages:
        for f in files:      # warm: imports, plugins, the cached preview pixels
            fn(f)
        times = []
        for f in files:
            c = time.process_time()
            fn(f)
            times.append((time.process_time() - c) * 1000)
        got[name] = median(times)
    names = [n for n, _ in stages]
    bare, d8, d4 = got[names[0]], got[names[1]], got[names[2]]
    whole, grid_only = got[names[-2]], got[names[-1]]
    # The grid's resize and encode stand for the bare loop's own; on top come these:
    extra = (d4 - d8) + got[names[3]] + got[names[4]] + got[names[7]] + got[names[8]]
    print()
    print(f"Floor, one process, CPU ms per photo (median of {len(files)} photos, "
          f"load average {load()}):")
    print()
    print("| step | ms |")
    print("|---|---|")
    for name in names:
        print(f"| {name} | {got[name]:.2f} |")
    print(f"| on top of the bare loop: the larger decode (+{d4 - d8:.2f}), sha256, EXIF, "
          f"preview encode, dHash | {extra:.2f} |")
    print()
    print(f"floor ratio (bare / (bare + what lightbox must add)): {bare / (bare + extra):.2f}; "
          f"analyze() in one process: {bare / whole:.2f}; without the preview: "
          f"{bare / grid_only:.2f}")


def spread(values: list[float]) -> str:
    return f"{min(values):.2f}-{max(values):.2f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=200)
    ap.add_argument("--megapixels", type=float, default=12)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--processes", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--quick", action="store_true", help="40 photos, 2 rounds")
    ap.add_argument("--floor-photos", type=int, default=20,
                    help="photos for the one-process floor analysis (0: skip it)")
    args = ap.parse_args()
    if args.quick:
        args.count, args.rounds = min(args.count, 40), min(args.rounds, 2)
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
          f"{args.processes} processes, {os.cpu_count()} CPUs; load average before: {load()}")
    bare: list[Run] = []
    lb: list[Run] = []
    with scratch("lbindex") as tmp:
        for _ in range(args.rounds):
            bare.append(bare_loop(files, args.processes))
            lb.append(lightbox_run(photos, tmp, len(files), args.processes))
    n = len(files)
    b = median([r.seconds for r in bare])
    g = median([r.grid_seconds for r in lb])
    a = median([r.seconds for r in lb])
    b_cpu = median([r.cpu / n * 1000 for r in bare])
    w_cpu = median([r.cpu / n * 1000 for r in lb])
    d_cpu = median([r.daemon_cpu / n * 1000 for r in lb])
    print()
    print("| measure | seconds (median) | spread | photos/s | ratio to bare loop |")
    print("|---|---|---|---|---|")
    print(f"| bare open+draft+thumbnail(256)+save | {b:.2f} | "
          f"{spread([r.seconds for r in bare])} | {n / b:.1f} | 1.00 |")
    print(f"| lightbox: every grid thumbnail | {g:.2f} | "
          f"{spread([r.grid_seconds for r in lb])} | {n / g:.1f} | {b / g:.2f} |")
    print(f"| lightbox: everything (both sizes, sha256, EXIF, phash) | {a:.2f} | "
          f"{spread([r.seconds for r in lb])} | {n / a:.1f} | {b / a:.2f} |")
    print()
    print("| CPU per photo (user+sys, median) | ms | spread | ratio to bare loop |")
    print("|---|---|---|---|")
    print(f"| bare loop processes | {b_cpu:.1f} | "
          f"{spread([r.cpu / n * 1000 for r in bare])} | 1.00 |")
    print(f"| lightbox workers | {w_cpu:.1f} | {spread([r.cpu / n * 1000 for r in lb])} | "
          f"{b_cpu / w_cpu:.2f} |")
    print(f"| lightbox daemon process | {d_cpu:.1f} | "
          f"{spread([r.daemon_cpu / n * 1000 for r in lb])} | |")
    print(f"| lightbox workers + daemon | {w_cpu + d_cpu:.1f} | | {b_cpu / (w_cpu + d_cpu):.2f} |")
    print()
    print(f"rounds (s): bare {[round(r.seconds, 2) for r in bare]}, "
          f"grid {[round(r.grid_seconds, 2) for r in lb]}, all {[round(r.seconds, 2) for r in lb]}")
    print(f"workers' start before each lightbox round (not timed): "
          f"{[round(r.spawn_ms) for r in lb]} ms; both sides niced {NICE}")
    print(f"load average after: {load()}")
    if args.floor_photos:
        with scratch("lbfloor") as tmp:
            floor(files[:args.floor_photos], tmp)


if __name__ == "__main__":
    main()
