"""The catalog database component: engine, per-engine settings, migrations at start.

SQLite (the default) runs in WAL mode with foreign keys on and a busy timeout, so readers
never wait for the writer and a second process (another daemon, a backup tool) waits instead
of failing. PostgreSQL and MySQL/MariaDB get pre-pinged pools so a restarted server costs one
failed connection, not a failed request.

Migrations run at every start, under a lock that works across processes sharing the same
database (an advisory lock on PostgreSQL, GET_LOCK on MySQL, an flock beside a SQLite file),
so several daemons starting together do not race to create the same tables.

The engine can be replaced while the daemon runs (``database.switch``, see ``switch.py``):
``db.engine`` is read at every use, never kept, so a swap takes effect at the next statement.
Every write in the daemon goes through ``engine.begin()``; the engine is a ``GatedEngine``
whose ``begin()`` passes a ``WriteGate`` first. Closing the gate (the switch's write freeze)
holds new transactions and waits for the open ones to end; a held transaction then runs on
whichever engine is current when the gate opens, so nothing written during a switch lands
in the database being left. Reads through ``engine.connect()`` are never held.

A database that a switch was copying into carries a marker table (``lightbox_incomplete``)
until the switch completes; ``start`` refuses such a database, so a copy that a failure or
a SIGKILL left half-done is never used as a catalog.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import fcntl
import hashlib
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from lightbox.common import dburl, logs
from lightbox.daemon.catalog import inline_read
from lightbox.daemon.catalog.types import Timestamp

log = logs.get("database")
T = TypeVar("T")

MIGRATIONS = "lightbox.daemon.catalog:migrations"
_LOCK_NAME = "lightbox_migrate"
# Rows per index a start-up ANALYZE reads where the catalog has no statistics yet (SQLite's
# analysis_limit): 20-50 ms at a million photos, instead of a full ANALYZE's 0.5-1.5 s.
SAMPLED_ANALYSIS_ROWS = 1000
_SAMPLED = "lightbox: sampled statistics"  # the mark row of sqlite_stat1
# MariaDB/MySQL: the InnoDB buffer pool should hold at least this share of the catalog's
# data and indexes (``information_schema.tables``). Text search reads trigram lists, folder
# streams and a page's rows at random places; what the pool does not hold is read from
# disk (the server opens its files O_DIRECT: no page cache behind it). At 1,000,000 photos
# (2.2 GB) the 128 MB default, 6 %, read about 7 pages from disk a search; 256 MB, 12 %,
# none over the benchmark's 160 words (docs/benchmarks.md, "mysearch4"). A quarter leaves
# room for a library searched more widely than that.
BUFFER_POOL_SHARE = 0.25
# How old ``Database.buffer_pool`` may be when ``system.status`` shows it: the catalog
# grows with every scan, so the check at start alone would go stale.
BUFFER_POOL_RECHECK = 600.0


def mysql_lock_name(database: str) -> str:
    """The GET_LOCK name of one database's migrations (at most 64 characters)."""
    return f"{_LOCK_NAME}:{hashlib.sha1(database.encode()).hexdigest()[:32]}"


class DatabaseError(Exception):
    """The catalog database cannot be opened or migrated."""


def alembic_config(connection: Connection | None = None) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", MIGRATIONS)
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def mask(url: str) -> str:
    """The URL with its password replaced, for logs and replies."""
    return dburl.mask(url)


# -- the marker of an incomplete copy ------------------------------------------------------
# Not part of ``tables.metadata``: it is no catalog table, it exists only in a database a
# switch is filling, and copying or comparing schemas must not see it.
MARKER = sa.Table(
    "lightbox_incomplete", sa.MetaData(),
    sa.Column("switch_id", sa.String(64), primary_key=True),
    sa.Column("source", sa.String(500), nullable=False),  # masked URL of the catalog copied
    sa.Column("started_at", Timestamp, nullable=False),
)


async def read_marker(conn: AsyncConnection) -> dict[str, Any] | None:
    """The marker row of a database a switch was copying into, None when there is none."""
    has = await conn.run_sync(lambda c: sa.inspect(c).has_table(MARKER.name))
    if not has:
        return None
    row = (await conn.execute(sa.select(MARKER))).mappings().first()
    return dict(row) if row else {"switch_id": "", "source": "?", "started_at": None}


