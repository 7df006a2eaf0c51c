"""Catalog read side at 1,000,000 photos: folders.list and a date-range photos.search.

Builds a synthetic SQLite catalog (about 20,000 folders of 50 photos over 15 years, plus one
folder of exactly 500; makes and models from a small set) with ``tests/catalog_fixtures``,
starts the real daemon on it (a subprocess with ``--data-dir``) and measures over the control
socket with a plain DEALER client doing sequential calls:

- ``folders.list`` of the 500-photo folder, ``limit=500`` (sort by name);
- ``photos.search`` of a one-month window (a different month each call), ``limit=200``,
  sorted by date (the keyset on the ``taken_at`` index); and the same sorted by name.

Baseline, same run: the exact SQL statements the daemon runs for one such request (captured
in-process from SQLAlchemy with their parameters) replayed with the stdlib ``sqlite3`` module
on the same file, rows fetched. The ratio socket+daemon / raw SQL is what the daemon adds:
JSON-RPC, validation, row -> JSON, the ipc hop. Also reported: daemon RSS (VmRSS) idle after
start and after the runs. Targets: p50 < 10 ms, p99 < 50 ms, RSS < 300 MB.

    .venv/bin/python benchmarks/catalog_queries.py [--photos 1000000] [--calls 300]
        [--rounds 3] [--keep DIR] [--reuse DIR] [--during-scan ROOT]

``--keep DIR`` builds the catalog in DIR and leaves it there; ``--reuse DIR`` measures a
catalog built earlier with ``--keep`` (the build takes a few minutes). ``--during-scan ROOT``
adds ROOT as a root, starts ``library.scan`` on it and measures while the scan (and the
indexing it queues: hashes, EXIF, thumbnails in the worker processes) runs; with
``--reuse`` it works on a copy of the catalog. A ROOT for it:
``python -m lightbox.daemon.media.samples /tmp/scanroot --count 3000 --megapixels 2``.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import os
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import zmq

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from catalog_fixtures import CAMERAS, CatalogBuilder, sha_of, signed64

FAKE_ROOT = "/nonexistent/lightbox-bench-photos"  # offline: the daemon leaves it alone
BIG = 500
BIG_NAME = "2017-07-14 the big one"
# What a thumbnail grid needs of each photo.
GRID_FIELDS = ["name", "thumbs", "taken_at", "width", "height", "orientation", "status"]
YEARS = 15
START = dt.datetime(2010, 1, 1)


# -- the catalog ----------------------------------------------------------------------------
# Folder names and lenses: what text search looks for. File names count up per camera and
# wrap at 10,000, as cameras' do; so a number like 4242 is in about one photo in 10,000.
PLACES = ("lisbon", "porto", "paris", "berlin", "kyoto", "oslo", "rome", "vienna", "prague",
          "madrid", "dublin", "zurich", "athens", "cairo", "lima", "quito", "hanoi", "seoul",
          "sydney", "denver", "boston", "austin", "toronto", "havana", "nairobi", "dakar",
          "tunis", "riga", "tallinn", "vilnius", "krakow", "budapest", "sofia", "split",
          "bergen", "malmo", "ghent", "bruges", "lyon", "nice")
EVENTS = ("birthday", "wedding", "hike", "trip", "weekend", "concert", "garden", "beach",
          "school", "party", "snow", "market")
PREFIXES = ("IMG_", "DSC_", "DSCF", "_MG_", "P10", "GOPR")
LENSES = ("EF24-70mm f/2.8L II USM", "AF-S NIKKOR 50mm f/1.8G", None, "XF35mmF1.4 R",
          "FE 85mm F1.8", None)


def folder_name(i: int, day: dt.datetime) -> str:
    return f"{day:%Y}/{day:%Y-%m-%d} {PLACES[(i * 7) % len(PLACES)]} " \
           f"{EVENTS[(i * 5) % len(EVENTS)]} {i}"


PER = 50  # photos per folder, besides the big one


def layout(total: int) -> tuple[list[str], list[int]]:
    """The folders (relative paths; the 500-photo one last) and how many photos each has."""
    n_folders = max(1, (total - BIG) // PER)
    days = YEARS * 365
    rels = [folder_name(i, START + dt.timedelta(days=i * days // n_folders))
            for i in range(n_folders)]
    counts = [PER] * n_folders + [BIG]
    counts[0] += total - BIG - PER * n_folders
    return [*rels, f"2017/{BIG_NAME}"], counts


class Rows:
    """Photo rows of the synthetic library, folder by folder, in one deterministic order
    (both builds below produce the same catalog)."""

    def __init__(self) -> None:
        self.rng = random.Random(1)
        self.n = 0
        self.counters = [0] * len(CAMERAS)

    def folder(self, fid: int, rel: str, count: int) -> list[dict[str, Any]]:
        rng = self.rng
        day = dt.datetime.strptime(rel.split("/")[1][:10], "%Y-%m-%d")
        rows = []
        cam = (fid * 5) % len(CAMERAS)  # one camera per folder, as on a trip
        make, model = CAMERAS[cam]
        for _j in range(count):
            self.n += 1
            n = self.n
            self.counters[cam] += 1
            taken = day + dt.timedelta(seconds=rng.randrange(86400))
            rows.append({
                "name": f"{PREFIXES[cam]}{self.counters[cam] % 10000:04d}.JPG",
                "size": 2_000_000 + rng.randrange(8_000_000),
                "mtime_ns": 1_500_000_000_000_000_000 + n, "inode": n, "status": "ok",
                "error": None, "sha256": sha_of(n), "mime": "image/jpeg", "format": "JPEG",
                "width": 4000, "height": 3000, "orientation": 1,
                "taken_at": None if rng.random() < 0.02 else taken, "taken_offset": 120,
                "make": make, "model": model, "lens": LENSES[cam], "exposure_time": 0.004,
                "f_number": 2.8, "iso": 100, "focal_length": 26.0,
                "gps_lat": 45.0 if n % 3 == 0 else None, "gps_lon": 7.0 if n % 3 == 0 else None,
                "gps_alt": None, "phash": signed64(rng.getrandbits(64)), "thumbs": 3,
                "first_seen": START, "indexed_at": START + dt.timedelta(seconds=n),
                "missing_since": None})
        return rows


def gen_columns() -> list[str]:
    """The columns ``Rows`` fills."""
    return list(Rows().folder(1, "2010/2010-01-01 x", 1)[0])


async def build(db_path: Path | str, total: int) -> dict[str, Any]:
    """A catalog of ``total`` photos at the head revision, at ``db_path`` (a SQLite file:
    bulk-loaded, see ``build_sqlite``) or a database URL (loaded before the text index,
    then migrated to head, see ``build_server``)."""
    if isinstance(db_path, str):
        return await build_server(db_path, total)
    return await build_sqlite(Path(db_path), total)


async def build_sqlite(db_path: Path, total: int) -> dict[str, Any]:
    """The head-revision schema first (every migration), then the rows straight into the
    file with ``sqlite3`` executemany and the photo table's indexes and text-index triggers
    set aside: the indexes are created again afterwards (one sort each), the trigram index
    rebuilt once (``'rebuild'``); the other triggers run per row (the counts they keep).
    ``name_key`` is computed here as the daemon's insert does (``types.natural_key``),
    values are encoded by the columns' own SQLAlchemy types. A few minutes for 1,000,000
    photos where inserting through the text triggers took hours. Then ``ANALYZE``, as the
    daemon's first start on such a catalog would."""
    import sqlalchemy as sa
    from sqlalchemy.dialects import sqlite as sqlite_dialect

    from lightbox.daemon.catalog import tables
    from lightbox.daemon.catalog.types import natural_key

    t0 = time.perf_counter()
    b = await CatalogBuilder.open(f"sqlite+aiosqlite:///{db_path}")  # at head
    src = await b.source("bench", FAKE_ROOT)
    rels, counts = layout(total)
    ids = await b.folders_at(src, rels)
    t_folders = time.perf_counter()
    dialect = sqlite_dialect.dialect()
    # The columns the rows give, the ids and name_key; the others keep their server
    # default or NULL (a NOT NULL column without a default fails the insert loudly).
    given = {*gen_columns(), "id", "folder_id", "source_id", "name_key"}
    columns = [c for c in tables.photos.columns if c.name in given]
    encode = [c.type.bind_processor(dialect) for c in columns]
    names = [c.name for c in columns]
    insert = (f"INSERT INTO photos ({', '.join(names)}) "
              f"VALUES ({', '.join('?' for _ in names)})")
    con = sqlite3.connect(db_path, isolation_level=None)
    try:
        con.execute("PRAGMA synchronous = OFF")
        con.execute("PRAGMA cache_size = -200000")
        # The photo table's indexes and the text index's triggers (its 'rebuild' below does
        # their work at once); other triggers (photos_shas' counts) stay and run per row.
        aside = con.execute(
            "SELECT type, name, sql FROM sqlite_master WHERE tbl_name = 'photos' AND "
            "sql IS NOT NULL AND (type = 'index' OR (type = 'trigger' AND "
            "name LIKE 'photos^_text^_%' ESCAPE '^'))").fetchall()
        assert any(k == "trigger" for k, _n, _s in aside), "the text triggers were renamed"
        for kind, name, _sql in aside:
            con.execute(f"DROP {kind.upper()} {name}")
        gen = Rows()
        pid = b.next_photo
        pending: list[tuple[Any, ...]] = []

        def flush() -> None:
            con.execute("BEGIN")
            con.executemany(insert, pending)
            con.execute("COMMIT")
            pending.clear()

        for fid, rel, count in zip(ids, rels, counts, strict=True):
            f = b.folders[fid]
            for row in gen.folder(fid, rel, count):
                row.update(id=pid, folder_id=fid, source_id=f.source_id,
                           name_key=natural_key(row["name"]))
                pid += 1
                f.photos += 1
                f.bytes += row["size"]
                pending.append(tuple(v if fn is None or v is None else fn(v)
                                     for fn, v in zip(encode, (row[n] for n in names),
                                                      strict=True)))
            if len(pending) >= 50_000:
                flush()
        if pending:
            flush()
        b.next_photo = pid
        t_rows = time.perf_counter()
        for _kind, _name, sql in sorted(aside, key=lambda a: a[0]):  # indexes, then triggers
            con.execute(sql)
        con.execute("INSERT INTO photos_text(photos_text) VALUES ('rebuild')")
        # The empty catalog's start left statistics of empty tables, which the daemon
        # would keep (it analyzes only a catalog without any): the planner needs real ones.
        con.execute("ANALYZE")
    finally:
        con.close()
    await b.finish()
    async with b.engine.connect() as conn:  # the daemon checks the file is at head
        assert (await conn.scalar(sa.text("SELECT count(*) FROM photos"))) == gen.n
    await b.close()
    return {"seconds": time.perf_counter() - t0, "folder_seconds": t_folders - t0,
            "text_index_seconds": time.perf_counter() - t_rows,
            "photos": gen.n, "folders": len(rels), "big_folder": ids[-1]}


