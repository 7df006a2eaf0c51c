"""The event bus: numbered events on PUB sockets, with a ring buffer for replay.

Every event gets the next ``seq`` of this daemon run (``boot`` names the run), is kept in a
bounded ring buffer for ``events.since`` and goes out on every PUB socket as two frames:
the topic (ZeroMQ subscriptions are prefix matches on it) and the JSON body.

Progress-like events are throttled per key: the latest one wins and at most one per
``interval`` goes out, so a job reporting every file cannot flood slow subscribers.
"""

from __future__ import annotations

import asyncio
import itertools
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import zmq
import zmq.asyncio

from lightbox.common import logs, protocol

log = logs.get("events")


def iso_now(now: float | None = None) -> str:
    now = time.time() if now is None else now
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"


@dataclass(frozen=True, slots=True)
class Event:
    seq: int
    topic: str
    body: bytes  # the JSON frame, encoded once and reused for replay
    doc: dict[str, Any]


class EventBus:
    name = "events"
    settings_keys = ("events.buffer",)

    def __init__(self, buffer: int = 10_000) -> None:
        self.boot = uuid.uuid4().hex
        self.seq = 0
        self._ring: deque[Event] = deque(maxlen=buffer)
        self._sockets: list[zmq.asyncio.Socket] = []
        self._pending: dict[str, tuple[str, str, dict[str, Any]]] = {}
        self._last_sent: dict[str, float] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._listeners: list[Callable[[Event], None]] = []
        self.published = 0

    async def apply(self, changes: dict[str, Any]) -> None:
        """A new buffer size: the newest events are kept (a smaller one drops the oldest)."""
        if "events.buffer" in changes:
            self._ring = deque(self._ring, maxlen=int(changes["events.buffer"]))

    def attach(self, sock: zmq.asyncio.Socket) -> None:
        """Publish on ``sock`` too (the control server binds the PUB sockets)."""
        self._sockets.append(sock)

    def detach(self, sock: zmq.asyncio.Socket) -> None:
        if sock in self._sockets:
            self._sockets.remove(sock)

    def listen(self, fn: Callable[[Event], None]) -> None:
        """In-process subscribers (tests, sd_notify status); called synchronously."""
        self._listeners.append(fn)

    def publish(self, topic: str, type_: str, data: dict[str, Any] | None = None, *,
                origin: str | None = None) -> int:
        """Number, buffer and send one event now; returns its seq. ``origin`` names the
        daemon that caused an event relayed from another daemon sharing the catalog."""
        self.seq += 1
        doc = {"seq": self.seq, "time": iso_now(), "topic": topic, "type": type_,
               "boot": self.boot, "data": data or {}}
        if origin is not None:
            doc["origin"] = origin
        body = protocol.dumps(doc)
        event = Event(self.seq, topic, body, doc)
        self._ring.append(event)
        frames = [topic.encode(), body]
        for sock in self._sockets:
            try:
                # PUB never blocks: a subscriber over its high-water mark loses messages
                # (and can catch up with events.since), the daemon never waits for it.
                sock.send_multipart(frames, flags=zmq.NOBLOCK)
            except zmq.ZMQError as exc:
                log.debug("event not sent", topic=topic, error=str(exc))
        for fn in self._listeners:
            try:
                fn(event)
            except Exception:
                log.exception("event listener failed")
        self.published += 1
        return self.seq

    def publish_throttled(
        self, key: str, topic: str, type_: str, data: dict[str, Any], interval: float = 0.5
    ) -> None:
        """Publish at most once per ``interval`` for ``key``; the newest data wins."""
        now = time.monotonic()
        last = self._last_sent.get(key, 0.0)
        if now - last >= interval and key not in self._timers:
            self._last_sent[key] = now
            self.publish(topic, type_, data)
            return
        self._pending[key] = (topic, type_, data)
        if key not in self._timers:
            delay = max(0.0, interval - (now - last))
            loop = asyncio.get_running_loop()
            self._timers[key] = loop.call_later(delay, self._flush, key)

    def flush_throttled(self, key: str) -> None:
        """Send what is pending for ``key`` at once (a job's final state must not wait)."""
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        self._flush(key, from_timer=False)

    def _flush(self, key: str, from_timer: bool = True) -> None:
        if from_timer:
            self._timers.pop(key, None)
        pending = self._pending.pop(key, None)
        if pending is not None:
            self._last_sent[key] = time.monotonic()
            self.publish(*pending)
        elif not from_timer:
            self._last_sent.pop(key, None)

    def since(
        self, seq: int, topics: Iterable[str] | None = None, limit: int = 1000
    ) -> tuple[list[dict[str, Any]], bool, bool]:
        """Events after ``seq``: (events, complete, more)."""
        wanted = set(topics) if topics else None
        oldest = self._ring[0].seq if self._ring else self.seq + 1
        complete = seq >= oldest - 1 or seq >= self.seq
        out: list[dict[str, Any]] = []
        more = False
        if seq < self.seq:
            # The ring is ordered by seq: skip straight to the first wanted index.
            start = max(0, seq - oldest + 1)
            for ev in itertools.islice(self._ring, start, None):
                if wanted is not None and ev.topic not in wanted:
                    continue
                if len(out) >= limit:
                    more = True
                    break
                out.append(ev.doc)
        return out, complete, more

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        for key in list(self._pending):
            self._flush(key, from_timer=False)
        self._timers.clear()

    def status(self) -> dict[str, Any]:
        return {"seq": self.seq, "buffered": len(self._ring), "subscribers_sockets":
                len(self._sockets)}
