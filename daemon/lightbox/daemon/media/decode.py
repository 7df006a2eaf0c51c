"""Opening and decoding pixels safely, and turning decoder failures into sentences.

Every decode runs under the same guard: Pillow's ``MAX_IMAGE_PIXELS`` stays the bomb limit,
and its DecompressionBombWarning (between 1x and 2x the limit, which Pillow would otherwise
decode) is promoted to an error, so anything over the limit is refused. PNG text-chunk bombs
are stopped by Pillow's ``MAX_TEXT_CHUNK``/``MAX_TEXT_MEMORY`` (LOAD_TRUNCATED_IMAGES stays
False). Exceptions from decoders are many and untyped (OSError, SyntaxError, ValueError,
struct.error, EOFError...); ``describe`` maps them to an error kind and one line a user can
act on.
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import math
import re
import struct
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, BinaryIO, cast

from PIL import Image, ImageFile, UnidentifiedImageError, features

from lightbox.daemon.media import raw
from lightbox.daemon.media.sniff import OTHER, RAW, UNKNOWN, Sniffed

ImageFile.LOAD_TRUNCATED_IMAGES = False


def _register_plugins() -> tuple[bool, bool]:
    heif = False
    pillow_heif: Any
    try:
        pillow_heif = importlib.import_module("pillow_heif")
    except ImportError:
        pillow_heif = None
    if pillow_heif is not None:
        try:
            pillow_heif.register_heif_opener()
            heif = True
        except Exception:
            heif = False
    avif = bool(features.check("avif"))
    if not avif and pillow_heif is not None and hasattr(pillow_heif, "register_avif_opener"):
        try:
            pillow_heif.register_avif_opener()
            avif = True
        except Exception:
            avif = False
    return heif, avif


HEIF_SUPPORTED, AVIF_SUPPORTED = _register_plugins()

EMPTY, CORRUPT, UNSUPPORTED, BOMB, IO = "empty", "corrupt", "unsupported", "bomb", "io"
CHANGED = "changed"   # the file is not the one the catalog knows (re-read it)

_TRANSPOSE = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


class MediaError(Exception):
    """A file we cannot make pixels from, with an error kind ("corrupt", "bomb", ...)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind

    def __reduce__(self) -> tuple[type[MediaError], tuple[str, str]]:
        return (MediaError, (self.kind, str(self)))


@dataclass
class Guard:
    notes: list[str] = field(default_factory=list)


@contextlib.contextmanager
def guard() -> Iterator[Guard]:
    """Bomb warnings become errors; other decoder warnings become notes, not stderr noise."""
    g = Guard()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            yield g
        finally:
            for w in caught:
                text = one_line(str(w.message))
                if text and text not in g.notes and len(g.notes) < 3:
                    g.notes.append(text)


def one_line(text: str, limit: int = 160) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"


_BOMB = re.compile(r"\((\d+) pixels\) exceeds limit of (\d+) pixels")


def _pixels(n: int) -> str:
    if n >= 1_000_000_000:
        return f"{n / 1e9:.{1 if n < 100e9 else 0}f} gigapixels"
    return f"{n / 1e6:.0f} megapixels"


