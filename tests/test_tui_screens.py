"""Search, jobs, duplicates, help and the command palette, against a real daemon."""

from __future__ import annotations

import os
from typing import Any

import pytest
from lbtest import DaemonProcess
from test_tui_fixtures import (
    SIZE,
    TRIP,
    acall,
    folder_path,
    grid_names,
    make_app,
    settled,
    shared_library,
    until,
)
from textual.widgets import Input, OptionList

from lightbox.tui.model import Filters
from lightbox.tui.screens.browser import BrowserScreen
from lightbox.tui.screens.duplicates import DupeCard, DuplicatesScreen
from lightbox.tui.screens.help import HelpScreen, sections
from lightbox.tui.screens.jobs import JobRow, JobsScreen
from lightbox.tui.screens.preview import PreviewScreen
from lightbox.tui.widgets.breadcrumb import Breadcrumb
from lightbox.tui.widgets.search_bar import SearchBar, widen
from lightbox.tui.widgets.status_line import StatusLine


@pytest.fixture
def library() -> DaemonProcess:
    """The shared read-only library and its daemon (built once per test process)."""
    return shared_library()


async def search_names(d: Any, **params: Any) -> list[str]:
    r = await acall(d, "photos.search", {"limit": 2000, "fields": ["name"], **params})
    return [p["name"] for p in r["photos"]]


async def test_search_by_text_camera_dates_and_scope(library: Any) -> None:
    app = make_app(library, start=folder_path(*TRIP))
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        screen = app.screen
        assert isinstance(screen, BrowserScreen)
        folder_id = screen.folder["id"]
        bar = screen.query_one(SearchBar)
        # its fields are mounted when it first opens, not with the browser (the start)
        assert not bar.built and not screen.query(Input)
        assert bar.filters() == Filters()
        await pilot.press("slash")
        assert bar.built
        assert bar.is_open and app.focused is bar.query_one("#search-text", Input)
        await pilot.press(*"IMG_10", "enter")
        await until(pilot, lambda: screen.seq.query.filters is not None, what="search")
        await settled(pilot)
        assert not bar.is_open
        assert grid_names(app) == await search_names(library, text="IMG_10", folder=folder_id)
        assert screen.query_one(Breadcrumb).prefix.startswith("Search: ")
        # everywhere, by camera make, within a date range
        await pilot.press("slash")
        bar.query_one("#search-text", Input).value = ""
        bar.query_one("#search-camera", Input).value = "canon"
        bar.query_one("#search-from", Input).value = "2023"
        bar.query_one("#search-to", Input).value = "2024-06"
        await pilot.click("#search-everywhere")
        await pilot.press("enter") if app.focused is not None and isinstance(
            app.focused, Input) else bar.submit()
        bar.submit()
        await until(pilot, lambda: screen.seq.query.filters is not None
                    and screen.seq.query.filters.camera == "canon", what="camera search")
        await settled(pilot)
        expected = await search_names(library, camera="canon", date_from="2023-01-01",
                                      date_to="2024-06-30")
        assert grid_names(app) == expected and expected
        # a bad date is pointed at, not sent
        await pilot.press("slash")
        bar.query_one("#search-from", Input).value = "2023-13"
        bar.submit()
        await pilot.pause(0.1)
        assert "from: expected a date" in screen.query_one(StatusLine).message
        await pilot.press("escape")  # close the bar
        assert not bar.is_open
        await pilot.press("escape")  # back to the folder
        await until(pilot, lambda: not screen.seq.query.is_search, what="the folder again")


def test_widen_dates() -> None:
    assert widen("2023", end=False) == "2023-01-01"
    assert widen("2023", end=True) == "2023-12-31"
    assert widen("2024-02", end=True) == "2024-02-29"
    assert widen("2023-6-4", end=False) == "2023-06-04"
    assert widen("", end=True) == ""
    assert widen("2023-02-30", end=False) is None
    assert widen("yesterday", end=False) is None


async def test_jobs_screen_rescan_and_live_progress(library: Any) -> None:
    app = make_app(library, start=folder_path(*TRIP))
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        await pilot.press("J")
        jobs = await until(pilot, lambda: isinstance(app.screen, JobsScreen) and app.screen)
        await until(pilot, lambda: jobs.rows, what="the job list")
        first = dict(jobs.rows)
        assert any(r.job["kind"] == "scan" and r.job["state"] == "succeeded"
                   for r in first.values())
        await pilot.press("r")  # rescan the folder the browser showed
        new = await until(pilot, lambda: set(jobs.rows) - set(first), what="a new job row")
        job_id = max(new)
        await until(pilot, lambda: jobs.rows[job_id].job["state"] == "succeeded",
                    timeout=30, what="the scan to finish (from job events)")
        row = jobs.rows[job_id]
        assert row.job["params"].get("path") == folder_path(*TRIP)
        assert next(iter(jobs.query(JobRow))) is row  # newest first
        # a finished job cannot be cancelled, and says so
        await pilot.press("g", "c")
        await until(pilot, lambda: "nothing to cancel" in jobs.query_one(StatusLine).message)
        await pilot.press("escape")
        assert isinstance(app.screen, BrowserScreen)


