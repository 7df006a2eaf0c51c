"""The TUI's first-hour fixes and the actions a yazi user reaches for, under the pilot against
a real daemon: a very large folder (12,000 photos) opened and scrolled without loading every
row; marks and ranges; paths and ids to the clipboard (OSC 52); opening an original with a
configured command; duplicates to the trash with a confirmation; the palette and help;
indexing that no job stands for, shown in the status line and the jobs screen."""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from catalog_fixtures import CatalogBuilder, synth
from lbtest import DaemonProcess, short_tmpdir
from test_tui_fixtures import (
    SIZE,
    TRIP,
    acall,
    add_root,
    folder_path,
    library,
    make_app,
    quiet_config,
    settled,
    until,
    wait_idle,
)
from textual.widgets import Input

from lightbox.daemon.media import samples
from lightbox.tui.model import FIRST_PAGE, ROWS_BATCH
from lightbox.tui.screens.browser import BrowserScreen
from lightbox.tui.screens.duplicates import ConfirmTrash, DupeCard, DuplicatesScreen
from lightbox.tui.screens.help import HelpScreen
from lightbox.tui.screens.jobs import IndexingRow, JobsScreen
from lightbox.tui.settings import Place
from lightbox.tui.widgets.status_line import StatusLine

__all__ = ["library"]
BIG = 12_000
BIG_ROOT = "/nonexistent/lb-tui-big"


async def _build_big(data: Path) -> dict[str, int]:
    b = await CatalogBuilder.open(f"sqlite+aiosqlite:///{data}/catalog.db")
    try:
        src = await b.source("big", BIG_ROOT)
        fid = await b.folder(src, "all")
        ids = await b.photos(fid, [synth(i, name=f"P{i}.JPG", width=4000, height=3000,
                                         orientation=6 if i % 2 else 1)
                                   for i in range(BIG)])
        await b.finish()
        return {"folder": fid, "first": ids[0], "last": ids[-1]}
    finally:
        await b.close()


@pytest.fixture(scope="module")
def big() -> Iterator[tuple[DaemonProcess, dict[str, int]]]:
    data = short_tmpdir("lbtbig")
    where = asyncio.run(_build_big(data))
    d = DaemonProcess(data, quiet_config())
    d.start()
    yield d, where
    d.close()
    shutil.rmtree(data, ignore_errors=True)


async def test_a_huge_folder_opens_without_loading_every_row(big: Any) -> None:
    """12,000 photos: the first reply paints, the order follows in id-only pages, rows come
    in batches for what is on screen (G jumps to the end and its rows arrive), and far rows
    are dropped; a saved place opens at its photo, in the middle, at once."""
    d, where = big
    app = make_app(d, start=BIG_ROOT + "/all")
    async with app.run_test(size=SIZE) as pilot:
        screen: Any = await until(pilot, lambda: isinstance(app.screen, BrowserScreen)
                                  and app.screen)
        # (screen.seq each time: a reload, for the offline root's event, makes a new one)
        await until(pilot, lambda: screen.seq is not None and len(screen.seq) == BIG,
                    timeout=20, what="the folder's length")
        await until(pilot, lambda: screen.seq.complete, timeout=30, what="the whole order")
        assert len(screen.seq.rows) <= FIRST_PAGE + 2 * ROWS_BATCH  # not 12,000 dicts
        await pilot.press("G")
        await until(pilot, lambda: screen.cursor == BIG - 1 and screen.seq.loaded(BIG - 1),
                    timeout=20, what="the last row")
        last = screen.seq.get(BIG - 1)
        desc = await acall(d, "folders.list", {"folder": where["folder"], "order": "desc",
                                               "limit": 1, "fields": ["name"]})
        assert last is not None and last["id"] == desc["photos"][0]["id"]
        assert len(screen.seq.rows) <= FIRST_PAGE + 3 * ROWS_BATCH
        assert screen.grid._cells[0].index is not None
        # A reload (a root's online/offline event, a catalog change) while the cursor's
        # row is not here, as right after a jump: the cursor stays on its photo (it went
        # back to the top, which made this test time out under load in CI).
        screen.seq.rows.pop(last["id"])
        screen.reload_view()
        await until(pilot, lambda: screen.seq.loaded(BIG - 1) and screen.cursor == BIG - 1
                    and screen.seq.id_at(BIG - 1) == last["id"], timeout=20,
                    what="the cursor on the last photo after the reload")
    # Reopened at a photo in the middle: the cursor is on it with the first reply.
    middle = where["first"] + BIG // 2
    app = make_app(d)
    app.place = Place(folder_id=where["folder"], folder_path=BIG_ROOT + "/all",
                      photo_id=middle)
    async with app.run_test(size=SIZE) as pilot:
        screen = await until(pilot, lambda: isinstance(app.screen, BrowserScreen)
                             and app.screen)
        await until(pilot, lambda: screen.current_photo() is not None
                    and screen.current_photo()["id"] == middle, timeout=20,
                    what="the cursor on the saved photo")
        assert screen.cursor == screen.seq.index_of(middle) > 0


