"""The thumbnail grid: a fixed pool of cells, recycled as the view moves.

Only what fits on the screen exists: the grid makes ``columns x rows`` cells for its size and
reassigns photos to them when the cursor leaves the visible rows, so a folder of 10,000
photos costs the same to draw as one of 20. Thumbnails are asked for nearest-first (the
cursor's neighbours before the corners), then a page ahead and a page behind, so scrolling
finds them ready; each arrives through the image service's callback and is shown only if
its cell still shows that photo.
"""

from __future__ import annotations

import math
from typing import Any

from textual import events
from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.message import Message
from textual.widget import Widget

from lightbox.common.orientation import upright_of
from lightbox.tui import format as fmt
from lightbox.tui.imaging.encode import Encoded
from lightbox.tui.imaging.service import ImageKey, ImageService
from lightbox.tui.imaging.view import ImageView
from lightbox.tui.model import PhotoSeq
from lightbox.tui.removal import removed
from lightbox.tui.widgets.nav import NAV_BINDINGS, CursorNav, PhotoOpen

THUMB_SIZES = {"small": 12, "medium": 18, "large": 28}  # image width in cells


def thumb_box(size: str, cell: tuple[int, int]) -> tuple[int, int]:
    """Cells of a thumbnail's picture area: ``size`` wide, about 4:3 on screen."""
    cols = THUMB_SIZES.get(size, THUMB_SIZES["medium"])
    cw, ch = cell
    rows = max(2, round(cols * cw * 0.75 / ch))
    return cols, rows


def placeholder(photo: dict[str, Any], images: ImageService, detail: bool = False) -> str:
    """What stands where a picture cannot: ``detail`` (the preview) adds the reason."""
    failure = images.failure(int(photo["id"]))
    if photo.get("status") == "error" or failure:
        reason = photo.get("error") or failure
        return f"⚠ unreadable\n\n{reason}" if detail and reason else "⚠ unreadable"
    if photo.get("status") == "pending":
        return "indexing…"
    if photo.get("status") == "missing":
        return "missing"
    if images.mode == "none":
        fmt_name = (photo.get("name") or "").rsplit(".", 1)[-1].upper()
        return f"{fmt_name} {fmt.dims(*upright_of(photo))}"
    return "…"


class ThumbCell(Widget):
    """One grid cell: a picture and its name, with a border that shows the cursor."""

    DEFAULT_CSS = """
    ThumbCell {
        border: round $surface;
        background: $surface;
        padding: 0;
    }
    ThumbCell.-cursor {
        border: round $accent;
    }
    ThumbCell.-cursor ImageView > .image-view--caption {
        background: $accent 40%;
        text-style: bold;
    }
    PhotoGrid:focus ThumbCell.-cursor {
        border: round $accent;
    }
    PhotoGrid:focus ThumbCell.-cursor ImageView > .image-view--caption {
        background: $accent;
        color: $text;
    }
    ThumbCell.-marked {
        border: heavy $warning;
    }
    ThumbCell.-marked.-cursor {
        border: heavy $accent;
    }
    """

    def __init__(self, slot: int) -> None:
        super().__init__()
        self.slot = slot
        self.index: int | None = None
        self.key: ImageKey | None = None

    def compose(self) -> ComposeResult:
        yield ImageView()

    @property
    def view(self) -> ImageView:
        return self.query_one(ImageView)

    def on_click(self, event: events.Click) -> None:
        grid = self.parent.parent if self.parent else None
        if isinstance(grid, PhotoGrid) and self.index is not None:
            grid.focus()
            grid.move_cursor(self.index)
            if event.chain >= 2:
                grid.post_message(PhotoOpen(self.index))


