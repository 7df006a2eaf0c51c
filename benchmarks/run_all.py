"""Run every benchmark in turn (``make bench``) and print their tables.

Each script compares against its own baseline measured in the same run; see the docstring
of each for what it measures and its target. Figures are recorded in docs/benchmarks.md.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
SCRIPTS = [
    ("control socket round trip (issue 2)", ["control_roundtrip.py"]),
    ("index throughput (issue 3 a)", ["index_throughput.py"]),
    ("rescan of an unchanged tree (issue 3 b)", ["rescan.py"]),
    ("catalog queries at 1,000,000 photos and daemon memory (issue 3 c, e)",
     ["catalog_queries.py"]),
    ("file created -> catalog event (issue 3 d)", ["watch_latency.py"]),
    ("text search at 1,000,000 photos (issue 13)", ["text_search.py"]),
    ("duplicate grouping at 1,000,000 photos (issue 13)", ["duplicates.py"]),
    ("terminal UI (issue 4)", ["tui_bench.py"]),
    ("pictures as text against chafa, preview bytes (issue 12)", ["symbols.py"]),
    ("confinement: cost of opening beneath the root (issue 7)", ["open_beneath.py"]),
    ("a folder of 100,000 photos in the TUI's model (issue 13, item 4)", ["large_folder.py"]),
]


def main() -> int:
    failed = 0
    for title, (script, *args) in SCRIPTS:
        path = HERE / script
        print(f"\n## {title}\n", flush=True)
        if not path.exists():
            print(f"(missing: {script})")
            failed += 1
            continue
        code = subprocess.call([sys.executable, str(path), *args])
        if code:
            print(f"{script} exited with {code}")
            failed += 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
