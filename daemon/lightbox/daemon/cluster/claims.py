"""Indexing claims: which daemon reads which pending photo, when several share a catalog.

A daemon's indexer asks for a few pending photos at a time. In one transaction it selects
pending rows of sources it can read that no other daemon has claimed, locking them ``FOR
UPDATE SKIP LOCKED`` (a neighbour claiming at the same moment skips them instead of
waiting), and records its claim in ``index_claims`` (an insert that ignores rows claimed
meanwhile: the primary key on ``photo_id`` makes a claim unique whatever the isolation
level). The claim ends with the transaction that writes the photo's result, or when the
indexer gives the photo up for now (a retry later); a dead daemon's claims are dropped by
the others' lease rounds. Claims are small batches so that, at the end of a pass, one
daemon is not left holding the last few hundred photos while the other idles.
"""

from __future__ import annotations

from collections.abc import Callable, Collection

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

from lightbox.daemon.catalog import tables
from lightbox.daemon.catalog.database import Database
from lightbox.daemon.catalog.types import utcnow

P, C = tables.photos, tables.index_claims

BATCH = 8


class Claims:
    def __init__(self, db: Database, owner: str, active: Callable[[], bool],
                 readable: Callable[[], Collection[int]]) -> None:
        self.db = db
        self.owner = owner
        self._active = active
        self._readable = readable
        self.claimed = 0

    def active(self) -> bool:
        return self._active()

    async def claim(self, after: int, limit: int = BATCH) -> list[int]:
        """Pending photo ids above ``after`` now claimed by this daemon (its own earlier
        claims included), in id order."""
        readable = sorted(self._readable())
        if not readable:
            return []
        async with self.db.engine.begin() as conn:
            others = sa.select(C.c.photo_id).where(C.c.photo_id == P.c.id,
                                                   C.c.owner != self.owner)
            ids = list((await conn.execute(
                sa.select(P.c.id).where(P.c.status == "pending", P.c.id > after,
                                        P.c.source_id.in_(readable), ~others.exists())
                .order_by(P.c.id).limit(limit).with_for_update(skip_locked=True)
            )).scalars())
            if not ids:
                return []
            now = utcnow()
            rows = [{"photo_id": i, "owner": self.owner, "claimed_at": now} for i in ids]
            if conn.dialect.name == "postgresql":
                await conn.execute(postgresql.insert(C).on_conflict_do_nothing(), rows)
            else:
                await conn.execute(C.insert().prefix_with("IGNORE"), rows)
            mine = sorted((await conn.execute(sa.select(C.c.photo_id).where(
                C.c.photo_id.in_(ids), C.c.owner == self.owner))).scalars())
        self.claimed += len(mine)
        return mine

    async def release(self, conn: AsyncConnection, ids: Collection[int]) -> None:
        """End this daemon's claims on ``ids`` in the caller's transaction."""
        if ids:
            await conn.execute(C.delete().where(C.c.photo_id.in_(sorted(ids)),
                                                C.c.owner == self.owner))

    async def release_now(self, ids: Collection[int]) -> None:
        async with self.db.engine.begin() as conn:
            await self.release(conn, ids)
