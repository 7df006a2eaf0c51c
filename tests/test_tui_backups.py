"""The TUI's backups screen against a real daemon: targets with their state and next runs,
a backup started from the screen moving its card, the history filling in."""

from __future__ import annotations

import html
import io
import re
from pathlib import Path
from typing import Any

import pytest
from lbtest import DaemonProcess
from rich.console import Console
from test_tui_fixtures import SIZE, acall, make_app, until

from lightbox.daemon.media.samples import make_photo, save_jpeg
from lightbox.tui.screens.backups import BackupsScreen, TargetCard, run_line
from lightbox.tui.screens.browser import BrowserScreen


def shown(card: TargetCard) -> str:
    console = Console(width=120, record=True, file=io.StringIO())
    console.print(card.render())
    return console.export_text()


def screen_text(app: Any) -> str:
    """What the screen shows, as text: the screenshot's SVG without its tags."""
    svg = re.sub(r"<[^>]*>", " ", app.export_screenshot())
    return html.unescape(svg).replace("\xa0", " ")


@pytest.fixture
def two_targets(make_daemon: Any, tmp_path: Path) -> DaemonProcess:
    """A root of four photos, a target "nas" and a target "gone" whose disk is absent."""
    d: DaemonProcess = make_daemon(config={"library": {"watch": False,
                                                       "reconcile_interval": 0}})
    root = tmp_path / "photos"
    for i in range(4):
        save_jpeg(make_photo(64, 64, seed=i), root / f"img_{i}.jpg")
    out = d.call("roots.add", {"path": str(root), "name": "photos"})
    assert d.call("jobs.wait", {"id": out["job"], "timeout": 120}, timeout=130)["state"] \
        == "succeeded"
    (tmp_path / "nas").mkdir()
    (tmp_path / "gone").mkdir()
    d.call("backups.add", {"name": "nas", "path": str(tmp_path / "nas"),
                           "schedule": "30 2 * * *", "timezone": "UTC"})
    d.call("backups.add", {"name": "gone", "path": str(tmp_path / "gone"), "schedule": None})
    (tmp_path / "gone" / ".lightbox-target").unlink()  # as if the disk were not mounted
    return d


async def test_backups_screen_shows_targets_and_runs_a_backup(two_targets: Any) -> None:
    app = make_app(two_targets)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, BrowserScreen), timeout=30)
        await pilot.press("B")
        screen = await until(pilot, lambda: isinstance(app.screen, BackupsScreen)
                             and app.screen, what="the backups screen")
        await until(pilot, lambda: len(screen.cards) == 2, timeout=30, what="two targets")
        nas, gone = screen.cards["nas"], screen.cards["gone"]
        assert nas.status["not_backed_up"] == 4 and nas.status["online"]
        assert not gone.status["online"] and "marker" in gone.status["problem"]
        assert "4 photos not backed up yet" in shown(nas)
        assert "unavailable" in shown(gone) and "marker" in shown(gone)
        assert nas.target["next_runs"] and nas.target["next_runs"][0].endswith("02:30:00+00:00")
        await pilot.press("r")  # the first card is selected: nas
        await until(pilot, lambda: screen.cards.get("nas") is not None
                    and (screen.cards["nas"].status.get("last_run") or {}).get("state")
                    == "succeeded", timeout=60, what="the backup to finish on the screen")
        card: TargetCard = screen.cards["nas"]
        assert card.status["not_backed_up"] == 0 and card.status["files"] == 4
        assert "0 photos not backed up yet" in shown(card) and "4 files" in shown(card)
        await until(pilot, lambda: re.search(r"nas\s+backup\s+succeeded", screen_text(app)),
                    what="the history row")
        await pilot.press("j", "r")  # gone: the run fails, and the card says why
        await until(pilot, lambda: (screen.cards["gone"].status.get("last_run") or {})
                    .get("state") == "failed", timeout=60, what="the failed run")
        await pilot.press("escape")
        assert isinstance(app.screen, BrowserScreen)


