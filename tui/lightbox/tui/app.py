"""The Textual application: owns the daemon link, the image service and the settings, and
hands them to the screens.

The client is injected (``client_factory``) so tests start the app against a real daemon on
a temporary data dir, and so a remote daemon (tcp:// with CURVE keys) is just another
endpoint. The graphics mode is decided before the app is created (see ``graphics``).
"""

from __future__ import annotations

import gc
import sys
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import replace
from pathlib import Path
from typing import Any

from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.worker import Worker, WorkerFailed

from lightbox.common.client import Client
from lightbox.tui.imaging.graphics import LABELS, Graphics
from lightbox.tui.imaging.service import ImageService
from lightbox.tui.imaging.tmux import Pane, PaneState
from lightbox.tui.imaging.view import ImageView
from lightbox.tui.link import Link
from lightbox.tui.model import Query, first_call, saved_folder
from lightbox.tui.settings import Place, Settings

HERE = Path(__file__).parent
RELEASE_IMAGES_AFTER = 5.0  # seconds: images start with the first folder, or after this


async def _result(worker: Worker[Any]) -> Any:
    """What the worker returned, or the exception it raised (not wrapped)."""
    try:
        return await worker.wait()
    except WorkerFailed as exc:
        raise exc.error from None


class LightboxApp(App[int]):
    TITLE = "lightbox"
    # Absolute: subclasses live elsewhere. The browser's own file too (BrowserScreen names
    # it as well): read with the app's, it is parsed once at start; read when the first
    # screen is pushed, it made Textual parse every stylesheet a second time (reparse).
    CSS_PATH = [HERE / "app.tcss", HERE / "screens" / "browser.tcss"]
    BINDINGS = [
        Binding("question_mark", "help", "Help"),
        Binding("ctrl+c", "quit", "Quit", show=False, priority=True),
    ]
    ENABLE_COMMAND_PALETTE = True

    def __init__(
        self,
        client_factory: Callable[[], Client],
        graphics: Graphics | str = "halfcell",
        *,
        settings: Settings | None = None,
        start: Place | None = None,
        state_path: Path | None = None,
        heartbeat: float = 2.0,
    ) -> None:
        super().__init__()
        self.client_factory = client_factory
        self.client = client_factory()
        self.graphics = graphics if isinstance(graphics, Graphics) else Graphics(graphics)
        self.settings = settings or Settings()
        self.state_path = state_path
        self.place = start or Place()
        self.link = Link(self.client, heartbeat=heartbeat)
        self.images = ImageService(self.link, self.graphics)
        self.pane: Pane | None = None  # tmux passthrough: where this pane is (imaging.tmux)
        self._frozen = False
        # The start folder's first page, asked for as the app mounts (``prefetch_start``).
        self._start_page: tuple[Query, int | None, Worker[Any]] | None = None

    def on_mount(self) -> None:
        from lightbox.tui.screens.browser import BrowserScreen

        # The encoder thread is mostly Python and holds the GIL; with the default 5 ms switch
        # interval a key press waits behind it. 1 ms keeps the UI responsive while it works.
        sys.setswitchinterval(0.001)

        self.prefetch_start()  # first: the daemon works on it while the rest starts
        self.run_worker(self.link.run(), name="daemon link", group="link")
        for n in range(self.images.workers):
            self.run_worker(self.images.run(), name=f"images {n}", group="images")
        self._set_background()
        self._watch_pane()
        self.set_timer(RELEASE_IMAGES_AFTER, self._start_timed_out)  # no folder ever shown
        for problem in self.settings.problems:
            self.notify(problem, severity="warning", timeout=10)
        self.push_screen(BrowserScreen(self.place))

    # -- the first folder -------------------------------------------------------------------
    def prefetch_start(self) -> None:
        """Ask for the saved folder's first page now, before the browser is composed: the
        daemon answers while the widgets are built and styled, and the page comes in the
        same call that finds the folder (no listing of the roots or of the folder first)."""
        query = saved_folder(self.place.folder_id, self.place.folder_path)
        if query is None:
            return
        around = self.place.photo_id
        method, params = first_call(query, around)
        worker = self.run_worker(self.link.call(method, params), name="start page",
                                 group="start", exit_on_error=False)
        self._start_page = (query, around, worker)

    def take_start_page(self, query: Query,
                        around: int | None) -> Awaitable[dict[str, Any]] | None:
        """The reply ``prefetch_start`` asked for, once, if it is for this very listing."""
        got, self._start_page = self._start_page, None
        if got is None or got[:2] != (query, around):
            if got is not None:
                got[2].cancel()
            return None
        return _result(got[2])

    def started(self) -> None:
        """The first folder is on screen: what exists now (Textual, styles, widgets) lives as
        long as the app, so full garbage collections need not walk it again (pauses of
        100 ms and more while scrolling otherwise). Collections held for the start
        (``main.hold_collections``) resume here."""
        self.images.release()
        if not self._frozen:
            self._frozen = True
            gc.collect()
            gc.freeze()
            gc.enable()

    def _start_timed_out(self) -> None:
        """No folder was shown within ``RELEASE_IMAGES_AFTER`` (none saved, an empty
        library, no daemon): images, garbage collection and the key hints start anyway."""
        from lightbox.tui.widgets.start_footer import StartFooter

        self.images.release()
        gc.enable()
        for screen in self.screen_stack:
            for footer in screen.query(StartFooter):
                footer.show_keys()

    def _set_background(self) -> None:
        try:
            color = self.screen.styles.background
            if color.a:
                self.images.background = (color.r, color.g, color.b)
        except Exception:
            pass

    async def on_unmount(self) -> None:
        gc.enable()  # held for the start (``main.hold_collections``) if it ended before
        self.workers.cancel_all()
        self.images.close()
        self.place.save(self.state_path)
        await self.link.close()

    # -- graphics -------------------------------------------------------------------------
    def _watch_pane(self) -> None:
        tmux = self.graphics.tmux
        if tmux is None or not self.graphics.passthrough or self.pane is not None:
            return
        self.pane = Pane(tmux.pane)
        self.run_worker(self.pane.watch(self._pane_changed), name="tmux pane", group="tmux")

    def _pane_changed(self, state: PaneState) -> None:
        """tmux redrew the window (moved, hidden, shown): what was drawn through it is gone;
        draw again if the pane is visible."""
        for screen in self.screen_stack:
            for view in screen.query(ImageView):
                view.forget_drawn()
        if state.visible:
            for view in self.screen.query(ImageView):
                view.refresh()

    def graphics_label(self) -> str:
        label = LABELS[self.graphics.mode]
        if self.graphics.mode == "symbols" and self.graphics.symbols != "blocks":
            label += f" ({self.graphics.symbols})"
        return label + (" via tmux" if self.graphics.passthrough else "")

    def available_modes(self) -> list[str]:
        """Modes this terminal can show (detection decided), in the palette's order. Kitty
        needs textual-image's Kitty module, which queries the terminal on import, so only if
        it was imported before the app started."""
        return [m for m in self.graphics.available
                if m != "kitty" or "textual_image.renderable.tgp" in sys.modules]

    def set_graphics(self, mode: str, symbols: str | None = None) -> None:
        """Draw this session's images another way ("auto": as detected). Nothing is saved:
        saving a choice is the settings screen's (``imaging.choice.save``)."""
        if mode == "auto":
            mode = self.graphics.detected or self.graphics.mode
        if mode not in self.available_modes():
            return
        graphics = self.graphics.with_mode(mode, "this session")
        if symbols is not None:
            graphics = replace(graphics, symbols=symbols)
        self.graphics = graphics
        self.images.set_graphics(self.graphics)
        self._watch_pane()
        for screen in self.screen_stack:
            # The label first, then the screen's hook, which may write a fuller line (the
            # browser's "N photos · mode"): the other way round the count was lost.
            line = screen.query("StatusLine")
            for widget in line:
                widget.set_info(self.graphics_label())  # type: ignore[attr-defined]
            hook = getattr(screen, "graphics_changed", None)
            if hook is not None:
                hook()
        self.screen.refresh()

    # -- commands and help ----------------------------------------------------------------
    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        from lightbox.tui.commands import commands

        yield from commands(self, screen)

    def action_help(self) -> None:
        from lightbox.tui.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())