async def build_server(url: str, total: int) -> dict[str, Any]:
    """On PostgreSQL or MariaDB: rows first at the revision before the text index, whose
    migration then indexes them all at once (inserting through its triggers is 20x slower);
    the later migrations fill ``name_key`` (0010) and the rest."""
    import sqlalchemy as sa
    from alembic.script import ScriptDirectory

    from lightbox.daemon.catalog.database import alembic_config

    t0 = time.perf_counter()
    before_text = ScriptDirectory.from_config(alembic_config()).get_revision(
        "0008_text_index").down_revision
    b = await CatalogBuilder.open(url, revision=str(before_text))
    src = await b.source("bench", FAKE_ROOT)
    rels, counts = layout(total)
    ids = await b.folders_at(src, rels)
    t_folders = time.perf_counter()
    gen = Rows()
    batch: list[tuple[int, list[dict[str, Any]]]] = []
    for fid, rel, count in zip(ids, rels, counts, strict=True):
        batch.append((fid, gen.folder(fid, rel, count)))
        if sum(len(r) for _, r in batch) >= 50_000:
            for f, r in batch:
                await b.photos(f, r)
            batch = []
    for f, r in batch:
        await b.photos(f, r)
    await b.finish()
    t_rows = time.perf_counter()
    await upgrade_server(b, url)
    if not url.startswith("sqlite"):  # what autovacuum would do soon: plans need statistics
        async with b.engine.connect() as conn:
            if url.startswith("postgresql"):
                # VACUUM too (outside a transaction): the visibility map lets the folder
                # streams' index-only scans skip the heap, as on a catalog autovacuum saw.
                await conn.execution_options(isolation_level="AUTOCOMMIT")
                await conn.execute(sa.text("VACUUM ANALYZE"))
            else:
                await conn.execute(sa.text("ANALYZE TABLE photos, folders"))
                await conn.commit()
    await b.close()
    return {"seconds": time.perf_counter() - t0, "folder_seconds": t_folders - t0,
            "text_index_seconds": time.perf_counter() - t_rows,
            "photos": gen.n, "folders": len(rels), "big_folder": ids[-1]}


