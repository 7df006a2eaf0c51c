"""From a request's frames to its reply's frames: parsing, permissions, validation, errors.

Knows nothing about sockets, so it can be exercised (and fuzzed) without ZeroMQ; the
control server hands it the frames and sends back whatever it returns. Guarantees: every
request that has an id gets exactly one reply (under ``id: null`` when its id cannot be
encoded), and no reply ever contains a traceback.

``handle(..., eager=True)`` is for a caller that runs the coroutine's first step itself,
outside any task (the control server's receive loop): parsing, the permission check and
validation run in that step, and so does an inline handler (``rpc.INLINE``); before any
other handler the coroutine gives up its step (a bare ``yield``) so that the handler starts
in a task of its own, where ``asyncio.current_task()`` and context variables are its own.
"""

from __future__ import annotations

import asyncio
import difflib
import logging
import time
import types
import uuid
from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from lightbox.common import logs, protocol
from lightbox.common.api import METHODS, MethodSpec, Permission
from lightbox.common.errors import (
    Busy,
    InternalError,
    InvalidRequest,
    MethodNotFound,
    PermissionDenied,
    RpcError,
    Unavailable,
)
from lightbox.daemon.control.budget import SMALL
from lightbox.daemon.library import failures
from lightbox.daemon.rpc import INLINE, Caller, Context, Handler, load_handlers

if TYPE_CHECKING:
    from lightbox.daemon.app import Daemon
    from lightbox.daemon.control.budget import Lease

log = logs.get("control")


@types.coroutine
def to_a_task() -> Generator[None, None, None]:
    """Give up the current step: under a task, one turn of the loop; for a coroutine being
    run eagerly, the signal to carry it on in a task (see the module's docstring)."""
    yield


