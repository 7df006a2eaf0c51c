"""How the indexer ends a pass and how waiters follow it (issue 13, index throughput).

In-process, on a real SQLite catalog, with a stand-in worker pool that answers each
analysis at once: what is under test is the indexer's own batching and signalling, not the
decoding. The stand-in still goes through ``analyze_in_pool`` and the writer's guarded
UPDATE, so a row counts as written only when the catalog says so.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from lightbox.daemon.catalog import tables
from lightbox.daemon.catalog.database import Database
from lightbox.daemon.control.events import EventBus
from lightbox.daemon.library import indexer as indexer_mod
from lightbox.daemon.library import writer as writer_mod
from lightbox.daemon.library.changes import ChangeFeed
from lightbox.daemon.library.indexer import Indexer
from lightbox.daemon.media.analyze import Analysis, AnalyzeRequest

P, F, S = tables.photos, tables.folders, tables.sources

# Generous: the machine may be loaded; a waiter that missed its wake-up waits far longer.
DEADLINE = 20.0


class InstantPool:
    """What the indexer needs of a WorkerPool: every analysis succeeds at once."""

    def __init__(self) -> None:
        self.submitted: list[str] = []

    def status(self) -> dict[str, Any]:
        return {"processes": 2}

    async def submit(self, fn: Any, req: AnalyzeRequest, priority: int = 0) -> Analysis:
        loc = req.locator
        self.submitted.append(loc.path)
        await asyncio.sleep(0)
        return Analysis(path=loc.path, ok=True, size=loc.size or 0,
                        mtime_ns=loc.mtime_ns or 0, inode=getattr(loc, "inode", 0) or 0,
                        sha256="ab" * 32, mime="image/jpeg", format="jpeg", width=4, height=3)


@pytest.fixture
async def catalog(tmp_path: Path) -> AsyncIterator[tuple[Database, Indexer, InstantPool]]:
    db = Database(f"sqlite+aiosqlite:///{tmp_path}/c.db")
    await db.start()
    pool = InstantPool()
    idx = Indexer(db, pool, ChangeFeed(EventBus()), tmp_path / "thumbs", ())  # type: ignore[arg-type]
    yield db, idx, pool
    await idx.stop()
    await db.stop()


async def add_pending(db: Database, root: Path, count: int) -> None:
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    async with db.engine.begin() as conn:
        sid = (await conn.execute(S.insert().values(
            kind="local", name="r", path=str(root), online=True, created_at=now))
        ).inserted_primary_key[0]
        fid = (await conn.execute(F.insert().values(
            source_id=sid, parent_id=None, path="", path_hash="0" * 40, name="r", depth=0,
            first_seen=now))).inserted_primary_key[0]
        await conn.execute(P.insert(), [
            {"source_id": sid, "folder_id": fid, "name": f"p{i}.jpg", "size": 100 + i,
             "mtime_ns": 1, "inode": i + 1, "status": "pending", "first_seen": now}
            for i in range(count)])


async def written(db: Database) -> int:
    async with db.engine.connect() as conn:
        return int(await conn.scalar(sa.select(sa.func.count()).select_from(P)
                                     .where(P.c.status == "ok")) or 0)


async def test_last_results_of_a_pass_are_written_at_once(
        catalog: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The queue ran dry: what came back is written now, not after FLUSH_AFTER (here made
    far longer than the deadline, so waiting for the timer fails the test)."""
    db, idx, pool = catalog
    monkeypatch.setattr(indexer_mod, "FLUSH_AFTER", 600.0)
    await add_pending(db, tmp_path, 7)      # fewer than FLUSH_EVERY: no full batch
    await idx.start()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE
    while await written(db) < 7:
        assert loop.time() < deadline, f"only {await written(db)} of 7 written"
        await asyncio.sleep(0.05)
    assert len(pool.submitted) == 7
    assert await idx.pending() == 0


async def test_a_batch_written_while_the_waiter_counted_is_not_missed(catalog: Any) -> None:
    """A scan job counts ``pending()`` and then waits for progress; a batch written between
    the two must wake it (the last batch of a pass, say), not leave it to its timeout."""
    _db, idx, _pool = catalog
    async with asyncio.timeout(DEADLINE):   # (the same task: wait_for would make another)
        await idx.pending()
        idx._progressed()            # a batch lands while the caller was counting
        await idx.wait_progress(600.0)


async def test_waiters_wake_at_the_next_batch_and_not_before(catalog: Any) -> None:
    _db, idx, _pool = catalog
    await idx.pending()
    first = asyncio.ensure_future(idx.wait_progress(600.0))
    second = asyncio.ensure_future(idx.wait_progress(600.0))  # another task, no count yet
    await asyncio.sleep(0.2)
    assert not first.done() and not second.done()   # nothing was written
    idx._progressed()
    await asyncio.wait_for(asyncio.gather(first, second), DEADLINE)
    # The mark is spent: without a new count, the next wait is for the next batch again.
    third = asyncio.ensure_future(idx.wait_progress(600.0))
    await asyncio.sleep(0.2)
    assert not third.done()
    idx._progressed()
    await asyncio.wait_for(third, DEADLINE)


async def test_rows_read_before_their_results_were_written_are_not_read_again(
        catalog: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A pass's query that began before a batch was committed still sees that batch's rows
    pending: they must not be analysed a second time (for a bucket, a second GET). Seen in
    CI under load: 10 analyses for 7 photos. Here made certain: the batch's write waits at
    a gate, the pass's next query reads the rows (pending), then the gate opens and the
    query's rows come back after the commit."""
    db, idx, pool = catalog
    await add_pending(db, tmp_path, 3)
    gate = asyncio.Event()
    stale_served = asyncio.Event()
    real_write = writer_mod.write_analyses
    real_fetch = idx._fetch

    async def write(conn: Any, batch: Any) -> Any:
        await gate.wait()
        return await real_write(conn, batch)

    async def fetch(after: int) -> list[Any]:
        rows = await real_fetch(after)
        if after == 0 and rows and len(pool.submitted) == 3 and not gate.is_set():
            gate.set()        # this query began before the batch was committed
            while await written(db) < 3:
                assert asyncio.get_running_loop().time() < deadline, "the batch was not written"
                await asyncio.sleep(0.02)
            stale_served.set()
        return rows

    monkeypatch.setattr(writer_mod, "write_analyses", write)
    monkeypatch.setattr(idx, "_fetch", fetch)
    deadline = asyncio.get_running_loop().time() + DEADLINE
    await idx.start()
    await asyncio.wait_for(stale_served.wait(), DEADLINE)
    while not idx._idle.is_set() or idx._inflight or idx._results:
        assert asyncio.get_running_loop().time() < deadline, "the pass did not end"
        await asyncio.sleep(0.05)
    assert await written(db) == 3
    assert sorted(pool.submitted) == sorted(str(tmp_path / f"p{i}.jpg") for i in range(3))
