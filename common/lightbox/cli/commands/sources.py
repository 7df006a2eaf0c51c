"""``lightbox sources [list | add NAME | update NAME | test [NAME] | remove NAME |
secret NAME]``: every source, and S3 buckets in particular.

A secret access key is never taken from the command line (other users see it in ``ps``):
``--secret-stdin`` reads it from standard input, otherwise it is asked for without echo.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from lightbox.cli.context import CliError, Context, Subparsers
from lightbox.cli.jobs_wait import wait_for_job


def _bucket_args(p: argparse.ArgumentParser, required: bool) -> None:
    p.add_argument("--bucket", required=required, help="bucket name")
    p.add_argument("--prefix", help="only keys below this prefix")
    _reach_args(p)


def _reach_args(p: argparse.ArgumentParser) -> None:
    """How a bucket is reached: what ``sources.update`` can change too."""
    p.add_argument("--endpoint", help="S3 endpoint URL (default: AWS)")
    p.add_argument("--region", help="region (default us-east-1)")
    p.add_argument("--addressing-style", choices=("auto", "path", "virtual"))
    p.add_argument("--access-key-id", help="access key id (its secret is asked for)")
    p.add_argument("--profile", dest="credentials_profile",
                   help="a profile of ~/.aws/credentials instead of a key")
    p.add_argument("--secret-stdin", action="store_true",
                   help="read the secret access key from standard input")


def register(sub: Subparsers) -> argparse.ArgumentParser:
    p = sub.add_parser("sources", help="list sources; add, test or remove S3 buckets",
                       description="Without an action, list every source (roots and "
                       "buckets).")
    actions = p.add_subparsers(dest="sources_action", metavar="ACTION")
    actions.add_parser("list", help="every source with its state")
    add = actions.add_parser("add", help="add an S3 bucket as a source and sync it")
    add.add_argument("name")
    _bucket_args(add, required=True)
    add.add_argument("--interval", type=float, help="seconds between syncs (default a day)")
    add.add_argument("--no-sync", action="store_true", help="do not start the first sync")
    add.add_argument("--wait", action="store_true", help="wait until the first sync is done")
    upd = actions.add_parser("update", help="change how a bucket is reached and synced "
                             "(its photos stay)", description="Change a bucket's endpoint, "
                             "region, addressing, credentials, interval, page size, timeouts "
                             "or attempts; what is not given stays. The bucket and prefix "
                             "cannot change: another bucket is another source.")
    upd.add_argument("name")
    _reach_args(upd)
    upd.add_argument("--interval", type=float, help="seconds between syncs (0: on demand)")
    upd.add_argument("--page-size", type=int, help="keys per LIST request (1-1000)")
    upd.add_argument("--read-timeout", type=float, help="seconds one socket read may wait")
    upd.add_argument("--object-timeout", type=float,
                     help="seconds one object's whole transfer may take")
    upd.add_argument("--attempts", type=int, help="tries of each object read")
    upd.add_argument("--clear", action="append", default=[],
                     choices=("endpoint", "access_key_id", "credentials_profile"),
                     help="set to null (endpoint: AWS; access_key_id: forget the key and its "
                     "secret); repeatable")
    test = actions.add_parser("test", help="check a bucket can be listed and read")
    test.add_argument("name", nargs="?", help="a bucket source (or give --bucket …)")
    _bucket_args(test, required=False)
    rm = actions.add_parser("remove", help="forget a source (files and objects untouched)")
    rm.add_argument("name")
    sec = actions.add_parser("secret", help="replace a bucket's secret access key")
    sec.add_argument("name")
    sec.add_argument("--secret-stdin", action="store_true")
    sec.add_argument("--unset", action="store_true", help="remove the secret")
    for a in (add, upd, test, rm, sec, actions.choices["list"]):
        a.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
    return p


def _secret(args: argparse.Namespace, needed: bool) -> str | None:
    if not needed:
        return None
    if args.secret_stdin:
        value = sys.stdin.readline().rstrip("\r\n")
    elif sys.stdin.isatty():
        value = getpass.getpass("secret access key: ")
    else:
        raise CliError("the secret access key: give --secret-stdin and pipe it in")
    if not value:
        raise CliError("the secret access key is empty")
    return value


def _params(args: argparse.Namespace) -> dict[str, Any]:
    out = {k: getattr(args, k, None) for k in ("endpoint", "region", "bucket", "prefix",
                                                "addressing_style", "access_key_id",
                                                "credentials_profile")}
    out = {k: v for k, v in out.items() if v is not None}
    secret = _secret(args, bool(out.get("access_key_id")))
    if secret is not None:
        out["secret_access_key"] = secret
    return out


def run(ctx: Context, args: argparse.Namespace) -> int:
    action = getattr(args, "sources_action", None) or "list"
    if action == "add":
        params = {"kind": "s3", "name": args.name, "sync": not args.no_sync, **_params(args)}
        if args.interval is not None:
            params["interval"] = args.interval
        out = ctx.call("sources.add", params)
        if args.wait and out.get("job"):
            return wait_for_job(ctx, out)
        if ctx.json:
            ctx.emit_json(out)
        else:
            s = out["source"]
            ctx.print(f"added bucket {s['id']} {s['name']!r} at {s['path']}"
                      + (f"; syncing (job {out['job']})" if out.get("job") else ""))
        return 0
    if action == "update":
        params = {k: getattr(args, k) for k in (
            "endpoint", "region", "addressing_style", "access_key_id", "credentials_profile",
            "interval", "page_size", "read_timeout", "object_timeout", "attempts")
            if getattr(args, k) is not None}
        secret = _secret(args, bool(params.get("access_key_id")))
        if secret is not None:
            params["secret_access_key"] = secret
        if not params and not args.clear:
            raise CliError("sources update: nothing to change (see --help)")
        out = ctx.call("sources.update", {"source": args.name, **params,
                                          **({"clear": args.clear} if args.clear else {})})
        if ctx.json:
            ctx.emit_json(out)
        else:
            s = out["source"]
            ctx.print(f"updated {s['name']!r}: {', '.join(out['changed'])}"
                      if out["changed"] else f"{s['name']!r}: nothing changed")
        return 0
    if action == "test":
        params = _params(args)
        if args.name:
            params = {"source": args.name}
        elif "bucket" not in params:
            raise CliError("sources test: give a source name or --bucket")
        out = ctx.call("sources.test", params, timeout=max(ctx.timeout, 60))
        if ctx.json:
            ctx.emit_json(out)
        else:
            for c in out["checks"]:
                ctx.print(f"{'ok  ' if c['ok'] else 'FAIL'}  {c['name']:<12} {c['message']}")
        return 0 if out["ok"] else 1
    if action == "remove":
        out = ctx.call("sources.remove", {"source": args.name})
        if ctx.json:
            ctx.emit_json(out)
        else:
            ctx.print(f"removed source {out['removed']}: {out['photos']} photos and "
                      f"{out['folders']} folders left the catalog (files untouched)")
        return 0
    if action == "secret":
        value = None if args.unset else _secret(args, True)
        out = ctx.call("sources.set_secret", {"source": args.name, "value": value})
        if ctx.json:
            ctx.emit_json(out)
        else:
            info = out["secrets"]["secret_access_key"]
            ctx.print("secret removed" if not info["set"]
                      else f"secret stored (fingerprint {info['fingerprint']})")
        return 0
    sources = ctx.call("sources.list")["sources"]
    if ctx.json:
        ctx.emit_json(sources)
        return 0
    if not sources:
        ctx.print("no sources yet: lightbox roots add PATH, or lightbox sources add NAME "
                  "--bucket …")
    for s in sources:
        state = "online" if s["online"] else f"OFFLINE ({s['status']})"
        if s["online"] and s["status"]:
            state += f" ({s['status']})"
        ctx.print(f"{s['id']:>3}  {s['kind']:<5} {s['name']:<20} {s['photos']:>8} photos  "
                  f"{s['pending']:>6} pending  {state}  {s['path']}")
    return 0