async def test_cancel_a_running_job(make_daemon: Any, tmp_path: Any) -> None:
    from lightbox.daemon.media import samples

    many = tmp_path / "many"
    samples.make_demo_library(many / "0", 1, seed=3, megapixels=0.3, processes=1)
    # A scan that lasts on a fast machine too: 40,000 names (hard links to one photo).
    photo = next(p for p in (many / "0").rglob("*") if p.is_file())
    for f in range(80):
        (many / f"f{f:02}").mkdir()
        for n in range(500):
            os.link(photo, many / f"f{f:02}" / f"p{n:03}.jpg")
    d = make_daemon()
    app = make_app(d)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("J")
        jobs = await until(pilot, lambda: isinstance(app.screen, JobsScreen) and app.screen)
        await acall(d, "roots.add", {"path": str(tmp_path / "many")})
        await until(pilot, lambda: any(r.job["state"] == "running" for r in jobs.rows.values()),
                    what="a running job")
        await pilot.press("g", "c")
        line = jobs.query_one(StatusLine)
        said = await until(pilot, lambda: line.message, what="an answer to the cancel")
        assert "nothing to cancel" not in said, "the scan ended first: make the tree bigger"
        job_id = max(jobs.rows)
        # What the line said when the answer came (it is cleared after a while).
        assert said.startswith(f"job {job_id}: "), said
        await until(pilot, lambda: jobs.rows[job_id].job["state"] == "cancelled", timeout=30,
                    what="the job to be cancelled")


async def test_duplicates_exact_and_near(library: Any) -> None:
    app = make_app(library)
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        await pilot.press("D")
        dupes = await until(pilot, lambda: isinstance(app.screen, DuplicatesScreen)
                            and app.screen)
        await until(pilot, lambda: dupes.groups, what="exact groups")
        await settled(pilot)
        cards = [c for c in dupes.query(DupeCard) if c.photo is not None]
        names = sorted(c.photo["name"] for c in cards)
        assert len(cards) == 2 and names[0].startswith("IMG_") and names[1].startswith("copy of")
        assert all(c.query_one("ImageView").encoded is not None for c in cards)
        assert {c.photo["sha256"] for c in cards} == {cards[0].photo["sha256"]}
        await pilot.press("l")
        assert dupes.card_index == 1
        await pilot.press("enter")  # compare in the preview
        preview = await until(pilot, lambda: isinstance(app.screen, PreviewScreen)
                              and app.screen)
        assert preview.index == 1 and len(preview.seq) == 2
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is dupes)
        await pilot.press("t")  # near duplicates: the edited copy of the first photo
        await until(pilot, lambda: dupes.kind == "near" and dupes.groups, timeout=20,
                    what="near groups")
        group = dupes.groups[0]
        assert any(p["name"].endswith("-edit.jpg") for p in group["photos"])
        assert dupes.query_one(OptionList).option_count == len(dupes.groups)


async def test_help_lists_every_binding(library: Any) -> None:
    app = make_app(library)
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        listed = {what for _, rows in sections() for _, what in rows}
        for screen_cls in (BrowserScreen, PreviewScreen, JobsScreen, DuplicatesScreen):
            for b in screen_cls.BINDINGS:
                assert b.description in listed, (screen_cls.__name__, b.description)
        await pilot.press("escape")
        assert isinstance(app.screen, BrowserScreen)


async def test_command_palette_runs_actions(library: Any) -> None:
    app = make_app(library, start=folder_path(*TRIP))
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for title in ("Search", "Grid/List", "Info", "Sort", "Jobs", "Duplicates",
                      "Graphics: no images", "Help: keys"):
            assert title in titles, title
        await pilot.press("ctrl+p")
        await pilot.press(*"Jobs")
        await pilot.pause(0.3)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, JobsScreen), what="jobs via palette")
        await pilot.press("escape")
        # switching graphics from the palette redraws with the new mode
        app.set_graphics("none")
        assert app.images.mode == "none"
        screen = app.screen
        assert isinstance(screen, BrowserScreen)
        await pilot.pause(0.2)
        cells = [c for c in screen.grid._cells if c.index is not None]
        assert all(c.view.encoded is None for c in cells)
        assert "none" not in [c.title for c in app.get_system_commands(app.screen)]


