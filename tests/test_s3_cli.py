"""``lightbox sources``, ``lightbox sync`` and ``lightbox get`` as a script uses them."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from lbtest import DaemonProcess, run_cli
from s3daemon import CORPUS_JPEGS
from s3env import ACCESS_KEY, REGION, SECRET_KEY, S3Env

pytestmark = pytest.mark.skipif(not CORPUS_JPEGS, reason="the image corpus is not there")


def test_sources_sync_get_from_the_command_line(make_daemon: Any, s3: S3Env,
                                                tmp_path: Path) -> None:
    bucket = s3.make_bucket()
    data = CORPUS_JPEGS[2].read_bytes()
    s3.put(bucket, "album/one.jpg", data)
    d: DaemonProcess = make_daemon()
    env = {"LIGHTBOX_SOCKET": d.endpoint}
    r = run_cli("sources", "add", "cloud", "--endpoint", s3.endpoint, "--region", REGION,
                "--bucket", bucket, "--addressing-style", "path", "--access-key-id",
                ACCESS_KEY, "--secret-stdin", "--no-sync", "--json", env=env,
                input=(SECRET_KEY + "\n").encode())
    assert r.returncode == 0, r.stderr
    added = json.loads(r.stdout)
    assert added["source"]["secrets"]["secret_access_key"]["set"]
    assert SECRET_KEY not in r.stdout
    r = run_cli("sources", "test", "cloud", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "credentials" in r.stdout and "FAIL" not in r.stdout
    r = run_cli("sync", "cloud", "--wait", env=env, timeout=180)
    assert r.returncode == 0, r.stderr
    # --retry asks the sync to read again the objects whose reads were given up on.
    r = run_cli("sync", "cloud", "--retry", "--json", env=env)
    assert r.returncode == 0, r.stderr
    job = d.call("jobs.wait", {"id": json.loads(r.stdout)["job"], "timeout": 120},
                 timeout=130)
    assert job["params"].get("retry") is True and job["result"]["retried"] == 0, job
    r = run_cli("sources", "--json", env=env)
    listed = json.loads(r.stdout)
    assert [s["name"] for s in listed] == ["cloud"] and listed[0]["photos"] == 1
    assert SECRET_KEY not in r.stdout
    photo = d.call("photos.search", {"limit": 5})["photos"][0]
    out = tmp_path / "got.jpg"
    r = run_cli("get", str(photo["id"]), "-o", str(out), "--json", env=env)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == data
    assert json.loads(r.stdout)["sha256"] == hashlib.sha256(data).hexdigest()
    # A bucket that is not there: the test says which check failed, exit 1.
    r = run_cli("sources", "test", "--endpoint", s3.endpoint, "--bucket", "no-such-bkt",
                "--addressing-style", "path", "--access-key-id", ACCESS_KEY,
                "--secret-stdin", env=env, input=(SECRET_KEY + "\n").encode())
    assert r.returncode == 1 and "FAIL  bucket" in r.stdout and "does not exist" in r.stdout
    # Changed in place: the photo stays; a new key's secret from stdin, never echoed.
    r = run_cli("sources", "update", "cloud", "--interval", "600", "--json", env=env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["changed"] == ["interval"]
    r = run_cli("sources", "update", "cloud", "--access-key-id", "AKIDROTATED",
                "--secret-stdin", env=env, input=b"rotated-secret-000\n")
    assert r.returncode == 0, r.stderr
    assert "access_key_id" in r.stdout and "secret_access_key" in r.stdout
    assert "rotated-secret" not in r.stdout + r.stderr
    r = run_cli("sources", "update", "cloud", env=env)
    assert r.returncode != 0 and "nothing to change" in r.stderr
    r = run_cli("sources", "update", "cloud", "--clear", "bucket", env=env)
    assert r.returncode != 0
    assert d.call("sources.get", {"source": "cloud"})["source"]["photos"] == 1
    r = run_cli("sources", "remove", "cloud", env=env)
    assert r.returncode == 0 and "1 photos" in r.stdout
    # The same command for a photo of a local root.
    root = tmp_path / "root"
    root.mkdir()
    (root / "here.jpg").write_bytes(CORPUS_JPEGS[4].read_bytes())
    assert run_cli("roots", "add", str(root), "--wait", env=env, timeout=120).returncode == 0
    local = d.call("photos.search", {"limit": 5})["photos"][0]
    r = run_cli("get", str(local["id"]), "-o", str(tmp_path / "local.jpg"), env=env)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "local.jpg").read_bytes() == CORPUS_JPEGS[4].read_bytes()
    assert "(checked)" in r.stdout
