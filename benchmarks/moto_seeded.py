"""moto's S3 server with buckets filled in-process, for benchmarks at the issue's size.

Putting 100,000 objects through moto's HTTP front end costs 5-6 ms a request (one
GIL-bound process: more client threads do not help): ~10 minutes. Here the objects are
put straight into moto's S3 backend before the server starts (~0.15 ms each: 100,000 in
about 15 s), then the same moto server (``ThreadedMotoServer``, the code ``moto_server``
runs) answers over HTTP on loopback.

moto's ListObjectsV2 collects and sorts every key of the bucket for each page (O(N) a
page, O(N²/1000) a listing: ~6 s a page at 100,000 keys). With ``--fast-list`` (the
default) that sorted list is memoized per bucket, prefix and delimiter while the bucket's
key count does not change, and a page starts by bisection: the responses are moto's own,
byte for byte, only sooner. Both clients of a benchmark (lightbox and the bare loop) read
the same server, so it shortens a round without favouring either; it makes lightbox's own
share of a sync a larger part of the time measured, not a smaller one.

    python benchmarks/moto_seeded.py --port 5000 --bucket NAME:N[:LAYOUT] ...
        [--files NAME:DIR] [--no-fast-list]

``NAME:N[:SIZE]``: a bucket of N objects of SIZE bytes (default 0: an empty object is
settled by its listing alone, so the first sync of 100,000 does no GET)
``d<i // 1000>/o<i>.bin``; ``--files NAME:DIR``:
a bucket holding every file below DIR under its relative path. Prints ``ready`` when it
answers; stops on SIGTERM or when stdin closes.
"""

from __future__ import annotations

import argparse
import bisect
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

ACCOUNT = "123456789012"   # moto's default account, which unknown access keys map to


def small_key(i: int) -> str:
    return f"d{i // 1000:03d}/o{i:07d}.bin"


def seed(backend: Any, buckets: list[tuple[str, int, int]], files: list[tuple[str, Path]],
         region: str) -> None:
    for name, n, size in buckets:
        started = time.perf_counter()
        backend.create_bucket(name, region)
        body = b"x" * size
        for i in range(n):
            backend.put_object(name, small_key(i), body)
        print(f"seeded {name}: {n} objects in {time.perf_counter() - started:.1f} s",
              file=sys.stderr, flush=True)
    for name, root in files:
        started = time.perf_counter()
        backend.create_bucket(name, region)
        count = 0
        for path in sorted(root.rglob("*")):
            if path.is_file():
                backend.put_object(name, str(path.relative_to(root)), path.read_bytes())
                count += 1
        print(f"seeded {name}: {count} files of {root} in "
              f"{time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)


def fast_listing(backend_cls: Any) -> None:
    """Memoize the sorted key list moto builds for every ListObjectsV2 page."""
    original = backend_cls.list_objects
    cache: dict[tuple[int, str | None, str | None], tuple[int, list[Any], list[str]]] = {}
    lock = threading.Lock()

    def sorted_all(self: Any, bucket: Any, prefix: str | None,
                   delimiter: str | None) -> tuple[list[Any], list[str]]:
        size = len(bucket.keys)
        key = (id(bucket), prefix, delimiter)
        with lock:
            hit = cache.get(key)
        if hit is not None and hit[0] == size:
            return hit[1], hit[2]
        keys, folders, _, _ = original(self, bucket, prefix, delimiter, marker=None,
                                       max_keys=None)
        every = list(keys) + list(folders)
        every.sort(key=self._get_name)
        names = [self._get_name(k) for k in every]
        with lock:
            cache[key] = (size, every, names)
        return every, names

    def list_objects_v2(self: Any, bucket: Any, prefix: str | None, delimiter: str | None,
                        continuation_token: str | None, start_after: str | None,
                        max_keys: int) -> Any:
        from moto.s3.exceptions import MethodNotAllowed
        from moto.s3.models import FakeTableStorageBucket

        if isinstance(bucket, FakeTableStorageBucket):
            raise MethodNotAllowed()
        every, names = sorted_all(self, bucket, prefix, delimiter)
        start = 0
        if continuation_token or start_after:
            limit = (self._pagination_tokens.get(continuation_token)
                     if continuation_token else start_after)
            start = bisect.bisect_right(names, limit) if limit is not None else len(names)
        # moto's own truncation, token and all, on the page's slice (plus one to tell
        # whether there is more).
        return self._truncate_result(every[start:start + max_keys + 1], max_keys)

    backend_cls.list_objects_v2 = list_objects_v2


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--region", default="us-east-1")
    ap.add_argument("--bucket", action="append", default=[],
                    help="NAME:N[:SIZE], a bucket of N objects of SIZE bytes (default 0)")
    ap.add_argument("--files", action="append", default=[],
                    help="NAME:DIR, a bucket of the files below DIR")
    ap.add_argument("--no-fast-list", action="store_true")
    args = ap.parse_args()
    for k in [k for k in os.environ if k.startswith(("AWS_", "MOTO_"))]:
        del os.environ[k]

    from moto.s3.models import S3Backend, s3_backends
    from moto.server import ThreadedMotoServer

    if not args.no_fast_list:
        fast_listing(S3Backend)
    backend = s3_backends[ACCOUNT]["aws"]
    seed(backend, [(b.split(":")[0], int(b.split(":")[1]),
                    int(b.split(":")[2]) if b.count(":") > 1 else 0) for b in args.bucket],
         [(f.split(":", 1)[0], Path(f.split(":", 1)[1])) for f in args.files], args.region)
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)    # no line per request
    server = ThreadedMotoServer(ip_address=args.host, port=args.port, verbose=False)
    server.start()
    print("ready", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())

    def watch_stdin() -> None:
        with open(0, "rb", buffering=0) as f:
            while f.read(1024):
                pass
        stop.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    stop.wait()
    server.stop()


if __name__ == "__main__":
    main()
