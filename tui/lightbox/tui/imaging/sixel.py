"""A Sixel encoder: one pass per colour per band, palette from a median cut, numpy.

Why not textual-image's encoder: in xterm its first band comes out with stray pixels (a
strip of the wrong colour along the top of every picture), and its fast-octree palette
bands smooth gradients. This one is deliberately plain: the palette is a median cut of a
quarter-size copy (close to what a full median cut gives, at a twentieth of the cost), every
register is defined up front, and each band is drawn colour by colour with transparent
zero bits (``P2=1``), so no pass can undo another. Each colour covers the span from its first
to its last pixel in the band, spans that do not overlap share a pass, and runs of four or
more equal columns are run-length encoded.

Bytes matter over SSH (a 120x40 preview is 0.4-1.3 MB with 256 colours): registers are
numbered by how often they are selected (``#5`` costs a byte less than ``#125``), and a
picture over ``budget`` bytes is encoded again with fewer colours *where the picture is
busy* (a pixel whose neighbourhood changes brightness by more than ``TEXTURE``): there the
palette's neighbours are merged into a coarser set, which texture hides, while smooth areas
(skies, skin, walls), where fewer colours would show as bands, keep the full palette. The
merge distance grows in steps (``NEAR``) until the estimate fits. A picture still over the
budget after the widest merge (dense foliage or gravel, where every band holds most of the
palette: 5 of 20 corpus previews) is drawn smaller, scaled so it fits: over a slow link a
slightly smaller preview at once beats a full-size one that takes seconds to arrive, and the
budget is the user's to raise (``LIGHTBOX_SIXEL_BUDGET``, bytes; 0 for none).
"""

from __future__ import annotations

import heapq
import logging
import math
import os
from collections.abc import Iterator

import numpy as np
from PIL import Image

_OFFSET = 63  # "?" is the empty sixel
BUDGET = 500_000  # bytes a picture should not exceed (a 120x40 preview; slow links)
# RGB distances of colours merged in busy areas, tried in turn while over budget: past 48
# the merge shifts colours visibly even in texture, and shrinking costs less to the eye.
NEAR = (24.0, 36.0, 48.0)
SHRINKS = 4  # attempts at a smaller picture before giving up on the budget
TEXTURE = 8  # brightness steps between neighbours above which a pixel counts as busy
log = logging.getLogger("lightbox.tui.images")


def palette_image(img: Image.Image, colors: int = 256) -> Image.Image:
    """Quantise to at most ``colors`` registers without dithering (dither costs bytes)."""
    sample = img.reduce(4) if img.width * img.height > 160_000 else img
    palette = sample.quantize(colors, method=Image.Quantize.MEDIANCUT)
    return img.quantize(palette=palette, dither=Image.Dither.NONE)


def _pct(v: int) -> int:
    return (v * 100 + 127) // 255


def _merge_palette(q: Image.Image) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """The pixels as register numbers, and the registers: palette entries that look the same
    in Sixel's percent colours share one (fewer registers, passes and bytes), and the most
    used colours get the shortest numbers."""
    pal = q.getpalette() or []
    px = np.asarray(q)
    counts = np.bincount(px.reshape(-1), minlength=256)
    first: dict[tuple[int, int, int], int] = {}
    table = np.arange(256, dtype=np.uint8)
    for c in np.flatnonzero(counts).tolist():
        rgb = (_pct(pal[c * 3]), _pct(pal[c * 3 + 1]), _pct(pal[c * 3 + 2]))
        table[c] = first.setdefault(rgb, c)
    px = table[px]
    # Selections follow colour changes along rows: count those, not pixels.
    changes = np.bincount(px[:, np.r_[True, (px[:, 1:] != px[:, :-1]).any(0)]].reshape(-1),
                          minlength=256)
    order = sorted(set(first.values()), key=lambda c: -int(changes[c]))
    number = np.zeros(256, dtype=np.uint8)
    registers = []
    for n, c in enumerate(order):
        number[c] = n
        registers.append((n, _pct(pal[c * 3]), _pct(pal[c * 3 + 1]), _pct(pal[c * 3 + 2])))
    return number[px], registers


