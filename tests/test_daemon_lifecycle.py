"""The daemon as a process: readiness, sd_notify, signals, single instance, permissions."""

from __future__ import annotations

import os
import re
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from lbtest import DaemonProcess, short_tmpdir

from lightbox.common import errors
from lightbox.common.client import SyncClient


def test_ready_status_and_sigterm_exit_zero_within_bound(daemon: DaemonProcess) -> None:
    ready = daemon.wait_for("READY=1")
    assert any(f.startswith("STATUS=serving ipc://") for f in ready.split("\n"))
    assert f"MAINPID={daemon.proc.pid}" in ready  # type: ignore[union-attr]
    assert daemon.call("hello")["daemon"] == "lightboxd"
    started = time.monotonic()
    code = daemon.stop()
    elapsed = time.monotonic() - started
    assert code == 0
    assert elapsed < 5.0, f"SIGTERM took {elapsed:.2f} s"
    daemon.wait_for("STOPPING=1", timeout=1)
    # Sockets are gone after a clean stop; the lock file stays (it is harmless and reused).
    assert not daemon.socket_path.exists()
    assert not (daemon.data_dir / "run" / "events.sock").exists()


def test_sigint_also_stops_cleanly(daemon: DaemonProcess) -> None:
    daemon.signal(signal.SIGINT)
    assert daemon.proc is not None
    assert daemon.proc.wait(5) == 0


def test_shutdown_request_answers_then_stops(daemon: DaemonProcess) -> None:
    assert daemon.call("system.shutdown") == {"stopping": True}
    assert daemon.proc is not None
    assert daemon.proc.wait(5) == 0
    assert "stopping reason=request" in daemon.log()


def test_socket_and_directory_permissions(daemon: DaemonProcess) -> None:
    run = daemon.data_dir / "run"
    assert stat.S_IMODE(run.stat().st_mode) == 0o700
    for name in ("control.sock", "events.sock"):
        st = (run / name).stat()
        assert stat.S_ISSOCK(st.st_mode)
        assert stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)
        assert st.st_uid == os.getuid()
    # The catalog is private too.
    assert stat.S_IMODE((daemon.data_dir / "catalog.db").stat().st_mode) & 0o077 == 0 or \
        stat.S_IMODE(daemon.data_dir.stat().st_mode) & 0o077 == 0


def test_second_daemon_on_same_socket_refuses(daemon: DaemonProcess) -> None:
    second = subprocess.run(daemon.command(), capture_output=True, text=True, timeout=30,
                            env=daemon.env() | {"NOTIFY_SOCKET": ""})
    assert second.returncode == 3
    assert "already serving" in second.stderr
    assert str(daemon.proc.pid) in second.stderr  # type: ignore[union-attr]
    # ...and the first one still owns the socket and answers.
    assert daemon.call("hello")["boot"]


def test_stale_socket_after_sigkill_does_not_block_restart(daemon: DaemonProcess) -> None:
    boot = daemon.call("hello")["boot"]
    daemon.kill()
    assert daemon.socket_path.exists(), "SIGKILL leaves the socket file behind"
    with pytest.raises(errors.DaemonNotRunning, match="stale socket"), \
            SyncClient(daemon.endpoint, timeout=2) as c:
        c.call("hello")
    daemon.start()
    assert daemon.call("hello")["boot"] != boot


def test_watchdog_pings_when_requested(make_daemon: Any) -> None:
    d: DaemonProcess = make_daemon(env={"WATCHDOG_USEC": "400000"})
    d.notifications.clear()
    d.wait_for("WATCHDOG=1", timeout=3)
    d.notifications.clear()
    d.wait_for("WATCHDOG=1", timeout=3)


