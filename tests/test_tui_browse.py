"""The browser driven with the keyboard, against a real daemon and a generated library."""

from __future__ import annotations

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

from lightbox.tui.screens.browser import BrowserScreen
from lightbox.tui.screens.preview import PreviewScreen
from lightbox.tui.settings import Place
from lightbox.tui.widgets.breadcrumb import Breadcrumb
from lightbox.tui.widgets.metadata import MetadataPanel, rows
from lightbox.tui.widgets.photo_grid import PhotoGrid
from lightbox.tui.widgets.photo_table import PhotoTable


@pytest.fixture
def library() -> DaemonProcess:
    """The shared read-only library and its daemon (built once per test process)."""
    return shared_library()


async def listing(d: Any, path: str, **params: Any) -> list[str]:
    page = await acall(d, "folders.list", {"path": path, "limit": 2000, "fields": ["name"],
                                           **params})
    return [p["name"] for p in page["photos"]]


async def test_tree_navigation_opens_a_folder(library: Any) -> None:
    app = make_app(library)
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        screen = app.screen
        assert isinstance(screen, BrowserScreen)
        tree = screen.ftree
        # The tree lists the root; the library's only root opens first (no photos directly).
        assert [n.data["name"] for n in tree.root.children] == ["photos"]
        # Its folder has no photos of its own, so the keys start in the tree, which shows
        # what the root holds.
        assert tree.has_focus
        await until(pilot, lambda: len(tree.root.children[0].children) == 4, what="children")
        assert tree.root.children[0].is_expanded
        await pilot.press("j", "l")  # 2023, expand
        await until(pilot, lambda: tree.cursor_node.children, what="2023's children")
        await pilot.press("j", "enter")  # the first trip
        await until(pilot, lambda: screen.folder and screen.folder["name"] == TRIP[1],
                    what="the trip to open")
        await settled(pilot)
        assert screen.grid.has_focus
        assert grid_names(app) == await listing(library, folder_path(*TRIP))
        crumbs = app.screen.query_one(Breadcrumb)
        assert crumbs.parts == ["photos", "2023", TRIP[1]]


def record_calls(app: Any) -> list[tuple[str, dict[str, Any]]]:
    """The calls the app makes to the daemon, in order (the real link, only listened to)."""
    calls: list[tuple[str, dict[str, Any]]] = []
    real = app.link.call

    async def call(method: str, params: Any = None, **kwargs: Any) -> Any:
        calls.append((method, dict(params or {})))
        return await real(method, params, **kwargs)

    app.link.call = call
    return calls


async def test_the_saved_folder_opens_with_one_call_and_the_tree_follows(
        library: Any) -> None:
    """The saved folder's first page is asked for by its path, before anything else (no
    listing of the roots or of the folder first), and the tree opens down to it."""
    path = folder_path(*TRIP)
    app = make_app(library, start=path)
    calls = record_calls(app)
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        screen = app.screen
        assert isinstance(screen, BrowserScreen)
        assert grid_names(app) == await listing(library, path)
        assert calls[0][0] == "folders.list" and calls[0][1]["path"] == path
        assert calls[0][1].get("photos", True) and calls[0][1]["limit"] > 0
        assert not [p for m, p in calls if m == "folders.list" and p.get("path") == path
                    and p.get("photos") is False]  # never looked up without its photos
        assert screen.seq is not None and screen.seq.query.folder_id == screen.folder["id"]
        await until(pilot, lambda: screen.ftree.cursor_node is not None
                    and screen.ftree.cursor_node.data is not None
                    and screen.ftree.cursor_node.data["path"] == path, what="the tree")
        assert screen.grid.has_focus


@pytest.mark.parametrize("saved", ["path", "id"])
async def test_a_saved_folder_that_is_gone_starts_at_the_library(library: Any,
                                                                  saved: str) -> None:
    """The saved folder left the library (or the catalog is a new one): the start is the one
    without a saved folder (the first root), not an error."""
    app = make_app(library)
    app.place = (Place(folder_path=folder_path("2023", "no such trip"), photo_id=5)
                 if saved == "path" else Place(folder_id=987654))
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        screen = app.screen
        assert isinstance(screen, BrowserScreen)
        await until(pilot, lambda: screen.folder and screen.folder["name"] == "photos",
                    what="the root to open")
        assert "no longer" not in screen.empty_text
        assert [n.data["name"] for n in screen.ftree.root.children] == ["photos"]
        await until(pilot, lambda: screen.ftree.has_focus, what="the tree to get the keys")


async def test_grid_cursor_and_metadata(library: Any) -> None:
    app = make_app(library, start=folder_path(*TRIP))
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        screen = app.screen
        assert isinstance(screen, BrowserScreen)
        grid = screen.query_one(PhotoGrid)
        assert grid.has_focus and grid.cursor == 0
        count = len(screen.seq)
        await pilot.press("l")
        assert grid.cursor == 1
        await pilot.press("j")
        assert grid.cursor == min(count - 1, 1 + grid.per_row)
        await pilot.press("G")
        assert grid.cursor == count - 1
        await pilot.press("g")
        assert grid.cursor == 0
        await pilot.press("right", "right", "left")
        assert grid.cursor == 1
        # Every visible cell shows a picture (half-cells in tests).
        shown = [c for c in grid._cells if c.index is not None]
        assert len(shown) == min(count, grid.per_row * grid.rows_visible)
        assert all(c.view.encoded is not None for c in shown)
        # The metadata panel: EXIF, path, sha256, duplicates.
        await pilot.press("i")
        panel = screen.query_one(MetadataPanel)
        assert panel.display
        photo = screen.seq[1]
        detail = await acall(library, "photos.get", {"id": photo["id"]})
        await until(pilot, lambda: panel.photo and panel.photo.get("sha256")
                    == detail["sha256"], what="metadata")
        text = "\n".join(f"{k} {v}" for k, v in rows(panel.photo))
        for needle in (detail["name"], detail["path"], detail["model"], detail["sha256"],
                       "duplicates 0 exact"):
            assert needle in text, needle
        await pilot.press("i")
        assert not panel.display


