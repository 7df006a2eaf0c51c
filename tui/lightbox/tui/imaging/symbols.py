"""Pictures from text: per cell, one glyph and two colours chosen to minimise the error.

Half-cells give every cell two pixels stacked (``▀``). A terminal can do better with the same
two colours if the glyph's shape follows the picture: a quadrant for a corner, a lower
three-eighths block for a horizon, a left quarter for a pole. For each cell we try every
shape of the symbol set and keep the one whose best two colours leave the least squared
error against the cell's pixels; that is chafa's idea, done here with one matrix product
per picture (numpy), so a grid thumbnail takes about a millisecond.

The fit, for a shape with coverage ``u`` (0..1 per sample, fractional where a glyph edge
falls inside a sample) and colours ``a`` (glyph) and ``b`` (background): the cell is modelled
as ``u a + (1 - u) b``; least squares gives ``a`` and ``b`` from a 2x2 system whose matrix
depends on the shape only, and the error left is ``sum p² - a·Σup - b·Σ(1-u)p``. Only
``Σup`` depends on the pixels: a ``(cells·3, samples) @ (samples, shapes)`` product.

Symbol sets, because fonts differ:

- ``blocks``: the Block Elements (U+2580-259F): halves, quadrants, eighths. In every
  monospace font that has box drawing, and xterm draws them itself.
- ``sextants``: blocks plus the 2x3 sextants of Symbols for Legacy Computing (U+1FB00-1FB3B).
  Drawn by kitty, foot, WezTerm, Ghostty and Konsole themselves; in xterm only with a font
  that has them (DejaVu Sans Mono does not: they come out blank).

A shape and its complement are the same fit with the colours swapped, so each set keeps one
of every pair (``▘`` stands for ``▟`` too).
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

SAMPLES = (8, 16)  # samples per cell (x, y) of the fit; eighths fall on sample edges
SETS = ("blocks", "sextants")

Rect = tuple[float, float, float, float]  # x0, y0, x1, y1 as fractions of the cell


def _block_shapes() -> list[tuple[str, list[Rect]]]:
    shapes: list[tuple[str, list[Rect]]] = []
    for k in range(1, 8):  # lower k/8: ▁▂▃▄▅▆▇ (their complements are the upper blocks)
        shapes.append((chr(0x2580 + k), [(0.0, 1 - k / 8, 1.0, 1.0)]))
    for k in range(1, 8):  # left k/8: ▏▎▍▌▋▊▉ (complements: the right blocks)
        shapes.append((chr(0x2590 - k), [(0.0, 0.0, k / 8, 1.0)]))
    quads: dict[str, list[Rect]] = {
        "▘": [(0.0, 0.0, 0.5, 0.5)], "▝": [(0.5, 0.0, 1.0, 0.5)], "▖": [(0.0, 0.5, 0.5, 1.0)],
        "▗": [(0.5, 0.5, 1.0, 1.0)], "▚": [(0.0, 0.0, 0.5, 0.5), (0.5, 0.5, 1.0, 1.0)]}
    shapes.extend(quads.items())
    return shapes


def sextant_char(pattern: int) -> str:
    """The sextant for ``pattern`` (bit 0 top-left, 1 top-right, 2 middle-left, ... 5
    bottom-right); Unicode leaves out the empty, full and half-column patterns."""
    if pattern in (0, 21, 42, 63) or not 0 < pattern < 63:
        raise ValueError(f"no sextant character for pattern {pattern}")
    skipped = (pattern > 21) + (pattern > 42)
    return chr(0x1FB00 + pattern - 1 - skipped)


def _sextant_shapes() -> list[tuple[str, list[Rect]]]:
    shapes = []
    for p in range(1, 32):  # one of each complementary pair (p and 63 - p)
        if p == 21:  # the left column: ▌, in blocks already
            continue
        rects = [(col / 2, row / 3, (col + 1) / 2, (row + 1) / 3)
                 for row, col in itertools.product(range(3), range(2))
                 if p >> (row * 2 + col) & 1]
        shapes.append((sextant_char(p), rects))
    return shapes


def coverage(rects: Sequence[Rect], sx: int, sy: int) -> np.ndarray:
    """The fraction of each of ``sx`` x ``sy`` samples (row-major) the rectangles cover."""
    xs = np.arange(sx + 1) / sx
    ys = np.arange(sy + 1) / sy
    out = np.zeros((sy, sx))
    for x0, y0, x1, y1 in rects:
        wx = np.clip(np.minimum(xs[1:], x1) - np.maximum(xs[:-1], x0), 0, None) * sx
        wy = np.clip(np.minimum(ys[1:], y1) - np.maximum(ys[:-1], y0), 0, None) * sy
        out += np.outer(wy, wx)
    result: np.ndarray = np.clip(out, 0, 1).reshape(-1)
    return result


@dataclass(frozen=True)
class SymbolSet:
    """Glyphs, their coverage at the sampling grid and the per-shape least-squares terms."""

    name: str
    chars: tuple[str, ...]
    rects: tuple[tuple[Rect, ...], ...]
    masks: np.ndarray  # (samples, shapes) float32, contiguous for the matrix product
    inv: np.ndarray  # (shapes, 2, 2): inverse of [[Σu², Σu(1-u)], [Σu(1-u), Σ(1-u)²]]

    @classmethod
    def build(cls, name: str, samples: tuple[int, int] = SAMPLES) -> SymbolSet:
        if name not in SETS:
            raise ValueError(f"symbols: expected one of {', '.join(SETS)}, not {name!r}")
        shapes = _block_shapes()
        if name == "sextants":
            shapes += _sextant_shapes()
        masks = np.stack([coverage(r, *samples) for _, r in shapes])
        u, v = masks, 1 - masks
        gram = np.stack([np.stack([(u * u).sum(1), (u * v).sum(1)], -1),
                         np.stack([(u * v).sum(1), (v * v).sum(1)], -1)], -2)
        return cls(name, tuple(c for c, _ in shapes), tuple(tuple(r) for _, r in shapes),
                   np.ascontiguousarray(masks.T, dtype=np.float32),
                   np.linalg.inv(gram).astype(np.float32))


_sets: dict[tuple[str, tuple[int, int]], SymbolSet] = {}


def symbol_set(name: str, samples: tuple[int, int] = SAMPLES) -> SymbolSet:
    got = _sets.get((name, samples))
    if got is None:
        got = _sets[(name, samples)] = SymbolSet.build(name, samples)
    return got


# The shape is chosen on luma (BT.601): edges are where brightness changes, and SSIM, what
# the benchmark scores, is computed on luma. The colours are then the least-squares fit of
# each channel for that shape, which is also the best fit of the luma.
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@dataclass
class Cells:
    """A picture as text: ``chars`` (rows x cols), glyph and background colours."""

    cols: int
    rows: int
    chars: list[str]  # one string per row
    fg: np.ndarray  # (rows, cols, 3) uint8
    bg: np.ndarray


def fit_cells(px: np.ndarray, cols: int, rows: int, symbols: SymbolSet,
              samples: tuple[int, int] = SAMPLES) -> Cells:
    """``px``: (rows·sy, cols·sx, 3) uint8, the picture resampled to the sampling grid."""
    sx, sy = samples
    n, count = sx * sy, rows * cols
    cells = (px.reshape(rows, sy, cols, sx, 3).transpose(0, 2, 1, 3, 4)
             .reshape(count, n, 3).astype(np.float32))
    inv = symbols.inv  # (K, 2, 2)
    luma = cells @ LUMA  # (C, n)
    su = luma @ symbols.masks  # (C, K): luma under each shape
    total = luma.sum(1)
    sv = total[:, None] - su
    gain = ((inv[:, 0, 0] * su + inv[:, 0, 1] * sv) * su
            + (inv[:, 1, 0] * su + inv[:, 1, 1] * sv) * sv)  # larger is better
    best = gain.argmax(1)
    idx = np.arange(count)
    flat = total * total / n >= gain[idx, best] - 1e-3  # one colour for the whole cell
    u = symbols.masks.T[best]  # (C, n): the chosen shape's coverage
    su_rgb = np.einsum("cn,cnd->cd", u, cells)
    sum_rgb = cells.sum(1)
    sv_rgb = sum_rgb - su_rgb
    k = inv[best]  # (C, 2, 2)
    fg = k[:, 0, 0, None] * su_rgb + k[:, 0, 1, None] * sv_rgb
    bg = k[:, 1, 0, None] * su_rgb + k[:, 1, 1, None] * sv_rgb
    mean = sum_rgb / n
    fg[flat] = mean[flat]
    bg[flat] = mean[flat]
    table = [*symbols.chars, " "]
    glyphs = [table[g] for g in np.where(flat, len(symbols.chars), best).tolist()]
    chars = ["".join(glyphs[r * cols:(r + 1) * cols]) for r in range(rows)]

    def to8(x: np.ndarray) -> np.ndarray:
        out: np.ndarray = (np.clip(x, 0, 255) + 0.5).astype(np.uint8)
        return out.reshape(rows, cols, 3)

    return Cells(cols, rows, chars, to8(fg), to8(bg))
