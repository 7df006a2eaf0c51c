"""A 64-bit perceptual hash (dHash) for near-duplicate detection.

dHash compares each pixel of a 9x8 greyscale reduction with its right neighbour: it survives
resizing, re-encoding and mild colour changes, costs well under a millisecond on the grid
thumbnail we already have in memory, and two hashes compare by Hamming distance. Stored as a
signed int64 so it fits a SQL BIGINT on every engine.
"""

from __future__ import annotations

from PIL import Image

HASH_BITS = 64
NEAR_DUPLICATE_DISTANCE = 6   # resized / re-encoded copies land at or below this


def dhash(img: Image.Image) -> int:
    """The unsigned 64-bit difference hash of ``img`` (any mode, any size)."""
    small = img.convert("L") if img.mode != "L" else img
    # A box filter averages every source pixel into the 9x8 grid: stable across scales.
    small = small.resize((9, 8), Image.Resampling.BOX)
    px = small.tobytes()
    value = 0
    for row in range(8):
        base = row * 9
        for col in range(8):
            value = (value << 1) | (px[base + col] > px[base + col + 1])
    return value


def to_signed(value: int) -> int:
    """Unsigned 64-bit -> signed int64 (two's complement), for BIGINT columns."""
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >= 1 << 63 else value


def to_unsigned(value: int) -> int:
    return value & ((1 << 64) - 1)


# A hash with almost every bit equal says "smooth left-to-right", not "this picture": a flat
# or blown-out frame hashes to 0, a horizontal gradient to 0 or all ones, and every such image
# would be a "near duplicate" of every other (the corpus had an overexposed DNG, a black
# JPEG and a truncated one all at distance 0). Those get no hash rather than a misleading one.
MIN_SET_BITS = 5


def phash(img: Image.Image) -> int | None:
    """The hash stored in the catalog: dHash as a signed int64, or None for an image with
    too little structure to tell it from others."""
    value = dhash(img)
    bits = value.bit_count()
    if bits < MIN_SET_BITS or bits > HASH_BITS - MIN_SET_BITS:
        return None
    return to_signed(value)


def distance(a: int, b: int) -> int:
    """Hamming distance between two hashes (signed or unsigned)."""
    return (to_unsigned(a) ^ to_unsigned(b)).bit_count()
