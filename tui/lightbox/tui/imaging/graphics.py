"""How this terminal draws pictures, decided once, before Textual takes over the terminal.

textual-image asks the terminal what it supports when its renderables are *imported* (a
device-attributes query, then a Kitty graphics query, each answered within 0.1 s) and
measures the cell size in pixels. These queries must run before Textual starts, because
Textual's input thread would swallow the answers. So ``detect`` runs in ``main`` before the
App is created. It asks the same questions itself (with textual-image's terminal helpers)
rather than importing the renderables, so it can skip the Kitty query inside tmux, which
shows that query's APC sequence as the pane title.

What it finds is a ``Graphics``: the mode in use, the modes this terminal can show (the
command palette offers only those), the symbol set for the symbols mode, and the reasons,
logged to ``LIGHTBOX_TUI_LOG``. Without Sixel or Kitty the choice is ``symbols``: two colours
per cell over block shapes (see ``symbols``), which any terminal with 24-bit colour draws.

Inside tmux: tmux answers the device-attributes query itself (with a 4 only when it was built
with Sixel, 3.4 and later). Where ``allow-passthrough`` is on (tmux 3.3 and later; asked with
``tmux show``), the same query is wrapped in tmux's passthrough (``ESC P tmux; ...``) and the
terminal outside answers: a Sixel xterm says 4, and lightbox then draws Sixel through tmux
(``tmux.py`` wraps, positions and clears). Kitty outside tmux is recognised from tmux's own
record of its client (``client_termname``), and drawn with Unicode placeholders, which tmux
keeps as text. Without passthrough, the symbols mode.

Over a slow SSH link the answer comes too late and the choice settles for symbols; the
``--graphics`` flag, ``LIGHTBOX_GRAPHICS`` and a choice saved for this terminal override it
(``choice``). A forced mode skips the capability query altogether (no 0.2 s of waiting at
start). A terminal that reports 0 columns makes textual-image divide by zero: that, and any
other failure to ask, falls back to symbols and a guessed cell size rather than to a crash.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

MODES = ("auto", "kitty", "sixel", "symbols", "halfcell", "none")
DRAWN = ("kitty", "sixel", "symbols", "halfcell", "none")
TEXT = ("symbols", "halfcell", "none")  # what every terminal can show
LABELS = {"kitty": "Kitty graphics", "sixel": "Sixel", "symbols": "symbols",
          "halfcell": "half-cells", "none": "no images"}
SYMBOL_SETS = ("blocks", "sextants")
# Terminals that draw the Symbols for Legacy Computing themselves (so sextants never depend
# on the font), recognised by TERM, TERM_PROGRAM or tmux's client_termname/termtype.
SEXTANT_TERMINALS = ("kitty", "foot", "wezterm", "ghostty", "contour", "konsole")
DEFAULT_CELL = (10, 20)  # what textual-image assumes too (a VT340's cell)
QUERY_TIMEOUT = 0.1

log = logging.getLogger("lightbox.tui.graphics")
# textual-image logs failed terminal queries as warnings with a traceback; with no logging
# configured Python would print them on the terminal the UI is about to take over.
logging.getLogger("textual_image").addHandler(logging.NullHandler())
log.addHandler(logging.NullHandler())


@dataclass(frozen=True)
class Tmux:
    """What tmux says about itself and the terminal it runs in."""

    version: str
    passthrough: bool  # allow-passthrough is on for this pane
    client_term: str = ""  # the outer terminal's TERM
    client_type: str = ""  # what the outer terminal called itself (XTVERSION / DA2)
    pane: str = ""

    @property
    def supports_passthrough(self) -> bool:
        return self.passthrough and _version(self.version) >= (3, 3)


def _version(text: str) -> tuple[int, int]:
    digits = "".join(c if c.isdigit() or c == "." else " " for c in text).split()
    parts = ([*digits[0].split("."), "0"])[:2] if digits else ["0", "0"]
    try:
        return int(parts[0]), int(parts[1] or 0)
    except ValueError:
        return (0, 0)


@dataclass(frozen=True)
class Graphics:
    """The chosen mode, the cell size in pixels and how the choice was made (for the UI)."""

    mode: str
    cell_width: int = DEFAULT_CELL[0]
    cell_height: int = DEFAULT_CELL[1]
    requested: str = "auto"
    detected: str | None = None  # what auto-detection said, when it ran
    note: str = ""
    available: tuple[str, ...] = DRAWN  # what this terminal can show (the palette's list)
    symbols: str = "blocks"  # the symbol set of the symbols mode
    tmux: Tmux | None = None
    terminal: str = ""  # which terminal this is, for choices saved per terminal
    reasons: tuple[str, ...] = field(default=(), compare=False)

    @property
    def cell(self) -> tuple[int, int]:
        return self.cell_width, self.cell_height

    @property
    def passthrough(self) -> bool:
        """Sixel and Kitty sequences go through tmux's passthrough."""
        return (self.mode in ("sixel", "kitty") and self.tmux is not None
                and self.tmux.supports_passthrough)

    def with_mode(self, mode: str, note: str = "chosen in the app") -> Graphics:
        """The same terminal drawn another way (a manual switch while the app runs)."""
        return replace(self, mode=mode, requested=mode, note=note)

    def describe(self) -> str:
        parts = [self.symbols] if self.mode == "symbols" else []
        parts.append("detected" if self.requested == "auto" else "forced")
        if self.passthrough:
            parts.append("through tmux passthrough")
        if self.note:
            parts.append(self.note)
        return (f"{LABELS[self.mode]} ({'; '.join(parts)}, "
                f"cell {self.cell_width}x{self.cell_height} px)")


