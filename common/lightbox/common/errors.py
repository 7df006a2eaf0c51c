"""Error codes of the control protocol and the exceptions that carry them.

The daemon raises these in method handlers and the dispatcher turns them into JSON-RPC
``error`` objects; the client turns ``error`` objects back into the same classes, so a
script can ``except NotFound`` whichever side the error came from.

Codes: the JSON-RPC 2.0 standard ones, and application codes in the range the spec leaves
to implementations (-32000 to -32099). The CLI maps each class to an exit code.
"""

from __future__ import annotations

from typing import Any, ClassVar

PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
NOT_FOUND = -32001
PERMISSION_DENIED = -32002
BUSY = -32003
CONFLICT = -32004
UNAVAILABLE = -32005
CANCELLED = -32006


class RpcError(Exception):
    """An error reply: a code, a one-line message and optional structured data."""

    code: ClassVar[int] = INTERNAL_ERROR
    title: ClassVar[str] = "internal error"
    # What `lightbox` exits with when a command fails with this error (see `lightbox --help`).
    exit_code: ClassVar[int] = 1

    def __init__(self, message: str | None = None, data: Any = None) -> None:
        self.message = message or self.title
        self.data = data
        super().__init__(self.message)

    def to_json(self) -> dict[str, Any]:
        err: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            err["data"] = self.data
        return err


class ParseError(RpcError):
    code = PARSE_ERROR
    title = "parse error"
    exit_code = 2


class InvalidRequest(RpcError):
    code = INVALID_REQUEST
    title = "invalid request"
    exit_code = 2


class MethodNotFound(RpcError):
    code = METHOD_NOT_FOUND
    title = "method not found"
    exit_code = 2


class InvalidParams(RpcError):
    code = INVALID_PARAMS
    title = "invalid params"
    exit_code = 2


class InternalError(RpcError):
    code = INTERNAL_ERROR
    title = "internal error"


class NotFound(RpcError):
    code = NOT_FOUND
    title = "not found"
    exit_code = 4


class PermissionDenied(RpcError):
    code = PERMISSION_DENIED
    title = "permission denied"
    exit_code = 5


class Busy(RpcError):
    code = BUSY
    title = "busy"
    exit_code = 7


class Conflict(RpcError):
    code = CONFLICT
    title = "conflict"
    exit_code = 7


class Unavailable(RpcError):
    code = UNAVAILABLE
    title = "unavailable"
    exit_code = 3


class Cancelled(RpcError):
    code = CANCELLED
    title = "cancelled"


ERROR_CLASSES: tuple[type[RpcError], ...] = (
    ParseError, InvalidRequest, MethodNotFound, InvalidParams, InternalError,
    NotFound, PermissionDenied, Busy, Conflict, Unavailable, Cancelled,
)
BY_CODE: dict[int, type[RpcError]] = {cls.code: cls for cls in ERROR_CLASSES}


def from_json(err: Any) -> RpcError:
    """Rebuild the exception for an ``error`` member received from the daemon."""
    if not isinstance(err, dict):
        return InternalError(f"malformed error reply: {err!r}")
    code = err.get("code")
    cls = BY_CODE.get(code, RpcError) if isinstance(code, int) else RpcError
    exc = cls(str(err.get("message") or cls.title), err.get("data"))
    if cls is RpcError and isinstance(code, int):
        exc.code = code  # type: ignore[misc]  # keep an unknown code as received
    return exc


class ClientError(Exception):
    """Raised on the client side when no reply could be had at all."""


class DaemonNotRunning(ClientError):
    """Nothing answers on the control socket."""


class RequestTimeout(ClientError):
    """The daemon did not answer within the timeout."""