def test_structured_logs_on_stderr(daemon: DaemonProcess) -> None:
    daemon.stop()
    lines = daemon.log().splitlines()
    pattern = re.compile(
        r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (debug|info|warning|error)\s+[a-z]+: .+")
    ready = [ln for ln in lines if " daemon: ready " in ln]
    assert ready and pattern.match(ready[0]), lines
    assert re.search(r" pid=\d+", ready[0])
    assert all(pattern.match(ln) for ln in lines if ln.strip()), lines


def test_json_log_format(make_daemon: Any) -> None:
    d: DaemonProcess = make_daemon(config={"log": {"format": "json"}})
    d.stop()
    import json

    records = [json.loads(line) for line in d.log().splitlines() if line.strip()]
    assert any(r["component"] == "daemon" and r["msg"] == "ready" for r in records)
    assert all({"time", "level", "component", "msg"} <= r.keys() for r in records)


def test_invalid_config_names_the_key_and_exits_2(data_dir: Path) -> None:
    cfg = data_dir / "bad.toml"
    cfg.write_text('[control]\nmax_message_bytes = "lots"\n')
    r = subprocess.run([sys.executable, "-m", "lightbox.daemon", "--data-dir", str(data_dir),
                        "--config", str(cfg)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert "control.max_message_bytes" in r.stderr
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_unknown_key_suggests_the_right_one(data_dir: Path) -> None:
    cfg = data_dir / "typo.toml"
    cfg.write_text('[log]\nlevl = "debug"\n')
    r = subprocess.run([sys.executable, "-m", "lightbox.daemon", "--data-dir", str(data_dir),
                        "--config", str(cfg)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert "log.levl" in r.stderr and "did you mean log.level" in r.stderr


def test_bad_environment_value_exits_2(data_dir: Path) -> None:
    env = {**os.environ, "LIGHTBOX_LOG_LEVEL": "loud"}
    r = subprocess.run([sys.executable, "-m", "lightbox.daemon", "--data-dir", str(data_dir)],
                       capture_output=True, text=True, timeout=30, env=env)
    assert r.returncode == 2
    assert "log.level" in r.stderr and "LIGHTBOX_LOG_LEVEL" in r.stderr


def test_two_instances_side_by_side(make_daemon: Any) -> None:
    a: DaemonProcess = make_daemon()
    b: DaemonProcess = make_daemon()
    assert a.call("hello")["boot"] != b.call("hello")["boot"]
    assert a.call("system.status")["paths"]["data"] != b.call("system.status")["paths"]["data"]


def test_stop_is_bounded_with_a_client_that_never_reads(daemon: DaemonProcess) -> None:
    import zmq

    ctx = zmq.Context()
    s = ctx.socket(zmq.DEALER)
    s.connect(daemon.endpoint)
    for i in range(200):
        s.send(b'{"jsonrpc":"2.0","id":%d,"method":"system.status"}' % i)
    time.sleep(0.2)
    started = time.monotonic()
    assert daemon.stop() == 0
    assert time.monotonic() - started < 5.0
    s.close(0)
    ctx.term()


def test_runtime_dir_fallback_is_private(tmp_path: Path) -> None:
    """Without XDG_RUNTIME_DIR the fallback directory is created 0700 and vetted."""
    import tempfile

    from lightbox.common import paths

    env = {"HOME": str(tmp_path)}
    resolved = paths.resolve(None, env)
    run_user = Path(f"/run/user/{os.getuid()}")
    if run_user.is_dir() and run_user.stat().st_uid == os.getuid():
        assert resolved.runtime_dir == run_user / "lightbox"
    else:  # containers, cron, su: a directory of our own in the temporary directory
        assert resolved.runtime_dir == Path(tempfile.gettempdir()) / f"lightbox-{os.getuid()}"
    with_xdg = paths.resolve(None, {"HOME": str(tmp_path), "XDG_RUNTIME_DIR": str(tmp_path)})
    assert with_xdg.runtime_dir == tmp_path / "lightbox"
    target = tmp_path / "rt" / "lightbox"
    paths.ensure_private_dir(target)
    assert stat.S_IMODE(target.stat().st_mode) == 0o700
    target.chmod(0o755)
    paths.ensure_private_dir(target)  # ours but too open: closed again
    assert stat.S_IMODE(target.stat().st_mode) == 0o700


@pytest.mark.skipif(os.getuid() != 0, reason="needs root to give a directory to another uid")
def test_runtime_dir_owned_by_someone_else_is_refused(tmp_path: Path) -> None:
    from lightbox.common import paths

    target = tmp_path / "foreign"
    target.mkdir(mode=0o700)
    os.chown(target, 54321, 54321)
    with pytest.raises(paths.PathError, match="belongs to uid 54321"):
        paths.ensure_private_dir(target)


def test_runtime_dir_symlink_is_refused(tmp_path: Path) -> None:
    from lightbox.common import paths

    real = tmp_path / "real"
    real.mkdir(mode=0o700)
    link = tmp_path / "link"
    link.symlink_to(real)
    with pytest.raises(paths.PathError, match="symbolic link"):
        paths.ensure_private_dir(link)


def test_socket_path_too_long_is_a_config_error() -> None:
    d = short_tmpdir()
    long_dir = d / ("x" * 120)
    r = subprocess.run([sys.executable, "-m", "lightbox.daemon", "--data-dir", str(long_dir)],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert "Unix sockets allow 107" in r.stderr


def test_notify_socket_abstract_namespace() -> None:
    """NOTIFY_SOCKET=@name is an abstract socket (systemd uses those too)."""
    from lightbox.daemon.notify import Notifier

    name = f"lightbox-test-{os.getpid()}"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind("\0" + name)
    s.settimeout(2)
    try:
        n = Notifier({"NOTIFY_SOCKET": "@" + name})
        n.ready("hello")
        assert b"READY=1" in s.recv(1024)
    finally:
        s.close()


def test_a_notify_socket_nobody_reads_never_blocks() -> None:
    """A receiver whose queue is full (ten datagrams, net.unix.max_dgram_qlen): each further
    send is a warning, never a wait (the watchdog pings run on the event loop)."""
    from lightbox.daemon.notify import Notifier

    path = short_tmpdir("lbnq") / "notify"
    s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    s.bind(str(path))
    try:
        n = Notifier({"NOTIFY_SOCKET": str(path)})
        done = []

        def flood() -> None:
            for _ in range(200):
                n.status("busy")
            done.append(True)

        import threading

        t = threading.Thread(target=flood, daemon=True)
        t.start()
        t.join(10)
        assert done, "sd_notify blocked on a receiver that does not read"
        assert b"STATUS=busy" in s.recv(1024)
    finally:
        s.close()


def test_sigusr2_dumps_every_threads_stack_and_goes_on(daemon: DaemonProcess) -> None:
    """``kill -USR2``: where each thread is, in the log, written by a C-level handler (so it
    works while the event loop is stuck); the daemon goes on answering."""
    assert daemon.proc is not None
    daemon.proc.send_signal(signal.SIGUSR2)
    deadline = time.monotonic() + 10
    while "most recent call first" not in daemon.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    log = daemon.log()
    assert "most recent call first" in log and 'File "' in log, log[-2000:]
    assert "Current thread" in log or "Thread 0x" in log
    assert daemon.call("hello", {})["version"]
