"""Daemon start with a 1,000,000-photo catalog: time from launching ``lightboxd`` to its
first ``hello`` answered (every component up: READY=1 is sent just before).

On copies of the ``catalog_queries`` catalog: the first start after an upgrade (SQLite
has no planner statistics yet, so the daemon runs ANALYZE) and later starts. Baseline,
same run: the interpreter importing the daemon's modules and exiting (the floor of any
start) and the same start on an empty catalog. Target: < 2 s to ready.

    .venv/bin/python benchmarks/daemon_start.py --reuse DIR [--rounds 3]
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
    ap.add_argument("--reuse", type=Path, required=True)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    out: dict[str, list[float]] = {}
    work = Path(tempfile.mkdtemp(prefix="lbs-", dir="/tmp"))
    try:
        for r in range(args.rounds):
            t = time.perf_counter()
            subprocess.run([sys.executable, "-c", "import lightbox.daemon.app"], check=True)
            out.setdefault("import the daemon's modules (floor)", []).append(
                time.perf_counter() - t)
            out.setdefault("empty catalog", []).append(start_once(work / f"e{r}", None))
            db = work / "catalog.db"
            shutil.copy2(args.reuse / "catalog.db", db)
            out.setdefault("1,000,000 photos, first start (ANALYZE)", []).append(
                start_once(work / f"f{r}", db))
            out.setdefault("1,000,000 photos, next start", []).append(
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
