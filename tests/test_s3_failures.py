"""Bucket objects whose reads keep failing, and transfers that stall.

The real daemon, moto over HTTP behind the test suite's fault proxy. An object that fails
every read (500 on every GET, a reset in the middle of every body, a body that stalls past
the object's budget) is retried — ``attempts`` reads per round, with backoff — and after
the rounds gets a lasting ``error`` with a machine-readable ``error_reason``, visible in
``photos.*``, ``system.status``, the sync job's result and the source's status. A sync
reads it again only when it changed (ETag, size, LastModified) or with ``retry=true``.
Network waits happen in the daemon's I/O threads: a stalled object does not hold the only
worker process.
"""

from __future__ import annotations

import hashlib
import time
from typing import Any

import pytest
from lbtest import DaemonProcess, run_cli
from s3daemon import CORPUS_JPEGS, add_bucket, photos, settled, sync, wait
from s3env import S3Env

pytestmark = pytest.mark.skipif(not CORPUS_JPEGS, reason="the image corpus is not there")

ROUNDS = 2          # failures.FINAL_ROUNDS


def _small(i: int) -> bytes:
    """Corpus JPEGs small enough to be read by the sniff's one ranged GET."""
    small = [p for p in CORPUS_JPEGS if p.stat().st_size < 200_000]
    return small[i % len(small)].read_bytes()


def _big() -> bytes:
    """A corpus JPEG larger than the sniff (256 KiB): a second GET streams the rest."""
    return max(CORPUS_JPEGS, key=lambda p: p.stat().st_size).read_bytes()


def _gets(s3: S3Env, name: str) -> int:
    return s3.proxy.count(lambda r: r.method == "GET" and (r.key or "").endswith(name))


def _by_name(d: DaemonProcess) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in settled(d)}


def test_an_object_failing_every_read_gets_a_final_error_read_again_when_changed_or_asked(
        make_daemon: Any, s3: S3Env) -> None:
    bucket = s3.make_bucket()
    for i in range(3):
        s3.put(bucket, f"a/ok{i}.jpg", _small(i))
    s3.put(bucket, "a/bad1.jpg", _small(3))
    s3.put(bucket, "a/bad2.jpg", _big())
    s3.proxy.inject("status", method="GET", key="bad1.jpg", list_objects=False, times=None,
                    status=500)
    s3.proxy.inject("reset_mid_body", method="GET", key="bad2.jpg", list_objects=False,
                    times=None)
    d: DaemonProcess = make_daemon()
    add_bucket(d, s3, bucket, attempts=2)
    job = sync(d, timeout=240)
    assert job["state"] == "succeeded", job
    assert job["result"]["failed"] == {"server_error": 2}, job["result"]
    assert "could not be read" in job["result"]["message"]
    by_name = _by_name(d)
    assert all(by_name[f"ok{i}.jpg"]["status"] == "ok" for i in range(3))
    for name in ("bad1.jpg", "bad2.jpg"):
        bad = by_name[name]
        assert bad["status"] == "error" and bad["error_reason"] == "server_error", bad
        assert "given up after 2 rounds" in bad["error"] and "--retry" in bad["error"], bad
        # Bounded: attempts (2) reads per round, two rounds; then nothing more.
        assert _gets(s3, name) == 2 * ROUNDS, (name, _gets(s3, name))
    assert "500" in by_name["bad1.jpg"]["error"]
    got = d.call("photos.get", {"id": by_name["bad1.jpg"]["id"]})
    assert got["error_reason"] == "server_error"
    status = d.call("system.status")
    assert status["counts"]["error_reasons"].get("server_error") == 2, status["counts"]
    assert status["indexing"]["retrying"] == {}, status["indexing"]
    shown = run_cli("status", env={"LIGHTBOX_SOCKET": d.endpoint})
    assert shown.returncode == 0 and "2 server error" in shown.stdout, shown.stdout
    info = run_cli("info", str(by_name["bad1.jpg"]["id"]), env={"LIGHTBOX_SOCKET": d.endpoint})
    assert "server_error" in info.stdout, info.stdout
    src = d.call("sources.get", {"source": "cloud"})["source"]
    assert "could not be read" in (src["status"] or "") and "--retry" in src["status"]

    # Unchanged and not asked for: the next sync reads neither again.
    s3.proxy.reset_log()
    again = sync(d)
    assert again["state"] == "succeeded" and again["result"]["changed"] == 0
    assert _gets(s3, "bad1.jpg") == _gets(s3, "bad2.jpg") == 0
    assert all(r.is_list for r in s3.proxy.log())

    # The endpoint works again. bad1 changes: the sync reads it (and only it) again.
    s3.proxy.clear()
    new = _small(4)
    s3.put(bucket, "a/bad1.jpg", new)
    changed = sync(d)
    assert changed["result"]["changed"] == 1 and changed["result"]["retried"] == 0, changed
    by_name = _by_name(d)
    assert by_name["bad1.jpg"]["status"] == "ok"
    assert by_name["bad1.jpg"]["sha256"] == hashlib.sha256(new).hexdigest()
    assert by_name["bad1.jpg"]["error_reason"] is None
    assert by_name["bad2.jpg"]["status"] == "error" and _gets(s3, "bad2.jpg") == 0
    # bad2 is unchanged: read again only when asked.
    asked = sync(d, retry=True)
    assert asked["result"]["retried"] == 1 and asked["result"]["failed"] == {}, asked
    by_name = _by_name(d)
    assert by_name["bad2.jpg"]["status"] == "ok", by_name["bad2.jpg"]
    assert by_name["bad2.jpg"]["sha256"] == hashlib.sha256(_big()).hexdigest()
    assert d.call("sources.get", {"source": "cloud"})["source"]["status"] is None


