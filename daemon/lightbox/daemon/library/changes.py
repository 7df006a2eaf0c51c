"""Catalog change events, merged per burst.

A scan that finds 5,000 new photos must not send 5,000 events: changes are collected for a
short window (or until a batch is large) and published as one event per (type, folder) with
the ids (up to ``MAX_IDS``) and a count. Subscribers reload what they show for that folder.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

from lightbox.daemon.control.events import EventBus

WINDOW = 0.1
MAX_IDS = 500
FLUSH_AT = 2000


class ChangeFeed:
    def __init__(self, bus: EventBus, window: float = WINDOW) -> None:
        self.bus = bus
        self.window = window
        # (type, folder_id, extra) -> ids
        self._pending: dict[tuple[str, int, Any], list[int]] = defaultdict(list)
        self._folder_paths: dict[int, str] = {}
        self._folders: dict[int, set[int]] = defaultdict(set)
        self._timer: asyncio.TimerHandle | None = None
        self._size = 0

    def photos(self, kind: str, folder_id: int, folder_path: str, ids: list[int],
               **extra: Any) -> None:
        """Record photo changes: kind is added, changed, moved or removed."""
        if not ids:
            return
        key = (kind, folder_id, tuple(sorted(extra.items())))
        self._pending[key].extend(ids)
        self._folder_paths[folder_id] = folder_path
        self._size += len(ids)
        self._schedule()

    def folders(self, source_id: int, ids: list[int] | set[int]) -> None:
        """The tree or the counts of these folders changed."""
        if not ids:
            return
        self._folders[source_id].update(ids)
        self._size += 1
        self._schedule()

    def _schedule(self) -> None:
        if self._size >= FLUSH_AT:
            self.flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.window, self.flush)

    def flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        pending, self._pending = self._pending, defaultdict(list)
        folders, self._folders = self._folders, defaultdict(set)
        paths, self._folder_paths = self._folder_paths, {}
        self._size = 0
        for (kind, folder_id, extra), photo_ids in pending.items():
            unique = list(dict.fromkeys(photo_ids))
            self.bus.publish("catalog", kind, {
                "folder_id": folder_id, "folder": paths.get(folder_id), "ids": unique[:MAX_IDS],
                "count": len(unique), **dict(extra)})
        for source_id, ids in folders.items():
            ordered = sorted(ids)
            self.bus.publish("catalog", "folders", {"source_id": source_id,
                                                    "ids": ordered[:MAX_IDS]})
