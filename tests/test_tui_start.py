"""What the start holds back until the first folder is on screen (a real daemon; a missing
one): garbage collection, held from ``run_app``, then one collection, the long-lived heap
frozen and collections on again; the footer's key hints, composed after the photos. A start
that shows no folder releases both too."""

from __future__ import annotations

import gc
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lbtest import DaemonProcess
from test_tui_fixtures import SIZE, TRIP, folder_path, make_app, settled, shared_library, until
from textual.css.stylesheet import Stylesheet
from textual.widgets._footer import FooterKey

from lightbox.tui import app as appmod
from lightbox.tui.main import hold_collections
from lightbox.tui.screens.browser import BrowserScreen
from lightbox.tui.widgets.start_footer import StartFooter


@pytest.fixture
def library() -> DaemonProcess:
    """The shared read-only library and its daemon (built once per test process)."""
    return shared_library()


@pytest.fixture
def held() -> Iterator[None]:
    """``hold_collections`` as ``run_app`` calls it; collections on again whatever happens."""
    hold_collections()
    try:
        yield
    finally:
        gc.enable()


async def test_collections_resume_with_the_first_folder_shown(library: Any, held: None) -> None:
    assert not gc.isenabled()
    frozen = gc.get_freeze_count()
    app = make_app(library, start=folder_path(*TRIP))
    async with app.run_test(size=SIZE) as pilot:
        screen = app.screen
        assert isinstance(screen, BrowserScreen)
        await until(pilot, gc.isenabled, what="collections on again")
        # on again only once the folder was there, with what lives on frozen
        assert screen.seq is not None and len(screen.seq) > 0 and screen.grid.has_cells
        assert gc.get_freeze_count() > frozen


async def test_collections_resume_when_no_folder_is_shown(
        held: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(appmod, "RELEASE_IMAGES_AFTER", 0.5)
    with tempfile.TemporaryDirectory(prefix="lb-tui-nogc-") as tmp:
        app = make_app(DaemonProcess(Path(tmp)))  # no daemon there: nothing to show
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause(0.2)
            assert not gc.isenabled()
            await until(pilot, gc.isenabled, what="collections on after the fallback")
            assert app.images._released.is_set()  # images started by the same fallback


async def test_collections_resume_when_the_app_exits_first(held: None) -> None:
    with tempfile.TemporaryDirectory(prefix="lb-tui-nogc-") as tmp:
        app = make_app(DaemonProcess(Path(tmp)))
        async with app.run_test(size=SIZE) as pilot:
            await pilot.pause(0.1)
            assert not gc.isenabled()
        assert gc.isenabled()


async def test_footer_keys_come_after_the_first_folder(
        library: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    keys_when_shown: list[int] = []
    show_seq = BrowserScreen._show_seq

    def shown(self: BrowserScreen, *args: Any) -> None:
        keys_when_shown.append(len(self.query(FooterKey)))
        show_seq(self, *args)

    monkeypatch.setattr(BrowserScreen, "_show_seq", shown)
    app = make_app(library, start=folder_path(*TRIP))
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        screen = app.screen
        assert keys_when_shown[0] == 0  # not yet when the first page came
        footer = screen.query_one(StartFooter)
        await until(pilot, lambda: not footer.held and footer.query(FooterKey))
        assert "search" in {key.action for key in footer.query(FooterKey)}


async def test_footer_keys_show_when_there_is_no_folder() -> None:
    with tempfile.TemporaryDirectory(prefix="lb-tui-nokeys-") as tmp:
        app = make_app(DaemonProcess(Path(tmp)))  # not connected: the browser says so
        async with app.run_test(size=SIZE) as pilot:
            screen = app.screen
            assert isinstance(screen, BrowserScreen)
            await until(pilot, lambda: "lightbox" in screen.empty_text, what="not connected")
            footer = screen.query_one(StartFooter)
            await until(pilot, lambda: footer.query(FooterKey), what="the key hints")


async def test_the_browser_is_pushed_without_parsing_every_stylesheet_again(
        library: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    reparsed: list[int] = []
    reparse = Stylesheet.reparse

    def counted(self: Stylesheet) -> None:
        reparsed.append(1)
        reparse(self)

    monkeypatch.setattr(Stylesheet, "reparse", counted)
    app = make_app(library, start=folder_path(*TRIP))
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        assert isinstance(app.screen, BrowserScreen)
        assert reparsed == []  # browser.tcss was read with the app's CSS