def coarser(q: Image.Image, img: Image.Image, distance: float) -> Image.Image:
    """``q`` with each busy pixel's colour replaced by the most used palette colour within
    ``distance`` (RGB) of it: flicker between near colours is what scatters a colour over a
    band, and in a busy area nobody sees a difference of that size."""
    pal = np.array((q.getpalette() or [])[:768], dtype=np.float32).reshape(-1, 3)
    idx = np.asarray(q)
    counts = np.bincount(idx.reshape(-1), minlength=256)
    used = np.flatnonzero(counts)
    near = np.linalg.norm(pal[used, None, :] - pal[None, used, :], axis=2) <= distance
    rep = np.arange(256, dtype=np.uint8)
    free = np.ones(len(used), dtype=bool)
    for i in np.argsort(-counts[used], kind="stable").tolist():
        if free[i]:
            group = near[i] & free
            rep[used[group]] = used[i]
            free &= ~group
    y = np.asarray(img.convert("L"), dtype=np.int16)
    grad = np.zeros(y.shape, dtype=np.int16)
    grad[:, 1:] = np.abs(np.diff(y, axis=1))
    grad[1:, :] = np.maximum(grad[1:, :], np.abs(np.diff(y, axis=0)))
    busy = grad > TEXTURE
    busy[:, 1:] |= busy[:, :-1].copy()  # a pixel beside a busy one is busy too
    busy[1:, :] |= busy[:-1, :].copy()
    out = Image.fromarray(np.where(busy, rep[idx], idx).astype(np.uint8), "P")
    out.putpalette(q.getpalette() or [])
    return out


def _header(w: int, h: int, registers: list[tuple[int, int, int, int]]) -> bytes:
    parts = [b'\x1bP0;1;0q"1;1;%d;%d' % (w, h)]
    parts.extend(b"#%d;2;%d;%d;%d" % reg for reg in registers)
    return b"".join(parts)


def _passes(spans: list[tuple[int, int, int, bytes]]) -> bytes:
    """Pack colour spans ``(start, end, colour, sixels)`` into as few passes as possible:
    a colour whose first pixel lies after another's last one follows it in the same pass
    (interval partitioning, greedy by start), which saves a carriage return and the gap."""
    spans.sort()
    passes: list[list[tuple[int, int, int, bytes]]] = []
    ends: list[tuple[int, int]] = []  # heap of (end of the pass, pass index)
    for span in spans:
        if ends and ends[0][0] < span[0]:
            _, i = heapq.heappop(ends)
        else:
            i = len(passes)
            passes.append([])
        passes[i].append(span)
        heapq.heappush(ends, (span[1], i))
    out = []
    for chunk in passes:
        pos = 0
        parts = []
        for start, end, colour, data in chunk:
            gap = start - pos
            fill = b"?" * gap if gap < 4 else b"!%d?" % gap
            parts.append(b"#%d%s%s" % (colour, fill, data))
            pos = end + 1
        out.append(b"".join(parts))
    return b"$".join(out) + b"-"


_COUNTS = [b"!%d" % n for n in range(4096)]


def _rle_numpy(flat: np.ndarray) -> bytes:
    """Run-length encode a whole band at once: one token per run of 4+, built in a single
    comprehension (the rest is numpy)."""
    raw = flat.tobytes()
    if len(flat) < 4:
        return raw
    edges = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    starts = np.concatenate(([0], edges))
    lengths = np.diff(np.concatenate((starts, [len(flat)])))
    long = lengths >= 4
    at, n = starts[long], lengths[long]
    before = np.concatenate(([0], (at + n)[:-1])).tolist()
    counts = _COUNTS
    out = [raw[p:a] + (counts[k] if k < 4096 else b"!%d" % k) + raw[a:a + 1]
           for p, a, k in zip(before, at.tolist(), n.tolist(), strict=True)]
    out.append(raw[(int(at[-1]) + int(n[-1])) if len(at) else 0:])
    return b"".join(out)


# A colour's span is split at more than this many empty columns. Measured on corpus
# previews: splitting costs a selection and a skip (about 7 bytes) where a run-length
# encoded gap costs 3-5, so only very long gaps are worth it.
GAP = 100


