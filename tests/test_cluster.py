"""Several daemons, one catalog (``daemon/lightbox/daemon/cluster``).

Two real daemons, on two data dirs, share one PostgreSQL (and, the same test, one MariaDB)
catalog and index two roots; one is
SIGKILLed while it indexes. The other takes over its root's lease, rescans and finishes it,
watches it from then on, and no photo row is written twice; the clients of both daemons see
every photo through events, including the ones the other daemon wrote (the relay).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from db_helpers import wait_job
from lbtest import DaemonProcess, short_tmpdir
from media_fixtures import jpeg_bytes

from lightbox.common import errors
from lightbox.daemon.catalog import tables
from lightbox.daemon.catalog.database import make_engine
from lightbox.daemon.catalog.types import utcnow

pytestmark = [pytest.mark.postgres, pytest.mark.mysql]

P, L, C, J = tables.photos, tables.leases, tables.index_claims, tables.jobs


def fill(root: Path, count: int, bases: list[bytes]) -> None:
    """``count`` JPEGs in two folders, each file its own bytes (a counter after the EOI)."""
    for i in range(count):
        folder = root / f"d{i % 2}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"p{i:04d}.jpg").write_bytes(bases[i % len(bases)] + i.to_bytes(8, "big"))


class Events:
    """Everything one daemon's clients were sent, read through ``events.since``."""

    def __init__(self, d: DaemonProcess) -> None:
        self.d = d
        self.seq = 0
        self.events: list[dict[str, Any]] = []

    def poll(self) -> list[dict[str, Any]]:
        while True:
            out = self.d.call("events.since", {"seq": self.seq, "limit": 5000})
            self.events += out["events"]
            self.seq = out["seq"]
            if not out["more"]:
                return self.events

    def indexed_ids(self) -> set[int]:
        """Photos announced as written by indexing (``catalog.changed``)."""
        return {i for e in self.events if e["topic"] == "catalog" and e["type"] == "changed"
                for i in e["data"]["ids"]}

    def origins(self) -> set[str]:
        return {e["origin"] for e in self.events if "origin" in e}


def wait_until(what: str, check: Any, timeout: float = 120.0, *daemons: DaemonProcess) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            logs = "\n".join(d.log() for d in daemons)
            raise AssertionError(f"not within {timeout} s: {what}\n{logs}")
        time.sleep(0.1)


async def query(url: str, *statements: Any) -> list[list[Any]]:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            return [list((await conn.execute(s)).all()) for s in statements]
    finally:
        await engine.dispose()


async def execute(url: str, statement: Any) -> None:
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(statement)
    finally:
        await engine.dispose()


def cluster(d: DaemonProcess) -> dict[str, Any]:
    status: dict[str, Any] = d.call("system.status")["components"]["cluster"]
    return status


def root_state(d: DaemonProcess, root_id: int) -> dict[str, Any]:
    """The root as ``d`` lists it ({"ok": 0} until ``d`` learnt of a root added elsewhere)."""
    roots = d.call("roots.list")["roots"]
    return next((r for r in roots if r["id"] == root_id), {"ok": 0, "pending": 0})


