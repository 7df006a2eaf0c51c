"""Exit codes of ``lightbox``, documented in ``lightbox --help``; scripts rely on them."""

from __future__ import annotations

from lightbox.common import errors

OK = 0
ERROR = 1
USAGE = 2
NOT_RUNNING = 3
NOT_FOUND = 4
PERMISSION = 5
TIMEOUT = 6
RETRY = 7
INTERRUPTED = 130

_BY_CLASS: dict[type[errors.RpcError], int] = {
    errors.InvalidParams: USAGE,
    errors.MethodNotFound: USAGE,
    errors.InvalidRequest: USAGE,
    errors.NotFound: NOT_FOUND,
    errors.PermissionDenied: PERMISSION,
    errors.Busy: RETRY,
    errors.Conflict: RETRY,
    errors.Unavailable: NOT_RUNNING,
}


def for_error(exc: errors.RpcError) -> int:
    return _BY_CLASS.get(type(exc), ERROR)
