"""``lightbox sync [NAME] [--wait] [--force] [--retry]``: sync one bucket, or every bucket,
now."""

from __future__ import annotations

import argparse

from lightbox.cli.context import Context, Subparsers
from lightbox.cli.jobs_wait import wait_for_job


def register(sub: Subparsers) -> argparse.ArgumentParser:
    p = sub.add_parser("sync", help="sync S3 bucket sources now",
                       description="List the bucket (every bucket without NAME), queue new "
                       "and changed objects and read them. Deletions apply only after a "
                       "complete listing.")
    p.add_argument("name", nargs="?", help="a bucket source's name or id")
    p.add_argument("--wait", action="store_true", help="wait until the sync is done")
    p.add_argument("--force", action="store_true",
                   help="believe an empty listing or a mass vanish")
    p.add_argument("--retry", action="store_true",
                   help="also read again the objects whose reads failed (server errors, "
                   "throttling, timeouts), changed or not")
    return p


def run(ctx: Context, args: argparse.Namespace) -> int:
    params: dict[str, object] = {"force": args.force}
    if args.retry:
        params["retry"] = True
    if args.name:
        params["source"] = int(args.name) if args.name.isdigit() else args.name
    out = ctx.call("sources.sync", params)
    jobs = out["jobs"]
    if args.wait:
        code = 0
        for job in jobs:
            code = max(code, wait_for_job(ctx, {"job": job}))
        return code
    if ctx.json:
        ctx.emit_json(out)
    elif not jobs:
        ctx.print("no buckets to sync")
    else:
        ctx.print("syncing: job " + ", ".join(str(j) for j in jobs))
    return 0
