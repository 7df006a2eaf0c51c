"""Talking to lightboxd: an asyncio client, a synchronous wrapper, and endpoint discovery.

The client holds one DEALER socket. Requests carry increasing integer ids and replies are
matched to them by a reader task, so any number of calls can be in flight at once. Error
replies raise the exception class of their code (``lightbox.common.errors``).

Reconnecting: ZeroMQ reconnects the transport by itself, so a request made while the daemon
restarts simply waits in the socket until it is back. A reply lost with a dying daemon would
leave its caller waiting forever, so a call that times out throws the socket away ("lazy
pirate"): the next call opens a fresh one, and a late reply to an abandoned id is dropped.

``ZMQ_IMMEDIATE`` is deliberately not set: with it, libzmq drops a connection's unread
inbound messages when the peer disconnects, which lost the reply to ``system.shutdown``
(sent just before the daemon closes) about one time in forty. For ipc, "is anyone there" is
answered up front instead, by connecting to the socket file.

Events come from a SUB socket on the endpoint ``hello`` names; ``Subscription`` yields
decoded events and knows the last seq it saw, so a client can ``events.since`` after a gap.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import itertools
import os
import socket
import time
from collections.abc import AsyncIterator, Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import urlsplit

import zmq
import zmq.asyncio

from lightbox.common import __version__, errors, protocol
from lightbox.common import config as configmod
from lightbox.common import keys as keymod
from lightbox.common import paths as pathmod
from lightbox.common.api import PROTOCOL_VERSION

T = TypeVar("T")

DEFAULT_TIMEOUT = 10.0


@dataclass(frozen=True)
class CurveKeys:
    """What a client needs for a CURVE connection: the server's public key and its own pair."""

    server_public: bytes
    public: bytes
    secret: bytes


@dataclass(frozen=True)
class Endpoint:
    address: str  # ipc:///… or tcp://host:port
    curve: CurveKeys | None = None

    @property
    def ipc_path(self) -> str | None:
        return self.address[len("ipc://"):] if self.address.startswith("ipc://") else None


