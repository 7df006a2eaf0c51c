"""A small, defensive reader of TIFF structure (IFDs), for sniffing and RAW previews.

Pillow and exifread both parse TIFF, but neither answers the two questions we need cheaply:
"is this TIFF a camera RAW, and from which maker?" (so a NEF is called a NEF, not a TIFF) and
"where are the JPEG previews inside this RAW?" (Pillow cannot decode the raw sensor data, but
every camera embeds at least one JPEG). Hostile files are the norm here, so every count,
offset and loop is bounded, and any inconsistency ends the walk instead of raising.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import BinaryIO

# TIFF field types -> size in bytes of one value.
_TYPE_SIZE = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8,
              13: 4, 16: 8, 17: 8, 18: 8}
_MAX_ENTRIES = 1024        # entries per IFD; real files have < 100
_MAX_IFDS = 64             # IFDs visited per file (chain + sub-IFDs)
_MAX_VALUES = 4096         # values read from one array tag
_MAX_DEPTH = 4             # SubIFD nesting

TAG_NEW_SUBFILE_TYPE = 0x00FE
TAG_WIDTH = 0x0100
TAG_HEIGHT = 0x0101
TAG_COMPRESSION = 0x0103
TAG_MAKE = 0x010F
TAG_MODEL = 0x0110
TAG_STRIP_OFFSETS = 0x0111
TAG_STRIP_BYTE_COUNTS = 0x0117
TAG_SUB_IFDS = 0x014A
TAG_JPEG_OFFSET = 0x0201
TAG_JPEG_LENGTH = 0x0202
TAG_EXIF_IFD = 0x8769
TAG_DNG_VERSION = 0xC612
TAG_PANASONIC_JPG_FROM_RAW = 0x002E   # RW2: the full-size preview, as one UNDEFINED blob


@dataclass(frozen=True)
class Entry:
    type: int
    count: int
    raw: bytes          # the value bytes when they fit in the entry, else b""
    offset: int         # absolute file offset of the value bytes


@dataclass
class Ifd:
    offset: int
    entries: dict[int, Entry] = field(default_factory=dict)
    next_offset: int = 0


class TiffReader:
    """Reads IFDs of a classic TIFF (also RW2 ``IIU`` and ORF ``IIRO``) or a BigTIFF."""

    def __init__(self, f: BinaryIO, size: int, base: int = 0) -> None:
        self.f = f
        self.size = size
        self.base = base
        head = self._read(0, 16)
        if len(head) < 8 or head[:2] not in (b"II", b"MM"):
            raise ValueError("not a TIFF header")
        self.endian = "<" if head[:2] == b"II" else ">"
        magic = struct.unpack(self.endian + "H", head[2:4])[0]
        self.big = magic == 43
        if self.big:
            if len(head) < 16:
                raise ValueError("short BigTIFF header")
            self.first_ifd = struct.unpack(self.endian + "Q", head[8:16])[0]
        else:
            # 42 = TIFF, 0x55 = Panasonic RW2, 0x4F52/0x5352 = Olympus ORF.
            if magic not in (42, 0x55, 0x4F52, 0x5352):
                raise ValueError(f"unknown TIFF magic {magic:#x}")
            self.first_ifd = struct.unpack(self.endian + "I", head[4:8])[0]

    def _read(self, offset: int, n: int) -> bytes:
        if offset < 0 or n <= 0 or self.base + offset >= self.size:
            return b""
        self.f.seek(self.base + offset)
        return self.f.read(min(n, self.size - self.base - offset))

    def read_ifd(self, offset: int) -> Ifd | None:
        """The IFD at ``offset`` (relative to the TIFF header), or None when it is unreadable."""
        e = self.endian
        count_size, entry_size, next_size = (8, 20, 8) if self.big else (2, 12, 4)
        head = self._read(offset, count_size)
        if len(head) < count_size:
            return None
        n = struct.unpack(e + ("Q" if self.big else "H"), head)[0]
        if n == 0 or n > _MAX_ENTRIES:
            return None
        body = self._read(offset + count_size, n * entry_size + next_size)
        if len(body) < n * entry_size:
            return None
        ifd = Ifd(offset)
        inline = 8 if self.big else 4
        for i in range(n):
            chunk = body[i * entry_size:(i + 1) * entry_size]
            if self.big:
                tag, typ, count = struct.unpack(e + "HHQ", chunk[:12])
                value = chunk[12:20]
            else:
                tag, typ, count = struct.unpack(e + "HHI", chunk[:8])
                value = chunk[8:12]
            unit = _TYPE_SIZE.get(typ)
            if unit is None or count == 0:
                continue
            nbytes = unit * count
            if nbytes <= inline:
                ifd.entries[tag] = Entry(typ, count, value[:nbytes], offset + count_size
                                         + i * entry_size + (12 if self.big else 8))
            else:
                where = struct.unpack(e + ("Q" if self.big else "I"), value)[0]
                if where + nbytes > self.size - self.base:
                    continue        # points past the end of the file: ignore the tag
                ifd.entries[tag] = Entry(typ, count, b"", where)
        tail = body[n * entry_size:n * entry_size + next_size]
        if len(tail) == next_size:
            ifd.next_offset = struct.unpack(e + ("Q" if self.big else "I"), tail)[0]
        return ifd

    def ints(self, entry: Entry | None) -> list[int]:
        """Integer values of a BYTE/SHORT/LONG/LONG8/IFD tag (at most a few thousand)."""
        if entry is None:
            return []
        codes = {1: "B", 3: "H", 4: "I", 13: "I", 16: "Q", 18: "Q", 6: "b", 8: "h", 9: "i",
                 17: "q", 7: "B"}
        code = codes.get(entry.type)
        if code is None:
            return []
        count = min(entry.count, _MAX_VALUES)
        data = entry.raw or self._read(entry.offset, count * _TYPE_SIZE[entry.type])
        count = min(count, len(data) // _TYPE_SIZE[entry.type])
        return list(struct.unpack(f"{self.endian}{count}{code}",
                                  data[:count * _TYPE_SIZE[entry.type]]))

    def first_int(self, ifd: Ifd, tag: int) -> int | None:
        values = self.ints(ifd.entries.get(tag))
        return values[0] if values else None

    def text(self, entry: Entry | None, limit: int = 256) -> str | None:
        if entry is None or entry.type not in (2, 7):
            return None
        data = entry.raw or self._read(entry.offset, min(entry.count, limit))
        return data.split(b"\0", 1)[0].decode("latin-1").strip() or None

    def walk(self) -> Iterator[Ifd]:
        """Every reachable IFD: the IFD0 chain, SubIFDs (nested) and the Exif IFD, each once."""
        seen: set[int] = set()
        stack: list[tuple[int, int]] = [(self.first_ifd, 0)]
        while stack and len(seen) < _MAX_IFDS:
            offset, depth = stack.pop(0)
            if offset <= 0 or offset in seen:
                continue
            seen.add(offset)
            ifd = self.read_ifd(offset)
            if ifd is None:
                continue
            yield ifd
            if ifd.next_offset:
                stack.append((ifd.next_offset, depth))
            if depth < _MAX_DEPTH:
                for tag in (TAG_SUB_IFDS, TAG_EXIF_IFD):
                    stack.extend((o, depth + 1) for o in self.ints(ifd.entries.get(tag))[:16])


def read_ifd0(f: BinaryIO, size: int) -> tuple[TiffReader, Ifd] | None:
    """The reader and first IFD of a TIFF-like file, or None if it has no readable IFD0."""
    try:
        reader = TiffReader(f, size)
        ifd0 = reader.read_ifd(reader.first_ifd)
    except (ValueError, struct.error, OSError):
        return None
    return (reader, ifd0) if ifd0 is not None else None
