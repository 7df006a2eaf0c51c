"""``database.*``: the catalog's database, tested and switched live (see catalog/switch.py)."""

from __future__ import annotations

from typing import Any

from lightbox.common import dburl
from lightbox.daemon.catalog import probe
from lightbox.daemon.catalog.database import head_revision
from lightbox.daemon.rpc import Context, method


@method("database.test")
async def test(ctx: Context, url: str, timeout: float) -> dict[str, Any]:
    return await probe.run(url, timeout)


@method("database.switch")
async def switch(ctx: Context, url: str) -> dict[str, Any]:
    return await ctx.daemon.switcher.submit(url)


@method("database.status")
async def status(ctx: Context) -> dict[str, Any]:
    d = ctx.daemon
    persisted = d.db_state.read()
    switched = persisted if persisted is not None and persisted.url == d.db.url else None
    return {
        **d.db.status(), "head": head_revision(),
        "origin": "switched" if switched else "config",
        "switched": switched.describe() if switched else None,
        "state_file": str(d.db_state.path),
        "bootstrap": dburl.mask(d.config.database_url),
        "switch": d.switcher.status(),
    }
