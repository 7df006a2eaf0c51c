"""The shape every long-lived part of the daemon has.

The daemon starts components in list order and stops the ones that started in reverse order,
in a ``finally``, so a failure half-way through start-up still closes what was opened.
"""

from __future__ import annotations

from typing import Any, Protocol


class Component(Protocol):
    name: str

    async def start(self) -> None:
        """Acquire resources; raise to abort the daemon's start (already-started ones stop)."""

    async def stop(self) -> None:
        """Release resources. Must be bounded in time and must not raise for normal cases."""

    def status(self) -> dict[str, Any]:
        """A small JSON-able summary for ``system.status``."""


class Configurable(Protocol):
    """A component that takes runtime settings (``lightbox.daemon.settings``).

    ``settings_keys`` are glob patterns of the keys it uses (``library.debounce``,
    ``roots.*.watch``); ``apply`` gets the new values of those that changed, before the
    component starts (the stored values) and whenever one changes while it runs. Values
    are already validated against the schema. Constructors take the bootstrap values only
    as a starting point.
    """

    name: str
    settings_keys: tuple[str, ...]

    async def apply(self, changes: dict[str, Any]) -> None:
        """Take the new values; raise only when the change cannot be made at all."""
