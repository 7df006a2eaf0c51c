"""Bucket sources through the control socket: originals (streamed and presigned), exact
duplicates across a root and a bucket, sources.test in words, errors that change nothing,
the mass-vanish guard, retries of object reads, and a SIGKILL in the middle of a sync.
"""

from __future__ import annotations

import hashlib
import shutil
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from lbtest import DaemonProcess
from s3daemon import CORPUS_JPEGS, add_bucket, photos, settled, sync, wait
from s3env import SECRET_KEY, S3Env, free_port

pytestmark = pytest.mark.skipif(not CORPUS_JPEGS, reason="the image corpus is not there")


def _bucket(s3: S3Env, n: int, prefix: str = "p/") -> tuple[str, dict[str, bytes]]:
    bucket = s3.make_bucket()
    objects = {f"{prefix}{i // 10}/{i:03d}-{CORPUS_JPEGS[i % len(CORPUS_JPEGS)].name}":
               CORPUS_JPEGS[i % len(CORPUS_JPEGS)].read_bytes() for i in range(n)}
    for key, data in objects.items():
        s3.put(bucket, key, data)
    return bucket, objects


def test_originals_streamed_and_presigned_and_duplicates_with_a_root(
        make_daemon: Any, s3: S3Env, tmp_path: Path) -> None:
    bucket, _ = _bucket(s3, 3)
    root = tmp_path / "pics"
    root.mkdir()
    shutil.copy(CORPUS_JPEGS[1], root / "local-copy.jpg")
    d: DaemonProcess = make_daemon()
    wait(d, d.call("roots.add", {"path": str(root)})["job"])
    add_bucket(d, s3, bucket)
    assert sync(d)["state"] == "succeeded"
    settled(d)
    bucket_photos = [p for p in photos(d) if p["name"] != "local-copy.jpg"]
    assert len(bucket_photos) == 3
    # Streamed through the daemon in chunks, bytes and sha256 right.
    target = next(p for p in bucket_photos if p["name"].endswith(CORPUS_JPEGS[1].name))
    want = CORPUS_JPEGS[1].read_bytes()
    got = bytearray()
    with d.client() as c:
        offset = 0
        while True:
            reply = c.call("photos.original", {"id": target["id"], "offset": offset,
                                               "length": 4096})
            got += reply["data"]
            offset += reply["length"]
            if reply["eof"]:
                break
    assert bytes(got) == want and reply["sha256"] == hashlib.sha256(want).hexdigest()
    # Presigned: a plain HTTP GET of the URL returns the object; the expiry is capped.
    signed = d.call("photos.original", {"id": target["id"], "presign": True,
                                        "expires": 7 * 86400})
    assert signed["expires_in"] == 7 * 86400 and "X-Amz-Signature" in signed["url"]
    with urllib.request.urlopen(signed["url"], timeout=30) as resp:
        assert resp.read() == want
    short = d.call("photos.original", {"id": target["id"], "presign": True, "expires": 60})
    assert short["expires_in"] == 60 and "X-Amz-Expires=60" in short["url"]
    # The same photo in the root and in the bucket is one exact-duplicate group.
    groups = d.call("photos.duplicates", {"kind": "exact"})["groups"]
    mixed = [g for g in groups if {"local-copy.jpg", target["name"]} <=
             {p["name"] for p in g["photos"]}]
    assert mixed, groups
    # A local photo has no presigned URL.
    local = next(p for p in photos(d) if p["name"] == "local-copy.jpg")
    with d.client() as c:
        from lightbox.common.errors import InvalidParams
        with pytest.raises(InvalidParams):
            c.call("photos.original", {"id": local["id"], "presign": True})


