"""Copying the catalog into another database, row for row, while the daemon keeps working.

Everything here derives from ``tables.metadata``: a table another part of lightbox adds is
copied, verified and caught up like the others without this module knowing it. Objects that
are not in the metadata (Alembic's version table, engine-specific search indexes, SQLite
FTS shadow tables and statistics) are not copied: the target's own migrations made them,
triggers fill them as rows arrive, and ``POST_COPY`` hooks rebuild what triggers do not.

The source is never written. Its rows are read through a dedicated connection in one
read-only snapshot (a WAL read transaction on SQLite, ``REPEATABLE READ READ ONLY`` on
PostgreSQL, ``WITH CONSISTENT SNAPSHOT, READ ONLY`` on MySQL), opened read-only where the
engine allows it (SQLite ``mode=ro`` and ``query_only``), so all tables are copied as of one
moment however long the copy takes, while the daemon goes on writing.

- **Order.** Tables in foreign-key order; a row whose self-reference (a folder's parent)
  points at a row copied later, or whose key is part of a cycle between tables, is written
  with that column NULL and fixed up once the rows it points at exist. No foreign key check
  is ever switched off.
- **Batches.** Keyset pagination on the primary key, reading the next batch while the
  previous one is written. PostgreSQL targets are loaded with ``COPY`` (asyncpg
  ``copy_records_to_table``, values passed through SQLAlchemy's own bind processors), the
  others with executemany in a transaction per batch.
- **Digest.** Per table, the exact row count and an order-independent 64-bit digest: the
  sum of a hash of every row (Python's hash of the row tuple; JSON values canonicalised; a
  SQL NULL and a JSON ``null`` told apart). It is computed while reading the source and
  again from the target after the copy, and the two must be equal. The hash is keyed per
  process, so the digests mean something within one switch only.
- **Changes during the copy.** ``ChangeCapture`` listens to the daemon's own engine and
  records, for every write statement, the primary keys it may touch: taken from the
  statement's parameters when its WHERE names the key, read with a SELECT of the same
  WHERE (in the writer's own transaction, before it runs) otherwise, plus the rows that
  ``ON DELETE`` cascades reach. ``reconcile`` then re-reads those keys on both sides and
  makes the target equal, reading back every row it wrote. Writes the capture cannot
  attribute to keys (raw SQL) mark their table for a full comparison.
- **Keys follow their transaction.** A key recorded while its transaction is still open
  must not be handed to ``reconcile`` and forgotten: the re-read would not see the
  uncommitted row, and the key would be in no later set (under load this lost a row at the
  freeze). So keys gather per connection and join the shared set at the transaction's
  commit or rollback; ``commit`` fires before the database has committed, so a set whose
  commit is in flight is offered to every ``take()`` until the same connection shows the
  commit ended (its next transaction begins, or it goes back to the pool).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from sqlalchemy.sql import elements, operators

from lightbox.common import logs
from lightbox.daemon.catalog import probe, tables

log = logs.get("database")

MASK = (1 << 64) - 1
BATCH = 5000
KEY_CHUNK = 500
SMALL_TABLE = 5000  # rows: tables this small are compared whole again under the freeze

# Hooks run on the target after a bulk copy (an engine-specific index that triggers do not
# fill, for one): ``async def hook(conn: AsyncConnection) -> None``.
POST_COPY: list[Callable[[AsyncConnection], Awaitable[None]]] = []


class CopyError(Exception):
    """The copy cannot be made, or the target does not match the source."""

    def __init__(self, message: str, reason: str = "copy_failed") -> None:
        super().__init__(message)
        self.reason = reason


# -- what to copy --------------------------------------------------------------------------
@dataclass
class TablePlan:
    table: sa.Table
    pk: tuple[sa.Column[Any], ...]
    self_refs: tuple[int, ...]  # column positions of foreign keys into this same table
    cyclic: tuple[int, ...]  # column positions of foreign keys that are part of a cycle
    json_cols: tuple[int, ...]  # column positions of JSON columns
    cascades: tuple[tuple[TablePlan | None, sa.ForeignKeyConstraint], ...] = ()

    @property
    def name(self) -> str:
        return self.table.name

    @property
    def int_pk(self) -> bool:
        return len(self.pk) == 1 and isinstance(self.pk[0].type.as_generic(), sa.Integer)

    @property
    def pk_idx(self) -> tuple[int, ...]:
        cols = list(self.table.columns)
        return tuple(cols.index(c) for c in self.pk)

    def columns(self) -> list[Any]:
        """What is selected: every column, then one IS NULL flag per JSON column (a SQL
        NULL and a JSON null read back the same, as None)."""
        cols: list[Any] = list(self.table.columns)
        cols += [self.table.columns[i].is_(None).label(f"_null_{i}") for i in self.json_cols]
        return cols

    def key(self, row: Sequence[Any]) -> Any:
        if len(self.pk) == 1:
            return row[self.pk_idx[0]]
        return tuple(row[i] for i in self.pk_idx)

    def key_clause(self, keys: Sequence[Any]) -> Any:
        if len(self.pk) == 1:
            return self.pk[0].in_(list(keys))
        return sa.tuple_(*self.pk).in_([tuple(k) for k in keys])

    def after(self, last: Any) -> Any:
        if len(self.pk) == 1:
            return self.pk[0] > last
        return sa.tuple_(*self.pk) > sa.tuple_(*[sa.literal(v) for v in last])


def plan(metadata: sa.MetaData | None = None) -> list[TablePlan]:
    """Every table of the catalog, parents before children."""
    md = metadata or tables.metadata
    ordered = list(sa.schema.sort_tables_and_constraints(  # type: ignore[no-untyped-call]
        md.tables.values()))
    cyclic_fks = {fk for fk in (ordered[-1][1] if ordered and ordered[-1][0] is None else [])}
    plans: dict[str, TablePlan] = {}
    for table in md.sorted_tables:
        cols = list(table.columns)
        pk = tuple(table.primary_key.columns)
        if not pk:
            raise CopyError(f"table {table.name} has no primary key; it cannot be copied "
                            "and verified row by row", "schema")
        self_refs, cyclic = [], []
        for fkc in table.foreign_key_constraints:
            positions = [cols.index(c) for c in fkc.columns]
            if fkc.referred_table is table:
                self_refs += positions
            elif fkc in cyclic_fks:
                cyclic += positions
        for pos in self_refs + cyclic:
            if not cols[pos].nullable:
                raise CopyError(f"{table.name}.{cols[pos].name} references rows that may be "
                                "copied later and cannot be NULL meanwhile", "schema")
        json_cols = tuple(i for i, c in enumerate(cols) if isinstance(c.type, sa.JSON))
        plans[table.name] = TablePlan(table, pk, tuple(self_refs), tuple(cyclic), json_cols)
    for p in plans.values():
        refs = []
        for other in plans.values():
            for fkc in other.table.foreign_key_constraints:
                if fkc.referred_table is p.table and (fkc.ondelete or "").upper() in (
                        "CASCADE", "SET NULL"):
                    refs.append((other, fkc))
        p.cascades = tuple(refs)
    return list(plans.values())


def side_table(name: str) -> bool:
    """A table named after a catalog table (``photos_text``, ``photos_terms``...): the
    engine-specific index another migration keeps beside it, which the target's own
    migration and triggers rebuild, so it is never copied."""
    return name not in tables.metadata.tables and any(
        name.startswith(t + "_") for t in tables.metadata.tables)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def hasher(p: TablePlan) -> Callable[[Sequence[Any]], int]:
    if not p.json_cols:
        return lambda row: hash(tuple(row)) & MASK
    idx = p.json_cols

    def h(row: Sequence[Any]) -> int:
        vals = list(row)
        for i in idx:
            vals[i] = _canonical(vals[i])
        return hash(tuple(vals)) & MASK

    return h


def digest_hex(value: int) -> str:
    return f"{value & MASK:016x}"


# -- reading -------------------------------------------------------------------------------
# A transaction seeing one snapshot, begun on a connection SQLAlchemy manages (PostgreSQL's
# driver has sent BEGIN already: the level is set by the first statement).
_CONSISTENT = {
    "sqlite": "BEGIN",
    "postgresql": "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY",
    "mysql": "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY",
}
_BEGIN = {
    "sqlite": "BEGIN",
    "postgresql": "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
    "mysql": "START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY",
}


def reader_url(url: str) -> str:
    """The source URL as the copier opens it: read-only where the engine can say so."""
    parsed = sa.engine.make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and \
            parsed.database != ":memory:":
        return f"sqlite+aiosqlite:///file:{Path(parsed.database)}?mode=ro&uri=true"
    return url


class Reader:
    """Reads rows of the catalog at ``url``: from one snapshot (``snapshot=True``) or
    current (each read sees what is committed at that moment)."""

    def __init__(self, url: str, snapshot: bool, engine: AsyncEngine | None = None,
                 conn: AsyncConnection | None = None) -> None:
        self.url = url
        self.snapshot = snapshot
        self.engine: AsyncEngine = engine or probe.probe_engine(reader_url(url))
        self.conn: AsyncConnection | None = conn
        self._held = False  # inside ``consistent``: reads share one transaction

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    async def open(self) -> None:
        conn = await self.engine.connect()
        self.conn = conn
        if self.snapshot:
            await conn.execution_options(isolation_level="AUTOCOMMIT")
        if self.dialect == "sqlite":
            await conn.exec_driver_sql("PRAGMA query_only = 1")
            if not self.snapshot:
                await conn.commit()
        if self.snapshot:
            await conn.exec_driver_sql(_BEGIN[self.dialect])
            # The snapshot is taken by the first read (SQLite, PostgreSQL): take it now.
            await conn.exec_driver_sql("SELECT 1")

    async def close(self) -> None:
        if self.conn is not None:
            try:
                if self.snapshot:
                    await self.conn.exec_driver_sql("ROLLBACK")
            except Exception:
                log.debug("closing the snapshot failed", exc_info=True)
            await self.conn.close()
            self.conn = None
        await self.engine.dispose()

    async def _rows(self, query: Any) -> list[Any]:
        assert self.conn is not None
        result = await self.conn.execute(query)
        rows = list(result.all())
        if not self.snapshot and not self._held:
            await self.conn.rollback()  # end the read: the next one sees newer commits
        return rows

    @contextlib.asynccontextmanager
    async def consistent(self) -> AsyncIterator[None]:
        """Reads inside see one committed state of the database, not each the latest: a
        catch-up round that read a parent table, then its children a moment later, could
        find a child of a parent committed in between (and the target would refuse it)."""
        if self.snapshot or self._held:
            yield
            return
        assert self.conn is not None
        await self.conn.rollback()
        await self.conn.exec_driver_sql(_CONSISTENT[self.dialect])
        await self.conn.exec_driver_sql("SELECT 1")  # the snapshot is taken now
        self._held = True
        try:
            yield
        finally:
            self._held = False
            await self.conn.rollback()

    async def count(self, table: sa.Table) -> int:
        return int((await self._rows(sa.select(sa.func.count()).select_from(table)))[0][0])

    async def max_key(self, p: TablePlan) -> Any:
        if not p.int_pk:
            return None
        return (await self._rows(sa.select(sa.func.max(p.pk[0]))))[0][0]

    async def batches(self, p: TablePlan, size: int = BATCH) -> AsyncIterator[list[Any]]:
        """Every row of a table in key order, ``size`` at a time; the next batch is read
        while the caller works on the previous one."""
        base = sa.select(*p.columns()).order_by(*p.pk).limit(size)
        pending: asyncio.Task[list[Any]] | None = asyncio.ensure_future(self._rows(base))
        while pending is not None:
            rows = await pending
            pending = None
            if len(rows) == size:
                pending = asyncio.ensure_future(self._rows(base.where(p.after(p.key(rows[-1])))))
            if rows:
                try:
                    yield rows
                except BaseException:
                    if pending is not None:
                        pending.cancel()
                    raise

    async def by_keys(self, p: TablePlan, keys: Iterable[Any]) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        ordered = sorted(set(keys), key=_sort_key)
        for start in range(0, len(ordered), KEY_CHUNK):
            chunk = ordered[start:start + KEY_CHUNK]
            for row in await self._rows(sa.select(*p.columns()).where(p.key_clause(chunk))):
                out[p.key(row)] = row
        return out

    async def keys_above(self, p: TablePlan, lower: Any) -> list[Any]:
        q = sa.select(p.pk[0])
        if lower is not None:
            q = q.where(p.pk[0] > lower)
        return [r[0] for r in await self._rows(q)]


def _sort_key(k: Any) -> Any:
    return (0, k) if not isinstance(k, tuple) else (1, k)


# -- writing -------------------------------------------------------------------------------
class Writer:
    """Writes into the target catalog (already migrated)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine: AsyncEngine = probe.probe_engine(url)
        self.conn: AsyncConnection | None = None
        self._reader: Reader | None = None

    @property
    def reader(self) -> Reader:
        """Reads the target through the writer's own connection."""
        assert self._reader is not None, "writer not open"
        return self._reader

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    async def open(self) -> None:
        conn = await self.engine.connect()
        self.conn = conn
        if self.dialect == "postgresql":
            # A crash loses at most the last few batches, which a retried switch redoes
            # anyway: no need to wait for each commit to reach the disk.
            await conn.exec_driver_sql("SET synchronous_commit = off")
            await conn.commit()
            await conn.execution_options(isolation_level="AUTOCOMMIT")
        elif self.dialect == "sqlite":
            await conn.exec_driver_sql("PRAGMA synchronous = OFF")
            await conn.commit()
        self._reader = Reader(self.url, False, self.engine, conn)

    async def close(self) -> None:
        if self.conn is not None:
            if self.dialect == "sqlite":
                try:
                    await self.conn.exec_driver_sql("PRAGMA synchronous = NORMAL")
                    await self.conn.commit()
                except Exception:
                    log.debug("resetting synchronous failed", exc_info=True)
            await self.conn.close()
            self.conn = None
        await self.engine.dispose()

    async def clear_seeded(self) -> None:
        """Empty the tables whose rows the target's own migrations wrote (``tables.SEEDED``,
        a singleton revision): the copy brings the source's rows, keys included."""
        assert self.conn is not None
        async with self._transaction():
            for name in sorted(tables.SEEDED):
                await self.conn.execute(tables.metadata.tables[name].delete())

    def _values(self, p: TablePlan, row: Sequence[Any], blank: Sequence[int] = ()) -> list[Any]:
        """Column values of a source row as the target should store them."""
        n = len(p.table.columns)
        vals = list(row[:n])
        for j, i in enumerate(p.json_cols):
            if row[n + j]:  # SQL NULL in the source: SQL NULL here too, not JSON null
                vals[i] = sa.null()
        for i in blank:
            vals[i] = None
        return vals

    async def insert(self, p: TablePlan, rows: Sequence[Sequence[Any]],
                     blanks: Mapping[int, Sequence[int]] | None = None) -> None:
        """Insert rows (as read by a Reader); ``blanks[row index]``: columns written NULL."""
        if not rows:
            return
        assert self.conn is not None
        blanks = blanks or {}
        values = [self._values(p, r, blanks.get(i, ())) for i, r in enumerate(rows)]
        if self.dialect == "postgresql":
            await self._copy(p, values)
            return
        names = [c.name for c in p.table.columns]
        async with self._transaction():
            await self.conn.execute(p.table.insert(),
                                    [dict(zip(names, v, strict=True)) for v in values])

    def _transaction(self) -> Any:
        assert self.conn is not None
        if self.dialect == "postgresql":
            return _nothing()
        return self.conn.begin()

    async def _copy(self, p: TablePlan, values: list[list[Any]]) -> None:
        assert self.conn is not None
        dialect = self.engine.dialect
        procs = [c.type.dialect_impl(dialect).bind_processor(dialect) for c in p.table.columns]
        if any(procs) or p.json_cols:
            for v in values:
                for i, proc in enumerate(procs):
                    if isinstance(v[i], elements.Null):
                        v[i] = None
                    elif proc is not None:
                        v[i] = proc(v[i])
        raw = await self.conn.get_raw_connection()
        driver: Any = raw.driver_connection
        await driver.copy_records_to_table(p.name, records=values,
                                           columns=[c.name for c in p.table.columns])

    async def set_columns(self, p: TablePlan, fixes: Sequence[tuple[Any, int, Any]]) -> None:
        """Set deferred columns: (key, column position, value) triples."""
        if not fixes:
            return
        assert self.conn is not None
        cols = list(p.table.columns)
        by_col: dict[int, list[tuple[Any, Any]]] = {}
        for key, pos, value in fixes:
            by_col.setdefault(pos, []).append((key, value))
        async with self._transaction():
            for pos, items in by_col.items():
                where = [c == sa.bindparam(f"k_{j}") for j, c in enumerate(p.pk)]
                stmt = p.table.update().where(*where).values(
                    {cols[pos].name: sa.bindparam("v")})
                params = [{"v": v, **{f"k_{j}": kv for j, kv in
                                      enumerate(k if isinstance(k, tuple) else (k,))}}
                          for k, v in items]
                for start in range(0, len(params), BATCH):
                    await self.conn.execute(stmt, params[start:start + BATCH])

    async def update_rows(self, p: TablePlan, rows: Sequence[Sequence[Any]]) -> None:
        """Rewrite rows that exist in the target (an UPDATE: a delete would cascade)."""
        if not rows:
            return
        assert self.conn is not None
        cols = list(p.table.columns)
        keyset = set(p.pk_idx)
        where = [c == sa.bindparam(f"k_{j}") for j, c in enumerate(p.pk)]
        stmt = p.table.update().where(*where).values(
            {c.name: sa.bindparam(f"v_{i}") for i, c in enumerate(cols) if i not in keyset})
        params = []
        for r in rows:
            vals = self._values(p, r)
            doc = {f"v_{i}": v for i, v in enumerate(vals) if i not in keyset}
            doc.update({f"k_{j}": r[i] for j, i in enumerate(p.pk_idx)})
            params.append(doc)
        async with self._transaction():
            await self.conn.execute(stmt, params)

    async def delete_keys(self, p: TablePlan, keys: Sequence[Any]) -> None:
        if not keys:
            return
        assert self.conn is not None
        cols = list(p.table.columns)
        ordered = sorted(keys, key=_sort_key)
        async with self._transaction():
            for start in range(0, len(ordered), KEY_CHUNK):
                chunk = ordered[start:start + KEY_CHUNK]
                if p.self_refs:  # children first would need an order; unhook them instead
                    await self.conn.execute(p.table.update().where(p.key_clause(chunk))
                                            .values({cols[i].name: None for i in p.self_refs}))
                await self.conn.execute(p.table.delete().where(p.key_clause(chunk)))

    async def reset_sequences(self, plans: Sequence[TablePlan]) -> None:
        """PostgreSQL: serial sequences past the ids copied explicitly (the other engines
        continue after the highest key on their own)."""
        if self.dialect != "postgresql":
            return
        assert self.conn is not None
        for p in plans:
            if not p.int_pk or p.pk[0].autoincrement is False:
                continue
            table, col = p.name, p.pk[0].name
            await self.conn.execute(sa.text(
                f"SELECT setval(seq, coalesce((SELECT max({col}) FROM {table}), 1), "
                f"(SELECT max({col}) FROM {table}) IS NOT NULL) FROM "
                f"(SELECT pg_get_serial_sequence('{table}', '{col}') AS seq) s "
                "WHERE seq IS NOT NULL"))

    async def analyze(self, plans: Sequence[TablePlan]) -> None:
        """Planner statistics for the freshly loaded tables."""
        assert self.conn is not None
        async with self._transaction():
            if self.dialect == "sqlite":
                await self.conn.exec_driver_sql("ANALYZE")
            elif self.dialect == "postgresql":
                for p in plans:
                    await self.conn.exec_driver_sql(f"ANALYZE {p.name}")
            else:
                await self.conn.exec_driver_sql(
                    "ANALYZE TABLE " + ", ".join(p.name for p in plans))

    async def post_copy(self) -> None:
        assert self.conn is not None
        for hook in POST_COPY:
            async with self._transaction():
                await hook(self.conn)


