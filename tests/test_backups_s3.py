"""Backups to an S3 bucket (moto's server over real HTTP, through the suite's fault proxy):
full and incremental runs, the open format as objects (a downloaded prefix checks with
``sha256sum -c``), the checksum sent with every upload, verify, restore, a bucket that is
not the target, an endpoint failing mid-run, and the secret never shown again."""

from __future__ import annotations

import hashlib
import json
import sqlite3
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from lbtest import DaemonProcess, run_cli
from s3env import ACCESS_KEY, REGION, SECRET_KEY, S3Env

from lightbox.daemon.library.sources import secret_fingerprint
from lightbox.daemon.media.samples import make_photo, save_jpeg

SCAN_ONLY = {"library": {"watch": False, "reconcile_interval": 0}}


def wait(d: DaemonProcess, job: int, timeout: float = 120) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        done: dict[str, Any] = d.call("jobs.wait", {"id": job, "timeout": 30}, timeout=40)
        if done["state"] in ("succeeded", "failed", "cancelled"):
            return done
        assert time.monotonic() < deadline, done


def backup(d: DaemonProcess, **params: Any) -> dict[str, Any]:
    return wait(d, d.call("backups.run", {"target": "cloud", **params})["job"])


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def cloud(make_daemon: Any, tmp_path: Path, s3: S3Env) -> tuple[DaemonProcess, Path, S3Env,
                                                                 str]:
    d: DaemonProcess = make_daemon(config=SCAN_ONLY)
    root = tmp_path / "photos"
    for i in range(5):
        save_jpeg(make_photo(80, 80, seed=i), root / ("a" if i % 2 else "b") / f"p{i}.jpg")
    d.call("roots.add", {"path": str(root), "name": "photos", "scan": False})
    assert wait(d, d.call("library.scan", {})["job"])["state"] == "succeeded"
    bucket = s3.make_bucket()
    d.call("backups.add", {"name": "cloud", "kind": "s3", "bucket": bucket,
                           "prefix": "lightbox/", "endpoint_url": s3.endpoint,
                           "region": REGION, "access_key_id": ACCESS_KEY,
                           "secret_access_key": SECRET_KEY})
    return d, root, s3, bucket


def photo_keys(s3: S3Env, bucket: str) -> dict[str, str]:
    return {k.removeprefix("lightbox/"): sha(s3.get(bucket, k))
            for k in s3.keys(bucket, "lightbox/photos/")}


