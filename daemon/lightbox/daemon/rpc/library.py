"""``library.*``: scanning and cleaning up."""

from __future__ import annotations

from typing import Any

from lightbox.common.errors import InvalidParams, NotFound
from lightbox.daemon.catalog import paths
from lightbox.daemon.rpc import Context, method


@method("library.scan")
async def scan(ctx: Context, root: Any, path: str | None, full: bool) -> dict[str, Any]:
    d = ctx.daemon
    params: dict[str, Any] = {"full": full} if full else {}
    if path is not None:
        if not path.startswith(("/", "~")):
            raise InvalidParams("path: must be absolute", {"errors": {"path": "not absolute"}})
        absolute = paths.normalize(path)
        if d.sources.locate(absolute) is None:
            raise NotFound(f"{absolute} is not inside any root (lightbox roots add PATH)")
        params["path"] = absolute
    elif root is not None:
        params["root"] = d.sources.resolve(root).id
    elif not d.sources.local():
        raise NotFound("the library has no roots yet (lightbox roots add PATH)")
    # Not the scan already running (the daemon's own, begun at start or by the schedule):
    # it may have passed the folders this request wants looked at.
    return {"job": await d.jobs.submit("scan", params, join_running=False)}


@method("library.cleanup")
async def cleanup(ctx: Context, days: int | None) -> dict[str, Any]:
    params = {} if days is None else {"days": days}
    return {"job": await ctx.daemon.jobs.submit("cleanup", params)}