def test_sources_test_names_the_failing_check(make_daemon: Any, s3: S3Env) -> None:
    bucket, objects = _bucket(s3, 1)
    d: DaemonProcess = make_daemon()
    add_bucket(d, s3, bucket)
    good = d.call("sources.test", {"source": "cloud"})
    assert good["ok"] and good["failed"] is None
    assert [c["name"] for c in good["checks"]] == ["endpoint", "tls", "clock_skew",
                                                   "credentials", "bucket", "list", "get"]
    base = {"endpoint": s3.endpoint, "access_key_id": "AKIDX", "secret_access_key": "s",
            "addressing_style": "path"}
    missing = d.call("sources.test", {**base, "bucket": "no-such-bucket-here"})
    assert missing["failed"] == "bucket" and "does not exist" in missing["message"]
    gone = d.call("sources.test", {**base, "bucket": bucket,
                                   "endpoint": f"http://127.0.0.1:{free_port()}"})
    assert gone["failed"] == "endpoint" and "cannot reach" in gone["message"]
    s3.proxy.inject("status", list_objects=True, status=403, code="InvalidAccessKeyId")
    creds = d.call("sources.test", {"source": "cloud"})
    assert creds["failed"] == "credentials" and "access key" in creds["message"]
    s3.proxy.clear()
    # Every GET of the object, not only the first GET of any kind: under load the one-shot
    # rule was spent elsewhere and the check passed (failed None).
    s3.proxy.inject("status", method="GET", list_objects=False, key=next(iter(objects)),
                    times=None, status=403, code="AccessDenied")
    denied = d.call("sources.test", {"source": "cloud"})
    s3.proxy.clear()
    assert denied["failed"] == "get" and "s3:GetObject" in denied["message"]
    assert SECRET_KEY not in str([good, missing, gone, creds, denied])


def test_errors_a_user_can_act_on_change_nothing(make_daemon: Any, s3: S3Env) -> None:
    bucket, objects = _bucket(s3, 60)
    d: DaemonProcess = make_daemon()
    add_bucket(d, s3, bucket)
    assert sync(d)["state"] == "succeeded"
    before = {p["id"]: p["status"] for p in settled(d)}
    assert len(before) == 60
    s3.proxy.inject("status", list_objects=True, status=403, code="SignatureDoesNotMatch")
    job = sync(d)
    assert job["state"] == "failed" and job["result"]["reason"] == "credentials"
    assert "secret" in job["error"]
    src = d.call("sources.get", {"source": "cloud"})["source"]
    assert not src["online"] and "credentials" in src["status"]
    assert {p["id"]: p["status"] for p in photos(d, "any")} == before
    # More gone at once than the mass-vanish guard allows (max(50, 10 %)): held as suspect.
    s3.proxy.clear()
    for key in list(objects)[:55]:
        s3.delete(bucket, key)
    held = sync(d)
    assert held["state"] == "failed" and held["result"]["reason"] == "mass_vanish", held
    assert "55 of 60" in held["error"] and held["result"]["suspect"] == 55
    assert {p["id"]: p["status"] for p in photos(d, "any")} == before
    forced = sync(d, force=True)
    assert forced["state"] == "succeeded" and forced["result"]["missing"] == 55
    assert d.call("sources.get", {"source": "cloud"})["source"]["online"]


def test_object_reads_are_retried_honouring_retry_after(make_daemon: Any, s3: S3Env) -> None:
    bucket, objects = _bucket(s3, 2)
    key = next(iter(objects))
    # Corpus photos are smaller than the sniff: their one (ranged) GET is what is faulted.
    s3.proxy.inject("slowdown", method="GET", key=key.rpartition("/")[2], list_objects=False,
                    retry_after=1, times=1)
    s3.proxy.inject("reset_mid_body", method="GET", key=list(objects)[1].rpartition("/")[2],
                    list_objects=False, times=1)
    d: DaemonProcess = make_daemon()
    add_bucket(d, s3, bucket)
    assert sync(d)["state"] == "succeeded"
    assert all(p["status"] == "ok" for p in settled(d))
    log = [r for r in s3.proxy.log() if r.key == key and r.method == "GET"]
    assert [r.status for r in log][:2] in ([503, 200], [503, 206]), [r.status for r in log]


