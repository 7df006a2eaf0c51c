"""JPEG bytes to what a terminal draws: text cells (symbols, half-cells), a Sixel string or a
Kitty image.

Everything here is pure and thread-safe, because it runs in a thread pool: encoding a Sixel
takes 10-300 ms, which on the event loop would freeze the UI. The picture is first decoded
with JPEG draft mode (shrink-on-load), then scaled once to the exact pixel box of its cells,
keeping the aspect ratio, so the terminal never scales and the encoder never sees more pixels
than it must.

Text modes are fitted in cells, not in the terminal's pixels: the enlargement cap compares the
picture's own pixels with what the cells can show (inside tmux the reported cell size is
tmux's guess, and counting in it shrank a 160x45 preview box to a 64x24 picture).

Sixel heights are a multiple of 6 (one Sixel band), so a last partial band cannot paint into
the caption line under the image. Kitty images are padded to whole cells and placed with
Unicode placeholders, which Textual can redraw, move and clip like any other text.
"""

from __future__ import annotations

import base64
import io
import itertools
import math
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from rich.color import Color
from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip

from lightbox.tui.imaging.cache import LRU

if TYPE_CHECKING:
    from PIL import Image

    from lightbox.tui.imaging import symbols

# Pillow (and numpy, for Sixel and symbols) is imported where a picture is decoded, in the
# encoder thread (``warm``), not on the way to the first frame: the app imports this module
# for its types and sizes long before it draws a picture.

GRID_EDGE = 256  # the daemon's grid thumbnail, long edge in pixels
# Segments of half-cell strips kept built: a screenful of thumbnails and a preview or two.
# Kept small on purpose: styled segments are many small objects, and a few hundred thousand
# of them make every full garbage collection a visible pause.
STRIPS_BUDGET = 40_000
STYLES_MAX = 30_000
UPSCALE_LIMIT = 4.0  # tiny originals are enlarged at most this much
TEXT_MODES = ("symbols", "halfcell")
# Picture pixels per cell a text mode can show (its resolution, for the enlargement cap) and
# the samples per cell it is encoded from (which decide the thumbnail size it asks for).
TEXT_RESOLUTION = {"symbols": (2, 4), "halfcell": (1, 2)}
SYMBOL_SAMPLES = (8, 16)  # symbols.SAMPLES (numpy is imported when first needed)
TEXT_SAMPLES = {"symbols": SYMBOL_SAMPLES, "halfcell": (3, 6)}


@dataclass(frozen=True)
class Fit:
    """How a picture sits in a box of cells: pixels to scale to and the cells it covers."""

    width: int
    height: int
    cols: int
    rows: int


_serials = itertools.count(1)
_strips: LRU[int, list[Strip]] = LRU(STRIPS_BUDGET, lambda ss: sum(len(s) for s in ss) + 1)
_styles: dict[tuple[bytes, bytes], Style] = {}
_key_styles: dict[int, Style] = {}  # symbols: (fg << 24 | bg) -> style
_colors: dict[bytes, Color] = {}
_HALFCELL_LEVELS = [(v & 0xF8) | 4 for v in range(256)] * 3


@dataclass(eq=False)
class Encoded:
    """One picture ready to draw in one mode at one size.

    Half-cells keep only their pixels (``rgb``, two rows per cell); the strips Textual draws
    are built on first use and kept in a small shared cache, because a strip of styled
    segments costs a hundred times the memory of its pixels and only the photos on screen
    need them."""

    mode: str
    cols: int  # footprint in cells
    rows: int
    cells: symbols.Cells | None = None  # symbols: glyphs and colours
    data: str = ""  # Sixel: the DCS string; Kitty: the transmission escape sequences
    image_id: int = 0  # Kitty
    rgb: bytes = b""  # half-cells: pixels, cols x (2 x rows)
    pixel_height: int = 0
    background: tuple[int, int, int] = (0, 0, 0)
    source: tuple[int, int] = (0, 0)  # pixel size of the bytes it was made from
    nbytes: int = 0  # rough memory use, for the cache budget
    placeholders: list[Strip] = field(default_factory=list)  # Kitty
    prebuilt: list[Strip] | None = None  # half-cells: built in the worker, handed over once
    serial: int = field(default_factory=lambda: next(_serials))

    @property
    def strips(self) -> list[Strip]:
        if self.mode == "kitty":
            return self.placeholders
        got = _strips.get(self.serial)
        if got is None:
            got, self.prebuilt = self.prebuilt, None
            if got is None and self.cells is not None:
                got = symbol_strips(self.cells)
            elif got is None:
                got = halfcell_strips(self.rgb, self.cols, self.pixel_height,
                                      self.background)
            _strips.put(self.serial, got)
        return got


