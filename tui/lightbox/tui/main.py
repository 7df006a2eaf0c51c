"""Start the TUI: terminal checks first, then the app with an injected client."""

from __future__ import annotations

from lightbox.common.client import Client, Endpoint


def run_app(endpoint: Endpoint, graphics: str = "auto") -> int:
    from lightbox.tui.app import LightboxApp

    app = LightboxApp(client_factory=lambda: Client(endpoint), graphics=graphics)
    app.run()
    return int(app.return_code or 0)
