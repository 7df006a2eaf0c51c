"""Hostile and malformed control messages, over the real socket of a real daemon.

Every request gets the right JSON-RPC answer, no reply carries a traceback, and the daemon
keeps serving afterwards.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import zmq
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lbtest import DaemonProcess

from lightbox.common import errors
from lightbox.common.api import METHODS, Permission


class Raw:
    """A bare DEALER socket: sends whatever frames we like, returns the decoded reply."""

    def __init__(self, endpoint: str) -> None:
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(endpoint)

    def send(self, *frames: bytes) -> None:
        self.sock.send_multipart(list(frames))

    def recv(self, timeout: float = 5.0) -> tuple[Any, list[bytes]]:
        if not self.sock.poll(int(timeout * 1000)):
            raise AssertionError("no reply")
        frames = self.sock.recv_multipart()
        if len(frames) > 1 and frames[0] == b"":
            frames = frames[1:]  # we sent what looked like a REQ delimiter; it comes back
        text = frames[0].decode()
        assert "Traceback" not in text, text
        assert 'File "' not in text, text
        return json.loads(text), frames[1:]

    def ask(self, *frames: bytes) -> Any:
        self.send(*frames)
        return self.recv()[0]

    def silent(self, timeout: float = 0.5) -> bool:
        return not self.sock.poll(int(timeout * 1000))

    def close(self) -> None:
        self.sock.close(0)
        self.ctx.term()


@pytest.fixture
def raw(shared_daemon: DaemonProcess) -> Iterator[Raw]:
    r = Raw(shared_daemon.endpoint)
    yield r
    r.close()
    # Whatever the test sent, the daemon still answers a well-formed request.
    assert shared_daemon.call("hello")["daemon"] == "lightboxd"


def code(reply: Any) -> int:
    assert isinstance(reply, dict), reply
    assert reply.get("jsonrpc") == "2.0"
    assert "result" not in reply
    return int(reply["error"]["code"])


def test_non_json_frame(raw: Raw) -> None:
    reply = raw.ask(b"this is not json")
    assert code(reply) == errors.PARSE_ERROR
    assert reply["id"] is None


def test_invalid_utf8(raw: Raw) -> None:
    assert code(raw.ask(b'{"jsonrpc":"2.0","id":1,"method":"hello\xff"}')) == errors.PARSE_ERROR


def test_nan_is_not_json(raw: Raw) -> None:
    assert code(raw.ask(b'{"jsonrpc":"2.0","id":1,"method":"hello","params":{"x":NaN}}')) == \
        errors.PARSE_ERROR


def test_deeply_nested_json(raw: Raw) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    assert code(raw.ask(deep)) == errors.PARSE_ERROR


def test_empty_frame(raw: Raw) -> None:
    assert code(raw.ask(b"")) == errors.PARSE_ERROR


@pytest.mark.parametrize("doc", [b"42", b'"hello"', b"null", b"true", b"[1]"])
def test_json_that_is_not_an_object(raw: Raw, doc: bytes) -> None:
    reply = raw.ask(doc)
    if isinstance(reply, list):  # a batch of one non-object: one error inside
        assert len(reply) == 1
        reply = reply[0]
    assert code(reply) == errors.INVALID_REQUEST


def test_missing_fields(raw: Raw) -> None:
    assert code(raw.ask(b'{"id":1,"method":"hello"}')) == errors.INVALID_REQUEST  # no jsonrpc
    assert code(raw.ask(b'{"jsonrpc":"2.0","id":2}')) == errors.INVALID_REQUEST  # no method
    reply = raw.ask(b'{"jsonrpc":"1.0","id":3,"method":"hello"}')
    assert code(reply) == errors.INVALID_REQUEST
    assert reply["id"] == 3  # a valid id is echoed so the client can match the error


def test_extra_fields(raw: Raw) -> None:
    reply = raw.ask(b'{"jsonrpc":"2.0","id":7,"method":"hello","param":{}}')
    assert code(reply) == errors.INVALID_REQUEST
    assert reply["id"] == 7
    assert "param" in reply["error"]["message"]


@pytest.mark.parametrize(("envelope", "expected"), [
    (b'{"jsonrpc":"2.0","id":1,"method":5}', errors.INVALID_REQUEST),
    (b'{"jsonrpc":"2.0","id":1,"method":"hello","params":"x"}', errors.INVALID_REQUEST),
    (b'{"jsonrpc":"2.0","id":{"a":1},"method":"hello"}', errors.INVALID_REQUEST),
    (b'{"jsonrpc":"2.0","id":true,"method":"hello"}', errors.INVALID_REQUEST),
    (b'{"jsonrpc":"2.0","id":1,"method":"events.since","params":{"seq":"x"}}',
     errors.INVALID_PARAMS),
    (b'{"jsonrpc":"2.0","id":1,"method":"events.since","params":{}}', errors.INVALID_PARAMS),
    (b'{"jsonrpc":"2.0","id":1,"method":"events.since","params":{"seq":-1}}',
     errors.INVALID_PARAMS),
    (b'{"jsonrpc":"2.0","id":1,"method":"events.since","params":{"seq":1.5}}',
     errors.INVALID_PARAMS),
    (b'{"jsonrpc":"2.0","id":1,"method":"events.since","params":{"seq":true}}',
     errors.INVALID_PARAMS),
    (b'{"jsonrpc":"2.0","id":1,"method":"hello","params":{"nope":1}}', errors.INVALID_PARAMS),
    (b'{"jsonrpc":"2.0","id":1,"method":"hello","params":[1,2,3]}', errors.INVALID_PARAMS),
])
def test_wrong_types(raw: Raw, envelope: bytes, expected: int) -> None:
    assert code(raw.ask(envelope)) == expected


def test_invalid_params_name_each_field(raw: Raw) -> None:
    reply = raw.ask(b'{"jsonrpc":"2.0","id":1,"method":"events.since",'
                    b'"params":{"seq":"x","limit":0,"extra":1}}')
    assert code(reply) == errors.INVALID_PARAMS
    assert set(reply["error"]["data"]["errors"]) == {"seq", "limit", "extra"}


def test_positional_params(raw: Raw) -> None:
    reply = raw.ask(b'{"jsonrpc":"2.0","id":1,"method":"events.since","params":[0]}')
    assert reply["result"]["complete"] is True


def test_unknown_method(raw: Raw) -> None:
    reply = raw.ask(b'{"jsonrpc":"2.0","id":"x","method":"system.stauts"}')
    assert code(reply) == errors.METHOD_NOT_FOUND
    assert reply["id"] == "x"
    assert "system.status" in reply["error"]["message"]  # a suggestion


def test_oversized_message(raw: Raw, shared_daemon: DaemonProcess) -> None:
    limit = shared_daemon.call("hello")["max_message_bytes"]
    big = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "hello",
                      "params": {"client": "x" * (limit + 10)}}).encode()
    reply = raw.ask(big)
    assert code(reply) == errors.INVALID_REQUEST
    assert reply["error"]["data"]["limit"] == limit


def test_wrong_number_of_frames(raw: Raw) -> None:
    reply = raw.ask(b'{"jsonrpc":"2.0","id":9,"method":"hello"}', b"extra", b"frames")
    assert code(reply) == errors.INVALID_REQUEST
    assert reply["id"] == 9
    assert reply["error"]["data"]["frames"] == 3


def test_req_socket_with_delimiter_frame(shared_daemon: DaemonProcess) -> None:
    ctx = zmq.Context()
    s = ctx.socket(zmq.REQ)
    s.setsockopt(zmq.LINGER, 0)
    s.connect(shared_daemon.endpoint)
    try:
        s.send(b'{"jsonrpc":"2.0","id":1,"method":"hello"}')
        assert s.poll(5000)
        assert json.loads(s.recv())["result"]["daemon"] == "lightboxd"
    finally:
        s.close(0)
        ctx.term()


def test_notification_gets_no_reply(raw: Raw) -> None:
    raw.send(b'{"jsonrpc":"2.0","method":"hello"}')
    raw.send(b'{"jsonrpc":"2.0","method":"no.such.method"}')
    assert raw.silent()


def test_batch(raw: Raw) -> None:
    batch = [
        {"jsonrpc": "2.0", "id": 1, "method": "hello"},
        {"jsonrpc": "2.0", "method": "hello"},  # notification: no entry in the reply
        {"jsonrpc": "2.0", "id": 2, "method": "nope"},
        {"foo": "bar"},
        {"jsonrpc": "2.0", "id": 3, "method": "events.since", "params": {"seq": 0}},
    ]
    reply = raw.ask(json.dumps(batch).encode())
    assert isinstance(reply, list)
    by_id = {r["id"]: r for r in reply}
    assert len(reply) == 4
    assert by_id[1]["result"]["daemon"] == "lightboxd"
    assert by_id[2]["error"]["code"] == errors.METHOD_NOT_FOUND
    assert by_id[None]["error"]["code"] == errors.INVALID_REQUEST
    assert "events" in by_id[3]["result"]


def test_batch_of_notifications_gets_nothing(raw: Raw) -> None:
    raw.send(b'[{"jsonrpc":"2.0","method":"hello"},{"jsonrpc":"2.0","method":"hello"}]')
    assert raw.silent()


def test_empty_and_huge_batches(raw: Raw) -> None:
    assert code(raw.ask(b"[]")) == errors.INVALID_REQUEST
    many = json.dumps([{"jsonrpc": "2.0", "id": i, "method": "hello"} for i in range(101)])
    assert code(raw.ask(many.encode())) == errors.INVALID_REQUEST


def test_client_disconnecting_mid_request(shared_daemon: DaemonProcess) -> None:
    for _ in range(5):
        r = Raw(shared_daemon.endpoint)
        for i in range(50):
            r.send(json.dumps({"jsonrpc": "2.0", "id": i, "method": "system.status"}).encode())
        r.close()  # gone before any reply is read
    assert shared_daemon.call("system.status")["pid"]


def test_many_concurrent_clients(shared_daemon: DaemonProcess) -> None:
    """1,000 requests from 20 concurrent clients, every one answered correctly."""
    failures: list[str] = []
    answered = [0]
    lock = threading.Lock()

    def client(n: int) -> None:
        r = Raw(shared_daemon.endpoint)
        try:
            for i in range(50):
                rid = f"{n}-{i}"
                method = ("hello", "system.status", "events.since", "nope")[i % 4]
                params = {"seq": 0, "limit": 1} if method == "events.since" else None
                msg: dict[str, Any] = {"jsonrpc": "2.0", "id": rid, "method": method}
                if params:
                    msg["params"] = params
                r.send(json.dumps(msg).encode())
                reply, _ = r.recv(15)
                ok = reply["id"] == rid and (
                    ("error" in reply) if method == "nope" else ("result" in reply))
                with lock:
                    answered[0] += 1
                    if not ok:
                        failures.append(f"{rid}: {reply}")
        finally:
            r.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(20)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not failures, failures[:5]
    assert answered[0] == 1000
    assert time.monotonic() - started < 60


def test_request_without_permission_is_refused_over_ipc_never(raw: Raw) -> None:
    """The ipc owner is admin: system.methods says every method is allowed."""
    reply = raw.ask(b'{"jsonrpc":"2.0","id":1,"method":"system.methods"}')
    assert all(m["allowed"] for m in reply["result"]["methods"])


# -- hostile values: lone surrogates, NUL, huge integers ---------------------------------------
# Valid JSON all of them (json.dumps writes a lone surrogate as "\ud800"), each one crashed
# something once: an id that cannot be encoded silenced the reply, an id >= 2**63 overflowed
# the database driver, a NUL byte reached os.stat.

surrogates = st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF, exclude_categories=())
nasty_text = (st.text(max_size=12)
              | st.builds(lambda a, c, b: a + c + b, st.text(max_size=4), surrogates,
                          st.text(max_size=4))
              | st.builds(lambda a, b: a + "\x00" + b, st.text(max_size=4), st.text(max_size=4)))
huge_numbers = st.sampled_from([2**63 - 1, 2**63, 2**64, 10**30, -(2**63) - 1, 1e300, -1e300,
                                1e308, 2.0**63])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | huge_numbers
    | st.floats(allow_nan=False, allow_infinity=False) | nasty_text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        nasty_text, children, max_size=4),
    max_leaves=12,
)
# Methods fuzzed with their own parameter names: everything a read or control key may call,
# except what waits on purpose (jobs.wait: up to 300 s).
FUZZED = sorted(name for name, spec in METHODS.items()
                if spec.permission <= Permission.CONTROL and name != "jobs.wait")


def _params_for(method: str) -> st.SearchStrategy[Any]:
    names = list(METHODS[method].param_names) or ["x"]
    return st.dictionaries(st.sampled_from(names) | nasty_text, json_values, max_size=4) \
        | st.lists(json_values, max_size=3)


calls = st.sampled_from(FUZZED).flatmap(lambda m: st.fixed_dictionaries(
    {"jsonrpc": st.just("2.0"), "method": st.just(m),
     "id": st.integers() | nasty_text | huge_numbers},
    optional={"params": _params_for(m)}))
envelopes = st.fixed_dictionaries(
    {},
    optional={
        "jsonrpc": st.sampled_from(["2.0", "1.0", 2.0]) | json_values,
        "id": st.integers() | nasty_text | st.none() | huge_numbers | json_values,
        "method": st.sampled_from(["hello", "system.status", "events.since", "system.methods",
                                   "nope", ""]) | nasty_text | json_values,
        "params": json_values,
        "extra": json_values,
    },
)
messages = calls | envelopes | json_values | st.lists(calls | envelopes, min_size=1, max_size=5)


def _answerable(item: Any) -> bool:
    """Whether JSON-RPC requires an answer to this element (everything but notifications)."""
    return not (isinstance(item, dict) and "id" not in item and item.get("jsonrpc") == "2.0"
                and isinstance(item.get("method"), str) and item.get("method")
                and item["method"].isprintable()
                and set(item) <= {"jsonrpc", "method", "params"}
                and isinstance(item.get("params", []), (list, dict)))


def exchange(r: Raw, doc: Any, wait: float = 5.0) -> tuple[int, int, list[Any]]:
    """Send one fuzzed message; (answers expected, answers received, internal errors)."""
    r.send(json.dumps(doc).encode())
    items = doc if isinstance(doc, list) and doc else [doc]
    expected = sum(map(_answerable, items)) if isinstance(doc, list) and doc else \
        int(_answerable(doc))
    if not r.sock.poll(int(wait * 1000)):
        return expected, 0, []
    reply, _ = r.recv()
    replies = reply if isinstance(reply, list) else [reply]
    internal = []
    for rep in replies:
        assert rep["jsonrpc"] == "2.0"
        assert ("result" in rep) != ("error" in rep)
        if "error" in rep:
            assert isinstance(rep["error"]["code"], int)
            assert isinstance(rep["error"]["message"], str)
            if rep["error"]["code"] == errors.INTERNAL_ERROR:
                internal.append(rep)
    if isinstance(doc, list) and doc and not isinstance(reply, list):
        # One error for the whole message (a batch that is not a valid batch) answers it.
        assert reply["id"] is None and reply["error"]["code"] in (
            errors.PARSE_ERROR, errors.INVALID_REQUEST), reply
        return expected, expected, internal
    return expected, len(replies), internal


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(doc=messages)
def test_fuzzed_envelopes_always_get_a_valid_answer(shared_daemon: DaemonProcess,
                                                    doc: Any) -> None:
    r = Raw(shared_daemon.endpoint)
    try:
        expected, received, internal = exchange(r, doc, wait=3.0 if _any_answer(doc) else 0.3)
        assert received == expected, doc
        assert not internal, internal
    finally:
        r.close()


def _any_answer(doc: Any) -> bool:
    items = doc if isinstance(doc, list) and doc else [doc]
    return any(map(_answerable, items))


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(blob=st.binary(max_size=300), extra=st.lists(st.binary(max_size=50), max_size=3))
def test_fuzzed_bytes(shared_daemon: DaemonProcess, blob: bytes, extra: list[bytes]) -> None:
    r = Raw(shared_daemon.endpoint)
    try:
        r.send(blob, *extra)
        if r.sock.poll(3000):
            reply, _ = r.recv()
            for rep in reply if isinstance(reply, list) else [reply]:
                assert rep.get("jsonrpc") == "2.0"
                if "error" in rep:
                    assert rep["error"]["code"] != errors.INTERNAL_ERROR, rep
    finally:
        r.close()
