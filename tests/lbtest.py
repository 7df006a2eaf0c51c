"""Test helpers: the real daemon in a subprocess, real services, the corpus.

Nothing here is mocked. ``DaemonProcess`` starts ``python -m lightbox.daemon`` on a private
data dir, with ``NOTIFY_SOCKET`` pointing at a datagram socket the test owns, so readiness is
the daemon's own ``READY=1`` (which also tests the sd_notify code).

Services (PostgreSQL, MariaDB, the corpus) are skipped with a message when absent, unless
``LIGHTBOX_REQUIRE_SERVICES=1`` (set by ``.ci/run``), which turns every such skip into a
failure: CI must never pass because something was not there.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from lightbox.common.client import SyncClient

ROOT = Path(__file__).resolve().parent.parent
CORPUS = Path(os.environ.get("LIGHTBOX_CORPUS", ROOT.parent / "shared" / "corpus"))
REQUIRE = os.environ.get("LIGHTBOX_REQUIRE_SERVICES") == "1"

POSTGRES_URL = os.environ.get("LIGHTBOX_TEST_POSTGRES",
                              "postgresql+asyncpg://postgres@127.0.0.1:5432/test")
MYSQL_URL = os.environ.get("LIGHTBOX_TEST_MYSQL", "mysql+aiomysql://root:@127.0.0.1:3306/test")


def need(available: bool, what: str, how: str) -> None:
    """Skip (or, under CI, fail) when a service or data set the test needs is absent."""
    if available:
        return
    message = f"{what} is not available: {how}"
    if REQUIRE:
        pytest.fail(f"LIGHTBOX_REQUIRE_SERVICES=1 but {message}")
    pytest.skip(message)


def port_open(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


# Every directory short_tmpdir made in this test process: removed when the session passes
# (conftest's pytest_sessionfinish), kept after a failure for the daemon logs in them.
MADE_DIRS: list[Path] = []


def short_tmpdir(prefix: str = "lb") -> Path:
    """Unix socket paths are limited to 107 bytes: keep data dirs short (under /tmp, not
    pytest's tmp_path, so pytest does not clean them: see ``MADE_DIRS``)."""
    path = Path(tempfile.mkdtemp(prefix=f"{prefix}-", dir="/tmp"))
    MADE_DIRS.append(path)
    return path


class DaemonProcess:
    """A real lightboxd in a subprocess, on its own data dir."""

    def __init__(self, data_dir: Path, config: dict[str, Any] | None = None,
                 env: dict[str, str] | None = None, args: list[str] | None = None) -> None:
        self.data_dir = data_dir
        self.config_file: Path | None = None
        if config:
            self.config_file = data_dir / "lightboxd.toml"
            self.config_file.write_text(_toml(config))
        self.extra_env = env or {}
        self.args = args or []
        self.proc: subprocess.Popen[bytes] | None = None
        self.notify_dir = Path(tempfile.mkdtemp(prefix="lbn-", dir="/tmp"))
        self.notify_path = self.notify_dir / "notify"
        self.notify: socket.socket | None = None
        self.notifications: list[str] = []
        self.log_path = data_dir / "daemon.log"
        # Run the daemon through a wrapper, e.g. setpriv to drop root's DAC override.
        self.prefix: list[str] = []

    @property
    def socket_path(self) -> Path:
        return self.data_dir / "run" / "control.sock"

    @property
    def endpoint(self) -> str:
        return f"ipc://{self.socket_path}"

    def command(self) -> list[str]:
        cmd = [sys.executable, "-m", "lightbox.daemon", "--data-dir", str(self.data_dir)]
        if self.config_file:
            cmd += ["--config", str(self.config_file)]
        return cmd + self.args

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("LIGHTBOX_")}
        # faulthandler: a daemon that crashes in native code leaves its threads' tracebacks
        # in its log (stderr goes there) instead of vanishing.
        env.update({"NOTIFY_SOCKET": str(self.notify_path), "PYTHONUNBUFFERED": "1",
                    "PYTHONFAULTHANDLER": "1"})
        env.update(self.extra_env)
        return env

    def start(self, wait: bool = True, timeout: float = 30.0) -> DaemonProcess:
        if self.notify is None:
            self.notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self.notify.bind(str(self.notify_path))

        self.notifications.clear()
        log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen(self.prefix + self.command(), env=self.env(), stdout=log,
                                     stderr=log)
        log.close()
        if wait:
            self.wait_for("READY=1", timeout)
        return self

    def wait_for(self, field: str, timeout: float = 30.0) -> str:
        """Block until an sd_notify datagram containing ``field`` arrives."""
        assert self.notify is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            exited = self.proc is not None and self.proc.poll() is not None
            self.notify.settimeout(0.0 if exited else 0.2)
            with contextlib.suppress(TimeoutError, BlockingIOError):
                while True:
                    self.notifications.append(self.notify.recv(4096).decode())
                    self.notify.settimeout(0.0)
            for msg in self.notifications:
                if field in msg.split("\n"):
                    return msg
            if exited:
                raise AssertionError(
                    f"daemon exited with {self.proc.returncode} before {field}:\n{self.log()}")
        raise AssertionError(f"no {field} within {timeout} s:\n{self.log()}")

    def log(self) -> str:
        """The daemon's whole log: a check that a line is (or a secret is not) in it must
        read all of it, not a tail a busy daemon has already scrolled past."""
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def client(self, timeout: float = 10.0) -> SyncClient:
        return SyncClient(self.endpoint, timeout=timeout)

    def call(self, method: str, params: Any = None, timeout: float = 10.0) -> Any:
        with self.client(timeout) as c:
            return c.call(method, params)

    def signal(self, sig: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM and wait; returns the exit code."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"daemon ignored SIGTERM for {timeout} s:\n{self.log()}") from None

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            if self.proc is not None and self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(5)
        if self.notify is not None:
            self.notify.close()
            self.notify = None
        shutil.rmtree(self.notify_dir, ignore_errors=True)


def _toml(config: dict[str, Any]) -> str:
    lines: list[str] = []
    for section, body in config.items():
        lines.append(f"[{section}]")
        for key, value in body.items():
            if isinstance(value, bool):
                lines.append(f"{key} = {'true' if value else 'false'}")
            elif isinstance(value, (int, float)):
                lines.append(f"{key} = {value}")
            else:
                lines.append(f'{key} = "{value}"')
    return "\n".join(lines) + "\n"


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 60.0,
            input: bytes | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``lightbox ...`` as a user would, in a subprocess."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("LIGHTBOX_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "lightbox.cli.main", *args], env=full_env, capture_output=True,
        text=True, timeout=timeout, input=None if input is None else input.decode(),
    )
