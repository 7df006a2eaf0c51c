"""The control socket: ROUTER sockets for requests, PUB sockets for events.

Two transports, each a ROUTER + PUB pair:

- ipc (always): ``control.sock`` and ``events.sock`` in a 0700 directory, the sockets
  themselves 0600. Whoever can connect is the owner, so ipc callers are ``admin``.
- tcp (only when ``control.tcp`` is set): CURVE-encrypted, and only keys listed in the
  authorized-keys file get in, each with its permission class.

A slow method never holds up a quick one: each request message is started straight from
the receive loop, and at its first wait (or before any handler that is not inline, see
``rpc.INLINE``) it carries on in a task of its own. A request that needs no wait at all
(``hello``, a malformed message, a refused permission) is answered within the loop's own
step, with no task, no future and no extra turn of the event loop. At most
``MAX_IN_FLIGHT`` tasks run at once and beyond that callers get ``busy``. On stop the
server keeps receiving for the drain period but answers ``unavailable``, lets in-flight
requests finish, then closes.

The loop takes every message that is ready without waiting (``NOBLOCK`` on the socket
itself; pyzmq's asyncio wrapper costs a future, its callbacks and often an extra wakeup per
call), and awaits only when none is left, or after ``DRAIN_MAX`` messages in a row, when it
lets the other tasks run (their replies, the slow methods) before it takes more.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import uuid
from collections import OrderedDict
from collections.abc import Coroutine, Generator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import zmq
import zmq.asyncio

from lightbox.common import keys as keymod
from lightbox.common import logs, protocol
from lightbox.common.api import Permission
from lightbox.common.config import Config
from lightbox.common.errors import Busy, InternalError, InvalidRequest, Unavailable
from lightbox.daemon.control.auth import Authenticator, AuthorizedKeys, make_curve_server
from lightbox.daemon.control.budget import ReplyBudget
from lightbox.daemon.control.dispatch import Dispatcher, to_a_task
from lightbox.daemon.control.events import EventBus
from lightbox.daemon.rpc import Caller

if TYPE_CHECKING:
    from lightbox.daemon.app import Daemon

log = logs.get("control")

MAX_IN_FLIGHT = 512
SEND_TIMEOUT = 5.0
DECLARED_MAX = 4096
RCVHWM = 128
DRAIN_MAX = 64  # messages taken in a row before the receive loop lets other tasks run
_NOBLOCK = int(zmq.NOBLOCK)  # a plain int: pyzmq's flag enum costs an Enum operation a call


def hard_ceiling(max_message_bytes: int) -> int:
    """Frames above this size close the connection in libzmq without being read."""
    return max(64 << 20, 2 * max_message_bytes)



@dataclass
class Endpoint:
    transport: str
    router: zmq.asyncio.Socket
    pub: zmq.asyncio.Socket
    control: str
    events: str
    task: asyncio.Task[None] | None = None
    # The same ROUTER without the asyncio wrapper, for receiving and sending without waiting.
    raw: zmq.Socket[bytes] = field(init=False)

    def __post_init__(self) -> None:
        self.raw = zmq.Socket.shadow(self.router.underlying)


class BindError(Exception):
    """An address could not be bound (in use, bad path...); ``in_use`` says whether
    another process holds it (lightboxd's exit code tells a second instance from a bad
    configuration by it, not by the message)."""

    def __init__(self, message: str, in_use: bool = False) -> None:
        super().__init__(message)
        self.in_use = in_use


class ControlServer:
    name = "control"

    def __init__(self, daemon: Daemon, config: Config, bus: EventBus) -> None:
        self.daemon = daemon
        self.config = config
        self.bus = bus
        self.ctx = zmq.asyncio.Context()
        self.dispatcher = Dispatcher(daemon, config["control.max_message_bytes"])
        self.budget = ReplyBudget(int(config["control.reply_budget"]) << 20,
                                  int(config["control.reply_budget_total"]) << 20)
        self.endpoints: list[Endpoint] = []
        self._auth: Authenticator | None = None
        self._keys: AuthorizedKeys | None = None
        self._inflight: set[asyncio.Task[None]] = set()
        # The endpoint whose receive loop is running a request's first step right now.
        self._stepping: Endpoint | None = None
        self._draining = False
        self.peers_seen: set[bytes] = set()
        # What each connection said it is in ``hello`` (for the audit log: "declared").
        self._declared: OrderedDict[bytes, str] = OrderedDict()

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        # The instance lock (``lightbox.daemon.lock``) was the first thing the daemon took.
        try:
            self._bind_ipc()
            if self.config["control.tcp"]:
                self._bind_tcp()
        except BaseException:
            self._close_sockets(linger=0)
            raise
        for ep in self.endpoints:
            ep.task = asyncio.get_running_loop().create_task(
                self._serve(ep), name=f"control-{ep.transport}"
            )

    async def stop(self) -> None:
        self._draining = True
        timeout = float(self.config["daemon.stop_timeout"])
        if self._inflight:
            log.info("waiting for in-flight requests", count=len(self._inflight))
            _, pending = await asyncio.wait(set(self._inflight), timeout=timeout)
            for task in pending:
                task.cancel()
        for ep in self.endpoints:
            if ep.task is not None:
                ep.task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ep.task
        self._close_sockets(linger=500)
        await self.budget.close()
        if self._auth is not None:
            self._auth.stop()
        for path in (self.config.socket_dir / "control.sock",
                     self.config.socket_dir / "events.sock"):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
        self.ctx.term()

    def declare_client(self, identity: bytes, client: str) -> None:
        self._declared[identity] = client[:100]
        self._declared.move_to_end(identity)
        while len(self._declared) > DECLARED_MAX:
            self._declared.popitem(last=False)

    def declared_client(self, identity: bytes) -> str | None:
        return self._declared.get(identity)

    def key_name(self, key: str) -> str | None:
        """The comment of a CURVE key's authorized-keys line (who holds it)."""
        return self._keys.name(key) if self._keys is not None else None

    def reload(self) -> None:
        if self._keys is not None:
            self._keys.reload(force=True)

    def status(self) -> dict[str, Any]:
        return {
            "endpoints": {ep.transport: ep.control for ep in self.endpoints},
            "in_flight": len(self._inflight),
            "served": self.dispatcher.served,
            "errors": self.dispatcher.errors,
            "clients_seen": len(self.peers_seen),
            "reply_budget": self.budget.status(),
        }

    def events_endpoint(self, transport: str) -> str:
        for ep in self.endpoints:
            if ep.transport == transport:
                return ep.events
        return self.endpoints[0].events

    # -- binding ------------------------------------------------------------------------
    def _router(self) -> zmq.asyncio.Socket:
        sock = self.ctx.socket(zmq.ROUTER)
        # Fail loudly (EHOSTUNREACH) instead of dropping a reply to a peer that left.
        sock.setsockopt(zmq.ROUTER_MANDATORY, 1)
        # A hard ceiling far above the JSON limit: bigger frames disconnect the peer in
        # libzmq, smaller-but-too-big ones get an error reply (measured, never copied).
        sock.setsockopt(zmq.MAXMSGSIZE, hard_ceiling(int(self.config["control.max_message_bytes"])))
        # Inbound messages ZeroMQ queues per connection before it stops reading from it
        # (a pipelining client waits; nothing is dropped): bounds what one client can park
        # in the daemon's memory at ceiling-sized messages.
        sock.setsockopt(zmq.RCVHWM, RCVHWM)
        sock.setsockopt(zmq.LINGER, 500)
        return sock

    def _pub(self) -> zmq.asyncio.Socket:
        sock = self.ctx.socket(zmq.PUB)
        sock.setsockopt(zmq.SNDHWM, 10_000)
        sock.setsockopt(zmq.LINGER, 0)
        return sock

    def _bind(self, sock: zmq.asyncio.Socket, address: str) -> None:
        try:
            sock.bind(address)
        except zmq.ZMQError as exc:
            raise BindError(f"cannot bind {address}: {exc.strerror}",
                            in_use=exc.errno == errno.EADDRINUSE) from None

    def _bind_ipc(self) -> None:
        control, events = self.config.control_endpoint, self.config.events_endpoint
        router, pub = self._router(), self._pub()
        old = os.umask(0o177)  # sockets are created 0600, never briefly world-reachable
        try:
            self._bind(router, control)
            self._bind(pub, events)
        finally:
            os.umask(old)
        for path in (control, events):
            os.chmod(path.removeprefix("ipc://"), 0o600)
        self.endpoints.append(Endpoint("ipc", router, pub, control, events))
        self.bus.attach(pub)
        log.info("listening", transport="ipc", control=control, events=events)

    def _bind_tcp(self) -> None:
        secret_file = self.config["control.server_key"]
        public, secret = keymod.load_pair(secret_file)
        self._keys = AuthorizedKeys(self.config["control.authorized_keys"])
        self._auth = Authenticator(self.ctx, self._keys)
        self._auth.start()
        router, pub = self._router(), self._pub()
        make_curve_server(router, secret)
        make_curve_server(pub, secret)
        control = f"tcp://{self.config['control.tcp']}"
        events = f"tcp://{self.config.tcp_events}"
        self._bind(router, control)
        self._bind(pub, events)
        self.endpoints.append(Endpoint("tcp", router, pub, control, events))
        self.bus.attach(pub)
        log.info("listening", transport="tcp", control=control, events=events,
                 server_key=public.decode())

    def _close_sockets(self, linger: int) -> None:
        for ep in self.endpoints:
            self.bus.detach(ep.pub)
            ep.router.close(linger=linger)
            ep.pub.close(linger=0)
        self.endpoints.clear()

    # -- serving ------------------------------------------------------------------------
    async def _serve(self, ep: Endpoint) -> None:
        tcp = ep.transport == "tcp"
        limit = self.dispatcher.max_bytes
        raw = ep.raw
        taken = 0
        while True:
            try:
                if taken >= DRAIN_MAX:
                    taken = 0
                    await asyncio.sleep(0)
                try:
                    msg = raw.recv_multipart(_NOBLOCK, copy=False)
                    taken += 1
                except zmq.Again:
                    # Nothing ready: wait through pyzmq, which watches the socket's edge-
                    # triggered descriptor correctly (it checks the socket's events first).
                    taken = 0
                    msg = await ep.router.recv_multipart(copy=False)
            except zmq.ZMQError as exc:
                log.warning("receive failed", transport=ep.transport, error=str(exc))
                await asyncio.sleep(0.05)
                continue
            last = msg[-1]
            if tcp:
                raw_user = last.get("User-Id") if len(msg) > 1 else None
                user = raw_user if isinstance(raw_user, str) else None
                permission = (self._keys.permission(user) if self._keys and user else None)
                peer = user or "?"
            else:
                user = None
                permission = Permission.ADMIN
                peer = ""
            if permission is None:  # revoked since the handshake
                continue
            # An oversized frame is measured, never copied out of ZeroMQ's buffer.
            frames = [f.bytes if len(f) <= limit else b"" for f in msg]
            oversized = next((len(f) for f in msg[1:] if len(f) > limit), None)
            identity = frames[0]
            if not tcp:
                peer = identity.hex()
            self.peers_seen.add(identity)
            caller = Caller(ep.transport, identity, user, _peer_address(last))
            self._spawn(ep, frames, permission, peer, caller, oversized)

    def _spawn(
        self, ep: Endpoint, frames: list[bytes], permission: Permission, peer: str,
        caller: Caller, oversized: int | None = None,
    ) -> None:
        identity, body = frames[0], frames[1:]
        # A REQ client puts an empty delimiter before its body; keep it for the reply.
        envelope = [identity]
        if len(body) >= 2 and body[0] == b"":
            envelope.append(b"")
            body = body[1:]
        if oversized is not None:
            big = InvalidRequest(
                f"message of {oversized} bytes exceeds the limit of {self.dispatcher.max_bytes}",
                {"limit": self.dispatcher.max_bytes, "size": oversized})
            self._send_now(ep, [*envelope, protocol.dumps(protocol.error_reply(None, big))])
            return
        if self._draining or len(self._inflight) >= MAX_IN_FLIGHT:
            err = (Unavailable("the daemon is shutting down") if self._draining
                   else Busy(f"more than {MAX_IN_FLIGHT} requests in flight; retry shortly"))
            rid = self.dispatcher._peek_id(body[0]) if body else None
            reply = [protocol.dumps(protocol.error_reply(rid, err))]
            self._send_now(ep, envelope + reply)
            return
        self._start(ep, self._answer(ep, envelope, body, permission, peer, caller))

    def _start(self, ep: Endpoint, coro: Coroutine[Any, None, None]) -> None:
        """Run ``coro``'s first step here, and only if it has to wait, the rest in a task.

        ``_answer`` catches every failure of the request itself; anything that still comes
        out of the step is a bug of the server, logged, and the loop goes on.
        """
        self._stepping = ep
        try:
            step = coro.send(None)
        except StopIteration:
            return
        except Exception:
            log.exception("request could not be started")
            return
        finally:
            self._stepping = None
        task = asyncio.get_running_loop().create_task(_carry_on(coro, step))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def _answer(
        self, ep: Endpoint, envelope: list[bytes], body: list[bytes], permission: Permission,
        peer: str, caller: Caller,
    ) -> None:
        lease = self.budget.lease(caller.identity)
        try:
            reply = await self.dispatcher.handle(body, permission, ep.transport, peer, caller,
                                                 lease, eager=True)
        except asyncio.CancelledError:
            lease.release()
            raise
        except Exception:
            # The dispatcher answers every failure itself; this is a last resort so that a
            # bug there still gets the client an answer instead of silence.
            lease.release()
            ref = uuid.uuid4().hex[:12]
            log.exception("request could not be answered", ref=ref, peer=peer)
            reply = [protocol.dumps(protocol.error_reply(None, InternalError(
                f"internal error (ref {ref}); see the daemon log", {"ref": ref})))]
        if reply is None:
            lease.release()
            return
        try:
            if lease.held and self._stepping is ep:
                # A tracked send waits (wait_for), and from Python 3.12 wait_for needs a
                # task (asyncio.timeout): carry on in one first.
                await to_a_task()
            if lease.held:
                tracker = await asyncio.wait_for(
                    ep.router.send_multipart(envelope + reply, copy=False, track=True),
                    SEND_TIMEOUT)
                if tracker is None:
                    lease.release()
                else:
                    self.budget.track(tracker, lease)
            elif self._stepping is ep:
                # Still in the receive loop's step: send on the socket itself. Should the
                # descriptor's edge be consumed by it, nothing is lost, since the loop
                # tries to receive again before it waits through pyzmq.
                try:
                    ep.raw.send_multipart(envelope + reply, _NOBLOCK)
                except zmq.Again:
                    await to_a_task()  # as above: wait_for needs a task
                    await asyncio.wait_for(ep.router.send_multipart(envelope + reply),
                                           SEND_TIMEOUT)
            else:
                # In a task, while the loop may be waiting: through pyzmq, which then
                # checks whether a message arrived meanwhile. It sends at once when the
                # socket can take the message and hands back a finished future: wait_for
                # would still add a timer, a waiter and a turn of the loop to every reply.
                sent: Any = ep.router.send_multipart(envelope + reply)  # a Future
                if isinstance(sent, asyncio.Future) and sent.done():
                    sent.result()
                else:
                    await asyncio.wait_for(sent, SEND_TIMEOUT)
        except zmq.ZMQError as exc:
            # EHOSTUNREACH: the client went away before its answer was ready. Not our problem.
            lease.release()
            log.debug("reply not delivered", peer=peer, error=exc.strerror)
        except TimeoutError:
            lease.release()
            log.warning("reply dropped: client not reading", peer=peer)

    def _send_now(self, ep: Endpoint, frames: list[bytes]) -> None:
        """Send from the receive loop (which tries to receive again before it waits)."""
        try:
            ep.raw.send_multipart(frames, _NOBLOCK)
        except zmq.ZMQError:
            pass


class _Started:
    """Awaiting it carries on a coroutine whose first step ran outside any task, from the
    value that step yielded, exactly as a task would have: what the task sends or throws
    in (a cancellation) goes on to the coroutine."""

    __slots__ = ("coro", "step")

    def __init__(self, coro: Coroutine[Any, None, None], step: Any) -> None:
        self.coro = coro
        self.step = step

    def __await__(self) -> Generator[Any, None, None]:
        coro, step = self.coro, self.step
        while True:
            try:
                yield step
            except BaseException as exc:  # the task's cancellation, handed on
                try:
                    step = coro.throw(exc)
                except StopIteration:
                    return
            else:
                try:
                    step = coro.send(None)
                except StopIteration:
                    return


async def _carry_on(coro: Coroutine[Any, None, None], step: Any) -> None:
    await _Started(coro, step)


def _peer_address(frame: zmq.Frame) -> str | None:
    """libzmq's Peer-Address of the connection a message came on (on ipc, with
    SO_PEERCRED, ``host:uid:gid:pid``); None when the transport does not say."""
    try:
        value = frame.get("Peer-Address")
    except zmq.ZMQError:
        return None
    return value if isinstance(value, str) else None
