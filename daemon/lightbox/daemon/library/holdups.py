"""What holds indexing up without being any photo's fault: files to retry later, and pauses.

``failures.classify`` says *whose* fault a failure is; this module keeps the consequences:

- ``Backlog``: photos whose read failed for the machine's reasons (permission denied, an I/O
  error, a vanished cache directory). They stay ``pending`` in the catalog; here they get a
  due time with backoff (2 s doubling to 10 minutes), so the indexer skips them until then
  and then tries again by itself. A changed fingerprint (the scanner saw the file change)
  makes a photo due at once. The backlog lives in memory: after a restart each is tried
  once at once, and deferred again if the cause is still there.
- ``Pause``: a cause that stops every photo alike (the thumbnail disk or the catalog's disk
  is full, the cache is read-only). Indexing stops, says so once (a warning, a
  ``system.indexing_paused`` event, ``system.status``), and a probe looks every few seconds
  until the cause is gone; then it resumes (``system.indexing_resumed``) with nothing lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lightbox.daemon.library import failures
from lightbox.daemon.media.thumbs import TEMP_SUFFIX, owner_tag

PROBE_FIRST = 1.0
PROBE_MAX = 15.0
PROBE_BYTES = 1 << 20     # a cache that cannot take 1 MiB is not ready for thumbnails


@dataclass
class Deferred:
    source_id: int
    size: int                 # the fingerprint it failed with; another means "try now"
    mtime_ns: int
    reason: str
    message: str
    attempts: int = 1
    due: float = 0.0          # time.monotonic()
    ending: bool = False      # its retries are counted: a lasting error after the last


class Backlog:
    """Pending photos not to read again before their due time."""

    def __init__(self) -> None:
        self.items: dict[int, Deferred] = {}

    def __len__(self) -> int:
        return len(self.items)

    def defer(self, photo_id: int, source_id: int, size: int, mtime_ns: int,
              verdict: failures.Verdict) -> Deferred:
        """Record one more failed attempt; returns the entry (``attempts`` 1: new)."""
        old = self.items.get(photo_id)
        attempts = old.attempts + 1 if old is not None and (old.size, old.mtime_ns) == (
            size, mtime_ns) else 1
        entry = Deferred(source_id, size, mtime_ns, verdict.reason, verdict.message, attempts,
                         time.monotonic() + failures.backoff(attempts),
                         verdict.final_after > 0)
        self.items[photo_id] = entry
        return entry

    def waiting(self, photo_id: int, size: int, mtime_ns: int, now: float) -> bool:
        """True when the photo is deferred and not due yet (with the same fingerprint)."""
        entry = self.items.get(photo_id)
        if entry is None:
            return False
        if (entry.size, entry.mtime_ns) != (size, mtime_ns):
            del self.items[photo_id]      # the file changed: its old trouble says nothing
            return False
        return entry.due > now

    def done(self, photo_id: int) -> None:
        self.items.pop(photo_id, None)

    def keep_only(self, ids: Iterable[int]) -> None:
        """Forget photos that are no longer pending (read, removed, gone missing)."""
        keep = set(ids)
        for pid in [p for p in self.items if p not in keep]:
            del self.items[pid]

    def next_due(self) -> float | None:
        return min((e.due for e in self.items.values()), default=None)

    def reasons(self, source_ids: Iterable[int] | None = None) -> dict[str, int]:
        wanted = None if source_ids is None else set(source_ids)
        return dict(Counter(e.reason for e in self.items.values()
                            if wanted is None or e.source_id in wanted))

    def ending(self, source_ids: Iterable[int]) -> int:
        """How many of these sources' deferred photos have a last retry (then a lasting
        error) ahead: a job waiting for their outcome waits for those."""
        wanted = set(source_ids)
        return sum(1 for e in self.items.values() if e.ending and e.source_id in wanted)

    def ids(self, source_ids: Iterable[int] | None = None) -> set[int]:
        wanted = None if source_ids is None else set(source_ids)
        return {pid for pid, e in self.items.items() if wanted is None or e.source_id in wanted}


@dataclass
class Pause:
    verdict: failures.Verdict
    waiting: int                       # pending photos when it began (updated by probes)
    since: float = field(default_factory=time.time)
    resumed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def message(self) -> str:
        v = self.verdict
        what = {failures.DISK_FULL: f"{v.scope} full",
                failures.CACHE_UNWRITABLE: f"{v.scope} cannot be written",
                }.get(v.reason, f"{v.scope} unavailable")
        return f"{what}: {self.waiting:,} photos waiting"

    def describe(self) -> dict[str, Any]:
        return {"reason": self.verdict.reason, "scope": self.verdict.scope,
                "message": self.message, "detail": self.verdict.message,
                "waiting": self.waiting, "since": round(self.since, 3)}


def probe_delays() -> Iterable[float]:
    delay = PROBE_FIRST
    while True:
        yield delay
        delay = min(PROBE_MAX, delay * 1.5)


def cache_writable(thumbs_dir: Path) -> OSError | None:
    """Write (and remove) 1 MiB where thumbnails go; None when it worked, else the error."""
    probe = thumbs_dir / f".probe.{owner_tag()}.x{TEMP_SUFFIX}"
    try:
        thumbs_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            chunk = b"\0" * 65536
            for _ in range(PROBE_BYTES // len(chunk)):
                os.write(fd, chunk)
            os.fsync(fd)   # tmpfs and quotas fail at write; some file systems only here
        finally:
            os.close(fd)
        return None
    except OSError as exc:
        return exc
    finally:
        with contextlib.suppress(OSError):
            os.unlink(probe)


def still_full(exc: OSError | None) -> bool:
    return exc is not None and exc.errno in (errno.ENOSPC, errno.EDQUOT)
