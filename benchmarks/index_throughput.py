"""Index throughput of 12-megapixel JPEGs (issue 3 a, issue 13), beside bare Pillow loops.

Baselines, each over the same files in as many processes as the daemon has workers (a
warmed pool):

- grid: `Image.open` + `draft` + `thumbnail(256)` + `save` (the issue's bare loop);
- both sizes: `Image.open` + `draft` to the preview's box (1/4 scale: 1000 px) + `save`,
  then `thumbnail(256)` of those pixels + `save`: the least work that makes both sizes;
- preview only: `Image.open` + `draft` to the preview's box + `save` (grid, then this, is
  the same work in two passes, as lightbox now does it).

lightbox: a fresh catalog, a daemon whose workers have come up, `roots.add`, then the time
until (a) every photo is catalogued with its grid thumbnail (sha256, EXIF, dimensions,
perceptual hash, grid; `status = ok` with the grid's bit, the scan job finishes then), and
(b) until every preview exists too (made by the low-priority pass after indexing,
`library.previews`). (a) is compared with the grid loop, (b) with the both-sizes loop and
with grid + preview-only. Rounds alternate baselines and lightbox on a warm page cache;
medians and the spread are reported.

Besides wall time, each side's CPU time per photo (user + sys, from /proc): for the bare
loop its pool processes, for lightbox the daemon and its workers (separately). CPU seconds
are much less sensitive to the machine's load than wall time; the load average is printed
before and after.

Target: >= 0.8 of the bare loop's rate (issue 13; for (a), the product decision being that
the preview is made after indexing).

    .venv/bin/python benchmarks/index_throughput.py [--count 200] [--megapixels 12] [--rounds 3]
    .venv/bin/python benchmarks/index_throughput.py --quick      # 40 photos, 2 rounds

The photo set is cached in $BENCH_CACHE (default ~/.cache/lightbox-bench) between runs.
"""

from __future__ import annotations

import argparse
import hashlib
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


# The preview's draft box: the daemon's default thumbnails.preview_min (960) on a 4:3 photo,
# which the JPEG decoder meets at 1/4 scale (1000x750), as lightbox's preview does.
PREVIEW_BOX = (960, 720)


def bare_one(args: tuple[str, str]) -> None:
    src, out = args
    with Image.open(src) as img:
        img.draft("RGB", (256, 256))
        img.thumbnail((256, 256))
        img.save(out, "JPEG", quality=82)


def bare_both(args: tuple[str, str]) -> None:
    """Both sizes from one decode: the preview as drafted, the grid from its pixels."""
    src, out = args
    with Image.open(src) as img:
        img.draft("RGB", PREVIEW_BOX)
        img.load()
        img.save(out + ".preview.jpg", "JPEG", quality=82)
        img.thumbnail((256, 256))
        img.save(out, "JPEG", quality=82)


def bare_preview(args: tuple[str, str]) -> None:
    src, out = args
    with Image.open(src) as img:
        img.draft("RGB", PREVIEW_BOX)
        img.save(out, "JPEG", quality=82)


@dataclass
class Run:
    seconds: float            # bare: the loop; lightbox: until every preview exists (b)
    grid_seconds: float = 0.0  # lightbox: until every photo is catalogued with its grid (a)
    job_seconds: float = 0.0  # lightbox: until the scan job finished
    cpu: float = 0.0          # workers (or the bare loop's processes), seconds, to the end
    daemon_cpu: float = 0.0   # the daemon process itself (lightbox only), to the end
    grid_cpu: float = 0.0     # lightbox: workers + daemon until (a)
    spawn_ms: float = 0.0     # the workers' start before the run (lightbox only)


