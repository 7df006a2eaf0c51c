"""The command palette (Ctrl-p): every action of the screen in front, by name, plus the
app's own (graphics mode, thumbnail size, screens). Built from the bindings, like the help
screen, so an action with a key is always in both."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from typing import TYPE_CHECKING

from textual.app import SystemCommand
from textual.binding import Binding
from textual.dom import DOMNode
from textual.screen import Screen
from textual.widget import Widget

from lightbox.tui.imaging.graphics import LABELS, SYMBOL_SETS
from lightbox.tui.screens.help import key_label

if TYPE_CHECKING:
    from lightbox.tui.app import LightboxApp


def _offered(node: DOMNode) -> bool:
    """Only our own widgets, and only those on screen: Textual's inputs bring editing
    commands ("Delete left") nobody looks for in a palette, and a closed search bar's
    "Close search" has nothing to close."""
    if not type(node).__module__.startswith("lightbox."):
        return False
    if isinstance(node, Widget):
        return node.display and node.region.area > 0 and all(
            a.display for a in node.ancestors if isinstance(a, Widget))
    return True


def commands(app: LightboxApp, screen: Screen[object]) -> Iterable[SystemCommand]:
    seen: set[str] = set()
    titles: set[str] = set()
    sources = [screen, *(w for w in screen.query("*") if w.BINDINGS and _offered(w))]
    for node in sources:
        for b in node.BINDINGS:
            if not isinstance(b, Binding) or not b.description or b.action in seen \
                    or b.description.lower() in titles:
                continue
            seen.add(b.action)
            titles.add(b.description.lower())
            yield SystemCommand(
                b.description, f"key: {key_label(b.key)}",
                functools.partial(node.run_action, b.action), discover=b.show)
    yield from graphics_commands(app)
    yield SystemCommand("Help: keys", "every key binding (?)", app.action_help)
    if "quit" not in titles:  # the screen's own "Quit" (q) is already there
        yield SystemCommand("Quit", "leave lightbox (Ctrl-c)", app.exit)


def graphics_commands(app: LightboxApp) -> Iterable[SystemCommand]:
    """"auto (detected: …)" and the modes this terminal can show, for this session only (a
    choice is saved on purpose in the settings screen, per terminal: ``imaging.choice``)."""
    g = app.graphics
    session = "this session only; save a choice in the settings screen"
    if g.detected and g.mode != g.detected:
        yield SystemCommand(f"Graphics: auto (detected: {LABELS[g.detected]})", session,
                            functools.partial(app.set_graphics, "auto"))
    for mode in app.available_modes():
        if mode != g.mode:
            yield SystemCommand(f"Graphics: {LABELS[mode]}", session,
                                functools.partial(app.set_graphics, mode))
    if g.mode == "symbols":
        for name in SYMBOL_SETS:
            if name != g.symbols:
                yield SystemCommand(
                    f"Graphics: symbols with {name}",
                    "sextants need a terminal or font that has them; " + session,
                    functools.partial(app.set_graphics, "symbols", name))
