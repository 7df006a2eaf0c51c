"""``photos.trash``: duplicates (or any photos) to the freedesktop trash, never deleted.

Send2Trash moves the file into the trash of its volume with the ``.trashinfo`` that desktop
file managers and ``gio trash --restore`` read, so anything sent there can be brought back.
The same checks as ``photos.original`` come first: only the file the catalog names for the
id, a regular file whose real path is inside its root. Then the catalog follows through the
ordinary path: a scan of each folder touched sees the files gone and marks them missing.
"""

from __future__ import annotations

import asyncio
import os
import stat
from typing import Any

from send2trash import send2trash  # type: ignore[import-untyped]
from send2trash.exceptions import TrashPermissionError  # type: ignore[import-untyped]

from lightbox.common import logs
from lightbox.common.errors import InvalidParams
from lightbox.daemon.catalog import queries
from lightbox.daemon.rpc import Context, method

log = logs.get("photos")


def _trash(root: str, path: str) -> None:
    """Move ``path`` to the trash, after checking it is a regular file inside ``root``."""
    st = os.lstat(path)
    if not stat.S_ISREG(st.st_mode):
        raise IsADirectoryError(f"{path} is not a regular file")
    real_root = os.path.realpath(root).rstrip("/") + "/"
    if not os.path.realpath(path).startswith(real_root):
        raise PermissionError(f"{path} resolves outside its root")
    send2trash(path)


@method("photos.trash")
async def trash(ctx: Context, ids: list[int]) -> dict[str, Any]:
    if not ids:
        raise InvalidParams("ids: give at least one photo id", {"errors": {"ids": "empty"}})
    trashed: list[dict[str, Any]] = []
    failed: list[dict[str, Any]] = []
    folders: set[str] = set()
    async with ctx.daemon.db.engine.connect() as conn:
        records = []
        for pid in dict.fromkeys(ids):
            try:
                records.append(await queries.photo_record(conn, pid))
            except Exception as exc:  # NotFound: reported per photo
                failed.append({"id": pid, "path": None, "reason": "not_found",
                               "message": str(exc)})
    for rec in records:
        why = None
        if rec.source_kind != "local" or rec.source_path is None or rec.abs_path is None:
            why = ("not_local", "it is in a bucket")
        elif not rec.online:
            why = ("offline", f"its root {rec.source_name} is offline")
        elif rec.row.status != "ok":
            why = ("status", f"it is {rec.row.status}")
        if why is not None:
            failed.append({"id": rec.id, "path": rec.abs_path, "reason": why[0],
                           "message": f"photo {rec.id} was not trashed: {why[1]}"})
            continue
        assert rec.source_path is not None
        assert rec.abs_path is not None
        try:
            await asyncio.to_thread(_trash, rec.source_path, rec.abs_path)
        except (OSError, TrashPermissionError) as exc:
            failed.append({"id": rec.id, "path": rec.abs_path, "reason": "refused",
                           "message": f"{rec.abs_path}: {exc}"})
            continue
        log.info("moved to the trash", id=rec.id, path=rec.abs_path)
        trashed.append({"id": rec.id, "path": rec.abs_path})
        if rec.folder_abs_path is not None:
            folders.add(rec.folder_abs_path)
    job = None
    for folder in sorted(folders):
        job = await ctx.daemon.jobs.submit("scan", {"path": folder})
    return {"trashed": trashed, "failed": failed, "job": job}
