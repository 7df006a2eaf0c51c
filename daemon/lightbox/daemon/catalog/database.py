"""The catalog database component: engine, per-engine settings, migrations at start.

SQLite (the default) runs in WAL mode with foreign keys on and a busy timeout, so readers
never wait for the writer and a second process (another daemon, a backup tool) waits instead
of failing. PostgreSQL and MySQL/MariaDB get pre-pinged pools so a restarted server costs one
failed connection, not a failed request.

Migrations run at every start, under a lock that works across processes sharing the same
database (an advisory lock on PostgreSQL, GET_LOCK on MySQL, an flock beside a SQLite file),
so several daemons starting together do not race to create the same tables.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from lightbox.common import logs

log = logs.get("database")

MIGRATIONS = "lightbox.daemon.catalog:migrations"
_LOCK_NAME = "lightbox_migrate"


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


# Query parameters drivers accept a secret in (asyncpg and aiomysql take ``?password=``).
_SECRET_PARAMS = frozenset({"password", "passwd", "pwd", "pass", "sslpassword", "secret",
                            "token", "auth_token", "api_key", "apikey"})


def mask(url: str) -> str:
    """The URL with its password replaced, for logs and replies: the one in the user-info
    part and any in the query string (``?password=``)."""
    try:
        parsed = sa.engine.make_url(url)
    except (sa.exc.ArgumentError, ValueError):
        return "<unparseable database URL>"
    secret = {k: "***" for k in parsed.query if k.lower() in _SECRET_PARAMS}
    if secret:
        parsed = parsed.update_query_dict(secret)
    # render_as_string percent-encodes the placeholder; show it as it reads in the password.
    return parsed.render_as_string(hide_password=True).replace("=%2A%2A%2A", "=***")


def make_engine(url: str) -> AsyncEngine:
    parsed = sa.engine.make_url(url)
    kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"timeout": 30}
    else:
        kwargs.update(pool_pre_ping=True, pool_recycle=1800, pool_size=10, max_overflow=10)
        if parsed.get_backend_name() == "mysql" and "charset" not in parsed.query:
            parsed = parsed.update_query_dict({"charset": "utf8mb4"})
    engine = create_async_engine(parsed, **kwargs)
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


class Database:
    """Owns the engine. Other components take ``db.engine`` once it has started."""

    name = "database"

    def __init__(self, url: str) -> None:
        self.url = url
        self._engine: AsyncEngine | None = None
        self.revision: str | None = None

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            raise RuntimeError("database not started")
        return self._engine

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    async def start(self) -> None:
        self._engine = make_engine(self.url)
        started = time.perf_counter()
        try:
            self.revision = await self.migrate()
        except Exception as exc:
            await self._engine.dispose()
            self._engine = None
            raise DatabaseError(f"cannot open the catalog at {mask(self.url)}: {exc}") from exc
        await self.analyze()
        log.info("catalog ready", engine=self.dialect, url=mask(self.url),
                 revision=self.revision, ms=round((time.perf_counter() - started) * 1000, 1))

    async def analyze(self, force: bool = False) -> None:
        """Give SQLite's planner statistics (PostgreSQL and MySQL keep their own).

        Without them SQLite guesses, and on a large catalog it guesses the wrong index. A
        full ANALYZE takes about half a second at a million photos; a sampled one
        (``analysis_limit``) was tried and made plans worse (it misjudged the date index by
        6x and chose a skip-scan: 23 ms instead of 2.6 ms for a month's search). Done at
        start when there are no statistics yet, and after scans that changed many rows.
        """
        if self.dialect != "sqlite":
            return
        async with self.engine.begin() as conn:
            if not force:
                have = await conn.scalar(sa.text(
                    "SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'"))
                if have:
                    return
            await conn.execute(sa.text("ANALYZE"))
        log.info("catalog statistics refreshed")

    async def stop(self) -> None:
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None

    def status(self) -> dict[str, Any]:
        return {"engine": self.dialect if self._engine else None, "url": mask(self.url),
                "revision": self.revision}

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
            if acquire:
                got = await conn.scalar(sa.text("SELECT GET_LOCK(:n, 120)"), {"n": _LOCK_NAME})
                if got != 1:
                    raise DatabaseError("timed out waiting for another daemon's migration")
            else:
                await conn.execute(sa.text("SELECT RELEASE_LOCK(:n)"), {"n": _LOCK_NAME})
        if name != "sqlite":
            await conn.commit()


def _upgrade(connection: Connection, target: str) -> None:
    command.upgrade(alembic_config(connection), target)


def _current(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()

