"""The asyncio client and its synchronous wrapper against a real daemon."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from lbtest import DaemonProcess, short_tmpdir

from lightbox.common import errors
from lightbox.common.client import Client, SyncClient, resolve_endpoint


async def test_many_calls_in_flight_on_one_client(shared_daemon: DaemonProcess) -> None:
    async with Client(shared_daemon.endpoint) as c:
        results = await asyncio.gather(*(c.call("hello") for _ in range(300)))
    assert {r["daemon"] for r in results} == {"lightboxd"}


async def test_typed_errors(shared_daemon: DaemonProcess) -> None:
    async with Client(shared_daemon.endpoint) as c:
        with pytest.raises(errors.MethodNotFound):
            await c.call("nope.nope")
        with pytest.raises(errors.InvalidParams) as info:
            await c.call("events.since", {"seq": -1})
        assert "seq" in info.value.data["errors"]


async def test_reconnects_after_daemon_restart(make_daemon: Any) -> None:
    d: DaemonProcess = make_daemon()
    async with Client(d.endpoint, timeout=3) as c:
        first = await c.connect()
        d.kill()  # the worst kind of restart: no goodbye
        with pytest.raises((errors.RequestTimeout, errors.DaemonNotRunning)):
            await c.call("hello", timeout=1)
        d.start()
        second = await c.connect()
        assert second["boot"] != first["boot"]
        page = await c.call("events.since", {"seq": 50, "boot": first["boot"]})
        assert page["reset"] is True
        assert page["events"][0]["type"] == "started"


async def test_graceful_restart_is_transparent(make_daemon: Any) -> None:
    d: DaemonProcess = make_daemon()
    async with Client(d.endpoint, timeout=10) as c:
        first = await c.connect()
        assert d.stop() == 0
        d.start()
        # ZeroMQ reconnects the same ipc path by itself: no error at all.
        assert (await c.connect())["boot"] != first["boot"]


async def test_subscription_receives_events(make_daemon: Any) -> None:
    d: DaemonProcess = make_daemon()
    async with Client(d.endpoint) as c:
        sub = await c.subscribe(["system"])
        await asyncio.sleep(0.3)
        await c.call("system.shutdown")
        ev = await sub.next(5)
        assert ev["type"] == "stopping"
        assert sub.last_seq == ev["seq"]
        sub.close()


def test_not_running_is_immediate() -> None:
    d = short_tmpdir()
    with SyncClient(f"ipc://{d}/control.sock", timeout=30) as c, \
            pytest.raises(errors.DaemonNotRunning, match="no socket"):
        c.call("hello")


def test_resolve_endpoint_forms(tmp_path: Any) -> None:
    assert resolve_endpoint("/x/y.sock", env={}).address == "ipc:///x/y.sock"
    assert resolve_endpoint(None, env={"LIGHTBOX_SOCKET": "ipc:///a"}).address == "ipc:///a"
    e = resolve_endpoint(None, data_dir=str(tmp_path), env={})
    assert e.address == f"ipc://{tmp_path}/run/control.sock"
    with pytest.raises(ValueError, match="public key"):
        resolve_endpoint("tcp://h:1", env={})
    with pytest.raises(ValueError, match="unsupported"):
        resolve_endpoint("http://h", env={})


async def test_closing_a_client_with_an_open_subscription_does_not_hang(
        shared_daemon: DaemonProcess) -> None:
    """A subscription its owner forgot to close must not block ``close`` (zmq's term waits
    for every socket of the context: it hung the event loop until the test timed out)."""
    client = Client(shared_daemon.endpoint)
    await client.connect()
    await client.subscribe([])
    await asyncio.wait_for(client.close(), 10)
