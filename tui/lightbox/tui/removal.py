"""Removing widgets from code that can be cancelled (workers, exclusive ones above all).

Textual's ``AwaitRemove`` waits with ``asyncio.gather`` on the removed widgets' own
message-loop tasks. Cancelling a coroutine that awaits it (an exclusive worker replaced by
the next one, any worker whose screen closes) cancels the gather, and a gather cancels what
it waits on: the widgets' loops die cancelled, and the app, which waits on the same tasks
for the same removal (``App._prune`` schedules it with ``call_next``), receives the
``CancelledError`` in its own message loop, which then ends without a word: the TUI no
longer answers a key. Seen: two live changes of the library's grid size in a row, the
second cancelling the first while the grid rebuilt its cells (one start in three under
load). Waiting through a shield lets the removal finish whatever becomes of the waiter.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable


async def removed(removal: Awaitable[None]) -> None:
    """Wait for ``removal`` (``widget.remove()``, ``remove_children()``); cancelling the
    caller cancels only the wait, never the removal."""

    async def finish() -> None:
        await removal

    await asyncio.shield(finish())