@pytest.mark.parametrize("engine", ["postgresql", "mariadb"])
def test_two_daemons_share_a_catalog_and_one_takes_over(make_daemon: Any, engine: str,
                                                        request: pytest.FixtureRequest) -> None:
    """PostgreSQL relays with NOTIFY, MariaDB by polling; both claim with SKIP LOCKED."""
    url = str(request.getfixturevalue("pg_scratch_url" if engine == "postgresql"
                                      else "mysql_scratch_url"))
    config = {"database": {"url": url, "lease_ttl": 3.0},
              "library": {"reconcile_interval": 0}, "workers": {"processes": 1}}
    a: DaemonProcess = make_daemon(config=config)
    b: DaemonProcess = make_daemon(config=config)
    owner_a, owner_b = cluster(a)["owner"], cluster(b)["owner"]
    assert cluster(a)["shared"] and cluster(b)["shared"]
    wait_until("each daemon sees the other", lambda: cluster(a)["daemons"] == 2 and
               cluster(b)["daemons"] == 2, 60, a, b)
    photos = short_tmpdir("lbcl")
    bases = [jpeg_bytes(900, 600, seed) for seed in range(6)]
    small, large = 40, 400
    fill(photos / "two", small, bases)
    fill(photos / "one", large, bases)
    ev_a, ev_b = Events(a), Events(b)
    try:
        # Root two through B: B holds its lease; A's clients see B's photos (relayed).
        two = b.call("roots.add", {"path": str(photos / "two"), "name": "two"})
        two_id = two["root"]["id"]
        assert wait_job(b, two["job"])["state"] == "succeeded"
        assert cluster(b)["sources"] == [two_id] and cluster(a)["sources"] == []
        (two_ids,) = asyncio.run(query(url, sa.select(P.c.id).where(
            P.c.source_id == two_id)))
        assert len(two_ids) == small
        wait_until("A's clients saw every photo of two",
                   lambda: ev_a.poll() and {i for (i,) in two_ids} <= ev_a.indexed_ids(),
                   60, a, b)
        assert owner_b in ev_a.origins()

        # Root one through A, killed while its photos are being indexed.
        one = a.call("roots.add", {"path": str(photos / "one"), "name": "one"})
        one_id = one["root"]["id"]
        assert cluster(a)["sources"] == [one_id]
        state = wait_until("some photos of one indexed",
                           lambda: (s := root_state(b, one_id))["ok"] >= 10 and s, 120, a, b)
        wait_until("B's clients saw A add the root (relayed)", lambda: any(
            e.get("origin") == owner_a and e["topic"] == "source" and e["type"] == "added"
            for e in ev_b.poll()), 60, a, b)
        a.kill()
        assert state["pending"] > 0, state  # it died mid-index
        ev_a.events, seen_by_a = [], ev_a.events

        # B takes the lease over, rescans the root, indexes what is left, watches it.
        wait_until("B holds one's lease", lambda: one_id in cluster(b)["sources"], 60, b)
        assert cluster(b)["takeovers"] >= 1
        wait_until("every photo of one indexed",
                   lambda: (s := root_state(b, one_id))["ok"] == large and
                   s["pending"] == 0, 180, b)
        (photos / "one" / "d0" / "late.jpg").write_bytes(bases[0] + b"late")
        wait_until("B's watcher indexed a file added to one after the takeover",
                   lambda: root_state(b, one_id)["ok"] == large + 1, 60, b)

        leases, claims, jobs, dupes, rows = asyncio.run(query(
            url,
            sa.select(L.c.key, L.c.owner),
            sa.select(sa.func.count()).select_from(C),
            sa.select(J.c.id, J.c.kind, J.c.state, J.c.owner, J.c.affinity, J.c.params),
            sa.select(P.c.folder_id, P.c.name, sa.func.count()).group_by(
                P.c.folder_id, P.c.name).having(sa.func.count() > 1),
            sa.select(P.c.id, P.c.status, P.c.sha256, P.c.source_id)))
        held = dict(leases)
        assert held[f"source:{one_id}"] == owner_b and held[f"source:{two_id}"] == owner_b
        assert f"daemon:{owner_a}" not in held  # the dead daemon's presence is gone
        assert claims == [(0,)]  # every claim ended with its photo's result
        assert dupes == []  # no photo row written twice
        assert len(rows) == small + large + 1
        assert all(r.status == "ok" and r.sha256 for r in rows), \
            [r for r in rows if r.status != "ok"][:5]
        assert not [j for j in jobs if j.state in ("failed", "queued", "running")], jobs
        # The scan A was running (or a rescan after the takeover) ran on B, by affinity.
        assert any(j.owner == owner_b and j.affinity == f"source:{one_id}" and
                   j.state == "succeeded" for j in jobs), jobs

        # Both daemons' clients saw every photo: B's all of them, A's (until it died) every
        # photo of two, relayed ones included. What A wrote in its last fraction of a
        # second may never have been relayed: B announces the takeover, and its clients
        # reload the root then (and find every photo there).
        ev_b.poll()
        taken = [e for e in ev_b.events if e["topic"] == "source" and
                 e["type"] == "taken_over"]
        assert [(e["data"]["id"], e["data"]["previous"]) for e in taken] == [
            (one_id, owner_a)]
        after = {i for e in ev_b.events if e["seq"] > taken[0]["seq"] and
                 e["topic"] == "catalog" and e["type"] == "changed" for i in e["data"]["ids"]}
        unseen = {r.id for r in rows} - ev_b.indexed_ids()
        assert unseen <= {r.id for r in rows if r.source_id == one_id}, unseen
        listed = {p["id"] for sub in ("d0", "d1") for p in b.call(
            "folders.list", {"path": str(photos / "one" / sub), "limit": 500})["photos"]
            if p["status"] == "ok"}
        assert listed == {r.id for r in rows if r.source_id == one_id}
        assert after, "B indexed none of one's photos after the takeover"
        assert owner_a in ev_b.origins()  # A's events reached B's clients
        ev_a.events = seen_by_a
        assert {i for (i,) in two_ids} <= ev_a.indexed_ids()
        assert "IntegrityError" not in b.log() and "Traceback" not in b.log(), b.log()
    finally:
        import shutil

        shutil.rmtree(photos, ignore_errors=True)


