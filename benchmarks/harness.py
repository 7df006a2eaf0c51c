"""Shared plumbing for the benchmark scripts: a daemon in a subprocess, timing helpers.

Benchmarks are programs, not tests: each prints its figures next to a baseline measured in
the same run (machines here are noisy, so ratios and medians are what to compare).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from lightbox.common.client import SyncClient


def percentile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[index]


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


class Daemon:
    """lightboxd on its own data dir, for benchmarks."""

    def __init__(self, data_dir: Path, config: str = "", log_level: str = "warning") -> None:
        self.data_dir = data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        self.config_file = data_dir / "bench.toml"
        self.config_file.write_text(config)
        self.log = data_dir / "daemon.log"
        self.log_level = log_level
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"ipc://{self.data_dir}/run/control.sock"

    def start(self, timeout: float = 120.0) -> Daemon:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LIGHTBOX_")}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "lightbox.daemon", "--data-dir", str(self.data_dir),
                 "--config", str(self.config_file), "--log-level", self.log_level],
                env=env, stdout=log, stderr=log)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(Exception), SyncClient(self.endpoint, timeout=2) as c:
                c.call("hello")
                return self
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited: {self.log.read_text()[-2000:]}")
            time.sleep(0.1)
        raise RuntimeError("daemon did not answer")

    def client(self, timeout: float = 60.0) -> SyncClient:
        return SyncClient(self.endpoint, timeout=timeout)

    def call(self, method: str, params: Any = None, timeout: float = 60.0) -> Any:
        with self.client(timeout) as c:
            return c.call(method, params)

    def wait_job(self, job: int, timeout: float = 3600.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        with self.client(330) as c:
            while True:
                done: dict[str, Any] = c.call("jobs.wait", {"id": job, "timeout": 300})
                if done["state"] in ("succeeded", "failed", "cancelled"):
                    return done
                if time.monotonic() > deadline:
                    raise TimeoutError(f"job {job} still {done['state']}")

    def rss_mb(self) -> float:
        assert self.proc is not None
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@contextlib.contextmanager
def scratch(prefix: str = "lbbench", keep: bool = False) -> Iterator[Path]:
    """A short temp dir (socket paths are limited to 107 bytes)."""
    path = Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir=os.environ.get("BENCH_TMP", "/tmp")))
    try:
        yield path
    finally:
        if not keep:
            shutil.rmtree(path, ignore_errors=True)


def drop_caches_hint() -> str:
    return "warm page cache (files just written or listed)"
