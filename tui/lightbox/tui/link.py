"""The app's one connection to the daemon: calls, connection state, and events in order.

Screens never talk to the ``Client`` directly; they ``await link.call(...)`` from a Textual
worker and listen for messages (``lightbox.tui.messages``). ``Link.run`` is a long-lived
worker that

- says ``hello`` and follows the event socket, applying each event once, in seq order;
- catches up with ``events.since`` after a gap (a skipped seq, a dropped connection), and asks
  listeners to reload (``Resync``) when replay cannot cover it: the buffer no longer reaches
  back, or the daemon restarted (a new ``boot``);
- sends ``hello`` as a heartbeat when events are quiet, which notices a daemon that died
  without a word (SIGKILL) or restarted between two heartbeats;
- keeps ``system.status`` (jobs running, photo counts) fresh for the status lines.

A call that fails because the daemon is gone marks the link down at once, so the UI says so
without waiting for the next heartbeat. Nothing here blocks: every wait has a timeout.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from typing import Any

from textual.message import Message
from textual.message_pump import MessagePump

from lightbox.common import errors
from lightbox.common.api import PROTOCOL_VERSION
from lightbox.common.client import Client, Subscription
from lightbox.tui.messages import DaemonEvent, LinkChanged, Resync, StatusChanged

CONNECTING, CONNECTED, DOWN = "connecting", "connected", "down"
CALL_TIMEOUT = 8.0
HELLO_TIMEOUT = 3.0
START_HINT = "start it with `lightbox start`"


class Link:
    def __init__(self, client: Client, *, heartbeat: float = 2.0,
                 client_name: str = "lightbox-tui") -> None:
        self.client = client
        self.heartbeat = heartbeat
        # How to start this very daemon (the launcher keeps --data-dir/--config in it).
        self.start_hint = START_HINT
        self.client_name = client_name
        self.state = CONNECTING
        self.detail = "connecting…"
        self.hello: dict[str, Any] = {}
        self.boot: str | None = None
        self.seq = 0  # last event applied
        self.status: dict[str, Any] = {}
        self.restarts = 0
        self._listeners: list[MessagePump] = []
        self._status_due = asyncio.Event()
        self._sub: Subscription | None = None

    # -- listeners ------------------------------------------------------------------------
    def listen(self, pump: MessagePump) -> None:
        if pump not in self._listeners:
            self._listeners.append(pump)

    def unlisten(self, pump: MessagePump) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(pump)

    def _post(self, make: Any) -> None:
        for pump in list(self._listeners):
            message: Message = make()
            pump.post_message(message)

    @property
    def connected(self) -> bool:
        return self.state == CONNECTED

    @property
    def endpoint(self) -> str:
        return self.client.endpoint.address

    def _set_state(self, state: str, detail: str) -> None:
        if (state, detail) == (self.state, self.detail):
            return
        self.state, self.detail = state, detail
        self._post(functools.partial(LinkChanged, state, detail))

    def mark_down(self, exc: BaseException) -> None:
        if isinstance(exc, errors.DaemonNotRunning):
            self._set_state(DOWN, f"{exc}; {self.start_hint}")
        elif isinstance(exc, errors.RequestTimeout):
            self._set_state(DOWN, f"lightboxd does not answer ({exc})")
        else:
            self._set_state(DOWN, f"lost the connection to lightboxd ({exc})")

    # -- calls ----------------------------------------------------------------------------
    async def call(self, method: str, params: Any = None, *,
                   timeout: float | None = None) -> Any:
        """Call ``method``; a dead daemon marks the link down and raises ClientError."""
        try:
            return await self.client.call(method, params, timeout=timeout or CALL_TIMEOUT)
        except errors.DaemonNotRunning as exc:
            self.mark_down(exc)
            raise

    def refresh_status(self) -> None:
        self._status_due.set()

    async def close(self) -> None:
        """Close the event socket and the client (the ZeroMQ context waits for every socket)."""
        if self._sub is not None:
            self._sub.close()
            self._sub = None
        await self.client.close()

    # -- the follower ---------------------------------------------------------------------
    async def run(self) -> None:
        """Run for the app's lifetime (as a worker): connect, follow, reconnect."""
        status_task = asyncio.get_running_loop().create_task(self._status_loop())
        backoff = 0.25
        try:
            while True:
                sub: Subscription | None = None
                try:
                    await self._handshake()
                    sub = self._sub = await self.client.subscribe()
                    await self._catch_up()
                    self._set_state(CONNECTED, f"connected to lightboxd "
                                    f"{self.hello.get('version', '')} at {self.endpoint}")
                    self.refresh_status()
                    backoff = 0.25
                    await self._follow(sub)
                except (errors.ClientError, errors.RpcError, OSError) as exc:
                    if self.state != DOWN or not isinstance(exc, errors.DaemonNotRunning):
                        self.mark_down(exc)
                finally:
                    if sub is not None:
                        sub.close()
                    self._sub = None
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)
        finally:
            status_task.cancel()

    async def _handshake(self) -> None:
        hello = await self.client.call(
            "hello", {"client": self.client_name, "protocol": PROTOCOL_VERSION},
            timeout=HELLO_TIMEOUT)
        self.client.hello = hello  # the subscription reads the event endpoint from it
        self.hello = hello
        if self.boot is None:
            self.boot, self.seq = hello["boot"], int(hello["seq"])
        elif hello["boot"] != self.boot:
            self._restarted(hello)

    def _restarted(self, hello: dict[str, Any]) -> None:
        self.restarts += 1
        self.boot, self.seq = hello["boot"], int(hello["seq"])
        self._post(lambda: Resync(restarted=True))
        self.refresh_status()

    async def _catch_up(self) -> None:
        """Replay what was published after ``self.seq`` (subscribe first, then call this)."""
        while True:
            r = await self.client.call("events.since", {"seq": self.seq, "boot": self.boot},
                                       timeout=CALL_TIMEOUT)
            if r.get("reset"):
                self._restarted({"boot": r["boot"], "seq": r["seq"]})
                return
            if not r.get("complete", True):
                self.seq = int(r["seq"])
                self._post(lambda: Resync(restarted=False))
                return
            for ev in r.get("events", []):
                self._apply(ev)
            if not r.get("more"):
                return

    async def _follow(self, sub: Subscription) -> None:
        while True:
            try:
                ev = await sub.next(self.heartbeat)
            except TimeoutError:
                await self._beat()
                continue
            if ev.get("boot") not in (None, self.boot):
                # A new daemon is talking: handshake again (which posts Resync).
                await self._handshake()
                continue
            seq = int(ev.get("seq", 0))
            if seq <= self.seq:
                continue
            if seq > self.seq + 1:
                await self._catch_up()  # covers this one too
                continue
            self._apply(ev)
            if ev.get("topic") == "system" and ev.get("type") == "stopping":
                self._set_state(DOWN, "lightboxd is stopping; waiting for it to come back "
                                f"(or {self.start_hint})")
                return

    async def _beat(self) -> None:
        hello = await self.client.call("hello", {"client": self.client_name},
                                       timeout=HELLO_TIMEOUT)
        if hello["boot"] != self.boot:
            self.client.hello = hello
            self.hello = hello
            self._restarted(hello)
        elif int(hello["seq"]) > self.seq:
            await self._catch_up()

    def _apply(self, ev: dict[str, Any]) -> None:
        seq = int(ev.get("seq", 0))
        if seq <= self.seq:
            return
        self.seq = seq
        if ev.get("topic") == "job" and ev.get("type") in ("queued", "started", "finished"):
            self.refresh_status()
        if ev.get("topic") == "catalog" and ev.get("type") == "indexing":
            # Indexing no job stands for (the watcher's): the status lines show it.
            self.status = {**self.status, "indexing": ev.get("data") or {}}
            self._post(functools.partial(StatusChanged, self.status))
        self._post(functools.partial(DaemonEvent, ev))

    async def _status_loop(self) -> None:
        while True:
            await self._status_due.wait()
            self._status_due.clear()
            with contextlib.suppress(errors.ClientError, errors.RpcError):
                status = await self.client.call("system.status", timeout=CALL_TIMEOUT)
                self.status = {**status, "indexing": self.status.get("indexing")} \
                    if "indexing" in self.status else status
                self._post(functools.partial(StatusChanged, status))
            await asyncio.sleep(0.5)  # at most twice a second
