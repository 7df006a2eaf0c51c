"""analyze() on the synthetic fixture set: every field, thumbnails, duplicates, failures."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from media_fixtures import fake_crw, fake_raw, fixture_set, jpeg_bytes, mean_abs_diff
from PIL import Image, ImageOps

from lightbox.daemon.media import (
    DEFAULT_SPECS,
    GRID,
    PREVIEW,
    Analysis,
    AnalyzeRequest,
    MediaError,
    ThumbSpec,
    analyze,
    make_thumbnails,
    thumbnail_path,
)
from lightbox.daemon.media.fixtures import EXPECTED, MARKER, ORIENT_STORED
from lightbox.daemon.media.phash import NEAR_DUPLICATE_DISTANCE, distance
from lightbox.daemon.media.thumbs import atomic_save, remove_stale_temp_files


@pytest.fixture(scope="module")
def files() -> dict[str, Path]:
    return fixture_set()[1]


@pytest.fixture(scope="module")
def thumbs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("thumbs")


@pytest.fixture(scope="module")
def results(files: dict[str, Path], thumbs_dir: Path) -> dict[str, Analysis]:
    return {name: analyze(AnalyzeRequest(str(path), str(thumbs_dir), DEFAULT_SPECS))
            for name, path in files.items()}


def _thumb(thumbs_dir: Path, a: Analysis, spec: str) -> Image.Image:
    img = Image.open(thumbs_dir / a.thumbs[spec])
    img.load()
    return img


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_expected_fields(results: dict[str, Analysis], name: str) -> None:
    a = results[name]
    for field, want in EXPECTED[name].items():
        got = getattr(a, field)
        if isinstance(want, float) and got is not None:
            assert got == pytest.approx(want, abs=1e-5), (name, field, a)
        else:
            assert got == want, (name, field, got, want, a.error)


def test_every_field_of_a_full_camera_jpeg(results: dict[str, Analysis],
                                           files: dict[str, Path]) -> None:
    a = results["dated"]
    st = files["dated"].stat()
    assert (a.size, a.mtime_ns, a.inode) == (st.st_size, st.st_mtime_ns, st.st_ino)
    import hashlib

    assert a.sha256 == hashlib.sha256(files["dated"].read_bytes()).hexdigest()
    assert a.ok and a.error is None and a.error_kind is None
    assert isinstance(a.phash, int) and -(2**63) <= a.phash < 2**63
    assert set(a.thumbs) == {"grid", "preview"}
    for stage in ("hash", "sniff", "exif", "decode", "thumbs", "phash"):
        assert a.timings[stage] >= 0
    # It crosses a process boundary: plain data only.
    assert pickle.loads(pickle.dumps(a)) == a


@pytest.mark.parametrize("name", ["dated", "original", "png", "webp", "cmyk", "tiff16",
                                  "gif_animated", "orient_6"])
def test_thumbnails_have_the_right_long_edge(results: dict[str, Analysis], thumbs_dir: Path,
                                             name: str) -> None:
    a = results[name]
    assert a.width is not None and a.height is not None
    for spec in DEFAULT_SPECS:
        img = _thumb(thumbs_dir, a, spec.name)
        assert img.format == "JPEG" and img.mode == "RGB"
        # Never upscaled: a 640 px photo's "preview" is 640 px.
        assert max(img.size) == min(spec.size, max(a.width, a.height)), (name, spec, img.size)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orientation_is_applied_to_thumbnails(results: dict[str, Analysis], thumbs_dir: Path,
                                              files: dict[str, Path], orientation: int) -> None:
    a = results[f"orient_{orientation}"]
    assert a.orientation == orientation
    assert (a.width, a.height) == ORIENT_STORED           # stored, not displayed, size
    thumb = _thumb(thumbs_dir, a, "grid")
    w, h = ORIENT_STORED
    assert thumb.size == ((h, w) if orientation >= 5 else (w, h))
    # Oracle: Pillow's own exif_transpose of the original.
    with Image.open(files[f"orient_{orientation}"]) as src:
        upright = ImageOps.exif_transpose(src).convert("RGB")
    assert mean_abs_diff(thumb, upright) < 6


def test_orientation_6_turns_a_landscape_into_a_portrait_with_the_marker_top_right(
        results: dict[str, Analysis], thumbs_dir: Path) -> None:
    thumb = _thumb(thumbs_dir, results["orient_6"], "grid")
    assert thumb.height > thumb.width
    # Stored top-left corner is displayed top-right after a 90 degree clockwise turn.
    r, g, b = thumb.getpixel((thumb.width - 8, 8))  # type: ignore[misc]
    assert r > 200 and g < 60 and b < 60, (r, g, b)
    r, g, b = thumb.getpixel((8, 8))  # type: ignore[misc]
    assert not (r > 200 and g < 60 and b < 60)
    assert MARKER == (255, 0, 0)


def test_near_duplicates_are_close_and_different_photos_far(
        results: dict[str, Analysis]) -> None:
    original = results["original"].phash
    assert original is not None
    for name in ("resized", "reencoded"):
        other = results[name].phash
        assert other is not None
        assert distance(original, other) <= NEAR_DUPLICATE_DISTANCE, name
    different = results["different"].phash
    assert different is not None
    assert distance(original, different) > 16


def test_exact_copy_shares_sha256_and_thumbnail(results: dict[str, Analysis],
                                                thumbs_dir: Path) -> None:
    a, b = results["original"], results["exact_copy"]
    assert a.path != b.path
    assert a.sha256 == b.sha256 and a.thumbs == b.thumbs
    assert a.thumbs["grid"] == f"grid/{a.sha256[:2]}/{a.sha256}.jpg"  # type: ignore[index]
    assert (thumbs_dir / a.thumbs["grid"]).is_file()
    assert results["resized"].sha256 != a.sha256


def test_png_named_jpg_is_a_png(results: dict[str, Analysis], files: dict[str, Path]) -> None:
    assert files["png_as_jpg"].suffix == ".jpg"
    assert results["png_as_jpg"].mime == "image/png"


def test_truncated_jpeg_is_an_error_but_keeps_hash_and_exif(
        results: dict[str, Analysis]) -> None:
    # Decision: a JPEG that Pillow refuses to decode (data ends mid-scan) is an error, so the
    # UI shows it as damaged; everything that does not need the pixels is still recorded.
    a = results["truncated"]
    assert not a.ok and a.error_kind == "corrupt"
    assert a.error is not None and a.error.startswith("truncated JPEG")
    assert a.sha256 is not None and a.make == "Canon" and a.gps_lat is not None
    assert a.thumbs == {} and a.phash is None


def test_empty_and_non_images(results: dict[str, Analysis]) -> None:
    assert results["empty"].error == "empty file"
    mp3 = results["mp3_as_jpg"]
    assert mp3.error == "not an image: content looks like MP3 audio"
    assert mp3.format is None and mp3.sha256 is not None
    assert results["text_as_jpg"].error == "not an image: content looks like plain text"


def test_phash_only_and_no_thumbnails(files: dict[str, Path], tmp_path: Path) -> None:
    a = analyze(AnalyzeRequest(str(files["original"]), str(tmp_path), (), want_hash=True))
    assert a.ok and a.thumbs == {} and not any(tmp_path.iterdir())
    grid = analyze(AnalyzeRequest(str(files["original"]), str(tmp_path / "g"), (GRID,)))
    both = analyze(AnalyzeRequest(str(files["original"]), str(tmp_path / "b"), DEFAULT_SPECS))
    assert a.phash is not None and grid.phash is not None and both.phash is not None
    # Hash-only decodes and reduces exactly like a grid-only call: the same hash.
    assert a.phash == grid.phash
    # Through the preview-sized decode the grid pixels differ slightly; dHash bits on
    # near-flat regions may flip, but stay well inside the near-duplicate distance.
    assert distance(a.phash, both.phash) <= NEAR_DUPLICATE_DISTANCE
    b = analyze(AnalyzeRequest(str(files["original"]), str(tmp_path), (), want_hash=False))
    assert b.ok and b.phash is None and b.width == 1200


def test_grid_only_then_preview_later(files: dict[str, Path], tmp_path: Path) -> None:
    a = analyze(AnalyzeRequest(str(files["dated"]), str(tmp_path), (GRID,)))
    assert set(a.thumbs) == {"grid"}
    assert a.sha256 is not None
    assert not thumbnail_path(tmp_path, "preview", a.sha256).exists()
    made = make_thumbnails(str(files["dated"]), a.sha256, [PREVIEW], str(tmp_path))
    assert made == {"preview": f"preview/{a.sha256[:2]}/{a.sha256}.jpg"}
    with Image.open(tmp_path / made["preview"]) as img:
        assert img.size == (640, 480)


def test_make_thumbnails_on_demand_recreates_and_checks_content(
        results: dict[str, Analysis], files: dict[str, Path], tmp_path: Path) -> None:
    a = results["orient_6"]
    assert a.sha256
    made = make_thumbnails(str(files["orient_6"]), a.sha256, [ThumbSpec("grid", 100)],
                           str(tmp_path))
    with Image.open(tmp_path / made["grid"]) as img:
        assert img.size == (67, 100)     # oriented portrait
    with pytest.raises(MediaError) as err:
        make_thumbnails(str(files["dated"]), a.sha256, [GRID], str(tmp_path))
    assert err.value.kind == "changed"
    with pytest.raises(MediaError) as err:
        make_thumbnails(str(files["mp3_as_jpg"]), "ab" * 32, [GRID], str(tmp_path),
                        verify=False)
    assert err.value.kind == "unsupported"
    with pytest.raises(MediaError) as err:
        make_thumbnails(str(files["truncated"]), "ab" * 32, [GRID], str(tmp_path),
                        verify=False)
    assert err.value.kind == "corrupt"
    assert pickle.loads(pickle.dumps(err.value)).kind == "corrupt"


def test_existing_thumbnail_is_not_rewritten(files: dict[str, Path], tmp_path: Path) -> None:
    a = analyze(AnalyzeRequest(str(files["southern"]), str(tmp_path), (GRID,)))
    path = tmp_path / a.thumbs["grid"]
    before = path.stat()
    b = analyze(AnalyzeRequest(str(files["southern"]), str(tmp_path), (GRID,)))
    after = path.stat()
    assert b.thumbs == a.thumbs
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_no_temp_files_left_behind(results: dict[str, Analysis], thumbs_dir: Path) -> None:
    names = [p.name for p in thumbs_dir.rglob("*") if p.is_file()]
    assert names and all(n.endswith(".jpg") and not n.startswith(".") for n in names)


_KILLED_WRITER = """
import sys
from pathlib import Path
from PIL import Image
from lightbox.daemon.media.samples import make_photo
from lightbox.daemon.media.thumbs import atomic_save
img = make_photo(2400, 1800, 5)
print("ready", flush=True)
for i in range(1000):
    atomic_save(img, Path(sys.argv[1]) / "ab" / f"{i:04d}.jpg", 95)
    print("saved", flush=True)
