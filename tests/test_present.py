"""Photo rows as JSON (``catalog.present``), the hot path of every page (issue 13): the
fast paths for SQLite's stored text must give exactly what the general conversions give
for the same instant, whatever form the driver returns it in (text from SQLite, datetime
objects from PostgreSQL and MariaDB), and JSON must never get a NaN or an infinity. A page
written as JSON column by column (``photos_json``, what folders.list and photos.search
send) must be byte for byte the page of ``photos`` encoded."""

from __future__ import annotations

import collections
import datetime as dt
import json
import math
import time
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lightbox.common import protocol
from lightbox.common.api.catalog import PHOTO_FIELDS
from lightbox.common.protocol import Encoded
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


# -- a page written column by column (photos_json) is photos() encoded, byte for byte ------
# Text with what JSON escapes, what splits a column's encoding (commas, '","'), non-ASCII
# and the characters the timestamp paths look for.
_TRICKY = st.text(alphabet=st.sampled_from(
    ['a', 'Z', '0', ' ', ',', '"', '\\', '/', '\n', '\x00', '\x1f', 'é', '日', '😀', '\u2028',
     '-', ':', '.', 'T', '%']), max_size=12)
_STAMP_FORMS = ("%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M:%S.%f", "%Y-%m-%dT%H:%M:%S",
                "%Y-%m-%dT%H:%M:%S.%f")


def _stamps() -> Any:
    """Stored timestamps in every form a driver gives: text with and without fractions,
    either separator (SQLite), datetimes (PostgreSQL, MariaDB), NULL; a column mostly in
    one form (as a catalog's are), so that the column-wise paths meet whole columns."""
    @st.composite
    def column(draw: st.DrawFn, n: int) -> list[Any]:
        form = draw(st.integers(0, len(_STAMP_FORMS) + 1))
        values: list[Any] = []
        for _ in range(n):
            when = draw(instants)
            whole = draw(st.sampled_from(["s", "ms", "us"]))
            if whole == "s":
                when = when.replace(microsecond=0)
            elif whole == "ms":
                when = when.replace(microsecond=when.microsecond // 1000 * 1000)
            kind = form if draw(st.integers(0, 9)) else draw(st.integers(0, 6))
            if kind == len(_STAMP_FORMS):
                values.append(when)
            elif kind > len(_STAMP_FORMS):
                values.append(None)
            else:
                values.append(when.strftime(_STAMP_FORMS[kind]))
        return values
    return column


_floats = st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True),
                    st.sampled_from([0.0, -0.0, 1.0, 2.8, 1e16, 5e-324]),
                    st.integers(-3, 3))
_small = st.one_of(st.none(), st.integers(-3, 8), st.sampled_from([1.0, 1, 2**31]))
# Equal in Python, not in JSON.
_EQUAL = st.sampled_from([(1, 1.0), (0.0, -0.0), (0, -0.0), (2, 2.0)])
_COLUMN_VALUES: dict[str, Any] = {
    "id": st.integers(1, 2**63 - 1), "source_id": st.integers(1, 3),
    "folder_id": st.sampled_from([3, 4, 5]),
    "name": st.one_of(_TRICKY, st.sampled_from(["IMG_0001.JPG", "a,b.jpg", '"', '","'])),
    "size": st.integers(0, 2**63 - 1),
    "mtime_ns": st.one_of(st.none(), st.integers(-(2**62), 2**63 - 1),
                          st.integers(1_500_000_000 * 10**9, 1_500_000_100 * 10**9),
                          st.just(10**40)),
    "status": st.sampled_from(["ok", "error", "pending", "missing"]),
    "error": st.one_of(st.none(), _TRICKY), "sha256": st.one_of(st.none(), st.just("ab" * 32)),
    "mime": st.one_of(st.none(), st.just("image/jpeg"), _TRICKY),
    "format": st.one_of(st.none(), st.just("JPEG")),
    "width": _small, "height": _small, "orientation": _small, "taken_offset": _small,
    "iso": _small, "taken_at": _stamps(),
    "make": st.one_of(st.none(), st.just("Canon"), _TRICKY),
    "model": st.one_of(st.none(), _TRICKY), "lens": st.one_of(st.none(), _TRICKY),
    "exposure_time": _floats, "f_number": _floats, "focal_length": _floats,
    "gps_lat": _floats, "gps_lon": _floats, "gps_alt": _floats,
    "phash": st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1)),
    "thumbs": st.one_of(st.none(), st.integers(0, 7)),
    "first_seen": _stamps(), "indexed_at": _stamps(),
    "error_reason": st.one_of(st.none(), st.sampled_from(["corrupt", "timeout"])),
}
# Folder 3 has a path with what JSON escapes, 4 a source without a local path.
_BOOK = present.PathBook({3: ('/p/日 "x",\\y', "a, b"), 4: (None, "c"), 5: ("/", "")})


