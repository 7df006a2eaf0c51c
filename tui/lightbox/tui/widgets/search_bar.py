"""The search bar (``/``): text, a date range, a camera, GPS or not, here or everywhere.

It only collects the filters and says ``Submitted`` or ``Closed``; the browser runs the
search. Dates are checked here (YYYY-MM-DD, or YYYY / YYYY-MM, widened to the whole year or
month) so a typo is pointed at before it reaches the daemon.

Its fields are mounted the first time it opens, not with the browser: hidden until ``/``,
they were 17 widgets (inputs, a select with its overlay, a checkbox) that the start styled,
restyled and laid out before the first folder could be drawn (issue 13).
"""

from __future__ import annotations

import calendar
import re

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import Checkbox, Input, Label, Select

from lightbox.tui.model import Filters

_DATE = re.compile(r"^(\d{4})(?:-(\d{1,2})(?:-(\d{1,2}))?)?$")


def widen(text: str, end: bool) -> str | None:
    """``2023`` -> ``2023-01-01`` (or ``2023-12-31`` for the end); None when malformed."""
    text = text.strip()
    if not text:
        return ""
    m = _DATE.match(text)
    if not m:
        return None
    year = int(m[1])
    month = int(m[2]) if m[2] else (12 if end else 1)
    if not 1 <= month <= 12:
        return None
    last = calendar.monthrange(year, month)[1]
    day = int(m[3]) if m[3] else (last if end else 1)
    if not 1 <= day <= last:
        return None
    return f"{year:04d}-{month:02d}-{day:02d}"


class SearchBar(Horizontal):
    BINDINGS = [Binding("escape", "close", "Close search", show=True)]
    DEFAULT_CSS = """
    SearchBar {
        height: 1;
        background: $boost;
        display: none;
    }
    SearchBar.-open {
        display: block;
    }
    SearchBar Label {
        padding: 0 1 0 1;
        color: $text-muted;
    }
    SearchBar Input {
        width: 1fr;
        min-width: 10;
        background: $surface;
    }
    SearchBar Input:focus {
        background: $surface-lighten-1;
    }
    SearchBar #search-from, SearchBar #search-to {
        width: 12;
        min-width: 12;
    }
    SearchBar #search-camera {
        width: 16;
    }
    SearchBar Select {
        width: 16;
    }
    SearchBar Checkbox {
        width: auto;
        padding: 0 1;
    }
    """

    class Submitted(Message):
        def __init__(self, filters: Filters) -> None:
            super().__init__()
            self.filters = filters

    class Closed(Message):
        pass

    class Invalid(Message):
        def __init__(self, problem: str) -> None:
            super().__init__()
            self.problem = problem

    @property
    def built(self) -> bool:
        """The fields are mounted (the first ``open`` mounts them)."""
        return bool(self.children)

    def _fields(self) -> ComposeResult:
        yield Label("/")
        yield Input(placeholder="name or path", id="search-text", compact=True)
        yield Label("from")
        yield Input(placeholder="YYYY-MM-DD", id="search-from", compact=True)
        yield Label("to")
        yield Input(placeholder="YYYY-MM-DD", id="search-to", compact=True)
        yield Label("camera")
        yield Input(placeholder="make/model", id="search-camera", compact=True)
        yield Select([("with GPS", True), ("without GPS", False)], prompt="GPS: any",
                     id="search-gps", compact=True)
        yield Checkbox("everywhere", id="search-everywhere", compact=True)

    async def open(self, filters: Filters | None) -> None:
        if not self.built:
            await self.mount_all(self._fields())
        self.add_class("-open")
        if filters is not None:
            self.query_one("#search-text", Input).value = filters.text
            self.query_one("#search-from", Input).value = filters.date_from
            self.query_one("#search-to", Input).value = filters.date_to
            self.query_one("#search-camera", Input).value = filters.camera
            gps = self.query_one("#search-gps", Select)
            if filters.has_gps is None:
                gps.clear()
            else:
                gps.value = filters.has_gps
            self.query_one("#search-everywhere", Checkbox).value = filters.everywhere
        self.query_one("#search-text", Input).focus()

    def close(self) -> None:
        self.remove_class("-open")

    @property
    def is_open(self) -> bool:
        return self.has_class("-open")

    def filters(self) -> Filters | str:
        """The filters, or what is wrong with them (none yet: the bar never opened)."""
        if not self.built:
            return Filters()
        date_from = widen(self.query_one("#search-from", Input).value, end=False)
        date_to = widen(self.query_one("#search-to", Input).value, end=True)
        if date_from is None:
            return "from: expected a date like 2023-06-14 (or 2023, 2023-06)"
        if date_to is None:
            return "to: expected a date like 2023-06-14 (or 2023, 2023-06)"
        if date_from and date_to and date_from > date_to:
            return "the date range is backwards (from is after to)"
        gps = self.query_one("#search-gps", Select).value
        return Filters(
            text=self.query_one("#search-text", Input).value.strip(),
            date_from=date_from,
            date_to=date_to,
            camera=self.query_one("#search-camera", Input).value.strip(),
            has_gps=gps if isinstance(gps, bool) else None,
            everywhere=self.query_one("#search-everywhere", Checkbox).value,
        )

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.submit()

    def submit(self) -> None:
        got = self.filters()
        if isinstance(got, str):
            self.post_message(self.Invalid(got))
        else:
            self.post_message(self.Submitted(got))

    def action_close(self) -> None:
        self.post_message(self.Closed())
