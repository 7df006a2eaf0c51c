"""Run every benchmark in turn (``make bench``) and print their tables.

Each script compares against its own baseline measured in the same run; see the docstring
of each for what it measures and its target. Figures are recorded in docs/benchmarks.md.
``--quick`` runs each at a small size (about a minute each): a first look on a new machine.

    .venv/bin/python benchmarks/run_all.py [--quick] [--only NAME]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
# (title, script and its arguments, the arguments --quick adds: a size that finishes in
# about a minute, for a first look or a re-run on another machine)
SCRIPTS: list[tuple[str, list[str], list[str]]] = [
    ("control socket round trip (issue 2)", ["control_roundtrip.py"],
     ["--requests", "1000"]),
    ("index throughput (issue 3 a)", ["index_throughput.py"], ["--count", "40"]),
    ("rescan of an unchanged tree (issue 3 b)", ["rescan.py"],
     ["--files", "20000", "--dirs", "200"]),
    ("catalog queries at 1,000,000 photos and daemon memory (issue 3 c, e)",
     ["catalog_queries.py"], ["--photos", "50000", "--calls", "200", "--rounds", "1"]),
    ("file created -> catalog event (issue 3 d)", ["watch_latency.py"], ["--samples", "10"]),
    ("text search at 1,000,000 photos (issue 13)", ["text_search.py"], ["--quick"]),
    ("duplicate grouping at 1,000,000 photos (issue 13)", ["duplicates.py"], ["--quick"]),
    ("daemon start at 1,000,000 photos (issue 13)", ["daemon_start.py"], ["--quick"]),
    ("terminal UI (issue 4)", ["tui_bench.py"],
     ["--photos", "10000", "--runs", "1", "--moves", "50", "--previews", "10"]),
    ("pictures as text against chafa, preview bytes (issue 12)", ["symbols.py"], ["--quick"]),
    ("confinement: cost of opening beneath the root (issue 7)", ["open_beneath.py"],
     ["--quick"]),
    ("a folder of 100,000 photos in the TUI's model (issue 13, item 4)", ["large_folder.py"],
     ["--quick"]),
    ("buckets: unchanged sync, processing (issue 9)", ["s3_sync.py"], ["--quick"]),
]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true",
                    help="small sizes: every script in about a minute (figures not comparable "
                    "with the recorded ones, only with each other)")
    ap.add_argument("--only", help="run the scripts whose file name contains this")
    args = ap.parse_args()
    failed = 0
    print(f"load average at start: {os.getloadavg()[0]:.2f} ({os.cpu_count()} CPUs)")
    for title, (script, *rest), quick in SCRIPTS:
        if args.only and args.only not in script:
            continue
        path = HERE / script
        print(f"\n## {title}\n", flush=True)
        if not path.exists():
            print(f"(missing: {script})")
            failed += 1
            continue
        code = subprocess.call([sys.executable, str(path), *rest, *(quick if args.quick else [])])
        if code:
            print(f"{script} exited with {code}")
            failed += 1
        print(f"(load average after it: {os.getloadavg()[0]:.2f})", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