def describe(exc: BaseException, sniffed: Sniffed, head: bytes = b"") -> MediaError:
    """The error kind and a one-line reason for an exception raised while decoding."""
    if isinstance(exc, MediaError):
        return exc
    what = sniffed.what
    text = one_line(str(exc)) or type(exc).__name__
    if isinstance(exc, Image.DecompressionBombError | Image.DecompressionBombWarning):
        # Pillow names 2x the limit for errors and 1x for warnings; warnings are errors here,
        # so the effective limit is MAX_IMAGE_PIXELS either way.
        m = _BOMB.search(str(exc))
        limit = Image.MAX_IMAGE_PIXELS or (int(m.group(2)) if m else 0)
        if m:
            return MediaError(BOMB, f"decompression bomb: {_pixels(int(m.group(1)))} exceeds "
                                    f"the {limit / 1e6:.0f} megapixel limit")
        return MediaError(BOMB, f"decompression bomb: {text}")
    if isinstance(exc, ValueError) and ("MAX_TEXT_CHUNK" in text or "MAX_TEXT_MEMORY" in text
                                        or "text chunks" in text):
        return MediaError(BOMB, "decompression bomb: PNG text chunks decompress past Pillow's "
                                "limit")
    if isinstance(exc, MemoryError):
        return MediaError(BOMB, "out of memory while decoding (image too large for the "
                                "worker's memory limit)")
    if isinstance(exc, UnidentifiedImageError):
        if sniffed.kind == OTHER:
            return MediaError(UNSUPPORTED, f"not an image: content looks like {what}")
        if sniffed.kind == UNKNOWN:
            return MediaError(CORRUPT, f"not a recognisable image (starts with {head[:8].hex(' ')})"
                              if head else "not a recognisable image")
        if sniffed.format == "heif" and not HEIF_SUPPORTED:
            return MediaError(UNSUPPORTED, "HEIF/HEIC needs pillow-heif (pip install pillow-heif)")
        if sniffed.format == "avif" and not AVIF_SUPPORTED:
            return MediaError(UNSUPPORTED, "AVIF needs Pillow >= 11.2 or pillow-heif < 1.0")
        if sniffed.format == "jxl":
            return MediaError(UNSUPPORTED, "JPEG XL is not supported (needs a Pillow JXL plugin)")
        if sniffed.kind == RAW:
            return MediaError(UNSUPPORTED, f"{what}: no embedded preview Pillow can decode")
        return MediaError(CORRUPT, f"corrupt {what} (cannot identify image data)")
    if isinstance(exc, OSError) and exc.errno in (errno.EIO, errno.ENOENT, errno.EACCES,
                                                  errno.EPERM, errno.ESTALE, errno.ENODEV,
                                                  errno.ENXIO, errno.EISDIR):
        return MediaError(IO, f"cannot read file ({text})")
    if isinstance(exc, OSError | SyntaxError | ValueError | EOFError | struct.error | IndexError
                  | KeyError | TypeError | ZeroDivisionError | OverflowError | AssertionError
                  | RuntimeError | AttributeError | NotImplementedError):
        if "truncated" in text.lower():
            return MediaError(CORRUPT, f"truncated {what} ({text})")
        if isinstance(exc, NotImplementedError) or "not supported" in text.lower():
            return MediaError(UNSUPPORTED, f"unsupported {what} variant ({text})")
        return MediaError(CORRUPT, f"corrupt {what} ({text})")
    return MediaError(CORRUPT, f"cannot decode {what} ({type(exc).__name__}: {text})")


def draft_box(size: tuple[int, int], long_edge: int) -> tuple[int, int]:
    """The smallest size with the image's aspect whose long edge is ``long_edge``."""
    w, h = size
    longest = max(w, h, 1)
    if longest <= long_edge:
        return (max(w, 1), max(h, 1))
    return (max(1, math.ceil(w * long_edge / longest)), max(1, math.ceil(h * long_edge / longest)))


# A JPEG at least this large may leave its larger thumbnails to a later pass
# (``defers_larger``): its decode at the grid's 1/8 is 9 ms (a fifth) cheaper than at the
# preview's 1/4 for 12 MP. Below it the saving is a few milliseconds, less than opening and
# decoding the photo a second time for those sizes would cost.
DEFER_MIN_PIXELS = 4_000_000


