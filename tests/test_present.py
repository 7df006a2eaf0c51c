"""Photo rows as JSON (``catalog.present``), the hot path of every page (issue 13): the
fast paths for SQLite's stored text must give exactly what the general conversions give
for the same instant, whatever form the driver returns it in (text from SQLite, datetime
objects from PostgreSQL and MariaDB), and JSON must never get a NaN or an infinity."""

from __future__ import annotations

import datetime as dt
import json
import math
import time
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from lightbox.common.api.catalog import PHOTO_FIELDS
from lightbox.daemon.catalog import present

instants = st.datetimes(min_value=dt.datetime(1000, 1, 1), max_value=dt.datetime(9999, 12, 31))


def sqlite_text(value: dt.datetime) -> str:
    """As SQLAlchemy's SQLite DateTime stores it."""
    return value.strftime("%Y-%m-%d %H:%M:%S.%f")


@given(instants)
@settings(max_examples=400, deadline=None)
def test_timestamps_read_the_same_from_text_and_from_datetimes(value: dt.datetime) -> None:
    expected_utc = value.isoformat(timespec="milliseconds") + "Z"
    assert present.utc_iso(value) == expected_utc
    assert present.utc_iso(sqlite_text(value)) == expected_utc
    assert present.utc_iso(sqlite_text(value).replace(" ", "T")) == expected_utc
    wall = value.isoformat(timespec="milliseconds" if value.microsecond else "seconds")
    assert present.wall_iso(value) == wall
    # A wall time shows milliseconds only when it has some, whatever the stored text.
    shown = value.isoformat(timespec="milliseconds")
    if shown.endswith(".000"):
        shown = shown[:-4]
    assert present.wall_iso(sqlite_text(value)) == shown
    if not value.microsecond:
        assert present.wall_iso(value.strftime("%Y-%m-%d %H:%M:%S")) == shown
        assert present.utc_iso(value.strftime("%Y-%m-%d %H:%M:%S")) == expected_utc


@given(st.integers(min_value=-30_610_224_000 * 10**9, max_value=253_402_300_799 * 10**9 + 999))
@settings(max_examples=400, deadline=None)
def test_mtime_is_the_utc_time_of_the_nanoseconds(ns: int) -> None:
    sec, sub = divmod(ns, 1_000_000_000)
    expected = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(sec)) + f".{sub // 10**6:03d}Z"
    assert present.mtime_iso(ns) == expected


def test_mtime_out_of_range_is_null_not_an_error() -> None:
    assert present.mtime_iso(None) is None
    for ns in (10**40, -(10**40)):
        assert present.mtime_iso(ns) is None


def row(**over: Any) -> tuple[Any, ...]:
    base: dict[str, Any] = dict(
        id=7, source_id=1, folder_id=3, name="a.jpg", size=100, mtime_ns=1_500_000_000 * 10**9,
        status="ok", error=None, sha256="ab" * 32, mime="image/jpeg", format="JPEG",
        width=4000, height=3000, orientation=1, taken_at="2008-05-30 15:56:01.000000",
        taken_offset=120, make="Canon", model="EOS", lens=None, exposure_time=0.004,
        f_number=2.8, iso=100, focal_length=35.0, gps_lat=48.85, gps_lon=2.35, gps_alt=35.0,
        phash=-5, thumbs=3, first_seen="2010-01-01 00:00:00.000000",
        indexed_at="2010-01-12 13:41:53.250000", error_reason=None)
    base.update(over)
    return tuple(base[n] for n in present.PHOTO_COLUMN_NAMES)


numbers = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True),
                    st.integers(min_value=-10**6, max_value=10**6))


@given(st.lists(numbers, min_size=6, max_size=6))
@settings(max_examples=300, deadline=None)
def test_no_nan_or_infinity_reaches_json_and_finite_numbers_stay(values: list[Any]) -> None:
    keys = ("exposure_time", "f_number", "focal_length", "gps_lat", "gps_lon", "gps_alt")
    doc = present.photo(row(**dict(zip(keys, values, strict=True))), "/p/a.jpg")
    for key, value in zip(keys, values, strict=True):
        if value is None or not math.isfinite(value):
            assert doc[key] is None
        else:
            assert doc[key] == value
    json.dumps(doc, allow_nan=False)


def test_a_photo_has_every_field_in_order_from_text_or_datetimes() -> None:
    text = present.photo(row(), "/p/a.jpg")
    objects = present.photo(row(
        taken_at=dt.datetime(2008, 5, 30, 15, 56, 1), first_seen=dt.datetime(2010, 1, 1),
        indexed_at=dt.datetime(2010, 1, 12, 13, 41, 53, 250000)), "/p/a.jpg")
    assert list(text) == list(PHOTO_FIELDS)
    assert text == objects
    assert text["taken_at"] == "2008-05-30T15:56:01"
    assert text["first_seen"] == "2010-01-01T00:00:00.000Z"
    assert text["indexed_at"] == "2010-01-12T13:41:53.250Z"
    assert text["mtime"] == "2017-07-14T02:40:00.000Z"
    assert text["phash"] == "fffffffffffffffb" and text["thumbs"] == ["grid", "preview"]
    # The page form (with ``fields``) shows the same values.
    book = present.PathBook({3: ("/p", "")})
    fields = present.check_fields(["taken_at", "mtime", "first_seen", "gps_alt", "path"])
    [part] = present.photos([row()], book, fields)
    assert part == {f: text[f] for f in fields or ()}
