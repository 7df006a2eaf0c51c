"""lightbox's own ListObjectsV2 loop: a listing is complete only when it is proven so, keys
come through whatever their characters, retries honour Retry-After, and a client for an
endpoint that is not AWS sends none of boto3's new default checksum headers.

Real moto over HTTP behind the test suite's fault proxy; no mocking.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from s3env import ACCESS_KEY, REGION, SECRET_KEY, S3Env

from lightbox.daemon.kinds import base
from lightbox.daemon.kinds.s3 import (
    BUCKET,
    CREDENTIALS,
    ENDPOINT,
    SERVER,
    TIMEOUT,
    S3Config,
    S3Error,
    S3Kind,
    S3Object,
    download,
    forget_clients,
    quirk_for,
    read_range,
)

FORBIDDEN = ("x-amz-checksum-", "x-amz-sdk-checksum-algorithm", "x-amz-trailer",
             "x-amz-checksum-mode")


def _kind(env: S3Env, bucket: str, *, page_size: int = 7, max_pages: int = 1000,
          endpoint: str | None = None, prefix: str = "") -> S3Kind:
    cfg = S3Config(bucket=bucket, region=REGION, endpoint=endpoint or env.endpoint,
                   prefix=S3Config.norm_prefix(prefix), addressing_style="path",
                   access_key_id=ACCESS_KEY, secret_access_key=SECRET_KEY)
    return S3Kind(cfg, page_size=page_size, max_pages=max_pages)


def _bucket(env: S3Env, n: int = 30) -> str:
    bucket = env.make_bucket()
    for i in range(n):
        env.put(bucket, f"p/{i // 10}/k{i:03d}.jpg", b"x" * (i + 1))
    return bucket


def test_many_pages_complete(s3: S3Env) -> None:
    bucket = _bucket(s3)
    s3.proxy.reset_log()
    listing = _kind(s3, bucket).list_prefix()
    assert listing.complete and listing.pages == 5   # 30 keys, 7 a page
    assert len(listing.entries) == 30
    assert s3.proxy.count(lambda r: r.is_list) == 5
    assert all(r.query.get("encoding-type") == "url" for r in s3.proxy.log() if r.is_list)


@pytest.mark.parametrize(("fault", "reason"), [
    ("truncated_no_token", base.TRUNCATED_NO_TOKEN),
    ("repeat_token", base.REPEATED_TOKEN),
])
def test_listing_faults_make_it_incomplete(s3: S3Env, fault: str, reason: str) -> None:
    bucket = _bucket(s3)
    s3.proxy.inject(fault, list_objects=True, after=2)
    listing = _kind(s3, bucket).list_prefix()
    assert not listing.complete
    assert listing.reason == reason
    assert listing.message


def test_an_error_on_a_later_page_makes_it_incomplete(s3: S3Env) -> None:
    bucket = _bucket(s3)
    s3.proxy.inject("status", list_objects=True, after=1, times=None, status=500)
    listing = _kind(s3, bucket).list_prefix()
    assert not listing.complete and listing.reason == base.PAGE_ERROR
    assert len(listing.entries) == 7
    assert "500" in (listing.message or "")


def test_page_cap(s3: S3Env) -> None:
    bucket = _bucket(s3)
    listing = _kind(s3, bucket, max_pages=2).list_prefix()
    assert not listing.complete and listing.reason == base.PAGE_CAP


def test_slowdown_is_retried_after_retry_after(s3: S3Env) -> None:
    bucket = _bucket(s3, 5)
    s3.proxy.inject("slowdown", list_objects=True, retry_after=1.5, times=1)
    started = time.monotonic()
    listing = _kind(s3, bucket).list_prefix()
    assert listing.complete and len(listing.entries) == 5
    assert time.monotonic() - started >= 1.4
    faulted = [r for r in s3.proxy.log() if r.is_list]
    assert faulted[0].status == 503 and faulted[1].status == 200


def test_a_reset_mid_body_is_retried(s3: S3Env) -> None:
    bucket = _bucket(s3, 5)
    s3.proxy.inject("reset_mid_body", list_objects=True, times=1)
    listing = _kind(s3, bucket).list_prefix()
    assert listing.complete and len(listing.entries) == 5


def test_markers_skipped_and_odd_keys_round_trip(s3: S3Env) -> None:
    bucket = s3.make_bucket()
    odd = ["a b+c%20d.jpg", "ünï/cödé €.jpg", "tab\there.jpg", "q?&=#.jpg", "semi;colon.png"]
    for key in odd:
        s3.put(bucket, key, b"data")
    s3.put(bucket, "folder/", b"")
    s3.put(bucket, "x//y.jpg", b"data")
    listing = _kind(s3, bucket).list_prefix()
    assert listing.complete
    assert sorted(e.rel for e in listing.entries) == sorted(odd)
    assert any("x//y.jpg" in s for s in listing.skipped)
    kind = _kind(s3, bucket)
    for e in listing.entries:
        assert kind.read_range(kind.locator(e.rel, e), 0, 4) == b"data"


def test_prefix_is_cut_from_rel(s3: S3Env) -> None:
    bucket = _bucket(s3, 12)
    listing = _kind(s3, bucket, prefix="p/1").list_prefix()
    assert sorted(e.rel for e in listing.entries) == [f"k{i:03d}.jpg" for i in range(10, 12)]


def test_unreachable_endpoint_and_missing_bucket_are_explained(s3: S3Env) -> None:
    with pytest.raises(S3Error) as info:
        _kind(s3, "nope-bucket").list_prefix()
    assert info.value.reason == BUCKET and "nope-bucket" in str(info.value)
    from s3env import free_port
    with pytest.raises(S3Error) as info:
        _kind(s3, "b", endpoint=f"http://127.0.0.1:{free_port()}").list_prefix()
    assert info.value.reason == ENDPOINT and "cannot reach" in str(info.value)
    bucket = _bucket(s3, 2)
    s3.proxy.inject("status", list_objects=True, status=403, code="InvalidAccessKeyId")
    with pytest.raises(S3Error) as info:
        _kind(s3, bucket).list_prefix()
    assert info.value.reason == CREDENTIALS and SECRET_KEY not in str(info.value)


def test_no_checksum_headers_leave_a_client_for_a_non_aws_endpoint(s3: S3Env) -> None:
    """Backblaze B2 and others reject boto3 ≥ 1.36's default checksum headers."""
    bucket = _bucket(s3, 3)
    kind = _kind(s3, bucket)
    assert not kind.cfg.quirk.aws and quirk_for("https://s3.us-west-004.backblazeb2.com"
                                                ).provider == "backblaze-b2"
    s3.proxy.reset_log()
    entries = kind.list_prefix().entries
    loc = kind.locator(entries[0].rel, entries[0])
    read_range(loc, 0, 2)
    with open("/dev/null", "wb") as sink:
        download(loc, sink)
    kind.stat(entries[0].rel)
    log = s3.proxy.log()
    assert {r.method for r in log} >= {"GET", "HEAD"} and len(log) >= 4
    for r in log:
        bad = [h for h in r.headers if h.startswith(FORBIDDEN)]
        assert not bad, f"{r.method} {r.path} sent {bad}"


