"""Messages the daemon link sends to the screens that listen to it.

They do not bubble: the link posts a fresh instance to each listener (usually a screen), which
handles it and passes what its widgets need down as attributes.
"""

from __future__ import annotations

from typing import Any

from textual.message import Message


class DaemonEvent(Message, bubble=False):
    """One event from the daemon's PUB socket (or replayed by ``events.since``), in order."""

    def __init__(self, event: dict[str, Any]) -> None:
        super().__init__()
        self.event = event

    @property
    def topic(self) -> str:
        return str(self.event.get("topic", ""))

    @property
    def type(self) -> str:
        return str(self.event.get("type", ""))

    @property
    def data(self) -> dict[str, Any]:
        data = self.event.get("data")
        return data if isinstance(data, dict) else {}


class LinkChanged(Message, bubble=False):
    """The connection went up or down (``state``: connecting, connected, down)."""

    def __init__(self, state: str, detail: str) -> None:
        super().__init__()
        self.state = state
        self.detail = detail


class Resync(Message, bubble=False):
    """Events were missed beyond replay (or the daemon restarted): reload what you show."""

    def __init__(self, restarted: bool) -> None:
        super().__init__()
        self.restarted = restarted


class StatusChanged(Message, bubble=False):
    """New ``system.status`` figures (job and photo counts) for status lines."""

    def __init__(self, status: dict[str, Any]) -> None:
        super().__init__()
        self.status = status
