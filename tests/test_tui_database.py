"""The database screen (``C``) against a real daemon: status, testing URLs, a live switch."""

from __future__ import annotations

from typing import Any

import pytest
from lbtest import DaemonProcess
from test_tui_fixtures import SIZE, acall, make_app, until
from textual.widgets import Input

from lightbox.tui.screens.browser import BrowserScreen
from lightbox.tui.screens.database import DatabaseScreen
from lightbox.tui.widgets.status_line import StatusLine

pytestmark = [pytest.mark.postgres]


def text(screen: DatabaseScreen, widget_id: str) -> str:
    """What a Static shows, as plain text (its renderable drawn at the screen's width)."""
    import io

    from rich.console import Console

    console = Console(width=120, record=True, color_system=None, file=io.StringIO())
    console.print(screen.shown.get(widget_id, ""))
    return console.export_text()


async def test_test_a_url_then_switch_live(make_daemon: Any, pg_scratch_url: str) -> None:
    d: DaemonProcess = make_daemon()
    app = make_app(d)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, BrowserScreen), what="the browser")
        await pilot.press("C")
        db = await until(pilot, lambda: isinstance(app.screen, DatabaseScreen) and app.screen,
                         what="the database screen")
        await until(pilot, lambda: "sqlite" in text(db, "#db-status"), what="the status")
        field = db.query_one("#db-url", Input)
        assert field.password  # the URL holds a secret: never echoed
        # An unreachable server: the reason, and nothing changes.
        field.value = "postgresql+asyncpg://lb:secret-pw@127.0.0.1:1/none"
        await pilot.press("enter")
        await until(pilot, lambda: "unreachable" in text(db, "#db-test-result"), timeout=60,
                    what="the unreachable reason")
        assert "secret-pw" not in text(db, "#db-test-result")
        # A usable one: tested, then the catalog moves there while the screen follows.
        field.value = pg_scratch_url
        await pilot.press("ctrl+t")
        await until(pilot, lambda: "usable" in text(db, "#db-test-result") and
                    "not usable" not in text(db, "#db-test-result"), timeout=60,
                    what="the database to test usable")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: db.phase == "done", timeout=120, what="the switch to end")
        progress = text(db, "#db-progress")
        assert "switched to" in progress and "postgresql" in progress, progress
        await until(pilot, lambda: "postgresql" in text(db, "#db-status") and
                    "completed switch" in text(db, "#db-status"), timeout=30,
                    what="the status after the switch")
        assert "switched to" in db.query_one(StatusLine).message
        await pilot.press("escape")
        assert isinstance(app.screen, BrowserScreen)
        assert (await acall(d, "database.status"))["engine"] == "postgresql"
