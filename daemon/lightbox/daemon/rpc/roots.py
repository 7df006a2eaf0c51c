"""``roots.*``: which folders make up the library."""

from __future__ import annotations

from typing import Any

from lightbox.common.errors import RpcError
from lightbox.daemon.rpc import Context, method
from lightbox.daemon.settings import actor_of


@method("roots.list")
async def list_roots(ctx: Context) -> dict[str, Any]:
    d = ctx.daemon
    return {"roots": await d.sources.describe(d.watched_roots())}


@method("roots.add")
async def add(ctx: Context, path: str, name: str | None, scan: bool) -> dict[str, Any]:
    d = ctx.daemon
    try:
        source = await d.sources.add(path, name)
    except RpcError as err:
        reason = err.data.get("reason") if isinstance(err.data, dict) else None
        await d.settings.record("roots.add", actor_of(ctx), [
            {"key": "roots", "old": None, "new": {"path": path, "name": name}}],
            result="refused", detail={"reason": reason, "error": err.message[:500]})
        raise
    await d.settings.record("roots.add", actor_of(ctx), [
        {"key": f"roots.{source.id}", "old": None,
         "new": {"path": source.path, "name": source.name}}])
    await d.root_added(source)
    job = await d.jobs.submit("scan", {"root": source.id}) if scan else None
    roots = await d.sources.describe(d.watched_roots())
    return {"root": next(r for r in roots if r["id"] == source.id), "job": job}


@method("roots.confirm")
async def confirm(ctx: Context, root: Any) -> dict[str, Any]:
    d = ctx.daemon
    source = d.sources.resolve(root)
    return {"root": source.id, "confirmed": await d.scanner.confirm_vanished(source)}


@method("roots.remove")
async def remove(ctx: Context, root: Any) -> dict[str, Any]:
    d = ctx.daemon
    source = d.sources.resolve(root)
    d.root_removing(source)
    removed = await d.sources.remove(source)
    actor = actor_of(ctx)
    await d.settings.record("roots.remove", actor, [
        {"key": f"roots.{source.id}", "old": {"path": source.path, "name": source.name},
         "new": None}], detail={"photos": removed.get("photos")})
    # Its per-root settings go with it (audited as a reset).
    own = [k for k in d.settings.stored if k.startswith(f"roots.{source.id}.")]
    if own:
        await d.settings.reset(own, actor, check=False)
    return removed
