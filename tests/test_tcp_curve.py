"""TCP is served only with CURVE, only to listed keys, each with its permission class."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import zmq
from lbtest import DaemonProcess, run_cli

from lightbox.common import errors
from lightbox.common import keys as keymod
from lightbox.common.client import Client, CurveKeys, Endpoint, SyncClient


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def tcp_daemon(make_daemon: Any, tmp_path: Path) -> tuple[DaemonProcess, dict[str, Any]]:
    keydir = tmp_path / "keys"
    for name in ("server", "admin", "reader", "stranger"):
        keymod.generate(keydir, name)
    pub = {n: keymod.load_pair(keydir / f"{n}.key_secret")[0].decode()
           for n in ("server", "admin", "reader", "stranger")}
    auth = tmp_path / "authorized_keys"
    auth.write_text(f"# class key comment\nadmin {pub['admin']} laptop\n"
                    f"read {pub['reader']} phone\n")
    port = free_port()
    d: DaemonProcess = make_daemon(config={"control": {
        "tcp": f"127.0.0.1:{port}", "tcp_events": f"127.0.0.1:{free_port()}",
        "server_key": str(keydir / "server.key_secret"), "authorized_keys": str(auth)}})
    return d, {"port": port, "keydir": keydir, "pub": pub, "auth": auth}


def endpoint(info: dict[str, Any], who: str) -> Endpoint:
    public, secret = keymod.load_pair(info["keydir"] / f"{who}.key_secret")
    return Endpoint(f"tcp://127.0.0.1:{info['port']}",
                    CurveKeys(info["pub"]["server"].encode(), public, secret))


def test_admin_key_gets_admin(tcp_daemon: tuple[DaemonProcess, dict[str, Any]]) -> None:
    _, info = tcp_daemon
    with SyncClient(endpoint(info, "admin"), timeout=5) as c:
        hello = c.connect()
        assert hello["permission"] == "admin"
        assert hello["events"].startswith("tcp://")
        assert "tcp+curve" in hello["features"]


def test_read_key_cannot_shut_down(tcp_daemon: tuple[DaemonProcess, dict[str, Any]]) -> None:
    d, info = tcp_daemon
    with SyncClient(endpoint(info, "reader"), timeout=5) as c:
        assert c.connect()["permission"] == "read"
        assert c.call("system.status")["pid"] == d.proc.pid  # type: ignore[union-attr]
        with pytest.raises(errors.PermissionDenied, match="admin"):
            c.call("system.shutdown")
        allowed = {m["name"]: m["allowed"] for m in c.call("system.methods")["methods"]}
        assert allowed["system.shutdown"] is False
        assert allowed["system.status"] is True
    assert d.proc.poll() is None  # type: ignore[union-attr]


def test_read_key_gets_no_paths_or_database_url_from_status(
        tcp_daemon: tuple[DaemonProcess, dict[str, Any]]) -> None:
    d, info = tcp_daemon
    with SyncClient(endpoint(info, "admin"), timeout=5) as c:
        full = c.call("system.status")
    assert full["paths"]["data"] == str(d.data_dir)
    assert "url" in full["database"]
    with SyncClient(endpoint(info, "reader"), timeout=5) as c:
        limited = c.call("system.status")
    assert "paths" not in limited
    assert "url" not in limited["database"]
    assert limited["database"]["engine"] == "sqlite"
    assert limited["counts"] == full["counts"]
    text = json.dumps(limited)
    assert str(d.data_dir) not in text, text
    assert "ipc://" not in text and "sqlite" + "+aiosqlite" not in text
    assert "/tmp" not in text and "/run/" not in text


def test_unlisted_key_gets_nothing(tcp_daemon: tuple[DaemonProcess, dict[str, Any]]) -> None:
    d, info = tcp_daemon
    with SyncClient(endpoint(info, "stranger"), timeout=1.5) as c, \
            pytest.raises(errors.RequestTimeout, match="key authorized"):
        c.call("hello")
    assert "key not authorized" in d.log()


def test_plain_tcp_without_curve_gets_nothing(
        tcp_daemon: tuple[DaemonProcess, dict[str, Any]]) -> None:
    _, info = tcp_daemon
    ctx = zmq.Context()
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(f"tcp://127.0.0.1:{info['port']}")
    try:
        s.send(b'{"jsonrpc":"2.0","id":1,"method":"hello"}', flags=zmq.NOBLOCK)
    except zmq.Again:
        pass
    assert not s.poll(1500)
    s.close(0)
    ctx.term()


def test_revoking_a_key_takes_effect_without_restart(
        tcp_daemon: tuple[DaemonProcess, dict[str, Any]]) -> None:
    _, info = tcp_daemon
    auth: Path = info["auth"]
    auth.write_text(f"admin {info['pub']['admin']}\n")
    time.sleep(0.05)
    with SyncClient(endpoint(info, "reader"), timeout=1.5) as c, \
            pytest.raises(errors.RequestTimeout):
        c.call("hello")


async def test_events_over_curve(tcp_daemon: tuple[DaemonProcess, dict[str, Any]]) -> None:
    d, info = tcp_daemon
    async with Client(endpoint(info, "admin"), timeout=5) as c:
        sub = await c.subscribe(["system"])
        await _settle()
        await c.call("system.shutdown")
        ev = await sub.next(5)
        sub.close()
    assert ev["topic"] == "system"
    assert ev["type"] == "stopping"
    assert d.proc.wait(5) == 0  # type: ignore[union-attr]


async def _settle() -> None:
    import asyncio

    await asyncio.sleep(0.3)  # let the SUB subscription reach the PUB socket


def test_tcp_without_keys_is_a_config_error(data_dir: Path) -> None:
    import sys

    cfg = data_dir / "c.toml"
    cfg.write_text('[control]\ntcp = "127.0.0.1:7999"\n')
    r = subprocess.run([sys.executable, "-m", "lightbox.daemon", "--data-dir", str(data_dir),
                        "--config", str(cfg)], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2
    assert "control.server_key" in r.stderr


def test_cli_over_tcp(tcp_daemon: tuple[DaemonProcess, dict[str, Any]]) -> None:
    _, info = tcp_daemon
    r = run_cli("status", "--json", "--socket", f"tcp://127.0.0.1:{info['port']}",
                "--server-key", info["pub"]["server"],
                "--client-key", str(info["keydir"] / "reader.key_secret"))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["version"]
    r = run_cli("call", "system.shutdown", "--socket", f"tcp://127.0.0.1:{info['port']}",
                "--server-key", str(info["keydir"] / "server.key"),
                "--client-key", str(info["keydir"] / "reader.key_secret"))
    assert r.returncode == 5, r.stderr
    assert "permission" in r.stderr


def test_keys_generate_cli(tmp_path: Path) -> None:
    r = run_cli("keys", "generate", "--dir", str(tmp_path), "--name", "box", "--class", "read",
                "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert len(out["public_key"]) == 40
    assert out["authorized_keys_line"].startswith("read ")
    assert (tmp_path / "box.key_secret").stat().st_mode & 0o077 == 0
    again = run_cli("keys", "generate", "--dir", str(tmp_path), "--name", "box")
    assert again.returncode == 1
    assert "refusing to overwrite" in again.stderr


def test_settings_over_tcp_audit_names_the_key(
        tcp_daemon: tuple[DaemonProcess, dict[str, Any]]) -> None:
    _, info = tcp_daemon
    with SyncClient(endpoint(info, "admin"), timeout=5) as c:
        c.connect()
        c.call("settings.set", {"patch": {"library.debounce": 0.4}})
        entry = c.call("settings.audit", {"key": "library.debounce"})["entries"][0]
    actor = entry["actor"]
    assert actor["transport"] == "tcp" and actor["key"] == info["pub"]["admin"]
    assert actor["key_name"] == "laptop" and actor["client_declared"] is True
    assert "uid" not in actor  # a TCP peer's Unix user is not known
    assert entry["by"].startswith("laptop")
    with SyncClient(endpoint(info, "reader"), timeout=5) as c:
        got = c.call("settings.get")["settings"]
        assert got["library.debounce"]["value"] == 0.4
        assert got["control.authorized_keys"]["value"] is None  # no host paths for readers
        assert got["database.url"]["value"] is None
        with pytest.raises(errors.PermissionDenied):
            c.call("settings.set", {"patch": {"library.debounce": 0.5}})
        with pytest.raises(errors.PermissionDenied):
            c.call("settings.audit")


def test_a_tcp_port_held_by_another_process_exits_3_a_bad_address_2(
        tcp_daemon: tuple[DaemonProcess, dict[str, Any]], tmp_path: Path) -> None:
    """The exit code tells "something already serves there" (3, as a second daemon on the
    same data dir) from a configuration that cannot work (2), by the bind's errno."""
    d, info = tcp_daemon
    import subprocess

    def second(tcp: str) -> subprocess.CompletedProcess[str]:
        home = tmp_path / f"other-{len(list(tmp_path.iterdir()))}"
        home.mkdir(mode=0o700)
        other = DaemonProcess(home, config={
            "control": {"tcp": tcp, "tcp_events": f"127.0.0.1:{free_port()}",
                        "server_key": str(info["keydir"] / "server.key_secret"),
                        "authorized_keys": str(info["auth"])}})
        return subprocess.run(other.command(), capture_output=True, text=True, timeout=60,
                              env=other.env() | {"NOTIFY_SOCKET": ""})

    busy = second(f"127.0.0.1:{info['port']}")  # the first daemon's port
    assert busy.returncode == 3, busy.stderr
    assert "in use" in busy.stderr and "Traceback" not in busy.stderr
    bad = second("192.0.2.1:1")  # TEST-NET-1: no interface of this machine has it
    assert bad.returncode == 2, bad.stderr
    assert "cannot bind" in bad.stderr
    assert d.call("hello")["boot"]  # the first one still serves
