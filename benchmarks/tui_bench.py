"""TUI benchmarks against a catalog of 100,000 photos with 1,000 in the open folder.

- start to first folder painted (process spawn to the first frame with photos in the grid,
  and to the frame where every visible thumbnail is drawn): target < 1 s;
- cursor move in the grid to the next row painted: target p95 < 50 ms;
- next photo in the preview at 120x40 cells, cached thumbnails: target p50 < 150 ms,
  p95 < 300 ms, for Sixel and for half-cells; "paced" leaves 0.6 s on each photo (the
  neighbours are prefetched meanwhile), "back-to-back" presses again as soon as it painted;
- memory (RSS) of the TUI after scrolling through the whole folder: target < 200 MB.

The catalog is built with ``tests/catalog_fixtures`` (a source whose folder does not exist,
so it is offline and no scan touches it); the open folder's thumbnails are in the daemon's
cache already (24 real pictures, hard-linked under 1,000 content hashes). The app runs on a
pseudo-terminal (``tui_probe.py``) with its real driver, so rendering and writing the escape
sequences (Sixel included) are in the figures; the terminal's own drawing is not. Baselines in
the same run: the daemon's own ``photos.thumbnail`` round trip for the grid size, and the
floor under the start (``tui_floor.py``: a bare Textual app on the same pty that connects,
asks for the folder's first page and paints the names).

    .venv/bin/python benchmarks/tui_bench.py [--photos 100000] [--reuse DIR] [--runs 3]
        [--modes sixel,symbols,halfcell] [--no-compile]
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import fcntl
import json
import os
import pty
import select
import shutil
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from catalog_fixtures import CatalogBuilder, sha_of, synth, write_thumbnails
from harness import Daemon, median, percentile

OPEN = "2024/2024-05 Alps"
SOURCE = "/nonexistent/lb-tui-bench"
DISTINCT = 24


async def build(data: Path, total: int, open_n: int) -> None:
    from lightbox.common import paths
    from lightbox.daemon.media import samples

    b = await CatalogBuilder.open(f"sqlite+aiosqlite:///{data}/catalog.db")
    src = await b.source("library", SOURCE)
    open_id = await b.folder(src, OPEN)
    thumbs = paths.resolve(str(data)).thumbnails_dir
    made: list[tuple[str, tuple[int, int]]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for k in range(DISTINCT):
            size = (1600, 1200) if k % 5 else (1200, 1600)
            src_file = Path(tmp) / f"{k}.jpg"
            samples.make_photo(*size, seed=k).save(src_file, "JPEG", quality=88)
            write_thumbnails(thumbs, src_file, sha_of(k))
            made.append((sha_of(k), size))
    rows = []
    for i in range(open_n):
        sha = sha_of(i)
        k = i % DISTINCT
        if i >= DISTINCT:
            for name in ("grid", "preview"):
                from lightbox.daemon.media.thumbs import thumbnail_path

                target = thumbnail_path(thumbs, name, sha)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.link(thumbnail_path(thumbs, name, made[k][0]), target)
        w, h = made[k][1]
        rows.append(synth(i, name=f"DSC{i:05d}.JPG", sha256=sha, width=w, height=h, thumbs=3))
    await b.photos(open_id, rows)
    rest, n = total - open_n, open_n
    for f in range(0, rest, 1000):
        folder = await b.folder(src, f"{2010 + f // 12000}/{(f // 1000) % 12 + 1:02d} batch")
        count = min(1000, rest - f)
        await b.photos(folder, [synth(n + i, name=f"IMG_{n + i:07d}.JPG", thumbs=0)
                                for i in range(count)])
        n += count
    await b.finish()
    await b.close()


def run_probe(endpoint: str, graphics: str, moves: int, previews: int,
              profile: str | None = None) -> dict[str, Any]:
    """The app on a 120x40 pty (8x17 px cells); returns what the probe measured."""
    return on_pty("tui_probe.py", endpoint, [
        "--graphics", graphics, "--moves", str(moves), "--previews", str(previews),
        *(["--profile", profile] if profile else [])])


def on_pty(script: str, endpoint: str, extra: list[str]) -> dict[str, Any]:
    out = Path(tempfile.mkstemp(suffix=".json")[1])
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 960, 680))
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIGHTBOX_")}
    env.update(TERM="xterm-256color", COLORTERM="truecolor")
    t0 = time.time()
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "benchmarks" / script), "--endpoint", endpoint,
         "--folder", f"{SOURCE}/{OPEN}", "--t0", repr(t0), "--out", str(out), *extra],
        stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True)
    os.close(slave)
    written = 0
    tail = b""
    try:
        while proc.poll() is None:  # drain the terminal, as a terminal would
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(master, 1 << 20)
                except OSError:
                    break
                written += len(chunk)
                tail = (tail + chunk)[-20000:]
        proc.wait(timeout=600)
    finally:
        os.close(master)
    text = out.read_text()
    out.unlink()
    if not text:
        return {"error": f"exit {proc.returncode}: "
                         f"{tail.decode(errors='replace')[-3000:]}"}
    result: dict[str, Any] = json.loads(text)
    result["terminal_bytes"] = written
    return result


def baseline(d: Daemon) -> float:
    """Median ms of one ``photos.thumbnail`` (grid) round trip: the floor under a cell."""
    page = d.call("folders.list", {"path": f"{SOURCE}/{OPEN}", "limit": 50, "fields": ["id"]})
    ids = [p["id"] for p in page["photos"]]
    lat = []
    with d.client() as c:
        for pid in ids:
            t = time.perf_counter()
            c.call("photos.thumbnail", {"id": pid, "size": "grid"})
            lat.append(1000 * (time.perf_counter() - t))
    return median(lat)


def flat(lists: Any) -> list[float]:
    return [x for values in lists for x in values]


def show(name: str, values: list[float], target: str) -> None:
    print(f"  {name:34} p50 {median(values):7.1f} ms  p95 {percentile(values, 0.95):7.1f} ms"
          f"  (n={len(values)}; target {target})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--photos", type=int, default=100_000)
    p.add_argument("--open", type=int, default=1000)
    p.add_argument("--reuse", type=Path, help="a data dir built earlier (kept)")
    p.add_argument("--runs", type=int, default=3, help="starts per graphics mode")
    p.add_argument("--moves", type=int, default=200)
    p.add_argument("--previews", type=int, default=40)
    p.add_argument("--profile", help="cProfile the grid moves of the first run into FILE")
    p.add_argument("--no-compile", action="store_true",
                   help="do not byte-compile lightbox's sources first")
    p.add_argument("--modes", default="sixel,symbols,halfcell",
                   help="graphics modes to measure, comma-separated")
    args = p.parse_args()
    data = args.reuse or Path(tempfile.mkdtemp(prefix="lb-tuib-", dir="/tmp"))
    if not (data / "catalog.db").exists():
        t = time.perf_counter()
        asyncio.run(build(data, args.photos, args.open))
        print(f"catalog: {args.photos:,} photos built in {time.perf_counter() - t:.0f} s")
    if not args.no_compile:
        # As an install does (pip writes the bytecode): with PYTHONDONTWRITEBYTECODE set, as
        # in some shells and CI, every start would compile lightbox's sources again, CPU a
        # user's start does not spend (the floor and the TUI alike; ``--no-compile``: not).
        for package in ("common", "daemon", "tui"):
            compileall.compile_dir(ROOT / package / "lightbox", quiet=1)
    d = Daemon(data, config="[library]\nreconcile_interval = 0\n").start()
    try:
        print(f"baseline: photos.thumbnail (grid) round trip p50 {baseline(d):.1f} ms")
        floor_runs = [on_pty("tui_floor.py", d.endpoint, []) for _ in range(args.runs)]
        floors = [r["first_frame_s"] for r in floor_runs]
        floor = median(floors)
        floor_cpu = median([r["cpu_s"] for r in floor_runs])
        print(f"floor: a bare Textual app painting the folder's first page {floor:.2f} s "
              f"(runs {', '.join(f'{s:.2f}' for s in floors)}); CPU {floor_cpu:.2f} s; "
              f"load {os.getloadavg()[0]:.1f}")
        for graphics in args.modes.split(","):
            runs = [run_probe(d.endpoint, graphics, args.moves, args.previews,
                              f"{args.profile}.{graphics}" if args.profile and not i else None)
                    for i in range(args.runs)]
            errors = [r["error"] for r in runs if "error" in r]
            if errors:
                print(f"{graphics}: probe failed: {errors}")
                continue
            starts = [r["start_to_folder_s"] for r in runs]
            images = [r["start_to_images_s"] for r in runs]
            print(f"{graphics} ({runs[0]['folder_photos']} photos in the folder, 120x40):")
            print(f"  start to first folder painted      {median(starts):.2f} s (runs "
                  f"{', '.join(f'{s:.2f}' for s in starts)}; target < 1 s; "
                  f"{median(starts) / floor:.2f}x the floor; interpreter up "
                  f"{median([r['import_s'] for r in runs]):.2f} s)")
            cpus = [r["cpu_to_folder_s"] for r in runs]
            print(f"  CPU of the TUI to first folder     {median(cpus):.2f} s (runs "
                  f"{', '.join(f'{s:.2f}' for s in cpus)}; floor {floor_cpu:.2f} s)")
            print(f"  ... to every visible thumbnail     {median(images):.2f} s")
            show("grid: next row painted", flat(r["grid_next_row_ms"] for r in runs),
                 "p95 < 50 ms")
            show("  of which key to cursor moved", flat(r["grid_key_to_change_ms"]
                                                        for r in runs), "-")
            show("preview: next photo, paced", flat(r["preview_paced_ms"] for r in runs),
                 "p50 < 150, p95 < 300 ms")
            show("preview: next photo, back-to-back",
                 flat(r["preview_back_to_back_ms"] for r in runs), "same")
            print(f"  RSS after the whole folder         "
                  f"{max(r['rss_after_whole_folder_mb'] for r in runs):.0f} MB (peak "
                  f"{max(r['maxrss_mb'] for r in runs):.0f} MB; target < 200 MB); "
                  f"encoded cache {max(r['encoded_cache_mb'] for r in runs):.0f} MB")
            pauses = flat(r["gc_full_ms"] for r in runs)
            print(f"  full garbage collections: {len(pauses)}, longest "
                  f"{max(pauses, default=0):.0f} ms; {runs[0]['gc_objects']:,} objects "
                  f"({runs[0]['gc_types'][:6]})")
            print(f"  mean encode {median([r['encode_mean_ms'] for r in runs]):.1f} ms, "
                  f"encoder CPU {median([r['encode_cpu_ms'] for r in runs]):.1f} ms a preview; "
                  f"{median([r['terminal_bytes'] for r in runs]) / 1e6:.1f} MB written to the "
                  f"terminal per run; load {os.getloadavg()[0]:.1f}")
    finally:
        d.stop()
        if args.reuse is None:
            shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
