"""Helpers for the catalog-switch tests: a library full of edge cases, whole-catalog dumps.

``edge_library`` builds, straight into the tables (``catalog_fixtures.CatalogBuilder``), a
catalog with what engines get wrong: timestamps with microseconds, names and paths that
differ only in case or in Unicode normalisation, emoji, NULL beside 0, 64-bit extremes,
ids above 2^40, a double that single precision would round, JSON null beside SQL NULL, and
job rows of every state. ``dump`` reads every table of the metadata (so tables other parts
of lightbox add are compared too) as ``{table: {key: row}}``.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import sqlalchemy as sa
from catalog_fixtures import CatalogBuilder, synth
from lbtest import DaemonProcess

from lightbox.daemon.catalog import copy, paths, tables

J = tables.jobs
BIG_ID = 2**40
US = dt.datetime(2021, 6, 30, 23, 59, 59, 987654)


async def edge_library(url: str, photos: int, root: str = "/nonexistent/lb-switch"
                       ) -> dict[str, Any]:
    """A catalog at ``url`` with ``photos`` ordinary photos plus the edge cases."""
    b = await CatalogBuilder.open(url)
    try:
        b.next_photo = BIG_ID
        b.next_folder = 1000
        src = await b.source("main", root, online=False)
        trip, trip_lower = await b.folders_at(src, ["2020/Trip", "2020/trip"])
        emoji = await b.folder(src, "caf\u00e9 \U0001f4f7/e\u0301t\u00e9")
        edge = [
            synth(1, name="IMG_0001.JPG", taken_at=US, first_seen=US, orientation=None,
                  iso=0, gps_alt=0.0, exposure_time=1 / 3, phash=-(2**63)),
            synth(2, name="img_0001.jpg", taken_at=US + dt.timedelta(microseconds=1),
                  orientation=0, iso=None, gps_alt=None, phash=2**63 - 1, size=2**40 + 1),
            synth(3, name="caf\u00e9.jpg", taken_offset=-(2**15), mtime_ns=2**62 + 7),
            synth(4, name="cafe\u0301.jpg", taken_offset=0, error="", status="error",
                  sha256=None),
            synth(5, name="\U0001f4f7 100% _x_.jpg", lens="", make=None, model=None),
        ]
        await b.photos(trip, edge)
        await b.photos(trip_lower, [synth(6, name="IMG_0001.JPG")])
        await b.photos(emoji, [synth(7, name="\U0001f4f7.heic", format="HEIF")])
        per = 500
        folders = await b.folders_at(src, [f"bulk/{i // 10:02d}/{i:03d}"
                                           for i in range(max(1, photos // per))])
        left = photos
        for i, fid in enumerate(folders):
            n = per if i < len(folders) - 1 else left
            await b.photos(fid, [synth(10_000 + i * per + k) for k in range(n)])
            left -= n
        # A folder moved under one created after it: its parent has the higher id, as
        # after a rename into a new directory (the copy must defer that reference).
        here = await b.folder(src, "moved/here")
        await b.finish()
        F = tables.folders
        async with b.engine.begin() as conn:
            await conn.execute(F.update().where(F.c.id == trip_lower).values(
                parent_id=here, path="moved/here/trip", path_hash=paths.path_hash(
                    "moved/here/trip"), depth=3))
        now = dt.datetime(2026, 1, 2, 3, 4, 5, 678901)
        async with b.engine.begin() as conn:
            for job in [
                {"kind": "scan", "state": "succeeded", "params": {"root": 1, "full": False},
                 "result": {"roots": {"main": {"new": 3}}, "offline": {}}, "created_at": now,
                 "started_at": now, "finished_at": now, "processed": 2**40, "total": None},
                {"kind": "scan", "state": "failed", "params": {}, "result": None,
                 "error": "offline: main: \u00e9t\u00e9 unmounted", "created_at": now,
                 "attempts": 3, "checkpoint": {"done": [1, 2, 3]}},
                {"kind": "cleanup", "state": "cancelled", "params": {"days": 0},
                 "created_at": now, "not_before": now},
            ]:
                await conn.execute(J.insert().values(**job))
            # Settings and their audit trail: JSON of every shape, a revision past 2^32.
            rev = 2**33 + 5
            await conn.execute(tables.settings.insert(), [
                {"key": "library.debounce", "value": 2.5, "version": 3, "revision": rev,
                 "updated_at": US},
                {"key": "log.level", "value": "info", "version": 1, "revision": rev - 1,
                 "updated_at": now},
                {"key": "thumbnails.quality", "value": 82, "version": 1, "revision": 1,
                 "updated_at": now}])
            await conn.execute(tables.settings_revision.update().values(revision=rev))
            audit = (await conn.execute(tables.settings_audit.insert().values(
                revision=rev, at=US, action="settings.set",
                actor={"transport": "ipc", "uid": 0, "key": None},
                changes=[{"key": "library.debounce", "old": 1.0, "new": 2.5}],
                result="applied", detail=None))).inserted_primary_key[0]
            await conn.execute(tables.settings_audit_keys.insert().values(
                key="library.debounce", audit_id=audit))
            # SQL NULL (not JSON null) in a JSON column: a column left out of the insert.
            await conn.execute(sa.text(
                "INSERT INTO jobs (kind, state, params, priority, attempts, max_attempts, "
                "processed, bytes, errors, created_at) VALUES ('cleanup', 'succeeded', "
                "'{}', 0, 1, 3, 0, 0, 0, :t)"), {"t": now})
    finally:
        await b.close()
    return {"source": src, "trip": trip, "photos": photos + 7}


async def dump(url: str) -> dict[str, dict[Any, tuple[Any, ...]]]:
    """Every row of every catalog table at ``url`` (JSON SQL-NULL flags included)."""
    reader = copy.Reader(url, snapshot=False)
    await reader.open()
    try:
        out: dict[str, dict[Any, tuple[Any, ...]]] = {}
        for p in copy.plan():
            out[p.name] = {p.key(r): tuple(r) async for rows in reader.batches(p)
                           for r in rows}
        return out
    finally:
        await reader.close()


def assert_same(a: dict[str, dict[Any, tuple[Any, ...]]],
                b: dict[str, dict[Any, tuple[Any, ...]]],
                ignore: dict[str, set[Any]] | None = None) -> int:
    """Every table equal row for row (except the keys in ``ignore``); returns rows checked."""
    ignore = ignore or {}
    assert set(a) == set(b)
    checked = 0
    for name, rows in a.items():
        skip = ignore.get(name, set())
        left = {k: v for k, v in rows.items() if k not in skip}
        right = {k: v for k, v in b[name].items() if k not in skip}
        assert left.keys() == right.keys(), (
            f"{name}: keys differ: only in one {sorted(left.keys() - right.keys())[:5]}, "
            f"only in the other {sorted(right.keys() - left.keys())[:5]}")
        for k, row in left.items():
            assert row == right[k], f"{name} {k}: {row} != {right[k]}"
        checked += len(left)
    return checked


def wait_event(d: DaemonProcess, topic: str, type_: str, after: int = 0,
               timeout: float = 60.0, job: int | None = None, **match: Any) -> dict[str, Any]:
    """Poll events.since until an event of that topic and type (and data) arrives; give up
    at once when ``job`` ended meanwhile."""
    deadline = time.monotonic() + timeout
    seq = after
    while time.monotonic() < deadline:
        if job is not None:
            state = d.call("jobs.get", {"id": job})
            if state["state"] in ("succeeded", "failed", "cancelled"):
                raise AssertionError(f"job {job} ended first: {state}")
        out = d.call("events.since", {"seq": seq, "topics": [topic]})
        for ev in out["events"]:
            seq = max(seq, ev["seq"])
            if ev["type"] == type_ and all(ev["data"].get(k) == v for k, v in match.items()):
                return dict(ev)
        time.sleep(0.05)
    raise AssertionError(f"no {topic}.{type_} {match} within {timeout} s:\n{d.log()}")


def wait_job(d: DaemonProcess, job: int, timeout: float = 120.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        out: dict[str, Any] = d.call("jobs.wait", {"id": job, "timeout": 20}, timeout=30)
        if out["state"] in ("succeeded", "failed", "cancelled") or \
                time.monotonic() > deadline:
            return out


def wait_idle(d: DaemonProcess, timeout: float = 60.0, started: str | None = "scan") -> None:
    """Until a job of kind ``started`` exists (the scan a start submits) and no job is
    queued or running."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs = d.call("jobs.list", {"limit": 100})["jobs"]
        seen = started is None or any(j["kind"] == started and j["owner"] for j in jobs)
        if seen and not any(j["state"] in ("queued", "running") for j in jobs):
            return
        time.sleep(0.1)
    raise AssertionError(f"jobs still busy after {timeout} s")