def test_sigkill_during_a_sync_loses_nothing_and_reads_nothing_twice(
        make_daemon: Any, s3: S3Env) -> None:
    bucket, _ = _bucket(s3, 40)
    # Slow object reads (not listings) so the kill lands in the middle of processing.
    s3.proxy.inject("delay", method="GET", list_objects=False, delay=0.4, times=None)
    d: DaemonProcess = make_daemon(config={"workers": {"processes": 2}})
    job = add_bucket(d, s3, bucket, sync=True)["job"]
    deadline = time.monotonic() + 90
    while True:
        done_before = {p["name"] for p in photos(d, "ok")}
        if len(done_before) >= 5:
            break
        assert time.monotonic() < deadline, "nothing was processed"
        time.sleep(0.2)
    state = d.call("jobs.get", {"id": job})["state"]
    d.kill()
    assert state == "running", "the sync ended before the kill; use more objects"
    done_before = {p["name"] for p in photos_offline(d)}
    s3.proxy.clear()
    d.start()
    finished = wait(d, job, 180)
    assert finished["state"] == "succeeded", finished
    everything = settled(d)
    assert len(everything) == 40 and all(p["status"] == "ok" for p in everything)
    assert len({p["name"] for p in everything}) == 40
    # What was written before the kill was not downloaded again.
    again = {r.key.rpartition("/")[2] for r in s3.proxy.log()
             if r.key and r.method == "GET"}
    assert not (again & done_before), again & done_before


def photos_offline(d: DaemonProcess) -> list[dict[str, Any]]:
    """Photos indexed ok, read from the catalog file of a stopped daemon."""
    import sqlite3

    db = next(d.data_dir.rglob("catalog.db")) if list(d.data_dir.rglob("catalog.db")) \
        else next(d.data_dir.rglob("*.db"))
    con = sqlite3.connect(db)
    try:
        return [{"name": r[0]} for r in con.execute(
            "SELECT name FROM photos WHERE status = 'ok'")]
    finally:
        con.close()


def test_a_bucket_syncs_on_its_interval_by_itself(make_daemon: Any, s3: S3Env) -> None:
    bucket, _ = _bucket(s3, 2)
    d: DaemonProcess = make_daemon()
    add_bucket(d, s3, bucket, interval=2)       # no sync asked for: the schedule starts one
    deadline = time.monotonic() + 90
    while True:
        jobs = [j for j in d.call("jobs.list", {"limit": 50})["jobs"] if j["kind"] == "sync"]
        done = [j for j in jobs if j["state"] == "succeeded"]
        if len(done) >= 2:
            break
        assert time.monotonic() < deadline, jobs
        time.sleep(0.5)
    assert sum(p["status"] == "ok" for p in settled(d)) == 2
    # New objects arrive by themselves on the next scheduled sync.
    s3.put(bucket, "late/arrival.jpg", CORPUS_JPEGS[3].read_bytes())
    deadline = time.monotonic() + 90
    while "arrival.jpg" not in {p["name"] for p in photos(d)}:
        assert time.monotonic() < deadline, "the scheduled sync did not pick it up"
        time.sleep(0.5)


def test_tls_failure_and_clock_skew_in_words(make_daemon: Any, s3: S3Env) -> None:
    bucket, _ = _bucket(s3, 1)
    d: DaemonProcess = make_daemon()
    # https:// to a plain-HTTP endpoint: the handshake fails.
    tls = d.call("sources.test", {"endpoint": s3.endpoint.replace("http://", "https://"),
                                  "bucket": bucket, "access_key_id": "AKIDX",
                                  "secret_access_key": "s", "addressing_style": "path"},
                 timeout=60)
    assert tls["failed"] == "tls" and "TLS" in tls["message"], tls
    add_bucket(d, s3, bucket)
    s3.proxy.inject("status", list_objects=True, status=403, code="RequestTimeTooSkewed")
    job = sync(d)
    assert job["state"] == "failed" and job["result"]["reason"] == "clock_skew", job
    assert "clock" in job["error"] and "NTP" in job["error"]
    assert photos(d, "any") == []


