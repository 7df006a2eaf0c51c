"""Duplicate grouping at 1,000,000 distinct photos: the first grouping, an unchanged
catalog, and the update after 1,000 photos are indexed.

On a copy of the ``catalog_queries`` catalog (every photo its own content, dHashes
uniformly random: the worst case for near grouping), with the daemon's own ``DupeCache``
in this process (the same code ``photos.duplicates`` runs, without the socket):

- ``exact`` and ``near`` (threshold 6) the first time (one pass over the catalog serves
  both), again with the catalog unchanged (the fingerprint), and after 1,000 photos were
  added with a new ``indexed_at`` (one a copy of an existing photo), as the indexer does.

Baselines, same run: the same rows read with the stdlib ``sqlite3`` module (the floor of
any grouping that looks at every photo), and a bare Python loop over the same hashes that
only counts each one's bits (the floor of touching each hash once in Python). Targets:
first grouping < 10 s, an update after 1,000 new photos < 1 s, exact < 100 ms. The near
grouping's CPU (user + sys, this process and the worker process it spawns) is printed
beside its wall time: on a shared machine it is the steadier figure.

Exact groups: before each round ``--copies`` photos (default 20,000: 2 % of the library)
become copies of another, so there are groups to find; their raw SQL is timed three ways
beside the daemon's grouping (``exact_sql``: the old walk of the sha256 index, an
index-only GROUP BY over a partial index of ok photos, the maintained counts).

    .venv/bin/python benchmarks/duplicates.py --reuse DIR [--rounds 3] [--copies 20000]
        [--exact-only] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import multiprocessing
import os
import resource
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

import catalog_queries as cq
import sqlalchemy as sa
from catalog_fixtures import sha_of, synth

from lightbox.daemon.catalog import database, dupes, tables


def _cpu() -> float:
    """CPU seconds (user + sys) of this process and of its children that have exited and
    been reaped: the near grouping's worker process is counted once it is gone."""
    while multiprocessing.active_children():  # reaps the finished ones
        time.sleep(0.01)
    me = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


async def one_round(db: Path) -> dict[str, float]:
    out: dict[str, float] = {}
    engine = database.make_engine(f"sqlite+aiosqlite:///{db}")
    cache = dupes.DupeCache(engine)
    try:
        t = time.perf_counter()
        await cache.exact()
        out["exact, first"] = time.perf_counter() - t
        t, c = time.perf_counter(), _cpu()
        await cache.near(6)
        out["near, first (after exact: the same pass)"] = time.perf_counter() - t
        out["near, first: CPU (user + sys, this process and the worker)"] = _cpu() - c
        for key in ("exact", ("near", 6)):
            cache._entries[key].checked = 0  # past RECHECK: the fingerprint is read again
        cache.invalidate()
        t = time.perf_counter()
        await cache.exact()
        out["exact, unchanged"] = time.perf_counter() - t
        t = time.perf_counter()
        await cache.near(6)
        out["near, unchanged"] = time.perf_counter() - t
        async with engine.begin() as conn:
            fid, src = (await conn.execute(sa.text(
                "SELECT id, source_id FROM folders WHERE name = :n"), {"n": cq.BIG_NAME})).one()
            top = int(await conn.scalar(sa.text("SELECT max(id) FROM photos")))
            rows = [dict(synth(5_000_000 + i, name=f"new-{top + i}.jpg",
                               indexed_at=dt.datetime(2030, 1, 1)),
                         id=top + 1 + i, folder_id=fid, source_id=src) for i in range(1000)]
            rows[0]["sha256"] = sha_of(5)  # a copy of a photo already there
            await conn.execute(tables.photos.insert(), rows)
            await conn.execute(sa.text(
                "UPDATE folders SET photo_count = photo_count + 1000 WHERE id = :f"), {"f": fid})
        cache.invalidate()
        t = time.perf_counter()
        await cache.exact()
        out["exact, after 1,000 new photos"] = time.perf_counter() - t
        t, c = time.perf_counter(), _cpu()
        await cache.near(6)
        out["near, after 1,000 new photos"] = time.perf_counter() - t
        out["near, after 1,000 new photos: CPU (user + sys)"] = _cpu() - c
    finally:
        await cache.stop()
        await engine.dispose()
    return out