class WriteGate:
    """Holds new write transactions while closed; counts the ones in progress.

    ``close`` stops new ``begin()`` blocks at the gate and returns once the ones already
    inside have ended, so what follows sees every committed write and no write in flight.
    A transaction nested in one that is inside, in the same task, is let through: holding
    it would deadlock its parent. Only the same task: a task or callback made inside a
    transaction inherits its context, and would otherwise pass a closed gate for the rest
    of its life (the relay's flush, scheduled by an event published in a transaction,
    wrote into the catalog being left during a switch's final count). ``quiesce`` waits
    (without closing) until the transactions open at the time of the call have ended.
    """

    def __init__(self) -> None:
        self.closed = False
        self._open = asyncio.Event()
        self._open.set()
        self._active: dict[int, int] = {}  # ticket -> 1, in order of entry
        self._tickets = 0
        self._changed = asyncio.Event()
        # The task inside the gate in this context (None: outside).
        self._inside: contextvars.ContextVar[asyncio.Task[Any] | None] = \
            contextvars.ContextVar(f"gate-{id(self)}", default=None)
        self.held = 0  # transactions that waited at the gate (for status and tests)

    @property
    def active(self) -> int:
        return len(self._active)

    @contextlib.asynccontextmanager
    async def passage(self) -> AsyncIterator[None]:
        inside = self._inside.get()
        if inside is not None and inside is asyncio.current_task():
            yield
            return
        if self.closed:
            self.held += 1
            while self.closed:
                await self._open.wait()
        self._tickets += 1
        ticket = self._tickets
        self._active[ticket] = 1
        token = self._inside.set(asyncio.current_task())
        try:
            yield
        finally:
            self._inside.reset(token)
            del self._active[ticket]
            self._changed.set()

    async def _wait(self, done: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while not done():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(left, 0.5))
        return True

    async def close(self, timeout: float) -> bool:
        """Close and wait for the transactions inside; False (and open again) on timeout."""
        self.closed = True
        self._open.clear()
        if await self._wait(lambda: not self._active, timeout):
            return True
        self.open()
        return False

    def open(self) -> None:
        self.closed = False
        self._open.set()

    async def quiesce(self, timeout: float) -> bool:
        """Wait until every transaction that is open now has ended (new ones may start)."""
        last = self._tickets
        return await self._wait(lambda: not any(t <= last for t in self._active), timeout)


class GatedEngine(AsyncEngine):
    """An AsyncEngine whose ``begin()`` passes the database's write gate first, then runs
    on the database's current engine (which a switch may have replaced meanwhile)."""

    __slots__ = ("owner",)

    owner: Database | None

    @contextlib.asynccontextmanager
    async def begin(self) -> AsyncIterator[AsyncConnection]:
        owner = self.owner
        if owner is None:
            async with AsyncEngine.begin(self) as conn:
                yield conn
            return
        async with owner.gate.passage():
            current = owner._engine if owner._engine is not None else self
            async with AsyncEngine.begin(current) as conn:
                yield conn


def mysql_driver(drivername: str) -> str:
    """The driver the daemon talks to MySQL/MariaDB with for a ``mysql+aiomysql`` (or
    ``mariadb+aiomysql``) URL: asyncmy when it is installed (the ``mysql`` extra), else
    aiomysql. The URL names the server; the driver is ours to choose. aiomysql parses every
    row in pure Python (PyMySQL's protocol): reading a search's 200-photo page cost the
    daemon 6 ms of CPU against 1 ms with asyncmy's Cython protocol, and a search on
    MariaDB spent 4-5x the daemon CPU of the same search on PostgreSQL (issue 13)."""
    backend, _, driver = drivername.partition("+")
    if driver != "aiomysql":
        return drivername
    try:
        import asyncmy  # noqa: F401
    except ImportError:
        return drivername
    return f"{backend}+asyncmy"


