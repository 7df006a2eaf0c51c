"""``lightbox ls [PATH]``: the roots, or a folder's subfolders and photos.

Folders first (with their counts), then photos one a line: name, date taken, camera,
dimensions, size. ``--all`` follows ``next_cursor`` to the end; without it, a note on stderr
says there is more. ``--json`` prints the ``folders.list`` reply as is (with ``--all``: one
reply holding every photo). The table helpers here are shared by ``search`` and ``dupes``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

from lightbox.cli.context import Context, Subparsers
from lightbox.cli.quote import shell_name
from lightbox.common.orientation import upright_of

PAGE = 500


def register(sub: Subparsers) -> argparse.ArgumentParser:
    p = sub.add_parser("ls", help="list the roots, or a folder's subfolders and photos",
                       description="Without PATH, list the roots. With PATH, list that "
                       "folder of the library: subfolders with their counts, then photos.")
    p.add_argument("path", nargs="?", metavar="PATH")
    add_page_options(p)
    return p


def add_page_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sort", choices=("name", "taken", "size"), default="name",
                   help="order of photos (default name)")
    p.add_argument("--desc", action="store_true", help="reverse the order")
    p.add_argument("--limit", type=int_range(1, 2000), default=None, metavar="N",
                   help=f"photos per page (default {PAGE}; 1-2000)")
    p.add_argument("--all", action="store_true", help="every page, not just the first")


def int_range(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: an integer in [low, high], with a usage error (exit 2) otherwise."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is outside {low}-{high}")
        return value
    parse.__name__ = "number"
    return parse


# -- formatting ---------------------------------------------------------------------------
def human_size(n: int | None) -> str:
    if n is None:
        return "-"
    size = float(n)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if size < 1000 or unit == "TB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"  # pragma: no cover


def camera(p: dict[str, Any]) -> str:
    make, model = (p.get("make") or "").strip(), (p.get("model") or "").strip()
    if make and model.lower().startswith(make.split()[0].lower()):
        return model
    return f"{make} {model}".strip() or "-"


def dims(p: dict[str, Any]) -> str:
    """Width x height as the photo is shown (after its EXIF rotation)."""
    width, height = upright_of(p)
    return f"{width}x{height}" if width and height else "-"


def photo_line(p: dict[str, Any], name: str | None = None) -> str:
    taken = (p.get("taken_at") or "-").replace("T", " ")
    label = shell_name(name if name is not None else p["name"])
    line = (f"{label:<32} {taken:<19}  {camera(p):<22.22} "
            f"{dims(p):>11}  {human_size(p.get('size')):>9}")
    if p.get("status") not in (None, "ok"):
        why = f": {p['error']}" if p.get("error") else ""
        line += f"  [{p['status']}{why}]"
    return line


def folder_line(f: dict[str, Any], name: str | None = None) -> str:
    label = shell_name((name if name is not None else f["name"]) + "/")
    extra = "" if f.get("online", True) else "  (offline)"
    if f.get("missing_since"):
        extra += "  (missing)"
    return (f"{label:<32} {f['total_count']:>8} photos  {f['folder_count']:>5} folders  "
            f"{human_size(f.get('bytes')):>9} here{extra}")


def note(text: str) -> None:
    sys.stderr.write(text + "\n")


def abspath(path: str) -> str:
    return os.path.abspath(os.path.expanduser(path))


def pages(ctx: Context, method: str, params: dict[str, Any], follow: bool
          ) -> Iterator[dict[str, Any]]:
    """Replies of a paginated method, following next_cursor when ``follow``."""
    params = dict(params)
    while True:
        reply: dict[str, Any] = ctx.call(method, params)
        yield reply
        cursor = reply.get("next_cursor")
        if not follow or not cursor:
            return
        params["cursor"] = cursor


def merge_page(merged: dict[str, Any] | None, reply: dict[str, Any]) -> dict[str, Any]:
    """``--json --all``: one document with the photos of every page and the last cursor."""
    if merged is None:
        return reply
    merged["photos"] += reply["photos"]
    merged["next_cursor"] = reply["next_cursor"]
    return merged


def run(ctx: Context, args: argparse.Namespace) -> int:
    if args.path is None:
        top = ctx.call("folders.list")
        if ctx.json:
            ctx.emit_json(top)
            return 0
        if not top["folders"]:
            note("the library has no roots yet: lightbox roots add PATH")
        for f in top["folders"]:
            ctx.print(folder_line(f) + f"  {shell_name(f['path'])}")
        return 0
    path = abspath(args.path)
    if os.path.isfile(path):
        photo = ctx.call("photos.get", {"path": path})
        if ctx.json:
            ctx.emit_json(photo)
        else:
            ctx.print(photo_line(photo))
        return 0
    params: dict[str, Any] = {"path": path, "sort": args.sort,
                              "order": "desc" if args.desc else "asc",
                              "limit": args.limit or PAGE}
    first: dict[str, Any] | None = None
    more = None
    for reply in pages(ctx, "folders.list", params, args.all):
        if ctx.json:
            first = merge_page(first, reply)
            continue
        for f in reply["folders"]:
            ctx.print(folder_line(f))
        for p in reply["photos"]:
            ctx.print(photo_line(p))
        more = reply["next_cursor"]
    if ctx.json:
        ctx.emit_json(first)
    elif more:
        note("(more photos: use --all, or a larger --limit)")
    return 0
