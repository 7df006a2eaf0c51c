"""The mass-vanish guard: a pass that would make many photos vanish at once is not believed.

Offline detection (``identity``) catches an unmounted disk. What it cannot catch is a root
that is itself fine while most of what is below it is suddenly not: a NAS share mounted on a
subfolder that dropped, a sync client that emptied a tree before refilling it, a user who ran
the wrong ``rm``. Marking those photos missing would be reversible, but the confirming pass
after it removes rows, and with them ids, thumbnails links and history.

So every pass — a scan job's, the watcher's, the poller's: they all end in
``Scanner._vanish`` — asks ``decide`` which of the photos it found gone may change state:

- photos already held as *suspect* stay as they are until they have been held for
  ``delay`` seconds and a later pass still finds them gone (then they become ``missing``,
  and only a pass after that removes them), or until the user confirms (``roots.confirm``);
- of the rest, if more than ``max(50, 10 %)`` of the root's photos would vanish, all are held
  as suspect (shown in ``roots.list``, ``system.status`` and a ``source.suspect`` event);
  otherwise they vanish as before;
- a suspect photo that a pass sees again (its folder listed, the photo not gone) is no
  longer suspect.

Suspects live in memory: after a restart they are simply found gone again and held again,
with a fresh delay. Nothing about a suspect photo's row changes while it is held.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from lightbox.common import logs
from lightbox.daemon.catalog.types import iso, utcnow

log = logs.get("vanish")

MIN_HELD = 50       # a pass may always make this many photos vanish
SHARE_HELD = 0.10   # … or this share of the root's photos, whichever is more


def limit(total: int) -> int:
    """The most photos of a root with ``total`` photos one pass may make vanish."""
    return max(MIN_HELD, int(total * SHARE_HELD))


@dataclass
class Held:
    """The suspect photos of one root: photo id -> (folder id, monotonic time first held)."""

    photos: dict[int, tuple[int, float]] = field(default_factory=dict)
    since: Any = None   # wall-clock time the oldest still-held photo was first held

    def describe(self, delay: float, now: float) -> dict[str, Any]:
        # Seconds until a pass may confirm every one of them (the last held decides).
        newest = max((t for _, t in self.photos.values()), default=now)
        return {"count": len(self.photos), "since": iso(self.since),
                "confirm_in": max(0, math.ceil(newest + delay - now))}


@dataclass(frozen=True)
class Decision:
    vanish: list[int]     # photo ids that may be marked missing now
    held: int             # photos held as suspect after this pass
    newly_held: int       # of which first held by this pass


def decide(held: Held, gone: Iterable[tuple[int, int]], covered: set[int], total: int,
           delay: float, now: float) -> Decision:
    """Which of the photos ``gone`` ((photo id, folder id) pairs not found by a pass that
    listed the folders ``covered``) may vanish; updates ``held``. Pure: no I/O."""
    gone = list(gone)
    gone_ids = {pid for pid, _ in gone}
    # Seen again: their folder was listed by this pass and they were not among the gone.
    for pid in [p for p, (fid, _) in held.photos.items() if fid in covered and p not in gone_ids]:
        del held.photos[pid]
    confirmed = [pid for pid, _ in gone
                 if pid in held.photos and now - held.photos[pid][1] >= delay]
    fresh = [(pid, fid) for pid, fid in gone if pid not in held.photos]
    vanish = list(confirmed)
    newly = 0
    if len(fresh) > limit(total):
        for pid, fid in fresh:
            held.photos[pid] = (fid, now)
        newly = len(fresh)
    else:
        vanish += [pid for pid, _ in fresh]
    for pid in confirmed:
        del held.photos[pid]
    if not held.photos:
        held.since = None
    elif newly and held.since is None:
        held.since = utcnow()
    return Decision(vanish, len(held.photos), newly)


class VanishGuard:
    """The suspects of every root, and what is said about them."""

    def __init__(self, delay: float, publish: Callable[[str, str, dict[str, Any]], Any],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.delay = delay
        self.publish = publish
        self.clock = clock
        self.held: dict[int, Held] = {}

    def decide(self, source: Any, gone: Iterable[tuple[int, int]], covered: set[int],
               total: int) -> list[int]:
        held = self.held.setdefault(source.id, Held())
        before = len(held.photos)
        out = decide(held, gone, covered, total, self.delay, self.clock())
        if out.newly_held:
            log.warning("a pass would make many photos vanish at once; holding them as "
                        "suspect until a later pass confirms or `lightbox roots confirm`",
                        root=source.name, held=out.held, limit=limit(total), total=total,
                        confirm_after=self.delay)
        if out.held != before:
            self._announce(source)
        if not held.photos:
            self.held.pop(source.id, None)
        return out.vanish

    def take(self, source: Any) -> list[int]:
        """The user confirmed: every suspect photo of ``source`` may vanish now."""
        held = self.held.pop(source.id, None)
        if held is None:
            return []
        self._announce(source)
        return list(held.photos)

    def forget(self, source_id: int) -> None:
        self.held.pop(source_id, None)

    def describe(self, source_id: int) -> dict[str, Any] | None:
        held = self.held.get(source_id)
        if held is None or not held.photos:
            return None
        return held.describe(self.delay, self.clock())

    def _announce(self, source: Any) -> None:
        info = self.describe(source.id) or {"count": 0, "since": None, "confirm_in": 0}
        self.publish("source", "suspect", {"id": source.id, "name": source.name, **info})
