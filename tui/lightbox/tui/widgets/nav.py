"""Cursor movement shared by the thumbnail grid and the list: one set of keys, one set of
messages, so the browser does not care which of the two is showing."""

from __future__ import annotations

from textual.binding import Binding, BindingType
from textual.message import Message


class PhotoCursor(Message):
    """The cursor moved to ``index`` of the shown sequence."""

    def __init__(self, index: int) -> None:
        super().__init__()
        self.index = index


class PhotoOpen(Message):
    """Open the photo at ``index`` (Enter, double click)."""

    def __init__(self, index: int) -> None:
        super().__init__()
        self.index = index


NAV_BINDINGS: list[BindingType] = [
    Binding("up,k", "move(-1, 'row')", "Up", show=False),
    Binding("down,j", "move(1, 'row')", "Down", show=False),
    Binding("left,h", "move(-1, 'item')", "Left", show=False),
    Binding("right,l", "move(1, 'item')", "Right", show=False),
    Binding("ctrl+d", "move(1, 'half')", "Half page down", show=False),
    Binding("ctrl+u", "move(-1, 'half')", "Half page up", show=False),
    Binding("pagedown,ctrl+f", "move(1, 'page')", "Page down", show=False),
    Binding("pageup,ctrl+b", "move(-1, 'page')", "Page up", show=False),
    Binding("g,home", "move(-1, 'end')", "First photo", show=False),
    Binding("G,end", "move(1, 'end')", "Last photo", show=False),
    Binding("enter", "open", "Open", show=True),
]


class CursorNav:
    """Mixin: ``cursor`` over ``count`` items laid out ``per_row`` to a row, ``rows_visible``
    rows on screen. Subclasses implement ``_cursor_changed``."""

    cursor: int = 0

    @property
    def count(self) -> int:
        raise NotImplementedError

    @property
    def per_row(self) -> int:
        return 1

    @property
    def rows_visible(self) -> int:
        return 1

    def target(self, step: int, unit: str) -> int:
        per_row = max(1, self.per_row)
        if unit == "item":
            delta = step
        elif unit == "row":
            delta = step * per_row
        elif unit == "half":
            delta = step * per_row * max(1, self.rows_visible // 2)
        elif unit == "page":
            delta = step * per_row * max(1, self.rows_visible)
        else:  # "end"
            return 0 if step < 0 else max(0, self.count - 1)
        new = self.cursor + delta
        if unit == "row":
            if new < 0:
                return self.cursor  # up from the top row: stay
            if new >= self.count:
                # down into a short last row: to its last photo; from the last row: stay
                last_row = (self.count - 1) // per_row
                return self.count - 1 if self.cursor // per_row < last_row else self.cursor
        return max(0, min(self.count - 1, new))

    def action_move(self, step: int, unit: str) -> None:
        if self.count:
            self.move_cursor(self.target(step, unit))

    def move_cursor(self, index: int, *, announce: bool = True) -> None:
        index = max(0, min(max(0, self.count - 1), index))
        changed = index != self.cursor
        self.cursor = index
        self._cursor_changed()
        if announce and changed:
            self.post_message(PhotoCursor(index))  # type: ignore[attr-defined]

    def action_open(self) -> None:
        if self.count:
            self.post_message(PhotoOpen(self.cursor))  # type: ignore[attr-defined]

    def _cursor_changed(self) -> None:
        raise NotImplementedError
