"""Thumbnails: content-addressed, orientation applied, written atomically.

The path is derived from the file's sha256, so duplicates share one thumbnail and a moved
photo keeps its own. A thumbnail appears under its final name only complete (temp file in the
same directory + ``os.replace``): a daemon SIGKILLed mid-write leaves at most a hidden
``.*.tmp`` that ``remove_stale_temp_files`` clears, never a half JPEG the TUI would show.
A temp file's name carries its owner (the daemon's pid and the boot id), so cleanup removes
only a dead writer's files (or old ones), never those of a daemon still writing.

All sizes of one call come from one decode: the caller drafts the decoder to the largest size
asked for, and each smaller size is resized from the previous result. Orientation is applied
to each small output, not to the large decoded image (cheaper). JPEG for every size: at 1280
px it encodes ~30x faster than WebP here, and the TUI decodes it faster too.
"""

from __future__ import annotations

import contextlib
import functools
import multiprocessing
import os
import re
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from lightbox.daemon.media.decode import flatten, transpose
from lightbox.daemon.procs import pid_alive


@dataclass(frozen=True)
class ThumbSpec:
    name: str        # "grid" | "preview" (configurable set)
    size: int        # long edge in px (never upscaled)
    quality: int = 82
    # Accept a smaller long edge, down to this, when shrink-on-load lands there: the JPEG
    # decoder scales only by 1/2, 1/4, 1/8, so a 4000 px photo decodes to 1000 px (1/4) or
    # 2000 px (1/2). With min_size <= 1000 the 1280 preview of a 12 MP JPEG is the 1/4 decode
    # as is (1000 px), saving the ~25 ms resize from 2000 px. None: exactly ``size``.
    min_size: int | None = None

    @property
    def decode_size(self) -> int:
        """The long edge the decoder must deliver for this spec."""
        return min(self.size, self.min_size) if self.min_size else self.size


GRID = ThumbSpec("grid", 256)
PREVIEW = ThumbSpec("preview", 1280)
DEFAULT_SPECS = (GRID, PREVIEW)

TEMP_SUFFIX = ".tmp"
# Bicubic with Pillow's reducing_gap: sharp grid thumbnails. Resizing the 1/2-scale decode of
# a 12 MP JPEG to a 1280 px preview is the largest single cost after decoding (~25 ms).
RESAMPLE = Image.Resampling.BICUBIC


def relative_path(spec_name: str, sha256: str) -> str:
    return f"{spec_name}/{sha256[:2]}/{sha256}.jpg"


def thumbnail_path(thumbs_dir: str | Path, spec_name: str, sha256: str) -> Path:
    """``<thumbs_dir>/<spec_name>/<sha[:2]>/<sha>.jpg``."""
    if not sha256 or len(sha256) < 8 or not all(c in "0123456789abcdef" for c in sha256):
        raise ValueError(f"not a sha256 hex digest: {sha256!r}")
    if not spec_name or "/" in spec_name or spec_name.startswith("."):
        raise ValueError(f"bad thumbnail spec name: {spec_name!r}")
    return Path(thumbs_dir) / relative_path(spec_name, sha256)