def test_credentials_from_a_profile_of_the_aws_files(make_daemon: Any, s3: S3Env,
                                                     tmp_path: Path) -> None:
    bucket, _ = _bucket(s3, 1)
    creds = tmp_path / "credentials"
    creds.write_text("[lbtest]\naws_access_key_id = AKIDFROMPROFILE\n"
                     "aws_secret_access_key = profile-secret\n")
    d: DaemonProcess = make_daemon(env={"AWS_SHARED_CREDENTIALS_FILE": str(creds),
                                        "AWS_CONFIG_FILE": str(tmp_path / "config")})
    common = {"kind": "s3", "endpoint": s3.endpoint, "bucket": bucket,
              "addressing_style": "path", "sync": False}
    d.call("sources.add", {**common, "name": "prof", "credentials_profile": "lbtest"})
    s3.proxy.reset_log()
    assert sync(d, "prof")["state"] == "succeeded"
    signed = [r.headers.get("authorization", "") for r in s3.proxy.log() if r.is_list]
    assert signed and all("Credential=AKIDFROMPROFILE/" in a for a in signed)
    with pytest.raises(Exception, match="overlaps the source prof"):
        d.call("sources.add", {**common, "name": "again", "prefix": "p/0"})
    other, _ = _bucket(s3, 1)
    d.call("sources.add", {**common, "bucket": other, "name": "noprof",
                           "credentials_profile": "nope"})
    job = sync(d, "noprof")
    assert job["state"] == "failed" and job["result"]["reason"] == "credentials", job
    assert "nope" in job["error"]


def test_sigterm_during_a_long_listing_stops_at_once_and_resumes(make_daemon: Any,
                                                                  s3: S3Env) -> None:
    bucket, _ = _bucket(s3, 30)
    s3.proxy.inject("delay", list_objects=True, delay=1.0, times=None)
    d: DaemonProcess = make_daemon()
    job = add_bucket(d, s3, bucket, page_size=1, sync=True)["job"]   # 30 slow pages
    deadline = time.monotonic() + 60
    while True:
        got = d.call("jobs.get", {"id": job})
        if got["state"] == "running" and got["phase"] == "listing" and got["processed"]:
            break
        assert time.monotonic() < deadline, got
        time.sleep(0.2)
    started = time.monotonic()
    assert d.stop(timeout=30) == 0
    assert time.monotonic() - started < 15, "the listing kept the daemon alive"
    assert "Traceback" not in d.log().split("stopping", 1)[-1]
    s3.proxy.clear()
    d.start()
    done = wait(d, job, 120)
    assert done["state"] == "succeeded" and done["result"]["listed"] == 30, done
    assert len(photos(d, "any")) == 30


def test_a_presigned_url_never_outlives_temporary_credentials(make_daemon: Any, s3: S3Env,
                                                              tmp_path: Path) -> None:
    """Credentials from a ``credential_process`` that expire in 20 minutes: a URL asked for
    a week is valid for at most those 20 minutes."""
    import datetime as dt
    import json
    import sys

    bucket, _ = _bucket(s3, 1)
    expires = (dt.datetime.now(dt.UTC) + dt.timedelta(minutes=20)).strftime(
        "%Y-%m-%dT%H:%M:%SZ")
    script = tmp_path / "creds.py"
    script.write_text("import json\nprint(json.dumps(" + json.dumps({
        "Version": 1, "AccessKeyId": "ASIATEMPORARY", "SecretAccessKey": "temp-secret",
        "SessionToken": "token", "Expiration": expires}) + "))\n")
    config = tmp_path / "config"
    config.write_text(f"[profile temp]\ncredential_process = {sys.executable} {script}\n")
    d: DaemonProcess = make_daemon(env={"AWS_CONFIG_FILE": str(config),
                                        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "none")})
    d.call("sources.add", {"kind": "s3", "name": "temp", "endpoint": s3.endpoint,
                           "bucket": bucket, "addressing_style": "path",
                           "credentials_profile": "temp", "sync": False})
    assert sync(d, "temp")["state"] == "succeeded"
    photo = settled(d)[0]
    signed = d.call("photos.original", {"id": photo["id"], "presign": True,
                                        "expires": 7 * 86400})
    assert 0 < signed["expires_in"] <= 20 * 60, signed
    assert "ASIATEMPORARY" in signed["url"]


