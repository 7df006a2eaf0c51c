"""Fetch thumbnails and encode them in the background, nearest first, at most once.

A view says which images it wants, most urgent first (``want``); a new wish from the same
owner replaces its old queue, so scrolling past a thousand photos never leaves a thousand
stale requests behind. A few async workers (Textual workers, started by the app) take from
the front: the JPEG comes from the daemon, already sized (``grid`` ~256 px or ``preview``
~1280 px, whichever is the smallest that fills the box), and is encoded in a thread pool,
never on the event loop. Results go into the caches and to the owner's callback.

Photos the daemon cannot thumbnail (corrupt files, missing files) are remembered with the
reason, so a view can say why instead of asking again; a photo still being indexed
(``unavailable``) is retried later, and ``forget`` clears both when a ``catalog`` event says
the photo changed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import sys
import time
from collections.abc import Callable, Hashable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from lightbox.common import errors
from lightbox.tui.imaging import encode as enc
from lightbox.tui.imaging.cache import LRU
from lightbox.tui.imaging.graphics import Graphics
from lightbox.tui.link import Link

Callback = Callable[["ImageKey", "enc.Encoded | None"], None]
RETRY_PENDING = 3.0
log = logging.getLogger("lightbox.tui.images")


@functools.cache
def _libc_trim() -> Callable[[int], int] | None:
    """glibc's ``malloc_trim`` (None elsewhere), looked up on the first preview encode in the
    encoder thread: ctypes is not on the way to the first frame."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes
        import ctypes.util

        name = ctypes.util.find_library("c")
        trim: Callable[[int], int] = ctypes.CDLL(name).malloc_trim
        return trim
    except (OSError, AttributeError, TypeError):
        return None


TRIM_AFTER = 500_000  # source pixels: a preview thumbnail (1.2 MP), not a grid one (50 K)


def _timed_encode(*args: Any, **kwargs: Any) -> tuple[enc.Encoded, float]:
    """``encode`` in the pool, with the CPU time of the thread that ran it.

    After a large picture (a preview) the freed heap goes back to the system: its decode,
    scale and arrays are tens of MB that glibc otherwise keeps (per thread arena, in holes
    between cached pictures), and that made most of the TUI's peak RSS (issue 13)."""
    t0 = time.thread_time()
    encoded = enc.encode(*args, **kwargs)
    if encoded.source[0] * encoded.source[1] >= TRIM_AFTER and (trim := _libc_trim()):
        trim(0)
    return encoded, time.thread_time() - t0


@dataclass(frozen=True)
class ImageKey:
    """One photo at one box size in one mode; ``version`` changes when the file does."""

    photo_id: int
    version: str
    cols: int
    rows: int
    mode: str
    variant: str = ""  # symbols: the symbol set

    @classmethod
    def of(cls, photo: dict[str, Any], cols: int, rows: int, mode: str,
           variant: str = "") -> ImageKey:
        return cls(int(photo["id"]), (photo.get("sha256") or "")[:16], cols, rows, mode,
                   variant)


