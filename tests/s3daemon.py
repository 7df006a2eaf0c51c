"""Helpers for tests that run the real daemon against a bucket in moto (through the proxy)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from lbtest import DaemonProcess
from s3env import ACCESS_KEY, REGION, SECRET_KEY, S3Env

CORPUS_JPEGS = sorted((Path(__file__).resolve().parent.parent.parent / "shared" / "corpus"
                       / "camera_jpeg").glob("*.jpg"))


def add_bucket(d: DaemonProcess, env: S3Env, bucket: str, *, name: str = "cloud",
               prefix: str = "", sync: bool = False, **extra: Any) -> dict[str, Any]:
    params = {"kind": "s3", "name": name, "endpoint": env.endpoint, "region": REGION,
              "bucket": bucket, "prefix": prefix, "addressing_style": "path",
              "access_key_id": ACCESS_KEY, "secret_access_key": SECRET_KEY, "sync": sync,
              **extra}
    out: dict[str, Any] = d.call("sources.add", params)
    return out


def sync(d: DaemonProcess, source: str = "cloud", timeout: float = 120.0,
         **params: Any) -> dict[str, Any]:
    """Run one sync to its end; the job as jobs.wait returns it."""
    job = d.call("sources.sync", {"source": source, **params})["job"]
    return wait(d, job, timeout)


def wait(d: DaemonProcess, job: int, timeout: float = 120.0) -> dict[str, Any]:
    import time

    deadline = time.monotonic() + timeout
    while True:
        out: dict[str, Any] = d.call("jobs.wait", {"id": job, "timeout": 20}, timeout=30)
        if out["state"] in ("succeeded", "failed", "cancelled"):
            return out
        if time.monotonic() > deadline:
            raise AssertionError(f"job {job} still {out['state']} after {timeout} s: {out}")


def photos(d: DaemonProcess, status: str = "any") -> list[dict[str, Any]]:
    out: dict[str, Any] = d.call("photos.search", {"status": status, "limit": 1000})
    return list(out["photos"])


def settled(d: DaemonProcess, timeout: float = 120.0) -> list[dict[str, Any]]:
    """Every photo once none is pending: a read the machine failed (a loaded moto dropping a
    connection) is retried by the indexer after the sync job ended, as for local roots."""
    import time

    deadline = time.monotonic() + timeout
    while True:
        everything = photos(d, "any")
        if not any(p["status"] == "pending" for p in everything):
            return everything
        if time.monotonic() > deadline:
            raise AssertionError(f"photos still pending after {timeout} s: {everything}")
        time.sleep(0.3)