def fit(src_w: int, src_h: int, cols: int, rows: int, cell: tuple[int, int],
        mode: str) -> Fit:
    """Scale ``src`` into ``cols`` x ``rows`` cells, aspect kept, centred by the caller.

    For text modes ``width`` x ``height`` is the grid the encoder samples (half-cells: one
    pixel per half cell; symbols: ``symbols.SAMPLES`` per cell)."""
    cw, ch = cell
    cols, rows = max(1, cols), max(1, rows)
    if src_w <= 0 or src_h <= 0:
        return Fit(0, 0, 0, 0)
    box_w, box_h = cols * cw, rows * ch
    limit = UPSCALE_LIMIT
    if mode in TEXT_MODES:
        # The cap in the cells' own resolution: screen pixels per picture pixel.
        limit *= cw / TEXT_RESOLUTION[mode][0]
    scale = min(box_w / src_w, box_h / src_h, limit)
    disp_w, disp_h = max(1.0, src_w * scale), max(1.0, src_h * scale)
    if mode == "halfcell":
        # A half-cell is a pixel cw wide and ch/2 tall on the screen.
        w = min(cols, max(1, round(disp_w / cw)))
        h = min(rows * 2, max(1, round(disp_h / (ch / 2))))
        return Fit(w, h, w, math.ceil(h / 2))
    if mode == "symbols":
        w = min(cols, max(1, round(disp_w / cw)))
        h = min(rows, max(1, round(disp_h / ch)))
        sx, sy = SYMBOL_SAMPLES
        return Fit(w * sx, h * sy, w, h)
    w, h = max(1, round(disp_w)), max(1, round(disp_h))
    if mode == "sixel" and h >= 6:
        h -= h % 6
    return Fit(w, h, min(cols, math.ceil(w / cw)), min(rows, math.ceil(h / ch)))


def source_size(cols: int, rows: int, cell: tuple[int, int], mode: str) -> str:
    """The smallest thumbnail the daemon has that fills the box: ``grid`` or ``preview``.

    Text modes count the samples they encode from, so a preview box asks for the preview
    thumbnail (a 256 px grid thumbnail blown up to 160 columns of sextants looks soft)."""
    cw, ch = cell
    if mode in TEXT_MODES:
        sx, sy = TEXT_SAMPLES[mode]
        edge = max(cols * sx, rows * sy)
    else:
        edge = max(cols * cw, rows * ch)
    return "grid" if edge <= GRID_EDGE * 1.15 else "preview"


def decode(data: bytes, box: tuple[int, int]) -> Image.Image:
    """Decode JPEG (or any Pillow format) bytes, shrinking on load towards ``box``."""
    from PIL import Image

    img = Image.open(io.BytesIO(data))
    img.draft("RGB", box)
    img.load()
    return img if img.mode == "RGB" else img.convert("RGB")


def scaled(img: Image.Image, f: Fit) -> Image.Image:
    from PIL import Image

    if img.size == (f.width, f.height):
        return img
    smaller = f.width <= img.width and f.height <= img.height
    return img.resize((f.width, f.height),
                      Image.Resampling.LANCZOS if smaller else Image.Resampling.BICUBIC,
                      reducing_gap=3.0 if smaller else None)


# -- half-cells -------------------------------------------------------------------------------
def _color(rgb: bytes) -> Color:
    color = _colors.get(rgb)
    if color is None:
        color = _colors[rgb] = Color.from_rgb(rgb[0], rgb[1], rgb[2])
    return color


