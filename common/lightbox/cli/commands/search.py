"""``lightbox search [TEXT] [filters]``: photos matching every filter, anywhere or below a
folder; one a line with its path, or ``photos.search`` replies with ``--json``."""

from __future__ import annotations

import argparse
from typing import Any

from lightbox.cli.commands.ls import (
    PAGE,
    abspath,
    add_page_options,
    merge_page,
    note,
    pages,
    photo_line,
)
from lightbox.cli.context import Context, Subparsers


def register(sub: Subparsers) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "search", help="find photos by name, folder, date, camera, GPS",
        description="Photos matching every given filter. TEXT: words that must all appear "
        "in the file name or its folder's path (any case). Dates: YYYY, YYYY-MM, YYYY-MM-DD "
        "(whole periods) or ISO date-times, on the camera's clock.")
    p.add_argument("text", nargs="*", metavar="TEXT")
    p.add_argument("--from", dest="date_from", metavar="DATE", help="taken on or after")
    p.add_argument("--to", dest="date_to", metavar="DATE", help="taken on or before")
    p.add_argument("--camera", metavar="TEXT", help="make or model contains these words")
    gps = p.add_mutually_exclusive_group()
    gps.add_argument("--gps", dest="has_gps", action="store_true", default=None,
                     help="only photos with a location")
    gps.add_argument("--no-gps", dest="has_gps", action="store_false",
                     help="only photos without a location")
    p.add_argument("--in", dest="within", metavar="PATH",
                   help="only in this folder and below")
    p.add_argument("--here-only", action="store_true",
                   help="with --in: that folder only, not its subfolders")
    p.add_argument("--status", choices=("ok", "error", "pending", "missing", "any"),
                   default="ok", help="which photos (default ok)")
    add_page_options(p)
    return p


def params_of(args: argparse.Namespace) -> dict[str, Any]:
    params: dict[str, Any] = {
        "sort": args.sort, "order": "desc" if args.desc else "asc",
        "limit": args.limit or PAGE, "status": args.status,
    }
    if args.text:
        params["text"] = " ".join(args.text)
    for key in ("date_from", "date_to", "camera", "has_gps"):  # the daemon checks them
        if getattr(args, key) is not None:
            params[key] = getattr(args, key)
    if args.within:
        params["path"] = abspath(args.within)
        params["recursive"] = not args.here_only
    return params


def run(ctx: Context, args: argparse.Namespace) -> int:
    first: dict[str, Any] | None = None
    more = None
    shown = 0
    for reply in pages(ctx, "photos.search", params_of(args), args.all):
        if ctx.json:
            first = merge_page(first, reply)
            continue
        for p in reply["photos"]:
            ctx.print(photo_line(p, name=p.get("path") or p["name"]))
        shown += len(reply["photos"])
        more = reply["next_cursor"]
    if ctx.json:
        ctx.emit_json(first)
    elif more:
        note(f"({shown} shown; more match: use --all, or a larger --limit)")
    elif shown == 0:
        note("no photo matches")
    return 0