# What 0008_text_index and 0016_perf ran on MariaDB to fill their FULLTEXT side tables (every
# row through the triggers, twice: about 800 s at 1,000,000 photos); 0042_mysql_grams drops
# those tables and fills its trigram tables from the rows in one statement, so a catalog
# built here skips them and ends in the same state.
_FULLTEXT_FILLS = ("UPDATE photos SET name = name", "UPDATE folders SET path = path")


async def upgrade_server(b: CatalogBuilder, url: str) -> None:
    """Migrate the bulk-loaded catalog to head; on MariaDB/MySQL without the FULLTEXT
    fills that a later migration throws away (``_FULLTEXT_FILLS``)."""
    if not url.startswith("mysql"):
        await b.upgrade()
        return
    from unittest import mock

    from alembic import op

    real = op.execute

    def execute(sql: Any, *args: Any, **kw: Any) -> Any:
        if isinstance(sql, str) and sql in _FULLTEXT_FILLS:
            return None
        return real(sql, *args, **kw)

    with mock.patch.object(op, "execute", execute):
        await b.upgrade()


def big_folder_id(db_path: Path) -> int:
    with sqlite3.connect(db_path) as conn:
        row = conn.execute("SELECT id FROM folders WHERE name = ?", (BIG_NAME,)).fetchone()
        return int(row[0])


