"""``settings.*``: read, change, reset, revert and audit the runtime settings."""

from __future__ import annotations

from typing import Any

from lightbox.common import settings as schema
from lightbox.common.api import Permission
from lightbox.daemon.rpc import Context, method
from lightbox.daemon.settings import actor_of, invalid


@method("settings.get")
async def get(ctx: Context, keys: list[str] | None) -> dict[str, Any]:
    store = ctx.daemon.settings
    if keys is None:
        wanted = store.known_keys()
    else:
        problems = [schema.Problem(k, "unknown_key", "no such setting") for k in keys
                    if schema.field_for(k) is None]
        if problems:
            raise invalid(problems)
        wanted = keys
    out = {k: store.describe(k) for k in wanted}
    if ctx.transport != "ipc" and ctx.permission < Permission.CONTROL:
        # Like system.status for a remote reader: no paths of this host, no database URL.
        for key, entry in out.items():
            fld = schema.BY_KEY.get(key)
            if fld is not None and fld.scope == "bootstrap" and (
                    fld.type == "path" or key == "database.url"):
                entry.update(value=None, origin="hidden from read-only remote clients")
    return {"revision": store.revision, "settings": out}


@method("settings.set")
async def set_(ctx: Context, patch: dict[str, Any], if_revision: int | None
               ) -> dict[str, Any]:
    return await ctx.daemon.settings.set(patch, actor_of(ctx), if_revision=if_revision)


@method("settings.reset")
async def reset(ctx: Context, keys: list[str], if_revision: int | None) -> dict[str, Any]:
    return await ctx.daemon.settings.reset(keys, actor_of(ctx), if_revision=if_revision)


@method("settings.schema")
async def schema_(ctx: Context) -> dict[str, Any]:
    return schema.schema()


@method("settings.audit")
async def audit(ctx: Context, limit: int, cursor: int | None, key: str | None
                ) -> dict[str, Any]:
    return await ctx.daemon.settings.audit(limit, cursor, key)


@method("settings.revert")
async def revert(ctx: Context, revision: int, if_revision: int | None) -> dict[str, Any]:
    return await ctx.daemon.settings.revert(revision, actor_of(ctx), if_revision=if_revision)
