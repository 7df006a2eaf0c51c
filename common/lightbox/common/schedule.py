"""Cron schedules of backup targets: validation, a plain-words explanation, next run times.

cronsim (not croniter) evaluates the expressions: it has no dependencies, ships type hints,
and follows Debian cron on daylight-saving changes, which is what a person who writes
``30 2 * * *`` expects: a run at a wall-clock time the spring change skips happens once, at
the first minute that exists after it, and a time the autumn change repeats runs once (the
first of the two), not twice. Expressions with ``*`` in the minute or hour field (``*/15 * * *
*``) run on the real clock instead, so they neither skip nor double an interval.

Times are computed in the target's time zone (an IANA name, default the daemon's local
zone) and returned as aware datetimes; the daemon stores and compares them in UTC. This
module lives in ``common`` so that the CLI and the TUI can show the next runs of an
expression before it is saved, with the same rules as the daemon.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Iterator

from cronsim import CronSim, CronSimError

# Shortcuts people write in crontabs.
ALIASES = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}


def expand(expr: str) -> str:
    text = " ".join(expr.split())
    return ALIASES.get(text.lower(), text)


def zone(name: str | None) -> dt.tzinfo:
    """The named IANA zone, or the machine's local zone for None/"" /"local"."""
    if not name or name == "local":
        local = dt.datetime.now().astimezone().tzinfo
        assert local is not None
        try:  # prefer the named zone (DST-aware) over a fixed offset
            with open("/etc/timezone") as f:
                return zoneinfo.ZoneInfo(f.read().strip())
        except (OSError, ValueError, zoneinfo.ZoneInfoNotFoundError):
            pass
        try:
            import os

            link = os.readlink("/etc/localtime")
            return zoneinfo.ZoneInfo(link.split("zoneinfo/", 1)[1])
        except (OSError, IndexError, ValueError, zoneinfo.ZoneInfoNotFoundError):
            return local
    try:
        return zoneinfo.ZoneInfo(name)
    except (ValueError, zoneinfo.ZoneInfoNotFoundError):
        raise ValueError(f"unknown time zone {name!r} (an IANA name like Europe/Berlin)") \
            from None


def problem(expr: str) -> str | None:
    """Why ``expr`` is not a usable 5-field cron expression, or None (a Field check_fn)."""
    text = expand(expr)
    if len(text.split()) != 5:
        return ("must have five fields (minute hour day-of-month month day-of-week) or be "
                "one of " + ", ".join(ALIASES))
    try:
        it = CronSim(text, dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
        next(it)
    except CronSimError as exc:
        return f"not a valid cron expression: {exc}"
    except StopIteration:
        return "never matches a date"
    return None


def zone_problem(name: str) -> str | None:
    try:
        zone(name)
    except ValueError as exc:
        return str(exc)
    return None


def runs(expr: str, after: dt.datetime, tz: str | None = None) -> Iterator[dt.datetime]:
    """Run times strictly after ``after`` (aware, or naive UTC), in the zone ``tz``."""
    if after.tzinfo is None:
        after = after.replace(tzinfo=dt.UTC)
    start = after.astimezone(zone(tz))
    for when in CronSim(expand(expr), start):
        # cronsim's fixed-up local times (DST) carry the zone: compare in UTC.
        if when.astimezone(dt.UTC) > after.astimezone(dt.UTC):
            yield when


def next_runs(expr: str, after: dt.datetime, tz: str | None = None,
              count: int = 5) -> list[dt.datetime]:
    out: list[dt.datetime] = []
    for when in runs(expr, after, tz):
        out.append(when)
        if len(out) >= count:
            break
    return out


def next_run_utc(expr: str, after: dt.datetime, tz: str | None = None) -> dt.datetime | None:
    """The next run as a naive UTC datetime (as the catalog stores times)."""
    for when in runs(expr, after, tz):
        return when.astimezone(dt.UTC).replace(tzinfo=None)
    return None


def explain(expr: str) -> str:
    try:
        return CronSim(expand(expr), dt.datetime(2026, 1, 1)).explain()
    except Exception:  # explanation is a courtesy; the expression was validated already
        return expand(expr)