def months() -> list[tuple[str, str]]:
    out = []
    for y in range(START.year, START.year + YEARS):
        for m in range(1, 13):
            out.append((f"{y}-{m:02d}-01", f"{y}-{m:02d}-28"))
    return out


# -- the daemon -----------------------------------------------------------------------------
def start_daemon(data: Path) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIGHTBOX_")}
    log = open(data / "daemon.log", "ab")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "lightbox.daemon", "--data-dir", str(data),
                             "--log-level", "warning"], env=env, stdout=log, stderr=log)
    sock = data / "run" / "control.sock"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if sock.exists():
            try:
                Rpc(f"ipc://{sock}").call("hello", timeout=1.0)
                return proc
            except TimeoutError:
                pass
        if proc.poll() is not None:
            raise SystemExit(f"daemon exited: see {data / 'daemon.log'}")
        time.sleep(0.1)
    raise SystemExit("daemon did not come up")


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Rpc:
    """A plain DEALER: one request, one reply, no library code in the way."""

    def __init__(self, addr: str) -> None:
        self.ctx = zmq.Context()
        self.s = self.ctx.socket(zmq.DEALER)
        self.s.setsockopt(zmq.LINGER, 0)
        self.s.connect(addr)
        self.n = 0

    def send(self, method: str, params: Any = None, timeout: float = 30.0) -> list[bytes]:
        """The reply's frames, unparsed: the round trip, without the client's JSON parse."""
        self.n += 1
        msg = {"jsonrpc": "2.0", "id": self.n, "method": method}
        if params is not None:
            msg["params"] = params
        self.s.send(json.dumps(msg).encode())
        if not self.s.poll(int(timeout * 1000)):
            raise TimeoutError(method)
        return self.s.recv_multipart()

    def call(self, method: str, params: Any = None, timeout: float = 30.0) -> Any:
        frames = self.send(method, params, timeout)
        doc = json.loads(frames[0])
        if "error" in doc:
            raise RuntimeError(f"{method}: {doc['error']}")
        return doc["result"]

    def close(self) -> None:
        self.s.close()
        self.ctx.term()