async def test_palette_offers_what_this_terminal_shows_for_this_session(
        library: Any, tmp_path: Any) -> None:
    """Only the modes detection found; "auto (detected: …)" to go back; nothing saved."""
    from lightbox.tui.imaging.graphics import TEXT, Graphics

    app = make_app(library, start=folder_path(*TRIP))
    app.graphics = Graphics("symbols", 8, 17, detected="symbols", available=TEXT,
                            terminal="tmux in xterm-256color")
    app.images.set_graphics(app.graphics)
    app.settings.path = tmp_path / "tui.toml"
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Graphics: half-cells" in titles and "Graphics: no images" in titles
        assert not [t for t in titles if "Sixel" in t or "Kitty" in t], titles
        assert "Graphics: symbols with sextants" in titles
        app.set_graphics("sixel")  # not something this terminal can show: refused
        assert app.graphics.mode == "symbols"
        app.set_graphics("halfcell")
        await settled(pilot)
        assert app.images.mode == "halfcell"
        # The status line keeps the folder's count beside the new mode (the label alone
        # was written after the browser's fuller line, and the count was gone).
        count = f"{len(app.screen.seq):,} photos"
        assert app.screen.status_line.info == f"{count}  ·  half-cells", \
            app.screen.status_line.info
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Graphics: auto (detected: symbols)" in titles
        cells = [c for c in app.screen.query("ThumbCell") if c.index is not None]
        await until(pilot, lambda: all(c.view.encoded is not None
                                       and c.view.encoded.mode == "halfcell" for c in cells))
        app.set_graphics("auto")
        assert app.graphics.mode == "symbols"
    assert not (tmp_path / "tui.toml").exists()  # a palette choice is for this session


async def test_sixel_through_tmux_is_placed_cleared_and_held_while_hidden(
        library: Any) -> None:
    """Passthrough: the Sixel is wrapped for tmux and placed in the outer terminal's
    coordinates; nothing is drawn while the pane is hidden; the next photo clears the old
    rectangle first (tmux would not)."""
    from textual.geometry import Region

    from lightbox.tui.imaging.graphics import TEXT, Graphics, Tmux
    from lightbox.tui.imaging.tmux import Pane, PaneState

    tmux = Tmux("3.3a", True, "xterm-256color", "XTerm(379)", "%1")
    app = make_app(library, graphics="sixel", start=folder_path(*TRIP))
    app.graphics = Graphics("sixel", 10, 20, tmux=tmux, available=("sixel", *TEXT))
    app.images.set_graphics(app.graphics)
    app.pane = Pane("%1", PaneState(top=3, left=10, visible=True))
    assert app.graphics.passthrough
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, PreviewScreen)
                    and app.screen.picture.encoded is not None)
        view = app.screen.picture
        enc = view.encoded
        assert enc is not None

        def control() -> str:
            caption = view.render_lines(Region(0, 0, *view.size))[-1]
            return "".join(s.text for s in caption if s.control)

        drawn = control()
        region = app.screen.find_widget(view).region
        ox = (view.size.width - enc.cols) // 2
        oy = (view.size.height - 1 - enc.rows) // 2
        assert drawn.startswith("\x1bPtmux;\x1b\x1b7") and drawn.endswith("\x1b\x1b8\x1b\\")
        assert f"\x1b\x1b[{3 + region.y + oy + 1};{10 + region.x + ox + 1}H" in drawn
        assert "\x1b\x1bP0;1;0q" in drawn  # the Sixel itself, its ESC doubled
        app.pane.update(PaneState(top=3, left=10, visible=False))
        assert control() == ""  # hidden: nothing drawn (tmux shows another window)
        app.pane.update(PaneState(top=3, left=10, visible=True))
        assert "P0;1;0q" in control()  # shown again: drawn again, nothing to clear
        first = view.encoded
        written: list[str] = []
        render = view.render_lines

        def recorded(crop: Region) -> Any:
            lines = render(crop)
            written.append("".join(s.text for line in lines for s in line if s.control))
            return lines

        view.render_lines = recorded  # type: ignore[method-assign]
        await pilot.press("l")
        await until(pilot, lambda: view.encoded is not None and view.encoded is not first
                    and any("P0;1;0q" in w for w in written))
        # Everything written up to the new picture: the old rectangle is cleared first (in
        # the same frame, or in an earlier one while the next picture was still encoding).
        upto = "".join(written[:next(i for i, w in enumerate(written) if "P0;1;0q" in w) + 1])
        assert "\x1b\x1b[48;2;" in upto
        assert upto.index("\x1b\x1b[48;2;") < upto.index("P0;1;0q")  # cleared, then drawn
