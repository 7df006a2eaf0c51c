"""A small, deterministic set of files covering what the analyser must get right.

``make_fixture_set(dir)`` writes them and returns name -> path; ``EXPECTED`` says what
``analyze`` must report for each (exact values, as a photo tool should store them). Kept
small (well under a second to write) so every test run can rebuild it in a temp dir.
"""

from __future__ import annotations

import io
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from lightbox.daemon.media.samples import ExifSpec, build_exif, make_photo, save_jpeg

# Orientation fixtures: stored landscape 240x160 with a red block in the stored top-left corner.
ORIENT_STORED = (240, 160)
MARKER = (255, 0, 0)

_FULL = ExifSpec(taken=datetime(2021, 7, 4, 18, 30, 15), offset="-04:00", make="Canon",
                 model="Canon EOS R6", lens="RF24-105mm F4 L IS USM", exposure=(1, 250),
                 f_number=5.6, iso=200, focal_length=50.0, orientation=1,
                 gps=(40.748817, -73.985428, 12.5))

EXPECTED: dict[str, dict[str, Any]] = {
    "dated": {"ok": True, "format": "jpeg", "mime": "image/jpeg", "width": 640, "height": 480,
              "taken_at": "2021-07-04T18:30:15", "taken_offset": -240, "make": "Canon",
              "model": "Canon EOS R6", "lens": "RF24-105mm F4 L IS USM",
              "exposure_time": 1 / 250, "f_number": 5.6, "iso": 200, "focal_length": 50.0,
              "orientation": 1, "gps_lat": 40.748817, "gps_lon": -73.985428, "gps_alt": 12.5},
    "southern": {"ok": True, "taken_at": "2024-09-21T07:05:00", "taken_offset": 600,
                 "make": "Apple", "model": "iPhone 13", "gps_lat": -33.8568,
                 "gps_lon": 151.2153, "gps_alt": 4.0, "orientation": None},
    "below_sea": {"ok": True, "gps_lat": 31.559, "gps_lon": 35.4732, "gps_alt": -430.0,
                  "taken_at": "2019-03-02T12:00:00", "taken_offset": None},
    "datetime_only": {"ok": True, "taken_at": "2010-01-31T23:59:59", "taken_offset": 60,
                      "make": "NIKON CORPORATION", "model": "NIKON D70", "gps_lat": None,
                      "gps_lon": None},
    "png": {"ok": True, "format": "png", "mime": "image/png", "width": 300, "height": 200,
            "taken_at": "2022-02-22T22:22:22", "make": "Lightbox"},
    "webp": {"ok": True, "format": "webp", "mime": "image/webp", "width": 320, "height": 240,
             "taken_at": "2020-05-17T09:10:11", "orientation": 1},
    "png_as_jpg": {"ok": True, "format": "png", "mime": "image/png", "width": 200,
                   "height": 150},
    "gif_animated": {"ok": True, "format": "gif", "mime": "image/gif", "width": 120,
                     "height": 90},
    "cmyk": {"ok": True, "format": "jpeg", "width": 200, "height": 150},
    "tiff16": {"ok": True, "format": "tiff", "mime": "image/tiff", "width": 256,
               "height": 128},
    "truncated": {"ok": False, "error_kind": "corrupt", "format": "jpeg",
                  "taken_at": "2021-07-04T18:30:15", "width": 1200, "height": 900},
    "empty": {"ok": False, "error_kind": "empty", "error": "empty file"},
    "mp3_as_jpg": {"ok": False, "error_kind": "unsupported", "mime": "audio/mpeg"},
    "text_as_jpg": {"ok": False, "error_kind": "unsupported", "mime": "text/plain"},
    "original": {"ok": True, "width": 1200, "height": 900},
    "resized": {"ok": True, "width": 600, "height": 450},
    "reencoded": {"ok": True, "width": 1200, "height": 900},
    "exact_copy": {"ok": True, "width": 1200, "height": 900},
    "different": {"ok": True, "width": 1200, "height": 900},
}
for _o in range(1, 9):
    EXPECTED[f"orient_{_o}"] = {"ok": True, "orientation": _o, "width": ORIENT_STORED[0],
                                "height": ORIENT_STORED[1]}


def orientation_source() -> Image.Image:
    """The stored pixels of every orientation fixture: a scene with a red top-left block."""
    img = make_photo(*ORIENT_STORED, seed=99, grain=0)
    ImageDraw.Draw(img).rectangle((0, 0, 59, 39), fill=MARKER)
    return img


