"""A memory budget for replies: bytes in flight per connection and in total.

A small request can ask for a large reply (``photos.original`` returns up to 8 MiB, and a
batch holds 100 requests), so what bounds the daemon's memory is the replies, not the
requests. Every reply that carries data takes its bytes from the budget before it is read
or built (``Context.reserve`` / ``Context.attach``); over the budget the call is answered
``busy`` with ``data.reason = "reply_budget"`` and ``retry_after``, and nothing is read.

The bytes stay taken until ZeroMQ has written the reply out (a ``MessageTracker`` says so),
not merely until it was queued: a client that stops reading keeps its own replies in the
daemon, so it runs into its own per-connection limit, and all clients together into the
total. Replies under ``SMALL`` bytes are not counted at all; they are bounded by the number
of requests in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import zmq

from lightbox.common.errors import Busy

SMALL = 64 << 10  # pyzmq copies frames under this size anyway; not worth tracking
REAP_EVERY = 0.01


class ReplyBudget:
    def __init__(self, per_connection: int = 32 << 20, total: int = 128 << 20) -> None:
        self.per_connection = per_connection
        self.total = total
        self.used = 0
        self.peak = 0
        self.refused = 0
        self._by_peer: dict[bytes, int] = {}
        self._tracked: list[tuple[zmq.MessageTracker, Lease]] = []
        self._reaper: asyncio.Task[None] | None = None

    def configure(self, per_connection: int, total: int) -> None:
        """New limits; what is in flight stays counted and drains under the new ones."""
        self.per_connection = per_connection
        self.total = total

    def lease(self, peer: bytes) -> Lease:
        return Lease(self, peer)

    def status(self) -> dict[str, Any]:
        return {"in_flight": self.used, "peak": self.peak, "refused": self.refused,
                "per_connection": self.per_connection, "total": self.total,
                "connections": len(self._by_peer)}

    def _take(self, lease: Lease, n: int, what: str) -> None:
        mine = self._by_peer.get(lease.peer, 0)
        if mine + n > self.per_connection or self.used + n > self.total:
            self.refused += 1
            scope = ("this connection" if mine + n > self.per_connection
                     else "all connections")
            limit = self.per_connection if scope == "this connection" else self.total
            raise Busy(
                f"{what} needs {_mib(n)} but replies in flight to {scope} already hold "
                f"{_mib(mine if scope == 'this connection' else self.used)} of "
                f"{_mib(limit)}; retry shortly (or ask for smaller chunks)",
                {"reason": "reply_budget", "retry_after": 1, "needed": n, "limit": limit})
        self._by_peer[lease.peer] = mine + n
        self.used += n
        self.peak = max(self.peak, self.used)
        lease.held += n

    def _give(self, lease: Lease, n: int) -> None:
        n = min(n, lease.held)
        if n <= 0:
            return
        lease.held -= n
        self.used -= n
        left = self._by_peer.get(lease.peer, 0) - n
        if left > 0:
            self._by_peer[lease.peer] = left
        else:
            self._by_peer.pop(lease.peer, None)

    def track(self, tracker: zmq.MessageTracker, lease: Lease) -> None:
        """Release ``lease`` once ZeroMQ is done with the message ``tracker`` follows."""
        if tracker.done:
            lease.release()
            return
        self._tracked.append((tracker, lease))
        if self._reaper is None or self._reaper.done():
            self._reaper = asyncio.get_running_loop().create_task(self._reap(),
                                                                  name="reply-budget")

    async def _reap(self) -> None:
        while self._tracked:
            await asyncio.sleep(REAP_EVERY)
            still = []
            for tracker, lease in self._tracked:
                if tracker.done:
                    lease.release()
                else:
                    still.append((tracker, lease))
            self._tracked = still

    async def close(self) -> None:
        if self._reaper is not None:
            self._reaper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reaper
        for _, lease in self._tracked:
            lease.release()
        self._tracked.clear()


class Lease:
    """The budget one request message holds (all calls of a batch share it)."""

    __slots__ = ("budget", "held", "peer")

    def __init__(self, budget: ReplyBudget, peer: bytes) -> None:
        self.budget = budget
        self.peer = peer
        self.held = 0

    def take(self, n: int, what: str = "this reply") -> None:
        """Count ``n`` more bytes, or raise Busy (nothing counted) when over the budget."""
        if n > 0:
            self.budget._take(self, n, what)

    def give_back(self, n: int) -> None:
        self.budget._give(self, n)

    def release(self) -> None:
        self.budget._give(self, self.held)


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"