class _nothing:
    async def __aenter__(self) -> None:
        return None

    async def __aexit__(self, *exc: object) -> None:
        return None


# -- the bulk copy ------------------------------------------------------------------------
@dataclass
class TableState:
    """What is known about one table of the copy."""

    plan: TablePlan
    rows: int = 0  # in the source snapshot
    copied: int = 0
    digest: int = 0  # of the source (snapshot, then kept current by reconcile)
    target_digest: int | None = None  # of the target, as read back
    watermark: Any = None  # highest integer key in the snapshot
    seconds: float = 0.0

    def describe(self) -> dict[str, Any]:
        return {"rows": self.rows, "digest": digest_hex(self.digest),
                "verified": self.target_digest is not None
                and self.target_digest == self.digest,
                "seconds": round(self.seconds, 2)}


Progress = Callable[[str, int, int | None], None]
AfterTable = Callable[[str], Awaitable[None]]


async def copy_all(source: Reader, target: Writer, plans: Sequence[TablePlan],
                   progress: Progress, after_table: AfterTable | None = None
                   ) -> dict[str, TableState]:
    """Copy every table from the source snapshot into the target; digests on the way."""
    states = {p.name: TableState(p) for p in plans}
    for p in plans:
        st = states[p.name]
        st.rows = await source.count(p.table)
        st.watermark = await source.max_key(p)
    total = sum(s.rows for s in states.values())
    done = 0
    await target.clear_seeded()
    progress("copy", 0, total)
    cyclic_fixes: list[tuple[TablePlan, list[tuple[Any, int, Any]]]] = []
    for p in plans:
        st = states[p.name]
        started = time.monotonic()
        h = hasher(p)
        self_fixes: list[tuple[Any, int, Any]] = []
        deferred_cycle: list[tuple[Any, int, Any]] = []
        write: asyncio.Task[None] | None = None
        try:
            async for rows in source.batches(p):
                blanks: dict[int, list[int]] = {}
                for i, row in enumerate(rows):
                    st.digest = (st.digest + h(row)) & MASK
                    if p.self_refs or p.cyclic:
                        key = p.key(row)
                        for pos in p.self_refs:
                            ref = row[pos]
                            if ref is not None and not (p.int_pk and ref < key):
                                blanks.setdefault(i, []).append(pos)
                                self_fixes.append((key, pos, ref))
                        for pos in p.cyclic:
                            if row[pos] is not None:
                                blanks.setdefault(i, []).append(pos)
                                deferred_cycle.append((key, pos, row[pos]))
                if write is not None:
                    await write
                write = asyncio.ensure_future(target.insert(p, rows, blanks))
                st.copied += len(rows)
                done += len(rows)
                progress("copy", done, total)
            if write is not None:
                await write
                write = None
        finally:
            if write is not None and not write.done():
                write.cancel()
        if st.copied != st.rows:
            raise CopyError(f"{p.name}: {st.copied} rows read but the snapshot counts "
                            f"{st.rows}", "copy_failed")
        await target.set_columns(p, self_fixes)
        if deferred_cycle:
            cyclic_fixes.append((p, deferred_cycle))
        st.seconds = time.monotonic() - started
        log.info("table copied", table=p.name, rows=st.rows, seconds=round(st.seconds, 2))
        if after_table is not None:
            await after_table(p.name)
    for p, fixes in cyclic_fixes:
        await target.set_columns(p, fixes)
    await target.reset_sequences(plans)
    await target.post_copy()
    return states


