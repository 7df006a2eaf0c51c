"""The steps analyze() and make_thumbnails() share: hash, decode under the guard (opening is
``confine``'s).

Split from ``analyze`` so the on-demand thumbnail path runs exactly the same decoding code
(shrink-on-load, RAW previews, bomb guard) as indexing does.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from PIL import Image

from lightbox.daemon.media import decode, sniff
from lightbox.daemon.media.decode import CORRUPT, UNSUPPORTED, MediaError

_CHUNK = 1 << 20


@dataclass
class Pixels:
    image: Image.Image | None = None      # loaded (maybe drafted) pixels
    opened: Image.Image | None = None     # Pillow's object for the file itself, for EXIF
    size: tuple[int, int] | None = None   # full size before drafting, as Pillow reports it
    upright: bool = False                 # pixels already oriented (pillow-heif applies it)
    layout: Any = None                    # raw.RawLayout for RAWs
    notes: list[str] = field(default_factory=list)


def sha256_file(f: BinaryIO) -> str:
    f.seek(0)
    h = hashlib.sha256()
    buf = bytearray(_CHUNK)
    view = memoryview(buf)
    while n := f.readinto(view):  # type: ignore[attr-defined]
        h.update(view[:n])
    return h.hexdigest()


def decode_pixels(f: BinaryIO, size: int, sniffed: sniff.Sniffed, long_edge: int | None,
                  load: bool = True,
                  choose: Callable[[Image.Image], int | None] | None = None) -> Pixels:
    """Open and load the pixels under the bomb guard; raises MediaError (with what was
    learned so far attached as ``exc.pixels``).

    ``choose``, given the opened (not yet loaded) image, picks the long edge to draft to
    instead of ``long_edge`` (a RAW's embedded previews always use ``long_edge``): how
    ``analyze`` leaves a large JPEG's preview to a later pass (``decode.defers_larger``)."""
    px = Pixels()
    with decode.guard() as g:
        try:
            if sniffed.kind == sniff.RAW:
                found, px.layout = decode.open_raw(f, size, sniffed, long_edge)
                if found is not None:
                    px.image, px.size = found
                    return px
            f.seek(0)
            img = Image.open(f)
            px.opened, px.size = img, img.size
            if sniffed.kind == sniff.UNKNOWN and img.format:
                # Pillow knows formats we do not sniff (PBM, TGA, FLI...): name it in errors.
                sniffed = sniff.Sniffed(img.format.lower(), Image.MIME.get(img.format),
                                        sniff.IMAGE, img.format)
            if load:
                decode.draft(img, choose(img) if choose is not None else long_edge)
                img.load()
            px.upright = decode.pillow_applied_orientation(img)
            px.image = img
        except Exception as exc:
            err = decode.describe(exc, sniffed, read_head(f))
            if sniffed.kind == sniff.RAW and err.kind == CORRUPT and px.opened is None:
                err = MediaError(UNSUPPORTED, f"{sniffed.what}: no embedded preview Pillow "
                                              "can decode")
            err.pixels = px  # type: ignore[attr-defined]
            raise err from exc
        finally:
            px.notes = g.notes
    return px


def read_head(f: BinaryIO) -> bytes:
    try:
        f.seek(0)
        return f.read(16)
    except OSError:
        return b""


def jpeg_is_cut(f: BinaryIO, size: int) -> bool:
    """No end-of-image marker at the end (padding aside): the JPEG was truncated."""
    try:
        f.seek(max(0, size - 4096))
        tail = f.read(4096).rstrip(b"\x00\r\n ")
    except OSError:
        return False
    return not tail.endswith(b"\xff\xd9")


def uses_exifread(sniffed: sniff.Sniffed) -> bool:
    # exifread misreads BigTIFF as classic TIFF and walks garbage IFDs for hundreds of ms;
    # Pillow reads BigTIFF tags correctly.
    return (sniffed.format == "jpeg" or sniffed.is_tiff_based) and sniffed.what != "BigTIFF"
