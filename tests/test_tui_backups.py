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
from test_tui_fixtures import SIZE, make_app, until

from lightbox.daemon.media.samples import make_photo, save_jpeg
from lightbox.tui.screens.backups import BackupsScreen, TargetCard
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
