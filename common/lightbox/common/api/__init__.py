"""The registry of control methods and events, declared area by area.

Add a method: declare its ``MethodSpec`` in the area's module here (or a new module listed
below), write its handler in ``lightbox.daemon.rpc.<area>``, run ``make docs`` to regenerate
``docs/protocol.md``. The daemon refuses to start with a spec that has no handler.
"""

from lightbox.common.api import (
    backups,
    catalog,
    database,
    events,
    jobs,
    library,
    settings,
    sources,
    system,
)
from lightbox.common.api.schema import (
    EventSpec,
    MethodSpec,
    Param,
    Permission,
    build_registry,
)

PROTOCOL_VERSION = 1

METHODS: dict[str, MethodSpec] = build_registry(
    [system.METHODS, events.METHODS, library.METHODS, catalog.METHODS, jobs.METHODS,
     database.METHODS, backups.METHODS, sources.METHODS, settings.METHODS])
EVENTS: tuple[EventSpec, ...] = (
    *system.EVENTS, *library.EVENTS, *catalog.EVENTS, *jobs.EVENTS, *database.EVENTS,
    *backups.EVENTS, *sources.EVENTS, *settings.EVENTS)
TOPICS: tuple[str, ...] = tuple(sorted({e.topic for e in EVENTS}))

__all__ = [
    "EVENTS",
    "METHODS",
    "PROTOCOL_VERSION",
    "TOPICS",
    "EventSpec",
    "MethodSpec",
    "Param",
    "Permission",
]
