"""Protocol limits over the real socket: values no reply could carry, numbers beyond what the
catalog stores, requests too large to read, and replies too large to hold.

Each case once crashed or exhausted the daemon (issue 7): a lone-surrogate id silenced the
reply, an id >= 2**63 overflowed the driver, a NUL byte reached the file system, a 17 MiB
request got no answer, and a 9.9 KB batch of 100 ``photos.original`` calls grew the daemon
by 1.6 GB.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lbtest import DaemonProcess, short_tmpdir
from PIL import Image
from test_control_bad_input import Raw

from lightbox.common import errors


@pytest.fixture
def raw(shared_daemon: DaemonProcess) -> Iterator[Raw]:
    r = Raw(shared_daemon.endpoint)
    yield r
    r.close()
    assert shared_daemon.call("hello")["daemon"] == "lightboxd"


def ask(raw: Raw, text: str) -> Any:
    """Send JSON text as written (ASCII escapes kept, e.g. a lone ``\\ud800``)."""
    return raw.ask(text.encode())


def error_of(reply: Any) -> dict[str, Any]:
    assert "result" not in reply, reply
    err: dict[str, Any] = reply["error"]
    assert err["code"] != errors.INTERNAL_ERROR, reply
    return err


def test_id_that_cannot_be_encoded_is_answered_under_null(raw: Raw) -> None:
    reply = ask(raw, '{"jsonrpc":"2.0","id":"\\ud800","method":"hello"}')
    assert reply["id"] is None
    assert error_of(reply)["code"] == errors.INVALID_REQUEST
    # In a batch, the other requests keep their answers.
    batch = ask(raw, '[{"jsonrpc":"2.0","id":"a\\udfff","method":"hello"},'
                     '{"jsonrpc":"2.0","id":2,"method":"hello"}]')
    by_id = {r["id"]: r for r in batch}
    assert by_id[2]["result"]["daemon"] == "lightboxd"
    assert error_of(by_id[None])["code"] == errors.INVALID_REQUEST
    # A valid surrogate pair is ordinary text and comes back as sent.
    assert ask(raw, '{"jsonrpc":"2.0","id":"\\ud83d\\ude00","method":"hello"}')["id"] == "😀"


@pytest.mark.parametrize("method", ["hello\\ud800", "hel\\u0000lo", "jobs.get\\n"])
def test_method_name_that_is_not_text(raw: Raw, method: str) -> None:
    reply = ask(raw, f'{{"jsonrpc":"2.0","id":1,"method":"{method}"}}')
    assert reply["id"] == 1
    err = error_of(reply)
    assert err["code"] == errors.INVALID_REQUEST
    assert err["data"]["member"] == "method"


@pytest.mark.parametrize(("method", "params", "name"), [
    ("roots.add", '{"path":"/tmp/a\\u0000b"}', "path"),
    ("roots.add", '{"path":"/tmp/\\udc80"}', "path"),
    ("photos.search", '{"text":"x\\ud800"}', "text"),
    ("library.scan", '{"root":"\\udbff"}', "root"),
    ("library.scan", '{"root":["\\u0000"]}', "root"),
    ("hello", '{"\\ud800":1}', "\\ud800"),
    ("hello", '{"a\\u0000":1}', "a\\x00"),
    ("jobs.get", '{"id":9223372036854775808}', "id"),
    ("jobs.get", '{"id":1e300}', "id"),
    ("jobs.cancel", '{"id":100000000000000000000000000000}', "id"),
    ("jobs.wait", '{"id":-9223372036854775809}', "id"),
    ("jobs.wait", '{"id":1,"timeout":1e400}', "timeout"),
    ("photos.original", '{"id":1,"offset":9223372036854775808}', "offset"),
    ("folders.list", '{"folder":18446744073709551616}', "folder"),
    ("library.cleanup", '{"days":1000000000}', "days"),
    ("events.since", '{"seq":1e309}', "seq"),
])
def test_bad_values_are_invalid_params_naming_the_parameter(
        raw: Raw, method: str, params: str, name: str) -> None:
    reply = ask(raw, f'{{"jsonrpc":"2.0","id":7,"method":"{method}","params":{params}}}')
    assert reply["id"] == 7
    err = error_of(reply)
    assert err["code"] == errors.INVALID_PARAMS, err
    assert list(err["data"]["errors"]) == [name], err


def test_cleanup_with_absurd_days_starts_no_job(shared_daemon: DaemonProcess) -> None:
    """It used to be retried three times and then say `OverflowError: …`."""
    before = shared_daemon.call("jobs.list", {"kind": "cleanup"})["jobs"]
    with pytest.raises(errors.InvalidParams) as exc:
        shared_daemon.call("library.cleanup", {"days": 1_000_000_000})
    assert "at most 3650" in exc.value.message
    assert shared_daemon.call("jobs.list", {"kind": "cleanup"})["jobs"] == before


def test_oversized_request_gets_the_documented_error(raw: Raw,
                                                     shared_daemon: DaemonProcess) -> None:
    limit = shared_daemon.call("hello")["max_message_bytes"]
    big = b'{"jsonrpc":"2.0","id":1,"method":"hello","params":{"client":"' + \
        b"x" * (17 << 20) + b'"}}'
    raw.send(big)
    reply, _ = raw.recv(timeout=30)
    err = error_of(reply)
    assert err["code"] == errors.INVALID_REQUEST
    assert err["data"] == {"limit": limit, "size": len(big)}
    # The connection is still usable.
    assert ask(raw, '{"jsonrpc":"2.0","id":2,"method":"hello"}')["id"] == 2


def _rss(pid: int, field: str = "VmRSS") -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no {field} for {pid}")


@pytest.fixture(scope="module")
def big_photo_daemon() -> Iterator[tuple[DaemonProcess, int]]:
    """A daemon whose library holds one indexed 9 MiB photo (noise does not compress)."""
    data = short_tmpdir()
    photos = short_tmpdir("lbphotos")  # not inside the data dir: roots.add refuses that
    side = 1800
    Image.frombytes("RGB", (side, side), os.urandom(side * side * 3)).save(
        photos / "noise.png", compress_level=1)
    d = DaemonProcess(data, {"library": {"watch": False, "reconcile_interval": 0}})
    d.start()
    try:
        job = d.call("roots.add", {"path": str(photos)})["job"]
        done = d.call("jobs.wait", {"id": job, "timeout": 120}, timeout=130)
        assert done["state"] == "succeeded", done
        page = d.call("photos.search", {"status": "ok"})["photos"]
        assert len(page) == 1 and page[0]["size"] > 8 << 20, page
        yield d, page[0]["id"]
    finally:
        d.close()
        import shutil

        shutil.rmtree(data, ignore_errors=True)
        shutil.rmtree(photos, ignore_errors=True)


def test_amplifying_batch_stays_within_the_reply_budget(
        big_photo_daemon: tuple[DaemonProcess, int]) -> None:
    d, pid = big_photo_daemon
    assert d.proc is not None
    batch = json.dumps([{"jsonrpc": "2.0", "id": i, "method": "photos.original",
                         "params": {"id": pid, "length": 8 << 20}} for i in range(100)])
    assert len(batch) < 10_000
    r = Raw(d.endpoint)
    try:
        before = _rss(d.proc.pid)
        Path(f"/proc/{d.proc.pid}/clear_refs").write_text("5")  # peak RSS := current RSS
        r.send(batch.encode())
        reply, frames = r.recv(timeout=60)
        peak = _rss(d.proc.pid, "VmHWM")
    finally:
        r.close()
    assert len(reply) == 100
    served = [x for x in reply if "result" in x]
    refused = [x for x in reply if "error" in x]
    assert served, "at least one chunk fits the budget"
    assert refused, "not all 100 chunks fit the budget"
    for x in refused:
        err = error_of(x)
        assert err["code"] == errors.BUSY
        assert err["data"]["reason"] == "reply_budget"
        assert err["data"]["retry_after"] > 0
    assert len(frames) == len(served)
    assert all(len(f) == 8 << 20 for f in frames)
    status = d.call("system.status")["components"]["control"]["reply_budget"]
    assert status["peak"] <= status["per_connection"]
    growth = peak - before
    print(f"RSS {before >> 20} MiB -> peak {peak >> 20} MiB (+{growth >> 20} MiB), "
          f"{len(served)} chunks served, {len(refused)} busy")
    assert growth < 150 << 20, f"daemon grew by {growth >> 20} MiB"
    # Once the reply is out, the budget is free again: the same chunk is served at once.
    deadline = time.monotonic() + 10
    while d.call("system.status")["components"]["control"]["reply_budget"]["in_flight"]:
        assert time.monotonic() < deadline, "the budget was not released"
        time.sleep(0.05)
    one = d.call("photos.original", {"id": pid, "length": 8 << 20})
    assert one["length"] == 8 << 20


def test_a_client_that_stops_reading_holds_only_its_own_budget(
        big_photo_daemon: tuple[DaemonProcess, int]) -> None:
    """Replies not yet written out stay counted against their connection, not the others'."""
    d, pid = big_photo_daemon
    import zmq

    ctx = zmq.Context()
    greedy = ctx.socket(zmq.DEALER)
    greedy.setsockopt(zmq.LINGER, 0)
    greedy.setsockopt(zmq.RCVHWM, 1)  # stops taking replies from the daemon almost at once
    greedy.setsockopt(zmq.RCVBUF, 4096)
    greedy.connect(d.endpoint)
    try:
        for i in range(40):
            greedy.send(json.dumps({"jsonrpc": "2.0", "id": i, "method": "photos.original",
                                    "params": {"id": pid, "length": 8 << 20}}).encode())
        budget: dict[str, Any] = {}
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            budget = d.call("system.status")["components"]["control"]["reply_budget"]
            if budget["refused"] and budget["in_flight"]:
                break
            time.sleep(0.1)
        assert budget["in_flight"] <= budget["per_connection"], budget
        assert budget["refused"], budget
        # Another connection is still served.
        assert d.call("photos.original", {"id": pid, "length": 1 << 20})["length"] == 1 << 20
    finally:
        greedy.close(0)
        ctx.term()
