"""The real ``lightbox`` command in a pseudo-terminal: odd terminals must not crash it, and
the launcher's one-line refusals."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from typing import Any

import pytest
from lbtest import DaemonProcess, run_cli


def run_in_pty(args: list[str], env: dict[str, str], rows: int, cols: int,
               keys: bytes = b"q", settle: float = 4.0, timeout: float = 20.0
               ) -> tuple[int, str]:
    """Run ``lightbox ARGS`` on a pty of ``rows`` x ``cols``, type ``keys``, return
    (exit code, everything it wrote)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("LIGHTBOX_")}
    full_env.update(env)
    full_env["XDG_CONFIG_HOME"] = full_env["XDG_STATE_HOME"] = env.get("HOME_DIR", "/tmp")
    # ARGS are lightbox's, or ["-c", code] for a bare Python on the same pty
    argv = args if args[:1] == ["-c"] else ["-m", "lightbox.cli.main", *args]
    proc = subprocess.Popen([sys.executable, *argv], stdin=slave, stdout=slave, stderr=slave,
                            env=full_env, start_new_session=True, close_fds=True)
    os.close(slave)
    out = bytearray()
    deadline = time.monotonic() + timeout
    typed = False
    started = time.monotonic()
    try:
        while time.monotonic() < deadline:
            if not typed and time.monotonic() - started > settle:
                os.write(master, keys)
                typed = True
            ready, _, _ = select.select([master], [], [], 0.1)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:
                    chunk = b""
                if not chunk and proc.poll() is not None:
                    break
                out += chunk
            elif proc.poll() is not None:
                break
        code = proc.wait(timeout=max(0.1, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        text = out.decode(errors="replace")[-3000:]
        raise AssertionError(f"lightbox did not exit; it wrote:\n{text}") from None
    finally:
        os.close(master)
    return code, out.decode(errors="replace")


@pytest.fixture
def running(make_daemon: Any) -> DaemonProcess:
    d: DaemonProcess = make_daemon()
    return d


@pytest.mark.parametrize(("term", "rows", "cols"), [("dumb", 0, 0), ("xterm-256color", 0, 0),
                                                    ("dumb", 24, 80), ("xterm", 5, 20)])
def test_starts_and_quits_on_odd_terminals(running: DaemonProcess, tmp_path: Any, term: str,
                                           rows: int, cols: int) -> None:
    code, out = run_in_pty(["--socket", running.endpoint], {"TERM": term,
                                                           "HOME_DIR": str(tmp_path)},
                           rows, cols)
    assert "Traceback" not in out, out[-3000:]
    assert code == 0, out[-3000:]


def test_auto_detection_survives_a_zero_column_terminal(tmp_path: Any) -> None:
    """textual-image divides by the column count when measuring cells: guarded."""
    code, out = run_in_pty(
        ["-c", "from lightbox.tui.imaging.graphics import detect; "
               "print('MODE', detect('auto'))"],
        {"TERM": "xterm-256color", "HOME_DIR": str(tmp_path)}, 0, 0, keys=b"", settle=30)
    assert code == 0 and "MODE Graphics(" in out, out


def test_launcher_refusals(tmp_path: Any) -> None:
    r = run_cli("--socket", str(tmp_path / "none.sock"))
    assert r.returncode == 2 and "needs a terminal" in r.stderr  # not a tty here
    r = run_cli("--socket", str(tmp_path / "none.sock"), env={"LIGHTBOX_GRAPHICS": "ascii"})
    assert r.returncode == 2 and "LIGHTBOX_GRAPHICS" in r.stderr


def test_dead_daemon_at_start_is_one_clear_line(tmp_path: Any) -> None:
    code, out = run_in_pty(["--socket", str(tmp_path / "none.sock")],
                           {"TERM": "xterm-256color", "HOME_DIR": str(tmp_path)}, 24, 80,
                           keys=b"", settle=30)
    assert code == 3
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1 and "lightbox start" in lines[0], out