def test_bucket_target_runs_verifies_and_restores(cloud: Any, tmp_path: Path) -> None:
    d, root, s3, bucket = cloud
    listed = d.call("backups.list")["targets"][0]
    assert listed["kind"] == "s3" and listed["bucket"] == bucket
    assert listed["secret_access_key"] == "set"
    assert listed["secret_access_key_fingerprint"] == secret_fingerprint(SECRET_KEY)
    assert SECRET_KEY not in str(d.call("backups.list"))
    assert SECRET_KEY not in d.log()
    # Audited (who added it, with what), the secret as "set" and its fingerprint only.
    audit = d.call("settings.audit", {"key": "backup_targets.cloud"})["entries"]
    assert [e["action"] for e in audit] == ["backups.add"]
    assert audit[0]["changes"][0]["new"]["secret_access_key"] == "set"
    assert SECRET_KEY not in str(d.call("settings.audit", {"limit": 100}))
    # Stored like a bucket source's secret: apart, never in the target's config row.
    con = sqlite3.connect(f"file:{d.data_dir / 'catalog.db'}?mode=ro", uri=True, timeout=30)
    try:
        (config,) = con.execute("SELECT config FROM backup_targets").fetchone()
        held = con.execute("SELECT name, value FROM backup_target_secrets").fetchall()
    finally:
        con.close()
    assert SECRET_KEY not in config and "secret_access_key" not in json.loads(config)
    assert held == [("secret_access_key", SECRET_KEY)]
    s3.proxy.reset_log()
    first = backup(d)
    assert first["state"] == "succeeded", first
    assert first["result"]["copied"] == 5
    on_target = photo_keys(s3, bucket)
    originals = {f"photos/{p.relative_to(root).as_posix()}": sha(p.read_bytes())
                 for p in root.rglob("*.jpg")}
    assert on_target == originals
    # Every upload of a photo carried its sha256 for the endpoint to check.
    puts = [r for r in s3.proxy.log() if r.method == "PUT" and "/photos/" in r.path]
    assert len(puts) == 5
    assert all(r.headers.get("x-amz-checksum-sha256") for r in puts)
    # The open format: download the prefix, check it with coreutils.
    down = tmp_path / "download"
    for key in s3.keys(bucket, "lightbox/"):
        path = down / key.removeprefix("lightbox/")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(s3.get(bucket, key))
    check = subprocess.run(["sha256sum", "-c", "--strict", "SHA256SUMS"], cwd=down,
                           capture_output=True, text=True)
    assert check.returncode == 0 and check.stdout.count(": OK") == 5, check.stdout
    assert (down / "README.txt").is_file() and (down / ".lightbox-target").is_file()

    # Incremental: one new photo, one changed (the old version stays).
    save_jpeg(make_photo(80, 80, seed=50), root / "a" / "new.jpg")
    changed = root / "a" / "p1.jpg"
    old = s3.get(bucket, "lightbox/photos/a/p1.jpg")
    save_jpeg(make_photo(80, 80, seed=51), changed)
    assert wait(d, d.call("library.scan", {})["job"])["state"] == "succeeded"
    again = backup(d)
    assert again["result"]["copied"] == 2, again
    assert s3.get(bucket, "lightbox/photos/a/p1.jpg") == old
    new_sha = sha(changed.read_bytes())
    assert s3.get(bucket, f"lightbox/photos/a/p1.{new_sha[:8]}.jpg") == changed.read_bytes()
    assert backup(d)["result"]["copied"] == 0

    # Verify: one object's bytes changed, one deleted, one stray.
    s3.put(bucket, "lightbox/photos/b/p0.jpg", b"rotten")
    s3.delete(bucket, "lightbox/photos/b/p2.jpg")
    s3.put(bucket, "lightbox/photos/stray.jpg", b"x")
    done = wait(d, d.call("backups.verify", {"target": "cloud", "all": True})["job"])
    r = done["result"]
    assert r["changed"] == ["photos/b/p0.jpg"] and r["missing"] == ["photos/b/p2.jpg"]
    assert r["extra"] == ["photos/stray.jpg"] and r["ok"] == 5

    # Restore a folder: the original bytes, hash-checked.
    dest = tmp_path / "restored"
    res = wait(d, d.call("backups.restore", {"target": "cloud", "dest": str(dest),
                                             "folder": str(root / "a")})["job"])
    assert res["state"] == "succeeded", res
    assert res["result"]["counts"] == {"restored": 3}, res["result"]
    for p in (root / "a").iterdir():
        assert (dest / "photos" / "a" / p.name).read_bytes() == p.read_bytes()
    # A damaged object is not restored as if it were the photo.
    bad = wait(d, d.call("backups.restore", {"target": "cloud", "dest": str(dest),
                                             "folder": str(root / "b")})["job"])
    assert bad["result"]["counts"].get("damaged") == 1, bad["result"]
    assert not (dest / "photos" / "b" / "p0.jpg").exists()


def test_a_bucket_that_is_not_the_target_or_fails_mid_run(cloud: Any) -> None:
    d, _, s3, bucket = cloud
    s3.delete(bucket, "lightbox/.lightbox-target")  # another bucket, or a wiped one
    done = backup(d)
    assert done["state"] == "failed" and done["result"]["reason"] == "target_missing"
    assert s3.keys(bucket, "lightbox/photos/") == []
    status = d.call("backups.status")["targets"][0]
    assert not status["online"] and "marker" in status["problem"]
    # Put the marker back, then let the endpoint fail on the third photo.
    marker = d.call("backups.list")["targets"][0]
    assert marker["where"] == f"s3://{bucket}/lightbox/"
    d.call("backups.remove", {"target": "cloud"})
    d.call("backups.add", {"name": "cloud", "kind": "s3", "bucket": bucket,
                           "prefix": "lightbox/", "endpoint_url": s3.endpoint,
                           "region": REGION, "access_key_id": ACCESS_KEY,
                           "secret_access_key": SECRET_KEY})
    s3.proxy.inject("status", times=None, after=2,
                    match=lambda req: req.method == "PUT" and "/photos/" in req.path)
    failed = backup(d)
    assert failed["state"] == "failed", failed
    copied = failed["result"]["copied"]
    assert copied == 2, failed["result"]
    s3.proxy.clear()
    ok = backup(d)
    assert ok["state"] == "succeeded" and ok["result"]["copied"] == 3, ok["result"]
    assert len(s3.keys(bucket, "lightbox/photos/")) == 5


