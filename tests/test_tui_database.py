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
    return plain(screen.shown.get(widget_id, ""))


def plain(what: Any) -> str:
    import io

    from rich.console import Console

    console = Console(width=120, record=True, color_system=None, file=io.StringIO())
    console.print(what)
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
        await until(pilot, lambda: "switched to" in text(db, "#db-progress"), timeout=120,
                    what="the switch to end")  # a phase "done" comes before "switched"
        progress = text(db, "#db-progress")
        assert "postgresql" in progress and db.phase == "done", progress
        await until(pilot, lambda: "postgresql" in text(db, "#db-status") and
                    "completed switch" in text(db, "#db-status"), timeout=30,
                    what="the status after the switch")
        assert "switched to" in db.query_one(StatusLine).message
        await pilot.press("escape")
        assert isinstance(app.screen, BrowserScreen)
        assert (await acall(d, "database.status"))["engine"] == "postgresql"


async def test_settings_database_url_row_opens_the_switch_with_the_url(
        make_daemon: Any, pg_scratch_url: str) -> None:
    """The settings screen's database.url row: where the catalog is; enter on a typed URL
    opens the database screen with it prefilled and tested; the switch's progress is shown
    there and, back in the settings, on the row itself."""
    from test_tui_settings import open_settings

    from lightbox.tui.screens.settings import DatabaseRow, SettingsScreen, widget_id

    d: DaemonProcess = make_daemon()
    app = make_app(d)
    async with app.run_test(size=SIZE) as pilot:
        settings = await open_settings(pilot)
        assert "database.url" not in settings.rows  # not saved through settings.set
        row = await until(pilot, lambda: settings.database, what="the database.url row")
        assert isinstance(row, DatabaseRow)

        def about() -> str:
            return str(row.query_one(".field-about").render())

        await until(pilot, lambda: "now: sqlite" in about(), timeout=30,
                    what=lambda: f"the catalog's place in the row: {about()}")
        editor = settings.query_one("#" + widget_id("database.url"), Input)
        assert editor.password  # the URL holds a secret: never echoed
        editor.focus()
        editor.value = pg_scratch_url
        await pilot.press("enter")
        db = await until(pilot, lambda: isinstance(app.screen, DatabaseScreen) and app.screen,
                         what="the database screen")
        assert editor.value == ""  # the secret does not stay on the settings form
        assert db.query_one("#db-url", Input).value == pg_scratch_url  # prefilled
        # Tested at once (a test changes nothing), so the switch is one key away.
        await until(pilot, lambda: "usable" in text(db, "#db-test-result") and
                    "not usable" not in text(db, "#db-test-result"), timeout=60,
                    what=lambda: f"the prefilled URL tested: {text(db, '#db-test-result')}")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: "switched to" in text(db, "#db-progress"), timeout=120,
                    what="the switch to end")  # a phase "done" comes before "switched"
        await pilot.press("escape")
        assert app.screen is settings
        # Back in the settings: the row says where the catalog is now and how the switch
        # went (it followed the switch's events while the database screen was on top).
        await until(pilot, lambda: "now: postgresql" in about() and "moved by a switch"
                    in about(), timeout=30, what=lambda: f"the row after the switch: {about()}")
        assert row.job is not None and row.phase == "done"
        assert "switched to" in plain(row.drawn) and "job" in plain(row.drawn)
        assert isinstance(app.screen, SettingsScreen)
        assert (await acall(d, "database.status"))["engine"] == "postgresql"
