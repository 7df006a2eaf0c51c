"""A Sixel encoder: one pass per colour per band, palette from a median cut, numpy.

Why not textual-image's encoder: in xterm its first band comes out with stray pixels (a
strip of the wrong colour along the top of every picture), and its fast-octree palette
bands smooth gradients. This one is deliberately plain: the palette is a median cut of a
quarter-size copy (close to what a full median cut gives, at a twentieth of the cost), every
register is defined up front, and each band is drawn colour by colour with transparent
zero bits (``P2=1``), so no pass can undo another. Each colour covers the span from its first
to its last pixel in the band, spans that do not overlap share a pass, and runs of four or
more equal columns are run-length encoded. The whole picture is encoded with array
operations at once, not band by band or span by span (issue 13: a 120x40 preview's body in a
quarter of the time the per-band encoder took, same pixels, bytes within 1 %): the time is
in numpy calls on whole arrays, not in Python loops over bands and spans.

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
import threading
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


def _merge_palette(px: np.ndarray,
                   pal: list[int]) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """The pixels as register numbers, and the registers: palette entries that look the same
    in Sixel's percent colours share one (fewer registers, passes and bytes), and the most
    used colours get the shortest numbers."""
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


def busy_areas(img: Image.Image) -> np.ndarray:
    """Where the picture is busy: a pixel whose brightness differs from a neighbour's by
    more than ``TEXTURE``, or that touches such a pixel (once per picture size, however many
    merge distances are tried)."""
    y = np.asarray(img.convert("L"), dtype=np.int16)
    grad = np.zeros(y.shape, dtype=np.int16)
    grad[:, 1:] = np.abs(np.diff(y, axis=1))
    grad[1:, :] = np.maximum(grad[1:, :], np.abs(np.diff(y, axis=0)))
    busy = grad > TEXTURE
    busy[:, 1:] |= busy[:, :-1].copy()  # a pixel beside a busy one is busy too
    busy[1:, :] |= busy[:-1, :].copy()
    return busy


def coarser(idx: np.ndarray, palette: list[int], busy: np.ndarray,
            distance: float) -> np.ndarray:
    """``idx`` (palette indices) with each busy pixel's colour replaced by the most used
    palette colour within ``distance`` (RGB) of it: flicker between near colours is what
    scatters a colour over a band, and in a busy area nobody sees a difference of that
    size."""
    return next(coarsened(idx, palette, busy, (distance,)))


def coarsened(idx: np.ndarray, palette: list[int], busy: np.ndarray,
              distances: tuple[float, ...] = NEAR) -> Iterator[np.ndarray]:
    """``coarser`` at each of ``distances`` in turn, sharing what does not depend on the
    distance (colour counts, the distances between colours, the busy pixels' colours): the
    budget loop tries two or three distances on most previews."""
    pal = np.array(palette[:768], dtype=np.float32).reshape(-1, 3)
    counts = np.bincount(idx.reshape(-1), minlength=256)
    used = np.flatnonzero(counts)
    apart = np.linalg.norm(pal[used, None, :] - pal[None, used, :], axis=2)
    by_use = np.argsort(-counts[used], kind="stable").tolist()
    busy_colours = idx[busy]
    for distance in distances:
        near = apart <= distance
        rep = np.arange(256, dtype=np.uint8)
        free = np.ones(len(used), dtype=bool)
        for i in by_use:
            if free[i]:
                group = near[i] & free
                rep[used[group]] = used[i]
                free &= ~group
        merged = idx.copy()
        merged[busy] = rep[busy_colours]
        yield merged


def _bands(px: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The picture in bands of six rows (``-1`` below its last row) and, for each band,
    row and column, whether that row's colour is new in its column (above in the band):
    each such flag is one colour to draw in that column of that band."""
    h, w = px.shape
    nb = -(-h // 6)
    padded = np.full((nb * 6, w), -1, dtype=np.int16)
    padded[:h] = px
    rows = padded.reshape(nb, 6, w)
    first = np.empty((nb, 6, w), dtype=bool)
    for k in range(6):
        row, is_first = rows[:, k], first[:, k]
        np.greater_equal(row, 0, out=is_first)
        for m in range(k):
            is_first &= rows[:, m] != row
    return rows, first


def _header(w: int, h: int, registers: list[tuple[int, int, int, int]]) -> bytes:
    parts = [b'\x1bP0;1;0q"1;1;%d;%d' % (w, h)]
    parts.extend(b"#%d;2;%d;%d;%d" % reg for reg in registers)
    return b"".join(parts)


def _digits(n: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Decimal digits of ``n`` as ASCII, left-aligned in ``width`` columns, and how many
    there are (numbers for every span and run at once, instead of ``b"%d"`` in a loop)."""
    n = n.astype(np.int64)
    count = np.ones(len(n), dtype=np.int64)
    for k in range(1, width):
        count += n >= 10 ** k
    powers = np.array([10 ** e for e in range(width)], dtype=np.int64)
    out = np.empty((len(n), width), dtype=np.uint8)
    for k in range(width):
        out[:, k] = (n // powers[np.maximum(count - 1 - k, 0)]) % 10 + 48
    return out, count


def _greedy_passes(band: np.ndarray, x0: np.ndarray, x1: np.ndarray,
                   first: np.ndarray) -> list[int]:
    """Pass numbers for spans sorted by (band, start): a span follows, in the same pass,
    the pass that ended first if that ended before it starts (interval partitioning, which
    uses as few passes as the deepest overlap); ``first`` is each band's first free pass.
    The one Python loop left, so it only sees the spans that can share a pass."""
    bands, starts, ends, firsts = band.tolist(), x0.tolist(), x1.tolist(), first.tolist()
    out = [0] * len(bands)
    heap: list[tuple[int, int]] = []  # (last column of the pass, pass)
    current, free = -1, 0
    for i, b in enumerate(bands):
        if b != current:
            current, free, heap = b, firsts[i], []
        if heap and heap[0][0] < starts[i]:
            p = heap[0][1]
            heapq.heapreplace(heap, (ends[i], p))
        else:
            p, free = free, free + 1
            heapq.heappush(heap, (ends[i], p))
        out[i] = p
    return out


def _body(px: np.ndarray) -> bytes:
    """Every band of ``px`` (register numbers), as whole-picture array operations.

    Cells: each colour present in each column of each band, with its six bits. A band's
    colour is one span, from its first to its last column (splitting spans at long gaps
    saved nothing: 1 % more bytes on corpus previews). Spans that overlap every other span
    of their band get a pass each; the rest share passes (``_greedy_passes``). Each span
    becomes ``-`` / ``$`` as needed, ``#register``, the gap from where the pass stands, and
    its columns; runs of four or more equal sixels become ``!count`` and the sixel. All of it
    is laid out in one byte array, so the cost follows the picture's size, not its spans."""
    w = px.shape[1]
    rows, first = _bands(px)
    nb = rows.shape[0]
    bits = np.empty(rows.shape, dtype=np.uint8)  # the sixel of each row's colour
    for k in range(6):
        sixel = bits[:, k]
        sixel.fill(1 << k)
        for m in range(k + 1, 6):
            sixel |= (rows[:, m] == rows[:, k]).view(np.uint8) << m
    at = np.flatnonzero(first)
    # int32 per cell (a preview has 300,000 or more): half the transient memory of int64.
    band = (at // (6 * w)).astype(np.int32)
    x = (at % w).astype(np.int32)
    group = band << 8 | rows[first]  # (band, colour) of each cell
    sixels = bits[first] + np.uint8(_OFFSET)
    # (Per-cell and per-byte arrays are dropped as soon as they are used: a preview's add up
    # to 20-25 MB if all live to the end, and two encoder threads hold one each.)
    del at, bits, first, rows
    lo = np.full(nb << 8, w, dtype=np.int32)
    hi = np.full(nb << 8, -1, dtype=np.int32)
    np.minimum.at(lo, group, x)
    np.maximum.at(hi, group, x)
    sid = np.flatnonzero(hi >= 0)  # the spans, by band then colour
    sb, sc = sid >> 8, sid & 255
    sx0, sx1 = lo[sid].astype(np.int64), hi[sid].astype(np.int64)
    ns = len(sid)
    starts = np.flatnonzero(np.r_[True, sb[1:] != sb[:-1]])
    band_of = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, ns]))
    alone = ((sx0 <= np.minimum.reduceat(sx1, starts)[band_of])
             & (sx1 >= np.maximum.reduceat(sx0, starts)[band_of]))
    seen = np.cumsum(alone)
    before: np.ndarray = (seen - alone)[starts]  # alone spans in the bands above
    passes = seen - 1 - before[band_of]
    rest = np.flatnonzero(~alone)
    if len(rest):
        order = rest[np.lexsort((sx0[rest], sb[rest]))]
        alone_in = np.r_[before[1:], seen[-1]] - before
        passes[order] = _greedy_passes(sb[order], sx0[order], sx1[order],
                                       alone_in[band_of[order]])
    out = np.argsort((sb * ns + passes) * (w + 1) + sx0)  # band, pass, start
    ob, oc, ox0, ox1, op = sb[out], sc[out], sx0[out], sx1[out], passes[out]
    band_first = np.r_[True, ob[1:] != ob[:-1]]
    pass_first = band_first | np.r_[True, op[1:] != op[:-1]]
    gap = ox0 - np.where(pass_first, 0, np.r_[0, ox1[:-1] + 1])
    # Each span's prefix, in a fixed-width table with a mask of the bytes that are there.
    short = gap < 4
    head = np.empty((ns, 17), dtype=np.uint8)
    there = np.zeros((ns, 17), dtype=bool)
    head[:, 0], there[1:, 0] = ord("-"), band_first[1:]
    head[:, 1], there[:, 1] = ord("$"), pass_first & ~band_first
    head[:, 2], there[:, 2] = ord("#"), True
    head[:, 3:6], count = _digits(oc, 3)
    there[:, 3:6] = np.arange(3) < count[:, None]
    head[:, 6:9], there[:, 6:9] = ord("?"), np.arange(3) < np.where(short, gap, 0)[:, None]
    head[:, 9], there[:, 9] = ord("!"), ~short
    head[:, 10:15], count = _digits(np.where(short, 0, gap), 5)
    there[:, 10:15] = np.arange(5) < np.where(short, 0, count)[:, None]
    head[:, 15], there[:, 15] = ord("?"), ~short
    lengths = there.sum(1)
    block = lengths + ox1 - ox0 + 1
    offset = np.cumsum(block) - block
    total = int(offset[-1] + block[-1]) + 1
    flat = np.full(total, _OFFSET, dtype=np.uint8)  # "?": no pixel of this colour
    # Where each prefix byte goes: only the bytes that are there are indexed (int8 running
    # counts, not a span x 17 table of int64: that was the largest transient of a preview).
    span, col = np.nonzero(there)
    flat[offset[span] + np.cumsum(there, axis=1, dtype=np.int8)[span, col] - 1] = head[span, col]
    where = np.zeros(nb << 8, dtype=np.int32)
    where[sid[out]] = offset + lengths - ox0
    flat[where[group] + x] = sixels
    flat[-1] = ord("-")
    del band, x, group, sixels, where, head, there, span, col
    # Runs of 4+ equal sixels (prefix bytes are below "?" and never form one).
    same = flat[1:] == flat[:-1]
    run4 = same[:-2] & same[1:-1] & same[2:] & (flat[:-3] >= _OFFSET)
    edge = np.zeros(len(run4) + 1, dtype=bool)
    np.not_equal(run4[1:], run4[:-1], out=edge[1:-1])
    if len(run4):
        edge[0], edge[-1] = run4[0], run4[-1]
    t = np.flatnonzero(edge)
    del same, run4, edge
    run_at, run_end = t[::2], t[1::2] + 3
    digits, count = _digits(run_end - run_at, 5)
    value = flat[run_at]
    flat[run_at] = ord("!")
    for k in range(5):
        has = count > k
        flat[run_at[has] + 1 + k] = digits[has, k]
    flat[run_at + 1 + count] = value
    cut = np.zeros(total + 1, dtype=np.int8)  # +1 where a run's token ends, -1 at its end
    cut[run_at + 2 + count] = 1
    cut[run_end] = -1
    return bytes(flat[np.cumsum(cut[:-1], dtype=np.int8) == 0].tobytes())


# Two encoder threads (the image service) run every other step side by side, but not this
# one: the body's arrays are most of an encode's transient memory (10-20 MB for a preview),
# so two at once made the TUI's peak RSS; the steps around it keep both threads busy anyway.
_BODY_LOCK = threading.Lock()


def _encode(idx: np.ndarray, palette: list[int]) -> str:
    px, registers = _merge_palette(idx, palette)
    h, w = px.shape
    with _BODY_LOCK:
        body = _body(px)
    return (_header(w, h, registers) + body + b"\x1b\\").decode("ascii")


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
    idx, palette = np.asarray(q), q.getpalette() or []
    if budget is None or estimate(idx) <= budget:
        return _encode(idx, palette), img.size
    text = ""
    for attempt in range(SHRINKS + 1):
        merged = idx
        for merged in coarsened(idx, palette, busy_areas(img)):
            if estimate(merged) <= budget:
                break
        text = _encode(merged, palette)
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
        idx, palette = np.asarray(q), q.getpalette() or []
    return text, img.size


def estimate(px: np.ndarray) -> int:
    """About how many bytes ``px`` (palette indices) encodes to, without encoding it: one per
    colour present in each column of each band, times what selections and gaps add (2.5-3.4
    on corpus previews; 3 here)."""
    return 3 * int(np.count_nonzero(_bands(px)[1]))
