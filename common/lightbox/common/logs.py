"""Structured logs on stderr: time, level, component, message, then key=value fields.

stdout belongs to ``--json`` output and to nothing else, so every log line goes to stderr.
When stderr is connected to the journal (systemd sets ``JOURNAL_STREAM`` to its device and
inode), lines carry a ``<N>`` syslog priority prefix that journald turns into the record's
priority, and no timestamp, since the journal keeps its own.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any, TextIO

_PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3,
             logging.CRITICAL: 2}


def _quote(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    if text == "" or any(c in text for c in ' "=\n\t'):
        return json.dumps(text)
    return text


class _Formatter(logging.Formatter):
    def __init__(self, fmt: str, journal: bool) -> None:
        super().__init__()
        self.json = fmt == "json"
        self.journal = journal

    def format(self, record: logging.LogRecord) -> str:
        component = record.name.removeprefix("lightbox.")
        fields: dict[str, Any] = dict(getattr(record, "fields", {}) or {})
        message = record.getMessage()
        if record.exc_info:
            fields["exc"] = self.formatException(record.exc_info)
        if self.json:
            doc = {
                "time": _iso(record.created),
                "level": record.levelname.lower(),
                "component": component,
                "msg": message,
                **fields,
            }
            return json.dumps(doc, default=str)
        tail = "".join(f" {k}={_quote(v)}" for k, v in fields.items())
        level = record.levelname.lower()
        if self.journal:
            return f"<{_PRIORITY.get(record.levelno, 6)}>{level} {component}: {message}{tail}"
        return f"{_iso(record.created)} {level:<7} {component}: {message}{tail}"


def _iso(created: float) -> str:
    t = time.gmtime(created)
    return time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{int(created % 1 * 1000):03d}Z"


def _stderr_is_journal(stream: TextIO) -> bool:
    value = os.environ.get("JOURNAL_STREAM", "")
    if ":" not in value:
        return False
    try:
        st = os.fstat(stream.fileno())
    except (OSError, ValueError, AttributeError):
        return False
    dev, _, ino = value.partition(":")
    return f"{st.st_dev}" == dev and f"{st.st_ino}" == ino


def setup(level: str = "info", fmt: str = "text", stream: TextIO | None = None) -> None:
    """Route every ``lightbox.*`` logger to ``stream`` (stderr) with our format."""
    stream = stream or sys.stderr
    handler = logging.StreamHandler(stream)
    handler.setFormatter(_Formatter(fmt, _stderr_is_journal(stream)))
    root = logging.getLogger("lightbox")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
    # Libraries we use log at INFO about things a user need not see (alembic's migration
    # chatter, for one); keep them to warnings, through the same formatter.
    for noisy in ("alembic", "watchdog", "botocore", "boto3", "urllib3", "aiosqlite",
                  "zmq.auth"):
        lib = logging.getLogger(noisy)
        lib.handlers[:] = [handler]
        lib.setLevel(logging.WARNING)
        lib.propagate = False


def set_level(level: str) -> None:
    """Change the least severe level logged, at once (the ``log.level`` setting)."""
    logging.getLogger("lightbox").setLevel(level.upper())


class Log:
    """A component's logger: ``log.info("scan finished", root=3, files=1200)``."""

    __slots__ = ("_logger",)

    def __init__(self, component: str) -> None:
        self._logger = logging.getLogger(f"lightbox.{component}")

    def _log(self, level: int, msg: str, fields: dict[str, Any], exc: bool = False) -> None:
        if self._logger.isEnabledFor(level):
            self._logger.log(level, msg, extra={"fields": fields}, exc_info=exc, stacklevel=3)

    def debug(self, msg: str, **fields: Any) -> None:
        self._log(logging.DEBUG, msg, fields)

    def info(self, msg: str, **fields: Any) -> None:
        self._log(logging.INFO, msg, fields)

    def warning(self, msg: str, **fields: Any) -> None:
        self._log(logging.WARNING, msg, fields)

    def error(self, msg: str, **fields: Any) -> None:
        self._log(logging.ERROR, msg, fields)

    def exception(self, msg: str, **fields: Any) -> None:
        """An error with the traceback of the exception being handled (logs only, never replies)."""
        self._log(logging.ERROR, msg, fields, exc=True)

    def enabled(self, level: int) -> bool:
        return self._logger.isEnabledFor(level)


def get(component: str) -> Log:
    return Log(component)
