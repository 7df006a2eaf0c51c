"""Requests answered within the receive loop's step, and the others carried on in a task.

The control server runs each request's first step itself (``Dispatcher.handle(...,
eager=True)``): parsing, permission and validation there, then an inline handler
(``hello``), with no task at all. Any other handler must start in a task of its own (the
catalog's gate compares ``asyncio.current_task()``, and context variables it sets must not
leak into the receive loop), and that task must behave as if it had run the request from the
start: its result, and a cancellation reaching the handler.
"""

from __future__ import annotations

import asyncio
import contextvars
import json
from typing import Any

import pytest
from lbtest import DaemonProcess
from test_control_bad_input import Raw

from lightbox.common.api.schema import MethodSpec, Param, Permission
from lightbox.common.errors import Unavailable
from lightbox.daemon.control.dispatch import Dispatcher
from lightbox.daemon.control.server import _carry_on
from lightbox.daemon.rpc import INLINE, Context

MARK: contextvars.ContextVar[str | None] = contextvars.ContextVar("mark", default=None)


class Seen:
    def __init__(self) -> None:
        self.task: asyncio.Task[Any] | None = None
        self.started = asyncio.Event()
        self.cancelled = False
        self.release = asyncio.Event()


def dispatcher(seen: Seen) -> Dispatcher:
    async def quick(ctx: Context, n: int) -> dict[str, Any]:
        return {"n": n}

    async def refuse(ctx: Context) -> None:
        raise Unavailable("not now", {"reason": "test"})

    async def slow(ctx: Context) -> str:
        seen.started.set()
        seen.task = asyncio.current_task()
        MARK.set("set by the handler")
        try:
            await seen.release.wait()
        except asyncio.CancelledError:
            seen.cancelled = True
            raise
        return "done"

    specs = {
        "t.quick": MethodSpec("t.quick", Permission.READ, "x",
                              params=(Param("n", "integer", "n", default=1),)),
        "t.refuse": MethodSpec("t.refuse", Permission.READ, "x"),
        "t.slow": MethodSpec("t.slow", Permission.READ, "x"),
        "t.admin": MethodSpec("t.admin", Permission.ADMIN, "x"),
    }
    handlers = {"t.quick": quick, "t.refuse": refuse, "t.slow": slow, "t.admin": quick}
    return Dispatcher(None, 1 << 20, specs=specs, handlers=handlers,  # type: ignore[arg-type]
                      inline=frozenset({"t.quick", "t.refuse", "t.admin"}))


def request(method: str, params: Any = None, rid: Any = 7) -> list[bytes]:
    doc: dict[str, Any] = {"jsonrpc": "2.0", "id": rid, "method": method}
    if params is not None:
        doc["params"] = params
    return [json.dumps(doc).encode()]


def first_step_answer(d: Dispatcher, frames: list[bytes],
                      permission: Permission = Permission.ADMIN) -> Any:
    """The reply when the first step finishes the request; fails when it does not."""
    coro = d.handle(frames, permission, "ipc", "", eager=True)
    with pytest.raises(StopIteration) as done:
        coro.send(None)
    reply = done.value.value
    assert reply is not None and len(reply) == 1
    return json.loads(reply[0])


async def test_inline_handlers_and_refusals_are_answered_within_the_first_step() -> None:
    d = dispatcher(Seen())
    assert first_step_answer(d, request("t.quick", {"n": 3}))["result"] == {"n": 3}
    assert first_step_answer(d, request("t.refuse"))["error"]["data"] == {"reason": "test"}
    # What is refused before any handler never needs a task either, inline or not.
    assert first_step_answer(d, [b"{nope"])["error"]["code"] == -32700
    assert first_step_answer(d, request("t.nope"))["error"]["code"] == -32601
    assert first_step_answer(d, request("t.slow", {"x": 1}))["error"]["code"] == -32602
    denied = first_step_answer(d, request("t.admin"), Permission.READ)
    assert denied["error"]["data"] == {"needs": "admin", "has": "read"}


async def test_other_handlers_start_in_a_task_of_their_own() -> None:
    seen = Seen()
    coro = dispatcher(seen).handle(request("t.slow"), Permission.ADMIN, "ipc", "", eager=True)
    step = coro.send(None)
    assert not seen.started.is_set(), "a handler that is not inline ran in the receive loop's step"
    task = asyncio.get_running_loop().create_task(_carry_on(coro, step))
    await asyncio.wait_for(seen.started.wait(), 5)
    assert seen.task is task
    assert MARK.get() is None, "the handler's context variable leaked out of its task"
    seen.release.set()
    await task
    # _carry_on returns nothing (the server sends from inside the coroutine); the reply of
    # an eager request awaited as usual, in a task from the start:
    again = Seen()
    again.release.set()
    reply = await dispatcher(again).handle(request("t.slow"), Permission.ADMIN, "ipc", "",
                                           eager=True)
    assert reply is not None and json.loads(reply[0])["result"] == "done"


async def test_cancelling_the_task_reaches_the_handler() -> None:
    seen = Seen()
    coro = dispatcher(seen).handle(request("t.slow"), Permission.ADMIN, "ipc", "", eager=True)
    task = asyncio.get_running_loop().create_task(_carry_on(coro, coro.send(None)))
    await asyncio.wait_for(seen.started.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen.cancelled


def test_the_quick_methods_are_the_ones_marked_inline() -> None:
    from lightbox.daemon.rpc import load_handlers

    load_handlers()
    assert {"hello", "system.methods", "events.since"} <= INLINE
    assert "system.status" not in INLINE  # it reads the catalog


def test_a_pipelined_burst_is_answered_once_each(shared_daemon: DaemonProcess) -> None:
    """More messages queued than the loop takes in a row (DRAIN_MAX), inline ones and ones
    that need a task interleaved: every one answered, exactly once, under its own id."""
    r = Raw(shared_daemon.endpoint)
    try:
        sent = {}
        for i in range(300):
            method = "system.status" if i % 10 == 0 else "hello"
            sent[i] = method
            r.send(json.dumps({"jsonrpc": "2.0", "id": i, "method": method}).encode())
        got: dict[int, Any] = {}
        for _ in range(300):
            reply, _ = r.recv(15)
            assert reply["id"] not in got
            got[reply["id"]] = reply
        assert set(got) == set(sent)
        for i, reply in got.items():
            key = "pid" if sent[i] == "system.status" else "daemon"
            assert key in reply["result"], reply
    finally:
        r.close()
