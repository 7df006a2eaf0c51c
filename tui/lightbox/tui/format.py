"""Human-readable values for the screens: sizes, dates, durations, exposure settings.

One place, so the grid, the list, the metadata panel and the jobs screen say "1.2 MB" and
"14 Jun 2023 10:13" the same way. Nothing here reads the clock unless asked to (``ago``), so
snapshot tests stay stable.
"""

from __future__ import annotations

import datetime as dt
from fractions import Fraction
from typing import Any

_UNITS = ("B", "kB", "MB", "GB", "TB")  # SI, as the CLI says them
TIMES = "\u00d7"  # the multiplication sign of 4032x3024
CRUMB = " \u203a "  # the single angle quote between breadcrumb parts
DASH = "\u2013"


def size(n: int | None) -> str:
    if n is None:
        return "—"
    value = float(n)
    for unit in _UNITS:
        if value < 1000 or unit == _UNITS[-1]:
            if unit == "B":
                return f"{int(value)} B"
            return f"{value:.1f} {unit}" if value < 100 else f"{value:.0f} {unit}"
        value /= 1000
    return f"{n} B"  # pragma: no cover


def count(n: int | None, noun: str = "photo") -> str:
    n = n or 0
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def parse_iso(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def taken(text: str | None, offset: int | None = None, *, seconds: bool = False) -> str:
    """The camera's wall-clock time, as the camera meant it (no zone conversion)."""
    when = parse_iso(text)
    if when is None:
        return "—"
    out = when.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")
    if offset is not None:
        sign = "+" if offset >= 0 else "-"
        h, m = divmod(abs(offset), 60)
        out += f" {sign}{h:02d}:{m:02d}"
    return out


def utc_local(text: str | None) -> str:
    """A daemon timestamp (UTC) in this machine's local time."""
    when = parse_iso(text)
    if when is None:
        return "—"
    return when.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def duration(seconds: float | None) -> str:
    if seconds is None or seconds < 0:
        return "—"
    s = round(seconds)
    if s < 60:
        return f"{seconds:.1f}s" if seconds < 10 else f"{s}s"
    m, s = divmod(s, 60)
    if m < 60:
        return f"{m}m{s:02d}s"
    h, m = divmod(m, 60)
    return f"{h}h{m:02d}m"


def between(start: str | None, end: str | None) -> float | None:
    a, b = parse_iso(start), parse_iso(end)
    return None if a is None or b is None else (b - a).total_seconds()


def dims(width: int | None, height: int | None) -> str:
    return f"{width}{TIMES}{height}" if width and height else "—"


def camera(photo: dict[str, Any]) -> str:
    make = (photo.get("make") or "").strip()
    model = (photo.get("model") or "").strip()
    if make and model.lower().startswith(make.lower().split()[0]):
        return model
    return " ".join(p for p in (make, model) if p) or "—"


def exposure(seconds: float | None) -> str:
    if not seconds:
        return "—"
    if seconds >= 1:
        return f"{seconds:g} s"
    frac = Fraction(seconds).limit_denominator(16000)
    return f"1/{round(1 / seconds)} s" if frac.numerator != 1 else f"1/{frac.denominator} s"


def number(value: float | None, prefix: str = "", suffix: str = "") -> str:
    return "—" if value is None else f"{prefix}{value:g}{suffix}"


def gps(lat: float | None, lon: float | None, alt: float | None = None) -> str:
    if lat is None or lon is None:
        return "—"
    text = (f"{abs(lat):.5f}°{'N' if lat >= 0 else 'S'} "
            f"{abs(lon):.5f}°{'E' if lon >= 0 else 'W'}")
    if alt is not None:
        text += f" {alt:.0f} m"
    return text


def rate(per_second: float | None, unit: str = "/s") -> str:
    if not per_second:
        return "—"
    return f"{per_second:.1f}{unit}" if per_second < 10 else f"{per_second:.0f}{unit}"


def tail(text: str, width: int) -> str:
    """The end of ``text`` in ``width`` cells (a path's useful part is its end)."""
    if len(text) <= width:
        return text
    return "…" + text[len(text) - width + 1:] if width > 1 else text[-width:]


def truncate(text: str, width: int) -> str:
    """Fit ``text`` into ``width`` cells, keeping both ends (names end in the useful part)."""
    if width <= 0:
        return ""
    if len(text) <= width:
        return text
    if width <= 3:
        return text[:width]
    head = (width - 1) // 2
    tail = width - 1 - head
    return text[:head] + "…" + text[len(text) - tail:]


def refresh_call(folder: dict[str, Any]) -> tuple[str, dict[str, Any], str]:
    """How to bring a folder up to date: a bucket's is synced (``sources.sync``: a bucket
    is listed whole, a prefix costs the same), a local one rescanned (``library.scan``).
    Returns (method, params, the verb to show)."""
    path = str(folder.get("path") or "")
    if path.startswith("s3://"):
        return "sources.sync", {"source": folder["source_id"]}, "syncing"
    return "library.scan", {"path": path}, "rescanning"