async def verify_all(target: Writer, states: dict[str, TableState],
                     progress: Progress, after_table: AfterTable | None = None) -> None:
    """Read every table back from the target: exact counts and digests, or CopyError."""
    total = sum(s.rows for s in states.values())
    done = 0
    progress("verify", 0, total)
    for st in states.values():
        p = st.plan
        h = hasher(p)
        digest = count = 0
        async for rows in target.reader.batches(p):
            for row in rows:
                digest = (digest + h(row)) & MASK
            count += len(rows)
            done += len(rows)
            progress("verify", done, total)
        st.target_digest = digest
        if count != st.rows or digest != st.digest:
            raise CopyError(
                f"{p.name}: the target has {count} rows with digest {digest_hex(digest)}, the "
                f"source {st.rows} with digest {digest_hex(st.digest)}", "verify_failed")
        log.info("table verified", table=p.name, rows=count, digest=digest_hex(digest))
        if after_table is not None:
            await after_table(p.name)


# -- changes made while copying -------------------------------------------------------------
_WRITE_SQL = re.compile(
    r"^\s*(?:insert\s+(?:or\s+\w+\s+)?into|replace\s+into|update(?:\s+or\s+\w+)?|"
    r"delete\s+from|truncate(?:\s+table)?)\s+[`\"\[]?(\w+)", re.I)
