"""Who may do what over TCP: CURVE authentication and the authorized-keys file.

Each line of the file is ``CLASS PUBLIC-KEY [comment]`` with CLASS one of read, control,
admin and the key in Z85. A connection whose key is not listed fails the CURVE handshake
(ZAP says no) and never reaches the dispatcher; a listed one gets its class on every message
through the ZeroMQ ``User-Id`` property. The file is re-read when its mtime changes, so keys
can be added or revoked without a restart.
"""

from __future__ import annotations

import os
from pathlib import Path

import zmq
import zmq.asyncio
from zmq.auth.asyncio import AsyncioAuthenticator

from lightbox.common import logs
from lightbox.common.api import Permission

log = logs.get("auth")

ZAP_DOMAIN = "lightbox"


class AuthorizedKeys:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._mtime: int | None = None
        self._keys: dict[str, Permission] = {}
        self._names: dict[str, str] = {}
        self.reload(force=True)

    def reload(self, force: bool = False) -> None:
        try:
            mtime = os.stat(self.path).st_mtime_ns
        except OSError as exc:
            if force:
                raise ValueError(
                    f"cannot read authorized keys {self.path}: {exc.strerror}") from None
            log.warning("authorized keys unreadable; keeping the last good list",
                        path=str(self.path), error=exc.strerror)
            return
        if not force and mtime == self._mtime:
            return
        keys: dict[str, Permission] = {}
        names: dict[str, str] = {}
        for number, raw in enumerate(self.path.read_text().splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            parts = line.split(None, 2)
            problem = None
            if len(parts) < 2:
                problem = "expected CLASS PUBLIC-KEY [comment]"
            elif len(parts[1]) != 40:
                problem = "the public key must be 40 characters of Z85"
            else:
                try:
                    keys[parts[1]] = Permission.parse(parts[0])
                    if len(parts) > 2:
                        names[parts[1]] = parts[2].strip()[:100]
                except ValueError as exc:
                    problem = str(exc)
            if problem:
                message = f"{self.path}:{number}: {problem}"
                if force:
                    raise ValueError(message)
                log.warning("ignoring bad authorized-keys line", line=message)
        self._keys = keys
        self._names = names
        self._mtime = mtime
        log.info("authorized keys loaded", path=str(self.path), keys=len(keys))

    def permission(self, key: str) -> Permission | None:
        self.reload()
        return self._keys.get(key)

    def name(self, key: str) -> str | None:
        """The line's comment: whose key this is (for the audit log)."""
        return self._names.get(key)

    # pyzmq credentials-provider interface
    def callback(self, domain: str, key: bytes) -> bool:
        allowed = self.permission(key.decode("ascii")) is not None
        if not allowed:
            log.warning("CURVE client refused: key not authorized", key=key.decode("ascii"))
        return allowed


class Authenticator:
    """Runs the ZAP handler for the context's CURVE sockets."""

    def __init__(self, ctx: zmq.asyncio.Context, keys: AuthorizedKeys) -> None:
        self.keys = keys
        self._auth = AsyncioAuthenticator(ctx)

    def start(self) -> None:
        self._auth.start()
        # The callback is looked up by the ZAP domain the sockets announce, not by "*".
        self._auth.configure_curve_callback(ZAP_DOMAIN, credentials_provider=self.keys)

    def stop(self) -> None:
        self._auth.stop()


def make_curve_server(sock: zmq.asyncio.Socket, secret_key: bytes) -> None:
    sock.curve_secretkey = secret_key
    sock.curve_server = True
    sock.zap_domain = ZAP_DOMAIN.encode()
