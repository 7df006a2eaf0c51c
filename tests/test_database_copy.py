"""The copier on its own (``catalog/copy.py``): a catalog copied while writers keep changing
it comes out equal, row for row, once the captured changes are caught up.

The writes go through the daemon's own gated engine and cover what change capture has to
attribute to keys: updates by key and by other columns, executemany with bound keys, inserts
without ids (SQLite reuses a deleted rowid), deletes that cascade to child rows, a folder
pointing at a parent created after it, JSON null beside SQL NULL, and raw SQL.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from catalog_fixtures import db_url  # noqa: F401 - fixture
from db_helpers import assert_same, dump, edge_library

from lightbox.daemon.catalog import copy, paths, tables
from lightbox.daemon.catalog.database import Database, make_engine
from lightbox.daemon.catalog.types import utcnow

pytestmark = [pytest.mark.postgres, pytest.mark.mysql]

P, F, J = tables.photos, tables.folders, tables.jobs


@pytest.fixture
def pair(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    urls = {"sqlite": f"sqlite+aiosqlite:///{tmp_path}/source.db",
            "sqlite2": f"sqlite+aiosqlite:///{tmp_path}/target.db"}
    names = request.param
    for name in names:
        if name == "postgresql":
            urls[name] = str(request.getfixturevalue("pg_scratch_url"))
        elif name == "mysql":
            urls[name] = str(request.getfixturevalue("mysql_scratch_url"))
    return urls[names[0]], urls[names[1]]


async def churn(db: Database, source_id: int, stop: asyncio.Event, log: list[str],
                wrote: asyncio.Event | None = None) -> None:
    """Keep changing the catalog, the ways the daemon does, until ``stop``; ``wrote`` is
    set after every committed write."""
    rng = random.Random(7)
    n = 0
    async with db.engine.connect() as conn:
        ids = list((await conn.execute(sa.select(P.c.id))).scalars())
        folders = list((await conn.execute(sa.select(F.c.id).where(
            F.c.parent_id.is_not(None)))).scalars())
    while not stop.is_set() or n < 12:
        n += 1
        op = n % 8
        async with db.engine.begin() as conn:
            if op == 0:  # by key
                await conn.execute(P.update().where(P.c.id == rng.choice(ids))
                                   .values(iso=n, taken_at=utcnow()))
            elif op == 1:  # by another column (the capture asks the database)
                await conn.execute(P.update().where(P.c.folder_id == rng.choice(folders),
                                                    P.c.status == "ok").values(thumbs=n % 4))
            elif op == 2:  # executemany with bound keys, as the writer recounts
                await conn.execute(F.update().where(F.c.id == sa.bindparam("fid"))
                                   .values(photo_count=sa.bindparam("pc")),
                                   [{"fid": f, "pc": n} for f in folders[:5]])
            elif op == 3:  # delete the newest photo, then insert without an id (rowid reuse)
                top = await conn.scalar(sa.select(sa.func.max(P.c.id)))
                await conn.execute(P.delete().where(P.c.id == top))
                await conn.execute(P.insert().values(
                    source_id=source_id, folder_id=folders[0], name=f"new-{n}.jpg", size=n,
                    mtime_ns=n, status="pending", first_seen=utcnow()))
            elif op == 4:  # a folder whose parent is created after it
                child = (await conn.execute(F.insert().values(
                    source_id=source_id, parent_id=None, path=f"late/{n}/c",
                    path_hash=paths.path_hash(f"late/{n}/c"), name="c", depth=3,
                    first_seen=utcnow()))).inserted_primary_key[0]
                parent = (await conn.execute(F.insert().values(
                    source_id=source_id, parent_id=folders[0], path=f"late/{n}",
                    path_hash=paths.path_hash(f"late/{n}"), name=str(n), depth=2,
                    first_seen=utcnow()))).inserted_primary_key[0]
                await conn.execute(F.update().where(F.c.id == child).values(parent_id=parent))
                await conn.execute(P.insert().values(
                    source_id=source_id, folder_id=child, name="in-late.jpg", size=1,
                    mtime_ns=1, status="pending", first_seen=utcnow()))
            elif op == 5 and len(folders) > 8:  # a folder deleted: its photos cascade
                victim = folders.pop()
                await conn.execute(F.delete().where(F.c.id == victim))
            elif op == 6:  # JSON null and SQL NULL
                await conn.execute(J.insert().values(kind="scan", params={"n": n}, result=None,
                                                     created_at=utcnow()))
                await conn.execute(J.update().where(J.c.kind == "cleanup")
                                   .values(result={"n": n}))
            else:  # raw SQL: the capture compares that table whole
                await conn.execute(sa.text("UPDATE sources SET status = :s"), {"s": f"r{n}"})
        log.append(str(op))
        if wrote is not None:
            wrote.set()
        await asyncio.sleep(0.002)


@pytest.mark.parametrize("pair", [("sqlite", "postgresql"), ("postgresql", "mysql"),
                                  ("mysql", "sqlite2")], indirect=True,
                         ids=["sqlite-postgresql", "postgresql-mysql", "mysql-sqlite"])
async def test_copy_while_writing_catches_up_exactly(pair: tuple[str, str]) -> None:
    source_url, target_url = pair
    info = await edge_library(source_url, 600)
    target = Database(target_url)
    target._engine = make_engine(target_url)
    await target.migrate()
    await target.stop()
    live = Database(source_url)
    await live.start()
    plans = copy.plan()
    capture = copy.ChangeCapture(plans)
    capture.attach(live.engine)
    assert await live.gate.quiesce(10)
    snap, current, writer = (copy.Reader(source_url, True), copy.Reader(source_url, False),
                             copy.Writer(target_url))
    stop = asyncio.Event()
    done: list[str] = []
    wrote = asyncio.Event()
    churner = asyncio.ensure_future(churn(live, info["source"], stop, done, wrote))

    async def writes(count: int) -> None:
        """Until the churner committed ``count`` more writes (one cycle of its kinds is 8),
        however slow the machine."""
        until = len(done) + count
        async with asyncio.timeout(120):
            while len(done) < until:
                wrote.clear()
                await wrote.wait()

    try:
        for r in (snap, current, writer):
            await r.open()
        # Writes committed after the snapshot was taken are what the catch-up is for: wait
        # for some rather than hope the copy outlasts them.
        await writes(8)
        states = await copy.copy_all(snap, writer, plans, lambda *a: None)
        await copy.verify_all(writer, states, lambda *a: None)
        assert await copy.reconcile(current, writer, plans, states, capture.take()) > 0
        await writes(8)  # every kind of write once more, for the freeze to catch up
        stop.set()
        await churner
        assert await live.gate.close(10)  # the freeze: nothing writes now
        captured = capture.take()
        assert "sources" in captured.full  # the raw UPDATE
        await copy.reconcile(current, writer, plans, states, captured)
        await copy.final_check(current, writer, states)
    finally:
        stop.set()
        live.gate.open()
        await asyncio.gather(churner, return_exceptions=True)
        capture.detach()
        for r in (snap, current, writer):
            await r.close()
        await live.stop()
    assert len(done) >= 12
    source, copied = await dump(source_url), await dump(target_url)
    assert_same(source, copied)
    # The writes really happened: the late folders, the cascade, the rowid reuse.
    assert any(row[3].startswith("late/") for row in copied["folders"].values())
    assert any(row[3] == "new-3.jpg" for row in copied["photos"].values())


async def test_plan_orders_parents_first_and_defers_self_references() -> None:
    plans = {p.name: p for p in copy.plan()}
    order = list(plans)
    assert order.index("sources") < order.index("folders") < order.index("photos")
    assert order.index("photos") < order.index("index_claims")
    folders = plans["folders"]
    assert [list(folders.table.columns)[i].name for i in folders.self_refs] == ["parent_id"]
    assert {c.name for c, in [(c,) for c in folders.pk]} == {"id"}
    # Deleting a source reaches its folders and photos through ON DELETE CASCADE.
    assert {p.name for p, _ in plans["sources"].cascades} >= {"folders", "photos"}


def test_hash_tells_sql_null_from_json_null_and_0_from_none() -> None:
    jobs = next(p for p in copy.plan() if p.name == "jobs")
    h = copy.hasher(jobs)
    row: list[Any] = [1, "scan", "queued", {}, 0, 0, 3, 0, None, 0, 0, None, None, None,
                      None, None, None, None, None, None, None]
    row += [False, True, True]  # IS NULL flags of params, result, checkpoint
    other = list(row)
    other[-2] = False  # result: JSON null instead of SQL NULL
    assert h(row) != h(other)
    zero = list(row)
    zero[8] = 0  # total: 0 instead of NULL
    assert h(row) != h(zero)


async def test_keys_of_an_open_or_committing_transaction_are_offered_until_it_ended(
        tmp_path: Path) -> None:
    """A key handed to ``reconcile`` while its transaction was still open used to be dropped:
    the re-read could not see the row yet and no later set held it (a switch under load
    then failed its final check, "jobs: 9 rows in the source, 8")."""
    url = f"sqlite+aiosqlite:///{tmp_path}/live.db"
    await edge_library(url, 5)
    live = Database(url)
    await live.start()
    capture = copy.ChangeCapture(copy.plan())
    capture.attach(live.engine)
    try:
        async with live.engine.connect() as conn:
            await conn.begin()
            job = (await conn.execute(J.insert().values(
                kind="scan", params={}, created_at=utcnow()))).inserted_primary_key[0]
            during = capture.take()  # a sync round while the writer's transaction is open
            assert job in during.keys["jobs"]
            await conn.commit()
            # The commit event fires before the database commits: until this connection
            # shows the commit ended, every take offers the key again.
            assert job in capture.take().keys["jobs"]
            assert job in capture.take().keys["jobs"]
        # Back in the pool: the commit is over, and the key is not offered forever.
        assert job in capture.take().keys["jobs"]
        assert job not in capture.take().keys.get("jobs", set())
        async with live.engine.begin() as conn:  # and a rolled-back write is re-read once
            await conn.execute(J.update().where(J.c.id == job).values(result={"n": 1}))
            await conn.rollback()
        assert job in capture.take().keys["jobs"]
    finally:
        capture.detach()
        await live.stop()
