"""A folder of 100,000 photos in the TUI's model: open it, scroll it, what it holds.

Measured against a real daemon over its socket, with the TUI's own loading code
(``lightbox.tui.model``), beside two baselines in the same run:

- **bare page**: one ``photos.search`` page of 120 rows (the smallest thing a client can
  ask for): the floor for "open";
- **load all** (what the TUI did before): every row of the folder in pages of 2,000 with the
  grid's fields, as ``a`` ("all photos below") did for a root;
- **virtualised** (now): ``folders.list`` ``around`` the photo to show (first paint), then
  the order in id-only pages (until the scroll bar is exact), then rows in batches of 1,000
  (``photos.get`` with ``ids``) wherever the view jumps; far rows are dropped.

Figures: open (first page in hand), order complete, a jump to a far position (rows for the
view in hand), the keyset-cursor page in the middle of the folder (``folders.list`` with a
cursor: must stay what it was), and the Python memory each approach holds (tracemalloc).
Three runs, medians and spread.

    .venv/bin/python benchmarks/large_folder.py [--photos 100000] [--runs 3] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import statistics
import sys
import time
import tracemalloc
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from catalog_fixtures import CatalogBuilder, synth
from harness import Daemon, median, scratch

from lightbox.common.client import Client
from lightbox.tui import model

SOURCE = "/nonexistent/lb-large-folder"


class Link:
    """What ``model`` needs of the TUI's link: ``call``."""

    def __init__(self, client: Client) -> None:
        self.client = client

    async def call(self, method: str, params: Any = None, timeout: float | None = None) -> Any:
        return await self.client.call(method, params, timeout=timeout or 60.0)


async def build(data: Path, n: int) -> int:
    b = await CatalogBuilder.open(f"sqlite+aiosqlite:///{data}/catalog.db")
    try:
        src = await b.source("big", SOURCE)
        fid = await b.folder(src, "all")
        rng = random.Random(5)
        for start in range(0, n, 20_000):
            await b.photos(fid, [synth(i, rng, name=f"DSC{i:06d}.JPG")
                                 for i in range(start, min(n, start + 20_000))])
        await b.finish()
        return fid
    finally:
        await b.close()


def held(fn: Any) -> tuple[Any, float]:
    """(result, MB of Python memory the result keeps)."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    out = fn()
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    return out, (after - before) / 1e6


async def one_run(endpoint: str, fid: int, n: int) -> dict[str, float]:
    out: dict[str, float] = {}
    async with Client(endpoint, timeout=60) as c:
        link = Link(c)
        await c.call("hello")
        # warm: the statements compiled, the pages of the index in the cache
        await c.call("folders.list", {"folder": fid, "limit": model.FIRST_PAGE})
        # bare page (median of 5)
        bare = []
        for _ in range(5):
            t = time.perf_counter()
            await c.call("photos.search", {"folder": fid, "recursive": False,
                                           "limit": model.FIRST_PAGE,
                                           "fields": model.SEARCH_FIELDS})
            bare.append((time.perf_counter() - t) * 1000)
        out["bare page ms"] = statistics.median(bare)
        # the keyset cursor in the middle of the folder
        doc = await c.call("folders.list", {"folder": fid, "limit": 2000, "fields": ["id"]})
        for _ in range(n // 4000):
            doc = await c.call("folders.list", {"folder": fid, "limit": 2000, "fields": ["id"],
                                                "cursor": doc["next_cursor"]})
        t = time.perf_counter()
        await c.call("folders.list", {"folder": fid, "limit": 200, "fields": model.FIELDS,
                                      "cursor": doc["next_cursor"]})
        out["cursor page ms"] = (time.perf_counter() - t) * 1000

        # load all (the old way)
        async def load_all() -> list[dict[str, Any]]:
            rows: list[dict[str, Any]] = []
            cursor = None
            while True:
                page = await c.call("folders.list", {"folder": fid, "limit": model.PAGE,
                                                     "fields": model.FIELDS, "cursor": cursor})
                rows += [model._slim(p) for p in page["photos"]]
                cursor = page["next_cursor"]
                if not cursor:
                    return rows

        gc.collect()
        tracemalloc.start()
        t = time.perf_counter()
        rows = await load_all()
        out["load all s"] = time.perf_counter() - t
        gc.collect()
        out["load all MB"] = tracemalloc.get_traced_memory()[0] / 1e6
        tracemalloc.stop()
        assert len(rows) == n, len(rows)
        del rows

        # virtualised (now)
        gc.collect()
        tracemalloc.start()
        seq = model.PhotoSeq(model.Query(fid))
        t = time.perf_counter()
        loader = model.pages(link, seq, around=None)
        await anext(loader)
        out["open ms"] = (time.perf_counter() - t) * 1000
        async for _ in loader:
            pass
        out["order s"] = time.perf_counter() - t
        assert len(seq) == n and seq.complete
        jumps = []
        rng = random.Random(1)
        for _ in range(10):
            at = rng.randrange(n)
            t = time.perf_counter()
            ids = seq.missing(at - model.ROWS_BATCH // 4, at + model.ROWS_BATCH * 3 // 4)
            await model.fetch_rows(link, seq, ids)
            seq.evict(at)
            jumps.append((time.perf_counter() - t) * 1000)
            assert seq.get(at) is not None
        out["jump ms"] = statistics.median(jumps)
        gc.collect()
        out["virtual MB"] = tracemalloc.get_traced_memory()[0] / 1e6
        tracemalloc.stop()
        out["rows held"] = float(len(seq.rows))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--photos", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="20,000 photos, one run")
    args = ap.parse_args()
    if args.quick:
        args.photos, args.runs = 20_000, 1
    with scratch("lblarge") as data:
        print(f"building a catalog with one folder of {args.photos:,} photos …", flush=True)
        fid = asyncio.run(build(data, args.photos))
        d = Daemon(data, '[library]\nreconcile_interval = 0\n').start()
        try:
            runs = [asyncio.run(one_run(d.endpoint, fid, args.photos))
                    for _ in range(args.runs)]
            rss = d.rss_mb()
        finally:
            d.stop()
    keys = list(runs[0])
    print(f"\n{args.photos:,} photos in one folder, {args.runs} run(s): median (min-max)")
    for k in keys:
        values = [r[k] for r in runs]
        print(f"  {k:<16} {median(values):>10.1f}  ({min(values):.1f}-{max(values):.1f})")
    med = {k: median([r[k] for r in runs]) for k in keys}
    print(f"\n  open / bare page            {med['open ms'] / med['bare page ms']:.2f}x")
    print(f"  open / load all             {med['open ms'] / 1000 / med['load all s']:.3f}x")
    print(f"  memory virtual / load all   {med['virtual MB'] / med['load all MB']:.2f}x")
    print(f"  daemon RSS after the runs   {rss:.0f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