async def test_marks_ranges_and_the_clipboard(library: Any) -> None:
    app = make_app(library, start=folder_path(*TRIP), view="list")
    copied: list[str] = []
    app.copy_to_clipboard = copied.append  # type: ignore[method-assign]
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        screen: Any = app.screen
        first = screen.seq.get(0)
        await pilot.press("space")  # marks the first, moves to the second
        assert set(screen.marks) == {first["id"]} and screen.cursor == 1
        await pilot.press("j", "j", "V")  # a range: from the first to the fourth
        ids = [screen.seq.get(i)["id"] for i in range(4)]
        assert set(screen.marks) == set(ids)
        assert "4 marked" in screen.query_one(StatusLine).info
        await pilot.press("y")
        assert copied[-1].split("\n") == [folder_path(*TRIP, screen.seq.get(i)["name"])
                                          for i in range(4)]
        await pilot.press("Y")
        assert copied[-1].split("\n") == [str(i) for i in ids]
        await pilot.press("U")
        assert screen.marks == {}
        await pilot.press("y")  # nothing marked: the photo under the cursor
        assert copied[-1] == folder_path(*TRIP, screen.current_photo()["name"])
        assert all(not view.marked for view in (screen.grid, screen.table))


async def test_open_the_original_with_the_configured_command(library: Any,
                                                             tmp_path: Path) -> None:
    out = tmp_path / "opened.jpg"
    app = make_app(library, start=folder_path(*TRIP), open_command=f"cp {{}} {out}")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path / "cache")
    try:
        async with app.run_test(size=SIZE) as pilot:
            await settled(pilot)
            screen: Any = app.screen
            photo = screen.current_photo()
            await pilot.press("o")
            await until(pilot, lambda: out.exists() and out.stat().st_size == photo["size"],
                        timeout=60, what="the command to get the original")
            original = Path(folder_path(*TRIP, photo["name"]))
            assert out.read_bytes() == original.read_bytes()  # noqa: ASYNC240
    finally:
        del os.environ["XDG_CACHE_HOME"]


async def test_palette_help_and_a_narrow_browser(library: Any) -> None:
    app = make_app(library, start=folder_path(*TRIP))
    async with app.run_test(size=(40, 30)) as pilot:
        await settled(pilot)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert titles.count("Quit") == 1
        assert "Close search" not in titles  # the search bar is closed
        assert not any("delete" in t.lower() for t in titles)  # Textual's Input editing
        screen: Any = app.screen
        assert screen.ftree.size.width <= 14  # the photos keep most of 40 columns
        await pilot.press("t")
        assert not screen.ftree.display
        await pilot.press("slash")
        await until(pilot, lambda: isinstance(app.focused, Input))
        assert "Close search" in [c.title for c in app.get_system_commands(app.screen)]
        await pilot.press("escape", "escape")
        await pilot.press("question_mark")
        help_: Any = await until(pilot, lambda: isinstance(app.screen, HelpScreen)
                                 and app.screen)
        box = help_.query_one("#help-box")
        await pilot.press("j", "j")
        await until(pilot, lambda: box.scroll_y == 2)
        await pilot.press("G")
        await until(pilot, lambda: box.scroll_y == box.max_scroll_y > 2)
        await pilot.press("g")
        await until(pilot, lambda: box.scroll_y == 0)


