"""``sources.*``: roots and buckets alike; adding, testing and syncing buckets.

No reply, log line or event carries a secret: ``describe`` adds the secrets' fingerprints
only, and ``sources.test`` with inline parameters builds a throw-away config.
"""

from __future__ import annotations

import asyncio
from typing import Any

from lightbox.common.errors import InvalidParams, RpcError
from lightbox.daemon import kinds
from lightbox.daemon.kinds.s3 import forget_clients, probe
from lightbox.daemon.library.sources import Source
from lightbox.daemon.rpc import Context, method, roots
from lightbox.daemon.settings import actor_of


def _audited(ctx: Context, src: Source) -> dict[str, Any]:
    """A bucket as the audit log keeps it: its config and, of its secret, only whether it
    is set and its fingerprint (the same as ``sources.get`` shows)."""
    return {"name": src.name, "path": src.path, **dict(src.config or {}),
            "secret_access_key": ctx.daemon.sources.secret_info(src)["secret_access_key"]}


async def _describe(ctx: Context, only: Source | None = None) -> list[dict[str, Any]]:
    d = ctx.daemon
    out = []
    for row in await d.sources.describe(d.watched_roots()):
        if only is not None and row["id"] != only.id:
            continue
        src = d.sources.get(row["id"])
        if src.kind == "s3":
            row["config"] = dict(src.config or {})
            row["secrets"] = d.sources.secret_info(src)
        out.append(row)
    return out


@method("sources.list")
async def list_sources(ctx: Context) -> dict[str, Any]:
    return {"sources": await _describe(ctx)}


@method("sources.get")
async def get(ctx: Context, source: Any) -> dict[str, Any]:
    src = ctx.daemon.sources.resolve(source)
    return {"source": (await _describe(ctx, src))[0]}


@method("sources.add")
async def add(ctx: Context, kind: str, name: str, sync: bool, **params: Any) -> dict[str, Any]:
    d = ctx.daemon
    try:
        src = await d.sources.add_s3(name, params)
    except RpcError as err:
        reason = err.data.get("reason") if isinstance(err.data, dict) else None
        shown = {k: v for k, v in params.items() if k != "secret_access_key"}
        await d.settings.record("sources.add", actor_of(ctx), [
            {"key": "sources", "old": None, "new": {"name": name, **shown}}],
            result="refused", detail={"reason": reason, "error": err.message[:500]})
        raise
    await d.settings.record("sources.add", actor_of(ctx), [
        {"key": f"sources.{src.id}", "old": None, "new": _audited(ctx, src)}])
    await d.cluster.adopt(src)  # a shared catalog: this daemon runs the bucket it added
    job = await d.jobs.submit("sync", {"source": src.id}) if sync else None
    if job is not None:
        d.buckets.mark_tried(src.id)
    d.buckets.poke()
    return {"source": (await _describe(ctx, src))[0], "job": job}


@method("sources.remove")
async def remove(ctx: Context, source: Any) -> dict[str, Any]:
    d = ctx.daemon
    src = d.sources.resolve(source)
    if src.kind == "local":       # a root: as roots.remove (its own settings go with it)
        return await roots.remove(ctx, src.id)
    d.writer.forget(src.id)
    before = _audited(ctx, src)
    removed = dict(await d.sources.remove(src))
    await d.settings.record("sources.remove", actor_of(ctx), [
        {"key": f"sources.{src.id}", "old": before, "new": None}],
        detail={"photos": removed.get("photos")})
    return removed


@method("sources.update")
async def update(ctx: Context, source: Any, clear: list[str] | None,
                 **params: Any) -> dict[str, Any]:
    d = ctx.daemon
    src = d.sources.resolve(source)
    before = _audited(ctx, src) if src.kind == "s3" else {}
    changes = {k: v for k, v in params.items() if v is not None}
    changed = await d.sources.update_s3(src, changes, clear or ())
    if changed:
        after = _audited(ctx, src)
        await d.settings.record("sources.update", actor_of(ctx), [
            {"key": f"sources.{src.id}.{k}", "old": before.get(k), "new": after.get(k)}
            for k in changed])
        forget_clients()        # new endpoint or credentials: on the next request
        d.buckets.poke()        # a new interval counts from the last sync
    return {"source": (await _describe(ctx, src))[0], "changed": changed}


@method("sources.set_secret")
async def set_secret(ctx: Context, source: Any, name: str, value: str | None) -> dict[str, Any]:
    d = ctx.daemon
    src = d.sources.resolve(source)
    if src.kind != "s3":
        raise InvalidParams(f"{src.name} is a local root: it has no secrets",
                            {"errors": {"source": "not a bucket"}})
    before = d.sources.secret_info(src)[name]
    await d.sources.set_secret(src, name, value)
    after = d.sources.secret_info(src)[name]
    if before != after:
        await d.settings.record("sources.set_secret", actor_of(ctx), [
            {"key": f"sources.{src.id}.{name}", "old": before, "new": after}])
    forget_clients()        # new credentials take effect on the next request
    return {"secrets": d.sources.secret_info(src)}


@method("sources.test")
async def test(ctx: Context, source: Any, **params: Any) -> dict[str, Any]:
    d = ctx.daemon
    if source is not None:
        src = d.sources.resolve(source)
        if src.kind != "s3":
            raise InvalidParams(f"{src.name} is a local root; sources.test checks buckets",
                                {"errors": {"source": "not a bucket"}})
        cfg = d.sources.s3_config(src)
    else:
        given = {k: v for k, v in params.items() if v is not None}
        config = d.sources.validate_s3(given)
        cfg = kinds.s3_config(config, {"secret_access_key": given.get("secret_access_key")
                                       or ""})
    checks = await asyncio.to_thread(probe, cfg)
    failed = next((c for c in checks if not c.ok), None)
    return {"ok": failed is None, "failed": failed.name if failed else None,
            "message": failed.message if failed else "the bucket can be listed and read",
            "checks": [c.as_dict() for c in checks]}


@method("sources.sync")
async def sync(ctx: Context, source: Any, force: bool, retry: bool = False) -> dict[str, Any]:
    d = ctx.daemon
    if source is not None:
        src = d.sources.resolve(source)
        if src.kind != "s3":
            raise InvalidParams(f"{src.name} is a local root: use library.scan",
                                {"errors": {"source": "not a bucket"}})
        targets = [src]
    else:
        targets = d.sources.buckets()
    params = [{"source": s.id, **({"force": True} if force else {}),
               **({"retry": True} if retry else {})} for s in targets]
    jobs = [await d.jobs.submit("sync", p) for p in params]
    return {"job": jobs[0] if len(jobs) == 1 else None, "jobs": jobs}
