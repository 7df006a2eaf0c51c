"""``database.switch`` of a large SQLite catalog to PostgreSQL, then to MariaDB, and the read
side on each engine with the same catalog (issue 11).

Builds a synthetic SQLite catalog at the head revision (``catalog_queries.build``: folders
of 50 photos over 15 years plus one folder of exactly 500, bulk-loaded: about a minute per
million photos), starts the real daemon on it and:

1. measures ``folders.list`` of the 500-photo folder and a one-month ``photos.search`` by
   date over the socket (p50, p99 of sequential calls) on SQLite;
2. switches the live catalog to a fresh PostgreSQL database (``database.switch``, waiting
   for the job): rows per second of the whole job (test, migrate, copy, verify, sync,
   freeze, switch) and of its copy phase, and the write-freeze duration; then measures the
   same requests on PostgreSQL;
3. baseline, same run, same server: a bare bulk load of the same rows into another fresh,
   migrated PostgreSQL database with asyncpg ``copy_records_to_table``, table by table in
   the switch's order, rows read from the same SQLite file with ``sqlite3`` (no digests, no
   verification, no change capture);
4. switches on to MariaDB and measures the requests there.

    .venv/bin/python benchmarks/database_switch.py [--photos 1000000] [--calls 200]
        [--pg postgresql+asyncpg://postgres@127.0.0.1:5432/test]
        [--mysql mysql+aiomysql://root:@127.0.0.1:3306/test] [--catalog FILE]
        [--prefix lbbench] [--quick]

``--quick``: 20,000 photos and 50 calls (a minute or two), to see that it works.

``--catalog FILE``: a catalog built by an earlier run is copied from FILE instead of being
built again (the build is the slow part); FILE is written by the first run that names it.

Each run creates (and drops) its own databases next to the ones the URLs name, named
``<prefix>_<random>_*``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sqlite3
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from catalog_queries import BIG, Rpc, big_folder_id, build, measure, months, pct
from harness import Daemon


async def admin(url: str, *statements: str) -> None:
    from lightbox.daemon.catalog.database import make_engine

    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
            for s in statements:
                await conn.exec_driver_sql(s)
    finally:
        await engine.dispose()


async def migrate(url: str) -> None:
    from lightbox.daemon.catalog.database import Database

    db = Database(url)
    await db.start()
    await db.stop()


def sibling(url: str, name: str) -> str:
    return url.rsplit("/", 1)[0] + f"/{name}"


async def bare_copy(sqlite_path: Path, pg_url: str) -> tuple[int, float]:
    """Every catalog row from the SQLite file into ``pg_url`` with COPY; (rows, seconds)."""
    import asyncpg
    import sqlalchemy as sa

    from lightbox.daemon.catalog import copy
    from lightbox.daemon.catalog.database import Database, make_engine

    db = Database(pg_url)
    db._engine = make_engine(pg_url)
    await db.migrate()
    await db.stop()
    dsn = sa.engine.make_url(pg_url).set(drivername="postgresql").render_as_string(
        hide_password=False)
    conn = await asyncpg.connect(dsn)
    src = sqlite3.connect(sqlite_path)
    rows = 0
    started = time.perf_counter()
    try:
        async with conn.transaction():
            # Self-references (folders.parent_id) and order: what the switch defers, COPY
            # cannot; the bare load checks foreign keys at commit instead.
            await conn.execute("SET CONSTRAINTS ALL DEFERRED")
            # Rows the migrations seeded (settings_revision) come from the source too.
            await conn.execute("TRUNCATE " + ", ".join(p.name for p in copy.plan()))
            for plan in copy.plan():
                cols = [c.name for c in plan.table.columns]
                cur = src.execute(f"SELECT {', '.join(cols)} FROM {plan.name}")
                convert = [(i, f) for i, c in enumerate(plan.table.columns)
                           if (f := _converter(c.type)) is not None]
                while True:
                    batch = cur.fetchmany(20_000)
                    if not batch:
                        break
                    records = []
                    for r in batch:
                        row = list(r)
                        for i, f in convert:
                            if row[i] is not None:
                                row[i] = f(row[i])
                        records.append(row)
                    await conn.copy_records_to_table(plan.name, records=records,
                                                     columns=cols)
                    rows += len(records)
    finally:
        src.close()
        await conn.close()
    return rows, time.perf_counter() - started


def _converter(type_: Any) -> Any:
    """How SQLite's stored value of a column type becomes what asyncpg's COPY encodes
    (None: as it is), decided once per column."""
    import datetime as dt

    import sqlalchemy as sa

    try:
        generic = type_.as_generic()
    except NotImplementedError:
        generic = type_
    if isinstance(generic, sa.DateTime):
        return lambda v: dt.datetime.fromisoformat(v) if isinstance(v, str) else v
    if isinstance(type_, sa.JSON):
        return lambda v: v if isinstance(v, str) else __import__("json").dumps(v)
    if isinstance(generic, sa.Boolean):
        return bool
    return None


def requests(rpc: Rpc, big: int, calls: int) -> dict[str, tuple[float, float]]:
    windows = months()

    def folder(i: int) -> tuple[str, Any]:
        return "folders.list", {"folder": big, "limit": BIG}

    def search(i: int) -> tuple[str, Any]:
        a, b = windows[(i * 7) % len(windows)]
        return "photos.search", {"date_from": a, "date_to": b, "limit": 200, "sort": "taken"}

    out = {}
    for name, make in (("folders.list 500", folder), ("search month by date", search)):
        measure(rpc, 20, make)  # warm the caches of the engine just switched to
        lat, _ = measure(rpc, calls, make)
        out[name] = (pct(lat, 0.5), pct(lat, 0.99))
    return out


def switch(d: Daemon, url: str) -> dict[str, Any]:
    started = time.perf_counter()
    job = d.call("database.switch", {"url": url})["job"]
    done = d.wait_job(job)
    if done["state"] != "succeeded":
        raise SystemExit(f"switch failed: {done}")
    result: dict[str, Any] = done["result"]
    result["wall"] = time.perf_counter() - started
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=int, default=1_000_000)
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--prefix", default="lbbench", help="of the databases this run makes")
    ap.add_argument("--quick", action="store_true", help="20,000 photos, 50 calls")
    ap.add_argument("--pg", default="postgresql+asyncpg://postgres@127.0.0.1:5432/test")
    ap.add_argument("--mysql", default="mysql+aiomysql://root:@127.0.0.1:3306/test")
    ap.add_argument("--catalog", type=Path, help="reuse (or keep) the built SQLite catalog")
    args = ap.parse_args()
    if args.quick:
        args.photos, args.calls = 20_000, 50

    tag = f"{args.prefix}_{uuid.uuid4().hex[:8]}"
    pg_live, pg_bare = sibling(args.pg, f"{tag}_live"), sibling(args.pg, f"{tag}_bare")
    my_live = sibling(args.mysql, tag)
    asyncio.run(admin(args.pg, f"CREATE DATABASE {tag}_live", f"CREATE DATABASE {tag}_bare"))
    asyncio.run(admin(args.mysql, f"CREATE DATABASE {tag} CHARACTER SET utf8mb4"))
    data = Path(tempfile.mkdtemp(prefix="lbsw-", dir="/tmp"))
    d = Daemon(data, "[library]\nreconcile_interval = 0\nwatch = false\n"
               "[workers]\nprocesses = 1\n")
    try:
        db_path = data / "catalog.db"
        t0 = time.perf_counter()
        if args.catalog is not None and args.catalog.exists():
            shutil.copy2(args.catalog, db_path)
            asyncio.run(migrate(f"sqlite+aiosqlite:///{db_path}"))  # built by older code
            with sqlite3.connect(db_path) as conn:
                count = conn.execute("SELECT count(*) FROM photos").fetchone()[0]
                folders = conn.execute("SELECT count(*) FROM folders").fetchone()[0]
            info = {"photos": int(count), "folders": int(folders)}
        else:
            info = asyncio.run(build(db_path, args.photos))
            if args.catalog is not None:
                shutil.copy2(db_path, args.catalog)
        snapshot = data / "snapshot.db"  # what the bare load reads: the same rows
        shutil.copy2(db_path, snapshot)
        built = time.perf_counter() - t0
        print(f"built {info['photos']:,} photos, {info['folders']:,} folders in "
              f"{built:.0f} s", file=sys.stderr)
        loads = {"start": os.getloadavg()[0]}
        big = big_folder_id(db_path)
        d.start()
        rpc = Rpc(d.endpoint)
        reads = {"sqlite": requests(rpc, big, args.calls)}
        to_pg = switch(d, pg_live)
        loads["switch to PostgreSQL"] = os.getloadavg()[0]
        reads["postgresql"] = requests(rpc, big, args.calls)
        bare_rows, bare_seconds = asyncio.run(bare_copy(snapshot, pg_bare))
        loads["bare COPY"] = os.getloadavg()[0]
        to_my = switch(d, my_live)
        loads["switch to MariaDB"] = os.getloadavg()[0]
        reads["mariadb"] = requests(rpc, big, args.calls)
        rpc.close()
    finally:
        d.stop()
        shutil.rmtree(data, ignore_errors=True)
        asyncio.run(admin(args.pg, f"DROP DATABASE IF EXISTS {tag}_live WITH (FORCE)",
                          f"DROP DATABASE IF EXISTS {tag}_bare WITH (FORCE)"))
        asyncio.run(admin(args.mysql, f"DROP DATABASE IF EXISTS {tag}"))

    load = os.getloadavg()
    print(f"catalog: {info['photos']:,} photos (built in {built:.0f} s); {os.cpu_count()} "
          f"CPUs; load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} at the end; 1-min "
          "load after each step: " + ", ".join(f"{k} {v:.1f}" for k, v in loads.items()))
    print()
    print("| switch | rows | job s | rows/s (job) | rows/s (copy+verify) | freeze s |")
    print("|---|---|---|---|---|---|")

    def copy_verify(r: dict[str, Any]) -> float:
        phases = r.get("seconds") or {}
        return float(r["rows"] / max(1e-6, phases.get("copy", 0) + phases.get("verify", 0)))

    for name, r in (("SQLite -> PostgreSQL", to_pg), ("PostgreSQL -> MariaDB", to_my)):
        print(f"| {name} | {r['rows']:,} | {r['wall']:.1f} | {r['rows'] / r['wall']:,.0f} | "
              f"{copy_verify(r):,.0f} | {r['freeze_seconds']:.3f} |")
    bare = bare_rows / bare_seconds
    print(f"| bare COPY into PostgreSQL (asyncpg) | {bare_rows:,} | {bare_seconds:.1f} | "
          f"{bare:,.0f} | | |")
    print(f"\nswitch to PostgreSQL / bare COPY: {copy_verify(to_pg) / bare:.2f}x (copy+verify), "
          f"{(to_pg['rows'] / to_pg['wall']) / bare:.2f}x (whole job); "
          f"phases (s): {to_pg.get('seconds')}")
    print()
    print("| engine | folders.list 500 p50 ms | p99 ms | month search p50 ms | p99 ms |")
    print("|---|---|---|---|---|")
    for engine, r in reads.items():
        f50, f99 = r["folders.list 500"]
        s50, s99 = r["search month by date"]
        print(f"| {engine} | {f50:.2f} | {f99:.2f} | {s50:.2f} | {s99:.2f} |")


if __name__ == "__main__":
    main()