class PhotoGrid(CursorNav, Widget, can_focus=True):
    """Thumbnails of ``seq``; ``cursor`` is the selected index."""

    class CellsBuilt(Message):
        """The cells for the grid's size are mounted (at its first size, and again when the
        size or the thumbnail size changes): a frame from now on shows the photos."""

    BINDINGS = NAV_BINDINGS
    DEFAULT_CSS = """
    PhotoGrid {
        height: 1fr;
        width: 1fr;
        layout: vertical;
        overflow: hidden hidden;
    }
    PhotoGrid > Horizontal {
        height: auto;
        width: 1fr;
    }
    """

    def __init__(self, images: ImageService, *, thumb_size: str = "medium",
                 id: str | None = None) -> None:
        super().__init__(id=id)
        self.images = images
        self.thumb_size = thumb_size
        self.seq: PhotoSeq | None = None
        self.cursor = 0
        self.top_row = 0
        self._cols = 1
        self._rows = 1
        self._cells: list[ThumbCell] = []
        self.marked: set[int] = set()
        self._layout_key: tuple[int, int, int, int] | None = None

    # -- geometry -------------------------------------------------------------------------
    @property
    def count(self) -> int:
        return len(self.seq) if self.seq is not None else 0

    @property
    def per_row(self) -> int:
        return self._cols

    @property
    def rows_visible(self) -> int:
        return self._rows

    @property
    def box(self) -> tuple[int, int]:
        return thumb_box(self.thumb_size, self.images.cell)

    def _cell_outer(self) -> tuple[int, int]:
        cols, rows = self.box
        return cols + 2, rows + 3  # border and the caption line

    async def on_resize(self, event: events.Resize) -> None:
        await self.relayout()

    async def relayout(self) -> None:
        width, height = self.size
        if not width or not height:
            return
        cw, ch = self._cell_outer()
        cols, rows = max(1, width // cw), max(1, height // ch)
        key = (cols, rows, cw, ch)
        if key == self._layout_key:
            return
        self._layout_key = key
        self._cols, self._rows = cols, rows
        await removed(self.remove_children())
        self._cells = []
        lines = []
        pad = max(0, (width - cols * cw) // 2)  # a cell wider than the pane: from the left
        for r in range(rows):
            cells = [ThumbCell(r * cols + c) for c in range(cols)]
            for cell in cells:
                cell.styles.width = cw
                cell.styles.height = ch
            self._cells.extend(cells)
            line = Horizontal(*cells)
            line.styles.padding = (0, 0, 0, pad)
            lines.append(line)
        await self.mount_all(lines)
        self._scroll_to_cursor(center=True)
        self.update_cells()
        self.post_message(self.CellsBuilt())

    @property
    def has_cells(self) -> bool:
        return bool(self._cells)

    def set_thumb_size(self, size: str) -> None:
        """Attributes down: the cells are rebuilt on the grid's own message loop, after
        what it is doing (a resize's rebuild), so two rebuilds never interleave and a
        caller's worker being cancelled cannot stop one halfway."""
        self.thumb_size = size
        self.call_later(self.relayout)

    # -- attributes down ------------------------------------------------------------------
    def set_seq(self, seq: PhotoSeq | None, cursor: int = 0) -> None:
        self.seq = seq
        self.cursor = max(0, min(cursor, max(0, self.count - 1)))
        self.top_row = 0
        self._scroll_to_cursor(center=True)
        self.update_cells()

    def seq_grew(self) -> None:
        """More pages arrived: fill cells that were waiting for them."""
        self.update_cells()

    def set_marks(self, marked: set[int]) -> None:
        self.marked = marked
        self.update_cells()

    def _cursor_changed(self) -> None:
        if self._scroll_to_cursor():
            self.update_cells()
        else:
            self._mark_cursor()
            self._request_images()

    def _scroll_to_cursor(self, center: bool = False) -> bool:
        row = self.cursor // max(1, self._cols)
        old = self.top_row
        if center and not (self.top_row <= row < self.top_row + self._rows):
            self.top_row = max(0, row - self._rows // 2)
        elif row < self.top_row:
            self.top_row = row
        elif row >= self.top_row + self._rows:
            self.top_row = row - self._rows + 1
        last_top = max(0, math.ceil(self.count / max(1, self._cols)) - self._rows)
        self.top_row = max(0, min(self.top_row, last_top))
        return self.top_row != old

    def _mark_cursor(self) -> None:
        for cell in self._cells:
            cell.set_class(cell.index == self.cursor and cell.index is not None, "-cursor")

    def update_cells(self) -> None:
        """Each cell shows the photo at its slot. A class change restyles the cell and its
        view at once (Textual's ``update_styles``), so a cell's classes change in one go and
        only when they must: an empty cell (past the end, or waiting for its row) has no
        class of its own, as it looks like the plain cell, so the first page of a folder
        does not restyle every cell it fills."""
        if not self._cells:
            return
        first = self.top_row * self._cols
        cols, rows = self.box
        for cell in self._cells:
            index = first + cell.slot
            photo = self.seq.get(index) if self.seq is not None else None
            try:
                view = cell.view
            except Exception:
                continue  # not composed yet
            if photo is None:
                cell.key = None
                cell.index = index if index < self.count else None  # not here yet
                cell.update_classes({"-marked": False,
                                     "-cursor": index == self.cursor and cell.index is not None})
                view.show(None, "…" if cell.index is not None else "")
                view.set_caption("")
                continue
            marked = int(photo["id"]) in self.marked
            cell.update_classes({"-marked": marked, "-cursor": index == self.cursor})
            cell.index = index
            cell.key = self.images.key(photo, cols, rows)
            view.set_caption(fmt.truncate(("✓ " if marked else "") + (photo.get("name") or ""),
                                          cols))
            view.show(self.images.get(cell.key), placeholder(photo, self.images))
        self._mark_cursor()
        self._request_images()

    def refresh_images(self) -> None:
        for cell in self._cells:
            if cell.key is not None:
                cell.view.refresh()

    # -- images ---------------------------------------------------------------------------
    def _request_images(self) -> None:
        if self.seq is None or not self._cells:
            return
        cols, rows = self.box
        first = self.top_row * self._cols
        page = self._cols * self._rows
        visible = [c for c in self._cells if c.key is not None and c.index is not None]
        visible.sort(key=lambda c: abs((c.index or 0) - self.cursor))
        keys = [c.key for c in visible if c.key is not None]
        ahead = range(first + page, min(len(self.seq), first + 2 * page))
        behind = range(max(0, first - page), first)
        for index in [*ahead, *reversed(behind)]:
            if self.seq.loaded(index):
                keys.append(self.images.key(self.seq[index], cols, rows))
        self.images.want(self, keys, self._image_ready)

    def _image_ready(self, key: ImageKey, encoded: Encoded | None) -> None:
        for cell in self._cells:
            if cell.key == key and cell.index is not None and self.seq is not None:
                photo = self.seq.get(cell.index)
                if photo is not None:
                    cell.view.show(encoded, placeholder(photo, self.images))

    # -- mouse ----------------------------------------------------------------------------
    def on_mouse_scroll_down(self, event: events.MouseScrollDown) -> None:
        event.stop()
        self.action_move(1, "row")

    def on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        event.stop()
        self.action_move(-1, "row")