def measure(rpc: Rpc, calls: int, make: Any) -> tuple[list[float], int]:
    """Round trips (request sent -> reply received); each reply is then checked."""
    lat = []
    size = 0
    for i in range(calls + 20):
        method, params = make(i)
        t0 = time.perf_counter()
        frames = rpc.send(method, params)
        if i >= 20:  # warm-up
            lat.append(time.perf_counter() - t0)
        doc = json.loads(frames[0])
        if "error" in doc:
            raise RuntimeError(f"{method}: {doc['error']}")
        size = len(frames[0])
    return lat, size


# -- the raw-SQL baseline ------------------------------------------------------------------
async def capture(db_path: Path, fn: Any) -> list[tuple[str, Any]]:
    """The statements (with DB-API parameters) one queries.* call runs, in order."""
    import sqlalchemy as sa

    from lightbox.daemon.catalog.database import make_engine

    engine = make_engine(f"sqlite+aiosqlite:///{db_path}")
    seen: list[tuple[str, Any]] = []

    def listener(conn: Any, cursor: Any, statement: str, params: Any, context: Any,
                 executemany: bool) -> None:
        seen.append((statement, params))

    sa.event.listen(engine.sync_engine, "before_cursor_execute", listener)
    try:
        async with engine.connect() as conn:
            await fn(conn)
    finally:
        await engine.dispose()
    return seen


def raw(db_path: Path, statements: list[tuple[str, Any]], calls: int) -> list[float]:
    conn = sqlite3.connect(db_path)
    conn.execute("PRAGMA journal_mode=WAL")
    lat = []
    for i in range(calls + 20):
        t0 = time.perf_counter()
        for sql, params in statements:
            conn.execute(sql, params).fetchall()
        if i >= 20:
            lat.append(time.perf_counter() - t0)
    conn.close()
    return lat


