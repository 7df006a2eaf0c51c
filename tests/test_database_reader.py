"""``Database.reader``, the pool ``photos.search`` reads through (issue 13): on PostgreSQL
and MariaDB its connections are in autocommit (no BEGIN, no ROLLBACK on return, a one-round
trip pre-ping) and their sessions refuse writes, so nothing can write past the write gate
through it; it follows the catalog engine across a swap; on SQLite it is the engine."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from catalog_fixtures import db_url

from lightbox.daemon.catalog import queries
from lightbox.daemon.catalog.database import Database, make_engine

__all__ = ["db_url"]


async def test_reader_reads_without_transactions_refuses_writes_and_follows_a_swap(
        db_url: str) -> None:
    db = Database(db_url)
    await db.start()
    try:
        reader = db.reader
        assert db.reader is reader  # one pool, not one per read
        dialect = db.dialect
        if dialect == "sqlite":
            assert reader is db.engine
            return
        assert reader is not db.engine
        statements: list[str] = []

        def seen(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            statements.append(statement)

        sa.event.listen(reader.sync_engine, "before_cursor_execute", seen)
        async def in_transaction(conn: Any) -> bool:
            """The server's own word: PostgreSQL's transaction status in its last
            ReadyForQuery (asyncpg keeps it), MariaDB's ``@@in_transaction``."""
            if dialect == "postgresql":
                raw = await conn.get_raw_connection()
                return bool(raw.driver_connection.is_in_transaction())
            return bool((await conn.execute(sa.text("SELECT @@in_transaction"))).scalar())

        async with reader.connect() as conn:
            doc = await queries.search(conn, text="nothing-here")
            assert not await in_transaction(conn)
        assert doc["photos"] == [] and statements
        async with db.engine.connect() as conn:  # what the test tells apart
            await conn.execute(sa.text("SELECT count(*) FROM sources"))  # a table's read
            assert await in_transaction(conn)
        async with reader.connect() as conn:
            # The real database: a session setting, not a convention.
            with pytest.raises(sa.exc.DBAPIError) as err:
                await conn.execute(sa.text("UPDATE sources SET name = name WHERE id = -1"))
            assert "read-only" in str(err.value).lower() or \
                "read only" in str(err.value).lower()
        async with db.engine.begin() as conn:  # the ordinary engine still writes
            await conn.execute(sa.text("UPDATE sources SET name = name WHERE id = -1"))

        new = make_engine(db.url, db)
        old = db.swap(new, db.url, db.revision)
        after = db.reader
        assert after is not reader  # a pool of the new engine's
        await db.run_switch_hooks()  # disposes the previous reader
        async with after.connect() as conn:
            assert (await conn.execute(sa.text("SELECT 1"))).scalar() == 1
        await old.dispose()
    finally:
        await db.stop()
