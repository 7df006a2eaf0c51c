"""``events.since``: replay from the event bus's ring buffer."""

from __future__ import annotations

from typing import Any

from lightbox.daemon.rpc import Context, method


@method("events.since", inline=True)
async def since(
    ctx: Context, seq: int, boot: str | None, topics: list[str] | None, limit: int
) -> dict[str, Any]:
    bus = ctx.daemon.bus
    reset = boot is not None and boot != bus.boot
    # After a restart the client's seq means nothing here: replay everything we hold.
    events, complete, more = bus.since(0 if reset else seq, topics, limit)
    return {"events": events, "seq": bus.seq, "boot": bus.boot, "complete": complete,
            "reset": reset, "more": more}
