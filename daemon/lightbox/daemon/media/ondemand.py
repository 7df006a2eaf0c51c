"""Thumbnails made on demand, when the TUI asks for one the cache does not have.

Same decode path as indexing (``pixels``), plus a content check: the thumbnail is filed under
the sha256 the catalog knows, so a file that changed since it was indexed is refused rather
than giving its new pixels an old identity.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import BinaryIO

from lightbox.daemon.media import decode, exif, sniff, thumbs
from lightbox.daemon.media.confine import LocalFile, Locator, open_photo
from lightbox.daemon.media.decode import CHANGED, EMPTY, IO, UNSUPPORTED, MediaError
from lightbox.daemon.media.pixels import decode_pixels, sha256_file, uses_exifread
from lightbox.daemon.media.thumbs import ThumbSpec, thumbnail_path


class CacheWriteError(OSError):
    """The thumbnail could not be written (disk full, read-only cache): the machine's fault,
    not the photo's (``library.failures``)."""


def make_thumbnails(source: Locator | str, sha256: str, specs: Sequence[ThumbSpec],
                    thumbs_dir: str, verify: bool = True) -> dict[str, str]:
    """Make missing thumbnails on demand; returns {spec name: path relative to thumbs_dir}.

    Raises ``MediaError`` (with ``.kind``) when the file cannot be decoded, or when
    ``verify`` is on and its content no longer matches ``sha256`` (kind "changed": the file
    must be re-indexed, or its thumbnail would be filed under someone else's hash);
    ``confine.Refused`` when the file is not the catalog's (kind "changed" too), and
    ``OSError`` when it cannot be read.
    """
    if not specs:
        return {}
    thumbnail_path(thumbs_dir, specs[0].name, sha256)   # validates the digest early
    loc = LocalFile.at(source) if isinstance(source, str) else source
    f, st = open_photo(loc)
    with f:
        size = st.st_size
        if size == 0:
            raise MediaError(EMPTY, "empty file")
        if verify and sha256_file(f) != sha256:
            raise MediaError(CHANGED, "file content changed since it was indexed")
        sniffed = sniff.sniff_file(f, size, os.path.splitext(loc.name)[1])
        if sniffed.kind == sniff.OTHER:
            raise MediaError(UNSUPPORTED, f"not an image: content looks like {sniffed.what}")
        orientation = _orientation(f, sniffed)
        px = decode_pixels(f, size, sniffed, max(s.decode_size for s in specs))
        assert px.image is not None
        if px.opened is not None and sniffed.kind != sniff.RAW and orientation is None:
            try:
                orientation = exif.read_pillow(px.opened).orientation
            except Exception:
                orientation = None
        if px.upright:
            orientation = None
        try:
            with decode.guard():
                written, _ = thumbs.render(px.image, specs, orientation, sha256, thumbs_dir)
        except MediaError:
            raise
        except OSError as exc:
            if exc.errno is None:     # an encoder's complaint about these pixels
                raise MediaError(IO, f"cannot write thumbnail ({exc})") from exc
            raise CacheWriteError(exc.errno, exc.strerror) from exc
        except Exception as exc:
            raise decode.describe(exc, sniffed) from exc
        finally:
            px.image.close()
        return written


def _orientation(f: BinaryIO, sniffed: sniff.Sniffed) -> int | None:
    if uses_exifread(sniffed):
        try:
            return exif.read_exifread(f).orientation
        except Exception:
            return None
    return None
