"""Start the TUI: decide the graphics mode while the terminal can still answer, then run the
app with an injected client.

The order matters: textual-image asks the terminal about graphics and cell size on import,
and that only works before Textual starts reading stdin. The mode comes from ``--graphics``,
else ``LIGHTBOX_GRAPHICS`` (both resolved by the launcher), else a mode saved for this
terminal in ``tui.toml``, else automatic detection (``imaging.choice`` holds the rules).
"""

from __future__ import annotations

import gc
import logging
import os
from concurrent.futures import ThreadPoolExecutor

from lightbox.common.client import Client, Endpoint
from lightbox.tui.imaging import choice
from lightbox.tui.settings import Place, Settings, config_file, state_file


def hold_collections() -> None:
    """No cyclic garbage collection until the first folder is on screen
    (``LightboxApp.started`` collects once, freezes what lives on and turns it back on; so
    do the app's 5 s fallback and its exit). Importing Textual and building the first
    screen allocate hundreds of thousands of objects that all live on: the collections they
    triggered walked them again and again, about an eighth of the start's CPU (issue 13).
    Reference counting still frees everything else; what waits is only cyclic garbage,
    for a second at most."""
    gc.disable()


def run_app(endpoint: Endpoint, graphics: str | None = None,
            start_command: str | None = None) -> int:
    hold_collections()
    if os.environ.get("LIGHTBOX_TUI_LOG"):
        # The terminal belongs to the UI: debug logs go to a file, when asked for.
        logging.basicConfig(filename=os.environ["LIGHTBOX_TUI_LOG"], level=logging.DEBUG,
                            format="%(asctime)s %(name)s %(message)s")
    settings = Settings.load(config_file())
    # Before Textual starts: detection queries the terminal (0.1-0.2 s of waiting for its
    # answers), in a thread while this one imports the app (Textual and the screens, a few
    # tenths of a second), so the wait is not added to the start. Nothing in those imports
    # reads the terminal; a forced mode (``--graphics``, ``LIGHTBOX_GRAPHICS``) asks nothing.
    with ThreadPoolExecutor(1, thread_name_prefix="lightbox-detect") as pool:
        detecting = pool.submit(choice.start, graphics, os.environ, settings)
        from lightbox.tui.app import LightboxApp
        resolved = detecting.result()
    chosen = resolved.graphics
    if resolved.notice:
        settings.problems.append(resolved.notice)
    if "kitty" in chosen.available:
        import textual_image.renderable.tgp  # noqa: F401 - needed by the Kitty encoder

    app = LightboxApp(
        client_factory=lambda: Client(endpoint), graphics=chosen, settings=settings,
        start=Place.load(state_file(endpoint=endpoint.address)),
        state_path=state_file(endpoint=endpoint.address))
    if start_command:
        app.link.start_hint = f"start it with `{start_command}`"
    app.run()
    return int(app.return_code or 0)
