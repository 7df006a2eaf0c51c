"""Live updates and resilience: the open folder follows the disk, the app survives the daemon
going away and coming back, and a daemon that is not there is reported clearly."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

from lbtest import DaemonProcess
from test_tui_fixtures import SIZE, acall, add_root, make_app, settled, until

from lightbox.common.client import Client
from lightbox.daemon.media import samples
from lightbox.tui import link as linkmod
from lightbox.tui.link import Link
from lightbox.tui.messages import DaemonEvent, Resync
from lightbox.tui.screens.browser import BrowserScreen
from lightbox.tui.widgets.status_line import StatusLine

LIVE = {"library": {"reconcile_interval": 0, "debounce": 0.3}}


def small_library(root: Path, n: int = 24) -> Path:
    paths = samples.make_demo_library(root, n, seed=11, megapixels=0.2, processes=1)
    return paths[0].parent


async def test_a_copied_file_appears_and_a_deleted_one_goes(make_daemon: Any,
                                                           tmp_path: Path) -> None:
    folder = small_library(tmp_path / "lib")
    d: DaemonProcess = make_daemon(config=LIVE)
    await asyncio.to_thread(add_root, d, tmp_path / "lib")
    app = make_app(d, start=str(folder))
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        screen = app.screen
        assert isinstance(screen, BrowserScreen)
        before = [p["name"] for p in screen.seq.items]
        extra = tmp_path / "extra.jpg"
        samples.save_jpeg(samples.make_photo(320, 240, 99), extra)
        shutil.copy(extra, folder / "ZZ_new.jpg")
        await until(pilot, lambda: "ZZ_new.jpg" in [p["name"] for p in screen.seq.items],
                    timeout=15, what="the new photo in the open folder")
        await settled(pilot)
        cells = [c for c in screen.grid._cells if c.index is not None]
        assert len(cells) == len(before) + 1
        # a thumbnail arrives for it too
        await until(pilot, lambda: all(c.view.encoded is not None for c in cells), timeout=15)
        (folder / before[0]).unlink()
        await until(pilot, lambda: before[0] not in [p["name"] for p in screen.seq.items],
                    timeout=15, what="the deleted photo to go")
        (folder / before[1]).rename(folder / "renamed.jpg")
        await until(pilot, lambda: "renamed.jpg" in [p["name"] for p in screen.seq.items]
                    and before[1] not in [p["name"] for p in screen.seq.items],
                    timeout=15, what="the rename")


async def test_daemon_restart_is_survived_in_place(make_daemon: Any, tmp_path: Path) -> None:
    folder = small_library(tmp_path / "lib")
    d: DaemonProcess = make_daemon(config=LIVE)
    await asyncio.to_thread(add_root, d, tmp_path / "lib")
    app = make_app(d, start=str(folder))
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        screen = app.screen
        assert isinstance(screen, BrowserScreen)
        await pilot.press("l", "l")
        photo_id = screen.seq[2]["id"]
        line = screen.query_one(StatusLine)
        boot = app.link.boot
        await asyncio.to_thread(d.stop)
        await until(pilot, lambda: line.state == linkmod.DOWN, timeout=10, what="down")
        assert "lightbox start" in line.detail
        # still usable while the daemon is away: keys work, nothing hangs
        await pilot.press("l", "h")
        await asyncio.to_thread(d.start)
        await until(pilot, lambda: line.state == linkmod.CONNECTED, timeout=15, what="back")
        assert app.link.boot != boot and app.link.restarts >= 1
        await settled(pilot)
        assert screen.folder["path"] == str(folder)
        assert screen.seq[screen.grid.cursor]["id"] == photo_id
        # and it follows the new daemon's events
        samples.save_jpeg(samples.make_photo(320, 240, 5), folder / "after_restart.jpg")
        await until(pilot, lambda: "after_restart.jpg" in [p["name"] for p in screen.seq.items],
                    timeout=15, what="events from the restarted daemon")


async def test_daemon_not_running_says_how_to_start_it(tmp_path: Path) -> None:
    d = DaemonProcess(tmp_path)  # never started
    app = make_app(d)
    async with app.run_test(size=SIZE) as pilot:
        line = app.screen.query_one(StatusLine)
        await until(pilot, lambda: line.state == linkmod.DOWN, what="down")
        assert "not running" in line.detail and "lightbox start" in line.detail
        screen = app.screen
        assert isinstance(screen, BrowserScreen)
        await until(pilot, lambda: "lightbox start" in screen.empty_text,
                    what="the empty-state message")
        assert screen.query_one("#empty").display
        await pilot.press("J")  # other screens say the same, and do not hang
        await pilot.pause(0.3)
        await pilot.press("escape", "q")


class Collect:
    """Stands in for a screen: keeps what the link posts."""

    def __init__(self) -> None:
        self.messages: list[Any] = []

    def post_message(self, message: Any) -> bool:
        self.messages.append(message)
        return True


async def test_link_replays_missed_events_in_order(make_daemon: Any, tmp_path: Path) -> None:
    d: DaemonProcess = make_daemon(config=LIVE)
    client = Client(d.endpoint, timeout=5)
    link = Link(client, heartbeat=0.3)
    sink = Collect()
    link.listen(sink)  # type: ignore[arg-type]
    task = asyncio.get_running_loop().create_task(link.run())
    try:
        for _ in range(100):
            if link.state == linkmod.CONNECTED:
                break
            await asyncio.sleep(0.05)
        assert link.state == linkmod.CONNECTED
        (tmp_path / "lib").mkdir()
        await acall(d, "roots.add", {"path": str(tmp_path / "lib"), "scan": True})
        for _ in range(100):
            if any(isinstance(m, DaemonEvent) and m.topic == "job" for m in sink.messages):
                break
            await asyncio.sleep(0.05)
        seqs = [m.event["seq"] for m in sink.messages if isinstance(m, DaemonEvent)]
        assert seqs and seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        # Pretend we missed everything: the heartbeat notices and replays it, in order.
        sink.messages.clear()
        link.seq = 0
        for _ in range(100):
            if len([m for m in sink.messages if isinstance(m, DaemonEvent)]) >= len(seqs):
                break
            await asyncio.sleep(0.05)
        replayed = [m.event["seq"] for m in sink.messages if isinstance(m, DaemonEvent)]
        assert replayed[:len(seqs)] == list(range(1, len(seqs) + 1)) or \
            replayed == sorted(replayed)
        # A different boot id means a restart: listeners are told to reload.
        sink.messages.clear()
        link.boot = "an-earlier-run"
        for _ in range(100):
            if any(isinstance(m, Resync) for m in sink.messages):
                break
            await asyncio.sleep(0.05)
        assert any(isinstance(m, Resync) and m.restarted for m in sink.messages)
    finally:
        task.cancel()
        await link.close()
