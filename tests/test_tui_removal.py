"""A worker cancelled while it waits for widgets to be removed (``lightbox.tui.removal``):
the removal finishes and the app keeps answering. Without the shield, Textual's removal
gather is cancelled with the worker, the removed widgets' loops die cancelled, and the
app's own wait on them ends its message loop: a frozen TUI (it froze one test start in
three under load, through the grid's rebuild on a live grid-size change)."""

from __future__ import annotations

import asyncio

from textual.app import App, ComposeResult
from textual.containers import Vertical
from textual.widgets import Static

from lightbox.tui.removal import removed


class Boxes(App[None]):
    def compose(self) -> ComposeResult:
        yield Vertical(*[Vertical(*[Static(f"{i}.{j}") for j in range(4)])
                         for i in range(40)], id="box")


async def answers(app: App[None]) -> bool:
    """The app's own message loop still runs a callback."""
    ran = asyncio.Event()
    app.call_later(ran.set)
    try:
        await asyncio.wait_for(ran.wait(), 5)
    except TimeoutError:
        return False
    return True


async def test_a_worker_cancelled_mid_removal_leaves_the_app_answering() -> None:
    app = Boxes()
    async with app.run_test() as pilot:
        box = app.query_one("#box", Vertical)
        old = list(box.children)
        started = asyncio.Event()

        async def replace() -> None:
            started.set()
            await removed(box.remove_children())
            await box.mount(Static("new", id="new"))

        worker = app.run_worker(replace(), group="replace", exclusive=True)
        await started.wait()
        await asyncio.sleep(0)  # the worker now waits inside the removal
        assert any(w._task is not None and not w._task.done() for w in old)
        worker.cancel()
        assert await answers(app), "the app's message loop ended"
        await pilot.pause()
        assert not box.children  # the removal finished; the cancelled worker mounted nothing
        assert all(w._task is None or (w._task.done() and not w._task.cancelled())
                   for w in old)
        # The next worker of the group does its whole job.
        app.run_worker(replace(), group="replace", exclusive=True)
        for _ in range(100):
            await pilot.pause(0.01)
            if app.query("#new"):
                break
        assert [w.id for w in box.children] == ["new"]
