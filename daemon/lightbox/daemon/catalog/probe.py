"""``database.test``: can this URL hold the catalog? Answered without changing anything.

What is checked, and why each matters to a photo catalog:

- **connect**: reachable, credentials accepted, the database exists (each failure has its
  own reason: ``unreachable``, ``auth_failed``, ``no_database``);
- **server**: the version, and that the server accepts writes (a read-only replica or a
  ``read_only`` server would fail at the first migration);
- **privileges**: what migrations need (create, alter, drop, index; then select, insert,
  update, delete), read from the server's grant tables;
- **charset**: UTF-8 everywhere (a path can hold any character, emoji included; MySQL's
  ``utf8`` is the 3-byte ``utf8mb3`` and cannot) and, on MySQL, strict SQL mode (without
  it MySQL stores 0 where NULL was meant and truncates what does not fit);
- **round trip**: a scratch table with the catalog's own column types, holding a
  timestamp with microseconds, the largest and smallest 64-bit integers, NULL beside 0,
  and names that differ only in case or in Unicode normalisation under a unique index, all
  read back exactly. MySQL/MariaDB must compare names in a binary collation, or
  ``IMG.JPG`` and ``img.jpg`` (two files on Linux) collide.

"Changing nothing": PostgreSQL's scratch table lives in a transaction that is rolled back
(its DDL is transactional, so this also proves the CREATE privilege for real); MySQL and
SQLite use a TEMPORARY table, gone with the connection. A SQLite file is opened read-only,
and one that does not exist is not created.

Passwords never appear in the report: URLs are masked, driver messages scrubbed.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from lightbox.common import dburl
from lightbox.daemon.catalog import copy, tables
from lightbox.daemon.catalog.database import MARKER, head_revision, read_marker
from lightbox.daemon.catalog.types import Id, Name, Timestamp

SUPPORTED = ("sqlite+aiosqlite", "postgresql+asyncpg", "mysql+aiomysql", "mariadb+aiomysql")
CONNECT_TIMEOUT = 10.0

# What the catalog's migrations need, by engine.
PG_NEEDS = ("USAGE", "CREATE")
MYSQL_NEEDS = ("SELECT", "INSERT", "UPDATE", "DELETE", "CREATE", "ALTER", "DROP", "INDEX")

# (id, name, path, at, big, n): the edge cases of a photo catalog.
ROUND_TRIP: tuple[tuple[int, str, str, dt.datetime, int, int | None], ...] = (
    (1, "IMG_0001.JPG", "2024/Trip/IMG_0001.JPG", dt.datetime(2024, 2, 29, 23, 59, 59, 123456),
     2**63 - 1, 0),
    (2, "img_0001.jpg", "2024/trip/img_0001.jpg", dt.datetime(1970, 1, 1, 0, 0, 0, 1),
     -(2**63), None),
    (3, "caf\u00e9 \U0001f4f7.jpg", "\u00e9t\u00e9/caf\u00e9 \U0001f4f7.jpg",
     dt.datetime(2038, 1, 19, 3, 14, 8, 999999), 2**53 + 1, 0),
    (4, "cafe\u0301 \U0001f4f7.jpg", "e\u0301te\u0301/cafe\u0301 \U0001f4f7.jpg",
     dt.datetime(1901, 12, 13, 20, 45, 51, 500000), 2**31, None),
)


class Unsupported(ValueError):
    """A URL lightbox cannot use at all (wrong scheme or driver, unparseable)."""


def check_url(url: str) -> sa.engine.URL:
    try:
        parsed = sa.engine.make_url(url)
    except sa.exc.ArgumentError:
        raise Unsupported("not a database URL") from None
    if parsed.drivername not in SUPPORTED:
        raise Unsupported(f"unsupported database URL {parsed.drivername!r}; use one of "
                          + ", ".join(SUPPORTED))
    return parsed


@dataclass
class Report:
    url: str
    engine: str | None = None
    checks: list[dict[str, Any]] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)

    def add(self, name: str, ok: bool | None, detail: str, reason: str | None = None,
            **extra: Any) -> bool | None:
        entry: dict[str, Any] = {"name": name, "ok": ok, "detail": detail}
        if reason is not None and not ok:
            entry["reason"] = reason
        entry.update(extra)
        self.checks.append(entry)
        return ok

    @property
    def ok(self) -> bool:
        return all(c["ok"] is not False for c in self.checks) and bool(self.checks)

    @property
    def reason(self) -> str | None:
        for c in self.checks:
            if c["ok"] is False:
                return str(c.get("reason") or c["name"])
        return None

    def as_dict(self, secrets: list[str]) -> dict[str, Any]:
        doc = {"ok": self.ok, "reason": self.reason, "url": dburl.mask(self.url),
               "engine": self.engine, **self.info, "checks": self.checks}
        scrubbed: dict[str, Any] = _scrub_doc(doc, secrets)
        return scrubbed


def _scrub_doc(value: Any, urls: list[str]) -> Any:
    if isinstance(value, str):
        return dburl.scrub(value, urls)
    if isinstance(value, dict):
        return {k: _scrub_doc(v, urls) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub_doc(v, urls) for v in value]
    return value


def classify(exc: BaseException) -> tuple[str, str]:
    """(reason, one-line message) for a failure to connect."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).split("\n(Background on this error")[0].strip() or type(orig).__name__
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    cause = getattr(orig, "__cause__", None)
    code = code or getattr(cause, "sqlstate", None)
    args = getattr(orig, "args", ())
    my = args[0] if args and isinstance(args[0], int) else None
    if code == "3D000" or my == 1049:
        return "no_database", text
    if code in ("28000", "28P01") or my in (1044, 1045, 1698):
        return "auth_failed", text
    if my in (2002, 2003, 2005, 2006, 2013) or isinstance(
            orig, (OSError, ConnectionError, TimeoutError)):
        return "unreachable", text
    return "connect_failed", text


def _connect_args(parsed: sa.engine.URL, timeout: float) -> dict[str, Any]:
    backend = parsed.get_backend_name()
    if backend == "postgresql":
        return {"timeout": timeout}
    if backend in ("mysql", "mariadb"):
        return {"connect_timeout": max(1, int(timeout))}
    return {}


def probe_engine(url: str, timeout: float = CONNECT_TIMEOUT) -> AsyncEngine:
    """A throwaway engine (no pool) for probing and copying; MySQL in strict mode."""
    parsed = check_url(url)
    args = _connect_args(parsed, timeout)
    if parsed.get_backend_name() in ("mysql", "mariadb"):
        if "charset" not in parsed.query:
            parsed = parsed.update_query_dict({"charset": "utf8mb4"})
        args["init_command"] = "SET SESSION sql_mode = CONCAT(@@sql_mode, ',STRICT_ALL_TABLES')"
    return create_async_engine(parsed, poolclass=NullPool, connect_args=args)


def _sqlite_readonly(parsed: sa.engine.URL) -> tuple[str, Path | None]:
    """A URL opening the file read-only (or an in-memory database if there is no file).

    A read-only connection to a WAL database that nobody has open would create its -wal
    and -shm files: such a file is opened ``immutable`` instead (no journal, no locks).
    One in use (its -wal exists) is read through the files its writer keeps.
    """
    path = Path(parsed.database or "")
    if not parsed.database or parsed.database == ":memory:" or not path.exists():
        return "sqlite+aiosqlite://", path if parsed.database else None
    mode = "mode=ro" if Path(f"{path}-wal").exists() else "immutable=1"
    return f"sqlite+aiosqlite:///file:{path}?{mode}&uri=true", path


async def run(url: str, timeout: float = CONNECT_TIMEOUT) -> dict[str, Any]:
    """The full report for ``database.test``."""
    report = Report(url)
    secrets = [url]
    try:
        parsed = check_url(url)
    except Unsupported as exc:
        report.add("url", False, str(exc), "unsupported")
        return report.as_dict(secrets)
    backend = parsed.get_backend_name()
    report.engine = "mysql" if backend == "mariadb" else backend
    report.info["driver"] = parsed.get_driver_name()
    path: Path | None = None
    if backend == "sqlite":
        probe_url, path = _sqlite_readonly(parsed)
        engine = create_async_engine(probe_url, poolclass=NullPool)
    else:
        engine = probe_engine(url, timeout)
    try:
        started = time.perf_counter()
        try:
            conn_cm = engine.connect()
            conn = await asyncio.wait_for(conn_cm.__aenter__(), timeout + 2)
        except TimeoutError:
            report.add("connect", False, f"no answer within {timeout:g} s", "unreachable")
            return report.as_dict(secrets)
        except Exception as exc:
            reason, message = classify(exc)
            report.add("connect", False, message, reason)
            return report.as_dict(secrets)
        try:
            report.add("connect", True,
                       f"connected in {(time.perf_counter() - started) * 1000:.0f} ms")
            await _server(conn, report, path)
            await _catalog(conn, report)
            await _privileges(conn, report, path)
            await _charset(conn, report)
            await _round_trip(conn, report)
        finally:
            await conn_cm.__aexit__(None, None, None)
    except Exception as exc:
        reason, message = classify(exc)
        report.add("probe", False, f"{type(exc).__name__}: {message}", "probe_failed")
    finally:
        await engine.dispose()
    return report.as_dict(secrets)


async def _server(conn: AsyncConnection, report: Report, path: Path | None) -> None:
    name = conn.dialect.name
    if name == "sqlite":
        version = await conn.scalar(sa.text("SELECT sqlite_version()"))
        report.info["server_version"] = f"SQLite {version}"
        report.info["file"] = str(path) if path else None
        report.info["exists"] = path is not None and await asyncio.to_thread(os.path.exists,
                                                                             path)
        return
    if name == "postgresql":
        version = await conn.scalar(sa.text("SHOW server_version"))
        report.info["server_version"] = f"PostgreSQL {version}"
        standby = await conn.scalar(sa.text("SELECT pg_is_in_recovery()"))
        ro = await conn.scalar(sa.text("SHOW default_transaction_read_only"))
        if standby or ro == "on":
            report.add("writable", False, "the server is a read-only standby" if standby
                       else "default_transaction_read_only is on", "read_only")
        return
    version = str(await conn.scalar(sa.text("SELECT VERSION()")))
    report.info["server_version"] = ("MariaDB " if "mariadb" in version.lower()
                                     else "MySQL ") + version
    ro = (await conn.execute(sa.text("SELECT @@global.read_only, @@innodb_read_only"))).one()
    if any(int(v or 0) for v in ro):
        report.add("writable", False, "the server is read-only (read_only is set)",
                   "read_only")


async def _catalog(conn: AsyncConnection, report: Report) -> None:
    """What is in the database already: nothing, a lightbox catalog, an incomplete copy."""
    names = set(await conn.run_sync(lambda c: sa.inspect(c).get_table_names()))
    ours = [t.name for t in tables.metadata.sorted_tables if t.name in names]
    marker = await read_marker(conn) if MARKER.name in names else None
    revision = None
    if "alembic_version" in names:
        revision = await conn.scalar(sa.text("SELECT version_num FROM alembic_version"))
    rows = {}
    for name in ours:
        if name in tables.SEEDED:  # a migration's own rows: an empty catalog has them
            continue
        rows[name] = int(await conn.scalar(
            sa.select(sa.func.count()).select_from(tables.metadata.tables[name])) or 0)
    if marker is not None:
        state = "incomplete"
    elif revision is not None:
        state = "catalog"
    elif ours:
        state = "foreign"
    else:
        state = "empty"
    other = sorted(n for n in names - set(ours) - {"alembic_version", MARKER.name}
                   if not copy.side_table(n))
    report.info["catalog"] = {
        "state": state, "revision": revision, "head": head_revision(), "rows": rows,
        "other_tables": len(other),
        "switch": dict(marker, started_at=str(marker.get("started_at"))) if marker else None}


async def _privileges(conn: AsyncConnection, report: Report, path: Path | None) -> None:
    name = conn.dialect.name
    if name == "sqlite":
        if path is None:
            report.add("privileges", True, "an in-memory database")
            return
        writable, what = await asyncio.to_thread(_sqlite_writable, path)
        report.add("privileges", writable,
                   f"{what} is writable" if writable else f"{what} is not writable",
                   "privileges")
        return
    if name == "postgresql":
        row = (await conn.execute(sa.text(
            "SELECT current_user, current_schema(), "
            "has_schema_privilege(current_schema(), 'USAGE'), "
            "has_schema_privilege(current_schema(), 'CREATE'), "
            "has_database_privilege(current_database(), 'TEMP')"))).one()
        user, schema, usage, create, temp = row
        missing = [p for p, ok in zip(PG_NEEDS, (usage, create), strict=True) if not ok]
        ours = [t.name for t in tables.metadata.sorted_tables]
        not_owned = (await conn.execute(sa.text(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema() "
            "AND tablename = ANY(:names) AND NOT pg_has_role(tableowner, 'USAGE')"),
            {"names": ours})).scalars().all()
        report.info["user"] = user
        detail = (f"{user} may create tables in schema {schema}" if not missing else
                  f"{user} lacks {', '.join(missing)} on schema {schema}")
        if not_owned:
            detail += f"; cannot alter tables it does not own: {', '.join(not_owned)}"
        report.add("privileges", not missing and not not_owned, detail, "privileges",
                   temp=bool(temp))
        return
    user = await conn.scalar(sa.text("SELECT CURRENT_USER()"))
    report.info["user"] = user
    grantee = "'{}'@'{}'".format(*str(user).rsplit("@", 1))
    granted = set((await conn.execute(sa.text(
        "SELECT PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES WHERE GRANTEE = :g "
        "UNION SELECT PRIVILEGE_TYPE FROM information_schema.SCHEMA_PRIVILEGES "
        "WHERE GRANTEE = :g AND DATABASE() LIKE TABLE_SCHEMA"), {"g": grantee})).scalars())
    missing = [p for p in MYSQL_NEEDS if p not in granted]
    report.add("privileges", not missing,
               f"{user} has {', '.join(MYSQL_NEEDS)}" if not missing
               else f"{user} lacks {', '.join(missing)} on this database", "privileges",
               temp="CREATE TEMPORARY TABLES" in granted)


def _sqlite_writable(path: Path) -> tuple[bool, str]:
    """Whether the file (or the directory it would be created in) can be written."""
    if path.exists():
        return os.access(path, os.W_OK) and os.access(path.parent, os.W_OK | os.X_OK), \
            "the file"
    target = _nearest_existing(path.parent)
    return os.access(target, os.W_OK | os.X_OK), f"{target} (the file would be created)"


def _nearest_existing(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


async def _charset(conn: AsyncConnection, report: Report) -> None:
    name = conn.dialect.name
    if name == "sqlite":
        enc = await conn.scalar(sa.text("PRAGMA encoding"))
        report.add("charset", str(enc).upper().startswith("UTF-8"),
                   f"encoding {enc}; names compare byte for byte", "charset")
        return
    if name == "postgresql":
        enc = await conn.scalar(sa.text("SHOW server_encoding"))
        coll = await conn.scalar(sa.text(
            "SELECT datcollate FROM pg_database WHERE datname = current_database()"))
        report.info["collation"] = coll
        report.add("charset", enc == "UTF8",
                   f"encoding {enc}, collation {coll}; names compare byte for byte"
                   if enc == "UTF8" else f"encoding {enc}: lightbox needs UTF8", "charset")
        return
    cs, coll, mode = (await conn.execute(sa.text(
        "SELECT @@character_set_database, @@collation_database, @@GLOBAL.sql_mode"))).one()
    report.info["collation"] = coll
    ok = cs == "utf8mb4"
    report.add("charset", ok,
               f"database charset {cs}, collation {coll}; lightbox keeps names in utf8mb4_bin"
               if ok else f"database charset {cs}: paths need utf8mb4 (ALTER DATABASE ... "
               "CHARACTER SET utf8mb4)", "charset")
    strict = "STRICT_ALL_TABLES" in str(mode) or "STRICT_TRANS_TABLES" in str(mode)
    report.add("sql_mode", True,
               "strict" if strict else "not strict on the server; lightbox's connections "
               "switch strict mode on for themselves", strict=strict)


def _probe_table(name: str, temporary: bool) -> sa.Table:
    return sa.Table(
        name, sa.MetaData(),
        sa.Column("id", Id, primary_key=True, autoincrement=False),
        sa.Column("name", Name(255), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("at", Timestamp, nullable=True),
        sa.Column("big", sa.BigInteger, nullable=True),
        sa.Column("n", sa.Integer, nullable=True),
        sa.UniqueConstraint("name", name=f"uq_{name}_name"),
        prefixes=["TEMPORARY"] if temporary else [],
    )


async def _round_trip(conn: AsyncConnection, report: Report) -> None:
    name = conn.dialect.name
    table = _probe_table(f"lightbox_probe_{uuid.uuid4().hex[:8]}", name != "postgresql")
    if name == "mysql" and not next(
            (c.get("temp") for c in report.checks if c["name"] == "privileges"), True):
        report.add("round_trip", None, "skipped: the user may not create TEMPORARY tables "
                   "(not needed by lightbox itself)")
        return
    await conn.rollback()  # end the reads' implicit transaction; the probe has its own
    trans = await conn.begin()
    try:
        await conn.run_sync(table.create)
        try:
            await conn.execute(table.insert(), [
                dict(zip(("id", "name", "path", "at", "big", "n"), r, strict=True))
                for r in ROUND_TRIP])
        except sa.exc.IntegrityError:
            report.add("names", False, "IMG_0001.JPG and img_0001.jpg (or two spellings of "
                       "café) collide in a unique index: names are compared "
                       "case-insensitively; lightbox needs a binary collation",
                       "case_insensitive_names")
            return
        except sa.exc.DataError as exc:
            report.add("unicode", False, "a path with an emoji cannot be stored: "
                       + classify(exc)[1], "charset")
            return
        back = {r.id: r for r in await conn.execute(sa.select(table))}
        same_name = (await conn.execute(sa.select(table.c.id).where(
            table.c.name == "IMG_0001.JPG"))).scalars().all()
    finally:
        await trans.rollback()
        if name != "postgresql":
            await conn.run_sync(lambda c: table.drop(c, checkfirst=True))
    got = [(r.id, r.name, r.path, r.at, r.big, r.n) for r in
           (back[i] for i in sorted(back))]
    expected = list(ROUND_TRIP)
    ts = [g[3] == e[3] for g, e in zip(got, expected, strict=False)]
    report.add("timestamp", len(got) == len(expected) and all(ts),
               "microseconds kept (2024-02-29 23:59:59.123456)" if all(ts) else
               f"timestamps changed: {got[0][3] if got else None} for 2024-02-29 23:59:59.123456",
               "timestamp_precision")
    bigs = [g[4] == e[4] for g, e in zip(got, expected, strict=False)]
    report.add("bigint", len(got) == len(expected) and all(bigs),
               "64-bit integers kept (-2^63 .. 2^63-1)" if all(bigs) else
               "64-bit integers changed", "bigint")
    nulls = [g[5] == e[5] and (g[5] is None) == (e[5] is None)
             for g, e in zip(got, expected, strict=False)]
    report.add("null", len(got) == len(expected) and all(nulls),
               "NULL and 0 stay apart" if all(nulls) else "NULL and 0 were confused",
               "null")
    names_ok = [g[1] == e[1] and g[2] == e[2] for g, e in zip(got, expected, strict=False)]
    exact = same_name == [1]
    report.add("names", len(got) == len(expected) and all(names_ok) and exact,
               "names that differ only in case or normalisation stay apart, emoji kept"
               if all(names_ok) and exact else
               "names were changed or compared loosely "
               f"({len(same_name)} rows match IMG_0001.JPG)", "case_insensitive_names")
