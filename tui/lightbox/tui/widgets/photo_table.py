"""The list view: one line per photo with name, date taken, camera, size and dimensions.

A line-API ``ScrollView``: ``render_line`` formats only the rows on screen, straight from
the photo dicts, so 100,000 rows cost nothing until they are looked at (a ``DataTable``
would build every row up front). The header is the first line and does not scroll.
"""

from __future__ import annotations

from typing import Any

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from textual import events
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from lightbox.tui import format as fmt
from lightbox.tui.model import PhotoSeq
from lightbox.tui.widgets.nav import NAV_BINDINGS, CursorNav, PhotoOpen

# (title, width or 0 for the flexible column, right-aligned)
COLUMNS = (("name", 0, False), ("date taken", 16, False), ("camera", 18, False),
           ("size", 9, True), ("dimensions", 11, True))


def cells(photo: dict[str, Any], with_path: bool) -> list[str]:
    name = photo.get("name") or ""
    if with_path and photo.get("path"):
        name = photo["path"]
    if photo.get("status") == "error":
        name = "⚠ " + name
    return [name, fmt.taken(photo.get("taken_at")), fmt.camera(photo),
            fmt.size(photo.get("size")), fmt.dims(photo.get("width"), photo.get("height"))]


def fit_cell(text: str, width: int, right: bool) -> str:
    if cell_len(text) > width:
        return fmt.truncate(text, width) if width > 8 else set_cell_size(text, width)
    return text.rjust(width) if right else set_cell_size(text, width)


class PhotoTable(CursorNav, ScrollView, can_focus=True):
    BINDINGS = NAV_BINDINGS
    DEFAULT_CSS = """
    PhotoTable {
        height: 1fr;
        width: 1fr;
        background: $surface;
        scrollbar-size-vertical: 1;
    }
    PhotoTable > .photo-table--header {
        text-style: bold;
        color: $text-muted;
        background: $panel;
    }
    PhotoTable > .photo-table--cursor {
        background: $accent 40%;
    }
    PhotoTable:focus > .photo-table--cursor {
        background: $accent;
        color: $text;
    }
    PhotoTable > .photo-table--error {
        color: $error;
    }
    """
    COMPONENT_CLASSES = {"photo-table--header", "photo-table--cursor", "photo-table--error"}

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.seq: PhotoSeq | None = None
        self.cursor = 0

    @property
    def count(self) -> int:
        return len(self.seq) if self.seq is not None else 0

    @property
    def rows_visible(self) -> int:
        return max(1, self.scrollable_content_region.height - 1)

    def set_seq(self, seq: PhotoSeq | None, cursor: int = 0) -> None:
        self.seq = seq
        self.cursor = max(0, min(cursor, max(0, self.count - 1)))
        self.seq_grew()
        self._scroll_to_cursor(center=True)

    def seq_grew(self) -> None:
        self.virtual_size = Size(self.size.width, self.count + 1)
        self.refresh()

    def _cursor_changed(self) -> None:
        self._scroll_to_cursor()
        self.refresh()

    def _scroll_to_cursor(self, center: bool = False) -> None:
        top = int(self.scroll_offset.y)
        visible = self.rows_visible
        if center and not top <= self.cursor < top + visible:
            top = self.cursor - visible // 2
        elif self.cursor < top:
            top = self.cursor
        elif self.cursor >= top + visible:
            top = self.cursor - visible + 1
        self.scroll_to(y=max(0, top), animate=False, immediate=True)

    def on_resize(self, event: events.Resize) -> None:
        self.seq_grew()

    def _widths(self, width: int) -> list[int]:
        fixed = sum(w for _, w, _ in COLUMNS if w) + len(COLUMNS) - 1
        return [w or max(10, width - fixed) for _, w, _ in COLUMNS]

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        widths = self._widths(width)
        if y == 0:
            texts = [t for t, _, _ in COLUMNS]
            style = self.get_component_rich_style("photo-table--header")
            return self._line(texts, widths, width, style)
        index = int(self.scroll_offset.y) + y - 1
        photo = self.seq.get(index) if self.seq is not None else None
        if photo is None:
            return Strip.blank(width, self.rich_style)
        style = self.rich_style
        if photo.get("status") == "error":
            style = style + self.get_component_rich_style("photo-table--error")
        if index == self.cursor:
            style = style + self.get_component_rich_style("photo-table--cursor")
        with_path = self.seq is not None and self.seq.query.is_search
        return self._line(cells(photo, with_path), widths, width, style)

    @staticmethod
    def _line(texts: list[str], widths: list[int], width: int, style: Any) -> Strip:
        parts = [fit_cell(t, w, right) for t, w, (_, _, right) in zip(texts, widths, COLUMNS,
                                                                        strict=True)]
        text = set_cell_size(" ".join(parts), width)
        return Strip([Segment(text, style)], width)

    def on_click(self, event: events.Click) -> None:
        index = int(self.scroll_offset.y) + event.y - 1
        if event.y >= 1 and 0 <= index < self.count:
            self.move_cursor(index)
            if event.chain >= 2:
                self.post_message(PhotoOpen(index))