def test_a_daemon_that_stops_heart_beating_loses_its_root(make_daemon: Any,
                                                          pg_scratch_url: str) -> None:
    """SIGSTOP: the process lives (so its pid proves nothing) but its lease lapses; the other
    daemon takes the root after ``lease_ttl``. Resumed, the first one finds the root gone to
    the other and stops watching it; the two go on side by side."""
    import signal

    config = {"database": {"url": pg_scratch_url, "lease_ttl": 3.0},
              "library": {"reconcile_interval": 0}, "workers": {"processes": 1}}
    a: DaemonProcess = make_daemon(config=config)
    b: DaemonProcess = make_daemon(config=config)
    owner_b = cluster(b)["owner"]
    photos = short_tmpdir("lbst")
    base = jpeg_bytes(320, 240, 1)
    fill(photos, 6, [base])
    try:
        added = a.call("roots.add", {"path": str(photos), "name": "shared"})
        root = added["root"]["id"]
        assert wait_job(a, added["job"])["state"] == "succeeded"
        assert cluster(a)["sources"] == [root]
        wait_until("B learnt of the root", lambda: root_state(b, root)["ok"] == 6, 60, a, b)
        assert cluster(b)["sources"] == []
        a.signal(signal.SIGSTOP)
        try:
            stopped = time.monotonic()
            wait_until("B took the root over", lambda: cluster(b)["sources"] == [root],
                       60, b)
            assert time.monotonic() - stopped >= 2.0  # not before the lease ran out
            (photos / "d0" / "new.jpg").write_bytes(base + b"new")
            wait_until("B's watcher indexed a new file",
                       lambda: root_state(b, root)["ok"] == 7, 60, b)
        finally:
            a.signal(signal.SIGCONT)
        wait_until("A gave the root up", lambda: cluster(a)["sources"] == [] and
                   cluster(a)["daemons"] == 2, 60, a, b)
        assert "another daemon runs this source now" in a.log()
        (leases,) = asyncio.run(query(pg_scratch_url, sa.select(L.c.key, L.c.owner)))
        assert dict(leases)[f"source:{root}"] == owner_b
        # Only B watches it now: a file added later is indexed once, by B's watcher.
        (photos / "d1" / "later.jpg").write_bytes(base + b"later")
        wait_until("the later file indexed", lambda: root_state(b, root)["ok"] == 8, 60, b)
        assert root not in a.call("system.status")["components"]["watcher"]["watching"]
        # A catalog others use is not moved away under them.
        with pytest.raises(errors.Conflict) as refused:
            b.call("database.switch", {"url": f"sqlite+aiosqlite:///{photos}/x.db"})
        assert refused.value.data["reason"] == "shared_catalog"
        assert refused.value.data["daemons"] == [cluster(a)["owner"]]
    finally:
        import shutil

        shutil.rmtree(photos, ignore_errors=True)


