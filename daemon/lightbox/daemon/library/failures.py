"""Whose fault a failed analysis is: the file's (a lasting error) or the machine's (retry).

Only a file's own content may leave a lasting ``error`` on its row: it is not an image, it
is cut short, it is a decompression bomb. Everything else is the machine's fault and says
nothing about the file: the thumbnail disk is full, the cache is read-only, the file cannot
be opened right now (permission denied, an I/O error, a stale NFS handle), the catalog could
not be written. Those leave the photo ``pending`` and are retried by themselves once the
cause is gone, never by a ``full=true`` scan.

``classify`` says which, with a machine-readable ``reason``:

- ``error``: lasting, until the file's fingerprint changes (the scanner then queues it again);
- ``retry``: this file, later, with backoff (``RETRY_FIRST`` doubling to ``RETRY_MAX``);
- ``pause``: the cause stops every file alike (the cache's disk is full or read-only), so
  indexing pauses, says so once, and resumes when a probe finds the cause gone;
- ``requeue``: the file is not the one that was listed (it changed, or was replaced): read
  again under the fingerprint it has now.

A bucket object whose transfer itself keeps failing (every GET a 500, a reset in the middle
of every body, a stalled body past its budget, throttled past every retry) is retried, but
not for ever: its verdict is ``retry`` with ``final_after`` rounds (each round is already
``kinds.s3`` retrying with backoff and ``Retry-After``), after which the indexer makes it a
lasting ``error`` with that reason (``server_error``, ``throttled``, ``timeout``). The next
sync reads it again only if the object changed (ETag, size or LastModified), or when asked
(``sources.sync`` with ``retry=true``). Causes that are the bucket's, not the object's
(endpoint unreachable, credentials, permission) stay ``retry``: the sync reports them.
"""

from __future__ import annotations

import errno
import sqlite3
from dataclasses import dataclass

from lightbox.daemon.kinds.s3 import TRANSFER_REASONS
from lightbox.daemon.media.analyze import Analysis
from lightbox.daemon.media.confine import CHANGED, NOT_REGULAR, OUTSIDE, SYMLINK

ERROR, RETRY, PAUSE, REQUEUE = "error", "retry", "pause", "requeue"

# Reasons (``Verdict.reason``), stable for clients: system.status, events and job results.
DISK_FULL = "disk_full"                  # cache or catalog: no space or quota left
CACHE_UNWRITABLE = "cache_unwritable"    # read-only file system, permission denied
CACHE_MISSING = "cache_missing"          # a cache directory vanished under a write
PERMISSION_DENIED = "permission_denied"  # the photo cannot be opened by the daemon
GONE = "gone"                            # the photo is not there (the scanner decides)
IO_ERROR = "io_error"                    # the disk or the network share failed a read
RESOURCES = "resources"                  # out of file descriptors or memory
CATALOG = "catalog_unavailable"          # the catalog refused a write (not for space)

RETRY_FIRST = 2.0
RETRY_MAX = 600.0
# Rounds of reads (each one retried by ``kinds.s3``) before an object's transfer failure
# is a lasting error.
FINAL_ROUNDS = 2

_FULL = {errno.ENOSPC, errno.EDQUOT}
_UNWRITABLE = {errno.EROFS, errno.EACCES, errno.EPERM}
_DENIED = {errno.EACCES, errno.EPERM}
_GONE = {errno.ENOENT, errno.ENOTDIR}
_RESOURCES = {errno.EMFILE, errno.ENFILE, errno.ENOMEM, errno.EAGAIN, errno.EINTR,
              errno.EBUSY}
# The name is the problem, not the machine: as lasting as bad content.
_NAME = {errno.ENAMETOOLONG}

_SQLITE_FULL = 13             # SQLITE_FULL
_PG_DISK_FULL = "53100"        # disk_full
_MYSQL_FULL = {1021, 1114}     # ER_DISK_FULL, ER_RECORD_FILE_FULL