class Dispatcher:
    def __init__(
        self,
        daemon: Daemon,
        max_bytes: int,
        specs: dict[str, MethodSpec] | None = None,
        handlers: dict[str, Handler] | None = None,
        inline: frozenset[str] | None = None,
    ) -> None:
        self.daemon = daemon
        self.max_bytes = max_bytes
        self.specs = METHODS if specs is None else specs
        self.handlers = load_handlers() if handlers is None else handlers
        # Handlers that may run in the receive loop's step (they never await).
        self.inline = frozenset(INLINE) if inline is None else inline
        missing = sorted(set(self.specs) - set(self.handlers))
        orphans = sorted(set(self.handlers) - set(self.specs))
        if missing or orphans:
            raise RuntimeError(
                f"method registry and handlers differ: no handler for {missing}, "
                f"no spec for {orphans}"
            )
        self.served = 0
        self.errors = 0

    async def handle(
        self, frames: list[bytes], permission: Permission, transport: str, peer: str,
        caller: Caller | None = None, lease: Lease | None = None, eager: bool = False,
    ) -> list[bytes] | None:
        """Reply frames for one request message, or None when nothing must be sent back.

        Each call's reply is encoded as soon as its handler returns, so a batch never holds
        all of its results as Python objects at once, and a reply that cannot be encoded
        spoils only its own element.
        """
        if not frames:
            return [protocol.dumps(protocol.error_reply(None, InvalidRequest("empty message")))]
        if len(frames) > 1:
            err = InvalidRequest(
                f"expected 1 frame (the JSON request), got {len(frames)}",
                {"frames": len(frames)},
            )
            return [protocol.dumps(protocol.error_reply(self._peek_id(frames[0]), err))]
        try:
            calls, batch = protocol.parse_message(frames[0], self.max_bytes)
        except RpcError as err:
            self.errors += 1
            return [protocol.dumps(protocol.error_reply(None, err))]

        attachments: list[bytes] = []
        if batch:
            replies = await asyncio.gather(
                *(self._one(c, permission, transport, peer, attachments, caller, lease)
                  for c in calls)
            )
            out = [r for r in replies if r is not None]
            if not out:
                return None
            return [b"[" + b",".join(out) + b"]", *attachments]
        reply = await self._one(calls[0], permission, transport, peer, attachments, caller,
                                lease, eager)
        if reply is None:
            return None
        return [reply, *attachments]

    def _peek_id(self, frame: bytes) -> Any:
        """Best effort: the id of a request sent with stray frames, so the client can match it."""
        if len(frame) > self.max_bytes:
            return None
        try:
            doc = protocol.loads(frame)
        except RpcError:
            return None
        rid = doc.get("id") if isinstance(doc, dict) else None
        return rid if isinstance(rid, (str, int)) and protocol.answer_id(rid) == rid else None

    def _encode(self, reply: dict[str, Any], lease: Lease | None) -> bytes:
        try:
            data = protocol.dumps(reply)
        except (TypeError, ValueError):
            error = reply.get("error")
            if isinstance(error, dict):
                # An error message quoting text that cannot be encoded: escape it, keep
                # the code, drop the data.
                message = str(error.get("message", "")).encode("utf-8", "backslashreplace")
                return protocol.dumps({**reply, "error": {
                    "code": error.get("code"), "message": message.decode("utf-8")}})
            # A handler returned something that is not JSON: a bug, reported as such.
            log.error("handler returned a result that is not JSON", id=reply.get("id"))
            return protocol.dumps(protocol.error_reply(reply.get("id"), InternalError(
                "the daemon produced a reply it cannot encode; see its log")))
        if lease is not None and len(data) > SMALL:
            try:
                lease.take(len(data), f"a {len(data)}-byte reply")
            except Busy as err:
                return protocol.dumps(protocol.error_reply(reply.get("id"), err))
        return data

    async def _one(
        self,
        call: protocol.Call | protocol.BadCall,
        permission: Permission,
        transport: str,
        peer: str,
        attachments: list[bytes],
        caller: Caller | None = None,
        lease: Lease | None = None,
        eager: bool = False,
    ) -> bytes | None:
        if isinstance(call, protocol.BadCall):
            self.errors += 1
            return self._encode(protocol.error_reply(call.id, call.error), None)
        started = time.perf_counter()
        ctx = Context(self.daemon, permission, transport, peer, attachments, caller, lease)
        try:
            result = await self._invoke(call, ctx, eager)
        except RpcError as err:
            self.errors += 1
            log.debug("request failed", method=call.method, code=err.code, error=err.message,
                      peer=peer)
            return None if call.notification else self._encode(
                protocol.error_reply(call.id, err), None)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if failures.disk_full(exc):
                # Not a bug: the catalog cannot take a write until there is room again.
                log.warning("request refused: the catalog's disk is full", method=call.method)
                full = Unavailable("the catalog's disk is full; free some space and retry",
                                   {"reason": "disk_full", "retry_after": 10})
                return None if call.notification else self._encode(
                    protocol.error_reply(call.id, full), None)
            self.errors += 1
            ref = uuid.uuid4().hex[:12]
            log.exception("handler crashed", method=call.method, ref=ref, peer=peer)
            crash = InternalError(f"internal error (ref {ref}); see the daemon log", {"ref": ref})
            return None if call.notification else protocol.dumps(
                protocol.error_reply(call.id, crash))
        finally:
            ctx.settle()
        self.served += 1
        if log.enabled(logging.DEBUG):
            log.debug("request served", method=call.method,
                      ms=round((time.perf_counter() - started) * 1000, 3), peer=peer)
        return None if call.notification else self._encode(
            protocol.result_reply(call.id, result), lease)

    async def _invoke(self, call: protocol.Call, ctx: Context, eager: bool = False) -> Any:
        permission = ctx.permission
        spec = self.specs.get(call.method)
        if spec is None:
            close = difflib.get_close_matches(call.method, self.specs, n=3)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise MethodNotFound(f"no method {call.method[:100]!r}{hint}",
                                 {"method": call.method[:100]})
        if permission < spec.permission:
            raise PermissionDenied(
                f"permission denied: {spec.name} needs the {spec.permission.label} class; "
                f"this connection has "
                f"{permission.label}",
                {"needs": spec.permission.label, "has": permission.label},
            )
        kwargs = spec.validate(call.params)
        if eager and spec.name not in self.inline:
            await to_a_task()
        return await self.handlers[spec.name](ctx, **kwargs)
