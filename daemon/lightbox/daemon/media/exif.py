"""EXIF metadata, read from whichever parser copes with the file, normalised once.

Two readers feed one normaliser: exifread for JPEG and TIFF-based files (it reads only the
header segments, never pixels) and Pillow's ``Image.Exif`` for everything else (HEIC, AVIF,
WebP, PNG) and as a fallback when exifread gives up on a mangled JPEG. Both are reduced to
the same small dict keyed by ``(ifd, tag id)`` so the rules live in one place: which date
wins, what an offset means, when GPS is garbage.

Values from real cameras are messy: NUL-padded strings, "0000:00:00 00:00:00" dates,
rationals with zero denominators, latitudes of 4294967295. Anything that cannot be a real
value becomes None rather than a plausible-looking lie in the catalog.
"""

from __future__ import annotations

import logging
import math
import re
from dataclasses import dataclass, field
from datetime import datetime
from fractions import Fraction
from typing import Any, BinaryIO

from PIL import Image

# exifread logs "File format not recognized" at WARNING for every non-EXIF file; that is
# an answer, not a problem, and worker stderr ends up in the journal.
logging.getLogger("exifread").setLevel(logging.CRITICAL)

IFD0, EXIF, GPS = "0", "exif", "gps"

# (ifd, tag) of every value we use.
MAKE, MODEL, ORIENTATION, DATETIME = (IFD0, 0x010F), (IFD0, 0x0110), (IFD0, 0x0112), (IFD0, 0x0132)
THUMB_ORIENTATION = ("1", 0x0112)   # IFD1's; some editors (Adobe Bridge) leave only this one
DATETIME_ORIGINAL, DATETIME_DIGITIZED = (EXIF, 0x9003), (EXIF, 0x9004)
OFFSET_TIME, OFFSET_ORIGINAL, OFFSET_DIGITIZED = (EXIF, 0x9010), (EXIF, 0x9011), (EXIF, 0x9012)
EXPOSURE_TIME, F_NUMBER, ISO, FOCAL_LENGTH = (EXIF, 0x829A), (EXIF, 0x829D), (EXIF, 0x8827), (
    EXIF, 0x920A)
LENS_MODEL, PIXEL_X, PIXEL_Y = (EXIF, 0xA434), (EXIF, 0xA002), (EXIF, 0xA003)
GPS_LAT_REF, GPS_LAT, GPS_LON_REF, GPS_LON = (GPS, 1), (GPS, 2), (GPS, 3), (GPS, 4)
GPS_ALT_REF, GPS_ALT = (GPS, 5), (GPS, 6)

# exifread's key for each (ifd, tag) we use.
_EXIFREAD_KEYS = {
    "Image Make": MAKE, "Image Model": MODEL, "Image Orientation": ORIENTATION,
    "Image DateTime": DATETIME, "Thumbnail Orientation": THUMB_ORIENTATION,
    "EXIF DateTimeOriginal": DATETIME_ORIGINAL,
    "EXIF DateTimeDigitized": DATETIME_DIGITIZED, "EXIF OffsetTime": OFFSET_TIME,
    "EXIF OffsetTimeOriginal": OFFSET_ORIGINAL, "EXIF OffsetTimeDigitized": OFFSET_DIGITIZED,
    "EXIF ExposureTime": EXPOSURE_TIME, "EXIF FNumber": F_NUMBER,
    "EXIF ISOSpeedRatings": ISO, "EXIF FocalLength": FOCAL_LENGTH, "EXIF LensModel": LENS_MODEL,
    "EXIF ExifImageWidth": PIXEL_X, "EXIF ExifImageLength": PIXEL_Y,
    "GPS GPSLatitudeRef": GPS_LAT_REF, "GPS GPSLatitude": GPS_LAT,
    "GPS GPSLongitudeRef": GPS_LON_REF, "GPS GPSLongitude": GPS_LON,
    "GPS GPSAltitudeRef": GPS_ALT_REF, "GPS GPSAltitude": GPS_ALT,
}

Raw = dict[tuple[str, int], Any]


