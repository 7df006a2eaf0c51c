"""Helpers for the media and worker-pool tests (importable as ``media_fixtures``).

Functions the pool tests submit must live in an importable module (they are pickled by
reference and imported again in the spawned worker), so they are here, not in test modules.
"""

from __future__ import annotations

import atexit
import csv
import functools
import io
import os
import shutil
import signal
import struct
import tempfile
import time
from pathlib import Path
from typing import Any

from PIL import Image

from lightbox.daemon.media import samples

CORPUS = Path(os.environ.get("LIGHTBOX_CORPUS",
                             Path(__file__).resolve().parent.parent.parent / "shared" / "corpus"))


@functools.cache
def fixture_set() -> tuple[Path, dict[str, Path]]:
    """The synthetic fixture files, written once per test process: (root, name -> path)."""
    root = Path(tempfile.mkdtemp(prefix="lb-media-"))
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    return root, samples.make_fixture_set(root / "files")


def corpus_manifest() -> list[dict[str, Any]]:
    """MANIFEST.tsv rows with ``class`` and ``kv`` (the parsed ``expect`` column)."""
    rows = []
    with open(CORPUS / "MANIFEST.tsv", newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            parts = row["expect"].split(";")
            row["class"] = parts[0]
            row["kv"] = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
            row["flags"] = {p for p in parts[1:] if "=" not in p}
            rows.append(row)
    return rows


def jpeg_bytes(width: int, height: int, seed: int = 1, quality: int = 85) -> bytes:
    out = io.BytesIO()
    samples.make_photo(width, height, seed).save(out, "JPEG", quality=quality)
    return out.getvalue()


# -- a minimal TIFF writer, for RAW-like files ---------------------------------------------------

_TYPES = {"B": (1, 1), "A": (2, 1), "H": (3, 2), "L": (4, 4), "U": (7, 1)}


def build_tiff(ifds: list[list[tuple[int, str, Any]]], blobs: dict[str, bytes]) -> bytes:
    """Little-endian TIFF from IFDs of (tag, type code, value).

    Type codes: "B" bytes, "A" ASCII str, "H" shorts, "L" longs, "U" undefined bytes. A value
    may be ("ifd", n) for the offset of IFD n, or ("blob", name) / ("len", name) for the
    offset / length of a data blob appended after the IFDs.
    """
    ifd_sizes = [2 + 12 * len(entries) + 4 for entries in ifds]
    ifd_offsets = [8 + sum(ifd_sizes[:i]) for i in range(len(ifds))]
    data_start = 8 + sum(ifd_sizes)
    data = bytearray()
    blob_offsets: dict[str, int] = {}
    for name, blob in blobs.items():
        blob_offsets[name] = data_start + len(data)
        data += blob
        if len(data) % 2:
            data += b"\0"

    def resolve(v: Any) -> Any:
        if isinstance(v, tuple) and len(v) == 2 and v[0] == "ifd":
            return ifd_offsets[v[1]]
        if isinstance(v, tuple) and len(v) == 2 and v[0] == "blob":
            return blob_offsets[v[1]]
        if isinstance(v, tuple) and len(v) == 2 and v[0] == "len":
            return len(blobs[v[1]])
        return v

    out = bytearray(b"II*\x00" + struct.pack("<I", ifd_offsets[0]))
    for entries in ifds:
        out += struct.pack("<H", len(entries))
        for tag, code, value in sorted(entries, key=lambda e: e[0]):
            typ, unit = _TYPES[code]
            if code == "A":
                raw = value.encode("latin-1") + b"\0"
            elif code in ("B", "U"):
                raw = bytes(value)
            else:
                values = value if isinstance(value, list) else [value]
                raw = struct.pack(f"<{len(values)}{code.replace('L', 'I')}",
                                  *(resolve(v) for v in values))
            count = len(raw) // unit
            if len(raw) <= 4:
                out += struct.pack("<HHI", tag, typ, count) + raw.ljust(4, b"\0")
            else:
                offset = data_start + len(data)
                data += raw + (b"\0" if len(raw) % 2 else b"")
                out += struct.pack("<HHII", tag, typ, count, offset)
        out += struct.pack("<I", 0)
    assert len(out) == data_start
    return bytes(out + data)


def fake_raw(make: str, preview: bytes | None, *, dng: bool = False, orientation: int = 1,
             sensor: tuple[int, int] = (6000, 4000),
             taken: str = "2022:03:04 05:06:07") -> bytes:
    """A NEF/ARW/DNG-shaped TIFF: IFD0 = reduced-resolution preview (JPEG via
    JPEGInterchangeFormat), a SubIFD describing the sensor image, an Exif IFD with the date.
    Its "raw data" is not decodable, exactly like a real RAW for Pillow."""
    ifd0: list[tuple[int, str, Any]] = [
        (0x00FE, "L", 1), (0x0100, "L", 160), (0x0101, "L", 120), (0x0103, "H", 6),
        (0x010F, "A", make), (0x0110, "A", f"{make.split(maxsplit=1)[0]} X1"),
        (0x0112, "H", orientation),
        (0x014A, "L", ("ifd", 1)), (0x8769, "L", ("ifd", 2)),
    ]
    blobs: dict[str, bytes] = {"raw": b"\x5a" * 4096}
    if preview is not None:
        blobs["preview"] = preview
        ifd0 += [(0x0201, "L", ("blob", "preview")), (0x0202, "L", ("len", "preview"))]
    if dng:
        ifd0.append((0xC612, "B", [1, 4, 0, 0]))
    sub = [(0x00FE, "L", 0), (0x0100, "L", sensor[0]), (0x0101, "L", sensor[1]),
           (0x0103, "H", 34713), (0x0111, "L", ("blob", "raw")), (0x0117, "L", ("len", "raw"))]
    exif_ifd = [(0x9003, "A", taken)]
    return build_tiff([ifd0, sub, exif_ifd], blobs)


def fake_crw(preview: bytes) -> bytes:
    """A Canon CRW (CIFF) header, filler, and an embedded JPEG: found only by scanning."""
    return b"II\x1a\x00\x00\x00HEAPCCDR\x01\x00\x02\x00" + b"\x00" * 512 + preview + b"\x00" * 512


# -- functions for WorkerPool tests (run inside worker processes) --------------------------------

class CustomError(Exception):
    """Raised in a worker; must arrive in the parent as itself."""


class UnpicklableError(Exception):
    def __init__(self, a: int, b: int) -> None:
        super().__init__(f"needs two arguments: {a}, {b}")


def echo(value: Any) -> Any:
    return value


def getpid() -> int:
    return os.getpid()


def worker_nice() -> int:
    return os.nice(0)


def sigint_ignored() -> bool:
    return signal.getsignal(signal.SIGINT) is signal.SIG_IGN


def slow_echo(value: Any, seconds: float) -> Any:
    time.sleep(seconds)
    return value


def sleep_forever() -> None:
    while True:
        time.sleep(3600)


def exit_with(code: int) -> None:
    os._exit(code)


def kill_self() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def segfault() -> None:
    import ctypes

    ctypes.string_at(0)


def allocate(nbytes: int) -> int:
    block = bytearray(nbytes)
    return len(block)


def raise_custom(message: str) -> None:
    raise CustomError(message)


def raise_unpicklable() -> None:
    raise UnpicklableError(1, 2)


def burn_cpu(seconds: float) -> int:
    end = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < end:
        n += 1
    return n


def mean_abs_diff(a: Image.Image, b: Image.Image) -> float:
    """Mean absolute per-channel difference of two same-size RGB images (0..255)."""
    from PIL import ImageChops, ImageStat

    diff = ImageChops.difference(a.convert("RGB"), b.convert("RGB"))
    return sum(ImageStat.Stat(diff).mean) / 3


def check_corpus_metadata(a: Any, kv: dict[str, str]) -> None:
    """Compare what lightbox read (an Analysis, or a catalog row as an object with the same
    attribute names and ``taken_at`` as ISO text) with a MANIFEST ``expect`` column, under
    the policies documented in test_media_corpus."""
    import pytest

    if "date" in kv:
        text = kv["date"]
        valid = len(text) == 19 and not text.startswith("0000")
        expected = text.replace(":", "-", 2).replace(" ", "T") if valid else None
        assert a.taken_at == expected, (a.taken_at, text)
    if "orientation" in kv:
        value = int(kv["orientation"])
        assert a.orientation == (value if 1 <= value <= 8 else None)
    if "gps" in kv:
        lat_text, _, lon_text = kv["gps"].partition(",")
        try:
            lat, lon = float(lat_text), float(lon_text)
        except ValueError:
            lat = lon = None
        valid = (lat is not None and lon is not None and abs(lat) <= 90 and abs(lon) <= 180
                 and (lat, lon) != (0.0, 0.0))
        if valid:
            assert a.gps_lat == pytest.approx(lat, abs=1e-4)
            assert a.gps_lon == pytest.approx(lon, abs=1e-4)
        elif kv["gps"] == "," and a.gps_lat is not None:
            assert a.gps_lon is not None and abs(a.gps_lat) <= 90 and abs(a.gps_lon) <= 180
        else:
            assert (a.gps_lat, a.gps_lon) == (None, None), kv["gps"]
    if "make" in kv:
        assert a.make == kv["make"].strip(" \x00")




def write_stderr(text: str) -> int:
    """What libtiff does: write straight to file descriptor 2, past Python."""
    return os.write(2, text.encode())
