"""The write gate that a database switch closes to freeze writes (``WriteGate``).

A transaction nested in one that is inside passes (holding it would deadlock its parent);
a task or callback merely made inside a transaction does not: it inherits the context, and
used to pass a closed gate for the rest of its life, which let the cluster relay write
into the catalog being left during a switch's final count ("event_feed: 19 rows in the
source, 17 in the target").
"""

from __future__ import annotations

import asyncio

from lightbox.daemon.catalog.database import WriteGate


async def test_a_nested_transaction_in_the_same_task_passes_a_closing_gate() -> None:
    gate = WriteGate()
    entered: list[str] = []
    async with gate.passage():
        closing = asyncio.create_task(gate.close(5))
        await asyncio.sleep(0.05)
        assert gate.closed and not closing.done()     # waits for this transaction
        async with gate.passage():                    # nested: not held
            entered.append("nested")
    assert await asyncio.wait_for(closing, 5)
    assert entered == ["nested"] and gate.held == 0
    gate.open()


async def test_a_task_made_inside_a_transaction_waits_at_a_closed_gate() -> None:
    gate = WriteGate()
    start = asyncio.Event()
    wrote: list[str] = []

    async def later_write() -> None:            # like the relay's flush: made inside
        await start.wait()
        async with gate.passage():
            wrote.append("late")

    loop = asyncio.get_running_loop()
    async with gate.passage():
        child = asyncio.create_task(later_write())
        timed: list[asyncio.Task[None]] = []
        loop.call_later(0.01, lambda: timed.append(asyncio.create_task(later_write())))
        await asyncio.sleep(0.05)
    assert await gate.close(5)                  # the freeze
    start.set()
    await asyncio.sleep(0.2)
    assert wrote == [] and gate.held == 2       # both held, nothing written
    gate.open()
    await asyncio.wait_for(asyncio.gather(child, *timed), 5)
    assert wrote == ["late", "late"]
