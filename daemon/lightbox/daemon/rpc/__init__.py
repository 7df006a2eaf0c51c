"""Handlers of control methods, one module per area (``system``, ``events``, ``photos``...).

A handler is ``async def handler(ctx: Context, **params) -> result`` registered with
``@method("area.verb")``. Its parameters arrive validated against the method's spec from
``lightbox.common.api`` (defaults filled in), and the caller's permission was checked
before it runs. To fail, raise one of ``lightbox.common.errors``; any other exception
becomes an "internal error" reply and a traceback in the daemon's log, never in the reply.

``@method(name, inline=True)`` marks a handler that only reads the daemon's memory and
returns without awaiting anything (``hello``): the control server runs it straight from its
receive loop, without a task of its own. Every other handler starts in its own task, so it
may use ``asyncio.current_task()`` and context variables (the catalog's gate does), and a
slow one never holds up the rest.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from lightbox.common.api import Permission
from lightbox.common.protocol import FRAME_KEY

if TYPE_CHECKING:
    from lightbox.daemon.app import Daemon
    from lightbox.daemon.control.budget import Lease

Handler = Callable[..., Awaitable[Any]]
H = TypeVar("H", bound=Handler)

HANDLERS: dict[str, Handler] = {}
INLINE: set[str] = set()  # methods whose handlers return without awaiting (see above)

# Every module that registers handlers; the dispatcher imports them all at start.
AREAS = ("system", "events", "roots", "library", "jobs", "folders", "photos", "database",
         "trash", "backups", "imports", "sources", "settings")  # trash: photos.trash


def method(name: str, inline: bool = False) -> Callable[[H], H]:
    def register(fn: H) -> H:
        if name in HANDLERS and HANDLERS[name] is not fn:
            raise RuntimeError(f"two handlers for {name}")
        HANDLERS[name] = fn
        if inline:
            INLINE.add(name)
        return fn

    return register


def load_handlers() -> dict[str, Handler]:
    for area in AREAS:
        importlib.import_module(f"lightbox.daemon.rpc.{area}")
    return HANDLERS


@dataclass(frozen=True)
class Caller:
    """Who sent a request, as far as the transport can tell (for the audit log)."""

    transport: str  # "ipc" or "tcp"
    identity: bytes = b""  # the connection's routing id
    key: str | None = None  # tcp: the client's CURVE public key (Z85)
    peer_address: str | None = None  # libzmq's Peer-Address; ipc: "host:uid:gid:pid"


@dataclass
class Context:
    """What a handler knows about the call it serves."""

    daemon: Daemon
    permission: Permission
    transport: str  # "ipc" or "tcp"
    peer: str  # for logs: the CURVE key on TCP, the connection's id on ipc
    frames: list[bytes] = field(default_factory=list)
    caller: Caller | None = None
    lease: Lease | None = None  # the reply budget of the message this call came in
    reserved: int = 0  # bytes this call took from the budget...
    attached: int = 0  # ...and how many of them its frames use

    def reserve(self, n: int, what: str = "this reply") -> None:
        """Take ``n`` bytes of the reply budget before reading them; Busy when over it."""
        if self.lease is not None and n > 0:
            self.lease.take(n, what)
            self.reserved += n

    def attach(self, data: bytes) -> dict[str, int]:
        """Send ``data`` as a binary frame of the reply; returns the marker to put in the result.

        Its bytes come out of what ``reserve`` took; beyond that they are taken now (and
        Busy is raised, with nothing attached, when the budget has no room).
        """
        over = self.attached + len(data) - self.reserved
        if over > 0:
            self.reserve(over, f"a {len(data)}-byte frame")
        self.attached += len(data)
        self.frames.append(data)
        return {FRAME_KEY: len(self.frames) - 1}

    def settle(self) -> None:
        """The call is done: give back what it reserved and did not use."""
        unused = self.reserved - self.attached
        if unused > 0 and self.lease is not None:
            self.lease.give_back(unused)
            self.reserved = self.attached
