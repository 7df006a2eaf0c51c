"""Snapshots of every screen (pytest-textual-snapshot), with stable data.

The library is generated at a fixed path with fixed file times (``test_tui_fixtures``), the
jobs are inserted into a catalog with fixed timestamps before its daemon starts, local time
is UTC, images are half-cells at a fixed cell size, and each snapshot waits until every
visible image is drawn. Update after a deliberate change with
``pytest tests/test_tui_snapshots.py --snapshot-update`` and look at the report.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from lbtest import DaemonProcess
from test_tui_fixtures import (
    SIZE,
    TRIP,
    folder_path,
    hold_fixed_paths,
    make_app,
    settled,
    shared_library,
    until,
    utc,
)
from textual.pilot import Pilot
from textual.widgets import Input

from lightbox.tui.screens.duplicates import DuplicatesScreen
from lightbox.tui.screens.jobs import JobsScreen
from lightbox.tui.screens.preview import PreviewScreen
from lightbox.tui.widgets.metadata import MetadataPanel

JOBS_DIR = Path("/tmp/lb-tui-jobs")  # fixed: the socket path appears in no snapshot, but
NO_DAEMON = Path("/tmp/lb-tui-nodaemon")  # this one's does ("no socket at ...")
T0 = dt.datetime(2025, 3, 1, 9, 30, 0)


@pytest.fixture
def library() -> DaemonProcess:
    """The shared read-only library and its daemon (built once per test process)."""
    return shared_library()


@pytest.fixture(autouse=True)
def _utc() -> Iterator[None]:
    with utc():
        yield


async def _jobs_catalog(data_dir: Path) -> None:
    from lightbox.daemon.catalog import tables
    from lightbox.daemon.catalog.database import Database

    db = Database(f"sqlite+aiosqlite:///{data_dir}/catalog.db")
    await db.start()
    s = dt.timedelta(seconds=1)
    rows = [
        dict(kind="scan", state="succeeded", params={"root": 1}, processed=1240, total=1240,
             bytes=0, errors=0, attempts=1, created_at=T0, started_at=T0 + s,
             finished_at=T0 + 95 * s,
             result={"roots": {"photos": {"files": 1240, "new": 1236, "changed": 4}}}),
        dict(kind="scan", state="failed", params={"path": "/mnt/nas/photos"}, processed=310,
             total=None, errors=3, attempts=3, created_at=T0 + 200 * s,
             started_at=T0 + 201 * s, finished_at=T0 + 230 * s,
             error="/mnt/nas/photos: input/output error (the share went away)"),
        dict(kind="cleanup", state="succeeded", params={}, processed=52, total=52,
             attempts=1, created_at=T0 + 400 * s, started_at=T0 + 400 * s,
             finished_at=T0 + 402 * s, result={"removed": 52, "bytes": 1843200}),
        dict(kind="scan", state="cancelled", params={"root": 1, "full": True}, processed=800,
             total=5000, attempts=1, created_at=T0 + 600 * s, started_at=T0 + 601 * s,
             finished_at=T0 + 640 * s),
    ]
    defaults = {"total": None, "bytes": 0, "errors": 0, "error": None, "result": None}
    async with db.engine.begin() as conn:
        await conn.execute(tables.jobs.insert(), [{**defaults, **r} for r in rows])
    await db.stop()


@functools.cache
def jobs_daemon() -> DaemonProcess:
    import atexit

    hold_fixed_paths()
    shutil.rmtree(JOBS_DIR, ignore_errors=True)
    JOBS_DIR.mkdir()
    asyncio.run(_jobs_catalog(JOBS_DIR))
    d = DaemonProcess(JOBS_DIR, config={"library": {"reconcile_interval": 0}})
    d.start()

    def stop() -> None:
        d.close()
        shutil.rmtree(JOBS_DIR, ignore_errors=True)

    atexit.register(stop)
    return d


def steady_cursors(app: Any) -> None:
    """Stop every input's cursor from blinking, so the picture does not depend on timing.

    An input's cursor toggles every 0.5 s, also headless: a snapshot taken more than 0.5 s
    after the last key (a loaded CI machine) showed the cursor hidden and failed. With
    blinking off, the next key press shows the cursor and it stays shown.
    """
    for field in app.screen.query(Input):
        field.cursor_blink = False


def snap(snap_compare: Any, app: Any, *keys: str, wait: Any = None) -> None:
    async def run_before(pilot: Pilot[Any]) -> None:
        await settled(pilot)
        for key in keys:
            steady_cursors(pilot.app)
            await pilot.press(key)
            await pilot.pause(0.05)
        if wait is not None:
            await until(pilot, lambda: wait(pilot.app), timeout=15)
        await settled(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)


def test_browser_grid(snap_compare: Any, library: Any) -> None:
    snap(snap_compare, make_app(library, start=folder_path(*TRIP)), "l")


def test_browser_list_and_metadata(snap_compare: Any, library: Any) -> None:
    def loaded(app: Any) -> bool:
        panel = app.screen.query_one(MetadataPanel)
        return bool(panel.photo and panel.photo.get("sha256"))

    snap(snap_compare, make_app(library, start=folder_path(*TRIP)), "v", "j", "j", "i",
         wait=loaded)


def test_browser_tree_expanded(snap_compare: Any, library: Any) -> None:
    def expanded(app: Any) -> bool:
        return len(app.screen.ftree.root.children[0].children) == 4

    snap(snap_compare, make_app(library, start=folder_path(*TRIP)), "tab", wait=expanded)


def test_search_bar(snap_compare: Any, library: Any) -> None:
    snap(snap_compare, make_app(library, start=folder_path(*TRIP)), "slash", *"IMG_10")


def test_search_results(snap_compare: Any, library: Any) -> None:
    def searched(app: Any) -> bool:
        seq = app.screen.seq
        return seq.query.filters is not None and seq.complete

    snap(snap_compare, make_app(library, start=folder_path(*TRIP), view="list"),
         "slash", *"lake", "enter", wait=searched)


def test_preview_with_info(snap_compare: Any, library: Any) -> None:
    def shown(app: Any) -> bool:
        screen = app.screen
        return (isinstance(screen, PreviewScreen) and screen.picture.encoded is not None
                and screen.query_one(MetadataPanel).photo is not None
                and screen.query_one(MetadataPanel).photo.get("sha256"))

    snap(snap_compare, make_app(library, start=folder_path(*TRIP)), "l", "enter", "i",
         wait=shown)


def test_browser_grid_symbols(snap_compare: Any, library: Any) -> None:
    """The symbols mode: block shapes and two colours per cell (issue 12)."""
    snap(snap_compare, make_app(library, graphics="symbols", start=folder_path(*TRIP)), "l")


def test_preview_symbols(snap_compare: Any, library: Any) -> None:
    """A symbols preview fills its box, made from the preview thumbnail."""
    def shown(app: Any) -> bool:
        screen = app.screen
        return isinstance(screen, PreviewScreen) and screen.picture.encoded is not None

    snap(snap_compare, make_app(library, graphics="symbols", start=folder_path(*TRIP)), "l",
         "enter", wait=shown)


def test_duplicates(snap_compare: Any, library: Any) -> None:
    def shown(app: Any) -> bool:
        return isinstance(app.screen, DuplicatesScreen) and bool(app.screen.groups)

    snap(snap_compare, make_app(library, start=folder_path(*TRIP)), "D", wait=shown)


def test_help(snap_compare: Any, library: Any) -> None:
    snap(snap_compare, make_app(library, start=folder_path(*TRIP)), "question_mark")


def test_jobs(snap_compare: Any) -> None:
    def shown(app: Any) -> bool:
        return isinstance(app.screen, JobsScreen) and len(app.screen.rows) == 4

    snap(snap_compare, make_app(jobs_daemon()), "J", "j", wait=shown)


def test_empty_library(snap_compare: Any) -> None:
    def shown(app: Any) -> bool:
        return "library is empty" in app.screen.empty_text

    snap(snap_compare, make_app(jobs_daemon()), wait=shown)


def test_not_connected(snap_compare: Any) -> None:
    def shown(app: Any) -> bool:
        return "lightbox start" in app.screen.empty_text

    async def run_before(pilot: Pilot[Any]) -> None:
        await until(pilot, lambda: shown(pilot.app), timeout=10)
        await pilot.pause(0.3)

    app = make_app(DaemonProcess(NO_DAEMON))
    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