@pytest.mark.parametrize("engine", ["postgresql", "mariadb"])
def test_a_daemon_that_joins_relays_every_photo_from_its_hello(
        make_daemon: Any, engine: str, request: pytest.FixtureRequest) -> None:
    """B joins while A indexes: from the moment B answers ``hello``, every photo A (or B)
    indexes reaches B's clients — in what they read then, or as an event. The relay's start
    position is taken before B joins (no waiting for A's next lease round to notice B: the
    default lease_ttl of 15 s makes that a 5 s hole)."""
    url = str(request.getfixturevalue("pg_scratch_url" if engine == "postgresql"
                                      else "mysql_scratch_url"))
    config = {"database": {"url": url}, "library": {"reconcile_interval": 0},
              "workers": {"processes": 1}}
    a: DaemonProcess = make_daemon(config=config)
    photos = short_tmpdir("lbjn")
    bases = [jpeg_bytes(900, 600, seed) for seed in range(6)]
    count = 300
    fill(photos / "one", count, bases)
    try:
        one = a.call("roots.add", {"path": str(photos / "one"), "name": "one"})
        one_id = one["root"]["id"]
        wait_until("A indexes", lambda: root_state(a, one_id)["ok"] >= 5, 120, a)
        b: DaemonProcess = make_daemon(config=config)
        assert b.call("hello")
        # What a client of B reads at once, then every event it is sent from then on.
        ev_b = Events(b)
        listed = {p["id"] for sub in ("d0", "d1") for p in b.call(
            "folders.list", {"path": str(photos / "one" / sub), "limit": 500})["photos"]
            if p["status"] == "ok"}
        assert len(listed) < count, "indexing ended before B joined: nothing to relay"
        wait_until("every photo indexed", lambda: (s := root_state(a, one_id))["ok"] == count
                   and s["pending"] == 0, 300, a, b)
        (ids,) = asyncio.run(query(url, sa.select(P.c.id).where(P.c.source_id == one_id)))
        every = {i for (i,) in ids}
        assert len(every) == count
        owner_a = cluster(a)["owner"]
        wait_until("B's clients were told of every photo", lambda: ev_b.poll() and
                   every <= listed | ev_b.indexed_ids(), 60, a, b)
        relayed = {i for e in ev_b.events if e.get("origin") == owner_a and
                   e["topic"] == "catalog" and e["type"] == "changed" for i in e["data"]["ids"]}
        assert relayed - listed, "none of A's photos after B's hello came through the relay"
    finally:
        import shutil

        shutil.rmtree(photos, ignore_errors=True)