def test_an_overwritten_object_is_read_again_and_thumbnails_are_made_on_demand(
        make_daemon: Any, s3: S3Env) -> None:
    bucket, objects = _bucket(s3, 2)
    d: DaemonProcess = make_daemon()
    add_bucket(d, s3, bucket)
    assert sync(d)["state"] == "succeeded"
    key = next(iter(objects))
    photo = next(p for p in settled(d) if key.endswith(p["name"]))
    # Overwritten behind the catalog's back: serving it is refused (If-Match), and the
    # photo is read again under the object's new ETag without waiting for a sync.
    new = CORPUS_JPEGS[7].read_bytes()
    s3.put(bucket, key, new)
    from lightbox.common.errors import NotFound
    with d.client() as c, pytest.raises(NotFound) as info:
        c.call("photos.original", {"id": photo["id"]})
    assert info.value.data["reason"] == "changed"
    want = hashlib.sha256(new).hexdigest()
    deadline = time.monotonic() + 60
    while True:
        got = d.call("photos.get", {"id": photo["id"]})
        if got["status"] == "ok" and got["sha256"] == want:
            break
        assert time.monotonic() < deadline, got
        time.sleep(0.3)
    # A thumbnail deleted from the cache is made again from the bucket.
    other = next(p for p in photos(d) if p["id"] != photo["id"])
    cached = [f for f in d.data_dir.rglob(f"{other['sha256']}*") if "grid" in str(f)]
    assert cached, "the grid thumbnail was not where the test looks"
    for f in cached:
        f.unlink()
    thumb = d.call("photos.thumbnail", {"id": other["id"], "size": "grid"})
    assert thumb["bytes"] > 0 and thumb["data"][:2] == b"\xff\xd8"


def test_a_bucket_without_credentials_uses_the_library_wide_ones(make_daemon: Any,
                                                                 s3: S3Env) -> None:
    bucket, _ = _bucket(s3, 1)
    d: DaemonProcess = make_daemon(env={"LIGHTBOX_S3_ACCESS_KEY_ID": "AKIDLIBRARYWIDE",
                                        "LIGHTBOX_S3_SECRET_ACCESS_KEY": "wide-secret"})
    d.call("sources.add", {"kind": "s3", "name": "plain", "endpoint": s3.endpoint,
                           "bucket": bucket, "addressing_style": "path", "sync": False})
    s3.proxy.reset_log()
    assert sync(d, "plain")["state"] == "succeeded"
    signed = [r.headers.get("authorization", "") for r in s3.proxy.log() if r.key]
    assert signed and all("Credential=AKIDLIBRARYWIDE/" in a for a in signed)
    assert "wide-secret" not in d.log()


