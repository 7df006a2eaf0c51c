"""A first backup's copy alone (``LocalStore.copy_run``), for CPU per file (issue 10).

No daemon and no catalog: a library of SMALL small files (1-4 kB) and LARGE files of 4 MiB,
their sha256 computed once (cached beside the library), then per round a fresh target and
``copy_run`` of every file as the service batches them (``_batches``, the daemon's two
threads: two writers, four placing threads), every guarantee included (temp names, shared
``syncfs``, read-back from the device compared with the sha256, ``renameat2``). Prints the
wall time and the process's user and system CPU of each round. Every round's copies are
kept until the end (ext4 without a journal makes every create scan the inodes freed in the
last minute, which would charge the next round for this one's deletion).

For an A/B run it twice per round with another checkout's code first on the path, e.g.::

    PYTHONPATH=/work/ab/common:/work/ab/daemon .venv/bin/python benchmarks/copy_run.py \\
        --keep /work/bench/copyrun --tag A --rounds 1
    .venv/bin/python benchmarks/copy_run.py --keep /work/bench/copyrun --tag B --rounds 1

(``--keep``: the library and the targets stay in that folder between the calls; remove it
at the end.)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from lightbox.daemon.backups import files, service
from lightbox.daemon.media.confine import LocalFile


def make_library(src: Path, small: int, large: int) -> None:
    if (src / ".done").exists():
        return
    for i in range(small):
        d = src / "small" / f"{i // 1000:03d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"IMG_{i:06d}.jpg").write_bytes(os.urandom(1024 + (i * 37) % 3072))
    for i in range(large):
        d = src / "large"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"BIG_{i:04d}.jpg").write_bytes(os.urandom(4 << 20))
    (src / ".done").write_text("")


def items(src: Path, cache: Path) -> list[files.CopyItem]:
    """A CopyItem per file with the catalog's fingerprint (hashed once, then cached)."""
    shas: dict[str, str] = json.loads(cache.read_text()) if cache.exists() else {}
    out: list[files.CopyItem] = []
    for dirpath, _, names in os.walk(src):
        for n in sorted(names):
            if n.startswith("."):
                continue
            path = os.path.join(dirpath, n)
            rel = os.path.relpath(path, src)
            st = os.stat(path)
            sha = shas.get(rel)
            if sha is None:
                sha = shas[rel] = hashlib.sha256(Path(path).read_bytes()).hexdigest()
            out.append(files.CopyItem(len(out) + 1, LocalFile(
                str(src), rel, st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev), sha,
                st.st_size, f"lib/{rel}"))
    cache.write_text(json.dumps(shas))
    return out


def one_round(base: Path, name: str, todo: list[files.CopyItem], threads: int,
              writers: int | None = None) -> dict[str, float]:
    target = base / f"target-{name}"
    target.mkdir()
    files.prepare(str(target), "bench", "m")
    os.sync()  # nothing another round left dirty is flushed by this one
    r0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    batches = service._batches(todo, threads)
    run = files.LocalStore(str(target), "m").copy_run(batches, threads) if writers is None \
        else files.CopyRun(str(target), batches, writers=writers, placers=threads + 2)
    copied = 0
    try:
        while (batch := run.next()) is not None:
            assert batch.stop is None, batch.stop
            copied += sum(1 for o in batch.outcomes if o.status == "copied")
    finally:
        run.close()
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    assert copied == len(todo), (copied, len(todo))
    return {"wall": wall, "user": r1.ru_utime - r0.ru_utime, "sys": r1.ru_stime - r0.ru_stime}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--small", type=int, default=20_000)
    ap.add_argument("--large", type=int, default=100)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2, help="the daemon's worker count")
    ap.add_argument("--writers", type=int, help="writer threads (default: as the daemon)")
    ap.add_argument("--keep", type=Path, help="a folder kept between calls (A/B runs)")
    ap.add_argument("--tag", default="run", help="names this call's targets (A/B runs)")
    args = ap.parse_args()
    base = args.keep or Path(tempfile.mkdtemp(prefix="copyrun-", dir="/tmp"))
    base.mkdir(parents=True, exist_ok=True)
    try:
        make_library(base / "library", args.small, args.large)
        todo = items(base / "library", base / "sha256.json")
        rows = []
        for r in range(args.rounds):
            n = 0
            while (base / f"target-{args.tag}-{r}-{n}").exists():
                n += 1
            row = one_round(base, f"{args.tag}-{r}-{n}", todo, args.threads, args.writers)
            rows.append(row)
            print(f"{args.tag} round {r + 1}: {len(todo)} files, wall {row['wall']:.2f} s, "
                  f"user {row['user']:.2f} s, sys {row['sys']:.2f} s, CPU "
                  f"{row['user'] + row['sys']:.2f} s "
                  f"({1e6 * (row['user'] + row['sys']) / len(todo):.0f} us a file), load "
                  f"{os.getloadavg()[0]:.1f}", flush=True)
        med = {k: statistics.median(r[k] for r in rows) for k in ("wall", "user", "sys")}
        print(f"{args.tag} medians: wall {med['wall']:.2f} s, user {med['user']:.2f} s, "
              f"sys {med['sys']:.2f} s")
    finally:
        if args.keep is None:
            shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
