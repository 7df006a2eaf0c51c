"""Content sniffing, the perceptual hash, and the sample generator."""

from __future__ import annotations

import io
import random
import time
from itertools import combinations
from pathlib import Path

import pytest
from media_fixtures import fake_raw, jpeg_bytes
from PIL import Image

from lightbox.daemon.media import phash, samples, sniff


def _png_bytes() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (4, 4)).save(out, "PNG")
    return out.getvalue()


@pytest.mark.parametrize(("head", "fmt", "mime", "kind"), [
    (b"\xff\xd8\xff\xe1\x00\x10Exif", "jpeg", "image/jpeg", sniff.IMAGE),
    (b"\x89PNG\r\n\x1a\n\x00\x00", "png", "image/png", sniff.IMAGE),
    (b"GIF89a\x01\x00", "gif", "image/gif", sniff.IMAGE),
    (b"RIFF\x10\x00\x00\x00WEBPVP8 ", "webp", "image/webp", sniff.IMAGE),
    (b"II*\x00\x08\x00\x00\x00", "tiff", "image/tiff", sniff.IMAGE),
    (b"MM\x00*\x00\x00\x00\x08", "tiff", "image/tiff", sniff.IMAGE),
    (b"II+\x00\x08\x00\x00\x00\x10\x00\x00\x00\x00\x00\x00\x00", "tiff", "image/tiff",
     sniff.IMAGE),
    (b"BM" + b"\x00" * 30, "bmp", "image/bmp", sniff.IMAGE),
    (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic", "heif", "image/heic", sniff.IMAGE),
    (b"\x00\x00\x00\x18ftypmif1\x00\x00\x00\x00mif1heic", "heif", "image/heif", sniff.IMAGE),
    (b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf", "avif", "image/avif",
     sniff.IMAGE),
    (b"\x00\x00\x00\x18ftypcrx \x00\x00\x00\x01crx isom", "cr3", "image/x-canon-cr3",
     sniff.RAW),
    (b"II\x1a\x00\x00\x00HEAPCCDR\x01\x00", "crw", "image/x-canon-crw", sniff.RAW),
    (b"IIU\x00\x18\x00\x00\x00", "rw2", "image/x-panasonic-rw2", sniff.RAW),
    (b"\x00\x00\x00\x0cJXL \r\n\x87\n", "jxl", "image/jxl", sniff.IMAGE),
    (b"\xff\x0a\x00", "jxl", "image/jxl", sniff.IMAGE),
    (b"ID3\x04\x00\x00\x00\x00\x00\x21", None, "audio/mpeg", sniff.OTHER),
    (b"\xff\xfb\x90\x64\x00", None, "audio/mpeg", sniff.OTHER),
    (b"%PDF-1.7\n", None, "application/pdf", sniff.OTHER),
    (b"PK\x03\x04\x14\x00", None, "application/zip", sniff.OTHER),
    (b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41", None, "video/mp4",
     sniff.OTHER),
    (b"hello, this is text\n", None, "text/plain", sniff.OTHER),
    (b"\x09\x50\x4e\x47\x0d\x0a\x1a\x0a\x00\x00", None, None, sniff.UNKNOWN),
])
def test_sniff_bytes(head: bytes, fmt: str | None, mime: str | None, kind: str) -> None:
    got = sniff.sniff_bytes(head)
    assert (got.format, got.mime, got.kind) == (fmt, mime, kind)


def test_extension_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "photo.jpg"
    path.write_bytes(_png_bytes())
    with open(path, "rb") as f:
        assert sniff.sniff_file(f, path.stat().st_size, ".jpg").format == "png"


@pytest.mark.parametrize(("make", "ext", "fmt"), [
    ("NIKON CORPORATION", ".NEF", "nef"), ("NIKON CORPORATION", ".tif", "nef"),
    ("SONY", ".ARW", "arw"), ("PENTAX", ".dng", "dng"), ("Canon", ".CR2", "cr2"),
])
def test_tiff_based_raws_are_told_apart(tmp_path: Path, make: str, ext: str, fmt: str) -> None:
    data = fake_raw(make, jpeg_bytes(64, 48))
    with io.BytesIO(data) as f:
        got = sniff.sniff_file(f, len(data), ext)
    assert (got.format, got.kind) == (fmt, sniff.RAW)


def test_scanner_tiff_with_a_make_stays_a_tiff(tmp_path: Path) -> None:
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "TIFF", tiffinfo={271: "EPSON", 272: "Perfection"})
    data = buf.getvalue()
    with io.BytesIO(data) as f:
        got = sniff.sniff_file(f, len(data), ".tif")
    assert (got.format, got.kind) == ("tiff", sniff.IMAGE)


def test_cr2_marker() -> None:
    data = b"II*\x00\x10\x00\x00\x00CR\x02\x00" + b"\x00" * 64
    with io.BytesIO(data) as f:
        assert sniff.sniff_file(f, len(data)).format == "cr2"


