"""``lightbox scan [PATH] [--wait]``: look for new, changed, moved and vanished photos."""

from __future__ import annotations

import argparse
import os
from typing import Any

from lightbox.cli.context import Context, Subparsers
from lightbox.cli.jobs_wait import wait_for_job


def register(sub: Subparsers) -> argparse.ArgumentParser:
    p = sub.add_parser("scan", help="scan roots (or one folder) for changes",
                       description="Start a scan job. Unchanged files are not read again.")
    p.add_argument("path", nargs="?", help="a folder inside a root (default: every root)")
    p.add_argument("--root", help="only this root (id, name or path)")
    p.add_argument("--full", action="store_true", help="re-read every file")
    p.add_argument("--wait", action="store_true",
                   help="wait until the scan and the indexing it caused are done; exit 1 if "
                   "the job failed")
    return p


def run(ctx: Context, args: argparse.Namespace) -> int:
    params: dict[str, Any] = {"full": args.full}
    if args.path:
        params["path"] = os.path.abspath(os.path.expanduser(args.path))
    if args.root:
        params["root"] = int(args.root) if args.root.isdigit() else args.root
    out = ctx.call("library.scan", params)
    if args.wait:
        return wait_for_job(ctx, out)
    if ctx.json:
        ctx.emit_json(out)
    else:
        ctx.print(f"scan started: job {out['job']} (lightbox jobs wait {out['job']})")
    return 0
