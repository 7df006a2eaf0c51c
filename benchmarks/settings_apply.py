"""settings.set of one live key -> applied in the component, and settings.get beside hello.

For each round: a fresh lightboxd (SQLite catalog); a client subscribed to the ``settings``
topic sets ``library.debounce`` (alternating two values) N times and measures, per change,
the time from sending ``settings.set`` to receiving the watcher's own ``settings.applied``
event for that revision (the change is stored in one transaction with its audit entry,
applied, then announced), and the ``settings.set`` reply time. In the same run and the same
connection: ``hello`` (the baseline: the cheapest method) and ``settings.get`` of every
setting, N times each, interleaved. Target (issue 8): p95 of set -> applied < 100 ms.

    .venv/bin/python benchmarks/settings_apply.py [--changes 200] [--reads 500] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from harness import Daemon, percentile

from lightbox.common.client import Client


async def measure(endpoint: str, changes: int, reads: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"applied": [], "set": [], "hello": [], "get": []}
    async with Client(endpoint, timeout=30) as c:
        await c.connect()
        sub = await c.subscribe(["settings"])
        await asyncio.sleep(0.3)  # the subscription reaches the PUB socket
        for i in range(changes):
            t0 = time.perf_counter()
            reply = await c.call("settings.set", {"patch": {
                "library.debounce": 0.5 if i % 2 else 0.6}})
            t_reply = time.perf_counter()
            while True:
                ev = await sub.next(timeout=10)
                data = ev["data"]
                if ev["type"] == "applied" and data.get("component") == "watcher" \
                        and data.get("revision") == reply["revision"]:
                    break
            out["applied"].append((time.perf_counter() - t0) * 1000)
            out["set"].append((t_reply - t0) * 1000)
        sub.close()
        for _ in range(reads):
            t0 = time.perf_counter()
            await c.call("hello", {"client": "bench"})
            t1 = time.perf_counter()
            await c.call("settings.get")
            t2 = time.perf_counter()
            out["hello"].append((t1 - t0) * 1000)
            out["get"].append((t2 - t1) * 1000)
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--changes", type=int, default=200)
    ap.add_argument("--reads", type=int, default=500)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    print(f"load average before: {os.getloadavg()}")
    rounds: list[dict[str, tuple[float, float]]] = []
    for n in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="lb-bench-settings-") as tmp:
            d = Daemon(Path(tmp))
            d.start()
            try:
                got = asyncio.run(measure(d.endpoint, args.changes, args.reads))
            finally:
                d.stop()
        row = {k: (percentile(v, 0.5), percentile(v, 0.95)) for k, v in got.items()}
        rounds.append(row)
        print(f"round {n + 1}: " + "  ".join(f"{k} p50 {a:.2f} p95 {b:.2f} ms"
                                             for k, (a, b) in row.items()), flush=True)
    print(f"load average after: {os.getloadavg()}")
    print("\n| measurement | p50 ms (median of rounds) | p95 ms (median) | p95 spread |")
    print("|---|---|---|---|")
    names = {"hello": "`hello` (baseline)", "get": "`settings.get` of every setting",
             "set": "`settings.set` reply", "applied": "`settings.set` -> watcher's "
             "`settings.applied` event"}
    for key in ("hello", "get", "set", "applied"):
        p50 = statistics.median(r[key][0] for r in rounds)
        p95s = [r[key][1] for r in rounds]
        print(f"| {names[key]} | {p50:.2f} | {statistics.median(p95s):.2f} | "
              f"{min(p95s):.2f}-{max(p95s):.2f} |")


if __name__ == "__main__":
    main()
