"""How this terminal draws pictures, decided once, before Textual takes over the terminal.

textual-image asks the terminal what it supports when its renderables are *imported* (a
device-attributes query, then a Kitty graphics query, each answered within 0.1 s) and
measures the cell size in pixels. These queries must run before Textual starts, because
Textual's input thread would swallow the answers. So ``detect`` runs in ``main`` before the
App is created. It asks the same questions itself (with textual-image's terminal helpers)
rather than importing the renderables, so it can skip the Kitty query inside tmux, which
shows that query's APC sequence as the pane title.

Over a slow SSH link the answer comes too late and textual-image settles for half-cells; the
``--graphics`` flag, ``LIGHTBOX_GRAPHICS`` and the ``graphics`` setting override it. A forced
mode skips the capability query altogether (no 0.2 s of waiting at start). A terminal that
reports 0 columns makes textual-image divide by zero: that, and any other failure to ask,
falls back to half-cells and a guessed cell size rather than to a crash.

Inside tmux, Kitty's protocol needs ``allow-passthrough``, which we cannot see from here, so
an automatic choice of Kitty there becomes half-cells (force ``kitty`` if passthrough is on).
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass

MODES = ("auto", "kitty", "sixel", "halfcell", "none")
DRAWN = ("kitty", "sixel", "halfcell", "none")
LABELS = {"kitty": "Kitty graphics", "sixel": "Sixel", "halfcell": "half-cells",
          "none": "no images"}
DEFAULT_CELL = (10, 20)  # what textual-image assumes too (a VT340's cell)
QUERY_TIMEOUT = 0.1

log = logging.getLogger("lightbox.tui.graphics")
# textual-image logs failed terminal queries as warnings with a traceback; with no logging
# configured Python would print them on the terminal the UI is about to take over.
logging.getLogger("textual_image").addHandler(logging.NullHandler())
log.addHandler(logging.NullHandler())


@dataclass(frozen=True)
class Graphics:
    """The chosen mode, the cell size in pixels and how the choice was made (for the UI)."""

    mode: str
    cell_width: int = DEFAULT_CELL[0]
    cell_height: int = DEFAULT_CELL[1]
    requested: str = "auto"
    detected: str | None = None  # what auto-detection said, when it ran
    note: str = ""

    @property
    def cell(self) -> tuple[int, int]:
        return self.cell_width, self.cell_height

    def with_mode(self, mode: str) -> Graphics:
        """The same terminal drawn another way (a manual switch while the app runs)."""
        return Graphics(mode, self.cell_width, self.cell_height, mode, self.detected,
                        "chosen in the app")

    def describe(self) -> str:
        how = "detected" if self.requested == "auto" else "forced"
        text = f"{LABELS[self.mode]} ({how}"
        if self.note:
            text += f"; {self.note}"
        return text + f", cell {self.cell_width}x{self.cell_height} px)"


def _ask(query: str, start: str, end: str, timeout: float = QUERY_TIMEOUT) -> str | None:
    """Write ``query`` to the terminal and read its answer (None: no answer in time)."""
    from textual_image._terminal import TerminalError, capture_terminal_response

    out = sys.__stdout__
    if out is None:
        return None
    try:
        with capture_terminal_response(start, end, timeout) as response:
            out.write(query)
            out.flush()
    except (TerminalError, TimeoutError, OSError, ValueError):
        return None
    return str(response.sequence)


def query_sixel() -> bool:
    """Primary device attributes: a 4 among them means Sixel (tmux answers for itself)."""
    answer = _ask("\x1b[c", "\x1b[?", "c")
    return answer is not None and "4" in answer[3:-1].split(";")


def query_kitty() -> bool:
    """Kitty's graphics protocol answers a query action with OK."""
    answer = _ask("\x1b_Gi=31,s=1,v=1,a=q,t=d,f=24;AAAA\x1b\\", "\x1b_G", "\x1b\\")
    return answer is not None and answer.rstrip("\x1b\\").endswith("OK")


def _auto_mode(env: Mapping[str, str]) -> tuple[str, str]:
    """Ask the terminal, the way textual-image does on import, but without its Kitty query
    inside tmux: tmux shows an unknown APC sequence as the pane title, and Kitty graphics
    would need passthrough there anyway."""
    try:
        if query_sixel():
            return "sixel", ""
        if env.get("TMUX"):
            return "halfcell", "inside tmux (force kitty or sixel if tmux passes them on)"
        if query_kitty():
            return "kitty", ""
    except Exception as exc:  # a terminal that reports 0 columns, a closed stdin, ...
        log.warning("could not query the terminal: %r", exc)
        return "halfcell", f"terminal query failed ({type(exc).__name__})"
    if env.get("SSH_CONNECTION"):
        return "halfcell", "no graphics reply within 0.1 s; over SSH try --graphics sixel or kitty"
    return "halfcell", ""


def _cell_size() -> tuple[int, int]:
    """The terminal's cell size in pixels; a guess when the terminal will not say."""
    try:
        from textual_image._terminal import get_cell_size

        size = get_cell_size()
        if size.width > 0 and size.height > 0:
            return int(size.width), int(size.height)
    except Exception as exc:  # ZeroDivisionError (0 columns), TerminalError, OSError
        log.warning("could not measure the terminal's cells: %r", exc)
        with contextlib.suppress(Exception):
            # Cache the guess where textual-image looks, so its own code does not ask again.
            from textual_image._terminal import CellSize, get_cell_size

            get_cell_size._result = CellSize(*DEFAULT_CELL)  # type: ignore[attr-defined]
    return DEFAULT_CELL


def detect(requested: str = "auto", env: Mapping[str, str] | None = None) -> Graphics:
    """Decide the graphics mode. Call before the App runs (see the module docstring)."""
    env = os.environ if env is None else env
    if requested not in MODES:
        raise ValueError(f"graphics: expected one of {', '.join(MODES)}, not {requested!r}")
    interactive = bool(sys.__stdout__ and sys.__stdout__.isatty())
    cell = _cell_size() if interactive else DEFAULT_CELL
    if requested != "auto":
        return Graphics(requested, *cell, requested=requested)
    if not interactive:
        return Graphics("halfcell", *cell, detected="halfcell", note="not a terminal")
    mode, note = _auto_mode(env)
    return Graphics(mode, *cell, requested="auto", detected=mode, note=note)
