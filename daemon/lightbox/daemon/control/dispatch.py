"""From a request's frames to its reply's frames: parsing, permissions, validation, errors.

Knows nothing about sockets, so it can be exercised (and fuzzed) without ZeroMQ; the
control server hands it the frames and sends back whatever it returns. Guarantees: every
request that has an id gets exactly one reply, and no reply ever contains a traceback.
"""

from __future__ import annotations

import asyncio
import difflib
import time
import uuid
from typing import TYPE_CHECKING, Any

from lightbox.common import logs, protocol
from lightbox.common.api import METHODS, MethodSpec, Permission
from lightbox.common.errors import (
    InternalError,
    InvalidRequest,
    MethodNotFound,
    PermissionDenied,
    RpcError,
    Unavailable,
)
from lightbox.daemon.library import failures
from lightbox.daemon.rpc import Context, Handler, load_handlers

if TYPE_CHECKING:
    from lightbox.daemon.app import Daemon

log = logs.get("control")


class Dispatcher:
    def __init__(
        self,
        daemon: Daemon,
        max_bytes: int,
        specs: dict[str, MethodSpec] | None = None,
        handlers: dict[str, Handler] | None = None,
    ) -> None:
        self.daemon = daemon
        self.max_bytes = max_bytes
        self.specs = METHODS if specs is None else specs
        self.handlers = load_handlers() if handlers is None else handlers
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
        self, frames: list[bytes], permission: Permission, transport: str, peer: str
    ) -> list[bytes] | None:
        """Reply frames for one request message, or None when nothing must be sent back."""
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
                *(self._one(c, permission, transport, peer, attachments) for c in calls)
            )
            out = [r for r in replies if r is not None]
            if not out:
                return None
            return [self._encode(out), *attachments]
        reply = await self._one(calls[0], permission, transport, peer, attachments)
        if reply is None:
            return None
        return [self._encode(reply), *attachments]

    def _peek_id(self, frame: bytes) -> Any:
        """Best effort: the id of a request sent with stray frames, so the client can match it."""
        if len(frame) > self.max_bytes:
            return None
        try:
            doc = protocol.loads(frame)
        except RpcError:
            return None
        rid = doc.get("id") if isinstance(doc, dict) else None
        return rid if isinstance(rid, (str, int)) and not isinstance(rid, bool) else None

    def _encode(self, reply: Any) -> bytes:
        try:
            return protocol.dumps(reply)
        except (TypeError, ValueError):
            # A handler returned something that is not JSON: a bug, reported as such,
            # element by element so the rest of a batch still gets its answers.
            replies = reply if isinstance(reply, list) else [reply]
            fixed = []
            for r in replies:
                try:
                    protocol.dumps(r)
                    fixed.append(r)
                except (TypeError, ValueError):
                    log.error("handler returned a result that is not JSON", id=r.get("id"))
                    fixed.append(protocol.error_reply(r.get("id"), InternalError(
                        "the daemon produced a reply it cannot encode; see its log")))
            return protocol.dumps(fixed if isinstance(reply, list) else fixed[0])

    async def _one(
        self,
        call: protocol.Call | protocol.BadCall,
        permission: Permission,
        transport: str,
        peer: str,
        attachments: list[bytes],
    ) -> dict[str, Any] | None:
        if isinstance(call, protocol.BadCall):
            self.errors += 1
            return protocol.error_reply(call.id, call.error)
        started = time.perf_counter()
        try:
            result = await self._invoke(call, permission, transport, peer, attachments)
        except RpcError as err:
            self.errors += 1
            log.debug("request failed", method=call.method, code=err.code, error=err.message,
                      peer=peer)
            return None if call.notification else protocol.error_reply(call.id, err)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if failures.disk_full(exc):
                # Not a bug: the catalog cannot take a write until there is room again.
                log.warning("request refused: the catalog's disk is full", method=call.method)
                full = Unavailable("the catalog's disk is full; free some space and retry",
                                   {"reason": "disk_full", "retry_after": 10})
                return None if call.notification else protocol.error_reply(call.id, full)
            self.errors += 1
            ref = uuid.uuid4().hex[:12]
            log.exception("handler crashed", method=call.method, ref=ref, peer=peer)
            crash = InternalError(f"internal error (ref {ref}); see the daemon log", {"ref": ref})
            return None if call.notification else protocol.error_reply(call.id, crash)
        self.served += 1
        log.debug("request served", method=call.method,
                  ms=round((time.perf_counter() - started) * 1000, 3), peer=peer)
        return None if call.notification else protocol.result_reply(call.id, result)

    async def _invoke(
        self,
        call: protocol.Call,
        permission: Permission,
        transport: str,
        peer: str,
        attachments: list[bytes],
    ) -> Any:
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
        ctx = Context(self.daemon, permission, transport, peer, attachments)
        return await self.handlers[spec.name](ctx, **kwargs)
