"""Buckets as sources, end to end: the real daemon, moto over HTTP behind the fault proxy.

Full sync of nested prefixes with corpus photos and non-images (a big non-image named
``.jpg`` is sniffed with one ranged GET, never downloaded); incremental sync after adds,
overwrites and deletes; an unchanged re-sync costs ⌈N/1000⌉ LISTs and nothing else; every
listing fault leaves the catalog as it was and the next sync completes.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from lbtest import DaemonProcess
from s3daemon import CORPUS_JPEGS, add_bucket, photos, settled, sync
from s3env import SECRET_KEY, S3Env

pytestmark = pytest.mark.skipif(not CORPUS_JPEGS, reason="the image corpus is not there")

BIG = 8 << 20


def _fill(env: S3Env, bucket: str) -> dict[str, bytes]:
    objects: dict[str, bytes] = {}
    for i, path in enumerate(CORPUS_JPEGS[:9]):
        objects[f"{2020 + i % 3}/trip {i % 2}/{path.name}"] = path.read_bytes()
    objects["notes/readme.txt"] = b"not a photo\n" * 10
    objects["huge-video.jpg"] = b"\x00\x00\x00\x18ftypmp42" + bytes(BIG)
    for key, data in objects.items():
        env.put(bucket, key, data)
    env.put(bucket, "2020/", b"")        # a directory marker: not a photo
    return objects


@pytest.fixture
def bucket_daemon(make_daemon: Any, s3: S3Env) -> tuple[DaemonProcess, S3Env, str,
                                                          dict[str, bytes]]:
    bucket = s3.make_bucket()
    objects = _fill(s3, bucket)
    d: DaemonProcess = make_daemon()
    add_bucket(d, s3, bucket)
    return d, s3, bucket, objects


def test_full_sync_catalogs_folders_photos_and_non_images(bucket_daemon: Any) -> None:
    d, s3, _, objects = bucket_daemon
    s3.proxy.reset_log()
    job = sync(d)
    assert job["state"] == "succeeded", job
    result = job["result"]
    assert result["complete"] and result["new"] == len(objects) and result["missing"] == 0
    everything = {p["name"]: p for p in settled(d)}
    assert len(everything) == len(objects)
    ok = [p for p in everything.values() if p["status"] == "ok"]
    assert len(ok) == 9 and all(p["sha256"] and p["width"] for p in ok)
    video = everything["huge-video.jpg"]
    assert video["status"] == "error" and "not an image" in video["error"]
    assert everything["readme.txt"]["status"] == "error"
    # The big non-image was sniffed with a ranged GET, never fetched whole.
    sent = sum(r.sent_bytes for r in s3.proxy.log() if r.key == "huge-video.jpg")
    assert 0 < sent <= 300 << 10, sent   # the sniff (256 KiB), not the 8 MiB
    # Folders come from the prefixes, with counts.
    src = d.call("sources.get", {"source": "cloud"})["source"]
    assert src["kind"] == "s3" and src["photos"] == len(objects)
    assert src["secrets"]["secret_access_key"]["set"] is True
    assert SECRET_KEY not in str(d.call("sources.list"))
    assert SECRET_KEY not in d.log()
    tree = d.call("folders.list", {"folder": src["folder_id"]})
    names = {f["name"]: f for f in tree["folders"]}
    assert {"2020", "2021", "2022", "notes"} <= set(names)
    assert names["2020"]["total_count"] == sum(1 for k in objects if k.startswith("2020/"))


def test_unchanged_resync_is_list_requests_only_then_incremental(bucket_daemon: Any) -> None:
    d, s3, bucket, objects = bucket_daemon
    assert sync(d)["state"] == "succeeded"
    s3.proxy.reset_log()
    again = sync(d)
    assert again["state"] == "succeeded"
    assert again["result"]["new"] == again["result"]["changed"] == 0
    log = s3.proxy.log()
    assert [(r.method, r.key, r.is_list) for r in log] == \
        [("GET", None, True)] * math.ceil(len(objects) / 1000), d.log()[-6000:]
    assert all(r.is_list for r in log)
    # Adds, an overwrite, a delete.
    first = CORPUS_JPEGS[0]
    s3.put(bucket, "new/one.jpg", CORPUS_JPEGS[10].read_bytes())
    key = next(k for k in objects if k.endswith(first.name))
    s3.put(bucket, key, CORPUS_JPEGS[11].read_bytes())
    gone = next(k for k in objects if k.endswith(CORPUS_JPEGS[1].name))
    s3.delete(bucket, gone)
    inc = sync(d)
    assert inc["state"] == "succeeded", inc
    r = inc["result"]
    assert (r["new"], r["changed"], r["missing"]) == (1, 1, 1)
    by_name = {p["name"]: p for p in settled(d)}
    assert by_name["one.jpg"]["status"] == "ok"
    import hashlib
    assert by_name[first.name]["sha256"] == hashlib.sha256(
        CORPUS_JPEGS[11].read_bytes()).hexdigest()
    assert by_name[CORPUS_JPEGS[1].name]["status"] == "missing"
    # The next complete listing that still lacks it removes it.
    last = sync(d)
    assert last["result"]["removed"] == 1
    assert CORPUS_JPEGS[1].name not in {p["name"] for p in photos(d, "any")}


FAULTS = [("truncated_no_token", "truncated_without_token"),
          ("repeat_token", "repeated_token"),
          ("empty_listing", "empty_listing"),
          ("status", "page_error")]


def test_listing_faults_delete_nothing_and_the_next_sync_completes(
        make_daemon: Any, s3: S3Env) -> None:
    bucket = s3.make_bucket()
    for i in range(20):
        s3.put(bucket, f"a/{i:02d}.jpg", CORPUS_JPEGS[i % len(CORPUS_JPEGS)].read_bytes())
    d: DaemonProcess = make_daemon()
    add_bucket(d, s3, bucket, page_size=7)
    assert sync(d)["state"] == "succeeded"
    before = {p["id"]: p["status"] for p in settled(d)}
    assert len(before) == 20
    for fault, reason in FAULTS:
        # 7 keys a page: the fault hits the second page (the empty listing the first).
        s3.proxy.inject(fault, list_objects=True, times=None if fault == "status" else 1,
                        after=0 if fault == "empty_listing" else 1, status=500)
        job = sync(d)
        assert job["state"] == "failed", (fault, job)
        assert (job["result"] or {}).get("reason") == reason, (fault, job)
        assert job["error"]
        assert {p["id"]: p["status"] for p in photos(d, "any")} == before, fault
        s3.proxy.clear()
        done = sync(d)
        assert done["state"] == "succeeded" and done["result"]["missing"] == 0, (fault, done)


@pytest.mark.parametrize("engine", ["pg_scratch_url", "mysql_scratch_url"])
def test_bucket_sync_on_server_databases(request: pytest.FixtureRequest, engine: str,
                                         make_daemon: Any, s3: S3Env) -> None:
    """The same sync on PostgreSQL and MariaDB: ETags, secrets, JSON config, timestamps."""
    url = request.getfixturevalue(engine)
    bucket = s3.make_bucket()
    for i in range(3):
        s3.put(bucket, f"x/{i}.jpg", CORPUS_JPEGS[i].read_bytes())
    d: DaemonProcess = make_daemon(args=["--database", url])
    add_bucket(d, s3, bucket)
    assert sync(d)["state"] == "succeeded"
    assert sum(p["status"] == "ok" for p in settled(d)) == 3
    s3.put(bucket, "x/0.jpg", CORPUS_JPEGS[5].read_bytes())
    s3.delete(bucket, "x/1.jpg")
    r = sync(d)["result"]
    assert (r["changed"], r["missing"]) == (1, 1), r
    assert sync(d)["result"]["removed"] == 1
    d.call("sources.set_secret", {"source": "cloud", "value": SECRET_KEY})
    src = d.call("sources.get", {"source": "cloud"})["source"]
    assert src["secrets"]["secret_access_key"]["set"] and src["config"]["bucket"] == bucket
    assert src["scanned_at"]
