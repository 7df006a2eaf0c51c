"""The preview: one photo as large as the terminal allows, next/previous, info on demand.

Moving is instant when the neighbours are ready, so after each move the screen asks for the
photo shown first and then for the next two and the previous one, at the same size; with
the daemon's cached thumbnails and our encoded-image cache, holding → shows each photo as
soon as its encoding is done, and going back shows it at once. Escape returns the index so
the browser puts its cursor where the preview ended.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.widgets import Footer

from lightbox.common import errors
from lightbox.common.orientation import upright_of
from lightbox.tui import format as fmt
from lightbox.tui.imaging.encode import Encoded
from lightbox.tui.imaging.service import ImageKey
from lightbox.tui.imaging.view import ImageView
from lightbox.tui.model import PhotoSeq
from lightbox.tui.screens.base import LinkedScreen
from lightbox.tui.widgets.metadata import MetadataPanel
from lightbox.tui.widgets.photo_grid import placeholder
from lightbox.tui.widgets.status_line import StatusLine

PREFETCH = (1, 2, -1, 3)


HERE = Path(__file__).parent


class PreviewScreen(LinkedScreen):
    CSS_PATH = HERE / "preview.tcss"  # absolute: subclasses live elsewhere
    BINDINGS = [
        Binding("right,l,space,n,j,down", "step(1)", "Next"),
        Binding("left,h,p,k,up,backspace", "step(-1)", "Previous"),
        Binding("g,home", "jump(0)", "First", show=False),
        Binding("G,end", "jump(-1)", "Last", show=False),
        Binding("i", "toggle_info", "Info"),
        Binding("escape,q,enter", "close", "Back"),
    ]

    def __init__(self, seq: PhotoSeq, index: int) -> None:
        super().__init__()
        self.seq = seq
        self.index = index
        self.key: ImageKey | None = None

    def compose(self) -> ComposeResult:
        with Horizontal(id="preview-body"):
            yield ImageView(id="picture")
            panel = MetadataPanel(id="preview-info")
            panel.display = self.lb.settings.metadata
            yield panel
        yield StatusLine()
        yield Footer()

    @property
    def picture(self) -> ImageView:
        return self.query_one("#picture", ImageView)

    @property
    def photo(self) -> dict[str, Any] | None:
        return self.seq.get(self.index)

    def on_mount(self) -> None:
        self.call_after_refresh(self.show_current)

    def on_resize(self) -> None:
        self.call_after_refresh(self.show_current)

    def _key(self, photo: dict[str, Any]) -> ImageKey:
        cols, rows = self.picture.box
        return self.images.key(photo, cols, rows)

    def show_current(self) -> None:
        photo = self.photo
        if photo is None:
            self.picture.show(None, "no photo")
            return
        self.key = key = self._key(photo)
        taken = fmt.taken(photo.get("taken_at"))
        dims = fmt.dims(*upright_of(photo))  # as shown, after the EXIF rotation
        self.picture.set_caption(f" {photo.get('name') or ''}",
                                 f"{taken}  {dims}  {self.index + 1:,}/{self.seq.total:,} ")
        self.picture.show(self.images.get(key), placeholder(photo, self.images, detail=True))
        wanted = [key]
        for step in PREFETCH:
            neighbour = self.seq.get(self.index + step)
            if neighbour is not None:
                wanted.append(self._key(neighbour))
        self.images.want(self, wanted, self._ready)
        if self.query_one(MetadataPanel).display:
            self.load_info()

    def graphics_changed(self) -> None:
        self.show_current()

    def _ready(self, key: ImageKey, encoded: Encoded | None) -> None:
        if key == self.key:
            photo = self.photo
            text = placeholder(photo, self.images, detail=True) if photo else ""
            self.picture.show(encoded, text)

    def action_step(self, step: int) -> None:
        new = max(0, min(len(self.seq) - 1, self.index + step))
        if new != self.index:
            self.index = new
            self.show_current()

    def action_jump(self, where: int) -> None:
        self.index = 0 if where == 0 else max(0, len(self.seq) - 1)
        self.show_current()

    def action_toggle_info(self) -> None:
        panel = self.query_one(MetadataPanel)
        panel.display = not panel.display
        self.lb.settings.metadata = bool(panel.display)
        self.lb.settings.save()
        self.call_after_refresh(self.show_current)

    @work(group="info", exclusive=True)
    async def load_info(self) -> None:
        photo = self.photo
        panel = self.query_one(MetadataPanel)
        if photo is None:
            panel.show(None)
            return
        try:
            panel.show(await self.link.call("photos.get", {"id": photo["id"]}))
        except (errors.ClientError, errors.RpcError) as exc:
            panel.show({**photo, "error": f"(details unavailable: {exc})"})

    def action_close(self) -> None:
        self.images.cancel(self)
        self.dismiss(self.index)
