"""The ``lightbox`` command line as a script sees it: stdout, stderr and exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from lbtest import DaemonProcess, run_cli, short_tmpdir


def env_for(d: DaemonProcess) -> dict[str, str]:
    return {"LIGHTBOX_DATA_DIR": str(d.data_dir)}


def test_status_json_parses_and_stdout_is_only_json(shared_daemon: DaemonProcess) -> None:
    r = run_cli("status", "--json", env=env_for(shared_daemon))
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["pid"] == shared_daemon.proc.pid  # type: ignore[union-attr]
    assert doc["database"]["engine"] == "sqlite"
    assert r.stdout.count("\n") == 1
    # The global form works too.
    r2 = run_cli("--json", "status", env=env_for(shared_daemon))
    assert json.loads(r2.stdout)["pid"] == doc["pid"]


def test_status_human(shared_daemon: DaemonProcess) -> None:
    r = run_cli("status", env=env_for(shared_daemon))
    assert r.returncode == 0
    assert r.stdout.startswith("lightboxd ")
    assert "catalog" in r.stdout


def test_no_daemon_one_line_and_exit_3() -> None:
    d = short_tmpdir()
    r = run_cli("status", "--json", env={"LIGHTBOX_DATA_DIR": str(d)})
    assert r.returncode == 3
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1
    assert "lightbox start" in lines[0]


def test_call_converts_by_schema(shared_daemon: DaemonProcess) -> None:
    r = run_cli("call", "events.since", "seq=0", "limit=1", "topics=system", "--json",
                env=env_for(shared_daemon))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert len(out["events"]) == 1
    assert out["events"][0]["topic"] == "system"


def test_call_raw_json_param(shared_daemon: DaemonProcess) -> None:
    r = run_cli("call", "events.since", "seq:=0", 'topics:=["system"]', "--json",
                env=env_for(shared_daemon))
    assert r.returncode == 0, r.stderr


def test_call_errors_and_exit_codes(shared_daemon: DaemonProcess) -> None:
    e = env_for(shared_daemon)
    r = run_cli("call", "no.such", env=e)
    assert r.returncode == 2
    assert "no method" in r.stderr
    r = run_cli("call", "events.since", "seq=abc", env=e)
    assert r.returncode == 2
    assert "seq" in r.stderr
    r = run_cli("call", "events.since", "limit=5", "--json", env=e)
    assert r.returncode == 2
    assert r.stdout == ""
    assert "seq: required" in r.stderr
    r = run_cli("call", "hello", "--wait", env=e)
    assert r.returncode == 2
    assert "does not start a job" in r.stderr


def test_call_lists_methods(shared_daemon: DaemonProcess) -> None:
    r = run_cli("call", env=env_for(shared_daemon))
    assert r.returncode == 0
    assert "system.status" in r.stdout
    assert "events.since" in r.stdout


def test_events_replay_and_count(shared_daemon: DaemonProcess) -> None:
    r = run_cli("events", "--since", "0", "--count", "1", "--json", env=env_for(shared_daemon))
    assert r.returncode == 0, r.stderr
    ev = json.loads(r.stdout)
    assert ev["seq"] == 1
    assert (ev["topic"], ev["type"]) == ("system", "started")


def test_events_idle_timeout(shared_daemon: DaemonProcess) -> None:
    started = time.monotonic()
    r = run_cli("events", "--idle-timeout", "0.5", env=env_for(shared_daemon))
    assert r.returncode == 0
    assert time.monotonic() - started < 10


def _open_sockets(pid: int) -> int:
    """How many sockets process ``pid`` holds (REQ and SUB connections each add theirs)."""
    n = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            n += os.readlink(fd).startswith("socket:")
        except OSError:
            pass
    return n


def test_events_stream_live(make_daemon: object) -> None:
    d: DaemonProcess = make_daemon()  # type: ignore[operator]
    proc = subprocess.Popen([sys.executable, "-m", "lightbox.cli.main", "events", "--json",
                             "--count", "1"], env={**env_for(d), "PATH": "/usr/bin:/bin"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # Subscribed: its control and event connections are open (a fixed sleep was not enough
    # under load: the CLI's start had not reached the subscription when the daemon stopped).
    deadline = time.monotonic() + 60
    while _open_sockets(proc.pid) < 4 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)  # the subscription itself travels right after the connection
    d.call("system.shutdown")
    out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, err
    assert json.loads(out)["type"] == "stopping"


def test_start_and_stop(tmp_path: Path) -> None:
    d = short_tmpdir()
    env = {"LIGHTBOX_DATA_DIR": str(d)}
    r = run_cli("start", "--json", env=env)
    assert r.returncode == 0, r.stderr
    started = json.loads(r.stdout)
    assert started["started"] is True
    try:
        again = run_cli("start", env=env)
        assert again.returncode == 0
        assert "already running" in again.stdout
        assert run_cli("status", env=env).returncode == 0
    finally:
        stop = run_cli("stop", "--json", env=env)
    assert stop.returncode == 0, stop.stderr
    assert json.loads(stop.stdout) == {"stopped": True}
    assert run_cli("status", env=env).returncode == 3
    assert (d / "state" / "lightboxd.log").read_text().count("daemon: ready") == 1


def test_stop_when_not_running() -> None:
    r = run_cli("stop", env={"LIGHTBOX_DATA_DIR": str(short_tmpdir())})
    assert r.returncode == 0
    assert "not running" in r.stdout


def test_tui_without_terminal_is_refused_cleanly(shared_daemon: DaemonProcess) -> None:
    r = run_cli(env=env_for(shared_daemon))
    assert r.returncode == 2
    assert "needs a terminal" in r.stderr


def test_help_documents_exit_codes() -> None:
    r = run_cli("--help")
    assert r.returncode == 0
    for line in ("0  success", "3  the daemon is not running", "5  permission denied"):
        assert line in r.stdout


def test_daemon_subcommand_runs_in_foreground() -> None:
    d = short_tmpdir()
    proc = subprocess.Popen([sys.executable, "-m", "lightbox.cli.main", "--data-dir", str(d),
                             "daemon"], stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if run_cli("status", env={"LIGHTBOX_DATA_DIR": str(d)}).returncode == 0:
                break
            time.sleep(0.2)
        else:
            raise AssertionError("lightbox daemon never answered")
    finally:
        proc.terminate()
        assert proc.wait(10) == 0
