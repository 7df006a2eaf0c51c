"""What a file is, from its first bytes, never from its name.

Photos arrive renamed, mis-named and mangled (a PNG saved as ``.jpg``, an MP3 someone called
``IMG_0001.jpg``), so the catalog's ``mime`` and ``format`` come from magic numbers. Knowing
what a non-image *is* lets the error say "content looks like MP3 audio" instead of a decoder's
"cannot identify image file". TIFF-based camera RAWs share TIFF's magic; a peek at IFD0
(Make, DNGVersion, SubIFDs) tells a NEF from a scanner's TIFF without decoding anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import BinaryIO

from lightbox.daemon.media import tiff

HEAD_SIZE = 4096

# Sniffed kind: "image" (Pillow decodes it, perhaps through a plugin), "raw" (camera RAW:
# only embedded previews are decodable), "other" (a recognised non-image) or "unknown".
IMAGE, RAW, OTHER, UNKNOWN = "image", "raw", "other", "unknown"

MIME = {
    "jpeg": "image/jpeg", "png": "image/png", "gif": "image/gif", "webp": "image/webp",
    "tiff": "image/tiff", "bmp": "image/bmp", "heif": "image/heif", "heic": "image/heic",
    "avif": "image/avif", "jxl": "image/jxl", "jp2": "image/jp2",
    "psd": "image/vnd.adobe.photoshop",
    "ico": "image/vnd.microsoft.icon", "dng": "image/x-adobe-dng", "cr2": "image/x-canon-cr2",
    "cr3": "image/x-canon-cr3", "crw": "image/x-canon-crw", "nef": "image/x-nikon-nef",
    "arw": "image/x-sony-arw", "rw2": "image/x-panasonic-rw2", "orf": "image/x-olympus-orf",
    "pef": "image/x-pentax-pef", "raf": "image/x-fuji-raf", "srw": "image/x-samsung-srw",
}

# Make (upper-cased prefix) -> RAW format, for TIFF-structured RAWs without a magic of their own.
_RAW_BY_MAKE = (("NIKON", "nef"), ("SONY", "arw"), ("PENTAX", "pef"), ("RICOH", "pef"),
                ("SAMSUNG", "srw"), ("CANON", "cr2"), ("OLYMPUS", "orf"), ("LEICA", "dng"),
                ("HASSELBLAD", "3fr"), ("PHASE ONE", "iiq"), ("KODAK", "dcr"),
                ("MAMIYA", "mef"), ("FUJIFILM", "raf"), ("PANASONIC", "rw2"))
_RAW_EXTENSIONS = {"nef", "nrw", "arw", "srf", "sr2", "pef", "srw", "cr2", "orf", "dng", "3fr",
                   "iiq", "dcr", "kdc", "mef", "raf", "rw2", "rwl", "erf", "mos", "x3f"}

_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs",
                b"mif1", b"msf1", b"mif2"}
_AVIF_BRANDS = {b"avif", b"avis"}
_VIDEO_BRANDS = {b"isom", b"iso2", b"mp41", b"mp42", b"avc1", b"M4V ", b"qt  ", b"3gp4",
                 b"3gp5", b"3g2a", b"dash", b"M4A ", b"M4B ", b"f4v "}


@dataclass(frozen=True)
class Sniffed:
    format: str | None       # "jpeg", "png", "nef", ... ; None when unknown
    mime: str | None
    kind: str                # IMAGE | RAW | OTHER | UNKNOWN
    what: str                # human words: "JPEG", "MP3 audio", "Sony ARW raw"

    @property
    def is_tiff_based(self) -> bool:
        return self.format in ("tiff", "dng", "cr2", "nef", "arw", "pef", "srw", "orf", "rw2",
                               "3fr", "iiq", "dcr", "mef")


def _image(fmt: str, what: str | None = None) -> Sniffed:
    return Sniffed(fmt, MIME.get(fmt, f"image/x-{fmt}"), IMAGE, what or fmt.upper())


def _raw(fmt: str, what: str) -> Sniffed:
    return Sniffed(fmt, MIME.get(fmt, f"image/x-{fmt}"), RAW, what)


def _other(mime: str, what: str) -> Sniffed:
    return Sniffed(None, mime, OTHER, what)


UNKNOWN_SNIFF = Sniffed(None, None, UNKNOWN, "unrecognised data")


def sniff_bytes(head: bytes) -> Sniffed:
    """Classify from the first bytes alone (TIFF-based RAWs come back as plain "tiff")."""
    h = head
    if h[:2] == b"\xff\xd8":
        return _image("jpeg")
    if h[:4] == b"\x89PNG":
        return _image("png")
    if h[:4] == b"GIF8":
        return _image("gif")
    if h[:4] == b"RIFF" and h[8:12] == b"WEBP":
        return _image("webp", "WebP")
    if h[:4] == b"RIFF" and h[8:12] in (b"WAVE", b"AVI "):
        return _other("audio/wav" if h[8:12] == b"WAVE" else "video/x-msvideo",
                      "WAV audio" if h[8:12] == b"WAVE" else "AVI video")
    if h[:8] == b"II\x1a\x00\x00\x00HE" and h[6:14] == b"HEAPCCDR":
        return _raw("crw", "Canon CRW raw")
    if h[:4] in (b"IIU\x00",):
        return _raw("rw2", "Panasonic RW2 raw")
    if h[:4] in (b"IIRO", b"IIRS", b"MMOR"):
        return _raw("orf", "Olympus ORF raw")
    if h[:4] in (b"II*\x00", b"MM\x00*"):
        return _image("tiff")
    if h[:4] in (b"II+\x00", b"MM\x00+"):
        return _image("tiff", "BigTIFF")
    if h[:2] == b"BM" and len(h) >= 26:
        return _image("bmp")
    if h[:12] == b"\x00\x00\x00\x0cJXL \r\n\x87\n" or h[:2] == b"\xff\x0a":
        return _image("jxl", "JPEG XL")
    if h[:12] == b"\x00\x00\x00\x0cjP  \r\n\x87\n" or h[:4] == b"\xff\x4f\xff\x51":
        return _image("jp2", "JPEG 2000")
    if h[:4] == b"8BPS":
        return _image("psd", "Photoshop PSD")
    if h[:4] == b"\x00\x00\x01\x00" and len(h) > 6 and h[4] > 0:
        return _image("ico", "Windows icon")
    if h[4:8] == b"ftyp":
        return _sniff_isobmff(h)
    if h[:8] == b"FUJIFILM":
        return _raw("raf", "Fujifilm RAF raw")
    return _sniff_other(h)


def _sniff_isobmff(h: bytes) -> Sniffed:
    box_size = int.from_bytes(h[:4], "big")
    major = h[8:12]
    end = min(max(box_size, 16), len(h))
    brands = {major} | {h[i:i + 4] for i in range(16, end - 3, 4)}
    if major == b"crx " or b"crx " in brands:
        return _raw("cr3", "Canon CR3 raw")
    if major in _AVIF_BRANDS or (major not in _HEIF_BRANDS and brands & _AVIF_BRANDS):
        return _image("avif", "AVIF")
    if major in _HEIF_BRANDS or brands & _HEIF_BRANDS:
        fmt = "heic" if major in (b"heic", b"heix", b"heim", b"heis") else "heif"
        return Sniffed("heif", MIME[fmt], IMAGE, "HEIF/HEIC")
    if major == b"jxl ":
        return _image("jxl", "JPEG XL")
    if major in _VIDEO_BRANDS or brands & _VIDEO_BRANDS:
        what = "QuickTime video" if major == b"qt  " else "MP4 video"
        return _other("video/quicktime" if major == b"qt  " else "video/mp4", what)
    return Sniffed(None, None, UNKNOWN, f"ISO media file of brand {major!r}")


def _sniff_other(h: bytes) -> Sniffed:
    if h[:3] == b"ID3" or (len(h) > 1 and h[0] == 0xFF and h[1] & 0xE0 == 0xE0
                           and h[1] & 0x06 != 0):
        return _other("audio/mpeg", "MP3 audio")
    if h[:4] == b"fLaC":
        return _other("audio/flac", "FLAC audio")
    if h[:4] == b"OggS":
        return _other("audio/ogg", "Ogg audio/video")
    if h[:4] == b"\x1aE\xdf\xa3":
        return _other("video/x-matroska", "Matroska/WebM video")
    if h[:5] == b"%PDF-":
        return _other("application/pdf", "PDF document")
    if h[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return _other("application/zip", "ZIP archive")
    if h[:2] == b"\x1f\x8b":
        return _other("application/gzip", "gzip archive")
    if h[:6] == b"7z\xbc\xaf'\x1c":
        return _other("application/x-7z-compressed", "7-Zip archive")
    if h[:4] == b"\x7fELF":
        return _other("application/x-executable", "ELF executable")
    stripped = h.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if stripped.startswith((b"<svg", b"<?xml")) and b"<svg" in stripped[:2048]:
        return Sniffed("svg", "image/svg+xml", OTHER, "SVG vector image")
    if stripped.startswith((b"<!doctype html", b"<html")):
        return _other("text/html", "HTML")
    if h and _looks_like_text(h):
        return _other("text/plain", "plain text")
    return UNKNOWN_SNIFF


def _looks_like_text(h: bytes) -> bool:
    if b"\x00" in h:
        return False
    try:
        text = h.decode("utf-8")
    except UnicodeDecodeError:
        # A multi-byte character cut at the end of the head is still text.
        try:
            text = h[:-3].decode("utf-8")
        except UnicodeDecodeError:
            return False
    printable = sum(1 for c in text if c.isprintable() or c in "\t\r\n\f")
    return printable >= 0.95 * len(text)


def refine_tiff(sniffed: Sniffed, f: BinaryIO, size: int, extension: str = "") -> Sniffed:
    """Tell camera RAWs from plain TIFFs by a look at IFD0 (cheap: one or two small reads).

    DNGVersion makes a DNG; Canon's "CR" marker at byte 8 makes a CR2; otherwise a camera
    Make plus RAW structure (SubIFDs, or IFD0 being a reduced-resolution preview) or a RAW
    file extension makes that maker's RAW. A TIFF written by a scanner stays a TIFF.
    """
    if sniffed.format != "tiff":
        return sniffed
    try:
        f.seek(0)
        head = f.read(16)
        if head[8:10] == b"CR" and head[:2] == b"II":
            return _raw("cr2", "Canon CR2 raw")
        found = tiff.read_ifd0(f, size)
        if found is None:
            return sniffed
        reader, ifd0 = found
        if tiff.TAG_DNG_VERSION in ifd0.entries:
            return _raw("dng", "Adobe DNG raw")
        make = (reader.text(ifd0.entries.get(tiff.TAG_MAKE)) or "").upper()
        if not make:
            return sniffed
        structured = (tiff.TAG_SUB_IFDS in ifd0.entries
                      or reader.first_int(ifd0, tiff.TAG_NEW_SUBFILE_TYPE) == 1)
        ext = extension.lower().lstrip(".")
        for prefix, by_make in _RAW_BY_MAKE:
            if make.startswith(prefix) and (structured or ext in _RAW_EXTENSIONS):
                # A Nikon NRW or a Sony SR2: the extension, when a RAW one, is more precise.
                fmt = ext if ext in _RAW_EXTENSIONS else by_make
                return _raw(fmt, f"{make.split()[0].title()} {fmt.upper()} raw")
    except (OSError, ValueError):
        pass
    return sniffed


def sniff_file(f: BinaryIO, size: int, extension: str = "") -> Sniffed:
    f.seek(0)
    result = sniff_bytes(f.read(HEAD_SIZE))
    if result.format == "tiff":
        result = refine_tiff(result, f, size, extension)
    return result
