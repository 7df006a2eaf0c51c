"""The backup scheduler on a real SQLite catalog, in-process: a target whose run time has
come gets its backup and verify jobs queued once, and its next run moves to the cron's next
time in the target's zone; a disabled target or one without a schedule is left alone."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from lightbox.common import schedule
from lightbox.daemon.backups.service import Backups
from lightbox.daemon.catalog import tables
from lightbox.daemon.catalog.database import Database
from lightbox.daemon.catalog.types import utcnow
from lightbox.daemon.control.events import EventBus
from lightbox.daemon.jobs.queue import JobQueue
from lightbox.daemon.library.sources import Sources

T, J = tables.backup_targets, tables.jobs


@pytest.fixture
async def backups(tmp_path: Path) -> AsyncIterator[Backups]:
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/c.db")
    await db.start()
    bus = EventBus()
    sources = Sources(db, bus)
    await sources.load()
    yield Backups(db, bus, sources, JobQueue(db, bus, "boot"))
    await db.stop()


async def jobs(b: Backups) -> list[tuple[str, Any]]:
    async with b.db.engine.connect() as conn:
        return [(r.kind, r.params) for r in await conn.execute(
            sa.select(J.c.kind, J.c.params).order_by(J.c.id))]


async def target(b: Backups, name: str) -> Any:
    async with b.db.engine.connect() as conn:
        return (await conn.execute(sa.select(T).where(T.c.name == name))).mappings().one()


async def test_due_targets_get_their_jobs_once_and_move_on(backups: Backups,
                                                           tmp_path: Path) -> None:
    b = backups
    for name in ("nas", "off", "manual"):
        (tmp_path / name).mkdir()
    await b.add("nas", {"path": str(tmp_path / "nas"), "roots": [], "schedule": "30 2 * * *",
                        "timezone": "Europe/Berlin", "verify_schedule": "0 4 * * 0",
                        "verify_budget": "30m", "verify_days": 30, "retention_days": None,
                        "enabled": True})
    await b.add("off", {"path": str(tmp_path / "off"), "roots": [], "schedule": "* * * * *",
                        "timezone": "UTC", "verify_schedule": None, "verify_budget": "30m",
                        "verify_days": 30, "retention_days": None, "enabled": False})
    await b.add("manual", {"path": str(tmp_path / "manual"), "roots": [], "schedule": None,
                           "timezone": "UTC", "verify_schedule": None, "verify_budget": "30m",
                           "verify_days": 30, "retention_days": None, "enabled": True})
    nas = await target(b, "nas")
    now = utcnow()
    # Stored in UTC: the next 02:30 in Berlin.
    assert nas["next_run_at"] == schedule.next_run_utc("30 2 * * *", now, "Europe/Berlin")
    assert (await target(b, "manual"))["next_run_at"] is None
    # Nothing is due yet: nothing is queued.
    await b._schedule_once()
    assert await jobs(b) == []
    past = now - dt.timedelta(minutes=1)
    async with b.db.engine.begin() as conn:
        await conn.execute(T.update().values(next_run_at=past, next_verify_at=past))
    soonest = await b._schedule_once()
    assert await jobs(b) == [("backup", {"target": "nas"}),
                             ("backup_verify", {"target": "nas"})]
    nas = await target(b, "nas")
    assert nas["next_run_at"] > now and nas["next_verify_at"] > now
    assert nas["next_run_at"] == schedule.next_run_utc("30 2 * * *", utcnow(), "Europe/Berlin")
    assert 0 < soonest <= 60
    # Run again at once: the times moved on, nothing is queued twice.
    await b._schedule_once()
    assert len(await jobs(b)) == 2
    # Turning the schedule on computes the next run from now.
    updated = await b.update("off", {"enabled": True})
    assert updated["enabled"] and len(updated["next_runs"]) == 5
    assert (await target(b, "off"))["next_run_at"] - utcnow() <= dt.timedelta(minutes=1)
