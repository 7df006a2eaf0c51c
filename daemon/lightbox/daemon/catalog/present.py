"""Catalog rows as the JSON the control protocol promises, and opaque page cursors.

Kept apart from the SQL (``queries``) so that every method that shows a photo shows it the
same way: absolute path, ``mtime`` as UTC ISO text (from ``mtime_ns``), ``taken_at`` as the
camera's wall-clock time without a zone, ``phash`` as 16 hex digits, ``thumbs`` as names.

Cursors are keyset positions (the sort value and the id of the last row sent), not offsets,
so page N of a large folder costs what page 1 costs and a photo added meanwhile neither
repeats nor hides one. They are opaque to clients (base64url JSON) but checked here: a cursor
from another query, sort or direction, or one that was tampered with, is refused as
``InvalidParams`` naming ``cursor`` rather than producing a wrong page or a database error.
"""

from __future__ import annotations

import array
import base64
import binascii
import datetime as dt
import hashlib
import itertools
import json
import math
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from lightbox.common.api.catalog import PHOTO_FIELDS
from lightbox.common.errors import InvalidParams
from lightbox.common.protocol import Encoded
from lightbox.daemon.catalog import paths
from lightbox.daemon.catalog.types import iso

_U64 = (1 << 64) - 1
THUMB_BITS = (("grid", 1), ("preview", 2))
THUMB_BIT = dict(THUMB_BITS)
_FIELD_SET = frozenset(PHOTO_FIELDS)

# The photo columns every query selects, in this order (see ``queries.PHOTO_COLUMNS``).
PHOTO_COLUMN_NAMES = (
    "id", "source_id", "folder_id", "name", "size", "mtime_ns", "status", "error", "sha256",
    "mime", "format", "width", "height", "orientation", "taken_at", "taken_offset", "make",
    "model", "lens", "exposure_time", "f_number", "iso", "focal_length", "gps_lat", "gps_lon",
    "gps_alt", "phash", "thumbs", "first_seen", "indexed_at", "error_reason",
)


# -- values -------------------------------------------------------------------------------
# Timestamps arrive as datetime objects from PostgreSQL and MariaDB and, on SQLite, as the
# text SQLAlchemy stored ('YYYY-MM-DD HH:MM:SS.ffffff'): queries fetch that text as is
# (``queries.PHOTO_COLUMNS``) because parsing it into a datetime only to print it again is a
# third of the cost of a 500-photo page.
def _text_ok(v: str) -> bool:
    return len(v) >= 19 and v[10] in " T" and v[4] == "-" and v[13] == ":"


def utc_iso(value: dt.datetime | str | None) -> str | None:
    """A stored naive-UTC timestamp as ISO 8601 with milliseconds and a Z."""
    if type(value) is str:
        # SQLite's text as SQLAlchemy writes it, 'YYYY-MM-DD HH:MM:SS.ffffff': sliced
        # without a check of every character (two of these a photo, on every page).
        if len(value) == 26 and value[10] == " " and value[19] == ".":
            return value[:10] + "T" + value[11:23] + "Z"
        if not _text_ok(value):
            return iso(dt.datetime.fromisoformat(value))
        return f"{value[:10]}T{value[11:19]}.{value[20:23].ljust(3, '0')}Z"
    if value is None:
        return None
    if type(value) is _datetime:
        return value.isoformat(timespec="milliseconds") + "Z"
    if isinstance(value, str):
        return utc_iso(str(value))
    return iso(value)


def wall_iso(value: dt.datetime | str | None) -> str | None:
    """A naive wall-clock time as ISO text without a zone: ``2008-05-30T15:56:01``
    (milliseconds only when there are some)."""
    if type(value) is str:
        if len(value) == 19 and value[10] == " ":
            return value[:10] + "T" + value[11:]
        if not _text_ok(value):
            value = dt.datetime.fromisoformat(value)
        else:
            frac = value[20:23]
            if frac.strip("0") and value[19:20] == ".":
                return f"{value[:10]}T{value[11:19]}.{frac.ljust(3, '0')}"
            return f"{value[:10]}T{value[11:19]}"
    elif value is None:
        return None
    elif isinstance(value, str):
        return wall_iso(str(value))
    return value.isoformat(timespec="milliseconds" if value.microsecond else "seconds")


