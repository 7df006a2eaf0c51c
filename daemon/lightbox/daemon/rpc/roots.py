"""``roots.*``: which folders make up the library."""

from __future__ import annotations

from typing import Any

from lightbox.daemon.rpc import Context, method


@method("roots.list")
async def list_roots(ctx: Context) -> dict[str, Any]:
    d = ctx.daemon
    return {"roots": await d.sources.describe(d.watched_roots())}


@method("roots.add")
async def add(ctx: Context, path: str, name: str | None, scan: bool) -> dict[str, Any]:
    d = ctx.daemon
    source = await d.sources.add(path, name)
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
    return await d.sources.remove(source)
