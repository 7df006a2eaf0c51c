"""Duplicates: exact copies (same sha256) and near ones (similar perceptual hash), side by
side with paths, sizes, dates and (near) how many bits apart, so a person can decide what to
keep. ``d`` marks the copy under the cursor for the trash, ``x`` asks, naming every file,
and moves the marked ones to the freedesktop trash on the daemon's host (``photos.trash``:
restorable, never deleted); the last copy of a group is never sent. Enter opens the group in
the preview to compare closely.

Left, the groups, the ones wasting most bytes first (a page at a time, more when the cursor
reaches the end); right, the selected group's photos as cards, as many rows of them as fit.
``t`` switches between exact and near.
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
from textual.screen import ModalScreen
from textual.widget import Widget
from textual.widgets import Footer, OptionList, Static
from textual.widgets.option_list import Option

from lightbox.common import errors
from lightbox.common.orientation import upright_of
from lightbox.tui import format as fmt
from lightbox.tui.imaging.encode import Encoded
from lightbox.tui.imaging.service import ImageKey
from lightbox.tui.imaging.view import ImageView
from lightbox.tui.model import SEARCH_FIELDS, PhotoSeq, Query
from lightbox.tui.removal import removed
from lightbox.tui.screens.base import LinkedScreen
from lightbox.tui.widgets.photo_grid import placeholder
from lightbox.tui.widgets.status_line import StatusLine

RPC_ERRORS = (errors.ClientError, errors.RpcError)
CARD_COLS = 24


def wasted(group: dict[str, Any]) -> int:
    """Bytes the copies take beyond the one kept (the largest file)."""
    sizes = sorted((int(p.get("size") or 0) for p in group.get("photos") or []), reverse=True)
    return sum(sizes[1:])


def group_label(group: dict[str, Any], kind: str) -> Text:
    photos = group.get("photos") or []
    first = photos[0] if photos else {}
    count = int(group.get("count") or len(photos))
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(f"{count}{fmt.TIMES} " if kind == "exact" else f"{count}≈ ", style="bold")
    text.append(f"{fmt.size(wasted(group)):>8} ", style="dim")
    text.append(first.get("name") or "?")
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
    DupeCard.-trash {
        border: round $error;
    }
    DupeCard.-trash.-selected {
        border: double $error;
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

    def assign(self, photo: dict[str, Any] | None, rows: int, trash: bool = False) -> None:
        self.photo = photo
        self.set_class(photo is None, "-empty")
        self.set_class(trash, "-trash")
        if photo is None:
            self.key = None
            return
        view = self.query_one(ImageView)
        view.styles.height = rows + 1
        name = ("✗ " if trash else "") + (photo.get("name") or "")
        view.set_caption(fmt.truncate(name, CARD_COLS))
        folder = (photo.get("path") or "").rsplit("/", 1)[0]
        self.query_one(".folder", Static).update(
            Text(fmt.tail(folder + "/", 2 * CARD_COLS), overflow="fold"))
        facts = Text(no_wrap=True, overflow="ellipsis")
        width, height = upright_of(photo)
        facts.append(f"{fmt.size(photo.get('size'))} · {fmt.dims(width, height)}\n")
        facts.append(fmt.taken(photo.get("taken_at")))
        distance = photo.get("distance")
        if distance is not None:
            bits = f"{distance} bit{'' if distance == 1 else 's'} from the first"
            facts.append("\n" + ("the reference" if distance == 0 and photo is self.first
                                  else bits), style="italic")
        if trash:
            facts.append("\nto the trash (x)", style="bold red")
        self.query_one(".facts", Static).update(facts)

    first: dict[str, Any] | None = None


class GroupPane(Widget):
    """The selected group's photos: as many cards as fit, made once per size and reused."""

    DEFAULT_CSS = """
    GroupPane {
        width: 1fr;
        height: 1fr;
        layout: grid;
        grid-size: 1;
        grid-gutter: 0 0;
        grid-rows: auto;
        padding: 0 1;
    }
    GroupPane > .dupes-none {
        padding: 2 4;
        color: $text-muted;
        width: 1fr;
        column-span: 99;
    }
    """

    class Resized(Message):
        pass

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.cards: list[DupeCard] = []

    def compose(self) -> ComposeResult:
        yield Static("", classes="dupes-none")

    card_rows = 9  # picture rows of a card, set by the screen from the cell size

    async def on_resize(self, event: events.Resize) -> None:
        await self.fit(event.size.width, event.size.height)

    async def fit(self, width: int, height: int) -> None:
        """As many cards as fit: columns by width, rows of cards by height (a card is its
        picture, caption, two lines of folder, three of facts and its border)."""
        cols = max(1, (width - 2) // 26)
        lines = max(1, height // (self.card_rows + 8))
        fit = cols * lines
        self.styles.grid_size_columns = cols
        if fit != len(self.cards):
            for card in self.cards:
                await removed(card.remove())
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
        Binding("d,space", "mark_trash", "Mark for trash"),
        Binding("x", "trash", "Trash marked"),
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
        self.to_trash: dict[int, dict[str, Any]] = {}  # photo id -> photo

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
        shown = self.groups[self.group_index].get("key") if self.groups else None
        self.groups.extend(new)
        # Most bytes to win back first (the daemon orders by count); stable, so equal
        # groups keep the daemon's order.
        self.groups.sort(key=wasted, reverse=True)
        self.next_cursor = page.get("next_cursor")
        self.total_groups = int(page.get("total_groups") or len(self.groups))
        options = self.query_one(OptionList)
        options.clear_options()
        options.add_options([Option(group_label(g, self.kind)) for g in self.groups])
        if not reset and shown is not None:
            at = next((i for i, g in enumerate(self.groups) if g.get("key") == shown), 0)
            self.group_index = at
            with options.prevent(OptionList.OptionHighlighted):
                options.highlighted = at
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
        rows = pane.card_rows
        keys = []
        for i, card in enumerate(pane.cards):
            index = self.first_card + i
            photo = photos[index] if index < len(photos) else None
            card.first = photos[0] if photos else None
            card.assign(photo, rows, photo is not None and int(photo["id"]) in self.to_trash)
            card.set_class(index == self.card_index, "-selected")
            if photo is None:
                continue
            card.key = self.images.key(photo, CARD_COLS, rows)
            card.query_one(ImageView).show(self.images.get(card.key),
                                           placeholder(photo, self.images))
            keys.append(card.key)
        self.images.want(self, keys, self._ready)
        hidden = len(photos) - min(len(photos), fit)
        if hidden:  # (a message of its own times out; this one must not wipe it)
            self.say(f"{len(photos)} photos in this group; h/l move along them")

    def on_group_pane_resized(self, message: GroupPane.Resized) -> None:
        self._render_group()

    def on_resize(self, event: events.Resize) -> None:
        pane = self.query_one(GroupPane)
        cw, ch = self.images.cell
        rows = min(max(2, round(CARD_COLS * cw * 0.75 / ch)), max(3, pane.size.height - 10))
        if rows != pane.card_rows:
            pane.card_rows = rows
            self.call_after_refresh(pane.fit, pane.size.width, pane.size.height)

    # -- the trash ------------------------------------------------------------------------
    def action_mark_trash(self) -> None:
        if not self.groups:
            return
        photos = self.groups[self.group_index].get("photos") or []
        if not photos:
            return
        photo = photos[min(self.card_index, len(photos) - 1)]
        pid = int(photo["id"])
        if pid in self.to_trash:
            del self.to_trash[pid]
        elif sum(int(p["id"]) not in self.to_trash for p in photos) <= 1:
            self.say("that is the last copy left in this group: it stays", error=True)
            return
        else:
            self.to_trash[pid] = photo
        self._render_group()
        self.say(f"{len(self.to_trash)} marked for the trash; x moves them there")

    def action_trash(self) -> None:
        if not self.to_trash:
            self.say("nothing marked: d marks the copy under the cursor")
            return
        marked = list(self.to_trash.values())

        def answered(yes: bool | None) -> None:
            if yes:
                self.send_to_trash([int(p["id"]) for p in marked])

        self.app.push_screen(ConfirmTrash(marked), answered)

    @work(group="trash", exclusive=True)
    async def send_to_trash(self, ids: list[int]) -> None:
        try:
            out = await self.link.call("photos.trash", {"ids": ids}, timeout=60)
        except RPC_ERRORS as exc:
            self.say(f"nothing moved: {exc}", error=True)
            return
        gone = {int(t["id"]) for t in out.get("trashed") or []}
        for pid in gone:
            self.to_trash.pop(pid, None)
        for group in self.groups:
            group["photos"] = [p for p in group.get("photos") or [] if int(p["id"]) not in gone]
            group["count"] = len(group["photos"])
        failed = out.get("failed") or []
        self.say(f"moved {len(gone)} to the trash" + (
            f"; {len(failed)} not: {failed[0].get('message')}" if failed else ""),
            error=bool(failed))
        self.load_groups(reset=True)  # the scan it started takes them out of the catalog

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


class ConfirmTrash(ModalScreen[bool]):
    """Names every file that would go before anything goes."""

    DEFAULT_CSS = """
    ConfirmTrash {
        align: center middle;
        background: $background 60%;
    }
    ConfirmTrash > Vertical {
        width: 90;
        max-width: 95%;
        height: auto;
        max-height: 80%;
        border: round $error;
        background: $panel;
        padding: 1 2;
    }
    """
    BINDINGS = [
        Binding("y,enter", "answer(True)", "Move to the trash"),
        Binding("n,escape,q", "answer(False)", "Cancel"),
    ]
    SHOW = 12

    def __init__(self, photos: list[dict[str, Any]]) -> None:
        super().__init__()
        self.photos = photos

    def compose(self) -> ComposeResult:
        total = sum(int(p.get("size") or 0) for p in self.photos)
        lines = Text()
        lines.append(f"Move {fmt.count(len(self.photos), 'file')} ({fmt.size(total)}) to the "
                     "trash?\n\n", style="bold")
        for p in self.photos[:self.SHOW]:
            lines.append(f"  {p.get('path') or p.get('name')}\n", style="")
        if len(self.photos) > self.SHOW:
            lines.append(f"  … and {len(self.photos) - self.SHOW} more\n")
        lines.append("\nThey go to the freedesktop trash on the daemon's host (restorable), "
                     "and leave the catalog.\n", style="dim")
        lines.append("y", style="bold")
        lines.append(" or Enter: move them   ")
        lines.append("n", style="bold")
        lines.append(" or Esc: keep them")
        with Vertical():
            yield Static(lines)

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