def resolve_endpoint(
    socket_address: str | None = None,
    *,
    data_dir: str | None = None,
    config_file: str | None = None,
    server_key: str | None = None,
    client_key: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Endpoint:
    """Where the daemon listens: --socket, ``LIGHTBOX_SOCKET``, else the bootstrap config.

    ``/path`` and ``ipc:///path`` name the ipc socket; ``tcp://host:port`` a remote daemon,
    which needs the server's public key (``--server-key``/``LIGHTBOX_SERVER_KEY``) and a
    client key pair (``--client-key``/``LIGHTBOX_CLIENT_KEY``, default
    ``$XDG_CONFIG_HOME/lightbox/client.key_secret``).
    """
    env = os.environ if env is None else env
    address = socket_address or env.get("LIGHTBOX_SOCKET")
    if not address:
        try:
            cfg = configmod.load(config_file, data_dir, env)
            return Endpoint(cfg.control_endpoint)
        except configmod.ConfigError:
            # The daemon's config is broken; the default place is still the best guess.
            paths = pathmod.resolve(data_dir, env)
            return Endpoint(f"ipc://{paths.control_socket}")
    if address.startswith("/"):
        address = f"ipc://{address}"
    if address.startswith("ipc://"):
        return Endpoint(address)
    if not address.startswith("tcp://"):
        raise ValueError(f"unsupported address {address!r}: use /path, ipc:///path or "
                         "tcp://host:port")
    server = server_key or env.get("LIGHTBOX_SERVER_KEY")
    if not server:
        raise ValueError(f"{address} needs the daemon's public key: --server-key KEY|FILE "
                         "or LIGHTBOX_SERVER_KEY")
    key_file = Path(client_key or env.get("LIGHTBOX_CLIENT_KEY")
                    or pathmod.default_client_key_file(env))
    public, secret = keymod.load_pair(key_file)
    return Endpoint(address, CurveKeys(keymod.load_public(server), public, secret))


def _probe_ipc(path: str) -> None:
    """Fail fast, with a useful message, when nothing listens on an ipc socket."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(1.0)
        s.connect(path)
    except FileNotFoundError:
        raise errors.DaemonNotRunning(f"lightboxd is not running (no socket at {path})") from None
    except ConnectionRefusedError:
        raise errors.DaemonNotRunning(
            f"lightboxd is not running (stale socket at {path})") from None
    except PermissionError:
        raise errors.DaemonNotRunning(
            f"cannot reach {path}: permission denied (the socket belongs to another user)"
        ) from None
    except OSError as exc:
        if exc.errno in (errno.ENOTSOCK, errno.ENOENT):
            raise errors.DaemonNotRunning(f"lightboxd is not running ({path})") from None
        raise
    finally:
        s.close()


def _events_address(control: str, events: str) -> str:
    """Turn the daemon's TCP bind address (0.0.0.0, *) into one we can connect to."""
    if not events.startswith("tcp://"):
        return events
    host = urlsplit(control).hostname or "127.0.0.1"
    ev = urlsplit(events)
    ev_host = ev.hostname or "*"
    if ev_host in ("*", "0.0.0.0", "::", ""):
        ev_host = host
    if ":" in ev_host:
        ev_host = f"[{ev_host}]"
    return f"tcp://{ev_host}:{ev.port}"


class Client:
    """An asyncio client for one daemon. Use ``async with Client(...)`` or call ``close``."""

    def __init__(
        self,
        endpoint: Endpoint | str,
        *,
        timeout: float = DEFAULT_TIMEOUT,
        name: str = f"lightbox/{__version__}",
    ) -> None:
        self.endpoint = Endpoint(endpoint) if isinstance(endpoint, str) else endpoint
        self.timeout = timeout
        self.name = name
        self._ctx = zmq.asyncio.Context()
        self._sock: zmq.asyncio.Socket | None = None
        self._reader: asyncio.Task[None] | None = None
        self._pending: dict[int, asyncio.Future[tuple[dict[str, Any], list[bytes]]]] = {}
        self._ids = itertools.count(1)
        self.hello: dict[str, Any] | None = None
        self._closed = False

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # -- requests -----------------------------------------------------------------------
    async def call(self, method: str, params: Any = None, *, timeout: float | None = None) -> Any:
        """Call ``method``; returns its result with binary frames in place of their markers."""
        doc, frames = await self.request(method, params, timeout=timeout)
        return protocol.resolve_frames(doc["result"], frames)

    async def request(
        self, method: str, params: Any = None, *, timeout: float | None = None
    ) -> tuple[dict[str, Any], list[bytes]]:
        """Like ``call`` but returns the raw reply document and frames (for benchmarks, tools)."""
        rid = next(self._ids)
        doc, frames = await self._roundtrip(rid, protocol.request(rid, method, params), timeout)
        if "error" in doc:
            raise errors.from_json(doc["error"])
        if "result" not in doc:
            raise errors.InternalError(f"reply without result or error: {doc!r}")
        return doc, frames

    async def notify(self, method: str, params: Any = None) -> None:
        """A JSON-RPC notification: no id, no reply."""
        sock = await self._socket()
        msg: dict[str, Any] = {"jsonrpc": protocol.JSONRPC, "method": method}
        if params is not None:
            msg["params"] = params
        await asyncio.wait_for(sock.send_multipart([protocol.dumps(msg)]), self.timeout)

    async def connect(self) -> dict[str, Any]:
        """Say hello (again): after a daemon restart this returns a new ``boot``."""
        self.hello = await self.call("hello", {"client": self.name,
                                               "protocol": PROTOCOL_VERSION})
        return self.hello

    async def _roundtrip(
        self, rid: int, message: dict[str, Any], timeout: float | None
    ) -> tuple[dict[str, Any], list[bytes]]:
        timeout = self.timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        sock = await self._socket()
        fut: asyncio.Future[tuple[dict[str, Any], list[bytes]]] = \
            asyncio.get_running_loop().create_future()
        self._pending[rid] = fut
        try:
            try:
                await asyncio.wait_for(sock.send_multipart([protocol.dumps(message)]), timeout)
            except (TimeoutError, zmq.ZMQError):
                # No connection within the timeout, or it went away between poll and send.
                await self._reset()
                raise errors.DaemonNotRunning(
                    f"no daemon answers at {self.endpoint.address}") from None
            try:
                return await asyncio.wait_for(fut, max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                await self._reset()
                hint = "" if self.endpoint.ipc_path else (
                    " (is the daemon running, and is this client's key authorized?)")
                raise errors.RequestTimeout(
                    f"{message['method']}: no reply within {timeout:g} s{hint}") from None
        finally:
            self._pending.pop(rid, None)

    # -- socket management --------------------------------------------------------------
    async def _socket(self) -> zmq.asyncio.Socket:
        if self._closed:
            raise errors.ClientError("client is closed")
        if self._sock is not None:
            return self._sock
        path = self.endpoint.ipc_path
        if path is not None:
            _probe_ipc(path)
        sock = self._ctx.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RECONNECT_IVL, 100)
        sock.setsockopt(zmq.RECONNECT_IVL_MAX, 2000)
        _apply_curve(sock, self.endpoint.curve)
        sock.connect(self.endpoint.address)
        self._sock = sock
        self._reader = asyncio.get_running_loop().create_task(self._read(sock), name="client-read")
        return sock

    async def _read(self, sock: zmq.asyncio.Socket) -> None:
        while True:
            try:
                frames = await sock.recv_multipart()
            except (zmq.ZMQError, asyncio.CancelledError):
                return
            try:
                doc = protocol.loads_reply(frames[0])
            except errors.RpcError:
                continue
            for reply in doc if isinstance(doc, list) else [doc]:
                if not isinstance(reply, dict):
                    continue
                fut = self._pending.get(reply.get("id"))  # type: ignore[arg-type]
                if fut is not None and not fut.done():
                    fut.set_result((reply, frames[1:]))

    async def _reset(self) -> None:
        sock, reader = self._sock, self._reader
        self._sock, self._reader = None, None
        if reader is not None:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reader
        if sock is not None:
            sock.close(linger=0)
        for fut in self._pending.values():
            if not fut.done():
                fut.set_exception(errors.ClientError("connection reset"))
                # Its caller may be gone (Ctrl-C in the sync client): mark it retrieved, or
                # asyncio prints "Future exception was never retrieved" at exit.
                fut.exception()

    async def close(self) -> None:
        if self._closed:
            return
        await self._reset()
        self._closed = True
        # destroy, not term: term blocks until every socket of the context is closed, so a
        # subscription its owner forgot to close would hang the caller's event loop forever.
        self._ctx.destroy(linger=0)

    # -- events -------------------------------------------------------------------------
    async def subscribe(self, topics: Sequence[str] = ()) -> Subscription:
        """A SUB socket on the daemon's event endpoint, filtered to ``topics`` (all if empty)."""
        hello = self.hello or await self.connect()
        address = _events_address(self.endpoint.address, hello["events"])
        sock = self._ctx.socket(zmq.SUB)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVHWM, 100_000)
        _apply_curve(sock, self.endpoint.curve)
        for topic in topics or [""]:
            sock.setsockopt(zmq.SUBSCRIBE, topic.encode())
        sock.connect(address)
        return Subscription(sock)