_NUMBERS = frozenset({"width", "height", "orientation", "taken_offset", "iso", "size",
                      "exposure_time", "f_number", "focal_length", "gps_lat", "gps_lon",
                      "gps_alt", "thumbs", "mtime_ns", "phash"})


@st.composite
def _page(draw: st.DrawFn) -> list[tuple[Any, ...]]:
    """Rows of a page, each column constant (as a folder's camera usually is), drawn per
    row, from two values, or (numbers) of values equal in Python but not in JSON, so that
    every way of writing a column is met, and mixes of them."""
    n = draw(st.integers(1, 25))
    columns = []
    for name in present.PHOTO_COLUMN_NAMES:
        values = _COLUMN_VALUES[name]
        mode = draw(st.sampled_from(["same", "vary", "two", "equal"]))
        if isinstance(values, st.SearchStrategy):
            if mode == "same":
                columns.append([draw(values)] * n)
                continue
            if mode == "equal" and name in _NUMBERS:
                pair = draw(_EQUAL)
            elif mode in ("two", "equal"):
                pair = (draw(values), draw(values))
            else:
                columns.append([draw(values) for _ in range(n)])
                continue
            columns.append([pair[draw(st.integers(0, 1))] for _ in range(n)])
        else:
            column = draw(values(n))
            columns.append([column[0]] * n if mode == "same" else column)
    return list(zip(*columns, strict=True))


def _same_reply(rows: Any, fields: tuple[str, ...] | None) -> None:
    try:
        expected = present.photos(rows, _BOOK, fields)
    except Exception as exc:  # photos() fails on it: so must the page
        with pytest.raises(type(exc)):
            present.photos_json(rows, _BOOK, fields)
        return
    made = present.photos_json(rows, _BOOK, fields)
    # The column-wise writer took it (no fallback to photos()) and wrote the same bytes,
    # and the standard library's fallback (an id beyond 64 bits) writes the same values.
    assert isinstance(made, Encoded)
    assert protocol.dumps({"photos": made}) == protocol.dumps({"photos": expected})
    big = {"id": 2**70, "photos": made}
    assert protocol.dumps(big) == protocol.dumps({"id": 2**70, "photos": expected})


@given(_page())
@settings(max_examples=600, deadline=None)
def test_a_page_written_by_columns_is_the_same_bytes_as_photo_by_photo(
        rows: list[tuple[Any, ...]]) -> None:
    _same_reply(rows, None)


@given(_page(), st.lists(st.sampled_from(PHOTO_FIELDS), min_size=1, max_size=10))
@settings(max_examples=300, deadline=None)
def test_a_page_of_some_fields_is_the_same_bytes_from_rows_of_those_columns(
        rows: list[tuple[Any, ...]], asked: list[str]) -> None:
    fields = present.check_fields(asked)
    assert fields is not None
    _same_reply(rows, fields)
    # Rows of only the columns those fields need (queries.photo_columns), found by name.
    need = [c for c in present.PHOTO_COLUMN_NAMES
            if c in {"id", "folder_id", "name", *map(present.source_column, fields)}]
    Pruned = collections.namedtuple("Pruned", need)  # type: ignore[misc]
    index = [present.PHOTO_COLUMN_NAMES.index(c) for c in need]
    _same_reply([Pruned(*(r[i] for i in index)) for r in rows], fields)


