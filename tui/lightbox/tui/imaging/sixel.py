"""A Sixel encoder: one pass per colour per band, palette from a median cut, numpy if there.

Why not textual-image's encoder: in xterm its first band comes out with stray pixels (a
strip of the wrong colour along the top of every picture), and its fast-octree palette
bands smooth gradients. This one is deliberately plain: the palette is a median cut of a
quarter-size copy (close to what a full median cut gives, at a twentieth of the cost), every
register is defined up front, and each band is drawn colour by colour with transparent
zero bits (``P2=1``), so no pass can undo another. Each colour covers only the span from its
first to its last pixel, spans that do not overlap share a pass, and runs of four or more
equal columns are run-length encoded.

With numpy the bits of a band are gathered in six vectorised steps; without it (numpy is not
a runtime dependency) a pure-Python path produces the same bytes, more slowly.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterator

from PIL import Image

try:
    import numpy as np

    HAVE_NUMPY = True
except ImportError:  # pragma: no cover - numpy is in the dev extra only
    HAVE_NUMPY = False

_RUN = re.compile(rb"(.)\1{3,}")
_OFFSET = 63  # "?" is the empty sixel


def _rle(data: bytes) -> bytes:
    return _RUN.sub(lambda m: b"!%d%c" % (len(m[0]), m[1]), data)


def palette_image(img: Image.Image, colors: int = 256) -> Image.Image:
    """Quantise to at most ``colors`` registers without dithering (dither costs bytes)."""
    sample = img.reduce(4) if img.width * img.height > 160_000 else img
    palette = sample.quantize(colors, method=Image.Quantize.MEDIANCUT)
    return img.quantize(palette=palette, dither=Image.Dither.NONE)


def _pct(v: int) -> int:
    return (v * 100 + 127) // 255


def _merge_palette(q: Image.Image) -> tuple[bytes, list[tuple[int, int, int, int]]]:
    """The pixels with palette entries that look the same in Sixel's percent colours merged
    into one register (fewer registers, fewer passes, fewer bytes), and the registers used."""
    pal = q.getpalette() or []
    px = q.tobytes()
    first: dict[tuple[int, int, int], int] = {}
    table = bytearray(range(256))
    for c in sorted(set(px)):
        rgb = (_pct(pal[c * 3]), _pct(pal[c * 3 + 1]), _pct(pal[c * 3 + 2]))
        table[c] = first.setdefault(rgb, c)
    registers = [(c, *rgb) for rgb, c in first.items()]
    return px.translate(table), registers


def _header(w: int, h: int, registers: list[tuple[int, int, int, int]]) -> bytes:
    parts = [b'\x1bP0;1;0q"1;1;%d;%d' % (w, h)]
    parts.extend(b"#%d;2;%d;%d;%d" % reg for reg in registers)
    return b"".join(parts)


def _passes(spans: list[tuple[int, int, int, bytes]], encoded: bool = False) -> bytes:
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
            parts.append(b"#%d%s%s" % (colour, fill, data if encoded else _rle(data)))
            pos = end + 1
        out.append(b"".join(parts))
    return b"$".join(out) + b"-"


_COUNTS = [b"!%d" % n for n in range(4096)]


def _rle_numpy(flat: np.ndarray) -> bytes:
    """Run-length encode a whole band at once: only runs of 4+ cost Python work."""
    raw = flat.tobytes()
    if len(flat) < 4:
        return raw
    edges = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    starts = np.concatenate(([0], edges))
    lengths = np.diff(np.concatenate((starts, [len(flat)])))
    long = lengths >= 4
    out = []
    prev = 0
    for start, n in zip(starts[long].tolist(), lengths[long].tolist(), strict=True):
        out.append(raw[prev:start])
        out.append((_COUNTS[n] if n < 4096 else b"!%d" % n) + raw[start:start + 1])
        prev = start + n
    out.append(raw[prev:])
    return b"".join(out)


GAP = 10  # a colour's span is split at more than this many empty columns


def _bands_numpy(data: bytes, w: int, h: int) -> Iterator[bytes]:
    px = np.frombuffer(data, dtype=np.uint8).reshape(h, w)
    cols = np.arange(w)
    sep = np.zeros(1, dtype=np.uint8)  # never a sixel: runs cannot cross it
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
        pieces = []
        for r, a, b in zip(span_rows, starts, ends, strict=True):
            pieces.append(vals[r, a:b + 1])
            pieces.append(sep)
        encoded = _rle_numpy(np.concatenate(pieces)).split(b"\x00")
        palette = colors.tolist()
        spans = [(a, b, palette[r], d)
                 for r, a, b, d in zip(span_rows, starts, ends, encoded, strict=False)]
        yield _passes(spans, encoded=True)


def _bands_python(px: bytes, w: int, h: int) -> Iterator[bytes]:
    gap = re.compile(rb"\?{%d,}" % (GAP + 1))
    for y0 in range(0, h, 6):
        rows = [px[(y0 + k) * w:(y0 + k + 1) * w] for k in range(min(6, h - y0))]
        spans = []
        for c in sorted(set(b"".join(rows))):
            values = bytearray(w)
            for k, row in enumerate(rows):
                bit = 1 << k
                at = row.find(c)
                while at != -1:
                    values[at] |= bit
                    at = row.find(c, at + 1)
            data = bytes(v + _OFFSET for v in values)
            pos = 0
            for m in [*gap.finditer(data), None]:
                stop = m.start() if m else len(data)
                piece = data[pos:stop]
                lead = len(piece) - len(piece.lstrip(b"?"))
                body = piece.strip(b"?")
                if body:
                    spans.append((pos + lead, pos + lead + len(body) - 1, c, body))
                pos = m.end() if m else len(data)
        yield _passes(spans)


def encode(img: Image.Image, colors: int = 256, *, use_numpy: bool = HAVE_NUMPY) -> str:
    """``img`` (RGB) as a Sixel DCS string, drawn at the cursor, with transparent gaps."""
    if img.mode != "RGB":
        img = img.convert("RGB")
    q = palette_image(img, colors)
    px, registers = _merge_palette(q)
    w, h = q.size
    bands = _bands_numpy(px, w, h) if use_numpy else _bands_python(px, w, h)
    return (_header(w, h, registers) + b"".join(bands) + b"\x1b\\").decode("ascii")
