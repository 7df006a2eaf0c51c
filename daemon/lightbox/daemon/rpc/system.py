"""``hello`` and ``system.*``."""

from __future__ import annotations

import asyncio
from typing import Any

import sqlalchemy as sa

from lightbox.common import logs
from lightbox.common.api import EVENTS, METHODS, PROTOCOL_VERSION, Permission
from lightbox.daemon.catalog import tables
from lightbox.daemon.control.events import iso_now
from lightbox.daemon.rpc import Context, method

log = logs.get("control")


@method("hello", inline=True)
async def hello(ctx: Context, client: str | None, protocol: int | None) -> dict[str, Any]:
    d = ctx.daemon
    if client:
        if ctx.caller is not None:
            d.control.declare_client(ctx.caller.identity, client)
        log.debug("client said hello", client=client, peer=ctx.peer, protocol=protocol)
    return {
        "protocol": PROTOCOL_VERSION,
        "daemon": "lightboxd",
        "version": d.version,
        "features": d.features(),
        "boot": d.boot,
        "seq": d.bus.seq,
        "events": d.control.events_endpoint(ctx.transport),
        "permission": ctx.permission.label,
        "max_message_bytes": d.config["control.max_message_bytes"],
    }


@method("system.status")
async def status(ctx: Context) -> dict[str, Any]:
    d = ctx.daemon
    jobs: dict[str, int] = dict.fromkeys(tables.JOB_STATES, 0)
    p, f = tables.photos, tables.folders
    async with d.db.engine.connect() as conn:
        rows = await conn.execute(
            sa.select(tables.jobs.c.state, sa.func.count()).group_by(tables.jobs.c.state)
        )
        for state, count in rows:
            jobs[state] = int(count)
        # Cheap counts only: totals from the roots' top folders, states by index range.
        photos = await conn.scalar(sa.select(sa.func.coalesce(sa.func.sum(f.c.total_count), 0))
                                   .where(f.c.parent_id.is_(None)))
        by_state = {}
        for state in ("pending", "error", "missing"):
            by_state[state] = int(await conn.scalar(
                sa.select(sa.func.count()).select_from(p).where(p.c.status == state)) or 0)
        # Why photos are in error (content, or a bucket's reads given up on), by reason.
        error_reasons = {str(r or "unknown"): int(n) for r, n in await conn.execute(
            sa.select(p.c.error_reason, sa.func.count()).where(p.c.status == "error")
            .group_by(p.c.error_reason))} if by_state["error"] else {}
        folders = await conn.scalar(sa.select(sa.func.count()).select_from(f)
                                    .where(f.c.missing_since.is_(None)))
    await d.db.buffer_pool_status()
    status = {
        "version": d.version,
        "pid": d.pid,
        "boot": d.boot,
        "started": iso_now(d.started_wall),
        "uptime": round(d.uptime(), 3),
        "database": d.db.status(),
        "counts": {"roots": len(d.sources.by_id), "folders": int(folders or 0),
                   "photos": int(photos or 0), "pending": by_state["pending"],
                   "errors": by_state["error"], "missing": by_state["missing"],
                   "error_reasons": error_reasons},
        "jobs": jobs,
        "indexing": {"paused": d.indexer.pause.describe() if d.indexer.pause else None,
                     "retrying": d.indexer.backlog.reasons()},
        "components": d.component_status(),
        "paths": {
            "data": str(d.config.paths.data_dir),
            "cache": str(d.config.paths.cache_dir),
            "state": str(d.config.paths.state_dir),
        },
    }
    if ctx.transport != "ipc" and ctx.permission < Permission.CONTROL:
        return redact_for_remote_reader(status)
    return status


def redact_for_remote_reader(status: dict[str, Any]) -> dict[str, Any]:
    """``system.status`` for a ``read`` key over TCP: health and counts, but nothing that
    maps the host (absolute paths, socket addresses, the database URL).

    The known places are dropped by name; every other string that looks like a path or a
    URL, wherever a component put it, is replaced, so a new field cannot leak by default.
    """
    out = {k: v for k, v in status.items() if k != "paths"}
    out["database"] = {k: v for k, v in status["database"].items() if k != "url"}
    hidden = "(hidden from read-only remote clients)"

    def scrub(value: Any) -> Any:
        if isinstance(value, str):
            return hidden if value.startswith(("/", "~")) or "://" in value else value
        if isinstance(value, dict):
            return {k: scrub(v) for k, v in value.items()}
        if isinstance(value, list):
            return [scrub(v) for v in value]
        return value

    scrubbed: dict[str, Any] = scrub(out)
    return scrubbed


@method("system.methods", inline=True)
async def methods(ctx: Context) -> dict[str, Any]:
    return {
        "methods": [
            {**spec.describe(), "allowed": ctx.permission >= spec.permission}
            for spec in METHODS.values()
        ],
        "events": [
            {"topic": e.topic, "type": e.type, "summary": e.summary, "data": dict(e.data)}
            for e in EVENTS
        ],
    }


@method("system.shutdown")
async def shutdown(ctx: Context) -> dict[str, Any]:
    # Stop after this reply is on its way: the control server drains in-flight requests,
    # this one included, before it closes.
    asyncio.get_running_loop().call_soon(ctx.daemon.request_stop, "request")
    return {"stopping": True}
