"""``lightbox dupes [--near]``: groups of duplicate photos, biggest first.

Exact duplicates share a sha256; near ones (``--near``) have perceptual hashes within
``--threshold`` bits. Grouping a large library for the first time takes a while: the daemon
answers "unavailable, retry" meanwhile and this command waits and asks again.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from lightbox.cli.commands.ls import dims, human_size, int_range, note
from lightbox.cli.context import Context, Subparsers
from lightbox.cli.quote import shell_name
from lightbox.common import errors

WAIT_MAX = 600.0  # seconds to keep asking while the daemon groups


def register(sub: Subparsers) -> argparse.ArgumentParser:
    p = sub.add_parser("dupes", help="groups of duplicate photos (exact, or near with --near)",
                       description="Exact duplicates: identical files. Near duplicates: "
                       "resized, re-encoded or slightly edited copies, by perceptual hash; a "
                       "group is a chain of photos each within THRESHOLD bits of another.")
    p.add_argument("--near", action="store_true", help="near duplicates instead of exact")
    p.add_argument("--threshold", type=int_range(0, 16), default=None, metavar="N",
                   help="near: bits two hashes may differ by (default 6; 0-16)")
    p.add_argument("--limit", type=int_range(1, 1000), default=100, metavar="N",
                   help="groups per page (1-1000)")
    p.add_argument("--all", action="store_true", help="every page of groups")
    return p


def call_patiently(ctx: Context, params: dict[str, Any]) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_MAX
    told = False
    while True:
        try:
            reply: dict[str, Any] = ctx.call("photos.duplicates", params)
            return reply
        except errors.Unavailable as exc:
            retry = (exc.data or {}).get("retry_after") if isinstance(exc.data, dict) else None
            if retry is None or time.monotonic() > deadline:
                raise
            if not told:
                note(f"{exc.message} (waiting)")
                told = True
            time.sleep(min(float(retry), 5.0))


def wasted(group: dict[str, Any]) -> int:
    """Bytes that deleting every copy but the largest would free (exact groups: all but
    one; near groups: all but the biggest file)."""
    if isinstance(group.get("wasted"), int):
        return int(group["wasted"])
    sizes = sorted((int(p.get("size") or 0) for p in group.get("photos") or []), reverse=True)
    return sum(sizes[1:])


def run(ctx: Context, args: argparse.Namespace) -> int:
    params: dict[str, Any] = {"kind": "near" if args.near else "exact", "limit": args.limit}
    if args.threshold is not None:
        params["threshold"] = args.threshold
    first: dict[str, Any] | None = None
    more = None
    while True:
        reply = call_patiently(ctx, params)
        if ctx.json:
            if first is None:
                first = reply
            else:
                first["groups"] += reply["groups"]
            first["next_cursor"] = reply["next_cursor"]
        else:
            for g in reply["groups"]:
                kind = f", {g['contents']} different" if "contents" in g else ""
                ctx.print(f"{g['count']} photos{kind}, {human_size(wasted(g))} in copies")
                for p in g["photos"]:
                    dist = (f"  {p['distance']} bits off" if p.get("distance") is not None
                            else "")
                    taken = (p.get("taken_at") or "-").replace("T", " ")
                    ctx.print(f"  {shell_name(p.get('path') or p['name'])}  "
                              f"{human_size(p.get('size'))}  {dims(p)}  {taken}{dist}")
        more = reply["next_cursor"]
        if not args.all or not more:
            break
        params["cursor"] = more
    if ctx.json:
        ctx.emit_json(first)
        return 0
    if first is None and not more and reply["total_groups"] == 0:
        note("no duplicates")
    elif more:
        note(f"({reply['total_groups']} groups in all: use --all for every page)")
    return 0
