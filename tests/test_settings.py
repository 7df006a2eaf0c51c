"""Runtime settings with the real daemon: precedence, validation, secrets, live apply,
concurrency, audit, revert, a SIGKILL in the middle of a change, two daemons converging."""

from __future__ import annotations

import asyncio
import io
import json
import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from lbtest import DaemonProcess, run_cli, short_tmpdir
from PIL import Image

from lightbox.common import errors
from lightbox.common import settings as schema
from lightbox.common.client import Client
from lightbox.daemon.media.samples import make_photo, save_jpeg

SECRET = "s3cr3t-Zq8wX1-never-shown"


def wait_until(fn: Callable[[], Any], timeout: float = 60.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(0.1)
    raise AssertionError(f"{what} not reached within {timeout} s (last: {last!r})")


def stored_rows(d: DaemonProcess) -> dict[str, Any]:
    con = sqlite3.connect(f"file:{d.data_dir / 'catalog.db'}?mode=ro", uri=True, timeout=30)
    try:
        found = con.execute("SELECT key, CAST(value AS TEXT) FROM settings")
        return {k: json.loads(v) for k, v in found}
    finally:
        con.close()


def value(d: DaemonProcess, key: str) -> Any:
    return d.call("settings.get", {"keys": [key]})["settings"][key]


def add_root(d: DaemonProcess, path: Path) -> dict[str, Any]:
    out = d.call("roots.add", {"path": str(path)})
    done = d.call("jobs.wait", {"id": out["job"], "timeout": 120}, timeout=130)
    assert done["state"] == "succeeded", done
    root: dict[str, Any] = out["root"]
    return root


def test_precedence_defaults_file_env_database(make_daemon: Any) -> None:
    d = make_daemon(config={"library": {"debounce": 2.0}},
                    env={"LIGHTBOX_JOBS_CONCURRENCY": "3"})
    got = d.call("settings.get")["settings"]
    assert got["library.debounce"]["value"] == 2.0
    assert got["library.debounce"]["origin"] == str(d.config_file)
    assert got["jobs.concurrency"] == {**got["jobs.concurrency"], "value": 3,
                                       "origin": "environment LIGHTBOX_JOBS_CONCURRENCY"}
    assert got["thumbnails.quality"]["origin"] == "default"
    assert got["database.url"]["scope"] == "bootstrap"

    d.call("settings.set", {"patch": {"library.debounce": 0.4, "jobs.concurrency": 5}})
    got = d.call("settings.get", {"keys": ["library.debounce", "jobs.concurrency"]})
    assert {k: (v["value"], v["origin"]) for k, v in got["settings"].items()} == {
        "library.debounce": (0.4, "database"), "jobs.concurrency": (5, "database")}
    assert stored_rows(d) == {"library.debounce": 0.4, "jobs.concurrency": 5}
    # The database stores only what differs from the value without it.
    d.call("settings.set", {"patch": {"jobs.concurrency": 3}})
    assert stored_rows(d) == {"library.debounce": 0.4}
    assert value(d, "jobs.concurrency")["origin"] == "environment LIGHTBOX_JOBS_CONCURRENCY"
    d.call("settings.reset", {"keys": ["library.debounce"]})
    assert stored_rows(d) == {}
    assert value(d, "library.debounce")["value"] == 2.0
    # A stored value outlives a restart and beats the file.
    d.call("settings.set", {"patch": {"library.debounce": 0.7}})
    d.stop()
    d.start()
    got = value(d, "library.debounce")
    assert (got["value"], got["origin"]) == (0.7, "database")
    status = d.call("system.status")["components"]
    assert status["settings"]["stored"] == 1


def test_every_constraint_is_rejected_by_field_and_nothing_changes(daemon: DaemonProcess
                                                                   ) -> None:
    before = daemon.call("settings.get")
    bad = {
        "library.debounce": 500,  # range
        "jobs.concurrency": "four",  # type
        "log.level": "chatty",  # choice
        "tui.grid_size": None,  # null resets: fine, so not reported
        "s3.access_key_id": "k" * 300,  # length
        "roots.999.watch": False,  # no such root
        "roots.x.nope": 1,  # unknown per-object field
        "database.url": "sqlite+aiosqlite:////tmp/other.db",  # read before the db opens
        "thumbnails.grid": 128,  # valid, but the patch fails as a whole
        "library.reconcile_intervall": 10,  # typo
    }
    with pytest.raises(errors.InvalidParams) as info:
        daemon.call("settings.set", {"patch": bad})
    data = info.value.data
    assert data["reason"] == "invalid_settings"
    assert data["reasons"] == {
        "library.debounce": "range", "jobs.concurrency": "type", "log.level": "choice",
        "s3.access_key_id": "length", "roots.999.watch": "unknown_object",
        "roots.x.nope": "unknown_key", "database.url": "read_only",
        "library.reconcile_intervall": "unknown_key"}
    assert "did you mean library.reconcile_interval" in data["errors"][
        "library.reconcile_intervall"]
    assert "at most 60" in data["errors"]["library.debounce"]
    assert {f["key"] for f in data["fields"]} == set(data["reasons"])
    after = daemon.call("settings.get")
    assert after == before  # same revision, same values: nothing changed
    # Arrays are checked item by item; a stale revision is a conflict.
    root = add_root(daemon, _photos_dir(0))
    with pytest.raises(errors.InvalidParams) as info:
        daemon.call("settings.set", {"patch": {f"roots.{root['id']}.ignore": ["ok", 3]}})
    assert info.value.data["reasons"] == {f"roots.{root['id']}.ignore": "type"}
    ok = daemon.call("settings.set", {"patch": {f"roots.{root['id']}.ignore": ["*.tmp"]},
                                      "if_revision": after["revision"]})
    with pytest.raises(errors.Conflict) as conflict:
        daemon.call("settings.set", {"patch": {"thumbnails.grid": 128},
                                     "if_revision": after["revision"]})
    assert conflict.value.data["reason"] == "stale_revision"
    assert conflict.value.data["revision"] == ok["revision"]


def _photos_dir(seed: int, count: int = 1) -> Path:
    d = short_tmpdir("lbp")
    for i in range(count):
        save_jpeg(make_photo(800, 600, seed * 100 + i), d / f"p{seed}-{i}.jpg")
    return d


def test_a_secret_is_never_shown(daemon: DaemonProcess) -> None:
    async def run() -> tuple[list[dict[str, Any]], dict[str, Any], str]:
        async with Client(daemon.endpoint) as c:
            await c.connect()
            sub = await c.subscribe([])
            seen: list[dict[str, Any]] = []
            reply = await c.call("settings.set", {"patch": {"s3.secret_access_key": SECRET,
                                                            "library.debounce": 0.5}})
            message = ""
            try:  # an error about the secret's value must not quote it
                await c.call("settings.set", {"patch": {"s3.secret_access_key": SECRET * 20}})
            except errors.InvalidParams as exc:
                message = json.dumps(exc.to_json())
            await c.call("settings.set", {"patch": {"s3.secret_access_key": SECRET + "2"}})
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    ev = await sub.next(timeout=2)
                except TimeoutError:
                    break
                seen.append(ev)
                if sum(e["type"] == "changed" for e in seen) >= 2:
                    break
            sub.close()
            return seen, reply, message

    events, reply, message = asyncio.run(run())
    assert sum(e["type"] == "changed" for e in events) == 2, events
    assert "s3.secret_access_key" in message and "length" in message
    got = daemon.call("settings.get")
    secret = got["settings"]["s3.secret_access_key"]["value"]
    assert secret["set"] is True and secret["fingerprint"].startswith("sha256:")
    assert secret["fingerprint"] == schema.fingerprint("s3.secret_access_key", SECRET + "2")
    audit = daemon.call("settings.audit", {"key": "s3.secret_access_key"})
    assert len(audit["entries"]) == 2
    everything = json.dumps([events, reply, message, got, audit,
                             daemon.call("settings.audit"), daemon.call("system.status"),
                             daemon.call("settings.schema")])
    daemon.call("settings.set", {"patch": {"log.level": "debug"}})
    daemon.call("settings.set", {"patch": {"s3.secret_access_key": SECRET + "3"}})
    time.sleep(0.2)
    for where, text in (("replies and events", everything), ("log", daemon.log())):
        assert SECRET not in text, where
    # Unset: set back to empty.
    daemon.call("settings.reset", {"keys": ["s3.secret_access_key"]})
    assert value(daemon, "s3.secret_access_key")["value"] == {"secret": True, "set": False}


def _pool(d: DaemonProcess) -> dict[str, Any]:
    pool: dict[str, Any] = d.call("system.status")["components"]["workers"]
    return pool


def test_worker_count_resizes_the_pool(daemon: DaemonProcess) -> None:
    reply = daemon.call("settings.set", {"patch": {"workers.processes": 1}})
    assert reply["applied"] == ["workers.processes"] and reply["restart"] == []
    wait_until(lambda: _pool(daemon)["alive"] == 1 and len(_pool(daemon)["pids"]) == 1, 60,
               "one worker")
    memory = daemon.call("settings.set", {"patch": {"workers.memory_mb": 1024}})
    assert memory["workers"] == ["workers.memory_mb"] and memory["applied"] == []
    assert "new ones" in memory["notes"]["workers.memory_mb"]
    daemon.call("settings.set", {"patch": {"workers.processes": 3}})
    pool = wait_until(lambda: (p := _pool(daemon))["alive"] == 3 and p, 60, "three workers")
    assert pool["processes"] == 3 and len(set(pool["pids"])) == 3
    # The pool still works after growing and shrinking: a root gets indexed.
    root = add_root(daemon, _photos_dir(1, 3))
    wait_until(lambda: daemon.call("roots.list")["roots"][0]["pending"] == 0, 120, "indexed")
    assert root["id"]


def test_new_debounce_changes_when_a_new_file_is_indexed(daemon: DaemonProcess) -> None:
    folder = _photos_dir(2)
    add_root(daemon, folder)
    wait_until(lambda: daemon.call("roots.list")["roots"][0]["watching"], 60, "watching")
    daemon.call("settings.set", {"patch": {"library.debounce": 60}})

    def photos() -> int:
        return int(daemon.call("roots.list")["roots"][0]["photos"])

    assert photos() == 1
    save_jpeg(make_photo(640, 480, 77), folder / "new.jpg")
    time.sleep(3)  # with a 60 s debounce, nothing is indexed this soon, however busy
    assert photos() == 1
    t = time.monotonic()
    daemon.call("settings.set", {"patch": {"library.debounce": 0.1}})
    wait_until(lambda: photos() == 2, 60, "the new file indexed")
    assert time.monotonic() - t < 50  # long before the old debounce would have elapsed


def test_new_thumbnail_size_for_later_thumbnails(daemon: DaemonProcess) -> None:
    reply = daemon.call("settings.set", {"patch": {"thumbnails.grid": 100}})
    assert "existing ones stay" in reply["notes"]["thumbnails.grid"]
    add_root(daemon, _photos_dir(3))
    photo = wait_until(lambda: (ps := daemon.call("photos.search", {"limit": 1})["photos"])
                       and ps[0], 120, "indexed")
    thumb = daemon.call("photos.thumbnail", {"id": photo["id"]})
    assert max(Image.open(io.BytesIO(thumb["data"])).size) == 100


def test_restart_setting_waits_for_a_restart(daemon: DaemonProcess) -> None:
    reply = daemon.call("settings.set", {"patch": {"library.max_watches": 5000,
                                                   "log.level": "debug"}})
    assert reply["restart"] == ["library.max_watches"] and reply["applied"] == ["log.level"]
    got = value(daemon, "library.max_watches")
    assert got["value"] == 5000 and got["pending_restart"] is True
    assert daemon.call("system.status")["components"]["settings"]["pending_restart"] == [
        "library.max_watches"]
    daemon.call("settings.get")  # logged at debug level now: the level applied at once
    wait_until(lambda: "debug" in daemon.log() and "request served" in daemon.log(), 30,
               "debug records")
    daemon.stop()
    daemon.start()
    assert value(daemon, "library.max_watches")["pending_restart"] is False
    assert daemon.call("system.status")["components"]["settings"]["pending_restart"] == []


def test_watching_turned_off_and_on_live(daemon: DaemonProcess) -> None:
    folder = _photos_dir(8)
    add_root(daemon, folder)
    daemon.call("settings.set", {"patch": {"library.debounce": 0.1}})

    def watcher() -> dict[str, Any]:
        w: dict[str, Any] = daemon.call("system.status")["components"]["watcher"]
        return w

    def photos() -> int:
        return int(daemon.call("roots.list")["roots"][0]["photos"])

    wait_until(lambda: watcher()["watching"], 60, "watching")
    reply = daemon.call("settings.set", {"patch": {"library.watch": False}})
    assert reply["applied"] == ["library.watch"]
    assert watcher()["enabled"] is False and watcher()["watching"] == []
    save_jpeg(make_photo(640, 480, 88), folder / "while-off.jpg")
    time.sleep(3)  # nobody watches: the file stays unseen
    assert photos() == 1
    daemon.call("settings.set", {"patch": {"library.watch": True}})
    wait_until(lambda: watcher()["watching"], 30, "watching again")
    wait_until(lambda: photos() == 2, 60, "the pass over the root finds what changed")
    save_jpeg(make_photo(640, 480, 89), folder / "after.jpg")
    wait_until(lambda: photos() == 3, 60, "live again")


def test_two_clients_at_once_lose_nothing_and_if_revision_has_one_winner(
        daemon: DaemonProcess) -> None:
    keys = {"a": "thumbnails.quality", "b": "jobs.max_attempts"}
    values = {"a": list(range(60, 72)), "b": list(range(2, 14))}
    failures: list[BaseException] = []

    def client(name: str) -> None:
        try:
            with daemon.client(30) as c:
                for v in values[name]:
                    c.call("settings.set", {"patch": {keys[name]: v}})
        except BaseException as exc:
            failures.append(exc)

    start = daemon.call("settings.get", {"keys": []})["revision"]
    threads = [threading.Thread(target=client, args=(n,)) for n in keys]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not failures
    got = daemon.call("settings.get", {"keys": list(keys.values())})
    assert got["settings"]["thumbnails.quality"]["value"] == 71
    assert got["settings"]["jobs.max_attempts"]["value"] == 13
    assert got["revision"] == start + 24
    assert len(daemon.call("settings.audit", {"limit": 100})["entries"]) == 24

    async def race(rev: int) -> list[Any]:
        async def one(v: int) -> Any:
            async with Client(daemon.endpoint) as c:
                try:
                    return await c.call("settings.set", {"patch": {"library.debounce": v},
                                                         "if_revision": rev})
                except errors.Conflict as exc:
                    return exc
        return list(await asyncio.gather(one(2), one(3)))

    results = asyncio.run(race(got["revision"]))
    conflicts = [r for r in results if isinstance(r, errors.Conflict)]
    winners = [r for r in results if isinstance(r, dict)]
    assert len(conflicts) == 1 and len(winners) == 1, results
    assert conflicts[0].data["reason"] == "stale_revision"
    assert value(daemon, "library.debounce")["value"] in (2.0, 3.0)


def test_audit_actor_history_pages_and_revert(daemon: DaemonProcess) -> None:
    r1 = daemon.call("settings.set", {"patch": {"library.debounce": 0.5}})
    r2 = daemon.call("settings.set", {"patch": {"library.debounce": 0.7,
                                                "jobs.concurrency": 4}})
    with daemon.client() as c:
        c.connect()  # declares the client kind, which the audit records as declared
        back = c.call("settings.revert", {"revision": r2["revision"]})
    assert set(back["changed"]) == {"library.debounce", "jobs.concurrency"}
    got = daemon.call("settings.get", {"keys": ["library.debounce", "jobs.concurrency"]})
    assert got["settings"]["library.debounce"]["value"] == 0.5
    assert got["settings"]["jobs.concurrency"] == {**got["settings"]["jobs.concurrency"],
                                                   "value": 2, "origin": "default"}
    history = daemon.call("settings.audit", {"key": "library.debounce"})["entries"]
    assert [e["revision"] for e in history] == [back["revision"], r2["revision"],
                                                r1["revision"]]
    newest = history[0]
    assert newest["action"] == "revert" and newest["detail"] == {"reverts": r2["revision"]}
    actor = newest["actor"]
    assert actor["transport"] == "ipc" and actor["uid"] == os.getuid()
    assert actor["user"] and actor["client"].startswith("lightbox/")
    assert actor["client_declared"] is True
    changes = {c["key"]: (c["old"], c["new"]) for c in newest["changes"]}
    assert changes == {"library.debounce": (0.7, 0.5), "jobs.concurrency": (4, 2)}
    # Pages: one entry at a time, newest first, no entry twice.
    seen, cursor = [], None
    while True:
        page = daemon.call("settings.audit", {"limit": 1, "cursor": cursor})
        seen += [e["id"] for e in page["entries"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == sorted(seen, reverse=True) and len(seen) == 3
    with pytest.raises(errors.NotFound):
        daemon.call("settings.revert", {"revision": 999})


def test_roots_added_and_removed_are_audited(daemon: DaemonProcess) -> None:
    root = add_root(daemon, _photos_dir(4))
    daemon.call("settings.set", {"patch": {f"roots.{root['id']}.watch": False}})
    wait_until(lambda: not daemon.call("roots.list")["roots"][0]["watching"], 30,
               "the root not watched")
    with pytest.raises(errors.InvalidParams):
        daemon.call("roots.add", {"path": "/proc"})
    daemon.call("roots.remove", {"root": root["id"]})
    entries = daemon.call("settings.audit")["entries"]
    actions = [(e["action"], e["result"]) for e in entries]
    assert actions == [("reset", "ok"), ("roots.remove", "ok"), ("roots.add", "refused"),
                       ("set", "ok"), ("roots.add", "ok")]
    assert entries[-1]["changes"][0]["new"]["path"] == root["path"]
    assert entries[0]["changes"][0]["key"] == f"roots.{root['id']}.watch"


def test_sigkill_in_the_middle_of_a_set_leaves_old_or_new(make_daemon: Any) -> None:
    d: DaemonProcess = make_daemon()
    skip = {"workers.processes", "events.buffer"}
    live = [f for f in schema.RUNTIME if f.type in ("integer", "number")
            and f.applies == "live" and f.minimum is not None and f.name not in skip]
    old = {f.name: value(d, f.name)["value"] for f in live}
    new = {f.name: (int(f.minimum) + 3 if f.type == "integer" else float(f.minimum) + 0.5)
           for f in live}
    new = {k: v + 1 if v == old[k] else v for k, v in new.items()}
    assert all(new[k] != old[k] for k in new) and len(new) >= 10
    rng = random.Random(8)
    outcomes = set()
    for _round in range(4):
        async def fire() -> None:
            c = Client(d.endpoint, timeout=5)
            task = asyncio.ensure_future(c.call("settings.set", {"patch": new}))
            await asyncio.sleep(rng.uniform(0.0, 0.03))
            d.proc.kill()  # type: ignore[union-attr]
            d.proc.wait()  # type: ignore[union-attr]
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            await c.close()

        asyncio.run(fire())
        d.start()
        got = {k: v["value"] for k, v in d.call("settings.get",
                                                 {"keys": list(new)})["settings"].items()}
        assert got in (old, new), got
        outcomes.add("new" if got == new else "old")
        if got == new:
            d.call("settings.reset", {"keys": list(new)})
    assert outcomes  # at least one round ran; which one wins depends on timing


def test_two_daemons_sharing_a_catalog_converge(make_daemon: Any) -> None:
    shared = short_tmpdir("lbs")
    url = f"sqlite+aiosqlite:///{shared}/catalog.db"
    a: DaemonProcess = make_daemon(config={"database": {"url": url}})
    b: DaemonProcess = make_daemon(config={"database": {"url": url}})
    reply = a.call("settings.set", {"patch": {"library.debounce": 0.25,
                                              "workers.processes": 1}})
    wait_until(lambda: value(b, "library.debounce")["value"] == 0.25, 30, "b converges")
    assert value(b, "library.debounce")["origin"] == "database"
    wait_until(lambda: _pool(b)["alive"] == 1, 60, "b's pool resized")
    assert b.call("settings.get", {"keys": []})["revision"] == reply["revision"]
    b.call("settings.set", {"patch": {"library.debounce": 0.35}})
    wait_until(lambda: value(a, "library.debounce")["value"] == 0.35, 30, "a converges")


def test_cli_settings_typed_errors_exit_2_and_json(daemon: DaemonProcess) -> None:
    s = ["--socket", daemon.endpoint]
    r = run_cli(*s, "settings", "set", "library.debounce=0.5", "library.max_watches=1_000",
                "library.watch=off", "jobs.concurrency=4")
    assert r.returncode == 0, r.stderr
    assert "library.max_watches: stored; takes effect when the daemon restarts" in r.stdout
    got = daemon.call("settings.get", {"keys": ["library.debounce", "library.max_watches",
                                                "library.watch", "jobs.concurrency"]})
    got = got["settings"]
    assert [got[k]["value"] for k in got] == [0.5, 1000, False, 4]  # typed by the schema
    r = run_cli(*s, "settings", "set", "library.debounce=abc", "jobs.concurrency=99",
                "nope=1")
    assert r.returncode == 2
    assert "library.debounce: expected a number" in r.stderr
    assert "jobs.concurrency: must be at most 16 (range)" in r.stderr
    assert "nope: no such setting (unknown_key)" in r.stderr
    r = run_cli(*s, "settings", "set", "--json", "roots.42.watch=off")  # the daemon says
    assert r.returncode == 2
    assert json.loads(r.stdout)["error"]["fields"][0]["reason"] == "unknown_object"
    r = run_cli(*s, "settings", "get", "library.debounce", "--json")
    assert json.loads(r.stdout)["origin"] == "database"
    r = run_cli(*s, "settings", "set", "s3.secret_access_key=-", input=SECRET.encode() + b"\n")
    assert r.returncode == 0 and SECRET not in r.stdout + r.stderr
    table = run_cli(*s, "settings")
    assert "s3.secret_access_key" in table.stdout and "(set, sha256:" in table.stdout
    audit = run_cli(*s, "settings", "audit", "--json")
    entries = json.loads(audit.stdout)["entries"]
    assert entries[0]["actor"]["client_declared"] is True and SECRET not in audit.stdout
    rev = entries[-1]["revision"]
    r = run_cli(*s, "settings", "revert", str(rev))
    assert r.returncode == 0, r.stderr
    assert value(daemon, "jobs.concurrency")["value"] == 2
    r = run_cli(*s, "settings", "reset", "library.max_watches")
    assert r.returncode == 0 and value(daemon, "library.max_watches")["origin"] == "default"
    assert SECRET not in daemon.log()


def test_per_root_ignore_and_reconcile_interval(daemon: DaemonProcess) -> None:
    folder = _photos_dir(5, 2)
    save_jpeg(make_photo(320, 240, 55), folder / "scratch" / "thumb.jpg")
    save_jpeg(make_photo(320, 240, 56), folder / "skip-me.jpg")
    root = add_root(daemon, folder)

    def names() -> set[str]:
        found = daemon.call("photos.search", {"limit": 100, "status": "any",
                                              "fields": ["name", "status"]})["photos"]
        return {p["name"] for p in found if p.get("status", "ok") != "missing"}

    wait_until(lambda: len(names()) == 4, 60, "four photos")
    rid = root["id"]
    daemon.call("settings.set", {"patch": {f"roots.{rid}.ignore": ["scratch", "skip-*"],
                                           f"roots.{rid}.reconcile_interval": 3600}})
    job = daemon.call("library.scan", {"root": rid})["job"]
    daemon.call("jobs.wait", {"id": job, "timeout": 120}, timeout=130)
    wait_until(lambda: names() == {"p5-0.jpg", "p5-1.jpg"}, 60, "ignored names gone")
    # Patterns off again: the next pass finds them.
    daemon.call("settings.reset", {"keys": [f"roots.{rid}.ignore"]})
    job = daemon.call("library.scan", {"root": rid})["job"]
    daemon.call("jobs.wait", {"id": job, "timeout": 120}, timeout=130)
    wait_until(lambda: len(names()) == 4, 60, "back")


@pytest.mark.parametrize("engine", ["postgresql", "mariadb"])
def test_server_engines_two_daemons_revision_and_audit(engine: str, request: Any,
                                                       make_daemon: Any) -> None:
    url = str(request.getfixturevalue("pg_scratch_url" if engine == "postgresql"
                                      else "mysql_scratch_url"))
    a: DaemonProcess = make_daemon(config={"database": {"url": url}})
    b: DaemonProcess = make_daemon(config={"database": {"url": url}})
    async def changes_seen_by_b() -> tuple[dict[str, Any], list[dict[str, Any]]]:
        async with Client(b.endpoint) as c:
            await c.connect()
            sub = await c.subscribe(["settings"])
            await asyncio.sleep(0.5)
            done = await asyncio.to_thread(a.call, "settings.set", {"patch": {
                "library.debounce": 0.25, "s3.secret_access_key": SECRET}})
            seen: list[dict[str, Any]] = []
            deadline = time.monotonic() + 8
            while time.monotonic() < deadline:
                try:
                    ev = await sub.next(timeout=1)
                except TimeoutError:
                    continue
                if ev["type"] == "changed":
                    seen.append(ev)
            sub.close()
            return done, seen

    first, seen = asyncio.run(changes_seen_by_b())
    # b's clients hear of a's change once (relayed from a, or announced by b), not twice.
    assert [e["data"]["revision"] for e in seen] == [first["revision"]], seen
    wait_until(lambda: value(b, "library.debounce")["value"] == 0.25, 30, "b converges")
    # Both daemons write at once, each guarded by the revision it read: one wins.
    rev = first["revision"]

    async def race() -> list[Any]:
        async def one(d: DaemonProcess, v: int) -> Any:
            async with Client(d.endpoint) as c:
                try:
                    return await c.call("settings.set", {"patch": {"jobs.concurrency": v},
                                                         "if_revision": rev})
                except errors.Conflict as exc:
                    return exc
        return list(await asyncio.gather(one(a, 3), one(b, 4)))

    results = asyncio.run(race())
    assert sum(isinstance(r, errors.Conflict) for r in results) == 1, results
    wait_until(lambda: value(a, "jobs.concurrency")["value"]
               == value(b, "jobs.concurrency")["value"] != 2, 30, "one value everywhere")
    back = b.call("settings.revert", {"revision": rev + 1})
    wait_until(lambda: value(a, "jobs.concurrency")["value"] == 2, 30, "a sees the revert")
    audit = a.call("settings.audit")["entries"]
    assert [e["revision"] for e in audit] == [back["revision"], rev + 1, rev]
    assert SECRET not in json.dumps(audit) and SECRET not in a.log() + b.log()


async def test_buckets_without_credentials_use_the_default_s3_settings() -> None:
    from lightbox.daemon.control.events import EventBus
    from lightbox.daemon.library.sources import Source, Sources

    sources = Sources(None, EventBus())  # type: ignore[arg-type]  # no catalog needed
    bare = Source(1, "s3", "b", "s3://b", None, True, None, config={"bucket": "b"})
    own = Source(2, "s3", "c", "s3://c", None, True, None,
                 config={"bucket": "c", "access_key_id": "OWNKEY"})
    assert sources.s3_config(bare).access_key_id is None
    await sources.apply({"s3.access_key_id": "AKIDDEFAULT", "s3.secret_access_key": SECRET})
    cfg = sources.s3_config(bare)
    assert (cfg.access_key_id, cfg.secret_access_key) == ("AKIDDEFAULT", SECRET)
    assert sources.s3_config(own).access_key_id == "OWNKEY"  # its own key wins
    await sources.apply({"s3.secret_access_key": ""})  # unset: no half credentials
    assert sources.s3_config(bare).access_key_id is None


def test_a_new_reconcile_interval_reschedules(daemon: DaemonProcess) -> None:
    root = add_root(daemon, _photos_dir(6))

    def scans(**params: Any) -> int:
        jobs = daemon.call("jobs.list", {"kind": "scan", "limit": 100})["jobs"]
        return sum(1 for j in jobs if all((j.get("params") or {}).get(k) == v
                                          for k, v in params.items()))

    before = scans()
    # The default is an hour: a scan within a minute can only come from the new schedule.
    daemon.call("settings.set", {"patch": {f"roots.{root['id']}.reconcile_interval": 1}})
    wait_until(lambda: scans(root=root["id"]) > before, 60, "the root's own rescan")
    daemon.call("settings.reset", {"keys": [f"roots.{root['id']}.reconcile_interval"]})
    daemon.call("settings.set", {"patch": {"library.reconcile_interval": 1}})
    now = scans()
    wait_until(lambda: scans() > now, 60, "a rescan on the new global interval")


def test_event_buffer_and_job_concurrency_apply_live(daemon: DaemonProcess) -> None:
    start = daemon.call("hello")["seq"]
    daemon.call("settings.set", {"patch": {"events.buffer": 100}})
    for i in range(70):  # each change publishes settings.changed and .applied: 140 events
        daemon.call("settings.set", {"patch": {"thumbnails.quality": 30 + i}})
    replay = daemon.call("events.since", {"seq": start})
    assert replay["complete"] is False and len(replay["events"]) == 100
    daemon.call("settings.set", {"patch": {"events.buffer": 10_000}})
    mark = daemon.call("hello")["seq"]
    for i in range(70):
        daemon.call("settings.set", {"patch": {"thumbnails.quality": 100 - i}})
    replay = daemon.call("events.since", {"seq": mark})
    assert replay["complete"] is True and len(replay["events"]) >= 140
    # Job concurrency: the queue reports the new limit and keeps running jobs.
    daemon.call("settings.set", {"patch": {"jobs.concurrency": 5}})
    assert daemon.call("system.status")["components"]["jobs"]["concurrency"] == 5
    root = add_root(daemon, _photos_dir(7))
    assert root["id"]


def test_backup_targets_are_a_collection_of_the_schema(daemon: DaemonProcess) -> None:
    """settings.schema shows backup targets (rows of their own, not settings.set keys):
    their fields, as the same Fields that validate backups.add, and the methods that edit
    them; `lightbox settings schema` prints them."""
    from lightbox.common.api.backups import S3_FIELDS, TARGET_FIELDS

    doc = daemon.call("settings.schema")
    (coll,) = doc["collections"]
    assert coll["name"] == "backup_targets"
    assert (coll["add"], coll["update"], coll["list"]) == ("backups.add", "backups.update",
                                                           "backups.list")
    assert [f["key"] for f in coll["fields"]] == [f.name for f in TARGET_FIELDS]
    assert [f["key"] for f in coll["s3_fields"]] == [f.name for f in S3_FIELDS]
    schedule = next(f for f in coll["fields"] if f["key"] == "schedule")
    assert schedule["nullable"] and schedule["default"] == "0 2 * * *"
    assert next(f for f in coll["s3_fields"] if f["key"] == "secret_access_key")["secret"]
    r = run_cli("--socket", daemon.endpoint, "settings", "schema")
    assert r.returncode == 0, r.stderr
    assert "[backup_targets] Backup targets" in r.stdout and "  verify_budget (" in r.stdout


def test_a_catalog_no_other_daemon_shares_is_polled_slowly(daemon: DaemonProcess) -> None:
    """On SQLite nobody else changes the settings rows: the revision is read every 5 s,
    not twice a second (the poll cost an idle daemon about 1 % of a core). Load can only
    make the polls fewer, so the bound holds on a busy machine too."""
    first = daemon.call("system.status")["components"]["settings"]["polls"]
    time.sleep(6.0)
    later = daemon.call("system.status")["components"]["settings"]["polls"]
    assert later - first <= 2, (first, later)     # twice a second would be about 12