def pct(lat: list[float], q: float) -> float:
    s = sorted(lat)
    return s[min(len(s) - 1, int(len(s) * q))] * 1000


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--photos", type=int, default=1_000_000)
    ap.add_argument("--calls", type=int, default=300, help="per measurement (>= 200)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds; medians are reported")
    ap.add_argument("--keep", type=Path, help="build the catalog in DIR and keep it")
    ap.add_argument("--reuse", type=Path, help="measure the catalog kept in DIR")
    ap.add_argument("--during-scan", type=Path, metavar="ROOT",
                    help="measure while library.scan runs on ROOT")
    args = ap.parse_args()

    from lightbox.daemon.catalog import queries

    data = args.reuse or args.keep or Path(tempfile.mkdtemp(prefix="lbq-", dir="/tmp"))
    db_path = data / "catalog.db"
    info: dict[str, Any] = {}
    if args.reuse is None:
        if db_path.exists():
            raise SystemExit(f"{db_path} exists; use --reuse {data}")
        data.mkdir(parents=True, exist_ok=True)
        print(f"building a {args.photos:,}-photo catalog in {data} ...", file=sys.stderr)
        info = asyncio.run(build(db_path, args.photos))
        print(f"built in {info['seconds']:.0f} s", file=sys.stderr)
    if args.reuse is not None and args.during_scan:
        # The scan adds a root and photos: work on a copy, keep the kept catalog as it was.
        copy = Path(tempfile.mkdtemp(prefix="lbq-", dir="/tmp"))
        shutil.copy2(db_path, copy / "catalog.db")
        data, db_path, args.reuse = copy, copy / "catalog.db", None
    big = big_folder_id(db_path)
    windows = months()
    rng = random.Random(5)
    month_of_call = [windows[rng.randrange(len(windows))] for _ in range(args.calls + 20)]

    def folder_call(i: int) -> tuple[str, Any]:
        return "folders.list", {"folder": big, "limit": BIG}

    def search_call(sort: str) -> Any:
        def make(i: int) -> tuple[str, Any]:
            a, b = month_of_call[i % len(month_of_call)]
            return "photos.search", {"date_from": a, "date_to": b, "limit": 200, "sort": sort}
        return make

    a0, b0 = windows[len(windows) // 2]
    baselines = {
        "folders.list 500": asyncio.run(capture(db_path, lambda c: queries.list_folder(
            c, folder=big, limit=BIG))),
        "search month by date": asyncio.run(capture(db_path, lambda c: queries.search(
            c, date_from=a0, date_to=b0, limit=200, sort="taken"))),
        "search month by name": asyncio.run(capture(db_path, lambda c: queries.search(
            c, date_from=a0, date_to=b0, limit=200, sort="name"))),
    }
    def grid_call(i: int) -> tuple[str, Any]:
        return "folders.list", {"folder": big, "limit": BIG, "fields": GRID_FIELDS}

    baselines["folders.list 500 grid fields"] = baselines["folders.list 500"]
    cases = {"folders.list 500": folder_call, "folders.list 500 grid fields": grid_call,
             "search month by date": search_call("taken"),
             "search month by name": search_call("name")}

    proc = start_daemon(data)
    rpc = Rpc(f"ipc://{data}/run/control.sock")
    sizes: dict[str, int] = {}
    results: dict[str, dict[str, list[float]]] = {k: {"p50": [], "p99": [], "raw50": [],
                                                      "raw99": []} for k in cases}
    try:
        time.sleep(2.0)  # let the start-up work (offline check, roll-up) settle
        rss_idle = rss_mb(proc.pid)
        job = None
        if args.during_scan:
            added = rpc.call("roots.add", {"path": str(args.during_scan.resolve()),
                                           "scan": False})
            job = rpc.call("library.scan", {"root": added["root"]["id"]})["job"]
            time.sleep(1.0)
        for _ in range(args.rounds):
            for name, make in cases.items():
                lat, sizes[name] = measure(rpc, args.calls, make)
                results[name]["p50"].append(pct(lat, 0.5))
                results[name]["p99"].append(pct(lat, 0.99))
                base = raw(db_path, baselines[name], args.calls)
                results[name]["raw50"].append(pct(base, 0.5))
                results[name]["raw99"].append(pct(base, 0.99))
        scan_state = None
        if job is not None:
            scan_state = rpc.call("jobs.get", {"id": job})
        rss_after = rss_mb(proc.pid)
    finally:
        rpc.close()
        proc.terminate()
        proc.wait(30)
        if args.keep is None and args.reuse is None:
            shutil.rmtree(data, ignore_errors=True)

    med = statistics.median
    print(f"catalog: {args.photos:,} photos" + (
        f", built in {info['seconds']:.0f} s" if info else " (reused)")
        + f"; {args.calls} calls x {args.rounds} rounds (medians of rounds); "
        f"{os.cpu_count()} CPUs; sqlite {sqlite3.sqlite_version}")
    if scan_state is not None:
        print(f"measured during a scan of {args.during_scan}: job {scan_state['id']} "
              f"{scan_state['state']}, {scan_state['processed']} processed when done measuring")
    print()
    print("| request | p50 ms | p99 ms | raw SQL p50 ms | raw SQL p99 ms | p50 ratio | "
          "statements | reply KB |")
    print("|---|---|---|---|---|---|---|---|")
    for name, r in results.items():
        p50, p99, r50, r99 = (med(r[k]) for k in ("p50", "p99", "raw50", "raw99"))
        print(f"| {name} | {p50:.2f} | {p99:.2f} | {r50:.2f} | {r99:.2f} | "
              f"{p50 / r50:.1f}x | {len(baselines[name])} | {sizes[name] / 1024:.0f} |")
    print()
    print(f"daemon RSS: {rss_idle:.0f} MB idle after start, {rss_after:.0f} MB after the runs")


if __name__ == "__main__":
    main()
