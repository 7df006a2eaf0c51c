"""``folders.list``: the folder tree and the photos of one folder, a page at a time.

The work is in ``catalog.queries`` (SQL, keyset pages) and ``catalog.present`` (JSON); this
module only ties a request to a catalog read (``Database.read``: on SQLite the whole page in
one thread hop), its photos written as JSON there (``encoded``) rather than on the event loop.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from lightbox.daemon.catalog import queries
from lightbox.daemon.rpc import Context, method


@method("folders.list")
async def list_folder(
    ctx: Context, folder: int | None, path: str | None, photos: bool, sort: str, order: str,
    limit: int, cursor: str | None, fields: list[str] | None, around: int | None,
) -> dict[str, Any]:
    async def page(conn: AsyncConnection) -> dict[str, Any]:
        return await queries.list_folder(
            conn, folder=folder, path=path, photos_=photos, sort=sort, order=order,
            limit=limit, cursor=cursor, fields=fields, around=around, encoded=True)

    return await ctx.daemon.db.read(page)
