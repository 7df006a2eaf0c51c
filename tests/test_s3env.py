"""The S3 test endpoint itself: moto behind the fault proxy behaves as the other tests assume.

These tests hold the test infrastructure to its word (a fault that silently did nothing would
make every S3 robustness test pass for the wrong reason).
"""

from __future__ import annotations

import socket
import urllib.request

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    ResponseStreamingError,
)
from s3env import S3Env


def _list_pages(env: S3Env, bucket: str, **kw: object) -> list[dict[str, object]]:
    client = env.client(through_proxy=True)
    pages = []
    token = None
    for _ in range(50):
        args = {"Bucket": bucket, **kw}
        if token:
            args["ContinuationToken"] = token
        page = client.list_objects_v2(**args)
        pages.append(page)
        if not page.get("IsTruncated"):
            break
        token = page.get("NextContinuationToken")
        if token is None:
            break
    return pages


def test_small_pages_and_recording(s3_small_pages: S3Env) -> None:
    env = s3_small_pages
    bucket = env.make_bucket()
    for i in range(20):
        env.put(bucket, f"a/{i:02d}.bin", b"x" * i)
    pages = _list_pages(env, bucket)
    assert len(pages) == 3  # 7 + 7 + 6
    assert sum(len(p.get("Contents", [])) for p in pages) == 20
    lists = [r for r in env.proxy.log() if r.is_list]
    assert len(lists) == 3 and lists[1].query.get("continuation-token")


def test_truncated_without_token(s3_small_pages: S3Env) -> None:
    env = s3_small_pages
    bucket = env.make_bucket()
    for i in range(10):
        env.put(bucket, f"k{i}", b"1")
    env.proxy.inject("truncated_no_token", list_objects=True)
    page = env.client(through_proxy=True).list_objects_v2(Bucket=bucket)
    assert page["IsTruncated"] is True
    assert "NextContinuationToken" not in page


def test_repeat_token(s3_small_pages: S3Env) -> None:
    env = s3_small_pages
    bucket = env.make_bucket()
    for i in range(20):
        env.put(bucket, f"k{i:02d}", b"1")
    env.proxy.inject("repeat_token", list_objects=True, after=1)
    client = env.client(through_proxy=True)
    first = client.list_objects_v2(Bucket=bucket)
    second = client.list_objects_v2(Bucket=bucket,
                                    ContinuationToken=first["NextContinuationToken"])
    assert second["NextContinuationToken"] == first["NextContinuationToken"]


def test_empty_listing_and_errors(s3: S3Env) -> None:
    bucket = s3.make_bucket()
    s3.put(bucket, "photo.jpg", b"data")
    client = s3.client(through_proxy=True)
    s3.proxy.inject("empty_listing", list_objects=True)
    assert client.list_objects_v2(Bucket=bucket)["KeyCount"] == 0
    assert client.list_objects_v2(Bucket=bucket)["KeyCount"] == 1  # fired once only
    s3.proxy.inject("slowdown", method="GET", key="photo", retry_after=2)
    with pytest.raises(ClientError) as err:
        client.get_object(Bucket=bucket, Key="photo.jpg")
    assert err.value.response["Error"]["Code"] == "SlowDown"
    assert err.value.response["ResponseMetadata"]["HTTPHeaders"]["retry-after"] == "2"
    s3.proxy.inject("status", method="GET", key="photo", status=500)
    with pytest.raises(ClientError) as err:
        client.get_object(Bucket=bucket, Key="photo.jpg")
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert client.get_object(Bucket=bucket, Key="photo.jpg")["Body"].read() == b"data"


def test_reset_mid_body(s3: S3Env) -> None:
    bucket = s3.make_bucket()
    blob = bytes(range(256)) * 4096
    s3.put(bucket, "big.jpg", blob)
    s3.proxy.inject("reset_mid_body", method="GET", key="big")
    body = s3.client(through_proxy=True).get_object(Bucket=bucket, Key="big.jpg")["Body"]
    with pytest.raises(ResponseStreamingError):  # a short read never passes as the object
        body.read()
    sent = [r for r in s3.proxy.log() if r.fault == "reset_mid_body"]
    assert sent and 0 < sent[0].sent_bytes < len(blob)


def test_reset_before_response(s3: S3Env) -> None:
    bucket = s3.make_bucket()
    s3.proxy.inject("reset", method="HEAD")
    with pytest.raises(ConnectionClosedError):
        s3.client(through_proxy=True).head_bucket(Bucket=bucket)


def test_ranged_get_counts_bytes(s3: S3Env) -> None:
    bucket = s3.make_bucket()
    s3.put(bucket, "v.jpg", b"\0" * 1_000_000)
    client = s3.client(through_proxy=True)
    part = client.get_object(Bucket=bucket, Key="v.jpg", Range="bytes=0-4095")["Body"].read()
    assert len(part) == 4096
    got = [r for r in s3.proxy.log() if r.method == "GET" and r.key == "v.jpg"]
    assert got[-1].sent_bytes == 4096 and "range" in got[-1].headers


def test_presigned_url_plain_http(s3: S3Env) -> None:
    bucket = s3.make_bucket()
    s3.put(bucket, "p.jpg", b"presigned bytes")
    url = s3.client(through_proxy=True).generate_presigned_url(
        "get_object", Params={"Bucket": bucket, "Key": "p.jpg"}, ExpiresIn=60)
    with urllib.request.urlopen(url, timeout=10) as resp:
        assert resp.read() == b"presigned bytes"


def test_unreachable_port_is_refused() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    import boto3
    from botocore.config import Config

    client = boto3.client("s3", endpoint_url=f"http://127.0.0.1:{port}", region_name="us-east-1",
                          aws_access_key_id="x", aws_secret_access_key="y",
                          config=Config(retries={"mode": "standard", "total_max_attempts": 1},
                                        connect_timeout=1))
    with pytest.raises(EndpointConnectionError):
        client.list_buckets()
