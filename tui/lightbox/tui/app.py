"""The Textual application: owns the client, hands it to screens."""

from __future__ import annotations

from collections.abc import Callable

from textual.app import App

from lightbox.common.client import Client
from lightbox.tui.screens.status import StatusScreen


class LightboxApp(App[int]):
    TITLE = "lightbox"
    CSS_PATH = "app.tcss"
    BINDINGS = [("q", "quit", "Quit")]

    def __init__(self, client_factory: Callable[[], Client], graphics: str = "auto") -> None:
        super().__init__()
        self.client_factory = client_factory
        self.client = client_factory()
        self.graphics = graphics

    def on_mount(self) -> None:
        self.push_screen(StatusScreen(self.client))

    async def on_unmount(self) -> None:
        await self.client.close()