def wrap_tmux(sequence: str) -> str:
    """``sequence`` through tmux's passthrough: every ESC doubled inside ``ESC P tmux;``."""
    return "\x1bPtmux;" + sequence.replace("\x1b", "\x1b\x1b") + "\x1b\\"


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


def query_sixel(through_tmux: bool = False) -> bool:
    """Primary device attributes: a 4 among them means Sixel (tmux answers for itself;
    ``through_tmux``: the terminal outside tmux answers)."""
    query = wrap_tmux("\x1b[c") if through_tmux else "\x1b[c"
    answer = _ask(query, "\x1b[?", "c", QUERY_TIMEOUT * (3 if through_tmux else 1))
    log.info("device attributes%s: %r", " through tmux" if through_tmux else "", answer)
    return answer is not None and "4" in answer[3:-1].split(";")


def query_kitty() -> bool:
    """Kitty's graphics protocol answers a query action with OK."""
    answer = _ask("\x1b_Gi=31,s=1,v=1,a=q,t=d,f=24;AAAA\x1b\\", "\x1b_G", "\x1b\\")
    log.info("kitty graphics query: %r", answer)
    return answer is not None and answer.rstrip("\x1b\\").endswith("OK")


def tmux_info(env: Mapping[str, str]) -> Tmux | None:
    """Ask tmux (the command) about this pane and its client; None outside tmux."""
    if not env.get("TMUX"):
        return None
    pane = env.get("TMUX_PANE", "")
    target = ["-t", pane] if pane else []
    try:
        shown = subprocess.run(
            ["tmux", "display", "-p", *target,
             "#{version}\t#{client_termname}\t#{client_termtype}"],
            capture_output=True, text=True, timeout=2)
        option = subprocess.run(["tmux", "show", "-Apv", *target, "allow-passthrough"],
                                capture_output=True, text=True, timeout=2)
    except (OSError, subprocess.SubprocessError) as exc:
        log.info("inside tmux, but cannot ask it: %r", exc)
        return Tmux("", False, pane=pane)
    version, term, kind = ([*shown.stdout.rstrip("\n").split("\t"), "", "", ""])[:3]
    passthrough = option.stdout.strip() in ("on", "all")
    info = Tmux(version, passthrough, term, kind, pane)
    log.info("inside tmux: %s", info)
    return info


def symbol_set(env: Mapping[str, str], tmux: Tmux | None) -> tuple[str, str]:
    """Sextants where the terminal draws them itself, else the block elements."""
    names = [env.get("TERM", ""), env.get("TERM_PROGRAM", "")]
    if tmux is not None:
        names += [tmux.client_term, tmux.client_type]
    for name in names:
        low = name.lower()
        for known in SEXTANT_TERMINALS:
            if known in low:
                return "sextants", f"{name} draws sextants itself"
    return "blocks", "block elements (sextants need a font that has them)"


