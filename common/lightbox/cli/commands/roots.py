"""``lightbox roots [add PATH | remove ROOT | confirm ROOT]``: the folders that make up the
library."""

from __future__ import annotations

import argparse
import os

from lightbox.cli.context import Context, Subparsers
from lightbox.cli.jobs_wait import wait_for_job
from lightbox.common import errors


def register(sub: Subparsers) -> argparse.ArgumentParser:
    p = sub.add_parser("roots", help="list, add or remove library roots (photo folders)",
                       description="Without an action, list the roots.")
    actions = p.add_subparsers(dest="roots_action", metavar="ACTION")
    add = actions.add_parser("add", help="add a folder to the library and scan it")
    add.add_argument("path")
    add.add_argument("--name", help="display name (default: the folder's name)")
    add.add_argument("--no-scan", action="store_true", help="do not start the initial scan")
    add.add_argument("--wait", action="store_true", help="wait until the first scan is done")
    add.add_argument("--if-missing", action="store_true",
                     help="succeed quietly when the folder is already a root")
    rm = actions.add_parser("remove", help="forget a root (files are not touched)")
    rm.add_argument("root", help="id, name or path")
    confirm = actions.add_parser(
        "confirm", help="accept that the photos held as suspect are gone (they become "
        "missing; a later scan removes them)")
    confirm.add_argument("root", help="id, name or path")
    for a in (add, rm, confirm):
        a.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
    return p


def run(ctx: Context, args: argparse.Namespace) -> int:
    action = getattr(args, "roots_action", None)
    if action == "add":
        path = os.path.abspath(os.path.expanduser(args.path))
        try:
            out = ctx.call("roots.add", {"path": path, "name": args.name,
                                         "scan": not args.no_scan})
        except errors.Conflict as exc:
            if args.if_missing and isinstance(exc.data, dict) \
                    and exc.data.get("reason") == "already_a_root":
                if not ctx.json:
                    ctx.print(f"{path} is already in the library")
                else:
                    ctx.emit_json({"root": None, "job": None, "already": True})
                return 0
            raise
        if args.wait and out.get("job"):
            return wait_for_job(ctx, out)
        if ctx.json:
            ctx.emit_json(out)
        else:
            r = out["root"]
            ctx.print(f"added root {r['id']} {r['name']!r} at {r['path']}"
                      + (f"; scanning (job {out['job']})" if out.get("job") else ""))
        return 0
    if action == "confirm":
        out = ctx.call("roots.confirm", {"root": _root_ref(args.root)})
        if ctx.json:
            ctx.emit_json(out)
        else:
            ctx.print(f"{out['confirmed']} photos of root {out['root']} are missing now")
        return 0
    if action == "remove":
        out = ctx.call("roots.remove", {"root": _root_ref(args.root)})
        if ctx.json:
            ctx.emit_json(out)
        else:
            ctx.print(f"removed root {out['removed']}: {out['photos']} photos and "
                      f"{out['folders']} folders left the catalog (files untouched)")
        return 0
    roots = ctx.call("roots.list")["roots"]
    if ctx.json:
        ctx.emit_json(roots)
        return 0
    if not roots:
        ctx.print("no roots yet: lightbox roots add /path/to/photos")
    for r in roots:
        state = "online" if r["online"] else f"OFFLINE ({r['status']})"
        extra = []
        if r["pending"]:
            extra.append(f"{r['pending']} pending")
        if r["errors"]:
            extra.append(f"{r['errors']} errors")
        if r["missing"]:
            extra.append(f"{r['missing']} missing")
        if r.get("suspect"):
            extra.append(f"{r['suspect']['count']} suspect (not found; held, "
                         "`lightbox roots confirm` to accept)")
        ctx.print(f"{r['id']:>3}  {r['name']:<20} {r['photos']:>8} photos  {r['folders']:>6} "
                  f"folders  {state}  {r['path']}" + (f"  ({', '.join(extra)})" if extra else ""))
    return 0


def _root_ref(root: str) -> int | str:
    if root.startswith(("/", "~", ".")):
        return os.path.abspath(os.path.expanduser(root))
    return int(root) if root.isdigit() else root