@dataclass
class ExifInfo:
    taken_at: str | None = None
    taken_offset: int | None = None
    make: str | None = None
    model: str | None = None
    lens: str | None = None
    exposure_time: float | None = None
    f_number: float | None = None
    iso: int | None = None
    focal_length: float | None = None
    gps_lat: float | None = None
    gps_lon: float | None = None
    gps_alt: float | None = None
    orientation: int | None = None
    pixel_width: int | None = None     # ExifImageWidth/Height, for RAWs
    pixel_height: int | None = None
    found: bool = False                # any EXIF at all
    source: str | None = None          # "exifread" | "pillow"
    extras: dict[str, Any] = field(default_factory=dict)

    def fill_from(self, other: ExifInfo) -> None:
        """Take every field this one lacks from ``other`` (a second reader's result)."""
        for name in ("taken_at", "taken_offset", "make", "model", "lens", "exposure_time",
                     "f_number", "iso", "focal_length", "orientation", "pixel_width",
                     "pixel_height"):
            if getattr(self, name) is None:
                setattr(self, name, getattr(other, name))
        if self.gps_lat is None and other.gps_lat is not None:
            self.gps_lat, self.gps_lon = other.gps_lat, other.gps_lon
        if self.gps_alt is None:
            self.gps_alt = other.gps_alt
        self.found = self.found or other.found


# -- readers ---------------------------------------------------------------------------------

def read_exifread(f: BinaryIO) -> ExifInfo:
    """EXIF of a JPEG or TIFF-based file through exifread; raises whatever exifread raises."""
    import exifread

    f.seek(0)
    tags = exifread.process_file(f, details=False, extract_thumbnail=False, truncate_tags=True)
    raw: Raw = {}
    for key, tag in tags.items():
        where = _EXIFREAD_KEYS.get(key)
        if where is not None:
            raw[where] = getattr(tag, "values", tag)
    info = normalise(raw)
    info.found = bool(tags)
    info.source = "exifread"
    return info


def read_pillow(img: Image.Image) -> ExifInfo:
    """EXIF through Pillow (HEIC, AVIF, WebP, PNG, or a JPEG exifread could not parse).

    For a PNG whose eXIf chunk follows the pixel data, ``getexif()`` loads the image; call
    this after ``load()`` so that costs nothing extra.
    """
    exif = img.getexif()
    raw: Raw = {}
    for tag, value in exif.items():
        raw[(IFD0, tag)] = value
    for ifd_name, ifd_tag in ((EXIF, 0x8769), (GPS, 0x8825)):
        try:
            sub = exif.get_ifd(ifd_tag)
        except Exception:
            continue
        for tag, value in sub.items():
            raw[(ifd_name, tag)] = value
    info = normalise(raw)
    # pillow-heif rotates HEIC pixels itself and resets Orientation to 1 in the EXIF it
    # exposes; the camera's value survives in info["original_orientation"].
    original = img.info.get("original_orientation")
    if isinstance(original, int) and 1 <= original <= 8:
        info.orientation = original
    info.found = bool(raw) or original is not None
    info.source = "pillow"
    return info


# -- normalisation ---------------------------------------------------------------------------

def normalise(raw: Raw) -> ExifInfo:
    info = ExifInfo()
    for tag_date, tag_offset in ((DATETIME_ORIGINAL, OFFSET_ORIGINAL),
                                 (DATETIME_DIGITIZED, OFFSET_DIGITIZED),
                                 (DATETIME, OFFSET_TIME)):
        taken = parse_datetime(raw.get(tag_date))
        if taken is not None:
            info.taken_at = taken
            info.taken_offset = parse_offset(raw.get(tag_offset))
            if info.taken_offset is None:
                info.taken_offset = parse_offset(raw.get(OFFSET_TIME))
            break
    info.make = clean_text(raw.get(MAKE))
    info.model = clean_text(raw.get(MODEL))
    info.lens = clean_text(raw.get(LENS_MODEL))
    info.exposure_time = _positive(first_number(raw.get(EXPOSURE_TIME)))
    info.f_number = _positive(first_number(raw.get(F_NUMBER)))
    info.focal_length = _positive(first_number(raw.get(FOCAL_LENGTH)))
    iso = first_number(raw.get(ISO))
    info.iso = int(iso) if iso is not None and 0 < iso < 10_000_000 else None
    orientation = first_number(raw.get(ORIENTATION, raw.get(THUMB_ORIENTATION)))
    info.orientation = int(orientation) if orientation in (1, 2, 3, 4, 5, 6, 7, 8) else None
    for name, key in (("pixel_width", PIXEL_X), ("pixel_height", PIXEL_Y)):
        value = first_number(raw.get(key))
        setattr(info, name, int(value) if value is not None and 0 < value < 1e6 else None)
    info.gps_lat, info.gps_lon = parse_gps(raw)
    info.gps_alt = parse_altitude(raw.get(GPS_ALT), raw.get(GPS_ALT_REF))
    return info


