"""Sixel and Kitty through tmux's passthrough: where to draw, when, and what to clear.

tmux keeps its own copy of the pane's text and redraws the terminal from it; it passes a
wrapped sequence (``ESC P tmux; …``, see ``graphics.wrap_tmux``) to the terminal outside as
it is, at wherever that terminal's cursor happens to be. So a Sixel sent through tmux:

- is positioned in the *outer* terminal's coordinates (the pane's offset from
  ``tmux display``, plus a status line at the top), between a cursor save and restore so
  tmux's idea of the cursor stays true;
- is not erased when the app redraws the cells under it, because tmux sends only cells that
  changed: a view that drew one clears its old rectangle itself (spaces in its background
  colour, also through the passthrough) before drawing another or when it stops showing one;
- is lost when tmux redraws the window (another window or pane in front, a split, a zoom,
  a resize). ``Pane.watch`` asks tmux twice a second where the pane is and whether it is
  visible; when that changes the app forgets what was drawn (tmux painted over it) and
  redraws its pictures if the pane is visible. Nothing is drawn while it is not.

Kitty needs less: its pictures are placed with Unicode placeholders, which tmux keeps and
redraws as text, so only the image transmission goes through the passthrough.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

from lightbox.tui.imaging.graphics import wrap_tmux

log = logging.getLogger("lightbox.tui.tmux")
POLL = 0.5
FORMAT = ("#{pane_top} #{pane_left} #{window_active} #{pane_active} #{window_zoomed_flag} "
          "#{session_attached} #{status} #{status-position}")
_APC = re.compile(r"\x1b_G.*?\x1b\\", re.DOTALL)


@dataclass(frozen=True)
class PaneState:
    top: int = 0  # the pane's first row on the outer terminal (status line included)
    left: int = 0
    visible: bool = True


def parse(line: str) -> PaneState | None:
    """One line of ``FORMAT`` output; None when tmux said something else."""
    parts = line.split()
    if len(parts) < 8 or not all(p.lstrip("-").isdigit() for p in parts[:6]):
        return None
    top, left, window_active, pane_active, zoomed, attached = (int(p) for p in parts[:6])
    status, position = parts[6], parts[7]
    lines = 0
    if position == "top" and status != "off":
        lines = int(status) if status.isdigit() else 1
    visible = bool(window_active) and attached > 0 and bool(pane_active or not zoomed)
    return PaneState(top + lines, left, visible)


class Pane:
    """This pane as tmux shows it; ``state`` is kept current by ``watch``."""

    def __init__(self, pane: str, state: PaneState | None = None) -> None:
        self.pane = pane
        self.state = state or PaneState()
        self.generation = 0  # counts changes: a view drew in an older one -> tmux erased it

    async def ask(self) -> PaneState | None:
        target = ["-t", self.pane] if self.pane else []
        try:
            proc = await asyncio.create_subprocess_exec(
                "tmux", "display", "-p", *target, FORMAT, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL)
            out, _ = await asyncio.wait_for(proc.communicate(), 2)
        except (OSError, TimeoutError) as exc:
            log.debug("tmux display: %r", exc)
            return None
        return parse(out.decode(errors="replace").strip())

    def update(self, state: PaneState) -> bool:
        if state == self.state:
            return False
        log.info("pane %s: %s -> %s", self.pane, self.state, state)
        self.state = state
        self.generation += 1
        return True

    async def watch(self, changed: Callable[[PaneState], None],
                    interval: float = POLL) -> None:
        """Poll tmux for good (the app runs this as a worker and cancels it at exit)."""
        while True:
            state = await self.ask()
            if state is not None and self.update(state):
                with contextlib.suppress(Exception):
                    changed(state)
            await asyncio.sleep(interval)

    # -- sequences ------------------------------------------------------------------------
    def at(self, x: int, y: int) -> str:
        """Cursor to the pane's cell (x, y), in the outer terminal's coordinates."""
        return f"\x1b[{self.state.top + y + 1};{self.state.left + x + 1}H"

    def clear(self, rect: tuple[int, int, int, int], background: tuple[int, int, int]) -> str:
        """Spaces over ``rect`` (x, y, width, height in pane cells): the outer terminal
        erases a Sixel under the text it writes."""
        x, y, w, h = rect
        r, g, b = background
        fill = f"\x1b[48;2;{r};{g};{b}m" + " " * w
        return "".join(self.at(x, y + k) + fill for k in range(h))

    def draw(self, sequence: str, at: tuple[int, int],
             stale: tuple[int, int, int, int] | None,
             background: tuple[int, int, int]) -> str:
        """One passthrough: save the cursor, clear ``stale``, draw, restore."""
        inner = "\x1b7" + (self.clear(stale, background) if stale else "")
        if sequence:
            inner += self.at(*at) + sequence
        return wrap_tmux(inner + "\x1b8")


def wrap_kitty(data: str) -> str:
    """Each APC of a Kitty transmission in its own passthrough (tmux limits their size)."""
    return "".join(wrap_tmux(chunk) for chunk in _APC.findall(data))
