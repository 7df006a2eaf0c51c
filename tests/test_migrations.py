"""Alembic migrations on SQLite, PostgreSQL and MariaDB: fresh and older databases reach head,
and the migrated schema is exactly the metadata the code uses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from lightbox.daemon.catalog import dupes, tables, textindex
from lightbox.daemon.catalog.database import Database, head_revision, mysql_lock_name


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite+aiosqlite:///{tmp_path}/catalog.db"
    if request.param == "postgresql":
        return str(request.getfixturevalue("pg_scratch_url"))
    return str(request.getfixturevalue("mysql_scratch_url"))


def _diff(conn: sa.Connection) -> list[Any]:
    ctx = MigrationContext.configure(conn, opts={
        "compare_type": True,
        # The text index lives beside the metadata (FTS5 tables, trigram indexes, FULLTEXT
        # side tables): test_text_index checks it; so do the exact duplicates' maintained
        # counts (test_duplicate_counts).
        "include_name": lambda name, type_, parent: not (textindex.owns(name)
                                                         or dupes.owns(name))})
    return [d for d in compare_metadata(ctx, tables.metadata)
            # SQLite reports CHECK constraints it cannot reflect the same way; types and
            # columns/indexes are what matter here.
            if not (isinstance(d, tuple) and d[0] in ("add_constraint", "remove_constraint"))]


async def test_fresh_database_reaches_head_and_matches_metadata(db_url: str) -> None:
    db = Database(db_url)
    await db.start()
    try:
        assert db.revision == head_revision()
        async with db.engine.connect() as conn:
            diff = await conn.run_sync(_diff)
        assert diff == [], diff
    finally:
        await db.stop()


async def test_older_revision_reaches_head_keeping_data(db_url: str) -> None:
    db = Database(db_url)
    try:
        db._engine = __import__("lightbox.daemon.catalog.database", fromlist=["x"]).make_engine(
            db_url)
        assert await db.migrate("0001") == "0001"
        async with db.engine.begin() as conn:
            await conn.execute(tables.jobs.insert().values(
                kind="scan", state="succeeded", params={}, created_at=sa.func.now()))
        await db.stop()
        db = Database(db_url)
        await db.start()  # what a daemon does at start
        assert db.revision == head_revision()
        async with db.engine.connect() as conn:
            assert await conn.scalar(sa.select(sa.func.count()).select_from(tables.jobs)) == 1
            assert await conn.run_sync(_diff) == []
    finally:
        await db.stop()


async def test_starting_twice_is_a_no_op(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path}/c.db"
    for _ in range(2):
        db = Database(url)
        await db.start()
        assert db.revision == head_revision()
        await db.stop()


async def test_unreachable_database_is_a_clear_error() -> None:
    from lightbox.daemon.catalog.database import DatabaseError

    db = Database("postgresql+asyncpg://nobody@127.0.0.1:1/none")
    with pytest.raises(DatabaseError, match="cannot open the catalog"):
        await db.start()


async def test_an_s3_targets_secret_moves_out_of_its_config_row(db_url: str) -> None:
    """0030: the secret key an S3 target kept in its config JSON moves to
    backup_target_secrets (with its fingerprint); the rest of the config stays."""
    from lightbox.daemon.catalog.database import make_engine
    from lightbox.daemon.library.sources import secret_fingerprint

    db = Database(db_url)
    try:
        db._engine = make_engine(db_url)
        assert await db.migrate("0016_perf") == "0016_perf"
        cfg = {"bucket": "photos", "access_key_id": "AKID", "secret_access_key": "s3cr3t",
               "schedule": None}
        async with db.engine.begin() as conn:
            for name, kind, config in (("cloud", "s3", cfg), ("usb", "local", {"roots": []})):
                await conn.execute(tables.backup_targets.insert().values(
                    name=name, kind=kind, path=None if kind == "s3" else "/mnt/usb",
                    marker=name, config=config, created_at=sa.func.now()))
        await db.stop()
        db = Database(db_url)
        await db.start()
        T, S = tables.backup_targets, tables.backup_target_secrets
        async with db.engine.connect() as conn:
            configs = {r.name: r.config for r in await conn.execute(sa.select(T))}
            held = (await conn.execute(sa.select(S))).all()
        assert configs["cloud"] == {"bucket": "photos", "access_key_id": "AKID",
                                    "schedule": None}
        assert configs["usb"] == {"roots": []}
        assert [(r.name, r.value, r.fingerprint) for r in held] == [
            ("secret_access_key", "s3cr3t", secret_fingerprint("s3cr3t"))]
    finally:
        await db.stop()


async def test_a_mysql_migration_lock_holds_only_its_own_database(
        mysql_scratch_url: str, mysql_url: str) -> None:
    """GET_LOCK names are server-wide: a migration holding the lock of one catalog must not
    make another catalog's migration on the same server wait (or time out after 120 s)."""
    import asyncio

    from sqlalchemy.ext.asyncio import create_async_engine

    other = create_async_engine(mysql_url)
    try:
        async with other.connect() as conn:
            # Another catalog (the server's `test` database) is migrating: its lock is held.
            # Another catalog (the server's `test` database) is migrating: its lock is held,
            # and so is the one server-wide name earlier versions used.
            db_name = await conn.scalar(sa.text("SELECT DATABASE()"))
            for held in (mysql_lock_name(str(db_name)), "lightbox_migrate"):
                assert await conn.scalar(sa.text("SELECT GET_LOCK(:n, 0)"), {"n": held}) == 1
            db = Database(mysql_scratch_url)
            await asyncio.wait_for(db.start(), 60)
            try:
                assert db.revision == head_revision()
            finally:
                await db.stop()
            await conn.execute(sa.text("SELECT RELEASE_ALL_LOCKS()"))
    finally:
        await other.dispose()