def test_the_header_check_can_fail(s3: S3Env) -> None:
    """The same requests from a client configured as for AWS do send them (so the test above
    would catch a regression), here an x-amz-checksum-mode on GetObject."""
    import boto3
    from botocore.config import Config

    bucket = _bucket(s3, 1)
    c = boto3.client("s3", endpoint_url=s3.endpoint, region_name=REGION,
                     aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
                     config=Config(s3={"addressing_style": "path"}))
    s3.proxy.reset_log()
    c.get_object(Bucket=bucket, Key="p/0/k000.jpg")["Body"].read()
    c.put_object(Bucket=bucket, Key="new.jpg", Body=b"abc")
    sent = [h for r in s3.proxy.log() for h in r.headers if h.startswith(FORBIDDEN)]
    assert sent


def test_download_resumes_after_a_reset_and_refuses_a_changed_object(s3: S3Env) -> None:
    import hashlib
    import io

    from lightbox.daemon.media.confine import Refused

    bucket = s3.make_bucket()
    data = bytes(range(256)) * 8000
    s3.put(bucket, "big.jpg", data)
    kind = _kind(s3, bucket)
    entry = kind.list_prefix().entries[0]
    loc: S3Object = kind.locator(entry.rel, entry)
    s3.proxy.inject("reset_mid_body", method="GET", key="big.jpg", times=1)
    out = io.BytesIO()
    digest, n = download(loc, out)
    assert n == len(data) and out.getvalue() == data
    assert digest == hashlib.sha256(data).hexdigest()
    s3.put(bucket, "big.jpg", b"other")
    with pytest.raises(Refused):
        download(loc, io.BytesIO())
    forget_clients()