def test_each_daemon_cleans_its_own_thumbnail_cache(make_daemon: Any,
                                                    pg_scratch_url: str) -> None:
    """Two daemons on one PostgreSQL catalog, each with its own thumbnail cache: a cleanup
    runs on the daemon whose cache it sweeps (its job's affinity), two at once stay two
    jobs, an orphan in either cache is removed by its own daemon, and what any photo of the
    catalog still needs stays in both caches — whoever indexed or served it."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    from lightbox.daemon.media.thumbs import thumbnail_path

    url = pg_scratch_url
    config = {"database": {"url": url, "lease_ttl": 3.0},
              "library": {"reconcile_interval": 0}, "workers": {"processes": 1}}
    a: DaemonProcess = make_daemon(config=config)
    b: DaemonProcess = make_daemon(config=config)
    wait_until("each daemon sees the other", lambda: cluster(a)["daemons"] == 2 and
               cluster(b)["daemons"] == 2, 60, a, b)
    owner = {"a": cluster(a)["owner"], "b": cluster(b)["owner"]}
    caches = {"a": a.data_dir / "cache" / "thumbnails", "b": b.data_dir / "cache" / "thumbnails"}
    assert caches["a"] != caches["b"]
    photos = short_tmpdir("lbcu")
    bases = [jpeg_bytes(300, 200, seed) for seed in range(3)]
    fill(photos / "one", 6, bases)
    try:
        one = a.call("roots.add", {"path": str(photos / "one"), "name": "one"})
        assert wait_job(a, one["job"])["state"] == "succeeded"
        (rows,) = asyncio.run(query(url, sa.select(P.c.id, P.c.sha256, P.c.name)))
        assert len(rows) == 6 and all(r.sha256 for r in rows)
        # Each daemon's clients look at every photo: both caches hold every grid thumbnail
        # (made by whichever daemon indexed the photo, or on demand by the one asked).
        for d in (a, b):
            for r in rows:
                assert d.call("photos.thumbnail", {"id": r.id, "size": "grid"})["bytes"] > 0
        for cache in caches.values():
            for r in rows:
                assert thumbnail_path(cache, "grid", r.sha256).exists()
        # An old orphan in each cache (no photo has its hash).
        orphans = {}
        for name, cache in caches.items():
            orphan = cache / "grid" / "ee" / ("ee" + name * 62 + ".jpg")  # name: a or b
            orphan.parent.mkdir(parents=True, exist_ok=True)
            orphan.write_bytes(b"x")
            os.utime(orphan, (1, 1))
            orphans[name] = orphan
        # One photo gone for long: its thumbnails go from both caches, each by its daemon.
        gone = next(r for r in rows if r.name.endswith("p0000.jpg"))
        (photos / "one" / "d0" / "p0000.jpg").unlink()
        assert wait_job(a, a.call("library.scan", {"root": one["root"]["id"]})["job"])[
            "state"] == "succeeded"
        asyncio.run(execute(url, sa.update(P).where(P.c.id == gone.id).values(
            missing_since=utcnow() - dt.timedelta(days=30))))

        def cleanup(d: DaemonProcess) -> int:
            return int(d.call("library.cleanup", {"days": 1})["job"])

        # Both at once: two jobs (another daemon's cleanup never stands in for this one's).
        with ThreadPoolExecutor(2) as pool:
            job_a, job_b = pool.map(cleanup, (a, b))
        assert job_a != job_b
        done = {"a": wait_job(a, job_a), "b": wait_job(b, job_b)}
        assert all(j["state"] == "succeeded" for j in done.values()), done
        (jobs,) = asyncio.run(query(url, sa.select(J.c.id, J.c.owner, J.c.affinity).where(
            J.c.id.in_((job_a, job_b)))))
        ran = {j.id: j for j in jobs}
        assert ran[job_a].owner == owner["a"] and ran[job_b].owner == owner["b"], jobs
        assert ran[job_a].affinity != ran[job_b].affinity
        assert all(str(j.affinity).startswith("cache:") for j in jobs)
        for name, cache in caches.items():
            assert not orphans[name].exists(), f"{name}'s orphan was left"
            assert done[name]["result"]["removed"] >= 2, done[name]  # orphan + gone's grid
            assert not thumbnail_path(cache, "grid", gone.sha256).exists()
            for r in rows:
                if r.id != gone.id:
                    assert thumbnail_path(cache, "grid", r.sha256).exists(), (name, r.name)
        # A cleanup asked of one daemon sweeps its cache only: B's orphan survives A's.
        orphans["b"].write_bytes(b"x")
        os.utime(orphans["b"], (1, 1))
        assert wait_job(a, cleanup(a))["state"] == "succeeded"
        assert orphans["b"].exists()
        assert wait_job(b, cleanup(b))["state"] == "succeeded"
        assert not orphans["b"].exists()
    finally:
        import shutil

        shutil.rmtree(photos, ignore_errors=True)