def _style(pair: tuple[bytes, bytes]) -> Style:
    style = _styles.get(pair)
    if style is None:
        if len(_styles) > STYLES_MAX:  # bounded, for the same reason as the strips
            _styles.clear()
            _colors.clear()
        style = _styles[pair] = Style(color=_color(pair[0]), bgcolor=_color(pair[1]))
    return style


def halfcell_strips(raw: bytes, w: int, h: int,
                    background: tuple[int, int, int] = (0, 0, 0)) -> list[Strip]:
    """Two pixels per cell: the upper one as the ▀ glyph's colour, the lower as background.

    Every segment carries both colours (an odd last row gets the screen's background), so
    the strips are drawn as they are, without combining styles per segment."""
    out: list[Strip] = []
    row_bytes = w * 3
    bg = bytes(background)
    for y in range(0, h, 2):
        top = raw[y * row_bytes:(y + 1) * row_bytes]
        low = raw[(y + 1) * row_bytes:(y + 2) * row_bytes] if y + 1 < h else None
        pairs = [(top[i:i + 3], low[i:i + 3] if low is not None else bg)
                 for i in range(0, row_bytes, 3)]
        segments = [Segment("▀" * sum(1 for _ in run), _style(pair))
                    for pair, run in itertools.groupby(pairs)]
        out.append(Strip(segments, w))
    return out


# -- symbols ----------------------------------------------------------------------------------
def _style_of(key: int) -> Style:
    style = _key_styles.get(key)
    if style is None:
        if len(_key_styles) > STYLES_MAX:
            _key_styles.clear()
        fg, bg = key >> 24, key & 0xFFFFFF
        style = Style(color=Color.from_rgb(fg >> 16, fg >> 8 & 255, fg & 255),
                      bgcolor=Color.from_rgb(bg >> 16, bg >> 8 & 255, bg & 255))
        _key_styles[key] = style
    return style


def symbol_strips(cells: symbols.Cells) -> list[Strip]:
    """One segment per run of cells with the same two colours."""
    import numpy as np

    fg = cells.fg.astype(np.int64)
    bg = cells.bg.astype(np.int64)
    keys = ((fg[..., 0] << 16 | fg[..., 1] << 8 | fg[..., 2]) << 24
            | bg[..., 0] << 16 | bg[..., 1] << 8 | bg[..., 2])
    out = []
    for row, text in zip(keys, cells.chars, strict=True):
        cuts = [0, *(np.flatnonzero(row[1:] != row[:-1]) + 1).tolist(), len(row)]
        runs = row[cuts[:-1]].tolist()
        out.append(Strip([Segment(text[a:b], _style_of(k))
                          for a, b, k in zip(cuts, cuts[1:], runs, strict=False)],
                         cells.cols))
    return out


def symbol_cells(img: Image.Image, f: Fit, symbol_set: str = "blocks") -> symbols.Cells:
    import numpy as np

    from lightbox.tui.imaging import symbols

    px = np.asarray(img if img.mode == "RGB" else img.convert("RGB"))
    # Full 24-bit colour: 6 bits a channel (fewer styles) cost 0.006 of SSIM in the benchmark.
    return symbols.fit_cells(px, f.cols, f.rows, symbols.symbol_set(symbol_set))


# -- Sixel ------------------------------------------------------------------------------------
def sixel_data(img: Image.Image) -> tuple[str, tuple[int, int]]:
    """The Sixel text and the size it draws at (smaller than ``img`` when the byte budget
    made it so)."""
    from lightbox.tui.imaging import sixel

    return sixel.encode_sized(img, budget=sixel.budget_from_env())


# -- Kitty ------------------------------------------------------------------------------------
_kitty_ids = itertools.count(random.randint(1, 1 << 22))


def _apc(payload: str = "", **keys: int | str) -> str:
    control = ",".join(f"{k}={v}" for k, v in keys.items())
    return f"\x1b_G{control}{';' + payload if payload else ''}\x1b\\"