def test_keys_as_s3_encodes_them() -> None:
    """EncodingType=url: ``+`` is a space, %2B a plus; bytes that are not UTF-8 are no name."""
    from lightbox.daemon.kinds.s3 import _decode_key

    assert _decode_key("a+b%2Bc%20d.jpg") == "a b+c d.jpg"
    assert _decode_key("%C3%BC/%E2%82%AC.jpg") == "ü/€.jpg"
    assert _decode_key("bad%FF%FE.jpg") is None


def _locator(env: S3Env, bucket: str, key: str, **cfg: Any) -> S3Object:
    config = S3Config(bucket=bucket, region=REGION, endpoint=env.endpoint,
                      addressing_style="path", access_key_id=ACCESS_KEY,
                      secret_access_key=SECRET_KEY, **cfg)
    entry = S3Kind(config).list_prefix().entries[0]
    assert entry.rel == key
    return S3Kind(config).locator(entry.rel, entry)


def test_a_stalled_body_ends_within_the_objects_budget(s3: S3Env) -> None:
    """The proxy sends half the body and then nothing for ten minutes, connection open: the
    read timeout is longer than the test, so only the overall budget can end the read."""
    import io

    bucket = s3.make_bucket()
    data = bytes(range(256)) * 4096          # 1 MiB
    s3.put(bucket, "slow.jpg", data)
    loc = _locator(s3, bucket, "slow.jpg", read_timeout=600.0, object_timeout=2.0,
                   attempts=3)
    s3.proxy.inject("stall_body", method="GET", key="slow.jpg", times=None, delay=600)
    started = time.monotonic()
    with pytest.raises(S3Error) as info:
        download(loc, io.BytesIO())
    assert info.value.reason == TIMEOUT, info.value
    assert "did not finish within" in str(info.value)
    # Ended by the budget (2 s + 4 s for 1 MiB at 256 KiB/s), not by the stall's 600 s.
    assert time.monotonic() - started < 300
    with pytest.raises(S3Error) as info:
        read_range(loc, 0, 256 << 10)
    assert info.value.reason == TIMEOUT
    s3.proxy.clear()
    out = io.BytesIO()
    assert download(loc, out)[1] == len(data) and out.getvalue() == data
    forget_clients()


def test_a_read_failing_every_time_ends_after_its_attempts(s3: S3Env) -> None:
    import io

    bucket = s3.make_bucket()
    s3.put(bucket, "bad.jpg", b"y" * 5000)
    loc = _locator(s3, bucket, "bad.jpg", attempts=3)
    s3.proxy.inject("status", method="GET", key="bad.jpg", times=None, status=500)
    with pytest.raises(S3Error) as info:
        download(loc, io.BytesIO())
    assert info.value.reason == SERVER and "500" in str(info.value)
    assert s3.proxy.count(lambda r: r.key == "bad.jpg" and r.method == "GET") == 3
    s3.proxy.clear()
    s3.proxy.inject("reset_mid_body", method="GET", key="bad.jpg", times=None)
    with pytest.raises(S3Error) as info:
        read_range(loc, 0, 5000)
    assert info.value.reason == SERVER
    assert s3.proxy.count(lambda r: r.key == "bad.jpg" and r.method == "GET") == 3
    forget_clients()


def test_timestamps_parse_to_the_same_instant_as_botocore() -> None:
    """Our fast LastModified parser gives every row the fingerprint botocore's would (rows
    written before it must not all look changed)."""
    from botocore.utils import parse_timestamp as botocore_parse

    from lightbox.daemon.kinds.s3 import _mtime_ns, parse_timestamp

    for text in ("2026-12-01T17:27:59.000Z", "2009-10-12T17:50:30.123Z",
                 "2026-02-28T23:59:59Z", "2026-12-01T17:27:59.123456+00:00",
                 "Tue, 01 Dec 2026 17:27:59 GMT", "1999-01-01T00:00:00.5Z"):
        ours, theirs = parse_timestamp(text), botocore_parse(text)
        assert _mtime_ns(ours) == _mtime_ns(theirs), text
        assert ours.utcoffset() is not None