def make_fixture_set(directory: str | Path) -> dict[str, Path]:
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    out: dict[str, Path] = {}

    photo = make_photo(640, 480, seed=1)
    out["dated"] = save_jpeg(photo, root / "dated.jpg", _FULL)
    out["southern"] = save_jpeg(make_photo(400, 300, seed=2), root / "southern.jpg", ExifSpec(
        taken=datetime(2024, 9, 21, 7, 5), offset="+10:00", make="Apple", model="iPhone 13",
        gps=(-33.8568, 151.2153, 4.0)))
    out["below_sea"] = save_jpeg(make_photo(400, 300, seed=3), root / "below_sea.jpg",
                                 ExifSpec(taken=datetime(2019, 3, 2, 12), make="Canon",
                                          gps=(31.559, 35.4732, -430.0)))
    # Only IFD0 DateTime (+ OffsetTime), and a Make padded with blanks the way cameras do.
    out["datetime_only"] = save_jpeg(
        make_photo(400, 300, seed=4), root / "datetime_only.jpg",
        ExifSpec(taken=datetime(2010, 1, 31, 23, 59, 59), offset="+01:00",
                 date_tag="datetime", make="NIKON CORPORATION   ", model="NIKON D70"))

    stored = orientation_source()
    for o in range(1, 9):
        out[f"orient_{o}"] = save_jpeg(stored, root / "orientation" / f"orient_{o}.jpg",
                                       ExifSpec(orientation=o), quality=95)

    png_exif = build_exif(ExifSpec(taken=datetime(2022, 2, 22, 22, 22, 22), make="Lightbox"))
    png = make_photo(300, 200, seed=5).convert("RGBA")
    png.putalpha(Image.linear_gradient("L").resize((300, 200)))
    out["png"] = root / "screenshot.png"
    png.save(out["png"], "PNG", exif=png_exif)

    out["webp"] = root / "phone.webp"
    make_photo(320, 240, seed=6).save(out["webp"], "WEBP", quality=80, exif=build_exif(
        ExifSpec(taken=datetime(2020, 5, 17, 9, 10, 11), orientation=1)))

    out["png_as_jpg"] = root / "really_a_png.jpg"
    make_photo(200, 150, seed=7).save(out["png_as_jpg"], "PNG")

    frames = [make_photo(120, 90, seed=8 + i, grain=0).convert("P") for i in range(3)]
    out["gif_animated"] = root / "animated.gif"
    frames[0].save(out["gif_animated"], "GIF", save_all=True, append_images=frames[1:],
                   duration=100, loop=0)

    out["cmyk"] = root / "print.jpg"
    make_photo(200, 150, seed=11).convert("CMYK").save(out["cmyk"], "JPEG", quality=90)

    out["tiff16"] = root / "scan16.tif"
    grey = Image.linear_gradient("L").resize((256, 128)).convert("I")
    grey.point(lambda v: v * 256).convert("I;16").save(out["tiff16"], "TIFF")

    original = make_photo(1200, 900, seed=12)
    full = io.BytesIO()
    original.save(full, "JPEG", quality=90, exif=build_exif(_FULL))
    out["original"] = root / "near" / "original.jpg"
    out["original"].parent.mkdir(parents=True, exist_ok=True)
    out["original"].write_bytes(full.getvalue())
    out["resized"] = save_jpeg(original.resize((600, 450), Image.Resampling.LANCZOS),
                               root / "near" / "resized_50.jpg", quality=85)
    out["reencoded"] = save_jpeg(original, root / "near" / "reencoded_q60.jpg", quality=60)
    out["exact_copy"] = root / "elsewhere" / "original_copy.jpg"
    out["exact_copy"].parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(out["original"], out["exact_copy"])
    out["different"] = save_jpeg(make_photo(1200, 900, seed=13), root / "near" / "other.jpg")

    data = full.getvalue()
    out["truncated"] = root / "truncated.jpg"
    out["truncated"].write_bytes(data[: int(len(data) * 0.6)])

    out["empty"] = root / "empty.jpg"
    out["empty"].write_bytes(b"")
    out["mp3_as_jpg"] = root / "IMG_0001.jpg"
    out["mp3_as_jpg"].write_bytes(b"ID3\x04\x00\x00\x00\x00\x00\x21" + bytes(range(256)) * 8)
    out["text_as_jpg"] = root / "notes.jpg"
    out["text_as_jpg"].write_text("These are not the photos you are looking for.\n" * 20)
    return out