@dataclass(frozen=True)
class Verdict:
    action: str      # error | retry | pause | requeue
    reason: str      # machine-readable (above, or the analysis' error kind for content)
    message: str     # for a person, one line
    scope: str = ""  # for pause: what is unusable ("thumbnail disk", "catalog disk"...)
    final_after: int = 0   # retry: a lasting error after this many failed rounds (0: never)


def classify(a: Analysis) -> Verdict | None:
    """None for a success; else what the failure means for the photo."""
    if a.ok:
        return None
    message = a.error or "analysis failed"
    refusal = a.error_refusal
    if refusal == CHANGED:
        return Verdict(REQUEUE, CHANGED, message)
    if refusal in (SYMLINK, OUTSIDE, NOT_REGULAR):
        return Verdict(ERROR, refusal, message)
    if a.error_remote in TRANSFER_REASONS:
        return Verdict(RETRY, a.error_remote or "", message, final_after=FINAL_ROUNDS)
    code = a.error_errno
    if a.error_where == "cache" and code is not None:
        return _cache(code, message)
    if a.error_where == "source" and code is not None:
        if code in _NAME:
            return Verdict(ERROR, "name", message)
        if code in _DENIED:
            return Verdict(RETRY, PERMISSION_DENIED, message)
        if code in _GONE:
            return Verdict(RETRY, GONE, message)
        return Verdict(RETRY, RESOURCES if code in _RESOURCES else IO_ERROR, message)
    return Verdict(ERROR, a.error_kind or "corrupt", message)


def final(verdict: Verdict, rounds: int) -> Verdict:
    """A retried failure given up on: the photo's lasting error, saying how to read it again."""
    return Verdict(ERROR, verdict.reason,
                   f"{verdict.message}; given up after {rounds} rounds of retries. It is read "
                   "again when the object changes (ETag, size or LastModified), or with "
                   "`lightbox sync NAME --retry` (sources.sync retry=true)")


def _cache(code: int, message: str) -> Verdict:
    if code in _FULL:
        return Verdict(PAUSE, DISK_FULL, message, "thumbnail disk")
    if code in _UNWRITABLE:
        return Verdict(PAUSE, CACHE_UNWRITABLE, message, "thumbnail cache")
    if code in _GONE:
        return Verdict(RETRY, CACHE_MISSING, message)
    return Verdict(RETRY, RESOURCES if code in _RESOURCES else IO_ERROR, message)


def classify_cache_error(exc: OSError) -> Verdict:
    """A thumbnail made on demand could not be written."""
    return _cache(exc.errno or 0, f"cannot write thumbnail ({exc.strerror or exc})")


def catalog_write(exc: BaseException) -> Verdict:
    """A batch of results could not be written: pause for space, else retry later."""
    if disk_full(exc):
        return Verdict(PAUSE, DISK_FULL, f"the catalog's disk is full ({_one_line(exc)})",
                       "catalog disk")
    return Verdict(PAUSE, CATALOG, f"the catalog refused a write ({_one_line(exc)})",
                   "catalog")


def disk_full(exc: BaseException) -> bool:
    """Whether an exception (a DBAPI error wrapped by SQLAlchemy, an OSError) says no space."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, OSError) and cur.errno in _FULL:
            return True
        if isinstance(cur, sqlite3.Error) and getattr(cur, "sqlite_errorcode", None) \
                == _SQLITE_FULL:
            return True
        if getattr(cur, "sqlstate", None) == _PG_DISK_FULL:   # asyncpg, psycopg
            return True
        if type(cur).__module__.startswith(("pymysql", "asyncmy")) and cur.args \
                and cur.args[0] in _MYSQL_FULL:
            return True
        orig = getattr(cur, "orig", None)   # SQLAlchemy's wrapper around the DBAPI error
        cur = orig if isinstance(orig, BaseException) else (cur.__cause__ or cur.__context__)
    return False


def backoff(attempt: int) -> float:
    """Seconds before retry ``attempt`` (1-based) of one file: 2, 4, 8 … at most 10 minutes."""
    return min(RETRY_MAX, RETRY_FIRST * float(2 ** min(30, max(0, attempt - 1))))


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(getattr(exc, "orig", None) or exc).split())
    return text[:200] or type(exc).__name__
