"""What every screen shares: listening to the daemon link, the status line, image refresh.

A screen listens while it is mounted (the link posts it ``LinkChanged``, ``StatusChanged``,
``DaemonEvent`` and ``Resync``) and stops when it is popped. When a screen becomes active
again (a dialog closed, a screen on top was popped) its image views are redrawn: a Sixel on
the terminal does not survive being painted over.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from textual.screen import Screen
from textual.widgets import Footer

from lightbox.tui.imaging.view import ImageView
from lightbox.tui.messages import LinkChanged, StatusChanged
from lightbox.tui.widgets.status_line import StatusLine

if TYPE_CHECKING:
    from lightbox.tui.app import LightboxApp
    from lightbox.tui.imaging.service import ImageService
    from lightbox.tui.link import Link


class LinkedScreen(Screen[Any]):
    @property
    def lb(self) -> LightboxApp:
        return cast("LightboxApp", self.app)

    @property
    def link(self) -> Link:
        return self.lb.link

    @property
    def images(self) -> ImageService:
        return self.lb.images

    def on_mount(self) -> None:
        self.link.listen(self)
        line = self.status_line
        if line is not None:
            line.set_link(self.link.state, self.link.detail)
            line.set_status(self.link.status)
            if not line.info:
                # Only when the screen has not said more already: the browser's first page
                # can be shown before this handler runs (Textual runs every class's
                # on_mount), and its "N photos · mode" must stay.
                line.set_info(self.lb.graphics_label())
        for footer in self.query(Footer):  # the key_hints preference (settings screen)
            footer.display = self.lb.settings.key_hints

    def on_unmount(self) -> None:
        self.link.unlisten(self)

    @property
    def status_line(self) -> StatusLine | None:
        found = self.query(StatusLine)
        return found.first() if found else None

    def say(self, message: str, *, error: bool = False) -> None:
        line = self.status_line
        if line is not None:
            line.say(message, error=error)

    def on_link_changed(self, message: LinkChanged) -> None:
        line = self.status_line
        if line is not None:
            line.set_link(message.state, message.detail)

    def on_status_changed(self, message: StatusChanged) -> None:
        line = self.status_line
        if line is not None:
            line.set_status(message.status)

    def on_screen_resume(self) -> None:
        self.call_after_refresh(self.refresh_images)

    def on_screen_suspend(self) -> None:
        for view in self.query(ImageView):
            view.clear_drawn()  # through tmux, pictures are not painted over: clear them

    def refresh_images(self) -> None:
        for view in self.query(ImageView):
            view.refresh()
