"""``lightbox info ID|PATH``: everything the catalog knows about one photo."""

from __future__ import annotations

import argparse
import os
from typing import Any

from lightbox.cli.commands.ls import abspath, camera, dims, human_size
from lightbox.cli.context import Context, Subparsers
from lightbox.cli.quote import shell_name
from lightbox.common.orientation import QUARTER_TURNS

# Shown first, in this order; then anything else that has a value.
_ORDER = ("id", "path", "status", "error", "error_reason", "size", "mtime", "format", "mime",
          "dimensions", "orientation", "taken_at", "taken_offset", "camera", "lens",
          "exposure_time", "f_number", "iso", "focal_length", "gps", "sha256", "phash",
          "thumbs", "first_seen", "indexed_at", "missing_since")
_SKIP = {"name", "width", "height", "make", "model", "gps_lat", "gps_lon", "gps_alt",
         "folder", "folder_id", "source", "source_id", "duplicates"}


def register(sub: Subparsers) -> argparse.ArgumentParser:
    p = sub.add_parser("info", help="everything known about one photo",
                       description="Everything the catalog knows about one photo: path, "
                       "status, size, dimensions as shown (after EXIF rotation), date taken, "
                       "camera and exposure, GPS, sha256, duplicates.")
    p.add_argument("photo", metavar="ID|PATH",
                   help="photo id, or the path of the file (relative paths are resolved)")
    return p


def reference(arg: str) -> dict[str, Any]:
    """An id when ARG is digits and not an existing file, else an absolute path."""
    if arg.isdigit() and not os.path.exists(arg):
        return {"id": int(arg)}
    return {"path": abspath(arg)}


def _value(key: str, doc: dict[str, Any]) -> Any:
    if key == "path":
        return shell_name(doc["path"]) if doc.get("path") else None
    if key == "dimensions":
        if not doc.get("width") or not doc.get("height"):
            return None
        shown = dims(doc)
        if doc.get("orientation") in QUARTER_TURNS:
            shown += f" (stored {doc['width']}x{doc['height']}, turned upright)"
        return shown
    if key == "camera":
        return camera(doc) if doc.get("make") or doc.get("model") else None
    if key == "gps":
        if doc.get("gps_lat") is None or doc.get("gps_lon") is None:
            return None
        alt = f", {doc['gps_alt']:.0f} m" if doc.get("gps_alt") is not None else ""
        return f"{doc['gps_lat']:.6f}, {doc['gps_lon']:.6f}{alt}"
    if key == "size":
        return f"{human_size(doc['size'])} ({doc['size']:,} bytes)"
    if key == "exposure_time" and doc.get(key):
        t = doc[key]
        return f"1/{round(1 / t)} s" if t < 1 else f"{t:g} s"
    if key == "f_number" and doc.get(key):
        return f"f/{doc[key]:g}"
    if key == "focal_length" and doc.get(key):
        return f"{doc[key]:g} mm"
    if key == "thumbs":
        return ", ".join(doc[key]) or None
    return doc.get(key)


def run(ctx: Context, args: argparse.Namespace) -> int:
    doc = ctx.call("photos.get", reference(args.photo))
    if ctx.json:
        ctx.emit_json(doc)
        return 0
    ctx.print(shell_name(doc["name"]))
    keys = [*_ORDER, *(k for k in doc if k not in _ORDER and k not in _SKIP)]
    for key in keys:
        value = _value(key, doc)
        if value is not None and value != "":
            ctx.print(f"  {key:<14} {value}")
    src = doc.get("source") or {}
    ctx.print(f"  {'root':<14} {src.get('name')}" + ("" if src.get("online", True)
                                                    else " (offline)"))
    dup = doc.get("duplicates") or {}
    near = dup.get("near")
    ctx.print(f"  {'duplicates':<14} {dup.get('exact', 0)} exact, "
              + ("near: not known yet" if near is None else f"{near} near"))
    return 0