def bare_loop(files: list[Path], processes: int, fn: Any = bare_one) -> Run:
    with tempfile.TemporaryDirectory() as tmp, mp.get_context("spawn").Pool(
            processes, initializer=_nice) as pool:
        pool.map(fn, [(str(files[0]), f"{tmp}/warm.jpg")] * processes * 2, chunksize=1)
        kids = child_pids(os.getpid())
        c0 = sum(proc_cpu(p) for p in kids)
        t0 = time.perf_counter()
        pool.map(fn, [(str(f), f"{tmp}/{i}.jpg") for i, f in enumerate(files)],
                 chunksize=1)
        wall = time.perf_counter() - t0
        return Run(wall, wall, wall, sum(proc_cpu(p) for p in kids) - c0)


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
        def cpu() -> tuple[float, float]:
            """(workers, daemon) CPU seconds since the start."""
            workers = sum(proc_cpu(p) - kids0.get(p, 0.0) for p in child_pids(pid))
            own = proc_cpu(pid)
            # A child that exited meanwhile (a recycled worker) counts with the workers.
            workers += proc_cpu(pid, children=True) - own - reaped0
            return workers, own - own0

        t0 = time.perf_counter()
        job = d.call("roots.add", {"path": str(photos)})["job"]
        grid_done = grid_cpu = None
        all_done = None
        con = sqlite3.connect(f"file:{catalog}?mode=ro", uri=True, timeout=30)
        while all_done is None:
            grid, both = con.execute(
                "SELECT count(*), coalesce(sum((thumbs & 3) = 3), 0) FROM photos "
                "WHERE status = 'ok' AND (thumbs & 1) = 1").fetchone()
            now = time.perf_counter() - t0
            if grid_done is None and grid >= count:
                grid_done = now
                grid_cpu = sum(cpu())
            if both >= count:
                all_done = now
                break
            time.sleep(0.02)
        con.close()
        done = d.wait_job(job)
        job_done = done["finished_at"] and _job_seconds(done)
        workers, daemon_cpu = cpu()
        assert done["state"] == "succeeded", done
        assert done["result"]["indexed"] == count, done["result"]
        assert grid_done is not None and grid_cpu is not None
        return Run(all_done, grid_done, job_done or 0.0, workers, daemon_cpu, grid_cpu,
                   spawn_ms)
    finally:
        d.stop()


def _job_seconds(job: dict[str, Any]) -> float:
    """How long the scan job ran, from its own timestamps."""
    import datetime as dt

    def at(text: str) -> float:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()

    return at(job["finished_at"]) - at(job.get("started_at") or job["created_at"])


