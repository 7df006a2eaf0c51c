"""Daemon start with a 1,000,000-photo catalog: time from launching ``lightboxd`` to its
first ``hello`` answered (every component up: READY=1 is sent just before).

On copies of the ``catalog_queries`` catalog: the first start after an upgrade (SQLite
has no planner statistics yet: the daemon samples them before ready and runs the full
ANALYZE after) and later starts. Baseline,
same run: the interpreter importing the daemon's modules and exiting (the floor of any
start) and the same start on an empty catalog. Target: < 2 s to ready.

    .venv/bin/python benchmarks/daemon_start.py [--reuse DIR | --photos N] [--rounds 3] [--quick]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import Daemon


def start_once(data: Path, db: Path | None) -> float:
    config = "" if db is None else f'[database]\nurl = "sqlite+aiosqlite:///{db}"\n'
    d = Daemon(data, config=config)
    t = time.perf_counter()
    try:
        d.start(timeout=300)
        return time.perf_counter() - t
    finally:
        d.stop()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reuse", type=Path, help="a catalog kept by catalog_queries --keep")
    ap.add_argument("--photos", type=int, default=1_000_000, help="when building")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="20,000 photos, 1 round")
    args = ap.parse_args()
    if args.quick:
        args.photos, args.rounds, args.reuse = 20_000, 1, None
    out: dict[str, list[float]] = {}
    work = Path(tempfile.mkdtemp(prefix="lbs-", dir="/tmp"))
    try:
        if args.reuse is None:
            import asyncio

            import catalog_queries as cq
            args.reuse = work / "built"
            args.reuse.mkdir()
            asyncio.run(cq.build(args.reuse / "catalog.db", args.photos))
        import sqlite3

        with sqlite3.connect(args.reuse / "catalog.db") as conn:
            n = int(conn.execute("SELECT count(*) FROM photos").fetchone()[0])
        for r in range(args.rounds):
            t = time.perf_counter()
            subprocess.run([sys.executable, "-c", "import lightbox.daemon.app"], check=True)
            out.setdefault("import the daemon's modules (floor)", []).append(
                time.perf_counter() - t)
            out.setdefault("empty catalog", []).append(start_once(work / f"e{r}", None))
            db = work / "catalog.db"
            shutil.copy2(args.reuse / "catalog.db", db)
            with sqlite3.connect(db) as conn:  # as a catalog that never had a daemon
                conn.execute("DROP TABLE IF EXISTS sqlite_stat1")
            out.setdefault(f"{n:,} photos, first start (no statistics)", []).append(
                start_once(work / f"f{r}", db))
            out.setdefault(f"{n:,} photos, next start", []).append(
                start_once(work / f"n{r}", db))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"daemon start; {args.rounds} rounds (median, min-max); {os.cpu_count()} CPUs; "
          f"load {os.getloadavg()[0]:.1f}")
    print()
    print("| start | median s | min-max s |")
    print("|---|---|---|")
    for k, v in out.items():
        print(f"| {k} | {statistics.median(v):.2f} | {min(v):.2f}-{max(v):.2f} |")


if __name__ == "__main__":
    main()
