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
BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for `yes | head`

def for_error(exc: errors.RpcError) -> int:
    return exc.exit_code
