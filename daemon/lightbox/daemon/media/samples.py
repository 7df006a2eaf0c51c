"""Synthetic photos with camera-like EXIF, for tests, ``make demo`` and benchmarks.

Flat-colour test images lie about everything that matters here: they compress to nothing (so
hashing and I/O look free), decode faster than real photos, and all hash to the same dHash.
These have structure (sky gradient, hills, a sun, trees, houses) and sensor-like grain, so a
12 MP JPEG at quality 90 weighs ~3-5 MB like a camera's, and different seeds give visibly
different pictures; the same seed gives the same pixels. Pillow only (numpy is not a runtime
dependency): grain comes from one cached, seeded noise tile pasted at random offsets, which
keeps 12 MP generation in the low hundreds of milliseconds.

    python -m lightbox.daemon.media.samples DIR [--count N] [--megapixels MP] [--seed S]
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from PIL import Image, ImageChops, ImageDraw, ImageOps
from PIL.TiffImagePlugin import IFDRational

_NOISE_TILE = 512
_noise_cache: dict[int, Image.Image] = {}


def _noise(size: tuple[int, int], sigma: float, rng: random.Random) -> Image.Image:
    """Seeded, roughly Gaussian noise centred on 128 (Image.effect_noise is not seedable):
    the mean of two uniform byte images is triangular with a deviation of ~52, scaled."""
    n = size[0] * size[1]
    a = Image.frombytes("L", size, rng.randbytes(n))
    b = Image.frombytes("L", size, rng.randbytes(n))
    k = sigma / 52.0
    return ImageChops.add(a, b, 2.0).point(lambda v: 128 + (v - 128) * k)


def _grain(size: tuple[int, int], sigma: int, rng: random.Random) -> Image.Image:
    """Zero-mean (centred on 128) luminance grain covering ``size``, from a cached tile."""
    tile = _noise_cache.get(sigma)
    if tile is None:
        tile = _noise((_NOISE_TILE, _NOISE_TILE), sigma, random.Random(sigma))
        _noise_cache[sigma] = tile
    w, h = size
    out = Image.new("L", size)
    ox, oy = rng.randrange(_NOISE_TILE), rng.randrange(_NOISE_TILE)
    for y in range(-oy, h, _NOISE_TILE):
        for x in range(-ox, w, _NOISE_TILE):
            out.paste(tile, (x, y))
    return out


def _mix(a: tuple[int, int, int], b: tuple[int, int, int], t: float) -> tuple[int, int, int]:
    return (round(a[0] + (b[0] - a[0]) * t), round(a[1] + (b[1] - a[1]) * t),
            round(a[2] + (b[2] - a[2]) * t))


def _jitter(c: tuple[int, int, int], rng: random.Random, amount: int = 30) -> tuple[int, int, int]:
    return tuple(max(0, min(255, v + rng.randint(-amount, amount))) for v in c)  # type: ignore[return-value]


_SKIES = [((40, 90, 170), (170, 210, 240)), ((20, 40, 90), (250, 150, 80)),
          ((90, 120, 160), (210, 215, 220)), ((60, 130, 200), (235, 240, 250))]
_GROUNDS = [((60, 110, 40), (120, 160, 70)), ((150, 120, 70), (200, 170, 110)),
            ((40, 80, 60), (90, 130, 90)), ((210, 215, 225), (245, 245, 250))]


def make_photo(width: int, height: int, seed: int, grain: int = 12) -> Image.Image:
    """A landscape-like RGB picture; the same arguments always give the same pixels."""
    rng = random.Random(seed)
    w, h = width, height
    sky_top, sky_low = (_jitter(c, rng) for c in rng.choice(_SKIES))
    ground_a, ground_b = (_jitter(c, rng) for c in rng.choice(_GROUNDS))
    horizon = rng.uniform(0.35, 0.65) * h

    img = ImageOps.colorize(Image.linear_gradient("L").resize((w, h)), sky_top, sky_low)
    draw = ImageDraw.Draw(img)
    sun_r = rng.uniform(0.04, 0.09) * min(w, h)
    sx, sy = rng.uniform(0.1, 0.9) * w, rng.uniform(0.08, 0.4) * h
    draw.ellipse((sx - sun_r, sy - sun_r, sx + sun_r, sy + sun_r),
                 fill=_mix(sky_low, (255, 245, 200), 0.8))
    for _ in range(rng.randint(2, 6)):     # clouds
        cx, cy, cw = rng.uniform(0, w), rng.uniform(0.05, 0.35) * h, rng.uniform(0.08, 0.25) * w
        for k in range(5):
            r = cw * rng.uniform(0.15, 0.3)
            x = cx + (k - 2) * r * 0.9
            draw.ellipse((x - r, cy - r * 0.6, x + r, cy + r * 0.6),
                         fill=_mix(sky_low, (250, 250, 250), 0.7))
    layers = rng.randint(2, 3)
    for layer in range(layers):            # hills, farther ones paler
        base = horizon + layer * 0.06 * h
        tone = _mix(_mix(ground_a, (40, 50, 70), 0.4), sky_low, 0.5 * (layers - layer) / layers)
        points = [(0.0, float(h))]
        x, y = 0.0, base - rng.uniform(0, 0.2) * h
        while x < w:
            points.append((x, y))
            x += rng.uniform(0.02, 0.08) * w
            y = min(base + 0.05 * h, max(base - 0.3 * h, y + rng.uniform(-0.06, 0.06) * h))
        points += [(float(w), y), (float(w), float(h))]
        draw.polygon(points, fill=tone)
    # Ground: a mid-frequency texture (grass, sand) below the nearest hills.
    ground_top = int(horizon + layers * 0.06 * h)
    if ground_top < h:
        gh = h - ground_top
        texture = _noise((max(1, w // 24), max(1, gh // 24)), 48, rng)
        texture = ImageOps.colorize(texture.resize((w, gh), Image.Resampling.BICUBIC),
                                    ground_a, ground_b)
        img.paste(texture, (0, ground_top))
    for _ in range(rng.randint(4, 14)):    # trees and houses
        x = rng.uniform(0, w)
        y = rng.uniform(ground_top, h * 1.05)
        s = (0.04 + 0.12 * (y - ground_top) / max(1.0, h - ground_top)) * h
        if rng.random() < 0.7:
            draw.rectangle((x - s * 0.06, y - s * 0.5, x + s * 0.06, y), fill=(80, 55, 35))
            crown = _jitter((40, 90, 40), rng, 25)
            draw.ellipse((x - s * 0.35, y - s * 1.2, x + s * 0.35, y - s * 0.4), fill=crown)
        else:
            wall = _jitter((200, 180, 150), rng, 40)
            draw.rectangle((x - s * 0.5, y - s * 0.6, x + s * 0.5, y), fill=wall)
            draw.polygon([(x - s * 0.6, y - s * 0.6), (x, y - s), (x + s * 0.6, y - s * 0.6)],
                         fill=_jitter((150, 50, 40), rng, 30))
            for wx in (-0.3, 0.1):
                draw.rectangle((x + s * wx, y - s * 0.45, x + s * (wx + 0.18), y - s * 0.25),
                               fill=(60, 70, 90))
    if grain:
        noise = _grain((w, h), grain, rng).convert("RGB")
        img = ImageChops.add(img, noise, 1.0, -128)
    return img


def size_for(megapixels: float, aspect: float = 4 / 3) -> tuple[int, int]:
    h = round(math.sqrt(megapixels * 1e6 / aspect))
    return round(h * aspect), h


# -- EXIF -------------------------------------------------------------------------------------

@dataclass
class ExifSpec:
    taken: datetime | None = None
    offset: str | None = None            # "+02:00"
    date_tag: str = "original"           # "original" | "datetime" (IFD0 DateTime only)
    make: str | None = None
    model: str | None = None
    lens: str | None = None
    exposure: tuple[int, int] | None = None   # (1, 250)
    f_number: float | None = None
    iso: int | None = None
    focal_length: float | None = None
    orientation: int | None = None
    gps: tuple[float, float, float | None] | None = None    # lat, lon, alt (signed)
    extra: dict[int, object] = field(default_factory=dict)


def _rational(value: float, den: int = 10000) -> IFDRational:
    return IFDRational(round(value * den), den)


def _dms(value: float) -> tuple[IFDRational, IFDRational, IFDRational]:
    value = abs(value)
    d = int(value)
    m = int((value - d) * 60)
    s = (value - d - m / 60) * 3600
    return IFDRational(d, 1), IFDRational(m, 1), _rational(s)


def build_exif(spec: ExifSpec) -> Image.Exif:
    exif = Image.Exif()
    if spec.make is not None:
        exif[0x010F] = spec.make
    if spec.model is not None:
        exif[0x0110] = spec.model
    if spec.orientation is not None:
        exif[0x0112] = spec.orientation
    sub = exif.get_ifd(0x8769)
    if spec.taken is not None:
        text = spec.taken.strftime("%Y:%m:%d %H:%M:%S")
        if spec.date_tag == "original":
            sub[0x9003] = text
            sub[0x9004] = text
            if spec.offset:
                sub[0x9011] = spec.offset
        else:
            exif[0x0132] = text
            if spec.offset:
                sub[0x9010] = spec.offset
    if spec.exposure is not None:
        sub[0x829A] = IFDRational(*spec.exposure)
    if spec.f_number is not None:
        sub[0x829D] = _rational(spec.f_number, 10)
    if spec.iso is not None:
        sub[0x8827] = spec.iso
    if spec.focal_length is not None:
        sub[0x920A] = _rational(spec.focal_length, 10)
    if spec.lens is not None:
        sub[0xA434] = spec.lens
    if spec.gps is not None:
        lat, lon, alt = spec.gps
        gps = exif.get_ifd(0x8825)
        gps[0] = b"\x02\x03\x00\x00"
        gps[1], gps[2] = ("N" if lat >= 0 else "S"), _dms(lat)
        gps[3], gps[4] = ("E" if lon >= 0 else "W"), _dms(lon)
        if alt is not None:
            gps[5], gps[6] = (1 if alt < 0 else 0), _rational(abs(alt), 100)
    for tag, value in spec.extra.items():
        exif[tag] = value
    return exif


def save_jpeg(img: Image.Image, path: Path, spec: ExifSpec | None = None,
              quality: int = 90) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    params: dict[str, object] = {"quality": quality}
    if spec is not None:
        params["exif"] = build_exif(spec)
    img.save(path, "JPEG", **params)
    return path


# -- demo library and benchmark set ----------------------------------------------------------

_CAMERAS = [("Canon", "Canon EOS R6", "RF24-105mm F4 L IS USM"),
            ("NIKON CORPORATION", "NIKON Z 6_2", "NIKKOR Z 24-70mm f/4 S"),
            ("SONY", "ILCE-7M3", "FE 28-70mm F3.5-5.6 OSS"),
            ("Apple", "iPhone 13", "iPhone 13 back dual wide camera 5.1mm f/1.6"),
            ("FUJIFILM", "X-T4", "XF16-80mmF4 R OIS WR")]
_TRIPS = [("2023", "2023-06-14 Lake trip", (46.4102, 8.6437), "+02:00"),
          ("2023", "2023-08-02 City walk", (48.8566, 2.3522), "+02:00"),
          ("2023", "2023-12-24 Winter", (61.4978, 23.7610), "+02:00"),
          ("2024", "2024-04-05 Garden", (51.5072, -0.1276), "+01:00"),
          ("2024", "2024-09-21 Coast", (-33.8568, 151.2153), "+10:00"),
          ("2025", "2025-02-10 Desert", (36.0544, -112.1401), "-07:00")]


def _camera_spec(rng: random.Random, taken: datetime, place: tuple[float, float] | None,
                 offset: str | None, orientation: int = 1) -> ExifSpec:
    make, model, lens = rng.choice(_CAMERAS)
    gps = None
    if place is not None:
        gps = (place[0] + rng.uniform(-0.01, 0.01), place[1] + rng.uniform(-0.01, 0.01),
               round(rng.uniform(0, 900), 1))
    return ExifSpec(taken=taken, offset=offset if rng.random() < 0.7 else None, make=make,
                    model=model, lens=lens, exposure=(1, rng.choice([60, 125, 250, 500, 1000])),
                    f_number=rng.choice([1.8, 2.8, 4.0, 5.6, 8.0, 11.0]),
                    iso=rng.choice([100, 200, 400, 800, 1600]),
                    focal_length=rng.choice([24.0, 35.0, 50.0, 85.0]),
                    orientation=orientation, gps=gps)


def render_pixels(width: int, height: int, seed: int, spec: ExifSpec | None) -> Image.Image:
    """The pixels a camera would store: for orientation 6 (held turned a quarter clockwise)
    an upright portrait scene, stored turned back a quarter, so that a viewer applying the
    orientation shows it upright (sky at the top), as a real portrait. ``width`` and
    ``height`` are the stored size."""
    if spec is not None and spec.orientation == 6:
        upright = make_photo(height, width, seed)
        return upright.transpose(Image.Transpose.ROTATE_90)
    return make_photo(width, height, seed)


@dataclass(frozen=True)
class _Job:
    path: str
    width: int
    height: int
    seed: int
    quality: int
    spec: ExifSpec | None
    resize_of: tuple[int, int] | None = None   # save a resized copy at this size instead


def _render(job: _Job) -> str:
    img = render_pixels(job.width, job.height, job.seed, job.spec)
    if job.resize_of is not None:
        img = img.resize(job.resize_of, Image.Resampling.LANCZOS)
    save_jpeg(img, Path(job.path), job.spec, job.quality)
    return job.path


def _run(jobs: Sequence[_Job], processes: int | None) -> list[Path]:
    processes = processes if processes is not None else min(len(jobs), os.cpu_count() or 1)
    if processes <= 1 or len(jobs) < 4:
        return [Path(_render(j)) for j in jobs]
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(processes, mp_context=ctx) as pool:
        return [Path(p) for p in pool.map(_render, jobs, chunksize=4)]


def make_demo_library(directory: str | Path, count: int = 60, *, seed: int = 1,
                      megapixels: float = 2.5, processes: int | None = None) -> list[Path]:
    """A few dated folders of photos with EXIF (some real portraits, stored sideways with
    orientation 6 as cameras do; one near-
    duplicate pair, one exact duplicate across folders). A couple of seconds on 2 cores."""
    root = Path(directory)
    rng = random.Random(seed)
    jobs: list[_Job] = []
    per_trip = max(1, count // len(_TRIPS))
    number = 1000
    for i in range(count):
        year, folder, place, offset = _TRIPS[min(i // per_trip, len(_TRIPS) - 1)]
        day = datetime.strptime(folder[:10], "%Y-%m-%d")
        taken = day + timedelta(hours=9, seconds=rng.randint(0, 9 * 3600))
        orientation = 6 if rng.random() < 0.15 else 1
        w, h = size_for(megapixels * rng.uniform(0.8, 1.2), rng.choice([4 / 3, 3 / 2]))
        number += rng.randint(1, 4)
        path = root / year / folder / f"IMG_{number:04d}.JPG"
        spec = _camera_spec(rng, taken, place if rng.random() < 0.8 else None, offset,
                            orientation)
        jobs.append(_Job(str(path), w, h, seed * 100_003 + i, 90, spec))
    if jobs:   # a near-duplicate: the first photo, resized to 60% and re-encoded
        first = jobs[0]
        small = (first.width * 6 // 10, first.height * 6 // 10)
        edit = str(Path(first.path).with_name(Path(first.path).stem + "-edit.jpg"))
        jobs.append(_Job(edit, first.width, first.height, first.seed, 75, first.spec, small))
    paths = _run(jobs, processes)
    if len(paths) > 2:   # an exact duplicate in another folder
        src = paths[1]
        dup = root / "Unsorted" / f"copy of {src.name}"
        dup.parent.mkdir(parents=True, exist_ok=True)
        dup.write_bytes(src.read_bytes())
        paths.append(dup)
    return paths


def make_benchmark_set(directory: str | Path, count: int, megapixels: float = 12, *,
                       seed: int = 1, quality: int = 90,
                       processes: int | None = None) -> list[Path]:
    """``count`` camera-like JPEGs of ``megapixels`` with full EXIF, in one folder."""
    root = Path(directory)
    rng = random.Random(seed)
    w, h = size_for(megapixels)
    start = datetime(2024, 5, 1, 8, 0, 0)
    jobs = [_Job(str(root / f"DSC{i:05d}.JPG"), w, h, seed * 1_000_003 + i, quality,
                 _camera_spec(rng, start + timedelta(minutes=7 * i), (47.37, 8.54), "+02:00"))
            for i in range(count)]
    return _run(jobs, processes)


def make_fixture_set(directory: str | Path) -> dict[str, Path]:
    """The analyser's test files (see ``lightbox.daemon.media.fixtures``): name -> path.
    What ``analyze`` must report for each is in ``fixture_expectations()``."""
    from lightbox.daemon.media import fixtures

    return fixtures.make_fixture_set(directory)


def fixture_expectations() -> dict[str, dict[str, object]]:
    from lightbox.daemon.media import fixtures

    return {name: dict(values) for name, values in fixtures.EXPECTED.items()}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m lightbox.daemon.media.samples",
                                     description="Write synthetic photos with EXIF.")
    parser.add_argument("directory")
    parser.add_argument("--count", type=int, default=60)
    parser.add_argument("--megapixels", type=float, default=None,
                        help="flat folder of COUNT photos of this size (benchmark set); "
                             "without it, a dated demo library")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--processes", type=int, default=None)
    args = parser.parse_args(argv)
    if args.megapixels is None:
        paths = make_demo_library(args.directory, args.count, seed=args.seed,
                                  processes=args.processes)
    else:
        paths = make_benchmark_set(args.directory, args.count, args.megapixels,
                                   seed=args.seed, processes=args.processes)
    size = sum(p.stat().st_size for p in paths)
    print(f"wrote {len(paths)} files, {size / 1e6:.1f} MB, to {args.directory}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
