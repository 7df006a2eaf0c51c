"""The JPEG previews that cameras embed in RAW files, and the RAW's real dimensions.

Decoding sensor data needs a RAW developer (libraw) we do not ship; but every RAW carries a
camera-rendered JPEG — full size in most modern bodies, 1-2 MP in older ones — which is what
a thumbnail should show anyway. TIFF-structured RAWs (NEF, ARW, DNG, CR2, PEF, RW2, ORF) list
their previews in IFDs; for the rest (CRW, CR3, or a TIFF walk that found nothing) we scan for
JPEG start-of-image markers and let Pillow's header parser judge each candidate.
"""

from __future__ import annotations

import io
import mmap
import os
from dataclasses import dataclass
from typing import BinaryIO

from PIL import Image

from lightbox.daemon.media import tiff

_MIN_PREVIEW_BYTES = 2048
_MAX_SCAN_CANDIDATES = 64


@dataclass(frozen=True)
class Preview:
    offset: int
    length: int          # bytes; -1 when unknown (runs to the end of the file)


@dataclass
class RawLayout:
    previews: list[Preview]
    width: int | None = None       # sensor image size from the full-resolution IFD
    height: int | None = None


class Window(io.RawIOBase):
    """A read-only view of ``[start, start+length)`` of a file, so Pillow can open an
    embedded JPEG in place (Pillow seeks to 0 before identifying a file)."""

    def __init__(self, f: BinaryIO, start: int, length: int) -> None:
        super().__init__()
        self._f = f
        self._start = start
        self._length = length
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_SET:
            self._pos = offset
        elif whence == os.SEEK_CUR:
            self._pos += offset
        else:
            self._pos = self._length + offset
        self._pos = max(0, self._pos)
        return self._pos

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        n = min(len(buffer), self._length - self._pos)
        if n <= 0:
            return 0
        self._f.seek(self._start + self._pos)
        data = self._f.read(n)
        buffer[:len(data)] = data
        self._pos += len(data)
        return len(data)


def layout(f: BinaryIO, size: int) -> RawLayout:
    """JPEG previews listed in a TIFF-structured RAW (largest first) and its sensor size."""
    out = RawLayout(previews=[])
    try:
        reader = tiff.TiffReader(f, size)
    except (ValueError, OSError):
        return out
    best_area = 0
    candidates: dict[int, int] = {}
    try:
        for ifd in reader.walk():
            width = reader.first_int(ifd, tiff.TAG_WIDTH)
            height = reader.first_int(ifd, tiff.TAG_HEIGHT)
            subfile = reader.first_int(ifd, tiff.TAG_NEW_SUBFILE_TYPE)
            compression = reader.first_int(ifd, tiff.TAG_COMPRESSION)
            if width and height and subfile in (0, None) and width * height > best_area:
                best_area = width * height
                out.width, out.height = width, height
            offset = reader.first_int(ifd, tiff.TAG_JPEG_OFFSET)
            length = reader.first_int(ifd, tiff.TAG_JPEG_LENGTH)
            if offset and length:
                candidates[offset] = length
            if compression in (6, 7):
                offsets = reader.ints(ifd.entries.get(tiff.TAG_STRIP_OFFSETS))
                counts = reader.ints(ifd.entries.get(tiff.TAG_STRIP_BYTE_COUNTS))
                if len(offsets) == 1 and len(counts) == 1:
                    candidates[offsets[0]] = counts[0]
            blob = ifd.entries.get(tiff.TAG_PANASONIC_JPG_FROM_RAW)
            if blob is not None and blob.type == 7 and not blob.raw:
                candidates[blob.offset] = blob.count
    except (ValueError, OSError):
        pass
    for offset, length in candidates.items():
        if length >= _MIN_PREVIEW_BYTES and offset > 0 and offset + length <= size + 16:
            f.seek(offset)
            if f.read(2) == b"\xff\xd8":
                out.previews.append(Preview(offset, min(length, size - offset)))
    out.previews.sort(key=lambda p: p.length, reverse=True)
    return out


def scan(f: BinaryIO, size: int) -> list[Preview]:
    """Every plausible embedded JPEG: an SOI marker followed by a marker."""
    if size < _MIN_PREVIEW_BYTES:
        return []
    found: list[int] = []
    with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as mm:
        pos = mm.find(b"\xff\xd8\xff", 1)
        while pos != -1 and len(found) < _MAX_SCAN_CANDIDATES:
            if mm[pos + 3:pos + 4] in (b"\xdb", b"\xe0", b"\xe1", b"\xc0", b"\xc4", b"\xfe",
                                       b"\xdd", b"\xe2"):
                found.append(pos)
            pos = mm.find(b"\xff\xd8\xff", pos + 3)
    # A JPEG's own EXIF may hold a thumbnail (another SOI) before its end, so spans between
    # markers would cut the outer image short: each candidate runs to the end of the file and
    # JPEG decoding stops at its own end-of-image marker.
    return [Preview(p, size - p) for p in found]


def open_preview(f: BinaryIO, preview: Preview, size: int) -> Image.Image:
    """Open (not load) the embedded JPEG; raises like Image.open when it is not one."""
    length = preview.length if preview.length > 0 else size - preview.offset
    stream = io.BufferedReader(Window(f, preview.offset, length), buffer_size=1 << 16)
    return Image.open(stream, formats=["JPEG"])


def open_candidates(f: BinaryIO, size: int, previews: list[Preview]) -> list[Image.Image]:
    """The previews Pillow can identify as JPEG, largest pixel area first (none loaded)."""
    opened: list[Image.Image] = []
    for preview in previews[:_MAX_SCAN_CANDIDATES]:
        try:
            img = open_preview(f, preview, size)
        except Exception:
            continue
        if img.width >= 16 and img.height >= 16:
            opened.append(img)
        else:
            img.close()
    opened.sort(key=lambda im: im.width * im.height, reverse=True)
    return opened