def make_copies(db: Path, copies: int) -> int:
    """Every (n // copies)-th photo becomes a byte-identical copy of the photo before it
    (through the photos table, so the maintained counts follow as they would); returns
    the exact groups there are then."""
    conn = sqlite3.connect(db)
    total = int(conn.execute("SELECT count(*) FROM photos").fetchone()[0])
    step = max(2, total // max(1, copies))
    conn.execute("UPDATE photos SET sha256 = (SELECT p.sha256 FROM photos p WHERE "
                 "p.id = photos.id - 1) WHERE id % ? = 0", (step,))
    conn.commit()
    groups = int(conn.execute("SELECT count(*) FROM photos_shas WHERE n >= 2").fetchone()[0])
    conn.close()
    return groups


def exact_sql(db: Path) -> dict[str, float]:
    """The exact groups' raw SQL three ways, with ``sqlite3`` on the same file: the walk of
    the sha256 index the grouping did before the maintained counts (the contents occurring
    twice, then their ok photos counted), the same walk over a partial index of ok photos
    only (an index-only GROUP BY; made here, on the copy), and the read of the maintained
    counts (what the daemon does now)."""
    conn = sqlite3.connect(db)
    out: dict[str, float] = {}
    t = time.perf_counter()
    shas = [r[0] for r in conn.execute(
        "SELECT sha256 FROM photos WHERE sha256 IS NOT NULL GROUP BY sha256 "
        "HAVING count(*) > 1")]
    for i in range(0, len(shas), 400):
        part = shas[i:i + 400]
        conn.execute(f"SELECT count(*), sha256 FROM photos WHERE status || '' = 'ok' AND "
                     f"sha256 IN ({','.join('?' * len(part))}) GROUP BY sha256 "
                     "HAVING count(*) > 1", part).fetchall()
    out["raw SQL: exact from the sha256 index (before)"] = time.perf_counter() - t
    conn.execute("CREATE INDEX bench_ok_sha ON photos (sha256) WHERE status = 'ok' "
                 "AND sha256 IS NOT NULL")
    t = time.perf_counter()
    conn.execute("SELECT sha256, count(*) FROM photos INDEXED BY bench_ok_sha WHERE "
                 "status = 'ok' AND sha256 IS NOT NULL GROUP BY sha256 HAVING count(*) > 1"
                 ).fetchall()
    out["raw SQL: exact from a partial index of ok photos (index-only GROUP BY)"] = \
        time.perf_counter() - t
    conn.execute("DROP INDEX bench_ok_sha")
    t = time.perf_counter()
    conn.execute("SELECT n, sha256 FROM photos_shas WHERE n >= 2").fetchall()
    out["raw SQL: exact from the maintained counts (now)"] = time.perf_counter() - t
    conn.close()
    return out


async def exact_round(db: Path) -> dict[str, float]:
    """The exact grouping alone, first and again (the DupeCache, as photos.duplicates)."""
    engine = database.make_engine(f"sqlite+aiosqlite:///{db}")
    cache = dupes.DupeCache(engine)
    out: dict[str, float] = {}
    try:
        t = time.perf_counter()
        await cache.exact()
        out["exact, first"] = time.perf_counter() - t
        cache.invalidate()
        t = time.perf_counter()
        await cache.exact()
        out["exact, again after a catalog event"] = time.perf_counter() - t
    finally:
        await cache.stop()
        await engine.dispose()
    return out


def baselines(db: Path) -> dict[str, float]:
    conn = sqlite3.connect(db)
    t = time.perf_counter()
    rows = conn.execute("SELECT id, sha256, phash FROM photos WHERE status = 'ok' AND "
                        "sha256 IS NOT NULL ORDER BY id").fetchall()
    read = time.perf_counter() - t
    conn.close()
    hashes = [r[2] & ((1 << 64) - 1) for r in rows if r[2] is not None]
    t = time.perf_counter()
    bits = 0
    for h in hashes:
        bits += h.bit_count()
    loop = time.perf_counter() - t
    return {"raw SQL: read every ok photo (sqlite3)": read,
            "bare Python loop over the hashes": loop}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reuse", type=Path, help="a catalog kept by catalog_queries --keep")
    ap.add_argument("--photos", type=int, default=1_000_000, help="when building")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--copies", type=int, default=20_000,
                    help="photos made copies of another before each round (exact groups)")
    ap.add_argument("--exact-only", action="store_true",
                    help="only the exact grouping and its raw SQL (no near grouping)")
    ap.add_argument("--quick", action="store_true", help="20,000 photos, 1 round")
    args = ap.parse_args()
    if args.quick:
        args.photos, args.rounds, args.reuse = 20_000, 1, None
    work = Path(tempfile.mkdtemp(prefix="lbd-", dir="/tmp"))
    try:
        src = work / "src.db"
        if args.reuse:
            shutil.copy2(args.reuse / "catalog.db", src)
        else:
            asyncio.run(cq.build(src, args.photos))
        results: dict[str, list[float]] = {}
        groups = 0
        loads = []
        for _ in range(args.rounds):
            db = work / "catalog.db"
            shutil.copy2(src, db)
            groups = make_copies(db, args.copies) if args.copies else 0
            loads.append(os.getloadavg()[0])
            figures = {**exact_sql(db), **(asyncio.run(exact_round(db)) if args.exact_only
                                           else {**baselines(db),
                                                 **asyncio.run(one_round(db))})}
            for k, v in figures.items():
                results.setdefault(k, []).append(v)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"duplicates, {args.photos if not args.reuse else 'reused'} catalog, {groups:,} "
          f"exact groups; {args.rounds} rounds (median, min-max); {os.cpu_count()} CPUs; "
          f"load {min(loads):.1f}-{max(loads):.1f}")
    print()
    print("| measure | median | min-max |")
    print("|---|---|---|")

    def fmt(v: float) -> str:
        return f"{v * 1000:.1f} ms" if v < 1 else f"{v:.2f} s"

    for k, vs in results.items():
        print(f"| {k} | {fmt(statistics.median(vs))} | {fmt(min(vs))}-{fmt(max(vs))} |")


if __name__ == "__main__":
    main()