def _apply_curve(sock: zmq.Socket[Any], curve: CurveKeys | None) -> None:
    if curve is None:
        return
    sock.curve_serverkey = curve.server_public
    sock.curve_publickey = curve.public
    sock.curve_secretkey = curve.secret


class Subscription:
    """Events as dicts, in order; ``last_seq`` is the seq of the newest one received."""

    def __init__(self, sock: zmq.asyncio.Socket) -> None:
        self._sock = sock
        self.last_seq = 0

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self._iter()

    async def _iter(self) -> AsyncIterator[dict[str, Any]]:
        while True:
            event = await self.next()
            yield event

    async def next(self, timeout: float | None = None) -> dict[str, Any]:
        """The next event; raises TimeoutError after ``timeout`` seconds."""
        while True:
            if timeout is None:
                frames = await self._sock.recv_multipart()
            else:
                frames = await asyncio.wait_for(self._sock.recv_multipart(), timeout)
            if len(frames) != 2:
                continue
            try:
                event = protocol.loads_reply(frames[1])
            except errors.RpcError:
                continue
            if isinstance(event, dict):
                self.last_seq = int(event.get("seq", self.last_seq))
                return event

    def close(self) -> None:
        self._sock.close(linger=0)


class SyncClient:
    """The asyncio client behind a blocking interface, for scripts and the CLI.

    It runs its own private event loop, so it must not be used from inside a running one.
    """

    def __init__(self, endpoint: Endpoint | str, *, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._loop = asyncio.new_event_loop()
        self._client = Client(endpoint, timeout=timeout)

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def endpoint(self) -> Endpoint:
        return self._client.endpoint

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the private loop. Interrupted (Ctrl-C in the CLI), its task is
        cancelled, so that closing the client (which resets the socket the task waits on)
        does not end it with an exception nobody retrieves: from Python 3.12 asyncio then
        prints "Task exception was never retrieved" and a traceback under the CLI's one
        line."""
        task = self._loop.create_task(coro)
        try:
            return self._loop.run_until_complete(task)
        except BaseException:
            task.cancel()
            raise

    def call(self, method: str, params: Any = None, *, timeout: float | None = None) -> Any:
        return self._run(self._client.call(method, params, timeout=timeout))

    def connect(self) -> dict[str, Any]:
        return self._run(self._client.connect())

    def events(self, topics: Sequence[str] = (), timeout: float | None = None
               ) -> Iterator[dict[str, Any]]:
        """Yield events as they come; stops after ``timeout`` seconds of silence if given."""
        sub = self._run(self._client.subscribe(topics))
        try:
            while True:
                try:
                    yield self._run(sub.next(timeout))
                except TimeoutError:
                    return
        finally:
            sub.close()

    def close(self) -> None:
        if not self._loop.is_closed():
            self._loop.run_until_complete(self._client.close())
            self._loop.close()