async def test_targets_are_added_and_edited_from_forms(two_targets: Any,
                                                       tmp_path: Path) -> None:
    """ctrl+k on the settings screen adds a target: its cron expression is read back by
    the daemon as it is typed (a bad one named, a good one explained with its next five
    runs in the target's time zone); e on the backups screen edits one (the schedule set
    to 'none': only when asked)."""
    from lightbox.tui.screens.settings import SettingsScreen
    from lightbox.tui.screens.target_form import TargetForm, input_id

    d = two_targets
    (tmp_path / "usb").mkdir()
    app = make_app(d)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(app.screen, BrowserScreen), timeout=30)
        await pilot.press("comma")
        settings = await until(pilot, lambda: isinstance(app.screen, SettingsScreen)
                               and app.screen, timeout=30, what="settings")
        await pilot.press("ctrl+k")
        form = await until(pilot, lambda: isinstance(app.screen, TargetForm) and app.screen,
                           what="the target form")

        def put(param: str, value: str) -> None:
            form.query_one("#" + input_id(param)).value = value

        put("name", "usb")
        put("path", str(tmp_path / "usb"))
        put("timezone", "Europe/Berlin")
        put("schedule", "61 * * * *")
        await until(pilot, lambda: form.schedule_text.startswith("not a schedule"),
                    timeout=30, what="the bad cron named")
        put("schedule", "30 2 * * *")
        await until(pilot, lambda: "next runs" in form.schedule_text, timeout=30,
                    what="the next runs")
        runs = form.schedule_text.split("next runs:")[1].split()
        assert len(runs) == 5 and all("T02:30:00" in r for r in runs), form.schedule_text
        assert {r[-6:] for r in runs} <= {"+01:00", "+02:00"}  # Berlin, summer or winter
        await pilot.press("ctrl+s")
        await until(pilot, lambda: app.screen is settings, what="the form to close")
        listed = {t["name"]: t for t in (await acall(d, "backups.list"))["targets"]}
        assert listed["usb"]["schedule"] == "30 2 * * *"
        assert listed["usb"]["timezone"] == "Europe/Berlin"
        assert listed["usb"]["path"] == str(tmp_path / "usb")
        # The settings screen lists the targets (a collection of settings.schema) with
        # their schedules and next runs.
        await until(pilot, lambda: "usb" in settings.targets_text, what="usb listed")
        assert "At 02:30" in settings.targets_text and "next:" in settings.targets_text

        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, BrowserScreen), what="browser")
        await pilot.press("B")
        screen = await until(pilot, lambda: isinstance(app.screen, BackupsScreen)
                             and app.screen, what="the backups screen")
        await until(pilot, lambda: len(screen.cards) == 3, timeout=30, what="three targets")
        await pilot.press("e")  # the first card: nas
        edit = await until(pilot, lambda: isinstance(app.screen, TargetForm) and app.screen,
                           what="the edit form")
        assert edit.target is not None and edit.target["name"] == "nas"
        assert edit.query_one("#" + input_id("path")).disabled
        edit.query_one("#" + input_id("schedule")).value = "none"
        await until(pilot, lambda: "only when asked" in edit.schedule_text, what="no runs")
        await pilot.press("ctrl+s")
        await until(pilot, lambda: app.screen is screen, what="the edit form to close")
        nas = {t["name"]: t for t in (await acall(d, "backups.list"))["targets"]}["nas"]
        assert nas["schedule"] is None and nas["next_runs"] == []


def test_a_run_that_left_files_undone_does_not_look_clean() -> None:
    run = {"state": "succeeded", "finished_at": "2026-12-02T03:09:51.000Z", "files": 1,
           "bytes": 0, "errors": 2,
           "result": {"failed": [{"path": "/p/a.jpg", "error": "/t/p is a symbolic link"}],
                      "damaged": [{"path": "/p/b.jpg", "error": "changed at the source"}]}}
    text = run_line(run).plain
    assert "1 file  0 B" in text and "2 errors: /t/p is a symbolic link" in text
    clean = run_line({**run, "errors": 0, "files": 3}).plain
    assert "3 files" in clean and "error" not in clean
