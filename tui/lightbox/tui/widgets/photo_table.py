"""The list view: one line per photo: name, date taken, camera, lens, size, dimensions.

A line-API ``ScrollView``: ``render_line`` formats only the rows on screen, straight from
the photo dicts, so 100,000 rows cost nothing until they are looked at (a ``DataTable``
would build every row up front). The header is the first line and does not scroll.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from textual import events
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.strip import Strip

from lightbox.common.orientation import upright_of
from lightbox.tui import format as fmt
from lightbox.tui.model import PhotoSeq
from lightbox.tui.widgets.nav import NAV_BINDINGS, CursorNav, PhotoOpen


@dataclass(frozen=True)
class Column:
    title: str
    least: int  # narrower than this, the column is dropped
    most: int  # wider would only add blanks
    keep: int  # lower goes first when the terminal is narrow
    right: bool = False


# In order on screen. At 40 columns the name and size stay; at 160 camera and lens names
# show whole instead of a name column of blanks.
COLUMNS = (
    Column("name", 24, 48, 0),
    Column("date taken", 16, 16, 2),
    Column("camera", 12, 28, 4),
    Column("lens", 14, 32, 6),
    Column("size", 8, 8, 1, right=True),
    Column("dimensions", 11, 11, 3, right=True),
)


NAME_COMFORT = 32


def layout(width: int) -> list[tuple[int, int]]:
    """(column index, width) of the columns that fit in ``width`` cells, one blank apart:
    the least important dropped first, then the room left shared out up to each column's
    useful width, and anything beyond that to the name."""
    shown = list(range(len(COLUMNS)))
    while len(shown) > 1 and sum(COLUMNS[i].least for i in shown) + len(shown) - 1 > width:
        shown.remove(max(shown, key=lambda i: COLUMNS[i].keep))
    widths = {i: COLUMNS[i].least for i in shown}
    spare = width - sum(widths.values()) - (len(shown) - 1)
    # The name to a comfortable width first, then camera and lens whole, then the name to
    # its most, then whatever is left to the name.
    steps = [(0, NAME_COMFORT)] + [(i, COLUMNS[i].most) for i in sorted(
        (i for i in shown if i), key=lambda i: COLUMNS[i].keep)] + [(0, COLUMNS[0].most)]
    for i, upto in steps:
        if i not in widths:
            continue
        grow = max(0, min(spare, upto - widths[i]))
        widths[i] += grow
        spare -= grow
    widths[shown[0]] += max(0, spare)
    return [(i, widths[i]) for i in shown]


def cells(photo: dict[str, Any], with_path: bool) -> list[str]:
    name = photo.get("name") or ""
    if with_path and photo.get("path"):
        name = photo["path"]
    if photo.get("status") == "error":
        name = "⚠ " + name
    width, height = upright_of(photo)
    return [name, fmt.taken(photo.get("taken_at")), fmt.camera(photo),
            photo.get("lens") or "", fmt.size(photo.get("size")), fmt.dims(width, height)]


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
    PhotoTable > .photo-table--marked {
        color: $warning;
        text-style: bold;
    }
    """
    COMPONENT_CLASSES = {"photo-table--header", "photo-table--cursor", "photo-table--error",
                         "photo-table--marked"}

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.seq: PhotoSeq | None = None
        self.cursor = 0
        self.marked: set[int] = set()

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

    def set_marks(self, marked: set[int]) -> None:
        self.marked = marked
        self.refresh()

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

    def render_line(self, y: int) -> Strip:
        width = self.scrollable_content_region.width
        columns = layout(width)
        if y == 0:
            texts = [c.title for c in COLUMNS]
            style = self.get_component_rich_style("photo-table--header")
            return self._line(texts, columns, width, style)
        index = int(self.scroll_offset.y) + y - 1
        photo = self.seq.get(index) if self.seq is not None else None
        if photo is None:
            if index < self.count:  # its row is on its way
                style = self.rich_style
                if index == self.cursor:
                    style = style + self.get_component_rich_style("photo-table--cursor")
                return Strip([Segment(set_cell_size("…", width), style)], width)
            return Strip.blank(width, self.rich_style)
        style = self.rich_style
        if photo.get("status") == "error":
            style = style + self.get_component_rich_style("photo-table--error")
        marked = int(photo["id"]) in self.marked
        if marked:
            style = style + self.get_component_rich_style("photo-table--marked")
        if index == self.cursor:
            style = style + self.get_component_rich_style("photo-table--cursor")
        with_path = self.seq is not None and self.seq.query.is_search
        texts = cells(photo, with_path)
        if marked:
            texts[0] = "✓ " + texts[0]
        return self._line(texts, columns, width, style)

    @staticmethod
    def _line(texts: list[str], columns: list[tuple[int, int]], width: int,
              style: Any) -> Strip:
        parts = [fit_cell(texts[i], w, COLUMNS[i].right) for i, w in columns]
        text = set_cell_size(" ".join(parts), width)
        return Strip([Segment(text, style)], width)

    def on_click(self, event: events.Click) -> None:
        index = int(self.scroll_offset.y) + event.y - 1
        if event.y >= 1 and 0 <= index < self.count:
            self.move_cursor(index)
            if event.chain >= 2:
                self.post_message(PhotoOpen(index))
