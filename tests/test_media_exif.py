"""EXIF normalisation rules: dates, offsets, GPS sanity, text cleaning."""

from __future__ import annotations

import io
from datetime import datetime
from fractions import Fraction

import pytest
from exifread.utils import Ratio
from PIL import Image
from PIL.TiffImagePlugin import IFDRational

from lightbox.daemon.media import exif
from lightbox.daemon.media.samples import ExifSpec, build_exif


@pytest.mark.parametrize(("raw", "iso"), [
    ("2008:05:30 15:56:01", "2008-05-30T15:56:01"),
    ("2008:05:30 15:56:01\x00\x00", "2008-05-30T15:56:01"),
    ("  2008-05-30 15:56:01  ", "2008-05-30T15:56:01"),
    ("2008:05:30 15:56:01.25+02:00", "2008-05-30T15:56:01"),
    (b"2014:09:21 16:00:56", "2014-09-21T16:00:56"),
    ("0000:00:00 00:00:00", None),      # cameras with an unset clock
    ("2008:13:30 15:56:01", None),
    ("    :  :     :  :  ", None),
    ("6", None),
    ("", None),
    (None, None),
])
def test_parse_datetime(raw: object, iso: str | None) -> None:
    assert exif.parse_datetime(raw) == iso


@pytest.mark.parametrize(("raw", "minutes"), [
    ("+02:00", 120), ("-05:30", -330), ("+0545", 345), ("Z", 0), ("+00:00", 0),
    ("+15:00", None), ("+01:75", None), ("   :  ", None), ("", None), (None, None),
])
def test_parse_offset(raw: object, minutes: int | None) -> None:
    assert exif.parse_offset(raw) == minutes


def _gps(lat: object, lat_ref: object, lon: object, lon_ref: object) -> tuple[object, object]:
    raw = {exif.GPS_LAT: lat, exif.GPS_LAT_REF: lat_ref, exif.GPS_LON: lon,
           exif.GPS_LON_REF: lon_ref}
    return exif.parse_gps(raw)


def test_gps_signs_from_refs() -> None:
    lat = [Ratio(33, 1), Ratio(51, 1), Ratio(2448, 100)]
    lon = [Ratio(151, 1), Ratio(12, 1), Ratio(5508, 100)]
    south_east = _gps(lat, "S", lon, "E")
    assert south_east == pytest.approx((-33.8568, 151.2153), abs=1e-4)
    north_west = _gps(lat, "N\x00", lon, "W")
    assert north_west == pytest.approx((33.8568, -151.2153), abs=1e-4)


def test_gps_zero_over_zero_seconds_count_as_zero() -> None:
    # Nikon GP-1 style "DD MM.mmmm" with seconds 0/0: exiftool prints nothing, but the
    # degrees and minutes are a real location.
    lat = [Ratio(48, 1), Ratio(2666179, 50000), Ratio(0, 0)]
    lon = [Ratio(21, 1), Ratio(259507, 100000), Ratio(0, 0)]
    assert _gps(lat, "N", lon, "E") == pytest.approx((48.888726, 21.043251), abs=1e-5)


@pytest.mark.parametrize(("lat", "lon"), [
    ([Ratio(4294967295, 1), Ratio(0, 1), Ratio(0, 1)], None),      # unsigned -1 as degrees
    ([Ratio(91, 1)], [Ratio(10, 1)]),
    ([Ratio(10, 1)], [Ratio(181, 1)]),
    ([Ratio(0, 0), Ratio(1, 1), Ratio(0, 1)], [Ratio(1, 1)]),      # degrees 0/0
    ("", ""),                                                       # empty tags
    ([Ratio(0, 1), Ratio(0, 1), Ratio(0, 1)], [Ratio(0, 1), Ratio(0, 1), Ratio(0, 1)]),
])
def test_invalid_gps_means_no_location(lat: object, lon: object) -> None:
    assert _gps(lat, "N", lon, "E") == (None, None)


def test_gps_near_but_not_at_null_island_is_kept() -> None:
    assert _gps([Ratio(7, 1)], "N", [Ratio(0, 1)], "E") == (7.0, 0.0)