def test_a_stalled_body_times_out_without_holding_the_only_worker(
        make_daemon: Any, s3: S3Env) -> None:
    """One worker process; one object's body stalls (connection open, nothing sent for ten
    minutes, a read timeout longer than the test). The others are read meanwhile, since
    the stall holds an I/O thread, not the worker; the stalled one ends with a lasting
    ``timeout`` error once its budget is spent, round after round."""
    bucket = s3.make_bucket()
    s3.put(bucket, "a/0-stalled.jpg", _big())    # first in id order: read first
    for i in range(5):
        s3.put(bucket, f"a/{i + 1}-fine.jpg", _small(i))
    s3.proxy.inject("stall_body", method="GET", key="stalled", list_objects=False,
                    times=None, delay=600)
    d: DaemonProcess = make_daemon(config={"workers": {"processes": 1}})
    add_bucket(d, s3, bucket, attempts=1, read_timeout=900, object_timeout=30)
    job = d.call("sources.sync", {"source": "cloud"})["job"]
    deadline = time.monotonic() + 180
    while True:
        now = {p["name"]: p for p in photos(d, "any")}
        if len(now) == 6 and all(now[f"{i + 1}-fine.jpg"]["status"] == "ok"
                                 for i in range(5)):
            break
        assert time.monotonic() < deadline, now
        time.sleep(0.2)
    # The others were read while the stalled body's first round (30 s + 10 s) still ran.
    stalled = d.call("photos.search", {"status": "any", "limit": 10})["photos"]
    first = next(p for p in stalled if p["name"] == "0-stalled.jpg")
    assert first["status"] == "pending", first
    done = wait(d, job, 300)
    assert done["state"] == "succeeded" and done["result"]["failed"] == {"timeout": 1}, done
    bad = _by_name(d)["0-stalled.jpg"]
    assert bad["status"] == "error" and bad["error_reason"] == "timeout", bad
    assert "did not finish within" in bad["error"], bad
    assert _gets(s3, "0-stalled.jpg") == ROUNDS   # the sniff's ranged GET each round, no more