def jpeg_reduction(size: tuple[int, int], long_edge: int) -> int:
    """The factor (1, 2, 4 or 8) the JPEG decoder scales by when drafted to ``long_edge``
    (``draft``): Pillow's own choice, the largest that still gives at least the box."""
    box = draft_box(size, long_edge)
    scale = min(size[0] // box[0], size[1] // box[1])
    return next(s for s in (8, 4, 2, 1) if scale >= s)


def defers_larger(img: Image.Image, now_edge: int, all_edge: int) -> bool:
    """Whether decoding for ``now_edge`` alone is markedly cheaper than for ``all_edge``:
    a large JPEG whose shrink-on-load factor for the smaller edge is larger (fewer pixels
    decoded). Other formats decode at full size whatever the edge (or, for a RAW, from an
    embedded preview), so making every size from their one decode is always cheaper."""
    if img.format not in ("JPEG", "MPO") or all_edge <= now_edge:
        return False
    w, h = img.size
    if w * h < DEFER_MIN_PIXELS:
        return False
    return jpeg_reduction(img.size, now_edge) > jpeg_reduction(img.size, all_edge)


def draft(img: Image.Image, long_edge: int | None) -> None:
    """Shrink-on-load (JPEG DCT scaling, HEIF embedded thumbnails) to at least ``long_edge``."""
    if long_edge:
        with contextlib.suppress(Exception):
            img.draft("RGB", draft_box(img.size, long_edge))


def load_first(candidates: list[Image.Image],
               long_edge: int | None) -> tuple[Image.Image, tuple[int, int]] | None:
    """Draft and load the first candidate that decodes (closing all the others); returns it
    with its size before drafting."""
    chosen: tuple[Image.Image, tuple[int, int]] | None = None
    for img in candidates:
        if chosen is None:
            full = img.size
            try:
                draft(img, long_edge)
                img.load()
                chosen = (img, full)
                continue
            except Exception:
                pass
        img.close()
    return chosen


def open_raw(f: BinaryIO, size: int, sniffed: Sniffed, long_edge: int | None
             ) -> tuple[tuple[Image.Image, tuple[int, int]] | None, raw.RawLayout]:
    """The largest decodable embedded JPEG of a RAW (drafted, loaded, with its full size),
    plus the RAW's layout (sensor size)."""
    lay = raw.layout(f, size) if sniffed.is_tiff_based else raw.RawLayout(previews=[])
    found = load_first(raw.open_candidates(f, size, lay.previews), long_edge)
    if found is None:
        found = load_first(raw.open_candidates(f, size, raw.scan(f, size)), long_edge)
    return found, lay


def flatten(img: Image.Image) -> Image.Image:
    """An RGB or L image from any mode (alpha composited onto white, 16-bit scaled to 8)."""
    mode = img.mode
    if mode in ("RGB", "L"):
        return img
    if mode == "1":
        return img.convert("L")
    if mode == "P":
        img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        mode = img.mode
        if mode == "RGB":
            return img
    if mode.startswith("I;16"):
        return img.convert("I").point(lambda v: v * (1 / 256)).convert("L")
    if mode in ("I", "F"):
        lo, hi = cast(tuple[float, float], img.getextrema())
        scale = 255.0 / (hi - lo) if hi != lo else 1.0
        return img.point(lambda v: (v - lo) * scale).convert("L")
    if mode in ("LA", "La", "PA", "RGBA", "RGBa"):
        rgba = img.convert("RGBA")
        background = Image.new("RGB", rgba.size, (255, 255, 255))
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    try:
        return img.convert("RGB")
    except ValueError as exc:
        raise MediaError(UNSUPPORTED, f"colour mode {mode} is not supported") from exc


def pillow_applied_orientation(img: Image.Image) -> bool:
    """Whether the loaded pixels are already upright.

    pillow-heif applies HEIF's irot/imir itself (and resets EXIF Orientation to 1); Pillow's
    TIFF plugin transposes on load and then deletes the tag (its reported size is the
    upright one, even before loading). Everything else leaves orientation to us.
    """
    if img.format == "HEIF":
        return True
    if img.format == "TIFF":
        tags = getattr(img, "tag_v2", None)
        return tags is not None and 0x0112 not in tags
    return False


def transpose(img: Image.Image, orientation: int | None) -> Image.Image:
    method = _TRANSPOSE.get(orientation or 1)
    return img.transpose(method) if method is not None else img
