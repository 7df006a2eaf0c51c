"""What every command gets: the parsed connection options, a lazily opened client, output."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from lightbox.cli import exits
from lightbox.cli.quote import safe_line
from lightbox.common.client import DEFAULT_TIMEOUT, Endpoint, SyncClient, resolve_endpoint

# The object add_subparsers() returns (generic only to the type checker).
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


class CliError(Exception):
    """A failure the command has already explained; ``code`` is the exit code."""

    def __init__(self, message: str, code: int = exits.ERROR) -> None:
        super().__init__(message)
        self.code = code


@dataclass
class Context:
    json: bool = False
    socket: str | None = None
    data_dir: str | None = None
    config: str | None = None
    server_key: str | None = None
    client_key: str | None = None
    timeout: float = DEFAULT_TIMEOUT
    _client: SyncClient | None = field(default=None, repr=False)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Context:
        return cls(
            json=bool(getattr(args, "json", False)),
            socket=getattr(args, "socket", None),
            data_dir=getattr(args, "data_dir", None),
            config=getattr(args, "config", None),
            server_key=getattr(args, "server_key", None),
            client_key=getattr(args, "client_key", None),
            timeout=getattr(args, "timeout", None) or DEFAULT_TIMEOUT,
        )

    def endpoint(self) -> Endpoint:
        return resolve_endpoint(
            self.socket, data_dir=self.data_dir, config_file=self.config,
            server_key=self.server_key, client_key=self.client_key,
        )

    @property
    def client(self) -> SyncClient:
        if self._client is None:
            self._client = SyncClient(self.endpoint(), timeout=self.timeout)
        return self._client

    def command(self, *words: str) -> str:
        """How to run ``lightbox WORDS`` against this same instance: the hints we print
        must keep ``--data-dir``/``--config``/``--socket``, or they talk to another daemon."""
        argv = ["lightbox"]
        # `start` makes a daemon from the data dir and config: a socket names no instance.
        socket = None if words[:1] == ("start",) else self.socket
        for flag, value in (("--data-dir", self.data_dir), ("--config", self.config),
                            ("--socket", socket)):
            if value:
                argv += [flag, value]
        return shlex.join([*argv, *words])

    def call(self, method: str, params: Any = None, timeout: float | None = None) -> Any:
        return self.client.call(method, params, timeout=timeout)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    # -- output -------------------------------------------------------------------------
    def emit_json(self, value: Any) -> None:
        sys.stdout.write(json.dumps(value, ensure_ascii=False, default=_bytes_summary) + "\n")
        sys.stdout.flush()

    def print(self, text: str = "") -> None:
        """A line of human-readable output. Names and paths are quoted by the commands
        (``quote.shell_name``); anything else that came from a file (EXIF text, an error
        message) has its control characters escaped here, so no output can drive the
        terminal."""
        sys.stdout.write("\n".join(safe_line(line) for line in text.split("\n")) + "\n")

    def error(self, message: str, data: Any = None) -> None:
        detail = ""
        if isinstance(data, dict) and isinstance(data.get("errors"), dict) and \
                len(data["errors"]) > 1:
            detail = "".join(f"\n  {k}: {v}" for k, v in data["errors"].items())
        text = f"lightbox: {message}{detail}"
        sys.stderr.write("\n".join(safe_line(line) for line in text.split("\n")) + "\n")


def _bytes_summary(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$bytes": len(value)}
    raise TypeError(f"{type(value).__name__} is not JSON")
