"""Start the TUI: decide the graphics mode while the terminal can still answer, then run the
app with an injected client.

The order matters: textual-image asks the terminal about graphics and cell size on import,
and that only works before Textual starts reading stdin. The mode comes from ``--graphics``,
else ``LIGHTBOX_GRAPHICS`` (both resolved by the launcher), else the ``graphics`` setting in
``tui.toml``, else automatic detection.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping

from lightbox.common.client import Client, Endpoint
from lightbox.tui.imaging.graphics import detect
from lightbox.tui.settings import Place, Settings, config_file, state_file


def choose_mode(flag: str | None, env: Mapping[str, str], settings: Settings) -> str:
    """``--graphics``, then ``LIGHTBOX_GRAPHICS``, then the setting, then ``auto``."""
    return flag or env.get("LIGHTBOX_GRAPHICS") or settings.graphics or "auto"


def run_app(endpoint: Endpoint, graphics: str | None = None,
            start_command: str | None = None) -> int:
    if os.environ.get("LIGHTBOX_TUI_LOG"):
        # The terminal belongs to the UI: debug logs go to a file, when asked for.
        logging.basicConfig(filename=os.environ["LIGHTBOX_TUI_LOG"], level=logging.DEBUG,
                            format="%(asctime)s %(name)s %(message)s")
    settings = Settings.load(config_file())
    # Before Textual starts: detection queries the terminal.
    chosen = detect(choose_mode(graphics, os.environ, settings))
    if chosen.mode == "kitty":
        import textual_image.renderable.tgp  # noqa: F401 - needed by the Kitty encoder

    from lightbox.tui.app import LightboxApp

    app = LightboxApp(
        client_factory=lambda: Client(endpoint), graphics=chosen, settings=settings,
        start=Place.load(state_file(endpoint=endpoint.address)),
        state_path=state_file(endpoint=endpoint.address))
    if start_command:
        app.link.start_hint = f"start it with `{start_command}`"
    app.run()
    return int(app.return_code or 0)