async def test_duplicates_go_to_the_trash_after_a_confirmation(make_daemon: Any,
                                                                tmp_path: Path) -> None:
    """d marks, x names what goes, y sends it: the file is in the freedesktop trash (with
    its .trashinfo), gone from its folder and from the catalog; the last copy cannot go."""
    root = tmp_path / "photos"
    paths = samples.make_demo_library(root, 6, seed=5, megapixels=0.2, processes=1)
    copy = next(p for p in paths if p.parent.name == "Unsorted")
    (tmp_path / "home" / "share").mkdir(parents=True)
    d = make_daemon(env={"HOME": str(tmp_path / "home"),
                         "XDG_DATA_HOME": str(tmp_path / "home" / "share")})
    await asyncio.to_thread(add_root, d, root)  # (sync calls: their own event loop)
    await asyncio.to_thread(wait_idle, d)
    app = make_app(d)
    async with app.run_test(size=(160, 45)) as pilot:
        await settled(pilot)
        await pilot.press("D")
        dupes: Any = await until(pilot, lambda: isinstance(app.screen, DuplicatesScreen)
                                 and app.screen)
        await until(pilot, lambda: dupes.groups, what="the exact group")
        photos = dupes.groups[0]["photos"]
        at = next(i for i, p in enumerate(photos) if p["path"] == str(copy))
        await pilot.press(*(["l"] * at), "d")
        assert set(dupes.to_trash) == {photos[at]["id"]}
        await pilot.press("l" if at == 0 else "h", "d")  # the other one: the last copy
        assert "last copy" in dupes.query_one(StatusLine).message
        assert len(dupes.to_trash) == 1
        cards = [c for c in dupes.query(DupeCard) if c.photo is not None]
        assert any(c.has_class("-trash") for c in cards)
        await pilot.press("x")
        confirm: Any = await until(pilot, lambda: isinstance(app.screen, ConfirmTrash)
                                   and app.screen)
        assert str(copy) in str(confirm.query_one("Static").render())
        await pilot.press("n")  # kept
        await until(pilot, lambda: app.screen is dupes)
        assert copy.exists()
        await pilot.press("x")
        await until(pilot, lambda: isinstance(app.screen, ConfirmTrash))
        await pilot.press("y")
        await until(pilot, lambda: not copy.exists(), timeout=20,
                    what=lambda: f"the file to go ({dupes.query_one(StatusLine).message})")
        await until(pilot, lambda: "moved 1 to the trash" in
                    dupes.query_one(StatusLine).message, what="the answer")
    trash = tmp_path / "home" / "share" / "Trash"
    assert (trash / "files" / copy.name).read_bytes() == paths[1].read_bytes()
    assert (trash / "info" / f"{copy.name}.trashinfo").exists()
    deadline = time.monotonic() + 30
    while (await acall(d, "photos.duplicates", {"kind": "exact"}))["groups"]:
        assert time.monotonic() < deadline, "the catalog still has the copy"
        await asyncio.sleep(0.2)
    assert (await acall(d, "photos.get", {"path": str(paths[1])}))["status"] == "ok"


async def test_indexing_without_a_job_shows_in_the_status_line(make_daemon: Any,
                                                                tmp_path: Path) -> None:
    """Photos the watcher finds are indexed with no job: the status line says "indexing N"
    and the jobs screen shows the indexer's row while it works, then neither."""
    root = tmp_path / "photos"
    root.mkdir()
    # Enough photos that one worker needs several seconds: on a quiet machine 24 were read
    # within the indexer's one report a second, and no client ever saw them pending.
    samples.make_demo_library(tmp_path / "incoming", 160, seed=9, megapixels=1.0, processes=2)
    d = make_daemon(config={"workers": {"processes": 1}})
    await asyncio.to_thread(add_root, d, root)
    app = make_app(d)
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        await pilot.press("J")
        jobs: Any = await until(pilot, lambda: isinstance(app.screen, JobsScreen)
                                and app.screen)
        row = jobs.query_one(IndexingRow)
        line = jobs.query_one(StatusLine)
        (tmp_path / "incoming").rename(root / "new")  # one move: the watcher's, no job
        await until(pilot, lambda: "indexing" in line.indexing and row.pending > 0,
                    timeout=30, what=lambda: f"indexing shown (line {line.indexing!r}, "
                    f"pending {row.pending})")
        assert row.has_class("-active")
        await until(pilot, lambda: not line.indexing and not row.has_class("-active"),
                    timeout=90, what="indexing done")
        assert row.done >= 1


def test_each_daemon_has_its_own_remembered_place(tmp_path: Path) -> None:
    """``make demo`` beside ``make run``: each reopens where it was, not at a folder id of
    the other; and ``open_command`` survives a save."""
    from lightbox.tui.settings import Settings, state_file

    env = {"XDG_STATE_HOME": str(tmp_path)}
    a = state_file(env, endpoint="ipc:///run/user/0/lightbox/control.sock")
    b = state_file(env, endpoint="ipc:///home/me/.local/share/lightbox-demo/run/control.sock")
    assert a != b and a.parent == b.parent == tmp_path / "lightbox"
    Place(folder_path="/photos/2023", photo_id=7).save(a)
    assert Place.load(b).photo_id is None and Place.load(a).photo_id == 7
    s = Settings(path=tmp_path / "tui.toml", open_command='feh --scale-down "{}"')
    s.save()
    assert Settings.load(tmp_path / "tui.toml").open_command == 'feh --scale-down "{}"'