def kitty_image(img: Image.Image, f: Fit, cell: tuple[int, int],
                background: tuple[int, int, int]) -> tuple[int, str, list[Strip]]:
    """Transmit-once escape sequences and the placeholder strips that show the image."""
    from PIL import Image
    from textual_image.renderable.tgp import _NUMBER_TO_DIACRITIC as DIACRITIC

    cw, ch = cell
    canvas = Image.new("RGB", (f.cols * cw, f.rows * ch), background)
    canvas.paste(img, ((canvas.width - img.width) // 2, (canvas.height - img.height) // 2))
    buf = io.BytesIO()
    canvas.save(buf, format="png", compress_level=1)
    b64 = base64.b64encode(buf.getvalue()).decode("ascii")
    image_id = next(_kitty_ids) & 0xFFFFFF or 1
    chunks = [b64[i:i + 4096] for i in range(0, len(b64), 4096)] or [""]
    parts = []
    for n, chunk in enumerate(chunks):
        more = 1 if n < len(chunks) - 1 else 0
        if n == 0:
            parts.append(_apc(chunk, a="t", f=100, i=image_id, q=2, m=more))
        else:
            parts.append(_apc(chunk, m=more, q=2))
    parts.append(_apc(a="p", U=1, i=image_id, c=f.cols, r=f.rows, q=2))
    style = Style(color=Color.from_rgb((image_id >> 16) & 255, (image_id >> 8) & 255,
                                       image_id & 255))
    high = chr(DIACRITIC[(image_id >> 24) & 255])
    strips = []
    for r in range(f.rows):
        text = "".join(f"\U0010EEEE{chr(DIACRITIC[r])}{chr(DIACRITIC[c])}{high}"
                       for c in range(f.cols))
        strips.append(Strip([Segment(text, style)], f.cols))
    return image_id, "".join(parts), strips


def warm() -> None:
    """Import what encoding needs (Pillow and numpy, 0.1-0.2 s) in the encoder thread once
    the first folder is on screen, instead of on the way to the first frame."""
    from PIL import Image  # noqa: F401

    from lightbox.tui.imaging import sixel, symbols  # noqa: F401


# -- the whole pipeline -----------------------------------------------------------------------
def encode(data: bytes, mode: str, cols: int, rows: int, cell: tuple[int, int],
           background: tuple[int, int, int] = (0, 0, 0), *,
           symbol_set: str = "blocks") -> Encoded:
    """Bytes of a thumbnail to an ``Encoded`` for a box of ``cols`` x ``rows`` cells."""
    from PIL import Image

    with Image.open(io.BytesIO(data)) as probe:
        src = probe.size
    f = fit(src[0], src[1], cols, rows, cell, mode)
    img = scaled(decode(data, (max(f.width, 1), max(f.height, 1))), f)
    if mode == "halfcell":
        # 5 bits a channel: invisible at two pixels a cell, and it cuts the distinct colours
        # (so styles and segments, which are Python objects) several times over.
        raw = img.point(_HALFCELL_LEVELS).tobytes()
        return Encoded(mode, f.cols, f.rows, rgb=raw, pixel_height=f.height,
                       background=background, source=src, nbytes=len(raw) + 256,
                       prebuilt=halfcell_strips(raw, f.width, f.height, background))
    if mode == "symbols":
        cells = symbol_cells(img, f, symbol_set)
        return Encoded(mode, f.cols, f.rows, cells=cells, source=src,
                       nbytes=f.cols * f.rows * 10 + 256, prebuilt=symbol_strips(cells))
    if mode == "sixel":
        text, (w, h) = sixel_data(img)
        cols_, rows_ = min(f.cols, math.ceil(w / cell[0])), min(f.rows, math.ceil(h / cell[1]))
        return Encoded(mode, cols_, rows_, data=text, source=src, nbytes=len(text) + 512)
    if mode == "kitty":
        image_id, text, strips = kitty_image(img, f, cell, background)
        return Encoded(mode, f.cols, f.rows, data=text, image_id=image_id, source=src,
                       placeholders=strips, nbytes=len(text) + 400 * f.rows + 512)
    raise ValueError(f"cannot encode for graphics mode {mode!r}")