async def test_list_view_keeps_the_cursor(library: Any) -> None:
    app = make_app(library, start=folder_path(*TRIP))
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        screen = app.screen
        assert isinstance(screen, BrowserScreen)
        await pilot.press("l", "l")
        await pilot.press("v")
        table = screen.query_one(PhotoTable)
        assert table.has_focus and table.display
        assert table.cursor == 2
        await pilot.press("j")
        assert table.cursor == 3
        await pilot.press("v")
        assert screen.grid.cursor == 3


async def test_preview_next_previous_and_back(library: Any) -> None:
    app = make_app(library, start=folder_path(*TRIP))
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        browser = app.screen
        assert isinstance(browser, BrowserScreen)
        await pilot.press("l", "enter")
        preview = await until(pilot, lambda: isinstance(app.screen, PreviewScreen)
                              and app.screen, what="the preview")
        assert preview.index == 1
        await until(pilot, lambda: preview.picture.encoded is not None, what="the picture")
        big = preview.picture.encoded
        assert big.cols > 60  # as large as the terminal allows
        await pilot.press("l", "l")
        assert preview.index == 3
        await until(pilot, lambda: preview.picture.encoded is not None
                    and preview.key and preview.key.photo_id == browser.seq[3]["id"],
                    what="photo 3")
        await pilot.press("h")
        assert preview.index == 2
        # neighbours were fetched ahead: going back is immediate
        assert preview.picture.encoded is not None
        await pilot.press("i")
        panel = preview.query_one(MetadataPanel)
        await until(pilot, lambda: panel.photo and panel.photo["id"] == browser.seq[2]["id"],
                    what="the info panel")
        await pilot.press("escape")
        await until(pilot, lambda: app.screen is browser, what="back to the grid")
        assert browser.grid.cursor == 2


async def test_sort_and_reverse(library: Any) -> None:
    app = make_app(library, start=folder_path(*TRIP))
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        screen = app.screen
        assert isinstance(screen, BrowserScreen)
        path = folder_path(*TRIP)
        assert grid_names(app) == await listing(library, path)
        await pilot.press("s")  # by date taken
        await until(pilot, lambda: screen.seq.query.sort == "taken")
        await settled(pilot)
        assert grid_names(app) == await listing(library, path, sort="taken")
        await pilot.press("s")  # by size
        await until(pilot, lambda: screen.seq.query.sort == "size")
        await settled(pilot)
        assert grid_names(app) == await listing(library, path, sort="size")
        await pilot.press("S")  # reversed
        await until(pilot, lambda: screen.seq.query.order == "desc")
        await settled(pilot)
        assert grid_names(app) == await listing(library, path, sort="size", order="desc")
        assert "size ↓" in screen.query_one(Breadcrumb).right


async def test_all_photos_below_and_parent(library: Any) -> None:
    app = make_app(library, start=folder_path("2023"))
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        screen = app.screen
        assert isinstance(screen, BrowserScreen)
        assert len(screen.seq) == 0  # 2023 holds only folders
        assert "press a" in str(screen.query_one("#empty").render())
        await pilot.press("a")
        await until(pilot, lambda: len(screen.seq) == 13, what="all 13 photos below 2023")
        await pilot.press("escape")  # back to the folder itself
        await until(pilot, lambda: not screen.seq.query.is_search)
        await pilot.press("backspace")
        await until(pilot, lambda: screen.folder["name"] == "photos", what="the parent")


async def test_preview_of_an_unreadable_photo_says_why(make_daemon: Any, tmp_path: Any) -> None:
    from lightbox.daemon.media.samples import make_photo, save_jpeg

    root = tmp_path / "broken"
    root.mkdir()
    save_jpeg(make_photo(320, 240, seed=1), root / "a_good.jpg")
    data = (root / "a_good.jpg").read_bytes()
    (root / "b_cut.jpg").write_bytes(data[: len(data) // 3])  # a truncated copy
    d: DaemonProcess = make_daemon()
    job = (await acall(d, "roots.add", {"path": str(root)}))["job"]
    assert (await acall(d, "jobs.wait", {"id": job, "timeout": 60}))["state"] == "succeeded"
    app = make_app(d, start=str(root))
    async with app.run_test(size=SIZE) as pilot:
        await settled(pilot)
        await pilot.press("l", "enter")  # the second photo: the broken one
        preview = await until(pilot, lambda: isinstance(app.screen, PreviewScreen)
                              and app.screen, what="the preview")
        await until(pilot, lambda: "truncated" in preview.picture._placeholder,
                    what="the reason in the preview")
        assert preview.picture._placeholder.startswith("⚠ unreadable")
        assert preview.picture.encoded is None
