"""``lightbox status``: is the daemon up, and how is it doing."""

from __future__ import annotations

import argparse

from lightbox.cli.context import Context, Subparsers


def register(sub: Subparsers) -> argparse.ArgumentParser:
    return sub.add_parser("status", help="daemon health: version, uptime, catalog, jobs",
                          description="Whether the daemon answers, and how it is doing: "
                          "version, uptime, the catalog database and schema, photo counts "
                          "(pending ones are still being indexed), jobs, the sockets it "
                          "listens on. Exit 3 when it is not running.")


def duration(seconds: float) -> str:
    s = int(seconds)
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    if minutes:
        return f"{minutes}m {s}s"
    return f"{seconds:.1f}s"


def run(ctx: Context, args: argparse.Namespace) -> int:
    st = ctx.call("system.status")
    if ctx.json:
        ctx.emit_json(st)
        return 0
    db = st["database"]
    jobs = st.get("jobs", {})
    ctx.print(f"lightboxd {st['version']}  up {duration(st['uptime'])}  (pid {st['pid']})")
    ctx.print(f"catalog    {db['engine']}  {db['url']}  (schema {db['revision']})")
    for warning in db.get("warnings") or ():
        ctx.print(f"catalog    WARNING: {warning['message']}")
    counts = st.get("counts", {})
    if counts:
        ctx.print("counts     " + ", ".join(f"{v} {k}" for k, v in counts.items()
                                            if not isinstance(v, dict)))
    reasons = counts.get("error_reasons") or {}
    if reasons:
        ctx.print("errors     " + ", ".join(f"{n} {str(r).replace('_', ' ')}"
                                            for r, n in sorted(reasons.items())))
    ctx.print("jobs       " + ", ".join(f"{jobs.get(k, 0)} {k}" for k in
                                        ("queued", "running", "failed")))
    indexing = st.get("indexing") or {}
    if indexing.get("paused"):
        ctx.print(f"indexing   PAUSED: {indexing['paused']['message']}")
    if indexing.get("retrying"):
        ctx.print("retrying   " + ", ".join(f"{n} {reason.replace('_', ' ')}"
                                            for reason, n in indexing["retrying"].items()))
    endpoints = st.get("components", {}).get("control", {}).get("endpoints", {})
    for transport, address in endpoints.items():
        ctx.print(f"socket     {address}  ({transport})")
    return 0