def make_engine(url: str, owner: Database | None = None,
                read_only: bool = False) -> AsyncEngine:
    """An engine for ``url`` with the per-engine settings; gated by ``owner``'s write gate
    when one is given.

    ``read_only`` (PostgreSQL, MariaDB/MySQL; ``Database.reader``): a pool of autocommit
    connections whose sessions refuse writes. A read on the ordinary pool costs four
    round trips besides its own statements on PostgreSQL (asyncpg's pre-ping is BEGIN,
    ``;``, ROLLBACK outside a transaction, then the read's BEGIN and the ROLLBACK on
    return) and one on MariaDB (the ROLLBACK on return); in autocommit the ping is one
    and the rest none (issue 13: a text search is 4-6 statements). Nothing is lost: a
    read-committed transaction gives each statement its own snapshot anyway, and every
    multi-statement read copes with a row changed between its statements."""
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        raise DatabaseError(f"not a database URL: {mask(url)}") from None
    kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"timeout": 30}
    else:
        kwargs.update(pool_pre_ping=True, pool_recycle=1800, pool_size=10, max_overflow=10)
        if parsed.get_backend_name() == "postgresql":
            # asyncpg prepares every statement and caches it; after five runs PostgreSQL may
            # switch a prepared statement to a generic plan, made without the parameters'
            # values. For a search that is a plan guessed for any pattern (pg_trgm cannot
            # estimate an unknown ILIKE) and cached for all the next ones: the 0.8-1.7 s
            # outliers of text search (issue 13). Custom plans cost a planning per
            # execution (well under a millisecond for these statements).
            settings = {"plan_cache_mode": "force_custom_plan"}
            if read_only:  # sent in the start-up packet: no round trip
                settings["default_transaction_read_only"] = "on"
            kwargs["connect_args"] = {"server_settings": settings}
        if parsed.get_backend_name() in ("mysql", "mariadb"):
            if "charset" not in parsed.query:
                parsed = parsed.update_query_dict({"charset": "utf8mb4"})
            parsed = parsed.set(drivername=mysql_driver(parsed.drivername))
            if read_only:  # once per connection, at connect
                kwargs["connect_args"] = {"init_command": "SET SESSION TRANSACTION READ ONLY"}
        if read_only:
            # Nothing to roll back on return: an autocommit connection holds no transaction.
            kwargs.update(isolation_level="AUTOCOMMIT", pool_reset_on_return=None)
    plain = create_async_engine(parsed, **kwargs)
    if read_only:
        return plain
    engine = GatedEngine(plain.sync_engine)
    engine.owner = owner
    if parsed.get_backend_name() == "sqlite":
        event.listen(engine.sync_engine, "connect", _sqlite_pragmas)
    return engine


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")  # durable at checkpoints; WAL keeps it consistent
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA temp_store=MEMORY")
    cur.close()


SwitchHook = Callable[[], Awaitable[None]]