def test_the_command_line_adds_a_bucket_without_the_secret_on_it(cloud: Any) -> None:
    d, _, s3, bucket = cloud
    env = {"LIGHTBOX_DATA_DIR": str(d.data_dir)}
    r = run_cli("backup", "add", "cloud2", f"s3://{bucket}/second", "--endpoint-url",
                s3.endpoint, "--region", REGION, "--access-key-id", ACCESS_KEY,
                "--secret-key-file", "-", "--schedule", "none", env=env,
                input=SECRET_KEY.encode() + b"\n")
    assert r.returncode == 0, r.stderr
    assert f"s3://{bucket}/second/" in r.stdout and "schedule: manual" in r.stdout
    assert SECRET_KEY not in r.stdout + r.stderr
    r = run_cli("backup", "run", "cloud2", "--wait", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert len(s3.keys(bucket, "second/photos/")) == 5


def test_a_photo_over_64_mb_goes_up_in_parts_each_checksummed(cloud: Any) -> None:
    """A file larger than one PutObject takes (64 MB) is uploaded in 16 MB parts, each
    with its sha256 for the endpoint to check; a part the endpoint fails once is sent
    again; the object stored is the photo byte for byte (its composite checksum is not the
    file's sha256, so it is read back), and a verify of it passes."""
    from lightbox.daemon.backups.s3 import PART_SIZE, SINGLE_PUT_MAX

    d, root, s3, bucket = cloud
    big = root / "big" / "pano.jpg"
    save_jpeg(make_photo(64, 64, seed=70), big)
    with big.open("ab") as f:  # bytes after the end marker: still a JPEG, 70 MB of it
        block = bytes(range(256)) * 4096
        while f.tell() < SINGLE_PUT_MAX + 6 * (1 << 20):
            f.write(block)
    data = big.read_bytes()
    parts = -(-len(data) // PART_SIZE)
    assert parts >= 5
    assert wait(d, d.call("library.scan", {})["job"])["state"] == "succeeded"
    deadline = time.monotonic() + 120
    while d.call("roots.list")["roots"][0]["pending"]:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    s3.proxy.reset_log()
    s3.proxy.inject("status", times=1, after=1,
                    match=lambda req: req.method == "PUT" and "partNumber" in req.query)
    done = backup(d)
    assert done["state"] == "succeeded", done
    assert done["result"]["copied"] == 6, done["result"]
    log = s3.proxy.log()
    started = [r for r in log if r.method == "POST" and "uploads" in r.query
               and "big/pano.jpg" in r.path]
    assert len(started) == 1
    sent = [r for r in log if r.method == "PUT" and "partNumber" in r.query]
    assert len(sent) == parts + 1  # one part failed once and was sent again
    assert all(r.headers.get("x-amz-checksum-sha256") for r in sent)
    assert sorted({int(r.query["partNumber"]) for r in sent}) == list(range(1, parts + 1))
    assert any(r.method == "POST" and "uploadId" in r.query for r in log)  # completed
    assert sha(s3.get(bucket, "lightbox/photos/big/pano.jpg")) == sha(data)
    verify = wait(d, d.call("backups.verify", {"target": "cloud", "all": True})["job"])
    assert verify["result"]["ok"] == 6 and not verify["result"]["changed"], verify["result"]


def test_a_bucket_source_named_by_a_target_is_backed_up(cloud: Any, tmp_path: Path) -> None:
    """A bucket source included in a target (by name: a bucket is never backed up by
    default) has its photos read through the source kind (GetObject If-Match the ETag,
    streamed through sha256 into the local target), under the same manifest rules: only
    what the target lacks, SHA256SUMS checks with coreutils, a rerun copies nothing; a
    bucket whose last sync failed is skipped with its reason, never treated as empty; the
    same bucket backed up to a bucket target (the other side of the seam)."""
    from s3daemon import add_bucket, settled
    from s3daemon import sync as sync_bucket

    d, _, s3, target_bucket = cloud
    src_bucket = s3.make_bucket()
    originals: dict[str, bytes] = {}
    for i in range(4):
        path = tmp_path / f"b{i}.jpg"
        save_jpeg(make_photo(72, 72, seed=200 + i), path)
        key = f"trip/{'day1' if i < 2 else 'day2'}/b{i}.jpg"
        s3.put(src_bucket, key, path)
        originals[key] = path.read_bytes()
    add_bucket(d, s3, src_bucket, name="bucket")
    assert sync_bucket(d, "bucket")["state"] == "succeeded"
    assert sum(1 for p in settled(d) if p["status"] == "ok") == 5 + 4
    nas = tmp_path / "nas"
    nas.mkdir()
    d.call("backups.add", {"name": "nas", "path": str(nas), "roots": ["photos", "bucket"]})
    (tmp_path / "all").mkdir()
    d.call("backups.add", {"name": "all", "path": str(tmp_path / "all")})
    s3.proxy.reset_log()
    first = wait(d, d.call("backups.run", {"target": "nas"})["job"])
    assert first["state"] == "succeeded", first
    assert first["result"]["copied"] == 9, first["result"]
    for key, data in originals.items():
        assert (nas / "bucket" / key).read_bytes() == data
    gets = [r for r in s3.proxy.log() if r.method == "GET" and r.bucket == src_bucket
            and r.key and r.key.endswith(".jpg")]
    assert len(gets) == 4 and all(r.headers.get("if-match") for r in gets)
    check = subprocess.run(["sha256sum", "-c", "--strict", "SHA256SUMS"], cwd=nas,
                           capture_output=True, text=True)
    assert check.returncode == 0 and check.stdout.count(": OK") == 9, check.stdout
    status = d.call("backups.status", {"target": "nas"})["targets"][0]
    assert status["not_backed_up"] == 0
    s3.proxy.reset_log()
    again = wait(d, d.call("backups.run", {"target": "nas"})["job"])
    assert again["result"]["copied"] == 0
    assert not [r for r in s3.proxy.log() if r.bucket == src_bucket]  # the manifest knows
    # Not named: a target of "every root" leaves the bucket out.
    done = wait(d, d.call("backups.run", {"target": "all"})["job"])
    assert done["result"]["copied"] == 5 and not (tmp_path / "all" / "bucket").exists()

    # The bucket fails to sync (its endpoint refuses): the next backup skips it.
    s3.put(src_bucket, "trip/day2/new.jpg", originals["trip/day1/b0.jpg"] + b"x")
    s3.proxy.inject("status", times=None, status=403, code="AccessDenied",
                    match=lambda req: req.bucket == src_bucket)
    assert sync_bucket(d, "bucket")["state"] == "failed"
    skipped = wait(d, d.call("backups.run", {"target": "nas"})["job"])
    assert "bucket" in skipped["result"]["skipped_roots"], skipped["result"]
    assert sorted(p.name for p in (nas / "bucket" / "trip" / "day2").iterdir()) == \
        ["b2.jpg", "b3.jpg"]
    s3.proxy.clear()
    assert sync_bucket(d, "bucket")["state"] == "succeeded"  # back, with the new photo
    settled(d)
    assert wait(d, d.call("backups.run", {"target": "nas"})["job"])["result"]["copied"] == 1
    assert (nas / "bucket" / "trip" / "day2" / "new.jpg").is_file()

    # The same bucket into the bucket target: through the same seam, the other store.
    d.call("backups.update", {"target": "cloud", "roots": ["bucket"]})
    up = backup(d)
    assert up["state"] == "succeeded" and up["result"]["copied"] == 5, up["result"]
    for key, data in originals.items():
        assert s3.get(target_bucket, f"lightbox/bucket/{key}") == data