_DDL_SQL = re.compile(r"^\s*(?:create|alter|drop|rename)\s", re.I)


@dataclass
class Captured:
    keys: dict[str, set[Any]] = field(default_factory=dict)
    full: set[str] = field(default_factory=set)  # tables to compare whole
    lowest_insert: dict[str, Any] = field(default_factory=dict)  # SQLite rowid reuse bound
    schema_changed: str | None = None

    def size(self) -> int:
        return sum(len(v) for v in self.keys.values()) + 1000 * len(self.full)

    def merge(self, other: Captured) -> None:
        """Add what ``other`` recorded (the SQLite insert bound stays the lowest)."""
        for name, keys in other.keys.items():
            self.keys.setdefault(name, set()).update(keys)
        self.full |= other.full
        for name, low in other.lowest_insert.items():
            mine = self.lowest_insert.get(name)
            self.lowest_insert[name] = low if mine is None or low < mine else mine
        self.schema_changed = self.schema_changed or other.schema_changed

    def empty(self) -> bool:
        return not (self.keys or self.full or self.lowest_insert or self.schema_changed)


class ChangeCapture:
    """Records the keys every write on the daemon's engine may touch (see module doc)."""

    def __init__(self, plans: Sequence[TablePlan]) -> None:
        self.plans = {p.name: p for p in plans}
        self.current = Captured()  # what committed (or is committing) since the last take
        # Per DBAPI connection (keyed by its record's ``info`` dict, which lives as long as
        # the connection): what its open transaction wrote, and what it wrote in a
        # transaction whose commit may still be in flight.
        self._open: dict[int, Captured] = {}
        self._settling: dict[int, Captured] = {}
        self._engine: sa.Engine | None = None

    _HOOKS = ("before_execute", "after_execute", "before_cursor_execute", "begin", "commit",
              "rollback", "checkin")

    def attach(self, engine: AsyncEngine) -> None:
        self._engine = engine.sync_engine
        for name in self._HOOKS:
            event.listen(self._engine, name, getattr(self, f"_on_{name}"))

    def detach(self) -> None:
        if self._engine is not None:
            for name in self._HOOKS:
                event.remove(self._engine, name, getattr(self, f"_on_{name}"))
            self._engine = None

    def take(self) -> Captured:
        """What committed so far, plus what transactions still open or still committing
        have written (re-reading those is harmless; dropping them is not); capturing goes
        on into a fresh set, which starts with the commits not yet known to be over."""
        taken, self.current = self.current, Captured()
        for pending in self._open.values():
            taken.merge(pending)
        for settling in self._settling.values():
            self.current.merge(settling)
        return taken

    # -- transaction boundaries -----------------------------------------------------------
    def _tx(self, conn: Connection) -> Captured:
        return self._open.setdefault(id(conn.info), Captured())

    def _ended(self, conn: Connection) -> None:
        tx = self._open.pop(id(conn.info), None)
        if tx is not None and not tx.empty():
            self.current.merge(tx)
            settling = self._settling.setdefault(id(conn.info), Captured())
            settling.merge(tx)

    def _settled(self, info: Any) -> None:
        self._settling.pop(id(info), None)
        tx = self._open.pop(id(info), None)
        if tx is not None:  # returned to the pool without commit or rollback events
            self.current.merge(tx)

    def _on_begin(self, conn: Connection) -> None:
        self._settling.pop(id(conn.info), None)  # its previous commit has ended

    def _on_commit(self, conn: Connection) -> None:
        self._ended(conn)

    def _on_rollback(self, conn: Connection) -> None:
        self._ended(conn)

    def _on_checkin(self, dbapi_connection: Any, record: Any) -> None:
        if record is not None:
            self._settled(record.info)

    # -- hooks (run inside the writer's statement, in its transaction) --------------------
    def _add(self, into: Captured, name: str, keys: Iterable[Any]) -> None:
        into.keys.setdefault(name, set()).update(
            tuple(k) if isinstance(k, (list, tuple)) else k for k in keys)

    def _on_before_execute(self, conn: Connection, clause: Any, multiparams: Any,
                           params: Any, options: Any) -> None:
        into = self._tx(conn)
        try:
            self._classify(conn, into, clause, _param_sets(multiparams, params))
        except Exception as exc:
            # Never break the daemon's write; compare the table whole instead.
            table = getattr(clause, "table", None)
            name = getattr(table, "name", None)
            if name in self.plans:
                into.full.add(name)
            else:
                into.full.update(self.plans)
            log.debug("change capture fell back to a full comparison", error=repr(exc))

    def _classify(self, conn: Connection, into: Captured, clause: Any,
                  sets: list[dict[str, Any]]) -> None:
        if isinstance(clause, elements.TextClause):
            self._text(into, clause.text)
            return
        if not isinstance(clause, (sa.Insert, sa.Update, sa.Delete)):
            if isinstance(clause, sa.schema.ExecutableDDLElement):
                into.schema_changed = type(clause).__name__
            return
        table = clause.table
        p = self.plans.get(getattr(table, "name", ""))
        if p is None:
            return
        if isinstance(clause, sa.Insert):
            self._insert(conn, into, p, clause, sets)
            return
        if isinstance(clause, sa.Update):
            changed = {getattr(k, "key", k) for k in (clause._values or {})}
            if changed & {c.key for c in p.pk}:
                into.full.add(p.name)
                return
        keys = self._where_keys(conn, p, clause.whereclause, sets)
        if keys is None:
            into.full.add(p.name)
            return
        self._add(into, p.name, keys)
        if isinstance(clause, sa.Delete):
            self._cascade(conn, into, p, keys, depth=0)

    def _insert(self, conn: Connection, into: Captured, p: TablePlan, clause: sa.Insert,
                sets: list[dict[str, Any]]) -> None:
        names = [c.key for c in p.pk]
        values = {str(getattr(k, "key", k)): v for k, v in (clause._values or {}).items()}
        if clause._multi_values or getattr(clause, "select", None) is not None:
            into.full.add(p.name)
            return
        keys = []
        for s in sets or [{}]:
            merged: dict[str, Any] = {k: getattr(v, "value", v) for k, v in values.items()}
            merged.update(s)
            if all(n in merged and merged[n] is not None for n in names):
                keys.append(tuple(merged[n] for n in names) if len(names) > 1
                            else merged[names[0]])
        if len(keys) == len(sets or [{}]):
            self._add(into, p.name, keys)
            return
        if not p.int_pk:
            into.full.add(p.name)
            return
        if conn.dialect.name == "sqlite":
            # SQLite gives a new row max(rowid) + 1, which can be a key below the snapshot's
            # highest once rows were deleted: remember where new keys start.
            top = conn.execute(sa.select(sa.func.max(p.pk[0]))).scalar()
            low = into.lowest_insert.get(p.name)
            into.lowest_insert[p.name] = top if low is None or (
                top is not None and top < low) else low
            if top is None:
                into.lowest_insert[p.name] = 0

    def _on_after_execute(self, conn: Connection, clause: Any, multiparams: Any,
                          params: Any, options: Any, result: Any) -> None:
        if not isinstance(clause, sa.Insert):
            return
        p = self.plans.get(getattr(clause.table, "name", ""))
        if p is None:
            return
        try:
            pk = result.inserted_primary_key
        except Exception:
            return
        if pk is not None and all(v is not None for v in pk):
            self._add(self._tx(conn), p.name, [tuple(pk) if len(pk) > 1 else pk[0]])

    def _on_before_cursor_execute(self, conn: Connection, cursor: Any, statement: str,
                                  parameters: Any, context: Any, executemany: bool) -> None:
        if context is not None and getattr(context, "compiled", None) is not None:
            return  # a Core statement: before_execute saw it
        self._text(self._tx(conn), statement)

    def _text(self, into: Captured, sql: str) -> None:
        m = _WRITE_SQL.match(sql)
        if m:
            name = m.group(1)
            if name in self.plans:
                into.full.add(name)
        elif _DDL_SQL.match(sql):
            into.schema_changed = sql.strip().split("\n")[0][:80]

    def _where_keys(self, conn: Connection, p: TablePlan, where: Any,
                    sets: list[dict[str, Any]]) -> list[Any] | None:
        if where is None:
            return None
        direct = _direct_keys(p, where, sets)
        if direct is not None:
            return direct
        q = sa.select(*p.pk).where(where)
        keys: list[Any] = []
        for s in sets or [{}]:
            for row in conn.execute(q, s):
                keys.append(tuple(row) if len(p.pk) > 1 else row[0])
        return keys

    def _cascade(self, conn: Connection, into: Captured, p: TablePlan, keys: list[Any],
                 depth: int) -> None:
        if not keys or depth > 64:
            return
        for child, fkc in p.cascades:
            if child is None or len(fkc.columns) != 1 or len(p.pk) != 1:
                if child is not None:
                    into.full.add(child.name)
                continue
            col = next(iter(fkc.columns))
            found: list[Any] = []
            for start in range(0, len(keys), KEY_CHUNK):
                chunk = keys[start:start + KEY_CHUNK]
                for row in conn.execute(sa.select(*child.pk).where(col.in_(chunk))):
                    found.append(tuple(row) if len(child.pk) > 1 else row[0])
            new = [k for k in found if k not in into.keys.get(child.name, set())]
            self._add(into, child.name, found)
            self._cascade(conn, into, child, new, depth + 1)


