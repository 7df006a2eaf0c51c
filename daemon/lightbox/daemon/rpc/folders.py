"""``folders.list``: the folder tree and the photos of one folder, a page at a time.

The work is in ``catalog.queries`` (SQL, keyset pages) and ``catalog.present`` (JSON); this
module only ties a request to a database connection.
"""

from __future__ import annotations

from typing import Any

from lightbox.daemon.catalog import queries
from lightbox.daemon.rpc import Context, method


@method("folders.list")
async def list_folder(
    ctx: Context, folder: int | None, path: str | None, photos: bool, sort: str, order: str,
    limit: int, cursor: str | None, fields: list[str] | None, around: int | None,
) -> dict[str, Any]:
    async with ctx.daemon.db.engine.connect() as conn:
        return await queries.list_folder(
            conn, folder=folder, path=path, photos_=photos, sort=sort, order=order,
            limit=limit, cursor=cursor, fields=fields, around=around)
