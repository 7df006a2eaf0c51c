"""SQLite planner statistics (issue 13, daemon start): a catalog without them starts with
sampled ones (``analysis_limit``: tens of milliseconds, not a full ANALYZE's second at a
million photos) and gets the full ones once the daemon serves; every pooled connection then
plans with the full ones, not only the one that ran ANALYZE."""

from __future__ import annotations

import asyncio
import sqlite3
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from catalog_fixtures import CatalogBuilder, big_folder, standard

from lightbox.daemon.catalog.database import SAMPLED_ANALYSIS_ROWS, Database

PHOTOS = 6000  # several times SAMPLED_ANALYSIS_ROWS, so a sampled row count is an estimate


def photo_rows_in_stats(path: Path) -> dict[str, int]:
    """Row counts sqlite_stat1 gives the photos table, by index."""
    with sqlite3.connect(path) as con:
        return {idx: int(stat.split()[0]) for idx, stat in con.execute(
            "SELECT idx, stat FROM sqlite_stat1 WHERE tbl = 'photos' AND idx IS NOT NULL")}


async def build(path: Path) -> int:
    b, where = await standard(f"sqlite+aiosqlite:///{path}")
    await big_folder(b, where["big"], PHOTOS)
    await b.finish()
    await b.close()
    with sqlite3.connect(path) as con:
        con.execute("DROP TABLE IF EXISTS sqlite_stat1")  # as a catalog never analyzed
        return int(con.execute("SELECT count(*) FROM photos").fetchone()[0])


async def test_sampled_at_start_then_full_on_every_connection(tmp_path: Path) -> None:
    path = tmp_path / "catalog.db"
    count = await build(path)
    assert count > 3 * SAMPLED_ANALYSIS_ROWS
    db = Database(f"sqlite+aiosqlite:///{path}")
    await db.start()
    try:
        assert db.statistics == "sampled"
        sampled = photo_rows_in_stats(path)
        assert sampled, "the start gave the planner no statistics"
        # Estimates from a sample of each index, not a count of the table.
        assert any(n != count for n in sampled.values()), sampled
        async with db.engine.connect() as other:
            before = await other.scalar(sa.text("PRAGMA schema_version"))
            await other.commit()
            await db.refine_statistics()
            assert db.statistics == "full"
            full = photo_rows_in_stats(path)
            assert set(full) == set(sampled)
            assert all(n == count for n in full.values()), full
            # A connection that was open all along sees a new schema, and with it reloads
            # the statistics (a plain re-ANALYZE would leave it planning with the old).
            after = await other.scalar(sa.text("PRAGMA schema_version"))
            assert after is not None and before is not None and after > before
        await db.refine_statistics()  # nothing left to refine: no second full ANALYZE
        assert photo_rows_in_stats(path) == full
    finally:
        await db.stop()


async def test_a_catalog_with_statistics_keeps_them_and_force_redoes_them(
        tmp_path: Path) -> None:
    path = tmp_path / "catalog.db"
    count = await build(path)
    with sqlite3.connect(path) as con:
        con.execute("ANALYZE")
        con.execute("UPDATE sqlite_stat1 SET stat = '7 1' WHERE tbl = 'photos'")
    db = Database(f"sqlite+aiosqlite:///{path}")
    await db.start()
    try:
        assert db.statistics is None  # found, left alone
        assert set(photo_rows_in_stats(path).values()) == {7}
        await db.refine_statistics()
        assert set(photo_rows_in_stats(path).values()) == {7}
        await db.analyze(force=True)  # after a scan that changed many rows
        assert db.statistics == "full"
        assert set(photo_rows_in_stats(path).values()) == {count}
    finally:
        await db.stop()


async def test_sampled_statistics_left_by_a_stop_are_refined_by_the_next_start(
        tmp_path: Path) -> None:
    path = tmp_path / "catalog.db"
    count = await build(path)
    db = Database(f"sqlite+aiosqlite:///{path}")
    await db.start()
    await db.stop()  # stopped before it refined them
    assert any(n != count for n in photo_rows_in_stats(path).values())
    db = Database(f"sqlite+aiosqlite:///{path}")
    await db.start()
    try:
        assert db.statistics == "sampled"
        await db.refine_statistics()
        assert set(photo_rows_in_stats(path).values()) == {count}
        with sqlite3.connect(path) as con:  # the mark went with the sampled table
            assert con.execute("SELECT count(*) FROM sqlite_stat1 WHERE tbl NOT IN "
                               "(SELECT name FROM sqlite_master)").fetchone()[0] == 0
    finally:
        await db.stop()
    db = Database(f"sqlite+aiosqlite:///{path}")
    await db.start()
    try:
        assert db.statistics is None
    finally:
        await db.stop()


async def test_a_small_catalog_gets_full_statistics_at_once(tmp_path: Path) -> None:
    path = tmp_path / "catalog.db"
    b, _ = await standard(f"sqlite+aiosqlite:///{path}")
    await b.close()
    with sqlite3.connect(path) as con:
        con.execute("DROP TABLE IF EXISTS sqlite_stat1")
        count = int(con.execute("SELECT count(*) FROM photos").fetchone()[0])
    assert 0 < count < SAMPLED_ANALYSIS_ROWS
    db = Database(f"sqlite+aiosqlite:///{path}")
    await db.start()
    try:
        assert db.statistics == "full"  # the sample was the whole table: nothing follows
        assert set(photo_rows_in_stats(path).values()) == {count}
    finally:
        await db.stop()


def test_the_daemon_serves_before_the_full_statistics_and_then_has_them(
        make_daemon: Any) -> None:
    d = make_daemon(start=False)
    path = d.data_dir / "catalog.db"
    count = asyncio.run(build(path))
    d.start()
    first = d.call("system.status")["database"]["statistics"]
    deadline = time.monotonic() + 60
    while True:
        stats = d.call("system.status")["database"]["statistics"]
        if stats == "full" or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert stats == "full"
    assert first in ("sampled", "full")  # "full" if the reconciler was quicker than us
    assert set(photo_rows_in_stats(path).values()) == {count}
    assert "catalog statistics sampled" in d.log()
    assert "catalog statistics refreshed" in d.log()


__all__ = ["CatalogBuilder"]
