"""Handlers of control methods, one module per area (``system``, ``events``, ``photos``...).

A handler is ``async def handler(ctx: Context, **params) -> result`` registered with
``@method("area.verb")``. Its parameters arrive validated against the method's spec from
``lightbox.common.api`` (defaults filled in), and the caller's permission was checked
before it runs. To fail, raise one of ``lightbox.common.errors``; any other exception
becomes an "internal error" reply and a traceback in the daemon's log, never in the reply.
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

Handler = Callable[..., Awaitable[Any]]
H = TypeVar("H", bound=Handler)

HANDLERS: dict[str, Handler] = {}

# Every module that registers handlers; the dispatcher imports them all at start.
AREAS = ("system", "events", "roots", "library", "jobs", "folders", "photos", "database",
         "trash")  # photos.trash, apart from photos.* file serving


def method(name: str) -> Callable[[H], H]:
    def register(fn: H) -> H:
        if name in HANDLERS and HANDLERS[name] is not fn:
            raise RuntimeError(f"two handlers for {name}")
        HANDLERS[name] = fn
        return fn

    return register


def load_handlers() -> dict[str, Handler]:
    for area in AREAS:
        importlib.import_module(f"lightbox.daemon.rpc.{area}")
    return HANDLERS


@dataclass
class Context:
    """What a handler knows about the call it serves."""

    daemon: Daemon
    permission: Permission
    transport: str  # "ipc" or "tcp"
    peer: str  # for logs: the CURVE key on TCP, the connection's id on ipc
    frames: list[bytes] = field(default_factory=list)

    def attach(self, data: bytes) -> dict[str, int]:
        """Send ``data`` as a binary frame of the reply; returns the marker to put in the result."""
        self.frames.append(data)
        return {FRAME_KEY: len(self.frames) - 1}