def test_a_value_photos_cannot_shape_fails_the_same_way() -> None:
    with pytest.raises(TypeError):
        present.photos([row(f_number="2.8")], _BOOK, None)
    with pytest.raises(TypeError):
        present.photos_json([row(f_number="2.8"), row()], _BOOK, None)
    # orjson refuses bytes: the dicts go to the reply, which reports it as before.
    odd = present.photos_json([row(mime=b"image/jpeg")], _BOOK, None)
    assert odd == present.photos([row(mime=b"image/jpeg")], _BOOK, None)
    assert present.photos_json([], _BOOK, None) == []


def test_the_fast_paths_are_taken_for_what_sqlite_stores() -> None:
    """A folder as the scanner writes it: timestamps as SQLite's text (whole seconds and
    microseconds), one camera; every column goes through its column-wise path."""
    rows = [row(id=i, name=f"IMG_{i:04d}.JPG", mtime_ns=1_500_000_000 * 10**9 + i * 10**7,
                taken_at=f"2008-05-30 15:56:{i % 60:02d}", phash=i * 7919 - 2**62,
                indexed_at=f"2010-01-12 13:41:{i % 60:02d}.{i:06d}",
                first_seen="2010-01-01 00:00:00") for i in range(1, 200)]
    for name in ("taken_at", "indexed_at", "first_seen"):
        values = [r[present.PHOTO_COLUMN_NAMES.index(name)] for r in rows]
        for width, shape in ((26, present._UTC_26), (19, present._UTC_19),
                             (19, present._WALL_19)):
            if len(values[0]) == width and (name == "taken_at") == (shape is present._WALL_19):
                assert present._strided(values, width, *shape) is not None, name
    made = present.photos_json(rows, _BOOK, None)
    assert isinstance(made, Encoded)
    assert protocol.dumps(made) == protocol.dumps(present.photos(rows, _BOOK, None))


def test_a_constant_column_is_found_as_count_finds_it() -> None:
    """``_same`` looks at the last value before counting: it must agree with the count
    (identity, then ==) and with the JSON check, whatever the last value is."""
    nan = math.nan
    assert present._same([nan, nan, nan])  # the same object: equal as count sees it
    assert not present._same([nan, 1.0, nan])
    assert not present._same([nan, float("nan")])  # two NaNs: not equal
    assert not present._same([1, 1.0])  # equal in Python, not in JSON
    assert not present._same([True, 1])
    assert not present._same(["a", "b", "a"])  # differs in the middle only
    assert not present._same(["a", "a", "b"])
    assert present._same(["a", "a", "a"]) and present._same([None, None]) and present._same([7])
    photos = [row(id=i, make="Canon", model=None, iso=100 if i % 2 else 200) for i in (1, 2, 3)]
    made = present.photos_json(photos, _BOOK, None)
    assert isinstance(made, Encoded)
    assert protocol.dumps(made) == protocol.dumps(present.photos(photos, _BOOK, None))


def test_names_whose_json_holds_the_separator_are_written_as_they_are() -> None:
    """A name ``",`` beside empty ones: split at ``","`` the page's names give as many
    pieces as names, cut in the wrong places (found by the property test above); the
    paths and names must still be those of ``photos``. Also a name ending with a
    backslash, and one that is only a quote."""
    for names in (["", "", '",', ""], ['",', ""], ["a\\", "b"], ['"', '"', "c"]):
        rows = [row(id=i + 1, name=n) for i, n in enumerate(names)]
        made = present.photos_json(rows, _BOOK, None)
        assert isinstance(made, Encoded)
        assert protocol.dumps(made) == protocol.dumps(present.photos(rows, _BOOK, None)), names
        for fields in (("id", "name"), ("id", "path")):
            made = present.photos_json(rows, _BOOK, fields)
            assert protocol.dumps(made) == protocol.dumps(present.photos(rows, _BOOK, fields))