def terminal_key(env: Mapping[str, str], tmux: Tmux | None) -> str:
    """A name for this kind of terminal: a saved choice applies only where it was made."""
    outer = env.get("TERM_PROGRAM") if env.get("TERM_PROGRAM") not in (None, "", "tmux") \
        else None
    base = outer or env.get("TERM", "") or "unknown"
    if tmux is not None:
        return f"tmux in {tmux.client_term or 'unknown'}"
    return base


def _auto_mode(env: Mapping[str, str], tmux: Tmux | None) -> tuple[str, list[str], str]:
    """The mode to use, the picture modes this terminal can show, and why."""
    try:
        if query_sixel():
            return "sixel", ["sixel"], "the terminal reports Sixel"
        if tmux is not None:
            if not tmux.supports_passthrough:
                return "symbols", [], (f"inside tmux {tmux.version} without allow-passthrough "
                                       "(set -g allow-passthrough on for Sixel or Kitty)")
            if "kitty" in f"{tmux.client_term} {tmux.client_type}".lower():
                return "kitty", ["kitty"], f"Kitty ({tmux.client_term}) through tmux"
            if query_sixel(through_tmux=True):
                return "sixel", ["sixel"], (f"{tmux.client_type or tmux.client_term} reports "
                                            "Sixel through tmux passthrough")
            return "symbols", [], "inside tmux; the terminal outside has no Sixel or Kitty"
        if query_kitty():
            return "kitty", ["kitty"], "the terminal answers the Kitty graphics query"
    except Exception as exc:  # a terminal that reports 0 columns, a closed stdin, ...
        log.warning("could not query the terminal: %r", exc)
        return "symbols", [], f"terminal query failed ({type(exc).__name__})"
    if env.get("SSH_CONNECTION"):
        return "symbols", [], ("no graphics reply within 0.1 s; over SSH try --graphics sixel "
                               "or kitty")
    return "symbols", [], "no Sixel or Kitty reply"


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


def detect(requested: str = "auto", env: Mapping[str, str] | None = None, *,
           symbols: str = "auto") -> Graphics:
    """Decide the graphics mode. Call before the App runs (see the module docstring)."""
    env = os.environ if env is None else env
    if requested not in MODES:
        raise ValueError(f"graphics: expected one of {', '.join(MODES)}, not {requested!r}")
    if symbols not in ("auto", *SYMBOL_SETS):
        raise ValueError(f"symbols: expected auto or one of {', '.join(SYMBOL_SETS)}, "
                         f"not {symbols!r}")
    interactive = bool(sys.__stdout__ and sys.__stdout__.isatty())
    cell = _cell_size() if interactive else DEFAULT_CELL
    tmux = tmux_info(env)
    chosen_set, set_reason = symbol_set(env, tmux)
    if symbols != "auto":
        chosen_set, set_reason = symbols, "chosen"
    base = Graphics("symbols", *cell, symbols=chosen_set, tmux=tmux,
                    terminal=terminal_key(env, tmux))
    if requested != "auto":
        reason = f"forced {requested}; cell {cell[0]}x{cell[1]} px; symbols: {set_reason}"
        log.info("graphics: %s", reason)
        available = tuple(dict.fromkeys((requested, *TEXT)))
        return replace(base, mode=requested, requested=requested, available=available,
                       reasons=(reason,))
    if not interactive:
        return replace(base, detected="symbols", note="not a terminal", available=TEXT,
                       reasons=("not a terminal",))
    mode, pictures, why = _auto_mode(env, tmux)
    reasons = (why, f"cell {cell[0]}x{cell[1]} px", f"symbols: {set_reason}")
    log.info("graphics: detected %s (%s)", mode, "; ".join(reasons))
    note = why if mode == "symbols" and ("tmux" in why or "SSH" in why) else ""
    return replace(base, mode=mode, detected=mode, note=note, available=(*pictures, *TEXT),
                   reasons=reasons)
