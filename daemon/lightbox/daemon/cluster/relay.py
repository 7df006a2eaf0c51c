"""Events from the other daemons sharing the catalog, to this daemon's clients.

What a daemon publishes about the shared library (``catalog``, ``source``, ``job``,
``settings``, ``backup``; not its own ``system`` and ``database`` events, nor its indexing
progress) is appended to ``event_feed`` whenever the catalog is on a server, a few at a time
(one insert per ``FLUSH_AFTER`` window), by a background task — also by a daemon that is
alone so far: a daemon that joins cannot wait for the others' next lease round to learn
of it, or what they did meanwhile would reach its clients never. The others
read the rows they have not seen and publish them on their own bus, with their own ``seq``
and an ``origin`` naming the daemon that caused them, so a client of any daemon sees the
whole library change. PostgreSQL wakes the readers at once with ``NOTIFY`` (the payload is
only a wake-up: a row can be larger than NOTIFY allows); MySQL/MariaDB, which have no
notifications, are polled twice a second.

Ids are handed out when a row is inserted but become visible when its transaction commits,
which two writers may do in the other order; a reader that only asked for ids above the
highest it saw could miss the lower one. So the reader keeps the ids it has seen above a
low-water mark and moves that mark only past ids it has seen or that stayed missing for
``GAP_WAIT`` seconds (a rolled-back insert). Rows older than ``KEEP`` are pruned.

Where a daemon starts reading is taken in ``start`` — before the sources are read and before
the daemon's lease joins it to the others, so long before it answers ``hello``: ``LISTEN``
first (a wake-up sent meanwhile is not lost), then the feed's top id. Rows at or below it are
history (the state the daemon and its clients read already holds what they announced);
ids below it that are not there yet (an insert that commits late) are waited for like any
gap, within the last ``BACKLOG`` ids. So a client of the new daemon sees every change
another daemon makes from the moment this one answers ``hello``: in what it reads, or as
an event.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from lightbox.common import logs
from lightbox.daemon.catalog import tables
from lightbox.daemon.catalog.database import Database
from lightbox.daemon.catalog.types import utcnow
from lightbox.daemon.control.events import Event, EventBus

log = logs.get("relay")

E = tables.event_feed
CHANNEL = "lightbox_events"
RELAYED = ("catalog", "source", "job", "settings", "backup")
# This daemon's own progress, not the library's; and its settings events: every daemon reads
# a change from the catalog (``settings_revision``) and announces it to its own clients
# after applying it, so a relayed copy would tell them twice.
LOCAL_TYPES = {("catalog", "indexing"), ("settings", "changed"), ("settings", "applied")}
FLUSH_AFTER = 0.05
POLL = 0.5  # MySQL/MariaDB: how often the feed is read
POLL_NOTIFIED = 5.0  # PostgreSQL: NOTIFY wakes the reader; a read now and then regardless
GAP_WAIT = 5.0
BACKLOG = 1000  # ids below the start position still waited for (inserts committing late)
KEEP = dt.timedelta(minutes=10)
PRUNE_EVERY = 60.0

RemoteHook = Callable[[str, str, dict[str, Any]], None]


class Relay:
    name = "relay"

    def __init__(self, db: Database, bus: EventBus, owner: str) -> None:
        self.db = db
        self.bus = bus
        self.owner = owner
        self.on_remote: list[RemoteHook] = []
        self.sent = 0
        self.received = 0
        self._outbox: list[dict[str, Any]] = []
        self._flush_timer: asyncio.TimerHandle | None = None
        self._wake = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._reader: asyncio.Task[None] | None = None
        self._low: int | None = None  # every id at or below it was seen or given up on
        self._seen: set[int] = set()  # ids above ``_low`` already published
        self._gaps: dict[int, float] = {}  # missing id -> when first noticed
        self._listening: tuple[AsyncEngine, AsyncConnection] | None = None
        self._feed_engine: AsyncEngine | None = None  # the engine ``_low`` belongs to
        self._pruned = 0.0

    @property
    def shared(self) -> bool:
        return self.db.dialect != "sqlite"

    async def start(self) -> None:
        if self.shared:
            try:
                await self._listen()
            except Exception:  # only a wake-up: reading falls back to polling until it works
                log.exception("LISTEN for other daemons' events failed; polling meanwhile")
            await self._position()
        self.bus.listen(self._local)
        self._reader = asyncio.get_running_loop().create_task(self._read_loop(),
                                                              name="relay")

    async def stop(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        with contextlib.suppress(Exception):
            await self._flush()
        for task in list(self._tasks):
            task.cancel()
        await self._unlisten()

    def status(self) -> dict[str, Any]:
        return {"shared": self.shared, "sent": self.sent, "received": self.received,
                "notify": self._listening is not None}

    # -- out -------------------------------------------------------------------------------
    def _local(self, event: Event) -> None:
        doc = event.doc
        if doc.get("origin") is not None or event.topic not in RELAYED or \
                (event.topic, doc["type"]) in LOCAL_TYPES or not self.shared:
            return
        self._outbox.append({"origin": self.owner, "topic": event.topic, "type": doc["type"],
                             "data": doc["data"], "created_at": utcnow()})
        if self._flush_timer is None:
            self._flush_timer = asyncio.get_running_loop().call_later(
                FLUSH_AFTER, self._timed_flush)

    def _timed_flush(self) -> None:
        self._flush_timer = None
        task = asyncio.get_running_loop().create_task(self._safe_flush())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _safe_flush(self) -> None:
        try:
            await self._flush()
        except Exception:
            log.exception("relaying events to the other daemons failed; they are dropped")

    async def _flush(self) -> None:
        rows, self._outbox = self._outbox, []
        if not rows or not self.shared:
            return
        async with self.db.engine.begin() as conn:
            await conn.execute(E.insert(), rows)
            if conn.dialect.name == "postgresql":
                await conn.execute(sa.text("SELECT pg_notify(:c, '')"), {"c": CHANNEL})
        self.sent += len(rows)

    # -- in --------------------------------------------------------------------------------
    async def _read_loop(self) -> None:
        while True:
            try:
                if self.db.engine is not self._feed_engine:  # switched
                    self._feed_engine, self._low = self.db.engine, None
                if self.shared:
                    await self._listen()
                    await self._read()
                    if time.monotonic() - self._pruned > PRUNE_EVERY:
                        await self._prune()
                else:
                    await self._unlisten()
                    self._low = None
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("reading other daemons' events failed; retrying")
                await self._unlisten()
                await asyncio.sleep(2.0)
            delay = POLL_NOTIFIED if self._listening is not None else POLL
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    async def _listen(self) -> None:
        engine = self.db.engine
        if self._listening is not None and self._listening[0] is engine:
            return
        await self._unlisten()
        if engine.dialect.name != "postgresql":
            return
        conn = await engine.connect()
        try:
            raw = await conn.get_raw_connection()
            driver: Any = raw.driver_connection
            await driver.add_listener(CHANNEL, self._notified)
        except BaseException:
            await conn.close()
            raise
        self._listening = (engine, conn)

    def _notified(self, *_args: Any) -> None:
        self._wake.set()

    async def _unlisten(self) -> None:
        listening, self._listening = self._listening, None
        if listening is not None:
            with contextlib.suppress(Exception):
                raw = await listening[1].get_raw_connection()
                driver: Any = raw.driver_connection
                await driver.remove_listener(CHANNEL, self._notified)
            with contextlib.suppress(Exception):
                await listening[1].close()

    async def _position(self) -> None:
        """Read from now on: the feed's top id and the ids present in the ``BACKLOG`` below
        it are history; the ones missing there are gaps (an insert that commits late is
        published, one rolled back given up on after ``GAP_WAIT``)."""
        engine = self.db.engine
        async with engine.connect() as conn:
            top = int(await conn.scalar(sa.select(sa.func.max(E.c.id))) or 0)
            low = max(0, top - BACKLOG)
            present = set((await conn.scalars(
                sa.select(E.c.id).where(E.c.id > low))).all())
        now = time.monotonic()
        self._feed_engine, self._low = engine, low
        self._seen = {i for i in present if i <= top}
        self._gaps = {i: now for i in range(low + 1, top + 1) if i not in present}

    async def _read(self) -> None:
        if self._low is None:  # the catalog moved: its feed is read from now on
            await self._position()
        assert self._low is not None
        # Above everything seen, and the gaps below it by id: rows already seen are not
        # read again (a full backlog of them would hide the new ones behind a LIMIT).
        above = max(self._seen, default=self._low)
        async with self.db.engine.connect() as conn:
            rows = list((await conn.execute(
                sa.select(E).where(E.c.id > above).order_by(E.c.id).limit(1000))).all())
            if self._gaps:
                late = sorted(self._gaps)[:1000]
                rows = list((await conn.execute(
                    sa.select(E).where(E.c.id.in_(late)).order_by(E.c.id))).all()) + rows
        now = time.monotonic()
        for row in rows:
            if row.id in self._seen:
                continue
            self._seen.add(row.id)
            self._gaps.pop(row.id, None)
            if row.origin == self.owner:
                continue
            self.received += 1
            data = dict(row.data or {})
            self.bus.publish(row.topic, row.type, data, origin=row.origin)
            for hook in self.on_remote:
                try:
                    hook(row.topic, row.type, data)
                except Exception:
                    log.exception("relay hook failed")
        top = max(self._seen, default=self._low)
        for missing in range(self._low + 1, top):
            if missing not in self._seen:
                self._gaps.setdefault(missing, now)
        while self._low < top:
            nxt = self._low + 1
            if nxt in self._seen:
                self._seen.discard(nxt)
            elif now - self._gaps.get(nxt, now) >= GAP_WAIT:
                self._gaps.pop(nxt, None)
            else:
                break
            self._low = nxt

    async def _prune(self) -> None:
        self._pruned = time.monotonic()
        async with self.db.engine.begin() as conn:
            await conn.execute(E.delete().where(E.c.created_at < utcnow() - KEEP))
