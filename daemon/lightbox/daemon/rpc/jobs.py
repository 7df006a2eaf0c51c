"""``jobs.*``: the job queue, for people and scripts."""

from __future__ import annotations

from typing import Any

from lightbox.daemon.rpc import Context, method


@method("jobs.list")
async def list_jobs(ctx: Context, state: str | None, kind: str | None, limit: int,
                    cursor: str | None) -> dict[str, Any]:
    return await ctx.daemon.jobs.list(state, kind, limit, cursor)


@method("jobs.get")
async def get(ctx: Context, id: int) -> dict[str, Any]:
    return await ctx.daemon.jobs.get(id)


@method("jobs.cancel")
async def cancel(ctx: Context, id: int) -> dict[str, Any]:
    return await ctx.daemon.jobs.cancel(id)


@method("jobs.wait")
async def wait(ctx: Context, id: int, timeout: float) -> dict[str, Any]:
    return await ctx.daemon.jobs.wait(id, timeout)