def test_a_bucket_is_changed_in_place_its_photos_kept_and_every_change_audited(
        make_daemon: Any, s3: S3Env, tmp_path: Path) -> None:
    """``sources.update``: a new endpoint takes effect on the next request (a wrong one
    fails the sync and changes nothing; the right one again finds the same photos, none
    read twice), the bucket and prefix cannot change, a new key needs its secret; each
    change is audited per key, a secret only as its fingerprint, never in the log."""
    from lightbox.common import errors

    bucket, objects = _bucket(s3, 3)
    d: DaemonProcess = make_daemon()
    src = add_bucket(d, s3, bucket)["source"]
    assert sync(d)["state"] == "succeeded"
    before = {p["id"]: p["sha256"] for p in settled(d)}
    assert len(before) == len(objects)

    out = d.call("sources.update", {"source": "cloud", "interval": 7200, "page_size": 2,
                                    "attempts": 3, "read_timeout": 30})
    assert sorted(out["changed"]) == ["attempts", "interval", "page_size", "read_timeout"]
    cfg = out["source"]["config"]
    assert (cfg["interval"], cfg["page_size"], cfg["attempts"], cfg["read_timeout"]) == (
        7200, 2, 3, 30)
    assert cfg["bucket"] == bucket and cfg["endpoint"] == s3.endpoint
    again = d.call("sources.update", {"source": "cloud", "interval": 7200})
    assert again["changed"] == []

    dead = f"http://127.0.0.1:{free_port()}"
    assert d.call("sources.update", {"source": src["id"], "endpoint": dead})["changed"] == [
        "endpoint"]
    failed = sync(d)
    assert failed["state"] == "failed" and failed["result"]["reason"] == "endpoint", failed
    assert {p["id"]: p["sha256"] for p in settled(d) if p["status"] == "ok"} == before
    d.call("sources.update", {"source": "cloud", "endpoint": s3.endpoint})
    fine = sync(d)
    assert fine["state"] == "succeeded", fine
    assert {p["id"]: p["sha256"] for p in settled(d)} == before   # same photos, same ids

    with pytest.raises(errors.Conflict) as refused:
        d.call("sources.update", {"source": "cloud", "bucket": bucket + "-other"})
    assert refused.value.data["reason"] == "identity"
    with pytest.raises(errors.Conflict):
        d.call("sources.update", {"source": "cloud", "prefix": "elsewhere/"})
    assert d.call("sources.update", {"source": "cloud", "bucket": bucket})["changed"] == []
    with pytest.raises(errors.InvalidParams) as no_secret:
        d.call("sources.update", {"source": "cloud", "access_key_id": "AKIDNEWKEY"})
    assert "secret_access_key" in no_secret.value.data["errors"]
    old_fp = d.call("sources.get", {"source": "cloud"})["source"]["secrets"][
        "secret_access_key"]["fingerprint"]
    new_secret = "a-brand-new-secret-for-the-new-key-000000"
    rotated = d.call("sources.update", {"source": "cloud", "access_key_id": "AKIDNEWKEY",
                                        "secret_access_key": new_secret})
    assert sorted(rotated["changed"]) == ["access_key_id", "secret_access_key"]
    new_fp = rotated["source"]["secrets"]["secret_access_key"]["fingerprint"]
    assert new_fp and new_fp != old_fp
    cleared = d.call("sources.update", {"source": "cloud", "clear": ["access_key_id"]})
    assert sorted(cleared["changed"]) == ["access_key_id", "secret_access_key"]
    assert not cleared["source"]["secrets"]["secret_access_key"]["set"]
    with pytest.raises(errors.InvalidParams):
        d.call("sources.update", {"source": "cloud", "clear": ["bucket"]})

    root = tmp_path / "pics"
    root.mkdir()
    local = d.call("roots.add", {"path": str(root), "scan": False})["root"]
    with pytest.raises(errors.InvalidParams):
        d.call("sources.update", {"source": local["id"], "interval": 60})

    entries = d.call("settings.audit", {"limit": 50})["entries"]
    mine = [e for e in entries if e["action"].startswith("sources.")]
    assert [e["action"] for e in mine] == ["sources.update"] * 5 + ["sources.add"]
    keys = [sorted(c["key"] for c in e["changes"]) for e in mine]
    sid = src["id"]
    assert keys[-2] == sorted(f"sources.{sid}.{k}" for k in (
        "attempts", "interval", "page_size", "read_timeout"))
    assert keys[1] == [f"sources.{sid}.access_key_id", f"sources.{sid}.secret_access_key"]
    secret_change = next(c for c in mine[1]["changes"] if c["key"].endswith("secret_access_key"))
    assert secret_change["old"] == {"set": True, "fingerprint": old_fp}
    assert secret_change["new"] == {"set": True, "fingerprint": new_fp}
    added = mine[-1]["changes"][0]
    assert added["key"] == f"sources.{sid}" and added["new"]["bucket"] == bucket
    history = d.call("settings.audit", {"key": f"sources.{sid}.endpoint"})["entries"]
    assert [(e["changes"][0]["old"], e["changes"][0]["new"]) for e in history] == [
        (dead, s3.endpoint), (s3.endpoint, dead)]
    assert all(e["by"] for e in mine)
    d.call("sources.remove", {"source": "cloud"})
    gone = d.call("settings.audit", {"key": f"sources.{sid}"})["entries"][0]
    assert gone["action"] == "sources.remove" and gone["changes"][0]["new"] is None
    assert gone["changes"][0]["old"]["bucket"] == bucket
    text = str(d.call("settings.audit", {"limit": 100})) + d.log_path.read_text()
    assert SECRET_KEY not in text and new_secret not in text
