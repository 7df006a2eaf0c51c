"""``lightbox jobs [list|get|wait|cancel]``: the daemon's job queue."""

from __future__ import annotations

import argparse
from typing import Any

from lightbox.cli.commands.ls import int_range
from lightbox.cli.context import Context, Subparsers
from lightbox.cli.jobs_wait import TERMINAL, wait_for_job


def register(sub: Subparsers) -> argparse.ArgumentParser:
    p = sub.add_parser("jobs", help="list jobs, wait for one, cancel one",
                       description="Without an action, list recent jobs.")
    p.add_argument("--state", choices=("queued", "running", "succeeded", "failed", "cancelled"))
    p.add_argument("--kind")
    p.add_argument("--limit", type=int_range(1, 1000), default=20, metavar="N",
                   help="how many jobs, newest first (default 20)")
    actions = p.add_subparsers(dest="jobs_action", metavar="ACTION")
    for name, text in (("get", "show one job"), ("wait", "wait until a job ends"),
                       ("cancel", "cancel a queued or running job")):
        a = actions.add_parser(name, help=text)
        a.add_argument("id", type=int)
        a.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
    return p


def line(job: dict[str, Any]) -> str:
    total = job.get("total")
    done = job.get("processed") or 0
    progress = f"{done}/{total}" if total else str(done)
    if job["state"] == "running" and total:
        progress += f" ({100 * done / max(total, 1):.0f}%)"
    extra = f"  {job['error']}" if job.get("error") else ""
    return (f"{job['id']:>5}  {job['kind']:<8} {job['state']:<10} {progress:<16} "
            f"{job['created_at'] or ''}{extra}")


def run(ctx: Context, args: argparse.Namespace) -> int:
    action = getattr(args, "jobs_action", None)
    if action == "wait":
        job = ctx.call("jobs.get", {"id": args.id})
        if job["state"] in TERMINAL:
            if ctx.json:
                ctx.emit_json(job)
            else:
                ctx.print(line(job))
            return 0 if job["state"] == "succeeded" else 1
        return wait_for_job(ctx, {"job": args.id})
    if action in ("get", "cancel"):
        job = ctx.call(f"jobs.{action}", {"id": args.id})
        if ctx.json:
            ctx.emit_json(job)
        else:
            ctx.print(line(job))
            if action == "get" and job.get("result"):
                import json

                ctx.print(json.dumps(job["result"], indent=2))
        return 0
    out = ctx.call("jobs.list", {"state": args.state, "kind": args.kind, "limit": args.limit})
    if ctx.json:
        ctx.emit_json(out["jobs"])
        return 0
    if not out["jobs"]:
        ctx.print("no jobs")
    for job in out["jobs"]:
        ctx.print(line(job))
    return 0
