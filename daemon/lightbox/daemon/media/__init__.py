"""Per-file media analysis: what a photo is, what it says about itself, and its thumbnails.

Everything here is synchronous, CPU-bound and meant to run in worker processes
(``lightbox.daemon.workers``), never on the daemon's event loop. ``analyze`` is the one entry
point the indexer needs; it never raises and returns plain data.
"""

from __future__ import annotations

from lightbox.daemon.media.analyze import (
    Analysis,
    AnalyzeRequest,
    MediaError,
    analyze,
    make_thumbnails,
    sha256_file,
)
from lightbox.daemon.media.thumbs import DEFAULT_SPECS, GRID, PREVIEW, ThumbSpec, thumbnail_path

__all__ = ["DEFAULT_SPECS", "GRID", "PREVIEW", "Analysis", "AnalyzeRequest", "MediaError",
           "ThumbSpec", "analyze", "make_thumbnails", "sha256_file", "thumbnail_path"]
