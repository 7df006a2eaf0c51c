"""``ImageView``: one encoded picture, centred in the widget, with a caption line under it.

The widget draws its own lines (``render_lines``) instead of going through a Rich renderable:

- half-cells and Kitty placeholders are ordinary coloured text, cropped and composed by
  Textual like anything else;
- a Sixel image is not text. Its rows are drawn blank, and the Sixel string rides, as a
  zero-width control segment, at the start of the caption line, which Textual writes after
  every row of the image: cursor to the image's top-left, the Sixel, cursor back to the start
  of the caption line, then the caption. A repaint of the image rows therefore always ends
  with the picture on top, and the caption line is the anchor, so a picture never reaches the
  terminal's last line (where it would scroll the screen).

Sixels are drawn only while the screen is the active one (a modal dialog on top would be
painted over otherwise) and only when the widget is not clipped by its container; screens
refresh their image views when they become active again.

Inside tmux (the app's ``pane`` is set, see ``tmux``) the Sixel goes through the passthrough,
positioned in the outer terminal's coordinates, and the view remembers the rectangle it
drew, because tmux will not erase it: it clears that rectangle before drawing another picture
and when it shows none, and ``clear_drawn`` does so when its screen goes to the background.
Kitty transmissions are wrapped the same way; their placeholders are text to tmux.
"""

from __future__ import annotations

from rich.cells import cell_len, set_cell_size
from rich.control import Control
from rich.segment import ControlType, Segment
from rich.style import Style
from textual.dom import NoScreen
from textual.geometry import Region
from textual.strip import Strip
from textual.widget import Widget

from lightbox.tui.imaging.encode import Encoded
from lightbox.tui.imaging.tmux import Pane, wrap_kitty

_NULL = Style()
_ZERO_WIDTH = ((ControlType.CURSOR_FORWARD, 0),)


def _control(text: str) -> Segment:
    return Segment(text, _NULL, _ZERO_WIDTH)


