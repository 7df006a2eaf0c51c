"""The bottom line of every screen: is the daemon there, what is running, how many photos.

The connection state comes first and in colour, because a UI that silently shows stale data
after the daemon died is worse than one that says so. Transient messages ("scan started",
errors from a call) replace the middle for a few seconds.
"""

from __future__ import annotations

from rich.text import Text
from textual.timer import Timer
from textual.widget import Widget

from lightbox.tui import format as fmt
from lightbox.tui import link as linkmod


def indexing_text(status: dict[str, object]) -> str:
    """``indexing 198 …, 12/s``: photos the daemon still has to read, from its
    ``catalog.indexing`` events (``system.status``'s pending count also holds the photos of
    offline roots, which nobody is reading)."""
    live = status.get("indexing")
    if isinstance(live, dict):
        left = int(live.get("pending") or 0)
        if not left:
            return ""
        rate = live.get("rate")
        return f"indexing {left:,} …" + (f", {fmt.rate(float(rate))}" if rate else "")
    return ""


class StatusLine(Widget):
    DEFAULT_CSS = """
    StatusLine {
        height: 1;
        width: 1fr;
        background: $panel;
        color: $text-muted;
        padding: 0 1;
    }
    """

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.state = linkmod.CONNECTING
        self.detail = "connecting…"
        self.jobs = ""
        self.indexing = ""
        self.info = ""
        self.message = ""
        self.message_error = False
        self._timer: Timer | None = None

    def set_link(self, state: str, detail: str) -> None:
        self.state, self.detail = state, detail
        self.refresh()

    def set_status(self, status: dict[str, object]) -> None:
        jobs = status.get("jobs")
        if isinstance(jobs, dict):
            running, queued = int(jobs.get("running") or 0), int(jobs.get("queued") or 0)
            parts = []
            if running:
                parts.append(f"{running} job{'s' if running != 1 else ''} running")
            if queued:
                parts.append(f"{queued} queued")
            self.jobs = ", ".join(parts)
        self.indexing = indexing_text(status)
        self.refresh()

    def set_info(self, info: str) -> None:
        if info != self.info:
            self.info = info
            self.refresh()

    def say(self, message: str, *, error: bool = False, seconds: float = 6.0) -> None:
        self.message, self.message_error = message, error
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(seconds, self._clear)
        self.refresh()

    def _clear(self) -> None:
        self.message = ""
        self.refresh()

    def render(self) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis")
        if self.state == linkmod.CONNECTED:
            text.append("● ", style="green")
            text.append("connected", style="green")
        elif self.state == linkmod.CONNECTING:
            text.append("○ connecting…", style="yellow")
        else:
            text.append("✕ not connected: ", style="bold red")
            text.append(self.detail, style="red")
        if self.message:
            text.append("  ")
            text.append(self.message, style="bold red" if self.message_error else "bold")
        right = "  ·  ".join(p for p in (self.indexing, self.jobs, self.info) if p)
        if right:
            room = self.size.width - text.cell_len - 2
            if room > 8:
                text.append(" " * max(2, room - len(right)))
                text.append(right[-room:] if len(right) > room else right)
        return text
