"""``Database.read`` (``catalog.inline_read``): on SQLite a read function runs whole in one
thread hop on a synchronous connection (issue 13: a ``folders.list`` page was 13 thread
wake-ups through aiosqlite). It must answer exactly what the ordinary connection answers,
errors included, see what was just committed, refuse writes, follow a catalog switch, and
refuse a function that awaits anything but the catalog."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from catalog_fixtures import big_folder, standard

from lightbox.common.errors import InvalidParams, NotFound
from lightbox.daemon.catalog import inline_read, queries, tables
from lightbox.daemon.catalog.database import Database, make_engine


async def both(db: Database, **params: Any) -> tuple[Any, Any]:
    """The page by ``read`` and by the engine's own async connection (or the errors)."""
    async def page(conn: Any) -> Any:
        return await queries.list_folder(conn, **params)

    out = []
    for way in ("inline", "async"):
        try:
            if way == "inline":
                out.append(await db.read(page))
            else:
                async with db.engine.connect() as conn:
                    out.append(await page(conn))
        except Exception as exc:  # compared by type and message below
            out.append((type(exc), str(exc)))
    return out[0], out[1]


async def test_read_answers_as_the_async_connection_does(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'catalog.db'}"
    b, w = await standard(url)
    await big_folder(b, w["big"], 700)
    await b.finish()
    await b.close()
    db = Database(url)
    await db.start()
    try:
        first, again = await both(db, folder=w["big"], limit=250)
        assert first == again and len(first["photos"]) == 250 and first["next_cursor"]
        cursor = first["next_cursor"]
        assert await both(db, folder=w["big"], limit=250, cursor=cursor) == \
            await both(db, folder=w["big"], limit=250, cursor=cursor)
        for params in (
                {"folder": w["trip"], "sort": "taken", "order": "desc", "limit": 5},
                {"folder": w["big"], "limit": 100, "around": first["photos"][200]["id"]},
                {"folder": w["big"], "limit": 50, "fields": ["name", "thumbs", "taken_at"]},
                {"path": w["root"] + "/2008/trip", "limit": 3},
                {},
                {"folder": 10**9},  # NotFound
                {"folder": w["big"], "cursor": "not-a-cursor"},  # InvalidParams
        ):
            inline, plain = await both(db, **params)
            assert inline == plain, params
        inline, _ = await both(db, folder=10**9)
        assert inline[0] is NotFound
        inline, _ = await both(db, folder=w["big"], cursor="not-a-cursor")
        assert inline[0] is InvalidParams
        # What was just committed is read at once (each read a fresh snapshot).
        async with db.engine.begin() as conn:
            await conn.execute(tables.photos.update().where(
                tables.photos.c.folder_id == w["trip"]).values(size=4242))
        inline, _ = await both(db, folder=w["trip"], limit=3)
        assert {p["size"] for p in inline["photos"]} == {4242}
    finally:
        await db.stop()


async def test_read_refuses_writes_and_functions_that_suspend(tmp_path: Path) -> None:
    db = Database(f"sqlite+aiosqlite:///{tmp_path / 'catalog.db'}")
    await db.start()
    try:
        async def write(conn: Any) -> Any:
            return await conn.execute(sa.text("UPDATE sources SET name = name"))

        with pytest.raises(sa.exc.OperationalError, match="readonly"):
            await db.read(write)

        async def wanders(conn: Any) -> int:
            await asyncio.sleep(0)  # not the catalog: would need the event loop
            return 1

        with pytest.raises(inline_read.SuspendedRead):
            await db.read(wanders)
    finally:
        await db.stop()


async def test_read_follows_a_catalog_switch(tmp_path: Path) -> None:
    url_a = f"sqlite+aiosqlite:///{tmp_path / 'a.db'}"
    url_b = f"sqlite+aiosqlite:///{tmp_path / 'b.db'}"
    b, _ = await standard(url_b)
    await b.close()
    db = Database(url_a)
    await db.start()
    other = Database(url_b)
    await other.start()
    revision = other.revision
    await other.stop()

    async def top(conn: Any) -> Any:
        return await queries.list_folder(conn)

    try:
        assert (await db.read(top))["folders"] == []
        old = db.swap(make_engine(url_b, db), url_b, revision)
        await old.dispose()
        names = {f["name"] for f in (await db.read(top))["folders"]}
        assert names == {"main", "other"}
    finally:
        await db.stop()
