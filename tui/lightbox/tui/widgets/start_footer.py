"""The browser's footer, whose keys wait for the first folder.

Textual's ``Footer`` composes a widget per key hint (13 in the browser) as soon as the
screen's bindings are known, and again at every focus change; at start that was the most
styled part of the screen before the first folder could be drawn (about a tenth of the
start's CPU, issue 13). This one keeps its line (same height and place, so nothing moves)
and composes the keys once ``show_keys`` is called: when the first folder is on screen, or
the browser says why there is none. From then on it is Textual's footer.
"""

from __future__ import annotations

from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer


class StartFooter(Footer):
    """Styled as ``Footer`` (CSS type selectors match subclasses)."""

    class KeysDue(Message, bubble=False):
        """To itself: compose the keys, in its own context (Textual's footer binds its keys'
        ``compact`` to the footer that is composing, found from the running message pump)."""

    held = True

    def bindings_changed(self, screen: Screen) -> None:  # type: ignore[type-arg]
        if not self.held:
            super().bindings_changed(screen)

    def show_keys(self) -> None:
        """Compose the key hints soon (once; later calls do nothing)."""
        if self.held:
            self.held = False
            self.post_message(self.KeysDue())

    def on_start_footer_keys_due(self, message: KeysDue) -> None:
        if self.is_attached:
            super().bindings_changed(self.screen)
