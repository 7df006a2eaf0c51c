"""Buckets against moto on loopback, each figure beside its baseline in the same run.

1. **Unchanged incremental sync** of a bucket of N small (empty) objects: the real daemon
   (``sources.sync`` + ``jobs.wait``) beside a bare boto3 ListObjectsV2 loop over the same
   bucket, both through the test suite's recording proxy, which counts the requests and
   bytes lightbox makes (target: ⌈N/1000⌉ LISTs, 0 object bytes; time ≤ 1.3x the loop).
   The first (full) sync is timed too (an empty object needs no GET: it is settled from
   the listing; the unchanged syncs cost the same whatever the objects' sizes).
2. **Processing** of M real-sized JPEGs (generated, with EXIF): photos per second of a
   fresh daemon's first sync (sniff, one streamed GET through sha256, EXIF, both thumbnails,
   dHash in the worker pool) beside a bare loop with the same concurrency: boto3 download +
   Pillow open (draft) + 1280 and 256 px thumbnails in as many processes (target ≥ 0.8x).

    .venv/bin/python benchmarks/s3_sync.py [--objects 100000] [--photos 1000]
        [--megapixels 4] [--rounds 3] [--processes 2] [--skip-sync] [--skip-processing]
        [--latency SECONDS] [--quick]

The buckets are filled inside moto's process before it serves (``moto_seeded.py``: 100,000
objects in ~15 s instead of ~10 minutes of PUTs), and its per-page full sort of the bucket
is memoized there for both clients alike (see that file). ``--quick``: 5,000 objects, 60
photos, 2 rounds.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import io
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from lbtest import DaemonProcess, short_tmpdir
from s3env import ACCESS_KEY, REGION, SECRET_KEY, FaultProxy, free_port


class SeededMoto:
    """``moto_seeded.py`` in a subprocess: moto's server with its buckets already filled."""

    def __init__(self, buckets: list[tuple[str, int]] | None = None,
                 files: list[tuple[str, Path]] | None = None) -> None:
        self.port = free_port()
        cmd = [sys.executable, str(Path(__file__).with_name("moto_seeded.py")),
               "--port", str(self.port)]
        cmd += [a for name, n in buckets or () for a in ("--bucket", f"{name}:{n}")]
        cmd += [a for name, root in files or () for a in ("--files", f"{name}:{root}")]
        self.proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if line.strip() != b"ready":
            self.stop()
            raise SystemExit(f"moto_seeded did not start: {line!r}")

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def client(endpoint: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client("s3", endpoint_url=endpoint, region_name=REGION,
                        aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY,
                        config=Config(s3={"addressing_style": "path"},
                                      request_checksum_calculation="when_required",
                                      response_checksum_validation="when_required",
                                      max_pool_connections=32))


def bare_list(endpoint: str, bucket: str) -> tuple[float, int]:
    c = client(endpoint)
    started = time.perf_counter()
    n, token = 0, None
    while True:
        args: dict[str, Any] = {"Bucket": bucket, "MaxKeys": 1000, "EncodingType": "url"}
        if token:
            args["ContinuationToken"] = token
        page = c.list_objects_v2(**args)
        n += len(page.get("Contents", ()))
        if not page.get("IsTruncated"):
            break
        token = page["NextContinuationToken"]
    return time.perf_counter() - started, n


def daemon(processes: int) -> DaemonProcess:
    d = DaemonProcess(short_tmpdir("lbs3"), config={"workers": {"processes": processes}})
    d.start()
    return d


def add(d: DaemonProcess, endpoint: str, bucket: str, sync: bool) -> int | None:
    out = d.call("sources.add", {
        "kind": "s3", "name": "bench", "endpoint": endpoint, "region": REGION,
        "bucket": bucket, "addressing_style": "path", "access_key_id": ACCESS_KEY,
        "secret_access_key": SECRET_KEY, "sync": sync, "interval": 0})
    job: int | None = out["job"]
    return job


def wait(d: DaemonProcess, job: int, timeout: float = 3600) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        out: dict[str, Any] = d.call("jobs.wait", {"id": job, "timeout": 60}, timeout=70)
        if out["state"] in ("succeeded", "failed", "cancelled"):
            if out["state"] != "succeeded":
                raise SystemExit(f"job {job} {out['state']}: {out.get('error')}")
            return out
        if time.monotonic() > deadline:
            raise SystemExit(f"job {job} did not finish")


def summary(values: list[float]) -> str:
    med = statistics.median(values)
    return (f"median {med:.3f}  (min {min(values):.3f}, max {max(values):.3f}, "
            f"spread {100 * (max(values) - min(values)) / med if med else 0:.0f}%)")


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def bench_sync(n: int, rounds: int, processes: int) -> None:
    bucket = f"bench-{uuid.uuid4().hex[:8]}"
    t = time.perf_counter()
    server = SeededMoto(buckets=[(bucket, n)])
    print(f"moto up with {n} objects in {time.perf_counter() - t:.1f} s (load {load()})")
    proxy = FaultProxy(server.endpoint).start()
    d = daemon(processes)
    try:
        started = time.perf_counter()
        job = add(d, proxy.endpoint, bucket, sync=True)
        assert job is not None
        first = wait(d, job)
        print(f"first (full) sync: {time.perf_counter() - started:.1f} s, "
              f"{first['result']['listed']} listed, {first['result']['pages']} pages")
        ours: list[float] = []
        inside: list[float] = []
        split: list[tuple[float, ...]] = []
        bare: list[float] = []
        counts: list[tuple[int, int, int]] = []
        for r in range(rounds):
            for which in (("ours", "bare") if r % 2 == 0 else ("bare", "ours")):
                proxy.reset_log()
                if which == "ours":
                    t = time.perf_counter()
                    job = d.call("sources.sync", {"source": "bench"})["job"]
                    res = wait(d, job)
                    ours.append(time.perf_counter() - t)
                    inside.append(float(res["result"]["seconds"]))
                    got = res["result"]
                    split.append((got["list_seconds"], got["catalog_read_seconds"],
                                  got["apply_seconds"], got["diff_seconds"]))
                    log = proxy.log()
                    lists = sum(1 for q in log if q.is_list)
                    objects = sum(q.sent_bytes for q in log if not q.is_list)
                    counts.append((len(log), lists, objects))
                    assert res["result"]["new"] == res["result"]["changed"] == 0
                else:
                    secs, seen = bare_list(proxy.endpoint, bucket)
                    assert seen == n, seen
                    bare.append(secs)
        print(f"\nunchanged incremental sync of {n} objects, {rounds} rounds "
              f"(load {load()})")
        print(f"  requests per sync (all, LIST, object bytes): {counts} "
              f"(target {math.ceil(n / 1000)} LISTs, 0 bytes)")
        print(f"  lightbox sources.sync + jobs.wait, s: {summary(ours)}")
        print(f"  lightbox sync job's own seconds (listing + diff): {summary(inside)}")
        print("  of which (listing, catalog read [beside the listing], after the listing, "
              f"diff alone) per round, s: {split}")
        print(f"  bare boto3 ListObjectsV2 loop, s:   {summary(bare)}")
        print(f"  ratio (medians): {statistics.median(ours) / statistics.median(bare):.2f}x "
              f"(job's own: {statistics.median(inside) / statistics.median(bare):.2f}x; "
              "target <= 1.3x)")
    finally:
        d.stop(60)
        d.close()
        shutil.rmtree(d.data_dir, ignore_errors=True)
        proxy.stop()
        server.stop()


def _bare_one(args: tuple[str, str, str]) -> int:
    from PIL import Image

    endpoint, bucket, key = args
    c = _bare_client(endpoint)
    data = c.get_object(Bucket=bucket, Key=key)["Body"].read()
    with Image.open(io.BytesIO(data)) as opened:
        opened.draft("RGB", (1280, 1280))
        img = opened.convert("RGB")
        for edge in (1280, 256):
            copy = img.copy()
            copy.thumbnail((edge, edge))
            copy.save(io.BytesIO(), "JPEG", quality=85)
    return len(data)


_clients: dict[str, Any] = {}


def _bare_client(endpoint: str) -> Any:
    if endpoint not in _clients:
        _clients[endpoint] = client(endpoint)
    return _clients[endpoint]


def bench_processing(m: int, megapixels: float, rounds: int, processes: int,
                     latency: float = 0.0) -> None:
    from lightbox.daemon.media import samples

    work = Path(tempfile.mkdtemp(prefix="lbs3-photos-"))
    server: SeededMoto | None = None
    proxy: FaultProxy | None = None
    try:
        t = time.perf_counter()
        paths = samples.make_demo_library(work, m, seed=11, megapixels=megapixels,
                                          processes=processes)
        print(f"\ngenerated {len(paths)} JPEGs in {time.perf_counter() - t:.1f} s")
        bucket = f"photos-{uuid.uuid4().hex[:8]}"
        server = SeededMoto(files=[(bucket, work)])
        proxy = FaultProxy(server.endpoint).start()
        if latency:
            # A distant endpoint: every object GET (not the listing) answers this much later,
            # for lightbox and the bare loop alike.
            proxy.inject("delay", method="GET", list_objects=False, times=None,
                         delay=latency)
        keys = sorted(str(p.relative_to(work)) for p in work.rglob("*") if p.is_file())
        total = sum(p.stat().st_size for p in paths)
        print(f"\n{len(paths)} JPEGs of ~{megapixels} MP, {total / len(paths) / 1e6:.1f} MB "
              f"each on average (load {load()})")
        ours: list[float] = []
        bare: list[float] = []
        for r in range(rounds):
            for which in (("ours", "bare") if r % 2 == 0 else ("bare", "ours")):
                if which == "ours":
                    d = daemon(processes)
                    try:
                        t = time.perf_counter()
                        job = add(d, proxy.endpoint, bucket, sync=True)
                        assert job is not None
                        res = wait(d, job)
                        ours.append(len(paths) / (time.perf_counter() - t))
                        assert res["result"]["processed"] == len(paths), res["result"]
                    finally:
                        d.stop(60)
                        d.close()
                        shutil.rmtree(d.data_dir, ignore_errors=True)
                else:
                    t = time.perf_counter()
                    with cf.ProcessPoolExecutor(processes) as pool:
                        list(pool.map(_bare_one, [(proxy.endpoint, bucket, k) for k in keys]))
                    bare.append(len(paths) / (time.perf_counter() - t))
        print(f"processing, photos/s, {rounds} rounds, {processes} processes, "
              f"{latency * 1000:.0f} ms added to each object GET (load {load()})")
        print(f"  lightbox (fresh daemon, first sync to the end): {summary(ours)}")
        print(f"  bare boto3 download + Pillow 1280/256 thumbnails: {summary(bare)}")
        print(f"  ratio (medians): {statistics.median(ours) / statistics.median(bare):.2f}x "
              "(target >= 0.8x)")
    finally:
        if proxy is not None:
            proxy.stop()
        if server is not None:
            server.stop()
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--objects", type=int, default=100_000)
    ap.add_argument("--photos", type=int, default=1000)
    ap.add_argument("--megapixels", type=float, default=4.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--skip-sync", action="store_true")
    ap.add_argument("--skip-processing", action="store_true")
    ap.add_argument("--latency", type=float, default=0.0,
                    help="seconds the proxy holds back each object GET (a distant endpoint)")
    ap.add_argument("--quick", action="store_true",
                    help="5,000 objects, 60 photos, 2 rounds (a smoke run)")
    args = ap.parse_args()
    if args.quick:
        args.objects, args.photos, args.rounds = 5000, 60, 2
    if not args.skip_sync:
        bench_sync(args.objects, args.rounds, args.processes)
    if not args.skip_processing:
        bench_processing(args.photos, args.megapixels, args.rounds, args.processes,
                         args.latency)


if __name__ == "__main__":
    main()