def wall_value(value: dt.datetime | str | None) -> dt.datetime | None:
    """A wall-clock time as a datetime, whichever form the driver gave it in."""
    if value is None or isinstance(value, dt.datetime):
        return value
    return dt.datetime.fromisoformat(value)


_gmtime = time.gmtime
_strftime = time.strftime
# mtime text from tables: a day's date from a small cache (the photos of a folder share few
# days), the time of day and the milliseconds by index; 6x faster than gmtime + strftime,
# which was a quarter of a 500-photo page's shaping (issue 13).
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
_DAY_PREFIX: dict[int, str] = {}
_HOUR_MINUTE = tuple(f"{h:02d}:{m:02d}:" for h in range(24) for m in range(60))
_SECOND = tuple(f"{s:02d}" for s in range(60))
_MILLIS = tuple(f".{ms:03d}Z" for ms in range(1000))


def mtime_iso(mtime_ns: int | None) -> str | None:
    """Nanoseconds since the epoch as UTC ISO 8601 with milliseconds and a Z."""
    if mtime_ns is None:
        return None
    sec, ns = divmod(mtime_ns, 1_000_000_000)
    day, rest = divmod(sec, 86400)
    prefix = _DAY_PREFIX.get(day)
    if prefix is None:
        try:
            prefix = dt.date.fromordinal(_EPOCH_ORDINAL + day).isoformat() + "T"
        except (OverflowError, ValueError):  # before year 1 or after 9999
            return _mtime_iso_slow(sec, ns)
        if len(_DAY_PREFIX) >= 20_000:
            _DAY_PREFIX.clear()
        _DAY_PREFIX[day] = prefix
    minute, second = divmod(rest, 60)
    return prefix + _HOUR_MINUTE[minute] + _SECOND[second] + _MILLIS[ns // 1_000_000]


def _mtime_iso_slow(sec: int, ns: int) -> str | None:
    try:
        return f"{_strftime('%Y-%m-%dT%H:%M:%S', _gmtime(sec))}.{ns // 1_000_000:03d}Z"
    except (OverflowError, OSError, ValueError):
        return None


def phash_hex(value: int | None) -> str | None:
    """The signed int64 stored in the catalog as 16 hex digits (the unsigned hash)."""
    return None if value is None else f"{value & _U64:016x}"


_THUMB_LISTS = tuple(tuple(name for name, bit in THUMB_BITS if mask & bit)
                     for mask in range(1 << len(THUMB_BITS)))
_THUMB_MASK = (1 << len(THUMB_BITS)) - 1


def thumb_names(bits: int | None) -> list[str]:
    return list(_THUMB_LISTS[(bits or 0) & _THUMB_MASK])


_isfinite = math.isfinite
_datetime = dt.datetime


# -- photos -------------------------------------------------------------------------------
def photo(row: Sequence[Any], abs_path: str | None) -> dict[str, Any]:
    """Every field of PHOTO_FIELDS from a row of ``queries.PHOTO_COLUMNS``.

    Written out flat: it runs for every photo of every page (a 500-photo page of
    ``folders.list`` was more than half shaping, issue 13). JSON has no NaN or infinity, so
    a bad EXIF rational becomes null.
    """
    (pid, source_id, folder_id, name, size, mtime_ns, status, error, sha256, mime, fmt, width,
     height, orientation, taken_at, taken_offset, make, model, lens, exposure_time, f_number,
     iso_speed, focal_length, gps_lat, gps_lon, gps_alt, phash, thumbs, first_seen,
     indexed_at, error_reason) = row[:31]
    doc = {
        "id": pid, "name": name, "path": abs_path, "folder_id": folder_id,
        "source_id": source_id, "size": size, "mtime": mtime_iso(mtime_ns), "status": status,
        "error": error, "error_reason": error_reason, "sha256": sha256, "mime": mime,
        "format": fmt, "width": width, "height": height, "orientation": orientation,
        "taken_at": wall_iso(taken_at),
        "taken_offset": taken_offset, "make": make, "model": model, "lens": lens,
        "exposure_time": exposure_time, "f_number": f_number, "iso": iso_speed,
        "focal_length": focal_length, "gps_lat": gps_lat, "gps_lon": gps_lon,
        "gps_alt": gps_alt,
        "phash": None if phash is None else f"{phash & _U64:016x}",
        "thumbs": list(_THUMB_LISTS[(thumbs or 0) & _THUMB_MASK]),
        "first_seen": utc_iso(first_seen), "indexed_at": utc_iso(indexed_at),
    }
    # One test for the six numbers: a NaN or an infinity anywhere makes the sum one (and so
    # may two huge finite ones: then each is looked at, which is all the rare case costs).
    try:
        total = ((exposure_time or 0.0) + (f_number or 0.0) + (focal_length or 0.0)
                 + (gps_lat or 0.0) + (gps_lon or 0.0) + (gps_alt or 0.0))
    except TypeError:
        total = math.nan
    if not _isfinite(total):
        for key in _FLOAT_FIELDS:
            value = doc[key]
            if value is not None and not _isfinite(value):
                doc[key] = None
    return doc


_FLOAT_FIELDS = ("exposure_time", "f_number", "focal_length", "gps_lat", "gps_lon", "gps_alt")


def check_fields(fields: Sequence[str] | None) -> tuple[str, ...] | None:
    """The requested photo fields (id first, no repeats), or None for all of them."""
    if fields is None:
        return None
    unknown = [f for f in fields if f not in _FIELD_SET]
    if unknown:
        raise InvalidParams(
            f"fields: unknown field {unknown[0]!r} (known: {', '.join(PHOTO_FIELDS)})",
            {"errors": {"fields": f"unknown field {unknown[0]!r}"}},
        )
    out = ["id"]
    for f in fields:
        if f not in out:
            out.append(f)
    return tuple(out)


def trim(doc: dict[str, Any], fields: tuple[str, ...] | None) -> dict[str, Any]:
    if fields is None:
        return doc
    return {f: doc[f] for f in fields}


class PathBook:
    """Absolute paths of folders, from one lookup of the folders a page touches."""

    def __init__(self, folders: Mapping[int, tuple[str | None, str]]) -> None:
        # folder id -> absolute path + "/" (None for a source without a local path)
        self._prefix = {fid: None if src is None else paths.join(src, rel).rstrip("/") + "/"
                        for fid, (src, rel) in folders.items()}

    def folder(self, folder_id: int) -> str | None:
        prefix = self._prefix.get(folder_id)
        return None if prefix is None else (prefix.rstrip("/") or "/")

    def photo(self, folder_id: int, name: str) -> str | None:
        prefix = self._prefix.get(folder_id)
        return None if prefix is None else prefix + name


def _finite(v: float | None) -> float | None:
    return v if v is None or _isfinite(v) else None


_I = {name: i for i, name in enumerate(PHOTO_COLUMN_NAMES)}
_PLAIN = ("id", "name", "folder_id", "source_id", "size", "status", "error", "error_reason",
          "sha256", "mime",
          "format", "width", "height", "orientation", "taken_offset", "make", "model", "lens",
          "iso")
_CONVERTED: dict[str, tuple[str, Any]] = {
    "mtime": ("mtime_ns", mtime_iso), "taken_at": ("taken_at", wall_iso),
    "exposure_time": ("exposure_time", _finite), "f_number": ("f_number", _finite),
    "focal_length": ("focal_length", _finite), "gps_lat": ("gps_lat", _finite),
    "gps_lon": ("gps_lon", _finite), "gps_alt": ("gps_alt", _finite),
    "phash": ("phash", phash_hex), "thumbs": ("thumbs", thumb_names),
    "first_seen": ("first_seen", utc_iso), "indexed_at": ("indexed_at", utc_iso),
}


def source_column(field_name: str) -> str:
    """The column a photo field is made from (``path``: folder and name, always read)."""
    if field_name in _CONVERTED:
        return _CONVERTED[field_name][0]
    return "name" if field_name == "path" else field_name


def photos(rows: Iterable[Sequence[Any]], book: PathBook,
           fields: tuple[str, ...] | None) -> list[dict[str, Any]]:
    """Photo dicts for a page; with ``fields``, only those are computed, from rows of
    every column or of those ``queries.photo_columns`` chose (found by the rows' names)."""
    if fields is None:
        return [photo(r, book.photo(r[2], r[3])) for r in rows]
    rows = list(rows)
    if not rows:
        return []
    names = getattr(rows[0], "_fields", None)
    at = _I if names is None else {n: i for i, n in enumerate(names)}
    plain = [(f, at[f]) for f in fields if f in _PLAIN]
    converted = [(f, at[_CONVERTED[f][0]], _CONVERTED[f][1]) for f in fields
                 if f in _CONVERTED]
    with_path = "path" in fields
    fi, ni = at["folder_id"], at["name"]
    out = []
    for r in rows:
        doc = {f: r[i] for f, i in plain}
        for f, i, fn in converted:
            doc[f] = fn(r[i])
        if with_path:
            doc["path"] = book.photo(r[fi], r[ni])
        out.append({f: doc[f] for f in fields} if len(fields) > 1 else doc)
    return out


# -- folders ------------------------------------------------------------------------------
def folder(row: Mapping[Any, Any], *, name: str | None = None) -> dict[str, Any]:
    """A folder entry; ``row`` has the folder's columns plus ``source_path``, ``online``."""
    source_path = row["source_path"]
    return {
        "id": row["id"],
        "name": name if name is not None else row["name"],
        "path": None if source_path is None else paths.join(source_path, row["path"]),
        "source_id": row["source_id"],
        "parent_id": row["parent_id"],
        "photo_count": row["photo_count"],
        "folder_count": row["folder_count"],
        "total_count": row["total_count"],
        "bytes": row["bytes"],
        "online": bool(row["online"]),
        "missing_since": utc_iso(row["missing_since"]),
    }


# -- cursors ------------------------------------------------------------------------------
CURSOR_VERSION = 1


def scope(*parts: Any) -> str:
    """A short fingerprint of what a cursor was made for (method, filters)."""
    text = json.dumps(parts, separators=(",", ":"), sort_keys=True, default=str)
    return hashlib.sha1(text.encode(), usedforsecurity=False).hexdigest()[:12]


@dataclass(frozen=True)
class Position:
    """Where the previous page ended: its last row's sort value and id.

    For ``taken``, ``value`` None means the page ended among the undated photos (which come
    after the dated ones in both directions)."""

    value: Any
    id: int


def encode_cursor(scope_key: str, sort: str, order: str, pos: Position) -> str:
    value = pos.value
    if isinstance(value, dt.datetime):
        value = value.isoformat()
    elif isinstance(value, tuple):
        value = list(value)
    doc = [CURSOR_VERSION, scope_key, sort, order, value, pos.id]
    raw = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _bad_cursor(why: str) -> InvalidParams:
    return InvalidParams(f"cursor: {why}", {"errors": {"cursor": why}})


def decode_cursor(text: str | None, scope_key: str, sort: str, order: str) -> Position | None:
    """The position a cursor names, after checking it belongs to this very query."""
    if text is None:
        return None
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        doc = json.loads(raw)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise _bad_cursor("not a cursor this daemon made (pass next_cursor back as it "
                          "came)") from None
    if not isinstance(doc, list) or len(doc) != 6 or doc[0] != CURSOR_VERSION:
        raise _bad_cursor("not a cursor this daemon made (pass next_cursor back as it came)")
    _, key, c_sort, c_order, value, pid = doc
    if key != scope_key or c_sort != sort or c_order != order:
        raise _bad_cursor("it belongs to another query (the filters, sort or order changed); "
                          "start again without a cursor")
    if not _int64(pid):
        raise _bad_cursor("malformed")
    return Position(_cursor_value(sort, value), pid)


def _int64(v: Any) -> bool:
    """An integer every engine can bind (a larger one overflows the drivers)."""
    return isinstance(v, int) and not isinstance(v, bool) and -(1 << 63) <= v < 1 << 63


def _text(v: Any) -> bool:
    """A string every engine can bind: UTF-8 encodable, without NUL."""
    if not isinstance(v, str) or "\x00" in v:
        return False
    try:
        v.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _cursor_value(sort: str, value: Any) -> Any:
    ok: bool
    if sort == "taken":
        if value is None:
            return None
        if isinstance(value, str):
            try:
                when = dt.datetime.fromisoformat(value)
            except ValueError:
                pass
            else:
                if when.tzinfo is None:  # we never make zoned ones
                    return when
        ok = False
    elif sort == "size":
        ok = _int64(value)
    elif sort == "name":
        ok = _text(value)
    else:  # "groups" (duplicates): [photo count, group key]
        ok = (isinstance(value, list) and len(value) == 2 and _int64(value[0])
              and _text(value[1]))
        if ok:
            return (value[0], value[1])
    if not ok:
        raise _bad_cursor("malformed")
    return value


# -- photos as JSON, column by column -----------------------------------------------------
# A page's JSON written from its columns rather than from a dict per photo: exactly what
# ``orjson.dumps(photos(rows, book, fields))`` gives, in about half the time (issue
# 13: shaping was 1.9 ms of a 500-photo page, more than its SQL). The work is per page and
# per column, in C, not per photo in Python:
# - each column is encoded by one orjson call; a column that is the same on every row (a
#   folder's camera, status, mime, ...; equal bytes, so 1 and 1.0 are not taken for the
#   same) becomes constant text written with its neighbours' keys as one piece;
# - another column's encoding is split at its commas (numbers and null have none; a text
#   column whose values do is encoded value by value);
# - the stored timestamps and the hashes, fixed-width text, are rewritten with strided
#   slices of the column's bytes (one slice per character position, not one per photo);
#   the photos' paths are their folder's encoded prefix and their encoded names;
# - the rows are put together by one ``bytes.join`` over the varying pieces interleaved
#   with the constant ones.
# Whatever a fast path does not take exactly as ``photos`` would (a type the column should
# not hold, a text of another shape) goes the general way, for the column or the page.
_dumps = orjson.dumps
_fsum = math.fsum
_repeat = itertools.repeat
_THUMB_JSON = tuple(_dumps(list(names)) for names in _THUMB_LISTS)
_NULL = b"null"
_FLOAT_SET = frozenset(_FLOAT_FIELDS)
_KEYS = {f: b',"' + f.encode() + b'":' for f in PHOTO_FIELDS}
# A field's JSON for a page: bytes when every photo has the same, else each photo's
# between a constant before and after it.
_Json = bytes | tuple[bytes, list[bytes], bytes]


class _Fallback(Exception):
    """A value the column-wise encoder does not take as ``photos`` would: the page is
    shaped photo by photo instead (same bytes, or the same error)."""


def photos_json(rows: Iterable[Sequence[Any]], book: PathBook,
                fields: tuple[str, ...] | None) -> Encoded | list[dict[str, Any]]:
    """``photos(rows, book, fields)`` already written as the JSON orjson would make of it,
    built column-wise (``protocol.dumps`` puts it in the reply as it is); the dicts of
    ``photos`` themselves when some value is one this does not take as ``photos`` would,
    so that the reply is made, or fails, exactly as it was."""
    rows = list(rows)
    if not rows:
        return []
    try:
        data = _photos_json(rows, book, fields)
    except (_Fallback, TypeError):
        return photos(rows, book, fields)
    return Encoded(data, lambda: photos(rows, book, fields))


def _photos_json(rows: list[Sequence[Any]], book: PathBook,
                 fields: tuple[str, ...] | None) -> bytes:
    n = len(rows)
    names = getattr(rows[0], "_fields", None)
    at = _I if names is None else {c: i for i, c in enumerate(names)}
    columns = list(zip(*rows, strict=True))
    pieces: list[Iterable[bytes]] = []
    pending = b"{"  # constant text (keys, constant values) not placed yet
    bare: list[Any] = []  # the names' encodings without their quotes, once
    for f in (PHOTO_FIELDS if fields is None else fields):
        key = _KEYS[f] if pieces or len(pending) > 1 else _KEYS[f][1:]
        if f == "path":
            value = _paths_json(book, columns[at["folder_id"]], columns[at["name"]], bare)
        elif f == "name":
            value = _names_json(columns[at["name"]], bare)
        else:
            value = _field_json(f, columns[at[source_column(f)]])
        if isinstance(value, bytes):
            pending += key + value
        else:
            before, parts, after = value
            pieces += (_repeat(pending + key + before, n), parts)
            pending = after
    pieces.append(_repeat(pending + b"},", n))
    body = b"".join(itertools.chain.from_iterable(zip(*pieces, strict=True)))
    return b"[" + body[:-1] + b"]"


def _same(values: Sequence[Any]) -> bool:
    """Every value the same, down to its JSON (1, 1.0 and True are equal in Python)."""
    first = values[0]
    n = len(values)
    # The last value first, compared as ``count`` compares (identity, then ==): most
    # columns of a page vary (ids, names, sizes, times, hashes) and differ there, which
    # spares a full ``count`` of each (a third of a millisecond a 500-photo page).
    last = values[-1]
    if not (last is first or last == first) or values.count(first) != n:
        return False
    if first is None or type(first) is str:  # only a str equals a str
        return True
    try:
        one = _dumps(first)
        return _dumps(values) == b"[" + (one + b",") * (n - 1) + one + b"]"
    except TypeError:  # beyond 64 bits, say: a conversion may take it (mtime_iso does)
        return False


def _field_json(f: str, values: Sequence[Any]) -> _Json:
    if _same(values):
        return _one_json(f, values[0])
    if f in _FLOAT_SET:
        _numbers(values)
        return b"", _encoded(values), b""
    convert = _COLUMN_JSON.get(f)
    return b"", (_encoded(values) if convert is None else convert(values)), b""


def _one_json(f: str, value: Any) -> bytes:
    if f in _FLOAT_SET:
        _numbers((value,))
        return _dumps(value)
    if f == "thumbs":
        return _THUMB_JSON[(value or 0) & _THUMB_MASK]
    if f == "phash":
        return _dumps(phash_hex(value))
    convert = _TEXT.get(f)
    return _dumps(value if convert is None else convert(value))


def _numbers(values: Sequence[Any]) -> None:
    # orjson writes NaN and infinities as null, as ``photo`` does; ``fsum`` refuses what is
    # not a number (on which ``photo`` fails too: the fallback fails the same way).
    try:
        _fsum(filter(None, values))
    except TypeError:
        raise _Fallback from None
    except (OverflowError, ValueError):  # huge finite values, or inf - inf: still numbers
        pass


def _encoded(values: Sequence[Any]) -> list[bytes]:
    """Each value's JSON, from one orjson call when no value holds a comma."""
    parts = _dumps(values)[1:-1].split(b",")
    if len(parts) != len(values):
        parts = [_dumps(v) for v in values]
    return parts


def _bare_names(names: Sequence[Any], bare: list[Any]) -> list[bytes] | None:
    """The names' JSON without the quotes, when every name is text (cached in ``bare``).
    Split at ``","``: inside a JSON string a quote is escaped, so that sequence is a
    boundary or (``\\","``) a piece cut off after a backslash. The count of pieces alone
    does not tell: an empty name beside the name ``",`` (a quote, a comma) makes as many
    pieces as names, cut in the wrong places. So a backslash before a ``","`` (an
    escaped quote, or a name that ends with one) sends every name the slow way."""
    if not bare:
        found = None
        if set(map(type, names)) == {str}:
            blob = _dumps(names)[2:-2]
            found = blob.split(b'","')
            if len(found) != len(names) or b'\\","' in blob:
                found = [_dumps(v)[1:-1] for v in names]
        bare.append(found)
    return bare[0]  # type: ignore[no-any-return]


def _names_json(names: Sequence[Any], bare: list[Any]) -> _Json:
    if _same(names):
        return _dumps(names[0])
    inner = _bare_names(names, bare)
    return (b"", _encoded(names), b"") if inner is None else (b'"', inner, b'"')


def _paths_json(book: PathBook, folder_ids: Sequence[Any], names: Sequence[Any],
                bare: list[Any]) -> _Json:
    """The photos' absolute paths. For one folder (every ``folders.list`` page) the
    folder's encoded prefix and each photo's encoded name: JSON escapes character by
    character, so the two encodings joined are the encoding of the path."""
    first = folder_ids[0]
    if folder_ids.count(first) == len(folder_ids) and type(first) is int:
        prefix = book._prefix.get(first)
        if prefix is None:
            return _NULL
        inner = _bare_names(names, bare)
        if inner is not None:
            return b'"' + _dumps(prefix)[1:-1], inner, b'"'
    return b"", _encoded(list(map(book.photo, folder_ids, names))), b""


def _strided(values: Sequence[Any], width: int, plan: Sequence[Any],
             checks: Sequence[tuple[int, bytes]]) -> list[bytes] | None:
    """Fixed-width ASCII texts rewritten by character position, or None when some value
    is not one (the caller then converts value by value).

    ``values`` (None among them stays null) must encode as ``"``, ``width`` ASCII
    characters and ``"``, with no escape, and have the characters ``checks`` names (index
    in the text, the byte expected there); ``plan`` is the output text, character by
    character: an int is the index of a character of the value, bytes a constant."""
    texts = values if None not in values else [v for v in values if v is not None]
    n = len(texts)
    if not n:
        return None
    blob = _dumps(texts)
    step = width + 3  # the two quotes and the comma
    # Commas only at every step: then every value has exactly width + 2 bytes.
    if (len(blob) != step * n + 1 or not blob.isascii() or b"\\" in blob
            or blob.count(b",") != n - 1 or blob[step:-1:step] != b"," * (n - 1)
            or blob[1::step] != b'"' * n):
        return None
    for index, char in checks:
        if blob[2 + index::step] != char * n:
            return None
    out_step = len(plan) + 3
    out = bytearray(out_step * n)
    out[0::out_step] = b'"' * n
    for pos, what in enumerate(plan, start=1):
        out[pos::out_step] = what * n if type(what) is bytes else blob[2 + what::step]
    out[out_step - 2::out_step] = b'"' * n
    out[out_step - 1::out_step] = b"," * n
    parts = bytes(out[:-1]).split(b",")
    if texts is values:
        return parts
    it = iter(parts)
    return [_NULL if v is None else next(it) for v in values]


# The text SQLite holds, 'YYYY-MM-DD HH:MM:SS' or 'YYYY-MM-DD HH:MM:SS.ffffff', as
# utc_iso and wall_iso's fast paths take it (the checks are theirs).
_UTC_26 = ((*range(10), b"T", *range(11, 23), b"Z"), ((10, b" "), (19, b".")))
_TEXT_OK = ((4, b"-"), (10, b" "), (13, b":"))
_UTC_19 = ((*range(10), b"T", *range(11, 19), *(bytes([c]) for c in b".000Z")), _TEXT_OK)
_WALL_19 = ((*range(10), b"T", *range(11, 19)), ((10, b" "),))
# Whole seconds (what cameras record), shown without milliseconds.
_WALL_26 = ((*range(10), b"T", *range(11, 19)),
            (*_TEXT_OK, (19, b"."), (20, b"0"), (21, b"0"), (22, b"0")))


def _stamps(values: Sequence[Any], shapes: Sequence[tuple[int, Any]],
            convert: Any) -> list[bytes]:
    for width, (plan, checks) in shapes:
        done = _strided(values, width, plan, checks)
        if done is not None:
            return done
    return _encoded(list(map(convert, values)))


def _utc_json(values: Sequence[Any]) -> list[bytes]:
    return _stamps(values, ((26, _UTC_26), (19, _UTC_19)), utc_iso)


def _wall_json(values: Sequence[Any]) -> list[bytes]:
    return _stamps(values, ((19, _WALL_19), (26, _WALL_26)), wall_iso)


_SWAP = sys.byteorder == "little"


def _phash_json(values: Sequence[Any]) -> list[bytes]:
    """16 hex digits of the int64's bits: the machine's own two's complement, in one
    ``hexlify``, cut into the values by strided slices."""
    ints = values if None not in values else [v for v in values if v is not None]
    try:
        bits = array.array("q", ints)
    except (TypeError, OverflowError):  # not int64s: as phash_hex does, value by value
        return _encoded([phash_hex(v) for v in values])
    if _SWAP:
        bits.byteswap()
    digits = binascii.hexlify(bits.tobytes())
    n = len(ints)
    out = bytearray(19 * n)
    out[0::19] = out[17::19] = b'"' * n
    out[18::19] = b"," * n
    for k in range(16):
        out[1 + k::19] = digits[k::16]
    parts = bytes(out[:-1]).split(b",")
    if ints is values:
        return parts
    it = iter(parts)
    return [_NULL if v is None else next(it) for v in values]


def _thumbs_json(values: Sequence[Any]) -> list[bytes]:
    return [_THUMB_JSON[(v or 0) & _THUMB_MASK] for v in values]


def _mtime_json(values: Sequence[Any]) -> list[bytes]:
    return _encoded(list(map(mtime_iso, values)))


_TEXT: dict[str, Any] = {"mtime": mtime_iso, "taken_at": wall_iso, "first_seen": utc_iso,
                         "indexed_at": utc_iso}
_COLUMN_JSON: dict[str, Any] = {
    "mtime": _mtime_json, "taken_at": _wall_json, "first_seen": _utc_json,
    "indexed_at": _utc_json, "phash": _phash_json, "thumbs": _thumbs_json}
