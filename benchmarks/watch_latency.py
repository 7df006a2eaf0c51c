"""File created -> `catalog.added` on the socket (issue 3, benchmark d), beside raw inotify.

A photo is copied into a watched root (written whole, then renamed into place as a copy tool
would, or written in place), and the time until the daemon publishes the `catalog` event
naming it is measured. Baseline in the same run: the time until a bare watchdog observer in
this process sees the same file. The daemon's figure includes its debounce (1 s by
default: a file must be quiet that long before it is read).

Target: p95 < 2 s.

    .venv/bin/python benchmarks/watch_latency.py [--samples 40] [--debounce 1.0]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import sys
import threading
import time
from pathlib import Path

from watchdog.events import FileSystemEvent, FileSystemEventHandler
from watchdog.observers import Observer

sys.path.insert(0, str(Path(__file__).parent))
from harness import Daemon, median, percentile, scratch

from lightbox.common.client import Client
from lightbox.daemon.media.samples import make_photo


class Seen(FileSystemEventHandler):
    def __init__(self) -> None:
        self.times: dict[str, float] = {}
        self.lock = threading.Lock()

    def on_any_event(self, event: FileSystemEvent) -> None:
        name = Path(str(event.src_path)).name
        with self.lock:
            self.times.setdefault(name, time.perf_counter())


async def measure(d: Daemon, root: Path, samples: int, payload: bytes,
                  seen: Seen) -> tuple[list[float], list[float]]:
    daemon_lat, inotify_lat = [], []
    async with Client(d.endpoint, timeout=30) as c:
        sub = await c.subscribe(["catalog"])
        await asyncio.sleep(0.5)
        for i in range(samples):
            name = f"photo_{i:04d}.jpg"
            t0 = time.perf_counter()
            (root / name).write_bytes(payload)
            while True:
                ev = await sub.next(30)
                if ev["type"] == "added" and ev["data"]["count"] >= 1:
                    t1 = time.perf_counter()
                    break
            daemon_lat.append(t1 - t0)
            with seen.lock:
                inotify_lat.append(seen.times.get(name, float("nan")) - t0)
            await asyncio.sleep(0.3)
        sub.close()
    return daemon_lat, inotify_lat


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--samples", type=int, default=40)
    ap.add_argument("--debounce", type=float, default=1.0)
    args = ap.parse_args()
    buf = io.BytesIO()
    make_photo(1600, 1200, seed=3).save(buf, "JPEG", quality=90)
    with scratch("lblat") as tmp:
        root = tmp / "photos"
        root.mkdir()
        d = Daemon(tmp / "data", f"[library]\ndebounce = {args.debounce}\n"
                   "reconcile_interval = 0\n").start()
        observer = Observer()
        seen = Seen()
        observer.schedule(seen, str(root))
        observer.start()
        try:
            job = d.call("roots.add", {"path": str(root)})["job"]
            d.wait_job(job)
            time.sleep(1.0)  # the watch is set up just after the root is added
            lat, raw = asyncio.run(measure(d, root, args.samples, buf.getvalue(), seen))
        finally:
            observer.stop()
            observer.join()
            d.stop()
    ms = [x * 1000 for x in lat]
    raw_ms = [x * 1000 for x in raw]
    print(f"{args.samples} files, debounce {args.debounce:g} s, "
          f"{len(buf.getvalue()) // 1024} KiB each")
    print("| path | p50 ms | p95 ms | max ms |")
    print("|---|---|---|---|")
    print(f"| inotify event seen by a bare watchdog observer | {median(raw_ms):.1f} | "
          f"{percentile(raw_ms, 0.95):.1f} | {max(raw_ms):.1f} |")
    print(f"| file written -> catalog.added on the socket | {median(ms):.0f} | "
          f"{percentile(ms, 0.95):.0f} | {max(ms):.0f} |")
    print(f"daemon latency minus debounce: p50 {median(ms) - args.debounce * 1000:.0f} ms")


if __name__ == "__main__":
    main()
