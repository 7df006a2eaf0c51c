"""Worker processes for CPU-bound work (hashing, EXIF, thumbnails), off the event loop."""

from __future__ import annotations

from lightbox.daemon.workers.pool import (
    PRIORITY_BACKGROUND,
    PRIORITY_BULK,
    PRIORITY_INTERACTIVE,
    PoolClosed,
    WorkerCrashed,
    WorkerPool,
    WorkerTimeout,
    analyze_in_pool,
)

__all__ = ["PRIORITY_BACKGROUND", "PRIORITY_BULK", "PRIORITY_INTERACTIVE", "PoolClosed",
           "WorkerCrashed", "WorkerPool", "WorkerTimeout", "analyze_in_pool"]