"""


def test_sigkilled_writer_never_leaves_a_partial_file_under_the_final_name(
        tmp_path: Path) -> None:
    import random
    import signal
    import time

    rng = random.Random(7)
    for _round in range(4):
        out = tmp_path / str(_round)
        proc = subprocess.Popen([sys.executable, "-c", _KILLED_WRITER, str(out)],
                                stdout=subprocess.PIPE)
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"ready"
        # Some files done (whatever the machine's load), then a kill somewhere in the
        # middle of the next write.
        for _ in range(rng.randint(1, 3)):
            assert proc.stdout.readline().strip() == b"saved"
        time.sleep(rng.uniform(0.0, 0.05))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        finals = sorted((out / "ab").glob("[0-9]*.jpg"))
        temps = list((out / "ab").glob(".*.tmp"))
        assert finals, "the writer was killed before writing anything; raise the delay"
        for path in finals:
            data = path.read_bytes()
            assert data.endswith(b"\xff\xd9"), path
            with Image.open(path) as img:
                img.load()
                assert img.size == (2400, 1800)
        # The interrupted write, if any, is only a hidden temp file, and cleanup removes it.
        assert len(temps) <= 1
        assert remove_stale_temp_files(tmp_path, older_than=-1) == len(temps)
        assert not list((out / "ab").glob(".*.tmp"))


def test_atomic_save_cleans_up_when_encoding_fails(tmp_path: Path) -> None:
    img = Image.new("RGBA", (10, 10))          # JPEG cannot store RGBA: save raises
    with pytest.raises(OSError, match="cannot write mode RGBA as JPEG"):
        atomic_save(img, tmp_path / "x" / "y.jpg", 80)
    assert list((tmp_path / "x").iterdir()) == []


def test_analyze_never_raises_on_odd_paths(tmp_path: Path) -> None:
    missing = analyze(AnalyzeRequest(str(tmp_path / "nope.jpg"), str(tmp_path), DEFAULT_SPECS))
    assert missing.error_kind == "io" and "No such file" in (missing.error or "")
    directory = analyze(AnalyzeRequest(str(tmp_path), str(tmp_path), DEFAULT_SPECS))
    assert directory.error_kind == "io"
    fifo = tmp_path / "pipe.jpg"
    os.mkfifo(fifo)
    a = analyze(AnalyzeRequest(str(fifo), str(tmp_path), DEFAULT_SPECS))   # must not block
    assert a.error == "not a regular file"


def test_thumbnail_write_failure_is_an_io_error(files: dict[str, Path], tmp_path: Path) -> None:
    blocker = tmp_path / "thumbs"
    blocker.write_text("a file where the thumbnail directory should be")
    a = analyze(AnalyzeRequest(str(files["dated"]), str(blocker), DEFAULT_SPECS))
    assert not a.ok and a.error_kind == "io"
    assert a.error is not None and a.error.startswith("cannot write thumbnail")
    assert a.taken_at == "2021-07-04T18:30:15" and a.width == 640   # metadata still there


def test_thumbnail_path_is_content_addressed_and_validated(tmp_path: Path) -> None:
    sha = "0123456789abcdef" * 4
    assert thumbnail_path(tmp_path, "grid", sha) == tmp_path / "grid" / "01" / f"{sha}.jpg"
    for bad in ("../../etc/passwd", "", "XYZ" * 20):
        with pytest.raises(ValueError, match="not a sha256 hex digest"):
            thumbnail_path(tmp_path, "grid", bad)
    with pytest.raises(ValueError, match="bad thumbnail spec name"):
        thumbnail_path(tmp_path, "../grid", sha)


# -- RAW ---------------------------------------------------------------------------------------

def _analyze_bytes(tmp_path: Path, name: str, data: bytes, **kw: Any) -> Analysis:
    path = tmp_path / name
    path.write_bytes(data)
    return analyze(AnalyzeRequest(str(path), str(tmp_path / "thumbs"), DEFAULT_SPECS, **kw))


def test_raw_uses_the_embedded_preview_and_sensor_size(tmp_path: Path) -> None:
    a = _analyze_bytes(tmp_path, "DSC_0001.NEF",
                       fake_raw("NIKON CORPORATION", jpeg_bytes(1200, 800), orientation=6))
    assert a.ok, a.error
    assert (a.format, a.mime) == ("nef", "image/x-nikon-nef")
    assert (a.width, a.height, a.orientation) == (6000, 4000, 6)
    assert a.taken_at == "2022-03-04T05:06:07" and a.make == "NIKON CORPORATION"
    with Image.open(tmp_path / "thumbs" / a.thumbs["grid"]) as img:
        assert img.size == (171, 256)     # the 1200x800 preview, turned upright
    assert a.phash is not None


def test_dng_is_recognised_by_its_version_tag(tmp_path: Path) -> None:
    a = _analyze_bytes(tmp_path, "photo.tif", fake_raw("Leica Camera AG", jpeg_bytes(640, 480),
                                                        dng=True))
    assert a.ok and a.format == "dng" and a.mime == "image/x-adobe-dng"


def test_raw_without_preview_is_unsupported_but_keeps_metadata(tmp_path: Path) -> None:
    a = _analyze_bytes(tmp_path, "A7.ARW", fake_raw("SONY", None))
    assert not a.ok and a.error_kind == "unsupported"
    assert a.error == "Sony ARW raw: no embedded preview Pillow can decode"
    assert a.sha256 and a.make == "SONY" and a.taken_at == "2022-03-04T05:06:07"
    assert (a.width, a.height) == (6000, 4000)


def test_crw_preview_found_by_scanning(tmp_path: Path) -> None:
    a = _analyze_bytes(tmp_path, "CRW_0001.CRW", fake_crw(jpeg_bytes(640, 480)))
    assert a.ok and a.format == "crw"
    assert a.width is None and any("RAW dimensions unknown" in n for n in a.notes)
    with Image.open(tmp_path / "thumbs" / a.thumbs["grid"]) as img:
        assert img.size == (256, 192)


def test_decompression_bomb_is_refused_with_the_limit(tmp_path: Path) -> None:
    # A 100 megapixel PNG header over a tiny body: above MAX_IMAGE_PIXELS (89 MP) but below
    # 2x, where Pillow would only warn and then decode it.
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (struct.pack(">I", len(body)) + kind + body
                + struct.pack(">I", zlib.crc32(kind + body)))

    ihdr = struct.pack(">IIBBBBB", 10000, 10000, 8, 0, 0, 0, 0)
    png = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
           + chunk(b"IDAT", zlib.compress(b"\0" * 100)) + chunk(b"IEND", b""))
    a = _analyze_bytes(tmp_path, "bomb.png", png)
    assert a.error_kind == "bomb"
    assert a.error == "decompression bomb: 100 megapixels exceeds the 89 megapixel limit"


def test_min_size_accepts_the_decoders_scale_instead_of_resizing(tmp_path: Path) -> None:
    src = tmp_path / "big.jpg"
    src.write_bytes(jpeg_bytes(2000, 1500, seed=3))
    loose = ThumbSpec("preview", 1280, min_size=400)
    assert loose.decode_size == 400 and PREVIEW.decode_size == 1280
    a = analyze(AnalyzeRequest(str(src), str(tmp_path / "a"), (GRID, loose)))
    with Image.open(tmp_path / "a" / a.thumbs["preview"]) as img:
        assert img.size == (500, 375)        # the 1/4 DCT-scaled decode, not resized
    b = analyze(AnalyzeRequest(str(src), str(tmp_path / "b"), (GRID, PREVIEW)))
    with Image.open(tmp_path / "b" / b.thumbs["preview"]) as img:
        assert img.size == (1280, 960)
    for res, root in ((a, "a"), (b, "b")):
        with Image.open(tmp_path / root / res.thumbs["grid"]) as img:
            assert img.size == (256, 192)


_WITHOUT_PILLOW_HEIF = """
import sys
sys.modules["pillow_heif"] = None          # as if the heic extra were not installed
from lightbox.daemon.media import analyze, AnalyzeRequest
a = analyze(AnalyzeRequest(sys.argv[1], sys.argv[2], ()))
print(a.ok, a.error_kind, a.format, a.error, sep="|")
"""


def test_heic_through_pillow_heif_and_without_it(tmp_path: Path) -> None:
    pillow_heif = pytest.importorskip("pillow_heif")
    if not pillow_heif.libheif_info().get("HEIF"):
        pytest.skip("this libheif has no HEIF encoder to make a sample")
    from lightbox.daemon.media.samples import ExifSpec, build_exif

    src = tmp_path / "IMG_0001.HEIC"
    img = Image.new("RGB", (320, 240), (200, 30, 30))
    img.save(src, "HEIF", quality=60, exif=build_exif(ExifSpec(make="Apple", orientation=6)))
    a = analyze(AnalyzeRequest(str(src), str(tmp_path / "t"), (GRID,)))
    assert a.ok and a.format == "heif" and a.make == "Apple", a
    # pillow-heif stores the pixels coded as 240x320 plus a rotation, and applies it when
    # decoding. The catalog gets the same contract as for a JPEG: the EXIF orientation, the
    # stored size (displayed size swapped for 5..8), and a thumbnail rotated exactly once.
    assert a.orientation == 6 and (a.width, a.height) == (240, 320)
    with Image.open(tmp_path / "t" / a.thumbs["grid"]) as thumb:
        assert thumb.size == (256, 192)
    out = subprocess.run([sys.executable, "-c", _WITHOUT_PILLOW_HEIF, str(src), str(tmp_path)],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ("False|unsupported|heif|HEIF/HEIC needs pillow-heif "
                                  "(pip install pillow-heif)")