class ImageService:
    def __init__(self, link: Link, graphics: Graphics, *, workers: int = 3,
                 threads: int | None = None, encoded_budget: int = 32 << 20,
                 bytes_budget: int = 16 << 20) -> None:
        self.link = link
        self.graphics = graphics
        self.background = (0, 0, 0)
        self.workers = workers
        self.encoded: LRU[ImageKey, enc.Encoded] = LRU(encoded_budget, lambda e: e.nbytes)
        self.jpegs: LRU[tuple[int, str, str], bytes] = LRU(bytes_budget, len)
        # Budgets (issue 13): 32 MB of encoded pictures is a whole 1,000-photo folder of grid
        # Sixels or ~90 Sixel previews, and 16 MB of JPEGs saves the round trips that matter
        # (a photo shown again at another size); 64 + 32 MB made most of the peak RSS.
        # Previews get two encoder threads where there are two CPUs: the encoders are now
        # numpy and Pillow calls that release the GIL, so photos stepped through back to back
        # (the next ones prefetched) are encoded two at a time (p50 95 against 118 ms at load
        # ~14). Grid thumbnails keep one thread of their own: they are small, many and asked
        # for while the cursor moves, where a second thread would only take the GIL from the
        # UI more often.
        if threads is None:
            threads = 2 if (os.cpu_count() or 1) >= 2 else 1
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="lightbox-encode")
        self._previews = ThreadPoolExecutor(threads, thread_name_prefix="lightbox-preview")
        # Encoding waits for the first folder on screen (``release``): it holds the GIL for
        # 10-200 ms a picture and would otherwise stretch the first paint.
        self._released = asyncio.Event()
        self._queue: list[tuple[ImageKey, Hashable, Callback]] = []
        self._busy: dict[ImageKey, list[Callback]] = {}
        self._ready = asyncio.Event()
        self.failures: dict[int, str] = {}  # photo id -> why it has no thumbnail
        self._pending_until: dict[int, float] = {}
        # encode_seconds: wall time from submit to result (queueing behind another encode
        # included); encode_cpu_seconds: the encoder thread's own CPU, which load does not
        # stretch (benchmarks report both).
        self.stats = {"fetched": 0, "encoded": 0, "encode_seconds": 0.0,
                      "encode_cpu_seconds": 0.0, "previews_encoded": 0,
                      "preview_encode_cpu_seconds": 0.0}

    @property
    def mode(self) -> str:
        return self.graphics.mode

    @property
    def variant(self) -> str:
        return self.graphics.symbols if self.graphics.mode == "symbols" else ""

    @property
    def cell(self) -> tuple[int, int]:
        return self.graphics.cell

    def _current(self, key: ImageKey) -> bool:
        return key.mode == self.mode and key.variant == self.variant

    def set_graphics(self, graphics: Graphics) -> None:
        self.graphics = graphics
        self.encoded.clear()
        self._queue.clear()

    def key(self, photo: dict[str, Any], cols: int, rows: int) -> ImageKey:
        return ImageKey.of(photo, cols, rows, self.mode, self.variant)

    def get(self, key: ImageKey) -> enc.Encoded | None:
        return self.encoded.get(key)

    def failure(self, photo_id: int) -> str | None:
        return self.failures.get(photo_id)

    def forget(self, photo_ids: Sequence[int] | None = None) -> None:
        """Drop what we know about these photos (all when None): they changed."""
        if photo_ids is None:
            self.failures.clear()
            self._pending_until.clear()
            self.encoded.clear()
            self.jpegs.clear()
            return
        ids = set(photo_ids)
        for pid in ids:
            self.failures.pop(pid, None)
            self._pending_until.pop(pid, None)
        self.encoded.discard(lambda k: k.photo_id in ids)
        self.jpegs.discard(lambda k: k[0] in ids)

    # -- requests -------------------------------------------------------------------------
    def want(self, owner: Hashable, keys: Sequence[ImageKey], callback: Callback) -> None:
        """Replace ``owner``'s queue with ``keys`` (most urgent first)."""
        if self.mode == "none":
            return
        self._queue = [item for item in self._queue if item[1] != owner]
        now = time.monotonic()
        fresh = []
        seen: set[ImageKey] = set()
        for key in keys:
            if not self._current(key) or key in seen or key in self.encoded:
                continue
            if key.photo_id in self.failures or self._pending_until.get(key.photo_id, 0) > now:
                continue
            seen.add(key)
            if key in self._busy:
                if callback not in self._busy[key]:
                    self._busy[key].append(callback)
                continue
            fresh.append((key, owner, callback))
        self._queue[:0] = fresh
        if self._queue:
            self._ready.set()

    def cancel(self, owner: Hashable) -> None:
        self._queue = [item for item in self._queue if item[1] != owner]

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def idle(self) -> bool:
        """Nothing queued or in flight (tests and benchmarks wait for this)."""
        return not self._queue and not self._busy

    # -- workers --------------------------------------------------------------------------
    def release(self) -> None:
        """Start encoding (the app calls this once the first folder is painted): numpy is
        imported in the encoder thread, then the workers take from the queue."""
        if not self._released.is_set():
            self._pool.submit(enc.warm)
            self._released.set()

    async def run(self) -> None:
        """One worker; the app starts ``workers`` of these as Textual workers."""
        await self._released.wait()
        while True:
            while not self._queue:
                self._ready.clear()
                await self._ready.wait()
            key, _owner, callback = self._queue.pop(0)
            if not self._current(key) or key in self.encoded:
                with contextlib.suppress(Exception):
                    callback(key, self.encoded.get(key))
                continue
            if key in self._busy:
                self._busy[key].append(callback)
                continue
            self._busy[key] = [callback]
            result: enc.Encoded | None = None
            try:
                result = await self._make(key)
            except errors.NotFound as exc:
                self.failures[key.photo_id] = exc.message
            except errors.Unavailable:
                self._pending_until[key.photo_id] = time.monotonic() + RETRY_PENDING
            except (errors.ClientError, errors.RpcError):
                pass  # the link reports connection trouble; views ask again on reconnect
            except Exception as exc:  # a thumbnail Pillow cannot read, for one
                log.exception("cannot encode %s", key)
                self.failures[key.photo_id] = f"cannot show this thumbnail: {exc}"
            callbacks = self._busy.pop(key, [])
            for cb in callbacks:
                with contextlib.suppress(Exception):
                    cb(key, result)

    async def _make(self, key: ImageKey) -> enc.Encoded:
        size = enc.source_size(key.cols, key.rows, self.cell, key.mode)
        data = await self.fetch(key.photo_id, key.version, size)
        loop = asyncio.get_running_loop()
        t0 = time.perf_counter()
        encoded, cpu = await loop.run_in_executor(
            self._pool if size == "grid" else self._previews,
            functools.partial(_timed_encode, symbol_set=key.variant or "blocks"),
            data, key.mode, key.cols, key.rows, self.cell, self.background)
        self.stats["encoded"] += 1
        self.stats["encode_cpu_seconds"] += cpu
        if size == "preview":  # (the grid's are a few ms each: apart, or they hide these)
            self.stats["previews_encoded"] += 1
            self.stats["preview_encode_cpu_seconds"] += cpu
        self.stats["encode_seconds"] += time.perf_counter() - t0
        log.debug("encoded %s from %s in %.0f ms", key, size, 1000 * (time.perf_counter() - t0))
        if self._current(key):
            self.encoded.put(key, encoded)
        return encoded

    async def fetch(self, photo_id: int, version: str, size: str) -> bytes:
        """The daemon's thumbnail bytes (cached)."""
        ckey = (photo_id, version, size)
        data = self.jpegs.get(ckey)
        if data is None:
            r = await self.link.call("photos.thumbnail", {"id": photo_id, "size": size})
            data = bytes(r["data"])
            self.jpegs.put(ckey, data)
            self.stats["fetched"] += 1
        return data

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._previews.shutdown(wait=False, cancel_futures=True)