def test_altitude_below_sea_level() -> None:
    assert exif.parse_altitude([Ratio(430, 1)], [1]) == -430.0
    assert exif.parse_altitude(IFDRational(12, 1), b"\x00") == 12.0
    assert exif.parse_altitude(IFDRational(12, 1), b"\x01") == -12.0
    assert exif.parse_altitude([Ratio(1, 0)], [0]) is None
    assert exif.parse_altitude([Ratio(4294967295, 1)], [0]) is None


@pytest.mark.parametrize(("raw", "text"), [
    ("Canon\x00\x00\x00", "Canon"), ("  NIKON CORPORATION  ", "NIKON CORPORATION"),
    (b"SONY\x00", "SONY"), ("", None), ("\x00\x00", None), (None, None), ([12336], "12336"),
])
def test_clean_text(raw: object, text: str | None) -> None:
    assert exif.clean_text(raw) == text


def test_date_precedence_and_matching_offset() -> None:
    raw: exif.Raw = {
        exif.DATETIME: "2020:01:01 00:00:00", exif.DATETIME_DIGITIZED: "2019:06:01 12:00:00",
        exif.DATETIME_ORIGINAL: "2019:05:31 11:59:59", exif.OFFSET_TIME: "+01:00",
        exif.OFFSET_ORIGINAL: "+09:00",
    }
    info = exif.normalise(raw)
    assert (info.taken_at, info.taken_offset) == ("2019-05-31T11:59:59", 540)
    raw[exif.DATETIME_ORIGINAL] = "0000:00:00 00:00:00"
    info = exif.normalise(raw)
    assert info.taken_at == "2019-06-01T12:00:00"
    assert info.taken_offset == 60      # no OffsetTimeDigitized: falls back to OffsetTime


def test_exposure_values_and_bad_rationals() -> None:
    info = exif.normalise({exif.EXPOSURE_TIME: [Ratio(1, 250)], exif.F_NUMBER: [Ratio(28, 5)],
                           exif.ISO: [400], exif.FOCAL_LENGTH: [Ratio(0, 0)],
                           exif.ORIENTATION: [9]})
    assert info.exposure_time == pytest.approx(0.004)
    assert info.f_number == pytest.approx(5.6)
    assert info.iso == 400
    assert info.focal_length is None
    assert info.orientation is None     # 9 is not an orientation


def test_exifread_and_pillow_readers_agree() -> None:
    spec = ExifSpec(taken=datetime(2023, 6, 14, 10, 32, 5), offset="+02:00", make="FUJIFILM",
                    model="X-T4", lens="XF16-80mmF4", exposure=(1, 500), f_number=8.0,
                    iso=160, focal_length=23.0, orientation=8,
                    gps=(46.4102, 8.6437, 1520.5))
    buf = io.BytesIO()
    Image.new("RGB", (32, 24)).save(buf, "JPEG", exif=build_exif(spec))
    a = exif.read_exifread(buf)
    buf.seek(0)
    b = exif.read_pillow(Image.open(buf))
    for info in (a, b):
        assert info.taken_at == "2023-06-14T10:32:05" and info.taken_offset == 120
        assert (info.make, info.model, info.lens) == ("FUJIFILM", "X-T4", "XF16-80mmF4")
        assert info.exposure_time == pytest.approx(0.002)
        assert (info.f_number, info.iso, info.focal_length) == (8.0, 160, 23.0)
        assert info.orientation == 8
        assert info.gps_lat == pytest.approx(46.4102, abs=1e-6)
        assert info.gps_lon == pytest.approx(8.6437, abs=1e-6)
        assert info.gps_alt == pytest.approx(1520.5)
    assert (a.source, b.source) == ("exifread", "pillow")


def test_to_float_handles_every_rational_flavour() -> None:
    assert exif.to_float(Fraction(1, 3)) == pytest.approx(1 / 3)
    assert exif.to_float(IFDRational(1, 0)) is None
    assert exif.to_float(Ratio(5, 0)) is None
    assert exif.to_float("abc") is None
    assert exif.to_float(float("nan")) is None