def clean_text(value: Any) -> str | None:
    """A string tag without NUL padding and surrounding blanks; None when empty."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    elif isinstance(value, list | tuple):
        if not value:
            return None
        value = " ".join(str(v) for v in value)
    text = str(value).split("\x00", 1)[0].strip()
    text = "".join(c for c in text if c.isprintable())
    return text[:200] or None


_DATE = re.compile(r"\s*(\d{4})[:\-/](\d{2})[:\-/](\d{2})[ T](\d{2}):(\d{2}):(\d{2})")


def parse_datetime(value: Any) -> str | None:
    """EXIF "YYYY:MM:DD HH:MM:SS" to ISO "YYYY-MM-DDTHH:MM:SS"; None for blank/impossible dates."""
    text = clean_text(value)
    if not text:
        return None
    m = _DATE.match(text)
    if not m:
        return None
    year, month, day, hour, minute, second = (int(g) for g in m.groups())
    try:
        dt = datetime(year, month, day, hour, minute, second)
    except ValueError:
        return None   # "0000:00:00 00:00:00", month 13, ...
    return dt.isoformat()


_OFFSET = re.compile(r"\s*([+-])(\d{1,2}):?(\d{2})")


def parse_offset(value: Any) -> int | None:
    """"+02:00" -> 120 (minutes east of UTC); None when absent or out of range."""
    text = clean_text(value)
    if not text:
        return None
    if text.upper() == "Z":
        return 0
    m = _OFFSET.match(text)
    if not m:
        return None
    minutes = int(m.group(2)) * 60 + int(m.group(3))
    if minutes > 14 * 60 or int(m.group(3)) >= 60:
        return None
    return minutes if m.group(1) == "+" else -minutes


def to_float(value: Any) -> float | None:
    """A rational/number as a finite float; None for x/0, NaN, garbage."""
    try:
        if isinstance(value, Fraction | int | float):
            result = float(value)
        elif hasattr(value, "numerator") and hasattr(value, "denominator"):
            den = value.denominator
            if not den:
                return None
            result = value.numerator / den
        else:
            result = float(value)
    except (TypeError, ValueError, ZeroDivisionError, OverflowError):
        return None
    return result if math.isfinite(result) else None


def first_number(value: Any) -> float | None:
    if isinstance(value, list | tuple):
        return to_float(value[0]) if value else None
    if isinstance(value, str | bytes):
        text = clean_text(value)
        return to_float(text) if text else None
    return None if value is None else to_float(value)


def _positive(value: float | None) -> float | None:
    return value if value is not None and value > 0 else None


def _dms(value: Any) -> float | None:
    """Degrees, minutes, seconds (1 to 3 rationals) to decimal degrees.

    GPS units that write "DD MM.mmmm" often leave seconds as 0/0; that means "unused", not
    "unknown location", so 0/0 counts as 0 in the minutes and seconds places (never in the
    degrees place).
    """
    parts = list(value) if isinstance(value, list | tuple) else [value]
    if not parts or len(parts) > 3:
        return None
    nums = [to_float(p) for p in parts]
    for i in (1, 2):
        if i < len(parts) and nums[i] is None and _is_zero_over_zero(parts[i]):
            nums[i] = 0.0
    if any(n is None or n < 0 for n in nums):
        return None
    total = 0.0
    for n, scale in zip(nums, (1.0, 60.0, 3600.0), strict=False):
        assert n is not None
        total += n / scale
    return total


def _is_zero_over_zero(value: Any) -> bool:
    num = getattr(value, "_numerator", getattr(value, "numerator", None))
    den = getattr(value, "_denominator", getattr(value, "denominator", None))
    return num == 0 and den == 0


def parse_gps(raw: Raw) -> tuple[float | None, float | None]:
    """Signed decimal degrees, or (None, None).

    A photo tool must not invent locations: a missing or empty coordinate, a latitude
    beyond ±90 or longitude beyond ±180 (e.g. 4294967295, an unsigned -1), and exactly
    (0, 0) — "null island", what phones write when they had no fix — all mean "no location".
    """
    lat = _dms(raw.get(GPS_LAT)) if raw.get(GPS_LAT) not in (None, "", [], ()) else None
    lon = _dms(raw.get(GPS_LON)) if raw.get(GPS_LON) not in (None, "", [], ()) else None
    if lat is None or lon is None or lat > 90 or lon > 180:
        return None, None
    if (clean_text(raw.get(GPS_LAT_REF)) or "N").upper().startswith("S"):
        lat = -lat
    if (clean_text(raw.get(GPS_LON_REF)) or "E").upper().startswith("W"):
        lon = -lon
    if lat == 0 and lon == 0:
        return None, None
    return round(lat, 7), round(lon, 7)


def parse_altitude(value: Any, ref: Any) -> float | None:
    alt = first_number(value)
    if alt is None or alt < 0 or alt > 100_000:
        return None
    below = first_number(ref) == 1 or (isinstance(ref, bytes) and ref[:1] == b"\x01")
    return round(-alt if below else alt, 2)