class ImageView(Widget):
    """Shows ``encoded`` (or ``placeholder`` text) above a one-line ``caption``."""

    DEFAULT_CSS = """
    ImageView {
        width: 1fr;
        height: 1fr;
        background: $surface;
        color: $text-muted;
    }
    ImageView > .image-view--caption {
        color: $text;
    }
    """
    COMPONENT_CLASSES = {"image-view--caption"}

    def __init__(self, *, caption: str = "", placeholder: str = "", name: str | None = None,
                 id: str | None = None, classes: str | None = None) -> None:
        super().__init__(name=name, id=id, classes=classes)
        self._encoded: Encoded | None = None
        self._placeholder = placeholder
        self._caption = caption
        self._caption_right = ""
        self._kitty_sent = 0
        self._lines_key: tuple[object, ...] | None = None
        self._lines: list[Strip] = []
        # Through tmux: the rectangle (x, y, w, h) drawn, of which picture, in which pane state.
        self._drawn: tuple[int, int, int, int] | None = None
        self._drawn_serial = 0
        self._drawn_generation = -1

    # -- attributes down ------------------------------------------------------------------
    @property
    def box(self) -> tuple[int, int]:
        """The cells available to the picture (everything but the caption line)."""
        return max(1, self.size.width), max(1, self.size.height - 1)

    @property
    def encoded(self) -> Encoded | None:
        return self._encoded

    def show(self, encoded: Encoded | None, placeholder: str = "") -> None:
        if encoded is self._encoded and placeholder == self._placeholder:
            return
        self._encoded = encoded
        self._placeholder = placeholder
        self._kitty_sent = 0
        self.refresh()

    def set_caption(self, caption: str, right: str = "") -> None:
        if (caption, right) != (self._caption, self._caption_right):
            self._caption, self._caption_right = caption, right
            self.refresh()

    # -- drawing --------------------------------------------------------------------------
    def _pane(self) -> Pane | None:
        pane = getattr(self.app, "pane", None)
        return pane if isinstance(pane, Pane) else None

    def _sixel_allowed(self) -> bool:
        pane = self._pane()
        if pane is not None and not pane.state.visible:
            return False
        try:
            return self.screen.is_active and self.app.screen is self.screen
        except NoScreen:
            return False

    def _background(self) -> tuple[int, int, int]:
        color = self.rich_style.bgcolor
        triplet = color.get_truecolor() if color is not None else None
        return (triplet.red, triplet.green, triplet.blue) if triplet else (0, 0, 0)

    def _stale(self, pane: Pane) -> tuple[int, int, int, int] | None:
        """What this view drew through tmux that is still on the terminal."""
        if self._drawn is None or self._drawn_generation != pane.generation:
            return None  # nothing, or tmux has redrawn the window since
        return self._drawn

    def forget_drawn(self) -> None:
        """tmux redrew the window: whatever this view drew is gone."""
        self._drawn = None

    def clear_drawn(self) -> None:
        """Clear what this view drew through tmux now (its screen goes to the background:
        no frame of it will be written)."""
        pane = self._pane()
        stale = self._stale(pane) if pane is not None else None
        self._drawn = None
        driver = getattr(self.app, "_driver", None)
        if pane is None or stale is None or not pane.state.visible or driver is None:
            return
        driver.write(pane.draw("", (0, 0), stale, self._background()))

    def _picture_lines(self, width: int, rows: int, base: Style) -> list[Strip]:
        """The rows above the caption; kept until the picture, size or style changes (a
        cursor moving over the grid restyles the caption only)."""
        enc = self._encoded
        key = (enc.serial if enc is not None else None, self._placeholder, width, rows, base)
        if self._lines_key == key:
            return self._lines
        blank = Strip.blank(width, base)
        lines: list[Strip] = [blank] * rows
        if enc is not None and enc.cols and enc.rows:
            ox = max(0, (width - enc.cols) // 2)
            oy = max(0, (rows - enc.rows) // 2)
            if enc.mode in ("symbols", "halfcell", "kitty"):
                for r, strip in enumerate(enc.strips[:rows]):
                    lines[oy + r] = self._place(strip, ox, width, base)
        elif self._placeholder and rows:
            text = self._placeholder.split("\n")[:rows]
            top = max(0, rows // 2 - len(text) // 2)
            for i, part in enumerate(text):
                lines[min(rows - 1, top + i)] = self._centred(part, width, base)
        self._lines_key, self._lines = key, lines
        return lines

    def render_lines(self, crop: Region) -> list[Strip]:
        width, height = self.size
        enc = self._encoded
        rows = max(0, height - 1)
        lines = list(self._picture_lines(width, rows, self.rich_style))
        if enc is not None and enc.mode == "kitty" and self._kitty_sent != enc.image_id \
                and enc.rows and rows:
            # The image goes to the terminal once per show; the placeholders draw it.
            self._kitty_sent = enc.image_id
            oy = max(0, (rows - enc.rows) // 2)
            first = lines[oy]
            data = enc.data if self._pane() is None else wrap_kitty(enc.data)
            lines[oy] = Strip([_control(data), *first], first.cell_length)
        if height:
            lines.append(self._caption_strip(width, height, enc, crop))
        return [line.crop(crop.x, crop.right) if crop.width != width else line
                for line in lines[crop.y:crop.bottom]]

    @staticmethod
    def _place(strip: Strip, ox: int, width: int, base: Style) -> Strip:
        # Picture segments carry their own colours: no per-segment style combining.
        segments = [Segment(" " * ox, base)] if ox else []
        segments.extend(strip)
        right = width - ox - strip.cell_length
        if right > 0:
            segments.append(Segment(" " * right, base))
        return Strip(segments, max(width, ox + strip.cell_length)).crop(0, width)

    @staticmethod
    def _centred(text: str, width: int, base: Style) -> Strip:
        text = set_cell_size(text, min(cell_len(text), width))
        left = (width - cell_len(text)) // 2
        return Strip([Segment(" " * left + text + " " * (width - left - cell_len(text)),
                              base)], width)

    def _caption_strip(self, width: int, height: int, enc: Encoded | None,
                       crop: Region) -> Strip:
        style = self.get_component_rich_style("image-view--caption")
        right = self._caption_right
        room = max(0, width - cell_len(right) - (1 if right else 0))
        left = set_cell_size(self._caption, min(cell_len(self._caption), room))
        text = left + " " * (width - cell_len(left) - cell_len(right)) + right
        text = set_cell_size(text, width)
        caption = Strip([Segment(text, style)], width)
        pane = self._pane()
        drawable = (enc is not None and enc.mode == "sixel" and bool(enc.data)
                    and self._sixel_allowed() and crop == Region(0, 0, width, height))
        if not drawable or enc is None:  # (clipped by a container: a Sixel is drawn whole)
            stale = self._stale(pane) if pane is not None and pane.state.visible else None
            if pane is None or stale is None:
                return caption
            self._drawn = None
            return Strip([_control(pane.draw("", (0, 0), stale, self._background())),
                          *caption], width)
        try:
            region = self.screen.find_widget(self).region
        except Exception:
            return caption
        rows = height - 1
        ox = max(0, (width - enc.cols) // 2)
        oy = max(0, (rows - enc.rows) // 2)
        if pane is not None:
            rect = (region.x + ox, region.y + oy, enc.cols, enc.rows)
            stale = self._stale(pane)
            if stale == rect and self._drawn_serial == enc.serial:
                stale = None  # the same picture again: it covers itself
            self._drawn, self._drawn_serial = rect, enc.serial
            self._drawn_generation = pane.generation
            sequence = pane.draw(enc.data, rect[:2], stale, self._background())
            return Strip([_control(sequence), *caption], width)
        return Strip([
            _control(Control.move_to(region.x + ox, region.y + oy).segment.text),
            _control(enc.data),
            _control(Control.move_to(region.x, region.y + height - 1).segment.text),
            *caption,
        ], width)