def floor(files: list[Path], tmp: Path) -> None:
    """The floors, in one process and CPU time: what the bare loops' steps cost, what
    lightbox must do on top of them, and its worker calls themselves, over the same files."""
    from lightbox.common.settings import BY_KEY
    from lightbox.daemon.media import exif, phash
    from lightbox.daemon.media.analyze import AnalyzeRequest, analyze
    from lightbox.daemon.media.confine import LocalFile
    from lightbox.daemon.media.ondemand import make_thumbnails
    from lightbox.daemon.media.thumbs import ThumbSpec

    def default(key: str) -> int:
        return int(BY_KEY[key].default)

    # The daemon's default sizes (app.py builds its specs from the same settings).
    quality = default("thumbnails.quality")
    grid_spec = ThumbSpec("grid", default("thumbnails.grid"), quality)
    preview_spec = ThumbSpec("preview", default("thumbnails.preview"), quality,
                             min_size=default("thumbnails.preview_min") or None)
    grids: dict[Path, Image.Image] = {}

    def decoded(f: Path, box: tuple[int, int]) -> Image.Image:
        img = Image.open(f)
        img.draft("RGB", box)
        img.load()
        return img

    def grid(f: Path) -> Image.Image:
        if f not in grids:
            img = decoded(f, (256, 192))
            img.thumbnail((256, 256))
            grids[f] = img
        return grids[f]

    def locator(f: Path) -> LocalFile:
        st = f.stat()
        return LocalFile(str(f.parent), f.name, size=st.st_size, mtime_ns=st.st_mtime_ns,
                         inode=st.st_ino)

    def run_analyze(f: Path, now: tuple[ThumbSpec, ...], later: tuple[ThumbSpec, ...],
                    into: str) -> None:
        a = analyze(AnalyzeRequest(locator(f), str(tmp / into), now, later=later))
        assert a.ok, a.error

    def preview_pass(f: Path) -> None:
        # The pass's worker call; the first call wrote the file, so it is removed each
        # time to time the whole making of it.
        sha = hashlib.sha256(f.read_bytes()).hexdigest()   # not timed twice: see below
        target = tmp / "floor-p" / "preview" / sha[:2] / f"{sha}.jpg"
        target.unlink(missing_ok=True)
        c = time.process_time()
        make_thumbnails(locator(f), sha, (preview_spec,), str(tmp / "floor-p"), False)
        pass_ms.append((time.process_time() - c) * 1000)

    pass_ms: list[float] = []

    def sha256(f: Path) -> None:
        with open(f, "rb", buffering=0) as fp:
            h = hashlib.sha256()
            while chunk := fp.read(1 << 20):
                h.update(chunk)

    def read_exif(f: Path) -> None:
        with open(f, "rb") as fp:
            exif.read_exifread(fp)

    stages: list[tuple[str, Any]] = [
        ("bare grid loop: open+draft+thumbnail(256)+save", lambda f: bare_one((str(f), str(
            tmp / "floor-bare.jpg")))),
        ("  of which the decode drafted to 1/8 (500x375)", lambda f: decoded(f, (256, 192))),
        ("bare both-sizes loop: open+draft(1/4)+save, thumbnail(256)+save",
         lambda f: bare_both((str(f), str(tmp / "floor-both.jpg")))),
        ("  of which the decode drafted to 1/4 (1000x750)", lambda f: decoded(f, PREVIEW_BOX)),
        ("sha256 of the file", sha256),
        ("EXIF (exifread)", read_exif),
        ("dHash of the grid", lambda f: phash.phash(grid(f))),
        ("lightbox analyze() as the indexer asks (grid now, preview later)",
         lambda f: run_analyze(f, (grid_spec,), (preview_spec,), "floor-a")),
        ("for comparison: analyze() making both sizes from one decode (before)",
         lambda f: run_analyze(f, (grid_spec, preview_spec), (), "floor-b")),
    ]
    got: dict[str, float] = {}
    for name, fn in stages:
        for f in files:      # warm: imports, plugins, the page cache
            fn(f)
        times = []
        for f in files:
            c = time.process_time()
            fn(f)
            times.append((time.process_time() - c) * 1000)
        got[name] = median(times)
    for f in files:
        preview_pass(f)
    pass_ms.clear()
    for f in files:
        preview_pass(f)
    names = [n for n, _ in stages]
    bare, d8, both, _d4, sha, ex, dh, now, eager = (got[n] for n in names)
    made = median(pass_ms)
    extra_a = sha + ex + dh
    # On top of the both-sizes loop, for both sizes in two passes: the grid pass's own
    # decode at 1/8, and sha256, EXIF, dHash; the preview pass reads the orientation again.
    extra_b = d8 + sha + 2 * ex + dh
    print()
    print(f"Floors, one process, CPU ms per photo (median of {len(files)} photos, "
          f"load average {load()}):")
    print()
    print("| step | ms |")
    print("|---|---|")
    for name in names:
        print(f"| {name} | {got[name]:.2f} |")
    print(f"| the preview pass's worker call (make_thumbnails, preview only, no re-hash) | "
          f"{made:.2f} |")
    print(f"| (a) on top of the bare grid loop: sha256, EXIF, dHash | {extra_a:.2f} |")
    print(f"| (b) on top of the both-sizes loop: a second decode at 1/8, sha256, EXIF twice, "
          f"dHash | {extra_b:.2f} |")
    print()
    print(f"(a) floor: bare grid / (bare grid + what lightbox adds) = "
          f"{bare / (bare + extra_a):.2f}; analyze() in one process: {bare / now:.2f}")
    print(f"(b) floor: both sizes / (both sizes + what lightbox adds) = "
          f"{both / (both + extra_b):.2f}; analyze() + the preview pass: "
          f"{both / (now + made):.2f}; (before: analyze() making both at once: "
          f"{both / eager:.2f})")


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
    grid_b: list[Run] = []
    both_b: list[Run] = []
    prev_b: list[Run] = []
    lb: list[Run] = []
    with scratch("lbindex") as tmp:
        for r in range(args.rounds):
            grid_b.append(bare_loop(files, args.processes, bare_one))
            both_b.append(bare_loop(files, args.processes, bare_both))
            prev_b.append(bare_loop(files, args.processes, bare_preview))
            lb.append(lightbox_run(photos, tmp, len(files), args.processes))
            print(f"round {r + 1}: bare grid {grid_b[-1].seconds:.2f} s, both sizes "
                  f"{both_b[-1].seconds:.2f} s, preview only {prev_b[-1].seconds:.2f} s; "
                  f"lightbox grid {lb[-1].grid_seconds:.2f} s (job {lb[-1].job_seconds:.2f} s),"
                  f" previews {lb[-1].seconds:.2f} s; load {load()}", flush=True)
    n = len(files)
    rounds = range(len(lb))

    def med(values: list[float]) -> str:
        return f"{median(values):.2f} | {spread(values)}"

    print()
    print("| measure | seconds (median) | spread | photos/s |")
    print("|---|---|---|---|")
    for name, runs, attr in (
            ("bare grid: open+draft+thumbnail(256)+save", grid_b, "seconds"),
            ("bare both sizes: open+draft(1/4)+save preview, thumbnail(256)+save", both_b,
             "seconds"),
            ("bare preview only: open+draft(1/4)+save", prev_b, "seconds"),
            ("lightbox (a): catalogued with grid thumbnails", lb, "grid_seconds"),
            ("lightbox: the scan job finished", lb, "job_seconds"),
            ("lightbox (b): every preview made too", lb, "seconds")):
        values = [getattr(x, attr) for x in runs]
        print(f"| {name} | {med(values)} | {n / median(values):.1f} |")
    print()
    print("Ratios, each round's own (bare loop seconds / lightbox seconds), median and spread:")
    print()
    print("| ratio | median | spread |")
    print("|---|---|---|")
    ratios = {
        "(a) grid: bare grid / lightbox catalogued with grids":
            [grid_b[i].seconds / lb[i].grid_seconds for i in rounds],
        "(b) previews: bare both sizes / lightbox every preview":
            [both_b[i].seconds / lb[i].seconds for i in rounds],
        "(b') previews: bare grid + bare preview only (two passes) / lightbox every preview":
            [(grid_b[i].seconds + prev_b[i].seconds) / lb[i].seconds for i in rounds],
    }
    for name, values in ratios.items():
        print(f"| {name} | {med(values)} |")
    print()
    print("| CPU per photo (user+sys, median) | ms | spread |")
    print("|---|---|---|")
    for name, values in (
            ("bare grid loop's processes", [x.cpu for x in grid_b]),
            ("bare both-sizes loop's processes", [x.cpu for x in both_b]),
            ("bare preview-only loop's processes", [x.cpu for x in prev_b]),
            ("lightbox workers + daemon until (a)", [x.grid_cpu for x in lb]),
            ("lightbox workers, to the end (b)", [x.cpu for x in lb]),
            ("lightbox daemon process, to the end (b)", [x.daemon_cpu for x in lb])):
        per = [v / n * 1000 for v in values]
        print(f"| {name} | {median(per):.1f} | {spread(per)} |")
    print()
    print(f"workers' start before each lightbox round (not timed): "
          f"{[round(x.spawn_ms) for x in lb]} ms; every side niced {NICE}")
    print(f"load average after: {load()}")
    if args.floor_photos:
        with scratch("lbfloor") as tmp:
            floor(files[:args.floor_photos], tmp)


if __name__ == "__main__":
    main()