def atomic_save(img: Image.Image, final: Path, quality: int, fsync: bool = False,
                icc_profile: bytes | None = None) -> None:
    """Encode ``img`` as JPEG into a temp file beside ``final`` and rename it into place.

    ``fsync`` guards against power loss only; SIGKILL cannot expose a partial file either
    way, and a lost thumbnail is rebuilt on demand, so it is off by default.
    """
    prefix = f".{final.stem[:16]}.{owner_tag()}."
    try:
        fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=TEMP_SUFFIX, dir=final.parent)
    except FileNotFoundError:     # first thumbnail in this shard (mkdir costs a syscall)
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=TEMP_SUFFIX, dir=final.parent)
    try:
        with os.fdopen(fd, "wb") as out:
            params: dict[str, object] = {"quality": quality}
            if icc_profile:
                params["icc_profile"] = icc_profile
            img.save(out, "JPEG", **params)
            if fsync:
                out.flush()
                os.fsync(out.fileno())
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def render(img: Image.Image, specs: Sequence[ThumbSpec], orientation: int | None,
           sha256: str, thumbs_dir: str | Path, *,
           overwrite: bool = False) -> tuple[dict[str, str], Image.Image]:
    """Write every spec from one decoded image; returns {name: relative path} and the
    smallest oriented RGB image made (for the perceptual hash).

    ``img`` is the loaded, possibly drafted image in any mode; ``orientation`` is the EXIF
    value still to apply (None/1 when the pixels are already upright).
    """
    base = flatten(img)
    icc = img.info.get("icc_profile") if base.mode == "RGB" and img.mode == "RGB" else None
    icc = icc if isinstance(icc, bytes) else None
    written: dict[str, str] = {}
    current = base
    smallest = base
    for spec in sorted(specs, key=lambda s: s.size, reverse=True):
        if spec.size <= 0:
            raise ValueError(f"thumbnail size must be positive: {spec}")
        if max(current.size) > spec.size:
            current = current.resize(_fit(current.size, spec.size), RESAMPLE,
                                     reducing_gap=_gap(spec.size))
        out = transpose(current, orientation)
        if out.mode != "RGB":
            out = out.convert("RGB")
        final = thumbnail_path(thumbs_dir, spec.name, sha256)
        if overwrite or not final.exists():
            atomic_save(out, final, spec.quality, icc_profile=icc)
        written[spec.name] = relative_path(spec.name, sha256)
        smallest = out
    if not specs:
        if max(base.size) > GRID.size:
            base = base.resize(_fit(base.size, GRID.size), RESAMPLE,
                               reducing_gap=_gap(GRID.size))
        smallest = transpose(base, orientation)
    return written, smallest


def _gap(long_edge: int) -> float:
    """Pillow's two-step resize: box-reduce by an integer factor, then resample what is left.

    For grid-sized targets a box reduction almost all the way (gap 1.0) looks the same at 256
    px and costs 1.3 ms instead of 4.3 ms from a 1000 px decode: per photo, the largest cost
    after decoding and hashing. Large targets keep the finer gap of 2.0.
    """
    return 1.0 if long_edge <= 512 else 2.0


def _fit(size: tuple[int, int], long_edge: int) -> tuple[int, int]:
    w, h = size
    if w >= h:
        return long_edge, max(1, round(h * long_edge / w))
    return max(1, round(w * long_edge / h)), long_edge


def owner_tag() -> str:
    """Who is writing: ``p<pid>b<boot>``, the pid of the daemon (a worker process writes
    for its parent) and the first characters of the kernel's boot id."""
    parent = multiprocessing.parent_process()
    pid = parent.pid if parent is not None and parent.pid else os.getpid()
    return f"p{pid}b{_boot_id()}"


@functools.cache
def _boot_id() -> str:
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as f:
            return f.read().strip().replace("-", "")[:8] or "0"
    except OSError:
        return "0"


_OWNER = re.compile(r"p(\d+)b([0-9a-f]+)")


def owner_alive(name: str) -> bool | None:
    """Whether the process that named this temp file still runs; None when the name says
    no owner (an older version's) or the owner is not ours to judge."""
    parts = name.split(".")
    m = _OWNER.fullmatch(parts[2]) if len(parts) > 4 else None
    if m is None:
        return None
    if m.group(2) != _boot_id():
        return False            # written before the machine last booted
    return pid_alive(int(m.group(1)))


def is_stale_temp(name: str, mtime: float, older_than: float = 3600.0) -> bool:
    """A temp file to delete: its owner is dead, or it is older than ``older_than`` (a
    worker killed mid-write by its timeout leaves one behind a live daemon)."""
    if not name.endswith(TEMP_SUFFIX):
        return False
    alive = owner_alive(name)
    if alive is False:
        return True
    return time.time() - mtime > older_than


def remove_stale_temp_files(thumbs_dir: str | Path, older_than: float = 3600.0) -> int:
    """Delete temp files left by dead writers (and old ones); returns how many."""
    removed = 0
    root = Path(thumbs_dir)
    for path in _walk_temp(root):
        with contextlib.suppress(OSError):
            if is_stale_temp(path.name, path.stat().st_mtime, older_than):
                path.unlink()
                removed += 1
    return removed


def _walk_temp(root: Path) -> Iterable[Path]:
    if not root.is_dir():
        return []
    return (p for p in root.glob(f"*/*/.*{TEMP_SUFFIX}") if p.is_file())