class Database:
    """Owns the engine. Other components read ``db.engine`` at each use (never keep it).

    ``completed_switch``: the id of the switch the persisted URL came from; the marker of
    exactly that switch is removed at start (the daemon was killed after the switch was
    committed but before it removed the marker), any other marker makes ``start`` fail.
    """

    name = "database"

    def __init__(self, url: str, completed_switch: str | None = None) -> None:
        self.url = url
        self.completed_switch = completed_switch
        self._engine: AsyncEngine | None = None
        self.revision: str | None = None
        self.gate = WriteGate()
        # Called after the engine was swapped (and again if it is swapped back), so that
        # components drop what they cached from the previous database's rows.
        self.on_switch: list[SwitchHook] = []
        self.switched_at: float | None = None
        # The read-only pool of the current engine (``reader``), and those of engines
        # swapped out, disposed at the next switch hooks or at stop.
        self._reader: tuple[AsyncEngine, AsyncEngine] | None = None  # (of engine, reader)
        self._retired: list[AsyncEngine] = []
        # SQLite's whole-read-in-one-hop pool (``read``), for the current engine, and the
        # threads it reads in.
        self._inline: tuple[AsyncEngine, sa.Engine] | None = None
        self._read_threads: concurrent.futures.ThreadPoolExecutor | None = None
        # SQLite's planner statistics: "sampled" at a start that found none (full ones
        # follow, ``refine_statistics``), "full" after a full ANALYZE, None: not touched.
        self.statistics: str | None = None
        # MariaDB/MySQL: the server's buffer pool beside the catalog's size
        # (``check_buffer_pool``), and when it was read (monotonic).
        self.buffer_pool: dict[str, Any] | None = None
        self._buffer_pool_at = 0.0

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            raise RuntimeError("database not started")
        return self._engine

    @property
    def reader(self) -> AsyncEngine:
        """An engine for reads that run SELECTs only (``photos.search``): autocommit
        connections of their own pool, whose sessions refuse writes (``make_engine``
        ``read_only``), so a write through it fails rather than pass by the write gate.
        It follows the current engine (a switch gives a new one); SQLite's engine itself
        (its driver sends no BEGIN before a read and has no round trips to save)."""
        engine = self.engine
        if engine.dialect.name == "sqlite":
            return engine
        if self._reader is None or self._reader[0] is not engine:
            if self._reader is not None:
                self._retired.append(self._reader[1])
            self._reader = (engine, make_engine(self.url, read_only=True))
        return self._reader[1]

    async def _dispose_readers(self, current: bool) -> None:
        retired, self._retired = self._retired, []
        if current and self._reader is not None:
            retired.append(self._reader[1])
            self._reader = None
        for reader in retired:
            await reader.dispose()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    async def start(self) -> None:
        self._engine = make_engine(self.url, self)
        started = time.perf_counter()
        try:
            await self._check_marker()
            self.revision = await self.migrate()
        except DatabaseError:
            await self._engine.dispose()
            self._engine = None
            raise
        except Exception as exc:
            await self._engine.dispose()
            self._engine = None
            raise DatabaseError(f"cannot open the catalog at {mask(self.url)}: "
                                f"{dburl.scrub(str(exc), [self.url])}") from exc
        await self.analyze()
        await self.check_buffer_pool()
        log.info("catalog ready", engine=self.dialect, url=mask(self.url),
                 revision=self.revision, ms=round((time.perf_counter() - started) * 1000, 1))

    async def check_buffer_pool(self) -> None:
        """MariaDB/MySQL: read the server's ``innodb_buffer_pool_size`` and the catalog's
        data and index size, and warn (reason ``buffer_pool_small``, in the log and in
        ``status()['warnings']``) when the pool holds less than ``BUFFER_POOL_SHARE`` of
        the catalog.

        A server setting, not the daemon's: MariaDB's default pool is 128 MB, a
        1,000,000-photo catalog 2.2 GB, and then searches read pages from disk (about 7
        a search there; a few ms on a fast disk, tens on a slow one), so the daemon says
        so instead of leaving it to be found by profiling. The variable is dynamic on
        MariaDB 10.2+ and MySQL 5.7+ (``SET GLOBAL``). A failed read leaves the last
        verdict (the check must not break a start or a status)."""
        if self._engine is None or self.dialect not in ("mysql", "mariadb"):
            self.buffer_pool = None
            return
        self._buffer_pool_at = time.monotonic()
        try:
            async with self.engine.connect() as conn:
                pool = int(await conn.scalar(sa.text("SELECT @@innodb_buffer_pool_size")) or 0)
                size = int(await conn.scalar(sa.text(
                    "SELECT COALESCE(SUM(data_length + index_length), 0) "
                    "FROM information_schema.tables WHERE table_schema = DATABASE()")) or 0)
        except sa.exc.SQLAlchemyError as exc:
            log.debug("buffer pool not read", error=dburl.scrub(str(exc), [self.url]))
            return
        small = pool < size * BUFFER_POOL_SHARE
        was = self.buffer_pool
        self.buffer_pool = {"bytes": pool, "catalog_bytes": size, "small": small}
        if small and (was is None or not was["small"]):
            log.warning("the server's InnoDB buffer pool holds little of the catalog; "
                        "searches read from disk", reason="buffer_pool_small",
                        buffer_pool_bytes=pool, catalog_bytes=size,
                        hint="raise innodb_buffer_pool_size on the server (docs/deployment.md)")

    async def buffer_pool_status(self) -> None:
        """``check_buffer_pool`` again when its figures are older than
        ``BUFFER_POOL_RECHECK`` (for ``system.status``: two cheap reads, not every call)."""
        if self.buffer_pool is not None and \
                time.monotonic() - self._buffer_pool_at >= BUFFER_POOL_RECHECK:
            await self.check_buffer_pool()

    async def analyze(self, force: bool = False) -> None:
        """Give SQLite's planner statistics (PostgreSQL and MySQL keep their own).

        Without them SQLite guesses, and on a large catalog it guesses the wrong index. A
        full ANALYZE takes 0.5-1.5 s at a million photos; a sampled one (``analysis_limit``)
        takes 20-50 ms but misjudges some indexes (the date index by 6x: a skip-scan, 23 ms
        instead of 2.6 ms for a month's search). So a catalog without statistics gets the
        sampled ones at start, before ready (planless guesses are far worse), and the full
        ones from ``refine_statistics`` once the daemon serves; ``force`` (after scans that
        changed many rows) takes the full ones at once.
        """
        if self.dialect != "sqlite":
            return
        async with self.engine.begin() as conn:
            have = await conn.scalar(sa.text(
                "SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'"))
            if have and not force:
                # Sampled ones left by a daemon stopped before it refined them are refined
                # by this one.
                if await conn.scalar(sa.text(
                        "SELECT count(*) FROM sqlite_stat1 WHERE tbl = :t"), {"t": _SAMPLED}):
                    self.statistics = "sampled"
                return
            if not have and not force:
                await conn.execute(sa.text(f"PRAGMA analysis_limit={SAMPLED_ANALYSIS_ROWS}"))
                try:
                    await conn.execute(sa.text("ANALYZE"))
                finally:
                    await conn.execute(sa.text("PRAGMA analysis_limit=0"))
                counts = [int(str(stat).split(" ", 1)[0] or 0) for (stat,) in await conn.execute(
                    sa.text("SELECT stat FROM sqlite_stat1"))]
                if max(counts, default=0) <= SAMPLED_ANALYSIS_ROWS:
                    # No index was larger than the sample (a new or small catalog): these
                    # are the full statistics already, and nothing follows.
                    self.statistics = "full"
                    log.info("catalog statistics refreshed")
                    return
                # SQLite skips rows of sqlite_stat1 that name no table (and lets them be
                # written): the mark survives a stop, the full ANALYZE's new table drops it.
                await conn.execute(sa.text(
                    "INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES (:t, NULL, '0')"),
                    {"t": _SAMPLED})
                self.statistics = "sampled"
                log.info("catalog statistics sampled; full ones follow once ready")
                return
            await self._full_analyze(conn)
        self.statistics = "full"
        log.info("catalog statistics refreshed")

    async def refine_statistics(self) -> None:
        """The full statistics, where start-up left sampled ones (called once the daemon
        serves: readers go on meanwhile, on WAL snapshots; writers wait for it)."""
        if self.dialect == "sqlite" and self.statistics == "sampled":
            await self.analyze(force=True)

    @staticmethod
    async def _full_analyze(conn: AsyncConnection) -> None:
        """ANALYZE in a new ``sqlite_stat1``: a re-ANALYZE into an existing table does not
        change the schema, so the other pooled connections would keep planning with the
        statistics they loaded when they opened; a table dropped and made again does, and
        each connection reloads the statistics with the schema at its next statement."""
        await conn.execute(sa.text("DROP TABLE IF EXISTS sqlite_stat1"))
        await conn.execute(sa.text("ANALYZE"))

    async def _check_marker(self) -> None:
        async with self.engine.connect() as conn:
            marker = await read_marker(conn)
        if marker is None:
            return
        if self.completed_switch and marker["switch_id"] == self.completed_switch:
            async with self.engine.begin() as conn:
                await conn.run_sync(lambda c: MARKER.drop(c, checkfirst=True))
            log.info("finished a completed catalog switch", switch=self.completed_switch)
            return
        raise DatabaseError(
            f"the catalog at {mask(self.url)} is an incomplete copy left by a catalog switch "
            f"that did not finish (switch {marker['switch_id']} from {marker['source']}); it "
            "was never used. Point database.url at the catalog in use, or switch to this "
            "database again (the switch starts the copy over)")

    async def read(self, fn: inline_read.ReadFunction[T], *, autocommit: bool = False) -> T:
        """``fn(conn)``, a function that only reads: on a file SQLite catalog in one thread
        hop (``inline_read``: 13 thread wake-ups fewer for a ``folders.list`` page), on a
        connection that refuses writes; elsewhere on the catalog engine, or with
        ``autocommit`` on ``reader`` (SELECTs only, no transaction's round trips)."""
        sync = self._inline_engine()
        if sync is None:
            async with (self.reader if autocommit else self.engine).connect() as conn:
                return await fn(conn)
        if self._read_threads is None:
            self._read_threads = concurrent.futures.ThreadPoolExecutor(
                max_workers=4, thread_name_prefix="catalog-read")
        return await asyncio.get_running_loop().run_in_executor(
            self._read_threads, inline_read.run, sync, fn)

    def _inline_engine(self) -> sa.Engine | None:
        engine = self.engine
        if engine.dialect.name != "sqlite" or engine.url.database in (None, "", ":memory:"):
            return None
        if self._inline is None or self._inline[0] is not engine:
            self._drop_inline()
            self._inline = (engine, inline_read.make_engine(engine.url))
        return self._inline[1]

    def _drop_inline(self) -> None:
        """Close the idle connections of the inline pool (one in use closes when its read
        ends: the pool it returns to is gone)."""
        if self._inline is not None:
            self._inline[1].dispose()
            self._inline = None

    async def stop(self) -> None:
        self._drop_inline()
        if self._read_threads is not None:
            self._read_threads.shutdown(wait=True, cancel_futures=True)
            self._read_threads = None
        await self._dispose_readers(current=True)
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None

    def swap(self, engine: AsyncEngine, url: str, revision: str | None) -> AsyncEngine:
        """Make ``engine`` (from ``make_engine(url, self)``) the catalog's engine at once;
        returns the previous one, which the caller disposes when it is done with it."""
        old = self.engine
        self._drop_inline()
        if self._reader is not None:  # reads in flight finish on it; disposed by the hooks
            self._retired.append(self._reader[1])
            self._reader = None
        self._engine, self.url, self.revision = engine, url, revision
        self.switched_at = time.time()
        log.info("catalog engine switched", engine=self.dialect, url=mask(url))
        return old

    async def run_switch_hooks(self) -> None:
        await self._dispose_readers(current=False)
        await self.check_buffer_pool()  # another server, another catalog
        for hook in self.on_switch:
            await hook()

    def status(self) -> dict[str, Any]:
        """The catalog's health: ``warnings`` are ``{reason, message}``, one per problem
        (``buffer_pool_small``: MariaDB/MySQL's buffer pool below ``BUFFER_POOL_SHARE`` of
        the catalog's size)."""
        warnings: list[dict[str, Any]] = []
        pool = self.buffer_pool
        if pool is not None and pool["small"]:
            warnings.append({
                "reason": "buffer_pool_small",
                "message": f"the server's InnoDB buffer pool ({pool['bytes'] >> 20} MB) "
                f"holds less than {BUFFER_POOL_SHARE:.0%} of the catalog "
                f"({pool['catalog_bytes'] >> 20} MB): searches read from disk; raise "
                "innodb_buffer_pool_size"})
        return {"engine": self.dialect if self._engine else None, "url": mask(self.url),
                "revision": self.revision, "statistics": self.statistics,
                "buffer_pool": pool, "warnings": warnings}

    async def migrate(self, target: str = "head") -> str | None:
        """Bring the schema to ``target``; returns the revision the database is at."""
        with self._file_lock():
            async with self.engine.connect() as conn:
                await self._server_lock(conn, acquire=True)
                try:
                    await conn.run_sync(_upgrade, target)
                    await conn.commit()
                    return await conn.run_sync(_current)
                finally:
                    await self._server_lock(conn, acquire=False)

    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        parsed = sa.engine.make_url(self.url)
        if parsed.get_backend_name() != "sqlite" or not parsed.database or \
                parsed.database == ":memory:":
            yield
            return
        fd = os.open(f"{parsed.database}.migrate-lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC,
                     0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    async def _server_lock(self, conn: Any, acquire: bool) -> None:
        name = self.engine.dialect.name
        if name == "postgresql":
            fn = "pg_advisory_lock" if acquire else "pg_advisory_unlock"
            await conn.execute(sa.text(f"SELECT {fn}(hashtext(:n))"), {"n": _LOCK_NAME})
        elif name in ("mysql", "mariadb"):
            # GET_LOCK names are server-wide (PostgreSQL's advisory locks are per database):
            # named for this database, so a migration of another catalog on the same server
            # (another library, a test) never waits on this one's.
            db = await conn.scalar(sa.text("SELECT DATABASE()")) or ""
            lock = mysql_lock_name(str(db))
            if acquire:
                got = await conn.scalar(sa.text("SELECT GET_LOCK(:n, 120)"), {"n": lock})
                if got != 1:
                    raise DatabaseError("timed out waiting for another daemon's migration")
            else:
                await conn.execute(sa.text("SELECT RELEASE_LOCK(:n)"), {"n": lock})
        if name != "sqlite":
            await conn.commit()


def _upgrade(connection: Connection, target: str) -> None:
    command.upgrade(alembic_config(connection), target)


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()

