"""Pictures as text against chafa: SSIM of what the cells show, and encode time per picture.

Corpus photos (``../shared/corpus``, the real camera JPEGs) are thumbnailed as the daemon
does (``grid`` 256 px, ``preview`` 1280 px) and drawn into the same box of cells by every
mode: a grid thumbnail box (18x7 cells, the "medium" size) from the grid thumbnail, and the
preview box of a 120x40 terminal (120x37 cells) from the preview thumbnail. Every mode's
cells are rasterised back to pixels from the glyphs' coverage (8x16 px cells: each pixel is
the glyph colour where the glyph's shape covers it, the background colour elsewhere,
area-weighted at the shape's edges) and scored against the source scaled to the same pixels
(SSIM on luma, 7x7 windows).

Modes: lightbox's half-cells and symbols (``blocks``, ``sextants``), and chafa (the C
library, through ``chafa.py``, which bundles it) with the same symbol classes and its
best settings (work factor 1, true colour, no dithering, RGB and DIN99d colour spaces).
Time: lightbox's whole ``encode`` from JPEG bytes to Textual strips; chafa's JPEG decode,
``draw_all_pixels`` and ``print`` (its ANSI text). Three runs; medians and min-max.

Targets (issue 12): lightbox's symbols at least chafa's best score at the same cell count, a
grid thumbnail encoded in < 5 ms.

Then the bytes a preview of a 120x40 terminal writes (120x37 cells of picture, 8x17 px
cells) in each mode: the Sixel string, the Kitty transmission and its placeholders, the
text modes' cells as escape sequences (24-bit SGR per run of equal colours, as Textual
writes them, plus a cursor move per row); target: Sixel <= 0.5 MB.

    .venv/bin/python benchmarks/symbols.py [--quick] [--runs 3]
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT.parent / "shared" / "corpus"
CELL = (8, 16)  # pixels of a cell when rasterising
BOXES = {"grid": (18, 7), "preview": (120, 37)}

from lightbox.daemon.media import thumbs
from lightbox.tui.imaging import encode as enc
from lightbox.tui.imaging import symbols


# -- glyph coverage ---------------------------------------------------------------------------
def _block_rects(code: int) -> list[symbols.Rect] | float | None:
    """Block Elements (U+2580-259F) as rectangles (shades: a uniform fraction)."""
    q = {"ul": (0, 0, .5, .5), "ur": (.5, 0, 1, .5), "ll": (0, .5, .5, 1), "lr": (.5, .5, 1, 1)}
    if code == 0x2580:
        return [(0, 0, 1, .5)]
    if 0x2581 <= code <= 0x2588:
        k = code - 0x2580
        return [(0, 1 - k / 8, 1, 1)]
    if 0x2589 <= code <= 0x258F:
        return [(0, 0, (0x2590 - code) / 8, 1)]
    if code == 0x2590:
        return [(.5, 0, 1, 1)]
    if 0x2591 <= code <= 0x2593:
        return (code - 0x2590) / 4
    if code == 0x2594:
        return [(0, 0, 1, 1 / 8)]
    if code == 0x2595:
        return [(7 / 8, 0, 1, 1)]
    quads = {0x2596: "ll", 0x2597: "lr", 0x2598: "ul", 0x2599: "ul ll lr", 0x259A: "ul lr",
             0x259B: "ul ur ll", 0x259C: "ul ur lr", 0x259D: "ur", 0x259E: "ur ll",
             0x259F: "ur ll lr"}
    if code in quads:
        return [q[k] for k in quads[code].split()]  # type: ignore[misc]
    return None


_SEXTANTS = {symbols.sextant_char(p): p for p in range(1, 63) if p not in (21, 42)}
_coverage: dict[str, np.ndarray] = {}


def glyph_coverage(char: str) -> np.ndarray:
    """Coverage of ``char`` at ``CELL`` pixels (rows, cols), 0..1."""
    got = _coverage.get(char)
    if got is not None:
        return got
    cw, ch = CELL
    if char == " ":
        rects: list[symbols.Rect] | float | None = []
    elif char == "█":
        rects = [(0, 0, 1, 1)]
    elif char in _SEXTANTS:
        p = _SEXTANTS[char]
        rects = [(c / 2, r / 3, (c + 1) / 2, (r + 1) / 3) for r in range(3) for c in range(2)
                 if p >> (r * 2 + c) & 1]
    else:
        rects = _block_rects(ord(char))
    if rects is None:
        raise ValueError(f"no coverage known for {char!r} (U+{ord(char):04X})")
    if isinstance(rects, float):
        cov = np.full((ch, cw), rects)
    else:
        cov = symbols.coverage(rects, cw, ch).reshape(ch, cw)
    _coverage[char] = cov
    return cov


def rasterise(chars: list[str], fg: np.ndarray, bg: np.ndarray) -> np.ndarray:
    """Cells (rows of glyphs; colours rows x cols x 3) to an RGB float image."""
    rows, cols = len(chars), len(chars[0])
    cw, ch = CELL
    out = np.zeros((rows * ch, cols * cw, 3))
    for r, text in enumerate(chars):
        for c, char in enumerate(text):
            u = glyph_coverage(char)[:, :, None]
            out[r * ch:(r + 1) * ch, c * cw:(c + 1) * cw] = u * fg[r, c] + (1 - u) * bg[r, c]
    return out


# -- SSIM -------------------------------------------------------------------------------------
def _box(a: np.ndarray, k: int = 7) -> np.ndarray:
    """Mean over every k x k window (valid positions only), by integral image."""
    s = np.pad(a, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    return (s[k:, k:] - s[:-k, k:] - s[k:, :-k] + s[:-k, :-k]) / (k * k)


def ssim(x: np.ndarray, y: np.ndarray) -> float:
    """Mean SSIM of two RGB images on luma (BT.601), 7x7 uniform windows."""
    w = np.array([0.299, 0.587, 0.114])
    a, b = x @ w, y @ w
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    ma, mb = _box(a), _box(b)
    va = _box(a * a) - ma * ma
    vb = _box(b * b) - mb * mb
    cov = _box(a * b) - ma * mb
    s = ((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma * ma + mb * mb + c1) * (va + vb + c2))
    return float(s.mean())


# -- modes ------------------------------------------------------------------------------------
Result = tuple[list[str], np.ndarray, np.ndarray]
Mode = Callable[[bytes, int, int, bool], Result | None]


def lightbox_mode(mode: str, symbol_set: str = "blocks") -> Mode:
    def run(data: bytes, cols: int, rows: int, cells: bool) -> Result | None:
        e = enc.encode(data, mode, cols, rows, CELL, symbol_set=symbol_set)
        if e.cells is not None:
            return e.cells.chars, e.cells.fg, e.cells.bg
        px = np.frombuffer(e.rgb, np.uint8).reshape(e.pixel_height, e.cols, 3)
        if e.pixel_height % 2:
            px = np.concatenate([px, np.zeros((1, e.cols, 3), np.uint8)])
        return ["▀" * e.cols] * e.rows, px[0::2], px[1::2]
    return run


def chafa_mode(tags: str, space: str = "rgb") -> Mode | None:
    try:
        import chafa
    except ImportError:
        return None
    symbol_map = chafa.SymbolMap()
    for tag in tags.split("+"):
        symbol_map.add_by_tags(getattr(chafa.SymbolTags, f"CHAFA_SYMBOL_TAG_{tag.upper()}"))

    def run(data: bytes, cols: int, rows: int, cells: bool) -> Result | None:
        img = enc.decode(data, (cols * CELL[0], rows * CELL[1]))
        config = chafa.CanvasConfig()
        config.width, config.height = cols, rows
        config.cell_width, config.cell_height = CELL
        config.canvas_mode = chafa.CanvasMode.CHAFA_CANVAS_MODE_TRUECOLOR
        config.pixel_mode = chafa.PixelMode.CHAFA_PIXEL_MODE_SYMBOLS
        config.dither_mode = chafa.DitherMode.CHAFA_DITHER_MODE_NONE
        config.color_space = (chafa.ColorSpace.CHAFA_COLOR_SPACE_DIN99D if space == "din99d"
                              else chafa.ColorSpace.CHAFA_COLOR_SPACE_RGB)
        config.work_factor = 1.0
        config.set_symbol_map(symbol_map)
        canvas = chafa.Canvas(config)
        canvas.draw_all_pixels(chafa.PixelType.CHAFA_PIXEL_RGB8, img.tobytes(), img.width,
                               img.height, img.width * 3)
        canvas.print()
        if not cells:  # timing: reading the cells back through ctypes is not chafa's work
            return None
        chars, fg, bg = [], np.zeros((rows, cols, 3)), np.zeros((rows, cols, 3))
        for r in range(rows):
            line = []
            for c in range(cols):
                cell = canvas[r, c]
                line.append(cell.char)
                fg[r, c] = cell.fg_color or (0, 0, 0)
                bg[r, c] = cell.bg_color or (0, 0, 0)
            chars.append("".join(line))
        return chars, fg, bg
    return run


def photos(limit: int) -> list[Path]:
    files = sorted(p for p in (CORPUS / "camera_jpeg").glob("*") if p.stat().st_size > 100_000)
    return files[:limit]


def thumbnails(files: list[Path], tmp: Path) -> list[dict[str, bytes]]:
    out = []
    for n, path in enumerate(files):
        with Image.open(path) as img:
            img.draft("RGB", (2560, 2560))
            written, _ = thumbs.render(img, thumbs.DEFAULT_SPECS, None, f"{n:064x}", tmp)
        out.append({name: (tmp / rel).read_bytes() for name, rel in written.items()})
    return out


def reference(data: bytes, cols: int, rows: int) -> np.ndarray:
    img = Image.open(io.BytesIO(data)).convert("RGB")
    size = (cols * CELL[0], rows * CELL[1])
    return np.asarray(img.resize(size, Image.Resampling.LANCZOS), dtype=np.float64)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--photos", type=int, default=20)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="3 photos, 1 run, grid box only")
    args = p.parse_args()
    if args.quick:
        args.photos, args.runs = 3, 1
    if not CORPUS.exists():
        sys.exit(f"no corpus at {CORPUS}")
    modes: dict[str, Mode | None] = {
        "lightbox half-cells": lightbox_mode("halfcell"),
        "lightbox symbols: blocks": lightbox_mode("symbols", "blocks"),
        "lightbox symbols: sextants": lightbox_mode("symbols", "sextants"),
        "chafa block+half+quad (rgb)": chafa_mode("space+solid+block+half+quad"),
        "chafa block+half+quad (din99d)": chafa_mode("space+solid+block+half+quad", "din99d"),
        "chafa +sextant (rgb)": chafa_mode("space+solid+block+half+quad+sextant"),
        "chafa +sextant (din99d)": chafa_mode("space+solid+block+half+quad+sextant", "din99d"),
    }
    missing = [name for name, fn in modes.items() if fn is None]
    if missing:
        print("chafa.py is not installed (it is in the dev extra): chafa rows left out")
    with tempfile.TemporaryDirectory() as tmp:
        pics = thumbnails(photos(args.photos), Path(tmp))
    print(f"{len(pics)} corpus photos; cells rasterised at {CELL[0]}x{CELL[1]} px; "
          f"{args.runs} runs")
    boxes = {"grid": BOXES["grid"]} if args.quick else BOXES
    for box, (bc, br) in boxes.items():
        print(f"\n{box} box {bc}x{br} cells, from the {box} thumbnail:")
        print(f"  {'mode':34} {'SSIM':>7}  {'ms/picture (min-max)':>22}")
        for name, fn in modes.items():
            if fn is None:
                continue
            scores, times = [], []
            for pic in pics:
                data = pic[box]
                f = enc.fit(*Image.open(io.BytesIO(data)).size, bc, br, CELL, "symbols")
                cols, rows = f.cols, f.rows
                got = fn(data, cols, rows, True)
                assert got is not None
                chars, fg, bg = got
                ref = reference(data, len(chars[0]), len(chars))
                scores.append(ssim(rasterise(chars, fg, bg), ref))
            for _ in range(args.runs):
                t = time.perf_counter()
                for pic in pics:
                    data = pic[box]
                    f = enc.fit(*Image.open(io.BytesIO(data)).size, bc, br, CELL, "symbols")
                    fn(data, f.cols, f.rows, False)
                times.append(1000 * (time.perf_counter() - t) / len(pics))
            print(f"  {name:34} {statistics.mean(scores):7.4f}  {statistics.median(times):8.2f}"
                  f" ({min(times):.2f}-{max(times):.2f})")
    if not args.quick:
        preview_bytes(pics)


def text_bytes(strips: list[Any]) -> int:
    """What a terminal receives for these strips: each segment's SGR and text, a move per
    row."""
    from rich.color import ColorSystem

    total = 0
    for strip in strips:
        total += len(b"\x1b[40;1H")
        for seg in strip:
            total += len(seg.style.render(seg.text, color_system=ColorSystem.TRUECOLOR)
                         .encode()) if seg.style else len(seg.text.encode())
    return total


def preview_bytes(pics: list[dict[str, bytes]]) -> None:
    cols, rows, cell = 120, 37, (8, 17)
    print(f"\npreview bytes at 120x40 ({cols}x{rows} cells of picture, {cell[0]}x{cell[1]} px "
          "cells), over the same photos:")
    for mode, label in (("sixel", "Sixel"), ("kitty", "Kitty (PNG)"),
                        ("symbols", "symbols (blocks)"), ("halfcell", "half-cells")):
        sizes, times = [], []
        for pic in pics:
            t = time.perf_counter()
            e = enc.encode(pic["preview"], mode, cols, rows, cell)
            times.append(1000 * (time.perf_counter() - t))
            if mode in ("sixel",):
                sizes.append(len(e.data.encode()))
            elif mode == "kitty":
                sizes.append(len(e.data.encode()) + text_bytes(e.placeholders))
            else:
                sizes.append(text_bytes(e.strips))
        over = sum(1 for n in sizes if n > 500_000)
        print(f"  {label:18} median {statistics.median(sizes) / 1e6:5.3f} MB  "
              f"max {max(sizes) / 1e6:5.3f} MB  ({over} of {len(sizes)} over 0.5 MB; "
              f"encode median {statistics.median(times):.0f} ms)")


if __name__ == "__main__":
    main()
