"""Moving the live catalog between SQLite, PostgreSQL and MariaDB (``database.switch``).

The daemon runs in a subprocess on a catalog of 10,000 photos full of edge cases; every
table is compared row for row after each hop, requests are answered throughout, writes made
during the copy and during the freeze arrive in the new database, and failures (an
unreachable URL, a read-only user, a migration failing half-way) leave the daemon on its old
catalog with nothing lost.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from db_helpers import (
    BIG_ID,
    assert_same,
    dump,
    edge_library,
    wait_event,
    wait_idle,
    wait_job,
)
from lbtest import DaemonProcess, run_cli, short_tmpdir

from lightbox.common import errors
from lightbox.daemon.catalog.database import Database, DatabaseError

pytestmark = [pytest.mark.postgres, pytest.mark.mysql]

QUIET = {"library": {"watch": False, "reconcile_interval": 0}, "workers": {"processes": 1}}


def files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def sqlite_url(path: Path) -> str:
    return f"sqlite+aiosqlite:///{path}"


class Hammer:
    """Requests from another thread for as long as it runs: every one must be answered."""

    def __init__(self, d: DaemonProcess, folder: int) -> None:
        self.d = d
        self.folder = folder
        self.calls = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with self.d.client(timeout=15) as c:
            while not self._stop.is_set():
                try:
                    c.call("folders.list", {"folder": self.folder, "limit": 50})
                    c.call("system.status")
                    self.calls += 2
                except Exception as exc:
                    self.failures.append(f"{type(exc).__name__}: {exc}")
                time.sleep(0.02)

    def __enter__(self) -> Hammer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(20)


def switch(d: DaemonProcess, url: str, during: Any = None) -> dict[str, Any]:
    """Switch to ``url``, holding at the copy (LIGHTBOX_SWITCH_HOLD=copy) to run ``during``."""
    seq = d.call("events.since", {"seq": 0, "limit": 1})["seq"]
    job = d.call("database.switch", {"url": url})["job"]
    wait_event(d, "database", "held", seq, job=job, point="copy")
    if during is not None:
        during()
    d.signal(signal.SIGUSR1)
    done = wait_job(d, job)
    assert done["state"] == "succeeded", (done, d.log())
    return done


def test_chain_sqlite_postgres_mariadb_sqlite(make_daemon: Any, pg_scratch_url: str,
                                              mysql_scratch_url: str) -> None:
    d: DaemonProcess = make_daemon(start=False, config=QUIET,
                                   env={"LIGHTBOX_SWITCH_HOLD": "copy"})
    first = sqlite_url(d.data_dir / "catalog.db")
    info = asyncio.run(edge_library(first, 10_000))
    last = sqlite_url(d.data_dir / "elsewhere" / "final.db")
    d.start()
    empty = short_tmpdir("lbsw")
    try:
        urls = [first, pg_scratch_url, mysql_scratch_url, last]
        for hop, (old, new) in enumerate(itertools.pairwise(urls)):
            folder = empty / f"hop{hop}"
            folder.mkdir()

            def during(folder: Path = folder) -> None:
                # A write while the copy runs: after the snapshot, so the sync must bring it.
                d.call("roots.add", {"path": str(folder), "scan": False})

            with Hammer(d, info["trip"]) as hammer:
                done = switch(d, new, during)
            assert hammer.failures == [], hammer.failures[:3]
            assert hammer.calls > 20
            result = done["result"]
            assert result["freeze_seconds"] < 5.0, result
            assert all(t["verified"] for t in result["tables"].values()), result["tables"]
            st = d.call("database.status")
            assert st["url"] == result["to"] and st["origin"] == "switched"
            before, after = asyncio.run(dump(old)), asyncio.run(dump(new))
            # The switch job ran on: "running" in the old catalog, finished in the new one.
            # The daemon's own bookkeeping of a shared catalog (its lease, heart-beating) is
            # written to a server catalog from the moment it is in use.
            own = {t: set(before[t]) | set(after[t]) for t in ("leases", "event_feed",
                                                                 "index_claims")}
            checked = assert_same(before, after, ignore={"jobs": {done["id"]}, **own})
            assert checked >= info["photos"]
            assert after["jobs"][done["id"]][2] == "succeeded"
            assert before["jobs"][done["id"]][2] == "running"
            names = {r[2] for r in after["sources"].values()}
            assert {f"hop{i}" for i in range(hop + 1)} <= names
            assert min(after["photos"]) == BIG_ID
        # The last catalog is the one a restart opens (the state file), not the first.
        assert d.stop() == 0
        d.extra_env = {}
        d.start()
        st = d.call("database.status")
        assert st["engine"] == "sqlite" and "final.db" in st["url"]
        assert d.call("system.status")["counts"]["photos"] == info["photos"]
    finally:
        import shutil

        shutil.rmtree(empty, ignore_errors=True)


async def test_probe_changes_nothing_and_reports(tmp_path: Path, pg_scratch_url: str,
                                                 mysql_scratch_url: str) -> None:
    from lightbox.daemon.catalog import probe

    missing = tmp_path / "not" / "there.db"
    report = await probe.run(sqlite_url(missing))
    assert report["ok"], report
    assert not missing.parent.exists(), "testing a SQLite URL created its directory"
    names = {c["name"]: c for c in report["checks"]}
    assert {"timestamp", "bigint", "null", "names", "charset", "privileges"} <= set(names)

    existing = tmp_path / "catalog.db"
    await edge_library(sqlite_url(existing), 20)
    before = files(tmp_path)
    report = await probe.run(sqlite_url(existing))
    assert report["ok"] and report["catalog"]["state"] == "catalog"
    assert report["catalog"]["rows"]["photos"] == 27
    after = files(tmp_path)
    assert before == after, "testing a SQLite catalog changed its files"

    for url in (pg_scratch_url, mysql_scratch_url):
        report = await probe.run(url)
        assert report["ok"], report
        assert report["catalog"]["state"] == "empty"
        assert all(c["ok"] for c in report["checks"]), report["checks"]
        # Nothing was left behind: the database is still empty.
        assert (await probe.run(url))["catalog"]["other_tables"] == 0

    report = await probe.run("postgresql+asyncpg://lb:hunter2-secret@127.0.0.1:1/x",
                             timeout=3)
    assert not report["ok"] and report["reason"] == "unreachable"
    assert "hunter2-secret" not in str(report) and ":***@" in report["url"]
    bad = await probe.run("oracle://scott:tiger@db/x")
    assert bad["reason"] == "unsupported" and "tiger" not in str(bad)


@pytest.fixture
async def readonly_urls(pg_scratch_url: str, mysql_scratch_url: str) -> Any:
    """A PostgreSQL and a MariaDB user that may read the scratch database but not write."""
    from conftest import _admin_exec

    pg_db = pg_scratch_url.rsplit("/", 1)[1]
    my_db = mysql_scratch_url.rsplit("/", 1)[1]
    user = f"lbro_{os.getpid()}"
    await _admin_exec(pg_scratch_url, f"CREATE ROLE {user} LOGIN PASSWORD 'ro-pass-1'")
    await _admin_exec(pg_scratch_url, "REVOKE CREATE ON SCHEMA public FROM PUBLIC")
    await _admin_exec(mysql_scratch_url, f"CREATE USER '{user}'@'%' IDENTIFIED BY 'ro-pass-1'")
    await _admin_exec(mysql_scratch_url, f"GRANT SELECT ON {my_db}.* TO '{user}'@'%'")
    host_pg = pg_scratch_url.split("@", 1)[1]
    host_my = mysql_scratch_url.split("@", 1)[1]
    try:
        yield (f"postgresql+asyncpg://{user}:ro-pass-1@{host_pg}",
               f"mysql+aiomysql://{user}:ro-pass-1@{host_my}")
    finally:
        await _admin_exec(pg_scratch_url.rsplit("/", 1)[0] + "/test",
                          f"DROP DATABASE IF EXISTS {pg_db} WITH (FORCE)")
        await _admin_exec(pg_scratch_url.rsplit("/", 1)[0] + "/test",
                          f"DROP ROLE IF EXISTS {user}")
        await _admin_exec(mysql_scratch_url, f"DROP USER IF EXISTS '{user}'@'%'")


def test_failed_switches_keep_the_old_catalog(make_daemon: Any, readonly_urls: Any,
                                              mysql_scratch_url: str, tmp_path: Path) -> None:
    d: DaemonProcess = make_daemon(start=False, config=QUIET)
    url = sqlite_url(d.data_dir / "catalog.db")
    asyncio.run(edge_library(url, 300))
    d.start()
    wait_idle(d)
    before = asyncio.run(dump(url))
    pg_ro, my_ro = readonly_urls
    cases = [("postgresql+asyncpg://lb:pw-unreach@127.0.0.1:1/none", "unreachable"),
             (pg_ro, "privileges"), (my_ro, "privileges")]
    for target, reason in cases:
        job = d.call("database.switch", {"url": target})["job"]
        done = wait_job(d, job)
        assert done["state"] == "failed", done
        assert done["result"]["reason"] == reason and done["result"]["phase"] == "test", done
        assert "pw-unreach" not in str(done) and "ro-pass-1" not in str(done)
    # MariaDB's DDL is not transactional: a migration failing half-way (a view holds the
    # name of a table the last migration creates) leaves tables behind, marked unusable.
    from conftest import _admin_exec

    asyncio.run(_admin_exec(mysql_scratch_url, "CREATE VIEW leases AS SELECT 1 AS x"))
    job = d.call("database.switch", {"url": mysql_scratch_url})["job"]
    done = wait_job(d, job)
    assert done["state"] == "failed" and done["result"]["reason"] == "migration_failed", done
    assert "jobs" in done["error"] and "not transactional" in done["error"], done["error"]
    with pytest.raises(DatabaseError, match="incomplete copy"):
        asyncio.run(Database(mysql_scratch_url).start())
    # The daemon is where it was, and still writes there.
    st = d.call("database.status")
    assert st["engine"] == "sqlite" and st["origin"] == "config"
    assert st["switch"]["last"]["reason"] == "migration_failed"
    # (not the data dir itself: no root may be one of the daemon's own directories)
    d.call("roots.add", {"path": str(tmp_path), "name": "after", "scan": False})
    now = asyncio.run(dump(url))
    jobs = set(now["jobs"]) - set(before["jobs"])
    assert len(jobs) == 4
    sources = set(now["sources"]) - set(before["sources"])
    assert len(sources) == 1
    folders = set(now["folders"]) - set(before["folders"])  # the new root's top folder
    assert len(folders) == 1
    # The root addition is audited (settings_audit, and its key in settings_audit_keys).
    audit = {t: set(now[t]) - set(before[t]) for t in ("settings_audit", "settings_audit_keys")}
    assert len(audit["settings_audit"]) == 1
    assert_same(before, now, ignore={"jobs": jobs, "sources": sources, "folders": folders,
                                     **audit})
    # Once the view is gone, a new switch resets the incomplete copy and succeeds.
    asyncio.run(_admin_exec(mysql_scratch_url, "DROP VIEW leases"))
    done = wait_job(d, d.call("database.switch", {"url": mysql_scratch_url})["job"])
    assert done["state"] == "succeeded", done
    assert d.call("roots.list")["roots"][-1]["name"] == "after"
    async def opens(url: str) -> None:  # usable now: the marker is gone
        db = Database(url)
        await db.start()
        await db.stop()

    asyncio.run(opens(mysql_scratch_url))


def test_writes_during_the_freeze_wait_and_land_in_the_new_catalog(
        make_daemon: Any, pg_scratch_url: str) -> None:
    d: DaemonProcess = make_daemon(start=False, config=QUIET,
                                   env={"LIGHTBOX_SWITCH_HOLD": "freeze"})
    url = sqlite_url(d.data_dir / "catalog.db")
    asyncio.run(edge_library(url, 100))
    d.start()
    folder = short_tmpdir("lbfz")
    try:
        job = d.call("database.switch", {"url": pg_scratch_url})["job"]
        wait_event(d, "database", "held", job=job, point="freeze")
        answer: dict[str, Any] = {}

        def write() -> None:
            answer["reply"] = d.call("roots.add", {"path": str(folder), "scan": False},
                                     timeout=30)

        writer = threading.Thread(target=write)
        writer.start()
        writer.join(1.5)
        assert writer.is_alive(), "a write went through while the catalog was frozen"
        # Reads are answered meanwhile.
        assert d.call("system.status")["counts"]["roots"] == 1
        d.signal(signal.SIGUSR1)
        writer.join(30)
        assert answer["reply"]["root"]["path"] == str(folder)
        assert wait_job(d, job)["state"] == "succeeded"
        old, new = asyncio.run(dump(url)), asyncio.run(dump(pg_scratch_url))
        assert len(old["sources"]) == 1 and len(new["sources"]) == 2
    finally:
        import shutil

        shutil.rmtree(folder, ignore_errors=True)


POINTS = ("test", "migrate", "copy", "verify", "sync", "freeze", "switch", "committed")


def test_sigkill_in_each_phase(make_daemon: Any, pg_scratch_url: str) -> None:
    """One daemon killed at each point in turn (it holds at every point and is released
    up to the one it dies at): before the state file is written it restarts on SQLite with
    every row, after it on PostgreSQL; each attempt resets the incomplete copy the previous
    one left."""
    d: DaemonProcess = make_daemon(start=False, config=QUIET,
                                   env={"LIGHTBOX_SWITCH_HOLD": ",".join(POINTS)})
    url = sqlite_url(d.data_dir / "catalog.db")
    info = asyncio.run(edge_library(url, 200))
    d.start()
    wait_idle(d)
    before = asyncio.run(dump(url))
    for point in POINTS:
        seq = d.call("events.since", {"seq": 0, "limit": 1})["seq"]
        job = d.call("database.switch", {"url": pg_scratch_url})["job"]
        for passed in POINTS[:POINTS.index(point)]:
            seq = wait_event(d, "database", "held", seq, job=job, point=passed)["seq"]
            d.signal(signal.SIGUSR1)
        wait_event(d, "database", "held", seq, job=job, point=point)
        d.kill()
        d.start()
        st = d.call("database.status")
        done = d.call("jobs.get", {"id": job})
        # Jobs made since (the switches, the start-up scans) aside, every row is there and
        # unchanged, in the catalog the daemon restarted on.
        now = asyncio.run(dump(pg_scratch_url if point == "committed" else url))
        assert_same(before, now, ignore={"jobs": set(now["jobs"]) - set(before["jobs"]),
                                         "leases": set(now["leases"])})
        assert d.call("system.status")["counts"]["photos"] == info["photos"]
        if point == "committed":
            assert st["engine"] == "postgresql" and st["origin"] == "switched", point
            assert done["state"] == "succeeded" and done["result"]["completed"], done
            continue
        assert st["engine"] == "sqlite" and st["origin"] == "config", (point, st)
        assert done["state"] == "failed" and done["result"]["reason"] == "interrupted", done
        if point != "test":
            with pytest.raises(DatabaseError, match="incomplete copy"):
                asyncio.run(Database(pg_scratch_url).start())


def test_cli_and_secrets(make_daemon: Any, pg_scratch_url: str) -> None:
    d: DaemonProcess = make_daemon(start=False, config=QUIET)
    asyncio.run(edge_library(sqlite_url(d.data_dir / "catalog.db"), 50))
    d.start()
    secret = "Pa55-w0rd-never-shown"
    # PostgreSQL here trusts local connections, so any password gets in; it must still be
    # kept out of everything the daemon shows.
    target = pg_scratch_url.replace("postgres@", f"postgres:{secret}@")
    env = {"LIGHTBOX_DATA_DIR": str(d.data_dir)}
    out = run_cli("db", "test", "-", "--json", env=env, input=f"{target}\n".encode())
    assert out.returncode == 0, out.stderr
    assert secret not in out.stdout + out.stderr and '"ok": true' in out.stdout
    out = run_cli("db", "switch", "-", "--wait", env=env, input=f"{target}\n".encode())
    assert out.returncode == 0 and "succeeded" in out.stdout, out.stdout + out.stderr
    out = run_cli("db", "status", env=env)
    assert "postgresql" in out.stdout and ":***@" in out.stdout
    out = run_cli("db", "test", "postgresql+asyncpg://x:y@127.0.0.1:1/z", env=env)
    assert out.returncode == 1 and "unreachable" in out.stdout
    shown = [str(d.call("jobs.list", {"limit": 100})), str(d.call("database.status")),
             str(d.call("events.since", {"seq": 0})), str(d.call("system.status")), d.log()]
    for text in shown:
        assert secret not in text
    state = (d.data_dir / "database.json")
    assert secret in state.read_text() and state.stat().st_mode & 0o777 == 0o600
    with pytest.raises(errors.Conflict):
        d.call("database.switch", {"url": target})
