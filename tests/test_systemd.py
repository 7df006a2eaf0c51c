"""The systemd units: `systemd-analyze verify` clean, notify type, watchdog, hardening."""

from __future__ import annotations

import configparser
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from lbtest import ROOT, DaemonProcess, need

UNITS = {"user": ROOT / "systemd" / "lightboxd.user.service",
         "system": ROOT / "systemd" / "lightboxd.service"}
LIGHTBOXD = str(Path(sys.executable).with_name("lightboxd"))


def parse(path: Path) -> configparser.ConfigParser:
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.optionxform = str  # type: ignore[assignment,method-assign]
    cp.read(path)
    return cp


@pytest.mark.parametrize("kind", ["user", "system"])
def test_systemd_analyze_verify_is_clean(kind: str, tmp_path: Path) -> None:
    need(shutil.which("systemd-analyze") is not None, "systemd-analyze",
         "install systemd (Debian: apt install systemd)")
    unit = tmp_path / "lightboxd.service"
    text = UNITS[kind].read_text()
    old = "%h/.local/bin/lightboxd" if kind == "user" else "/usr/local/bin/lightboxd"
    assert f"ExecStart={old}" in text
    unit.write_text(text.replace(old, LIGHTBOXD))
    runtime = tmp_path / "rt"
    runtime.mkdir(mode=0o700)
    cmd = ["systemd-analyze"] + (["--user"] if kind == "user" else []) + ["verify", str(unit)]
    r = subprocess.run(cmd, capture_output=True, text=True,
                       env={**os.environ, "XDG_RUNTIME_DIR": str(runtime)})
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "" and r.stderr.strip() == "", r.stdout + r.stderr


@pytest.mark.parametrize("kind", ["user", "system"])
def test_units_have_notify_watchdog_and_hardening(kind: str) -> None:
    svc = parse(UNITS[kind])["Service"]
    assert svc["Type"] == "notify"
    assert svc["WatchdogSec"]
    assert svc["Restart"] == "on-failure"
    for key in ("NoNewPrivileges", "PrivateTmp"):
        assert svc[key] == "yes"
    assert svc["ProtectSystem"] == "strict"
    assert svc["RestrictAddressFamilies"] == "AF_UNIX AF_INET AF_INET6"
    if kind == "system":
        assert svc["User"] == "lightbox"
        assert svc["RuntimeDirectoryMode"] == "0700"
    else:
        assert "ReadWritePaths" in svc


def test_sighup_reloads_instead_of_killing(make_daemon: Any) -> None:
    d: DaemonProcess = make_daemon()
    d.signal(signal.SIGHUP)
    deadline = time.monotonic() + 5
    while "reload requested" not in d.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "reload requested" in d.log()
    assert d.call("hello")["daemon"] == "lightboxd"
    assert d.proc.poll() is None  # type: ignore[union-attr]


def test_system_unit_paths_are_honoured(make_daemon: Any, tmp_path: Path) -> None:
    """The directories systemd creates for the system unit are the ones the daemon uses."""
    env = {"STATE_DIRECTORY": str(tmp_path / "state"), "CACHE_DIRECTORY": str(tmp_path / "c"),
           "LOGS_DIRECTORY": str(tmp_path / "logs"), "RUNTIME_DIRECTORY": str(tmp_path / "run"),
           "CONFIGURATION_DIRECTORY": str(tmp_path / "etc")}
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "lightboxd.toml").write_text('[log]\nlevel = "debug"\n')
    from lightbox.common import config

    cfg = config.load(None, None, env=env)
    assert cfg.paths.data_dir == tmp_path / "state"
    assert cfg.paths.cache_dir == tmp_path / "c"
    assert cfg.control_endpoint == f"ipc://{tmp_path}/run/control.sock"
    assert cfg["log.level"] == "debug"