def _param_sets(multiparams: Any, params: Any) -> list[dict[str, Any]]:
    if multiparams:
        if isinstance(multiparams, dict):
            return [multiparams]
        out = []
        for m in multiparams:
            if isinstance(m, dict):
                out.append(m)
            elif isinstance(m, (list, tuple)):
                out.extend(x for x in m if isinstance(x, dict))
        return out
    return [params] if params else []


def _direct_keys(p: TablePlan, where: Any, sets: list[dict[str, Any]]) -> list[Any] | None:
    """Keys named outright by ``pk = :param`` or ``pk IN (...)`` in the WHERE (or in one
    of its AND terms), without asking the database."""
    if len(p.pk) != 1:
        return None
    pk = p.pk[0]
    clauses = [where]
    if isinstance(where, elements.BooleanClauseList) and where.operator is operators.and_:
        clauses = list(where.clauses)
    for c in clauses:
        if not isinstance(c, elements.BinaryExpression):
            continue
        if not (isinstance(c.left, sa.Column) and c.left.table is p.table
                and c.left.key == pk.key):
            continue
        right: Any = c.right
        if isinstance(right, elements.Grouping):
            right = right.element
        if not isinstance(right, elements.BindParameter):
            continue
        if c.operator is operators.eq:
            if sets and all(right.key in s for s in sets):
                return [s[right.key] for s in sets]
            if right.value is not None and not sets:
                return [right.value]
            if right.value is not None and all(right.key not in s for s in sets):
                return [right.value]
        elif c.operator is operators.in_op and right.expanding:
            if sets and all(right.key in s for s in sets):
                return [k for s in sets for k in s[right.key]]
            if right.value is not None:
                return list(right.value)
    return None


