"""Where you are (source, folders, or the search) and how the photos are sorted."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

from lightbox.tui.format import CRUMB


class Breadcrumb(Widget):
    DEFAULT_CSS = """
    Breadcrumb {
        height: 1;
        width: 1fr;
        background: $boost;
        padding: 0 1;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.parts: list[str] = []
        self.prefix = ""
        self.right = ""

    def set_path(self, parts: list[str], prefix: str = "", right: str = "") -> None:
        self.parts, self.prefix, self.right = parts, prefix, right
        self.refresh()

    def set_right(self, right: str) -> None:
        if right != self.right:
            self.right = right
            self.refresh()

    def render(self) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis")
        if self.prefix:
            text.append(self.prefix, style="bold")
            if self.parts:
                text.append(" in ")
        for i, part in enumerate(self.parts):
            if i:
                text.append(CRUMB, style="dim")
            text.append(part, style="bold" if i == len(self.parts) - 1 else "")
        if self.right:
            room = self.size.width - text.cell_len
            if room > len(self.right) + 2:
                text.append(" " * (room - len(self.right)))
                text.append(self.right, style="dim")
        return text
