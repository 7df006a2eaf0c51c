"""``?``: every key binding, generated from the bindings themselves so it cannot go stale."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

KEY_NAMES = {
    "slash": "/", "question_mark": "?", "equals_sign": "=", "plus": "+", "minus": "-",
    "escape": "Esc", "enter": "Enter", "backspace": "Backspace", "space": "Space",
    "pageup": "PgUp", "pagedown": "PgDn", "home": "Home", "end": "End", "delete": "Del",
    "up": "↑", "down": "↓", "left": "←", "right": "→", "tab": "Tab",
}


def key_label(keys: str) -> str:
    out = []
    for raw in keys.split(","):
        key = raw.strip()
        if key.startswith("ctrl+"):
            out.append("Ctrl-" + KEY_NAMES.get(key[5:], key[5:]))
        elif key.startswith("shift+"):
            out.append("Shift-" + KEY_NAMES.get(key[6:], key[6:]))
        else:
            out.append(KEY_NAMES.get(key, key))
    return " ".join(out)


def binding_rows(bindings: Iterable[BindingType]) -> list[tuple[str, str]]:
    rows = []
    for b in bindings:
        if isinstance(b, Binding):
            rows.append((key_label(b.key), b.description or b.action))
        elif isinstance(b, tuple) and len(b) >= 2:
            rows.append((key_label(b[0]), b[2] if len(b) > 2 else b[1]))
    return rows


def sections() -> list[tuple[str, list[tuple[str, str]]]]:
    from lightbox.tui.app import LightboxApp
    from lightbox.tui.screens.backups import BackupsScreen
    from lightbox.tui.screens.browser import BrowserScreen
    from lightbox.tui.screens.database import DatabaseScreen
    from lightbox.tui.screens.duplicates import DuplicatesScreen
    from lightbox.tui.screens.jobs import JobsScreen
    from lightbox.tui.screens.preview import PreviewScreen
    from lightbox.tui.screens.settings import SettingsScreen
    from lightbox.tui.widgets.folder_tree import FolderTree
    from lightbox.tui.widgets.nav import NAV_BINDINGS
    from lightbox.tui.widgets.search_bar import SearchBar

    return [
        ("Everywhere", [*binding_rows(LightboxApp.BINDINGS),
                        ("Ctrl-p", "Command palette: every action by name"),
                        ("Tab Shift-Tab", "Next / previous pane")]),
        ("Browser", binding_rows(BrowserScreen.BINDINGS)),
        ("Help", binding_rows(HelpScreen.BINDINGS)),
        ("Thumbnails and list", binding_rows(NAV_BINDINGS)),
        ("Folder tree", [*binding_rows(FolderTree.BINDINGS),
                         ("Enter", "Open the folder")]),
        ("Search bar", [("Enter", "Search"), *binding_rows(SearchBar.BINDINGS),
                        ("Tab", "Next field")]),
        ("Preview", binding_rows(PreviewScreen.BINDINGS)),
        ("Jobs", binding_rows(JobsScreen.BINDINGS)),
        ("Duplicates", binding_rows(DuplicatesScreen.BINDINGS)),
        ("Settings", [*binding_rows(SettingsScreen.BINDINGS),
                      ("Tab Shift-Tab", "Next / previous field"),
                      ("Space / Enter", "Toggle a switch / open a choice")]),
        ("Backups", binding_rows(BackupsScreen.BINDINGS)),
        ("Database", [*binding_rows(DatabaseScreen.BINDINGS),
                      ("Enter", "Test the URL typed")]),
    ]


HERE = Path(__file__).parent


class HelpScreen(ModalScreen[None]):
    CSS_PATH = HERE / "help.tcss"  # absolute: subclasses live elsewhere
    BINDINGS = [
        Binding("escape,q,question_mark", "dismiss", "Close help"),
        Binding("j,down", "lines(1)", "Scroll down", show=False),
        Binding("k,up", "lines(-1)", "Scroll up", show=False),
        Binding("ctrl+d,pagedown,space,ctrl+f", "lines(20)", "Page down", show=False),
        Binding("ctrl+u,pageup,ctrl+b", "lines(-20)", "Page up", show=False),
        Binding("g,home", "to_edge(0)", "Top", show=False),
        Binding("G,end", "to_edge(1)", "Bottom", show=False),
    ]

    def action_lines(self, lines: int) -> None:
        box = self.query_one("#help-box", VerticalScroll)
        if abs(lines) > 1:
            lines = (1 if lines > 0 else -1) * max(1, box.size.height - 2)
        box.scroll_relative(y=lines, animate=False)

    def action_to_edge(self, bottom: int) -> None:
        box = self.query_one("#help-box", VerticalScroll)
        if bottom:
            box.scroll_end(animate=False)
        else:
            box.scroll_home(animate=False)

    def compose(self) -> ComposeResult:
        table = Table.grid(padding=(0, 2))
        table.add_column(style="bold cyan", no_wrap=True, min_width=14)
        table.add_column()
        for title, rows in sections():
            table.add_row(Text(title, style="bold underline"), "")
            for keys, what in rows:
                table.add_row(keys, what)
            table.add_row("", "")
        graphics = getattr(self.app, "graphics", None)
        with VerticalScroll(id="help-box"):
            yield Static(Text("lightbox — keys", style="bold"), id="help-title")
            if graphics is not None:
                yield Static(Text(f"Images: {graphics.describe()}. Change with --graphics, "
                                  "LIGHTBOX_GRAPHICS, the command palette (this session) "
                                  "or the settings screen (saved for this terminal).\n",
                                  style="dim"))
            yield Static(table)
            yield Static(Text("Esc closes this. The mouse works too (click, double click, "
                              "wheel) but is never needed.", style="dim"))
