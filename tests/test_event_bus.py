"""The event bus in-process: seq, ring buffer replay, throttling."""

from __future__ import annotations

import asyncio

from lightbox.daemon.control.events import EventBus


def test_seq_and_replay() -> None:
    bus = EventBus(buffer=100)
    for i in range(10):
        bus.publish("job" if i % 2 else "catalog", "x", {"i": i})
    events, complete, more = bus.since(0)
    assert [e["seq"] for e in events] == list(range(1, 11))
    assert complete and not more
    events, complete, _ = bus.since(7)
    assert [e["seq"] for e in events] == [8, 9, 10]
    events, _, _ = bus.since(0, topics=["job"])
    assert all(e["topic"] == "job" for e in events) and len(events) == 5
    events, _, more = bus.since(0, limit=3)
    assert len(events) == 3 and more
    assert bus.since(10) == ([], True, False)


def test_fell_behind_is_reported() -> None:
    bus = EventBus(buffer=100)
    for i in range(250):
        bus.publish("catalog", "x", {"i": i})
    events, complete, _ = bus.since(10)
    assert not complete
    assert events[0]["seq"] == 151  # the oldest still held
    _, complete, _ = bus.since(150)
    assert complete


async def test_throttle_keeps_latest_and_rate() -> None:
    bus = EventBus()
    for i in range(50):
        bus.publish_throttled("job:1", "job", "progress", {"n": i}, interval=0.2)
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.3)
    events, _, _ = bus.since(0)
    # ~0.5 s of updates at most every 0.2 s: a handful, not fifty, ending with the last.
    assert 2 <= len(events) <= 5, len(events)
    assert events[-1]["data"] == {"n": 49}


async def test_flush_sends_pending_at_once() -> None:
    bus = EventBus()
    bus.publish_throttled("k", "job", "progress", {"n": 1}, interval=10)
    bus.publish_throttled("k", "job", "progress", {"n": 2}, interval=10)
    assert bus.seq == 1
    bus.flush_throttled("k")
    assert bus.seq == 2
    assert bus.since(1)[0][0]["data"] == {"n": 2}