# -- catching up -------------------------------------------------------------------------
async def reconcile(source: Reader, target: Writer, plans: Sequence[TablePlan],
                    states: dict[str, TableState], captured: Captured) -> int:
    """``_reconcile`` reading the source from one snapshot (``Reader.consistent``)."""
    async with source.consistent():
        return await _reconcile(source, target, plans, states, captured)


async def _reconcile(source: Reader, target: Writer, plans: Sequence[TablePlan],
                     states: dict[str, TableState], captured: Captured) -> int:
    """Make the target equal to the source for every captured key; returns rows rewritten.

    Rows are inserted and updated in foreign-key order and deleted in the reverse order;
    every row written is read back from the target and compared with the source row.
    """
    if captured.schema_changed:
        raise CopyError(f"the catalog's schema changed during the copy "
                        f"({captured.schema_changed})", "schema_changed")
    work: dict[str, set[Any]] = {}
    for p in plans:
        keys = set(captured.keys.get(p.name, ()))
        if p.int_pk:
            st = states[p.name]
            lower = st.watermark
            low = captured.lowest_insert.get(p.name)
            if low is not None and (lower is None or low < lower):
                lower = low
            keys.update(await source.keys_above(p, lower))
            if st.watermark is None or (keys and max(keys) > st.watermark):
                st.watermark = max(keys) if keys else st.watermark
        if p.name in captured.full:
            keys.update(k for k in [p.key(r) async for rows in source.batches(p)
                                    for r in rows])
            keys.update(k for k in [p.key(r) async for rows in target.reader.batches(p)
                                    for r in rows])
        if keys:
            work[p.name] = keys
    rewritten = 0
    gone: list[tuple[TablePlan, list[Any]]] = []
    for p in plans:
        if not work.get(p.name):
            continue
        keys = work[p.name]
        h = hasher(p)
        st = states[p.name]
        src = await source.by_keys(p, keys)
        dst = await target.reader.by_keys(p, keys)
        inserts: list[Any] = []
        updates: list[Any] = []
        fixes: list[tuple[Any, int, Any]] = []
        blanks: dict[int, list[int]] = {}
        for k in sorted(keys, key=_sort_key):
            s, t = src.get(k), dst.get(k)
            hs = h(s) if s is not None else None
            ht = h(t) if t is not None else None
            if hs == ht:
                continue
            st.digest = (st.digest - (ht or 0) + (hs or 0)) & MASK
            if s is None:
                continue  # deleted below, children first
            if t is None:
                i = len(inserts)
                inserts.append(s)
                # A reference to a row inserted later in this round waits for it (rows
                # already in the target, or inserted earlier in key order, are there).
                for pos in p.self_refs:
                    ref = s[pos]
                    if ref is not None and ref in src and ref not in dst and not (
                            p.int_pk and ref < k):
                        blanks.setdefault(i, []).append(pos)
                        fixes.append((k, pos, ref))
                for pos in p.cyclic:
                    if s[pos] is not None:
                        blanks.setdefault(i, []).append(pos)
                        fixes.append((k, pos, s[pos]))
            else:
                updates.append(s)
        await target.insert(p, inserts, blanks)
        await target.set_columns(p, fixes)
        await target.update_rows(p, updates)
        vanished = [k for k in keys if k not in src and k in dst]
        if vanished:
            gone.append((p, vanished))
        written = [p.key(r) for r in inserts + updates]
        if written:
            back = await target.reader.by_keys(p, written)
            for k in written:
                if k not in back or h(back[k]) != h(src[k]):
                    raise CopyError(f"{p.name}: row {k!r} differs in the target after it was "
                                    "copied again", "verify_failed")
        rewritten += len(inserts) + len(updates)
    for p, keys in reversed(gone):
        await target.delete_keys(p, keys)
        rewritten += len(keys)
    if any(work):
        await target.reset_sequences(plans)
    for p in plans:
        states[p.name].target_digest = states[p.name].digest
    return rewritten


async def final_check(source: Reader, target: Writer, states: dict[str, TableState]) -> None:
    """Under the write freeze: exact counts on both sides, and small tables compared whole."""
    for st in states.values():
        p = st.plan
        src, dst = await source.count(p.table), await target.reader.count(p.table)
        if src != dst:
            raise CopyError(f"{p.name}: {src} rows in the source, {dst} in the target",
                            "verify_failed")
        st.rows = src
        if src <= SMALL_TABLE:
            h = hasher(p)
            ds = sum([h(r) async for rows in source.batches(p) for r in rows]) & MASK
            dt_ = sum([h(r) async for rows in target.reader.batches(p) for r in rows]) & MASK
            if ds != dt_:
                raise CopyError(f"{p.name}: digests differ after the final copy "
                                f"({digest_hex(ds)} / {digest_hex(dt_)})", "verify_failed")
            st.digest = st.target_digest = ds
