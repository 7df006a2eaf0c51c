"""One file in, one picklable ``Analysis`` out: hash, sniff, EXIF, decode, thumbnails, pHash.

This runs in worker processes (``lightbox.daemon.workers``) on files nobody vetted, so
``analyze`` never raises: each stage catches everything and records why it failed, and the
later stages still fill what they can (a truncated JPEG still gets its sha256, EXIF and
dimensions). ``ok`` means "pixels decoded and every requested thumbnail written".

The file is opened once. The sha256 streams it first (page cache makes the decoder's second
read free); the decoder then runs once, drafted to the largest thumbnail asked for, and every
smaller size and the perceptual hash come from that one decode. Sizes asked for as ``later``
are left out of a large JPEG's decode (it is drafted for the others only, at a quarter of
the pixels) and made by a later pass (``library.previews``).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import BinaryIO

from PIL import Image

from lightbox.daemon.media import confine, decode, exif, phash, pixels, sniff, thumbs
from lightbox.daemon.media.confine import LocalFile, Locator
from lightbox.daemon.media.decode import CHANGED, CORRUPT, EMPTY, IO, UNSUPPORTED, MediaError
from lightbox.daemon.media.ondemand import make_thumbnails
from lightbox.daemon.media.pixels import sha256_file
from lightbox.daemon.media.thumbs import ThumbSpec, thumbnail_path

__all__ = ["Analysis", "AnalyzeRequest", "MediaError", "ThumbSpec", "analyze",
           "make_thumbnails", "sha256_file", "thumbnail_path"]

# When only the perceptual hash needs pixels, decode and reduce as for a grid thumbnail, so
# the hash matches the one computed alongside thumbnails as closely as possible.
_HASH_ONLY_EDGE = thumbs.GRID.size


@dataclass(frozen=True)
class AnalyzeRequest:
    # Where the file is and what the catalog knows of it (``confine``); a plain path is a
    # file the caller chose itself (tools, tests), opened beneath its own directory.
    source: Locator | str
    thumbs_dir: str                       # e.g. <cache>/thumbnails
    thumbs: tuple[ThumbSpec, ...] = ()    # sizes to make in this call (may be empty)
    want_hash: bool = True
    # Sizes made in this call too unless their decode costs markedly more than the one for
    # ``thumbs`` (a large JPEG: ``decode.defers_larger``); then they are left for a later
    # pass and named in ``Analysis.deferred``. The indexer asks for the preview so: the
    # catalog and the grid need only the grid's 1/8 decode.
    later: tuple[ThumbSpec, ...] = ()

    @property
    def locator(self) -> Locator:
        return LocalFile.at(self.source) if isinstance(self.source, str) else self.source


@dataclass
class Analysis:
    """Plain types only: it crosses a process boundary and goes straight into the catalog."""

    path: str
    ok: bool = False
    error: str | None = None
    error_kind: str | None = None     # empty|corrupt|unsupported|bomb|io|changed
                                      # (+ pool: timeout|crash)
    # What ``library.failures`` needs to tell the machine's fault from the file's: the OS
    # error number and where it happened ("source": reading the photo, "cache": writing a
    # thumbnail), or why ``confine`` refused the file.
    error_errno: int | None = None
    error_where: str | None = None
    error_refusal: str | None = None
    # An S3 read that failed: ``kinds.s3.S3Error.reason`` (server_error, timeout, ...).
    error_remote: str | None = None
    size: int = 0
    mtime_ns: int = 0
    inode: int = 0
    device: int = 0
    etag: str | None = None           # an S3 object's, when it changed since it was listed
    sha256: str | None = None
    mime: str | None = None
    format: str | None = None
    width: int | None = None          # stored pixel dimensions (before orientation)
    height: int | None = None
    orientation: int | None = None
    taken_at: str | None = None       # camera wall-clock time, ISO, no zone
    taken_offset: int | None = None   # minutes east of UTC
    make: str | None = None
    model: str | None = None
    lens: str | None = None
    exposure_time: float | None = None
    f_number: float | None = None
    iso: int | None = None
    focal_length: float | None = None
    gps_lat: float | None = None
    gps_lon: float | None = None
    gps_alt: float | None = None
    phash: int | None = None          # signed int64
    thumbs: dict[str, str] = field(default_factory=dict)
    deferred: list[str] = field(default_factory=list)   # sizes of ``later`` not made
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)   # non-fatal oddities, one line each

    def fail(self, kind: str, message: str) -> None:
        """Record the first fatal error (later ones are consequences, kept as notes)."""
        if self.error is None:
            self.ok = False
            self.error, self.error_kind = message, kind
        elif message not in self.notes:
            self.notes.append(message)

    def fail_os(self, where: str, message: str, exc: OSError) -> None:
        """An operating-system error while reading the photo or writing to the cache."""
        first = self.error is None
        self.fail(IO, message)
        if first:
            self.error_errno, self.error_where = exc.errno, where

    def refused(self, exc: confine.Refused) -> None:
        self.fail(CHANGED if exc.reason == confine.CHANGED else IO, str(exc))
        self.error_refusal = exc.reason
        if exc.found is not None:
            self.size, self.mtime_ns, self.inode, self.device = exc.found


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 3)


def analyze(req: AnalyzeRequest) -> Analysis:
    """Everything the catalog needs about one file. Never raises."""
    a = Analysis(path=req.locator.path)
    total = time.perf_counter()
    try:
        _analyze(req, a)
    except BaseException as exc:   # the contract is "never raises"
        if isinstance(exc, KeyboardInterrupt | SystemExit):
            raise
        a.fail(CORRUPT, f"internal error analysing file ({type(exc).__name__}: "
                        f"{decode.one_line(str(exc))})")
    a.timings["total"] = _ms(total)
    return a


# An S3 object's first bytes, read with one ranged GET: enough to sniff any format, and for
# most thumbnails-sized or small photos the whole object (then no second request is made).
REMOTE_HEAD = 256 << 10


def _remote_head(loc: Locator, a: Analysis) -> bytes | None:
    """An S3 object: sniff its first bytes with one ranged GET, so that a huge non-image
    (a video named ``.jpg``) is never downloaded. The bytes when it is worth fetching the
    rest; None (and the reason recorded) when not."""
    from lightbox.daemon.kinds.s3 import S3Object, read_range

    assert isinstance(loc, S3Object)
    a.size, a.mtime_ns = loc.size or 0, loc.mtime_ns or 0
    if not loc.size:
        return b""       # empty: the normal path says so, at no cost
    try:
        head = read_range(loc, 0, REMOTE_HEAD)
    except confine.Refused as exc:
        _remote_changed(loc, a, exc)
        return None
    except OSError as exc:
        _remote_failed(a, exc)
        return None
    sniffed = sniff.sniff_bytes(head[:sniff.HEAD_SIZE])
    if sniffed.kind == sniff.OTHER:
        a.mime, a.format = sniffed.mime, sniffed.format
        a.fail(UNSUPPORTED, f"not an image: content looks like {sniffed.what} (its first "
                            f"{len(head)} bytes were read, not the {loc.size} of it)")
        return None
    return head


def _remote_failed(a: Analysis, exc: OSError) -> None:
    a.fail_os("source", f"cannot read object ({exc})", exc)
    if a.error_remote is None:
        a.error_remote = getattr(exc, "reason", None)


def prepare_remote(loc: Locator, into: str) -> Analysis | Locator:
    """In one of the daemon's I/O threads, never a worker: an S3 object's network part.

    The ranged GET that sniffs it, then (an image) the rest streamed through sha256 into a
    temporary file in ``into``: returns the ``kinds.s3.Fetched`` locator a worker analyses
    (the caller removes its copy afterwards). An object that is not worth fetching (not an
    image, empty) or could not be read comes back as its finished ``Analysis``.
    """
    from lightbox.daemon.kinds.s3 import S3Object, fetch

    assert isinstance(loc, S3Object)
    a = Analysis(path=loc.path)
    t = time.perf_counter()
    head = _remote_head(loc, a)
    if head is None:
        return a
    if not head:
        a.sha256 = sha256_empty()
        a.fail(EMPTY, "empty file")
        return a
    from lightbox.daemon.kinds.s3 import S3Error

    try:
        fetched = fetch(loc, into, head)
    except confine.Refused as exc:
        _remote_changed(loc, a, exc)
        return a
    except S3Error as exc:
        _remote_failed(a, exc)
        return a
    except OSError as exc:     # the copy could not be written: the cache disk's fault
        a.fail_os("cache", f"cannot write the downloaded copy ({exc.strerror or exc})", exc)
        return a
    a.timings["fetch"] = _ms(t)
    return fetched


def sha256_empty() -> str:
    import hashlib

    return hashlib.sha256(b"").hexdigest()


def _remote_changed(loc: Locator, a: Analysis, exc: confine.Refused) -> None:
    """The object was overwritten since it was listed: what it is now (one HEAD), so the
    photo is queued again under its new fingerprint instead of waiting for the next sync."""
    from lightbox.daemon.kinds.s3 import S3Object, head

    assert isinstance(loc, S3Object)
    a.refused(exc)
    a.size, a.mtime_ns = loc.size or 0, loc.mtime_ns or 0
    try:
        now = head(loc)
    except OSError:
        return
    if now is not None:
        a.size, a.mtime_ns, a.etag = now.size, now.mtime_ns, now.tag


def _open(loc: Locator, head: bytes) -> tuple[BinaryIO, os.stat_result]:
    if loc.kind == "s3" and head:
        from lightbox.daemon.kinds.s3 import S3Object, open_object

        assert isinstance(loc, S3Object)
        return open_object(loc, head)
    return confine.open_photo(loc)


def _analyze(req: AnalyzeRequest, a: Analysis) -> None:
    t = time.perf_counter()
    loc = req.locator
    head = b""
    if loc.kind == "s3":
        got = _remote_head(loc, a)
        if got is None:
            return
        head = got
    try:
        f, st = _open(loc, head)
    except confine.Refused as exc:
        if loc.kind == "s3":
            _remote_changed(loc, a, exc)
        else:
            a.refused(exc)
        return
    except OSError as exc:
        a.fail_os("source", f"cannot open file ({exc.strerror or exc})", exc)
        return
    with f:
        a.size, a.mtime_ns, a.inode = st.st_size, st.st_mtime_ns, st.st_ino
        a.device = st.st_dev
        try:
            # A fetched object was hashed as it streamed in (once, in the I/O thread).
            known = getattr(loc, "sha256", None) if loc.kind == "s3-copy" else None
            a.sha256 = known or pixels.sha256_file(f)
        except OSError as exc:
            a.fail_os("source", f"cannot read file ({exc.strerror or exc})", exc)
            return
        a.timings["hash"] = _ms(t)
        if a.size == 0:
            a.fail(EMPTY, "empty file")
            return

        t = time.perf_counter()
        try:
            sniffed = sniff.sniff_file(f, a.size, os.path.splitext(loc.name)[1])
        except OSError as exc:
            a.fail_os("source", f"cannot read file ({exc.strerror or exc})", exc)
            return
        a.mime, a.format = sniffed.mime, sniffed.format
        a.timings["sniff"] = _ms(t)

        info = _read_exif(f, sniffed, a)
        if sniffed.kind == sniff.OTHER:
            a.fail(UNSUPPORTED, f"not an image: content looks like {sniffed.what}")
            _apply_exif(a, info)
            return

        specs = tuple(req.thumbs)
        later = tuple(req.later)
        # Without thumbnails the pixels are still decoded (that is what "ok" vouches for),
        # but small: grid-sized, which is also what the perceptual hash is computed from.
        now_edge = max((s.decode_size for s in specs), default=_HASH_ONLY_EDGE)
        long_edge = max((s.decode_size for s in specs + later), default=_HASH_ONLY_EDGE)

        def choose(img: Image.Image) -> int:
            if later and decode.defers_larger(img, now_edge, long_edge):
                a.deferred = [s.name for s in later]
                return now_edge
            return long_edge

        t = time.perf_counter()
        px: pixels.Pixels | None = None
        try:
            px = pixels.decode_pixels(f, a.size, sniffed, long_edge, choose=choose)
        except MediaError as err:
            cause = err.__cause__
            if err.kind == IO and isinstance(cause, OSError) and cause.errno is not None:
                a.fail_os("source", str(err), cause)   # the disk failed, not the decoder
            else:
                a.fail(err.kind, str(err))
            px = getattr(err, "pixels", None)
        a.timings["decode"] = _ms(t)
        if px is not None:
            a.notes.extend(n for n in px.notes if n not in a.notes)
            info = _pillow_exif(a, px, sniffed, info, pixels_ok=a.error is None)
        _apply_exif(a, info)
        if px is not None:
            _dimensions(a, px, sniffed, info)
        if a.error is not None or px is None or px.image is None:
            return
        if not a.deferred:
            specs += later
        try:
            _finish(req, a, f, sniffed, px, specs)
        finally:
            px.image.close()


def _finish(req: AnalyzeRequest, a: Analysis, f: BinaryIO, sniffed: sniff.Sniffed,
            px: pixels.Pixels, specs: tuple[ThumbSpec, ...]) -> None:
    """Thumbnails and the perceptual hash from the decoded pixels."""
    assert px.image is not None
    if sniffed.format == "jpeg" and pixels.jpeg_is_cut(f, a.size):
            a.notes.append("JPEG has no end marker: the file looks truncated (missing "
                       "rows decode as grey)")
    orientation = None if px.upright else a.orientation
    t = time.perf_counter()
    small: Image.Image | None = None
    try:
        with decode.guard():
            a.thumbs, small = thumbs.render(px.image, specs, orientation, a.sha256 or "",
                                            req.thumbs_dir)
    except MediaError as err:
        a.fail(err.kind, str(err))
    except OSError as exc:
        a.fail_os("cache", "cannot write thumbnail "
                  f"({exc.strerror or decode.one_line(str(exc))})", exc)
    except Exception as exc:
        described = decode.describe(exc, sniffed)
        a.fail(described.kind, str(described))
    a.timings["thumbs"] = _ms(t)

    if req.want_hash and small is not None:
        t = time.perf_counter()
        try:
            a.phash = phash.phash(small)
            if a.phash is None:
                a.notes.append("no perceptual hash: the image has too little structure")
        except Exception as exc:
            a.notes.append(f"perceptual hash failed ({decode.one_line(str(exc))})")
        a.timings["phash"] = _ms(t)
    a.ok = a.error is None


def _read_exif(f: BinaryIO, sniffed: sniff.Sniffed, a: Analysis) -> exif.ExifInfo | None:
    if not pixels.uses_exifread(sniffed):
        return None
    t = time.perf_counter()
    info: exif.ExifInfo | None = None
    try:
        info = exif.read_exifread(f)
    except Exception as exc:
        a.notes.append(f"exifread could not parse the EXIF ({type(exc).__name__}: "
                       f"{decode.one_line(str(exc), 80)})")
    a.timings["exif"] = _ms(t)
    return info


def _pillow_exif(a: Analysis, px: pixels.Pixels, sniffed: sniff.Sniffed, info: exif.ExifInfo | None,
                 pixels_ok: bool) -> exif.ExifInfo | None:
    """Format from the opened image, and EXIF through Pillow where exifread had nothing.

    Pillow is the only reader for HEIC/AVIF/WebP/PNG, and a second opinion for a JPEG/TIFF
    where exifread failed or found no date. Never for a RAW (the preview's EXIF is not the
    RAW's) and never for a PNG that failed to load (getexif would decode it again).
    """
    opened = px.opened
    if opened is None:
        return info
    if opened.format and a.format is None:
        fmt = opened.format.lower()
        a.format = {"mpo": "jpeg"}.get(fmt, fmt)
        a.mime = Image.MIME.get(opened.format, a.mime)
    wanted = info is None or not info.found or info.taken_at is None or info.orientation is None
    if sniffed.kind == sniff.RAW or not wanted or (not pixels_ok and sniffed.format == "png"):
        return info
    t = time.perf_counter()
    try:
        with decode.guard():
            extra = exif.read_pillow(opened)
        if info is None:
            info = extra
        else:
            info.fill_from(extra)
    except Exception as exc:
        a.notes.append(f"EXIF unreadable ({type(exc).__name__}: "
                       f"{decode.one_line(str(exc), 80)})")
    a.timings["exif"] = round(a.timings.get("exif", 0.0) + _ms(t), 3)
    return info


def _dimensions(a: Analysis, px: pixels.Pixels, sniffed: sniff.Sniffed,
                info: exif.ExifInfo | None) -> None:
    size = px.size
    if sniffed.kind == sniff.RAW:
        lay = px.layout
        if lay is not None and lay.width and lay.height:
            size = (lay.width, lay.height)
        elif info is not None and info.pixel_width and info.pixel_height:
            size = (info.pixel_width, info.pixel_height)
        else:
            # The preview's size is not the RAW's (a CRW's is 160x120): say nothing rather
            # than store a wrong size.
            if size is not None:
                a.notes.append(f"RAW dimensions unknown; embedded preview is {size[0]}x{size[1]}")
            size = None
    if size is not None:
        w, h = size
        if px.upright and a.orientation in (5, 6, 7, 8):
            w, h = h, w     # report stored (pre-rotation) dimensions, like every other format
        a.width, a.height = w, h


def _apply_exif(a: Analysis, info: exif.ExifInfo | None) -> None:
    if info is None:
        return
    a.taken_at, a.taken_offset = info.taken_at, info.taken_offset
    a.make, a.model, a.lens = info.make, info.model, info.lens
    a.exposure_time, a.f_number, a.iso = info.exposure_time, info.f_number, info.iso
    a.focal_length, a.orientation = info.focal_length, info.orientation
    a.gps_lat, a.gps_lon, a.gps_alt = info.gps_lat, info.gps_lon, info.gps_alt