def _bands(px: np.ndarray, w: int, h: int) -> Iterator[bytes]:
    cols = np.arange(w)
    for y0 in range(0, h, 6):
        band = px[y0:y0 + 6]
        colors = np.unique(band)
        vals = np.zeros((len(colors), w), dtype=np.uint8)
        for k in range(band.shape[0]):
            vals[np.searchsorted(colors, band[k]), cols] |= np.uint8(1 << k)
        # Spans: runs of a colour's non-empty columns with gaps shorter than GAP.
        rows, at = np.nonzero(vals)
        cut = np.flatnonzero((np.diff(rows) != 0) | (np.diff(at) > GAP + 1)) + 1
        first = np.concatenate(([0], cut))
        last = np.concatenate((cut - 1, [len(at) - 1]))
        span_rows = rows[first].tolist()
        starts = at[first].tolist()
        ends = at[last].tolist()
        vals += _OFFSET
        # Every span's sixels one after the other, a 0 (never a sixel) after each.
        lens = at[last] - at[first] + 1
        into = np.cumsum(lens + 1) - (lens + 1)  # where each span starts in the output
        flat = np.zeros(int(lens.sum()) + len(lens), dtype=np.uint8)
        keep = np.ones(len(flat), dtype=bool)
        keep[into + lens] = False
        source = np.flatnonzero(keep) + np.repeat(rows[first] * w + at[first] - into, lens)
        flat[keep] = vals.reshape(-1)[source]
        encoded = _rle_numpy(flat).split(b"\x00")
        palette = colors.tolist()
        spans = [(a, b, palette[r], d)
                 for r, a, b, d in zip(span_rows, starts, ends, encoded, strict=False)]
        yield _passes(spans)


def _encode(q: Image.Image) -> str:
    px, registers = _merge_palette(q)
    w, h = q.size
    return (_header(w, h, registers) + b"".join(_bands(px, w, h)) + b"\x1b\\").decode("ascii")


def budget_from_env(env: dict[str, str] | None = None) -> int | None:
    """The Sixel byte budget: ``LIGHTBOX_SIXEL_BUDGET`` (bytes, 0 for none) or ``BUDGET``."""
    raw = (os.environ if env is None else env).get("LIGHTBOX_SIXEL_BUDGET", "").strip()
    if not raw:
        return BUDGET
    try:
        n = int(raw)
    except ValueError:
        log.warning("LIGHTBOX_SIXEL_BUDGET=%r is not a number of bytes: using %d", raw, BUDGET)
        return BUDGET
    return n if n > 0 else None


def encode(img: Image.Image, colors: int = 256, *, budget: int | None = BUDGET) -> str:
    """``img`` (RGB) as a Sixel DCS string, drawn at the cursor, with transparent gaps;
    over ``budget`` bytes, busy areas get fewer colours and, as a last resort, the picture
    is drawn smaller (see the module docstring; ``encode_sized`` says at what size)."""
    return encode_sized(img, colors, budget=budget)[0]


def encode_sized(img: Image.Image, colors: int = 256, *,
                 budget: int | None = BUDGET) -> tuple[str, tuple[int, int]]:
    """``encode``, and the size of the picture drawn (smaller than ``img`` only when even
    the widest merge stays over ``budget``)."""
    if img.mode != "RGB":
        img = img.convert("RGB")
    q = palette_image(img, colors)
    if budget is None or estimate(q) <= budget:
        return _encode(q), img.size
    text = ""
    for attempt in range(SHRINKS + 1):
        guess = 0
        for distance in NEAR:
            merged = coarser(q, img, distance)
            guess = estimate(merged)
            if guess <= budget:
                break
        text = _encode(merged)
        if len(text) <= budget or attempt == SHRINKS or min(img.size) <= 12:
            break
        # Bytes follow the pixel count: scale both sides by the root of what is too much.
        scale = math.sqrt(budget / len(text)) * 0.97
        w, h = max(6, int(img.width * scale)), max(6, int(img.height * scale))
        h -= h % 6 if h >= 6 else 0
        log.debug("sixel %dx%d: %d bytes after merging: drawn at %dx%d", img.width,
                  img.height, len(text), w, h)
        img = img.resize((w, h), Image.Resampling.LANCZOS)
        q = palette_image(img, colors)
    return text, img.size


def estimate(q: Image.Image) -> int:
    """About how many bytes ``q`` encodes to, without encoding it: one per colour present
    in each column of each band, times what selections and gaps add (2.5-3.4 on corpus
    previews; 3 here)."""
    px = np.asarray(q)
    h, w = int(px.shape[0]), int(px.shape[1])
    pad = (-h) % 6
    if pad:
        px = np.concatenate([px, np.repeat(px[-1:], pad, axis=0)])
    bands = np.sort(px.reshape(-1, 6, w), axis=1)
    pairs = int((np.diff(bands, axis=1) != 0).sum()) + len(bands) * w
    return 3 * pairs
