"""Duplicates: exact copies (same sha256) and near ones (similar perceptual hash), side by
side with paths, sizes and dates, so a person can decide what to keep. Nothing is deleted
from here (that is not in scope); Enter opens the group in the preview to compare closely.

Left, the groups (a page at a time, more when the cursor reaches the end); right, the
selected group's photos as cards. ``t`` switches between exact and near.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.text import Text
from textual import events, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Footer, OptionList, Static
from textual.widgets.option_list import Option

from lightbox.common import errors
from lightbox.tui import format as fmt
from lightbox.tui.imaging.encode import Encoded
from lightbox.tui.imaging.service import ImageKey
from lightbox.tui.imaging.view import ImageView
from lightbox.tui.model import SEARCH_FIELDS, PhotoSeq, Query
from lightbox.tui.screens.base import LinkedScreen
from lightbox.tui.widgets.photo_grid import placeholder
from lightbox.tui.widgets.status_line import StatusLine

RPC_ERRORS = (errors.ClientError, errors.RpcError)
CARD_COLS = 24


def group_label(group: dict[str, Any], kind: str) -> Text:
    photos = group.get("photos") or []
    first = photos[0] if photos else {}
    count = int(group.get("count") or len(photos))
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(f"{count}{fmt.TIMES} " if kind == "exact" else f"{count}≈ ", style="bold")
    text.append(first.get("name") or "?")
    size = first.get("size")
    if kind == "exact" and size:
        text.append(f"  {fmt.size(size)}", style="dim")
    return text


HERE = Path(__file__).parent


class DupeCard(Vertical):
    """One photo of the group: picture, name, folder, size, dimensions, date."""

    DEFAULT_CSS = """
    DupeCard {
        width: 26;
        height: auto;
        border: round $surface;
        padding: 0;
    }
    DupeCard.-selected {
        border: round $accent;
    }
    DupeCard.-empty {
        display: none;
    }
    DupeCard > ImageView {
        width: 24;
    }
    DupeCard > Static {
        width: 24;
        height: auto;
        color: $text-muted;
    }
    """

    def __init__(self) -> None:
        super().__init__()
        self.photo: dict[str, Any] | None = None
        self.key: ImageKey | None = None

    def compose(self) -> ComposeResult:
        yield ImageView()
        yield Static("", classes="folder")
        yield Static("", classes="facts")

    def assign(self, photo: dict[str, Any] | None, rows: int) -> None:
        self.photo = photo
        self.set_class(photo is None, "-empty")
        if photo is None:
            self.key = None
            return
        view = self.query_one(ImageView)
        view.styles.height = rows + 1
        view.set_caption(fmt.truncate(photo.get("name") or "", CARD_COLS))
        folder = (photo.get("path") or "").rsplit("/", 1)[0]
        self.query_one(".folder", Static).update(
            Text(fmt.tail(folder + "/", 2 * CARD_COLS), overflow="fold"))
        self.query_one(".facts", Static).update(
            f"{fmt.size(photo.get('size'))}  {fmt.dims(photo.get('width'), photo.get('height'))}"
            f"\n{fmt.taken(photo.get('taken_at'))}")


class GroupPane(Widget):
    """The selected group's photos: as many cards as fit, made once per size and reused."""

    DEFAULT_CSS = """
    GroupPane {
        width: 1fr;
        height: 1fr;
        layout: horizontal;
        padding: 0 1;
    }
    GroupPane > .dupes-none {
        padding: 2 4;
        color: $text-muted;
        width: 1fr;
    }
    """

    class Resized(Message):
        pass

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.cards: list[DupeCard] = []

    def compose(self) -> ComposeResult:
        yield Static("", classes="dupes-none")

    async def on_resize(self, event: events.Resize) -> None:
        fit = max(1, (event.size.width - 2) // 26)
        if fit != len(self.cards):
            for card in self.cards:
                await card.remove()
            self.cards = [DupeCard() for _ in range(fit)]
            await self.mount_all(self.cards)
            self.post_message(self.Resized())

    def note(self, text: str) -> None:
        note = self.query_one(".dupes-none", Static)
        note.update(text)
        note.display = bool(text)


class DuplicatesScreen(LinkedScreen):
    CSS_PATH = HERE / "duplicates.tcss"  # absolute: subclasses live elsewhere
    BINDINGS = [
        Binding("t", "toggle_kind", "Exact/near"),
        Binding("h,left", "card(-1)", "Previous copy", show=False),
        Binding("l,right", "card(1)", "Next copy", show=False),
        Binding("j", "group(1)", "Next group", show=False),
        Binding("k", "group(-1)", "Previous group", show=False),
        Binding("enter", "open", "Preview group"),
        Binding("escape,q", "close", "Back"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.kind = "exact"
        self.groups: list[dict[str, Any]] = []
        self.next_cursor: str | None = None
        self.total_groups = 0
        self.group_index = 0
        self.card_index = 0
        self.first_card = 0

    def compose(self) -> ComposeResult:
        yield Static("", id="dupes-title")
        with Horizontal(id="dupes-body"):
            yield OptionList(id="dupes-groups")
            yield GroupPane(id="dupes-group")
        yield StatusLine()
        yield Footer()

    def on_mount(self) -> None:
        self.load_groups(reset=True)
        self.query_one(OptionList).focus()

    def _title(self, note: str = "") -> None:
        other = "near" if self.kind == "exact" else "exact"
        what = "exact copies (same content)" if self.kind == "exact" else \
            "near duplicates (resized, re-encoded, edited)"
        count = f"{fmt.count(self.total_groups, 'group')} of " if self.total_groups else ""
        self.query_one("#dupes-title", Static).update(
            f" Duplicates: {count}{what}   t shows {other}   {note}")

    @work(group="dupes", exclusive=True)
    async def load_groups(self, reset: bool = False) -> None:
        if reset:
            self.groups, self.next_cursor, self.total_groups = [], None, 0
            self.query_one(OptionList).clear_options()
            self._title("loading…")
        params: dict[str, Any] = {"kind": self.kind, "limit": 100, "fields": SEARCH_FIELDS}
        if self.next_cursor:
            params["cursor"] = self.next_cursor
        try:
            page = await self.link.call("photos.duplicates", params, timeout=15)
        except errors.Unavailable as exc:
            self._title(f"({exc.message})")
            return
        except RPC_ERRORS as exc:
            self._title(f"cannot load: {exc}")
            return
        new = page.get("groups") or []
        self.groups.extend(new)
        self.next_cursor = page.get("next_cursor")
        self.total_groups = int(page.get("total_groups") or len(self.groups))
        options = self.query_one(OptionList)
        options.add_options([Option(group_label(g, self.kind)) for g in new])
        self._title()
        pane = self.query_one(GroupPane)
        pane.note("" if self.groups else "No exact duplicates." if self.kind == "exact"
                  else "No near duplicates.")
        if reset:
            self.group_index = self.card_index = self.first_card = 0
            if self.groups:
                options.highlighted = 0
            self._render_group()

    def on_option_list_option_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        self.show_group(event.option_index)
        if event.option_index >= len(self.groups) - 5 and self.next_cursor:
            self.load_groups()

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.action_open()

    def show_group(self, index: int, keep_card: bool = False) -> None:
        self.group_index = index
        if not keep_card:
            self.card_index = self.first_card = 0
        self._render_group()

    def _render_group(self) -> None:
        pane = self.query_one(GroupPane)
        group = self.groups[self.group_index] if self.groups else None
        photos = (group or {}).get("photos") or []
        fit = max(1, len(pane.cards))
        if self.card_index < self.first_card:
            self.first_card = self.card_index
        elif self.card_index >= self.first_card + fit:
            self.first_card = self.card_index - fit + 1
        cw, ch = self.images.cell
        rows = min(max(2, round(CARD_COLS * cw * 0.75 / ch)), max(3, pane.size.height - 9))
        keys = []
        for i, card in enumerate(pane.cards):
            index = self.first_card + i
            photo = photos[index] if index < len(photos) else None
            card.assign(photo, rows)
            card.set_class(index == self.card_index, "-selected")
            if photo is None:
                continue
            card.key = self.images.key(photo, CARD_COLS, rows)
            card.query_one(ImageView).show(self.images.get(card.key),
                                           placeholder(photo, self.images))
            keys.append(card.key)
        self.images.want(self, keys, self._ready)
        hidden = len(photos) - min(len(photos), fit)
        self.say(f"{len(photos)} photos in this group; h/l move along them" if hidden else "")

    def on_group_pane_resized(self, message: GroupPane.Resized) -> None:
        self._render_group()

    def graphics_changed(self) -> None:
        self._render_group()

    def _ready(self, key: ImageKey, encoded: Encoded | None) -> None:
        for card in self.query_one(GroupPane).cards:
            if card.key == key and card.photo is not None:
                card.query_one(ImageView).show(encoded, placeholder(card.photo, self.images))

    def action_card(self, step: int) -> None:
        if not self.groups:
            return
        photos = self.groups[self.group_index].get("photos") or []
        self.card_index = max(0, min(len(photos) - 1, self.card_index + step))
        self.show_group(self.group_index, keep_card=True)

    def action_group(self, step: int) -> None:
        options = self.query_one(OptionList)
        if self.groups:
            options.highlighted = max(0, min(len(self.groups) - 1, self.group_index + step))

    def action_toggle_kind(self) -> None:
        self.kind = "near" if self.kind == "exact" else "exact"
        self.load_groups(reset=True)

    def action_open(self) -> None:
        if not self.groups:
            return
        from lightbox.tui.screens.preview import PreviewScreen

        seq = PhotoSeq(Query(None), items=list(self.groups[self.group_index].get("photos")
                                                or []))
        self.app.push_screen(PreviewScreen(seq, self.card_index), self._back)

    def _back(self, index: int | None) -> None:
        if index is not None:
            self.card_index = index
            self.show_group(self.group_index, keep_card=True)

    def action_close(self) -> None:
        self.images.cancel(self)
        self.dismiss(None)
