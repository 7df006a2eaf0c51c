"""The persisted job queue on a real SQLite catalog, with job kinds written for the test."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from lightbox.common.errors import Conflict, NotFound
from lightbox.daemon.catalog import tables
from lightbox.daemon.catalog.database import Database
from lightbox.daemon.control.events import EventBus
from lightbox.daemon.jobs import queue as queue_mod
from lightbox.daemon.jobs.queue import JobContext, JobFailed, JobQueue


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    d = Database(f"sqlite+aiosqlite:///{tmp_path}/c.db")
    await d.start()
    yield d
    await d.stop()


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    # The schedule itself is tested below; here attempts should follow each other quickly.
    monkeypatch.setattr(queue_mod, "backoff", lambda attempt: 0.05 * attempt)


async def make_queue(db: Database, bus: EventBus | None = None, **kw: Any) -> JobQueue:
    q = JobQueue(db, bus or EventBus(), "boot", **kw)
    return q


async def test_success_progress_and_result(db: Database) -> None:
    bus = EventBus()
    q = await make_queue(db, bus)

    async def work(ctx: JobContext) -> dict[str, Any]:
        for i in range(5):
            ctx.progress(processed=i + 1, total=5)
            await asyncio.sleep(0.01)
        return {"answer": 42}

    q.register("work", work)
    await q.start()
    try:
        job_id = await q.submit("work", {"n": 1})
        job = await q.wait(job_id, 5)
        assert job["state"] == "succeeded"
        assert job["result"] == {"answer": 42}
        assert (job["processed"], job["total"]) == (5, 5)
        types = [e["type"] for e in bus.since(0)[0] if e["data"].get("id") == job_id]
        assert types[0] == "queued"
        assert "started" in types and types[-1] == "finished"
    finally:
        await q.stop()


async def test_retry_then_dead_letter(db: Database) -> None:
    bus = EventBus()
    q = await make_queue(db, bus, max_attempts=3)
    calls = []

    async def flaky(ctx: JobContext) -> None:
        calls.append(ctx.attempt)
        raise OSError("disk on fire")

    q.register("flaky", flaky)
    await q.start()
    try:
        job = await q.wait(await q.submit("flaky"), 10)
        assert job["state"] == "failed"
        assert job["attempts"] == 3
        assert calls == [1, 2, 3]
        assert job["result"] == {"dead_letter": True}
        assert "disk on fire" in job["error"]
        retries = [e for e in bus.since(0)[0] if e["type"] == "retrying"]
        assert [e["data"]["attempt"] for e in retries] == [1, 2]
    finally:
        await q.stop()


async def test_retry_succeeds_on_second_attempt(db: Database) -> None:
    q = await make_queue(db)

    async def second(ctx: JobContext) -> dict[str, int]:
        if ctx.attempt == 1:
            raise RuntimeError("transient")
        return {"attempt": ctx.attempt}

    q.register("second", second)
    await q.start()
    try:
        job = await q.wait(await q.submit("second"), 10)
        assert job["state"] == "succeeded"
        assert job["result"] == {"attempt": 2}
    finally:
        await q.stop()


async def test_job_failed_is_not_retried(db: Database) -> None:
    q = await make_queue(db)

    async def hopeless(ctx: JobContext) -> None:
        raise JobFailed("the root is offline")

    q.register("hopeless", hopeless)
    await q.start()
    try:
        job = await q.wait(await q.submit("hopeless"), 5)
        assert (job["state"], job["attempts"], job["error"]) == \
            ("failed", 1, "the root is offline")
    finally:
        await q.stop()


async def test_cancel_running_and_queued(db: Database) -> None:
    q = await make_queue(db, concurrency=1)
    started = asyncio.Event()

    async def forever(ctx: JobContext) -> None:
        started.set()
        await asyncio.sleep(3600)

    q.register("forever", forever)
    await q.start()
    try:
        running = await q.submit("forever", {"i": 1})
        waiting = await q.submit("forever", {"i": 2})
        await asyncio.wait_for(started.wait(), 5)
        assert (await q.get(waiting))["state"] == "queued"
        assert (await q.cancel(waiting))["state"] == "cancelled"
        assert (await q.cancel(running))["state"] == "cancelled"
        with pytest.raises(Conflict):
            await q.cancel(running)
        with pytest.raises(NotFound):
            await q.get(999)
    finally:
        await q.stop()


async def test_stop_requeues_and_next_start_resumes(db: Database) -> None:
    q = await make_queue(db)
    seen: list[Any] = []
    started = asyncio.Event()

    async def long(ctx: JobContext) -> dict[str, Any]:
        seen.append((ctx.attempt, ctx.checkpoint))
        if ctx.checkpoint is None:
            await ctx.save_checkpoint({"done": 3})
            started.set()
            await asyncio.sleep(3600)
        return {"resumed_from": ctx.checkpoint}

    q.register("long", long)
    await q.start()
    job_id = await q.submit("long")
    await asyncio.wait_for(started.wait(), 5)
    await q.stop()
    row = await q.get(job_id)
    assert (row["state"], row["attempts"]) == ("queued", 0)  # the attempt was given back
    q2 = await make_queue(db)
    q2.register("long", long)
    await q2.start()
    try:
        job = await q2.wait(job_id, 5)
        assert job["state"] == "succeeded"
        assert job["result"] == {"resumed_from": {"done": 3}}
        assert seen == [(1, None), (1, {"done": 3})]
    finally:
        await q2.stop()


async def test_jobs_left_running_by_a_dead_daemon_are_resumed(db: Database) -> None:
    async with db.engine.begin() as conn:
        await conn.execute(tables.jobs.insert().values(
            kind="work", state="running", params={}, attempts=1, max_attempts=3,
            owner="localhost-that-died/1/old", created_at=sa.func.now(),
            heartbeat_at=None))
    import socket

    async with db.engine.begin() as conn:  # same host, pid that does not exist
        await conn.execute(tables.jobs.insert().values(
            kind="work", state="running", params={"b": 1}, attempts=1, max_attempts=3,
            owner=f"{socket.gethostname()}/999999999/old", created_at=sa.func.now()))
    q = await make_queue(db)
    done = []

    async def work(ctx: JobContext) -> None:
        done.append(ctx.id)

    q.register("work", work)
    await q.start()
    try:
        for job_id in (1, 2):
            assert (await q.wait(job_id, 5))["state"] == "succeeded"
        assert sorted(done) == [1, 2]
    finally:
        await q.stop()


async def test_dedupe_and_listing(db: Database) -> None:
    q = await make_queue(db)

    async def nothing(ctx: JobContext) -> None:
        await asyncio.sleep(0.2)

    q.register("nothing", nothing)
    a = await q.submit("nothing", {"x": 1})
    assert await q.submit("nothing", {"x": 1}) == a
    b = await q.submit("nothing", {"x": 2})
    assert b != a
    page = await q.list(None, "nothing", 1, None)
    assert [j["id"] for j in page["jobs"]] == [b]
    rest = await q.list(None, None, 10, page["next_cursor"])
    assert [j["id"] for j in rest["jobs"]] == [a]
    assert rest["next_cursor"] is None


async def test_a_request_to_look_now_does_not_join_a_run_already_going(db: Database) -> None:
    """``join_running=False`` (``library.scan``): a scan that began before a disk was
    mounted must not answer the person who asks for one after mounting it."""
    q = await make_queue(db)
    started, release = asyncio.Event(), asyncio.Event()

    async def long(ctx: JobContext) -> None:
        started.set()
        await release.wait()

    q.register("long", long)
    await q.start()
    try:
        running = await q.submit("long", {})
        await asyncio.wait_for(started.wait(), 5)
        assert await q.submit("long", {}) == running  # the daemon's own: joins it
        fresh = await q.submit("long", {}, join_running=False)
        assert fresh != running
        assert await q.submit("long", {}, join_running=False) == fresh  # queued: joined
        release.set()
        assert (await q.wait(fresh, 10))["state"] == "succeeded"
    finally:
        release.set()
        await q.stop()


REAL_BACKOFF = queue_mod.backoff


def test_backoff_schedule() -> None:
    real = REAL_BACKOFF
    assert [real(n) for n in (1, 2, 3, 4)] == [5.0, 20.0, 80.0, 320.0]
    assert real(10) == 900.0


async def test_failures_read_as_reasons_never_as_exception_reprs(db: Database) -> None:
    """A bug is not retried and says where to look; the environment's errors say what."""
    q = await make_queue(db, max_attempts=3)
    attempts: dict[str, int] = {}

    async def overflow(ctx: JobContext) -> None:
        attempts["overflow"] = ctx.attempt
        raise OverflowError("date value out of range")

    async def locked(ctx: JobContext) -> None:
        async with db.engine.connect() as conn:
            await conn.execute(sa.text("SELECT * FROM no_such_table"))

    q.register("overflow", overflow)
    q.register("locked", locked, retry=False)
    await q.start()
    try:
        job = await q.wait(await q.submit("overflow"), 10)
        assert job["state"] == "failed"
        assert job["attempts"] == 1 and attempts["overflow"] == 1  # retrying cannot help
        assert job["error"].startswith("internal error (ref ")
        assert "OverflowError" not in job["error"] and "date value" not in job["error"]
        db_job = await q.wait(await q.submit("locked"), 10)
        assert db_job["error"].startswith("the catalog database failed: "), db_job["error"]
        assert "no such table: no_such_table" in db_job["error"]
        assert "OperationalError" not in db_job["error"]
    finally:
        await q.stop()
