"""The catalog's health on MariaDB/MySQL: the server's InnoDB buffer pool beside the
catalog's data and indexes (issue 13: at 1,000,000 photos the default 128 MB pool holds a
quarter of the catalog, and text search reads the rest from disk at every call).

On the real servers: the figures are the server's own (``@@innodb_buffer_pool_size``,
``information_schema.tables``), the warning is machine-readable (reason
``buffer_pool_small`` in ``status()['warnings']`` and in the log record), and it follows the
figures both ways. The threshold (``BUFFER_POOL_SHARE``) is raised past the real ratio to
make the test catalog "too large" without resizing the shared server; SQLite and
PostgreSQL report no pool and no warning.
"""

from __future__ import annotations

import logging

import pytest
import sqlalchemy as sa
from catalog_fixtures import db_url

from lightbox.daemon.catalog import database
from lightbox.daemon.catalog.database import Database
from lightbox.daemon.rpc.system import redact_for_remote_reader

__all__ = ["db_url"]


async def _server_figures(db: Database) -> tuple[int, int]:
    async with db.engine.connect() as conn:
        pool = int(await conn.scalar(sa.text(
            "SELECT variable_value FROM information_schema.global_variables "
            "WHERE variable_name = 'INNODB_BUFFER_POOL_SIZE'")))
        size = int(await conn.scalar(sa.text(
            "SELECT SUM(data_length) + SUM(index_length) FROM information_schema.tables "
            "WHERE table_schema = DATABASE()")))
    return pool, size


async def test_the_buffer_pool_is_compared_with_the_catalog_and_a_small_one_is_reported(
        db_url: str, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="lightbox")
    db = Database(db_url)
    await db.start()
    try:
        st = db.status()
        if db.dialect not in ("mysql", "mariadb"):
            assert st["buffer_pool"] is None and st["warnings"] == []
            return
        pool, size = await _server_figures(db)
        # A migrated, empty catalog already has tables and indexes of some size; the
        # shared server's pool (128 MB by default) holds it.
        assert size > 0
        small = pool < size * database.BUFFER_POOL_SHARE
        assert st["buffer_pool"] == {"bytes": pool, "catalog_bytes": size, "small": small}
        assert (st["warnings"] != []) == small

        # The same catalog against a threshold above the real ratio: now too large.
        monkeypatch.setattr(database, "BUFFER_POOL_SHARE", pool / size * 2)
        caplog.clear()
        await db.check_buffer_pool()
        st = db.status()
        assert st["buffer_pool"]["small"] is True
        assert [w["reason"] for w in st["warnings"]] == ["buffer_pool_small"]
        assert "innodb_buffer_pool_size" in st["warnings"][0]["message"]
        records = [r for r in caplog.records if r.levelno == logging.WARNING
                   and getattr(r, "fields", {}).get("reason") == "buffer_pool_small"]
        assert len(records) == 1
        assert records[0].fields["buffer_pool_bytes"] == pool  # type: ignore[attr-defined]
        assert records[0].fields["catalog_bytes"] == size  # type: ignore[attr-defined]
        # Health for a read-only remote client too: no path or URL in it to hide.
        remote = redact_for_remote_reader({"database": st, "paths": {}})
        assert remote["database"]["warnings"] == st["warnings"]

        # Said once while it stays so, not at every check.
        await db.check_buffer_pool()
        assert len([r for r in caplog.records
                    if getattr(r, "fields", {}).get("reason") == "buffer_pool_small"]) == 1

        # system.status re-reads figures older than BUFFER_POOL_RECHECK: a threshold
        # met again clears the warning there.
        monkeypatch.setattr(database, "BUFFER_POOL_SHARE", pool / size / 2)
        await db.buffer_pool_status()
        assert db.status()["warnings"] != []  # fresh figures are kept
        monkeypatch.setattr(database, "BUFFER_POOL_RECHECK", 0.0)
        await db.buffer_pool_status()
        assert db.status()["buffer_pool"]["small"] is False
        assert db.status()["warnings"] == []
    finally:
        await db.stop()
