"""Leases: which daemon is alive, and which daemon runs which source.

Every ``ttl / 3`` seconds a daemon sharing the catalog renews the leases it holds (one
UPDATE of the rows it owns), reads the whole (small) table and decides:

- the live daemons: a ``daemon:<owner>`` lease not expired, whose process still exists when
  it runs on this host (a SIGKILLed neighbour on the same machine is taken over at the next
  round, not a ``ttl`` later);
- the sources it runs: the ones it holds, plus free ones (no lease, or a dead holder's) it
  can read here, up to its fair share (sources / live daemons), so two daemons starting
  together split the roots instead of one taking all;
- what the dead leave behind: indexing claims of any owner not alive are dropped (their
  photos can be claimed again) and such owners' running jobs are queued again
  (``on_live`` hooks get the live owners every round).

A lease is taken with a compare-and-swap on the row (the holder and heartbeat read), so two
daemons racing for a dead one's source cannot both win. Clocks of the daemons' hosts are
assumed to agree to well within ``ttl`` (NTP). On SQLite (one daemon) nothing is written
and every source is this daemon's.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import math
import os
from collections.abc import Awaitable, Callable
from typing import Any

import sqlalchemy as sa

from lightbox.common import logs
from lightbox.daemon.catalog import tables
from lightbox.daemon.catalog.database import Database
from lightbox.daemon.catalog.types import utcnow
from lightbox.daemon.jobs.queue import _owner_alive
from lightbox.daemon.library.sources import Source, Sources

log = logs.get("cluster")

L, C = tables.leases, tables.index_claims

# (source, the previous holder whose lease was taken over, or None for a free source)
SourceHook = Callable[[Source, str | None], Awaitable[None]]
LiveHook = Callable[[set[str]], Awaitable[None]]


def daemon_key(owner: str) -> str:
    return f"daemon:{owner}"


def source_key(source_id: int) -> str:
    return f"source:{source_id}"


def _readable(source: Source) -> bool:
    """Whether this host can read the source's files: a local root must be a directory
    here (another machine may not mount it); a bucket is read with the credentials the
    catalog holds, from anywhere."""
    if source.kind != "local":
        return True
    return os.path.isdir(source.path) and os.access(source.path, os.R_OK | os.X_OK)


class Cluster:
    """The lease round of one daemon; ``mine`` and ``affinities`` say what it may run."""

    name = "cluster"

    def __init__(self, db: Database, sources: Sources, owner: str, *, ttl: float,
                 info: dict[str, Any]) -> None:
        self.db = db
        self.sources = sources
        self.owner = owner
        self.ttl = ttl
        self.info = info
        self.active = False  # the catalog is shared (not SQLite) and the first round ran
        self.held: set[int] = set()  # source ids whose lease this daemon holds
        self.readable: set[int] = set()  # online sources whose files this host can read
        self.live: set[str] = set()  # owners of the live daemons, this one included
        self.takeovers = 0
        self.on_gained: list[SourceHook] = []
        self.on_lost: list[SourceHook] = []
        self.on_live: list[LiveHook] = []
        self._task: asyncio.Task[None] | None = None
        self._poke = asyncio.Event()
        self._lock = asyncio.Lock()

    @property
    def shared(self) -> bool:
        return self.db.dialect != "sqlite"

    # -- lifecycle -----------------------------------------------------------------------
    async def start(self) -> None:
        await self.tick(initial=True)
        self._task = asyncio.get_running_loop().create_task(self._run(), name="cluster")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self.active:
            # Others take over at once instead of waiting for the leases to expire.
            with contextlib.suppress(Exception):
                async with self.db.engine.begin() as conn:
                    await conn.execute(C.delete().where(C.c.owner == self.owner))
                    await conn.execute(L.delete().where(L.c.owner == self.owner))
                log.info("leases released", sources=sorted(self.held))

    def status(self) -> dict[str, Any]:
        return {"shared": self.active, "owner": self.owner, "sources": sorted(self.held),
                "daemons": len(self.live), "takeovers": self.takeovers, "ttl": self.ttl}

    def poke(self) -> None:
        """Run a round soon (a root was added or removed elsewhere)."""
        self._poke.set()

    # -- what this daemon runs -----------------------------------------------------------
    def mine(self, source_id: int) -> bool:
        return not self.active or source_id in self.held

    def affinities(self) -> set[str] | None:
        """Job affinities this daemon may claim; None: all (the catalog is not shared)."""
        if not self.active:
            return None
        return {source_key(i) for i in self.held}

    async def _run(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._poke.wait(), self.ttl / 3)
            self._poke.clear()
            try:
                await self.tick()
            except sa.exc.DBAPIError as exc:
                if not _transient(exc):
                    log.exception("lease round failed; retrying")
                else:  # a deadlock or lock wait another daemon caused: the next round redoes it
                    log.warning("lease round met a lock conflict; retrying",
                                error=str(exc.orig).splitlines()[0][:200])
            except Exception:
                log.exception("lease round failed; retrying")

    async def adopt(self, source: Source) -> bool:
        """Take the lease of a root just added through this daemon, if it is free."""
        if not self.active:
            return True
        async with self._lock:
            now = utcnow()
            if await self._take(source.id, None, now, now + self._ttl()):
                self.held.add(source.id)
                self.readable.add(source.id)
                self.sources.owned = set(self.held)
                return True
        self.poke()
        return False

    def _ttl(self) -> dt.timedelta:
        return dt.timedelta(seconds=self.ttl)

    # -- the round -----------------------------------------------------------------------
    async def tick(self, initial: bool = False) -> None:
        async with self._lock:
            await self._tick(initial)

    async def _tick(self, initial: bool) -> None:
        if not self.shared:
            if self.active:  # the catalog moved back to SQLite: everything is ours again
                self.active, self.held, self.live = False, set(), set()
                self.sources.owned = None
            return
        now = utcnow()
        expires = now + self._ttl()
        async with self.db.engine.begin() as conn:
            await conn.execute(L.update().where(L.c.owner == self.owner).values(
                heartbeat_at=now, expires_at=expires))
            rows = {r.key: r for r in await conn.execute(
                sa.select(L.c.key, L.c.owner, L.c.heartbeat_at, L.c.expires_at))}
            if daemon_key(self.owner) not in rows:
                if self.active:
                    log.warning("this daemon's lease had lapsed (it did not heart-beat for "
                                f"{self.ttl} s); others may have taken its work over")
                await conn.execute(L.insert().values(
                    key=daemon_key(self.owner), owner=self.owner, acquired_at=now,
                    heartbeat_at=now, expires_at=expires, info=self.info))
        live = {self.owner}
        for key, r in rows.items():
            if key.startswith("daemon:") and r.expires_at > now and \
                    _owner_alive(r.owner) is not False:
                live.add(r.owner)
        dead = {r.owner for r in rows.values() if r.owner not in live}
        before = dict(self.sources.by_id)
        await self.sources.reload()  # roots added or removed through other daemons
        local = sorted(self.sources.by_id.values(), key=lambda s: s.id)
        known = {source_key(s.id) for s in local}
        readable = set()
        for s in local:
            if s.online and await asyncio.to_thread(_readable, s):
                readable.add(s.id)
        held = {int(k.split(":", 1)[1]) for k, r in rows.items()
                if k.startswith("source:") and r.owner == self.owner and k in known}
        fair = math.ceil(len(local) / max(1, len(live)))
        gained: list[tuple[Source, str | None]] = []
        for s in local:
            key = source_key(s.id)
            lease = rows.get(key)
            if s.id in held or (lease is not None and lease.owner in live):
                continue
            if len(held) >= fair or not await asyncio.to_thread(_readable, s):
                continue
            if await self._take(s.id, lease, now, expires):
                held.add(s.id)
                gained.append((s, lease.owner if lease is not None else None))
                if lease is not None:
                    self.takeovers += 1
                    log.info("took over a source from a daemon that stopped", root=s.name,
                             previous=lease.owner)
        async with self.db.engine.begin() as conn:
            # Only the claims of daemons that are gone, owner by owner through the owner
            # index: a "NOT IN (live)" delete locks the live claimers' rows and gaps too,
            # and MariaDB answered the claimers' inserts with deadlocks.
            owners = (await conn.execute(sa.select(C.c.owner).distinct())).scalars().all()
            for gone in sorted(set(owners) - set(live)):
                await conn.execute(C.delete().where(C.c.owner == gone))
            if dead:
                await conn.execute(L.delete().where(L.c.key.like("daemon:%"),
                                                    L.c.owner.in_(sorted(dead))))
            stale = [k for k in rows if k.startswith("source:") and k not in known]
            if stale:
                await conn.execute(L.delete().where(L.c.key.in_(stale)))
        # Taken by another daemon (this one missed heart-beats), or removed through one.
        lost = [before.get(i) or self.sources.by_id[i] for i in sorted(self.held - held)
                if i in before or i in self.sources.by_id]
        self.held, self.readable, self.live = held, readable, live
        first = not self.active
        self.active = True
        self.sources.owned = set(held)
        if first:
            log.info("sharing the catalog", daemons=len(live), sources=sorted(held))
        for live_hook in self.on_live:
            await live_hook(live)
        if initial or first:
            # At start the components that follow start from ``mine`` themselves; after a
            # switch onto a server the roots are already watched.
            return
        for s in lost:
            log.warning("another daemon runs this source now", root=s.name)
            for hook in self.on_lost:
                await hook(s, None)
        for s, previous in gained:
            for hook in self.on_gained:
                await hook(s, previous)

    async def _take(self, source_id: int, lease: Any, now: dt.datetime,
                    expires: dt.datetime) -> bool:
        values = {"owner": self.owner, "acquired_at": now, "heartbeat_at": now,
                  "expires_at": expires, "info": self.info}
        key = source_key(source_id)
        try:
            async with self.db.engine.begin() as conn:
                if lease is None:
                    await conn.execute(L.insert().values(key=key, **values))
                    return True
                done = await conn.execute(L.update().where(
                    L.c.key == key, L.c.owner == lease.owner,
                    L.c.heartbeat_at == lease.heartbeat_at).values(**values))
                return bool(done.rowcount)
        except sa.exc.IntegrityError:
            return False  # another daemon inserted it first


def _transient(exc: sa.exc.DBAPIError) -> bool:
    """A conflict between transactions that a retry resolves: MySQL/MariaDB deadlock (1213)
    or lock wait timeout (1205), PostgreSQL deadlock (40P01) or serialization failure
    (40001)."""
    orig = exc.orig
    code = getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)
    if code in ("40P01", "40001"):
        return True
    args: tuple[Any, ...] = tuple(getattr(orig, "args", ()))
    return bool(args) and args[0] in (1205, 1213)