# -- perceptual hash -------------------------------------------------------------------------

def test_phash_is_signed_int64_and_round_trips() -> None:
    for value in (0, 1, 2**63 - 1, 2**63, 2**64 - 1):
        signed = phash.to_signed(value)
        assert -(2**63) <= signed < 2**63
        assert phash.to_unsigned(signed) == value
    assert phash.to_signed(2**64 - 1) == -1
    assert phash.distance(-1, 0) == 64
    assert phash.distance(phash.to_signed(2**63), 2**63) == 0


def test_near_duplicates_close_and_distinct_photos_far() -> None:
    originals = [samples.make_photo(800, 600, seed) for seed in range(12)]
    hashes = [phash.phash(img) for img in originals]
    for img, h in zip(originals, hashes, strict=True):
        half = img.resize((400, 300), Image.Resampling.LANCZOS)
        buf = io.BytesIO()
        img.save(buf, "JPEG", quality=60)
        reencoded = Image.open(io.BytesIO(buf.getvalue()))
        bright = img.point(lambda v: min(255, int(v * 1.1)))
        for variant in (half, reencoded, bright):
            assert phash.distance(h, phash.phash(variant)) <= phash.NEAR_DUPLICATE_DISTANCE
    far = [phash.distance(a, b) for a, b in combinations(hashes, 2)]
    assert min(far) > 16, sorted(far)[:5]


def test_cropped_or_mirrored_photo_is_not_a_duplicate() -> None:
    img = samples.make_photo(800, 600, 42)
    mirrored = img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    assert phash.distance(phash.phash(img), phash.phash(mirrored)) > 16


# -- sample generator ------------------------------------------------------------------------

def test_photos_are_deterministic_textured_and_camera_sized() -> None:
    a = samples.make_photo(400, 300, 5)
    assert a.tobytes() == samples.make_photo(400, 300, 5).tobytes()
    assert a.tobytes() != samples.make_photo(400, 300, 6).tobytes()
    assert len(a.getcolors(1 << 20) or []) > 5000          # not flat colour
    t = time.perf_counter()
    big = samples.make_photo(4000, 3000, 9)
    elapsed = time.perf_counter() - t
    buf = io.BytesIO()
    big.save(buf, "JPEG", quality=90)
    assert 3e6 <= len(buf.getvalue()) <= 6.5e6, len(buf.getvalue())
    assert elapsed < 5.0


def test_demo_library_layout(tmp_path: Path) -> None:
    paths = samples.make_demo_library(tmp_path, count=12, megapixels=0.3, processes=1)
    rel = {str(p.relative_to(tmp_path)) for p in paths}
    assert "2023/2023-06-14 Lake trip" in {str(Path(r).parent) for r in rel}
    assert any(r.endswith("-edit.jpg") for r in rel)
    copies = [p for p in paths if p.parent.name == "Unsorted"]
    assert len(copies) == 1
    assert any(copies[0].read_bytes() == p.read_bytes() for p in paths if p != copies[0])
    assert len(paths) == 14


def test_demo_portraits_are_upright_portraits(tmp_path: Path) -> None:
    """A demo photo tagged orientation 6 is a portrait shown upright: turned as its tag says
    it is taller than wide and has the pixels of an upright scene (sky at the top), not a
    landscape lying on its side."""
    from PIL import ImageOps, ImageStat

    paths = samples.make_demo_library(tmp_path, count=30, megapixels=0.2, processes=1)
    portraits = 0
    for path in paths:
        with Image.open(path) as img:
            if img.getexif().get(0x0112) != 6:
                continue
            portraits += 1
            assert img.width > img.height  # stored as the sensor saw it
            shown = ImageOps.exif_transpose(img)
        assert shown.height > shown.width
        # Sky at the top, ground at the bottom: the top eighth is the bluer one.
        def blueness(box: tuple[int, int, int, int], shown: Image.Image = shown) -> float:
            r, _, b = ImageStat.Stat(shown.crop(box).convert("RGB")).mean
            return float(b - r)

        top = blueness((0, 0, shown.width, shown.height // 8))
        bottom = blueness((0, shown.height * 7 // 8, shown.width, shown.height))
        assert top > bottom + 20, (path.name, top, bottom)
    assert portraits >= 2


def test_benchmark_set(tmp_path: Path) -> None:
    paths = samples.make_benchmark_set(tmp_path, 3, megapixels=1, processes=1)
    assert len(paths) == 3
    with Image.open(paths[0]) as img:
        assert abs(img.width * img.height - 1e6) < 2e4
        assert img.getexif().get(0x010F)


def test_cli(tmp_path: Path) -> None:
    assert samples.main([str(tmp_path), "--count", "2", "--megapixels", "0.2",
                         "--processes", "1"]) == 0
    assert len(list(tmp_path.glob("*.JPG"))) == 2
    random.seed(0)
