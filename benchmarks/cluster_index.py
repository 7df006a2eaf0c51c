"""Two daemons on one PostgreSQL catalog indexing the same photos, beside one daemon (issue 11).

Makes ``--count`` sample photos (``lightbox.daemon.media.samples``), then, ``--rounds`` times
and alternating: one daemon on a fresh PostgreSQL database adds the folder as a root and
indexes it (``roots.add`` to the last photo ``ok``); then two daemons (own data dirs and
thumbnail caches, one catalog) do the same, the root added through the first, the second
taking its share of the pending photos through ``index_claims``. Each daemon has
``--workers`` worker processes. Reported: seconds and photos/s, medians over the rounds with
the spread, and the load average (the target of 1.7x assumes each daemon has cores of its
own; on a shared 2-core machine the two daemons compete for the same two cores).

    .venv/bin/python benchmarks/cluster_index.py [--count 2000] [--rounds 3] [--workers 1]
        [--pg postgresql+asyncpg://postgres@127.0.0.1:5432/test]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))

from database_switch import admin, sibling
from harness import Daemon, median


def run(pg: str, photos: Path, count: int, daemons: int, workers: int) -> float:
    name = f"lbbench_{uuid.uuid4().hex[:8]}"
    asyncio.run(admin(pg, f"CREATE DATABASE {name}"))
    url = sibling(pg, name)
    dirs = [Path(tempfile.mkdtemp(prefix="lbci-", dir="/tmp")) for _ in range(daemons)]
    config = (f'[database]\nurl = "{url}"\nlease_ttl = 5\n[library]\nreconcile_interval = 0\n'
              f"watch = false\n[workers]\nprocesses = {workers}\n")
    ds = [Daemon(d, config) for d in dirs]
    try:
        for d in ds:
            d.start()
        deadline = time.monotonic() + 60
        while len(ds) > 1 and any(d.call("system.status")["components"]["cluster"]["daemons"]
                                  < len(ds) for d in ds):
            if time.monotonic() > deadline:
                raise SystemExit("the daemons did not see each other")
            time.sleep(0.1)
        started = time.perf_counter()
        ds[0].call("roots.add", {"path": str(photos), "name": "bench"})
        while True:
            roots: list[dict[str, Any]] = ds[0].call("roots.list")["roots"]
            if roots and roots[0]["photos"] == count and roots[0]["pending"] == 0:
                break
            time.sleep(0.05)
        return time.perf_counter() - started
    finally:
        for d in ds:
            d.stop()
        for p in dirs:
            shutil.rmtree(p, ignore_errors=True)
        asyncio.run(admin(pg, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--count", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--megapixels", type=float, default=1.0)
    ap.add_argument("--pg", default="postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    args = ap.parse_args()
    photos = Path(tempfile.mkdtemp(prefix="lbcp-", dir="/tmp"))
    try:
        subprocess.run([sys.executable, "-m", "lightbox.daemon.media.samples", str(photos),
                        "--count", str(args.count), "--megapixels", str(args.megapixels)],
                       check=True, stdout=subprocess.DEVNULL)
        count = sum(1 for p in photos.rglob("*") if p.is_file())
        times: dict[int, list[float]] = {1: [], 2: []}
        loads = []
        for _ in range(args.rounds):
            for n in (1, 2):
                times[n].append(run(args.pg, photos, count, n, args.workers))
                loads.append(os.getloadavg()[0])
    finally:
        shutil.rmtree(photos, ignore_errors=True)
    print(f"{count} photos of {args.megapixels} MP, {args.workers} worker(s) per daemon, "
          f"{os.cpu_count()} CPUs, load average during the runs {min(loads):.1f}-"
          f"{max(loads):.1f}")
    print()
    print("| daemons | median s | spread s | photos/s |")
    print("|---|---|---|---|")
    for n, t in times.items():
        print(f"| {n} | {median(t):.1f} | {min(t):.1f}-{max(t):.1f} | {count / median(t):.0f} |")
    print(f"\ntwo daemons / one: {median(times[1]) / median(times[2]):.2f}x")


if __name__ == "__main__":
    main()
