"""``lightbox db test URL | switch URL [--wait] | status``: where the catalog lives.

A URL holds a password, and a command line is visible to every user of the machine (``ps``):
give ``-`` instead of the URL to read it from standard input (``lightbox db switch - <
url.txt``). Whatever is printed shows the URL masked.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from lightbox.cli import exits
from lightbox.cli.context import CliError, Context, Subparsers
from lightbox.cli.jobs_wait import wait_for_job

URL_HELP = "database URL, or - to read it from standard input (keeps the password out of ps)"


def register(sub: Subparsers) -> argparse.ArgumentParser:
    p = sub.add_parser("db", help="test a database, move the catalog there live, show where "
                       "it is", description="The catalog's database. Without an action, "
                       "show its status.")
    actions = p.add_subparsers(dest="db_action", metavar="ACTION")
    test = actions.add_parser("test", help="check that a database can hold the catalog "
                              "(changes nothing)")
    test.add_argument("url", help=URL_HELP)
    test.add_argument("--connect-timeout", type=float, default=10.0, metavar="SECONDS")
    switch = actions.add_parser("switch", help="move the catalog to another database while "
                                "the daemon runs (verified; the current one stays on failure)")
    switch.add_argument("url", help=URL_HELP)
    switch.add_argument("--wait", action="store_true",
                        help="wait until the switch is done; exit 1 if it failed")
    status = actions.add_parser("status", help="engine, URL, schema, the last switch")
    for a in (test, switch, status):
        a.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
    return p


def _url(arg: str) -> str:
    if arg != "-":
        return arg
    line = sys.stdin.readline().strip()
    if not line:
        raise CliError("no URL on standard input", exits.USAGE)
    return line


def run(ctx: Context, args: argparse.Namespace) -> int:
    action = getattr(args, "db_action", None) or "status"
    if action == "test":
        timeout = max(ctx.timeout, args.connect_timeout + 15)
        report = ctx.call("database.test", {"url": _url(args.url),
                                            "timeout": args.connect_timeout}, timeout=timeout)
        if ctx.json:
            ctx.emit_json(report)
        else:
            _print_test(ctx, report)
        return exits.OK if report["ok"] else exits.ERROR
    if action == "switch":
        out = ctx.call("database.switch", {"url": _url(args.url)})
        if args.wait:
            return wait_for_job(ctx, out)
        if ctx.json:
            ctx.emit_json(out)
        else:
            ctx.print(f"switch started: job {out['job']} (lightbox jobs wait {out['job']}, "
                      "lightbox db status)")
        return exits.OK
    st = ctx.call("database.status")
    if ctx.json:
        ctx.emit_json(st)
        return exits.OK
    ctx.print(f"catalog    {st['engine']}  {st['url']}  (schema {st['revision']}, head "
              f"{st['head']})")
    if st.get("switched"):
        sw = st["switched"]
        ctx.print(f"origin     switched at {sw['switched_at']} from {sw['previous']} "
                  f"(state file {st['state_file']})")
    else:
        ctx.print("origin     bootstrap config (database.url)")
    active = (st.get("switch") or {}).get("active")
    if active:
        ctx.print(f"switching  job {active['job']} to {active['to']}: {active['phase']}")
    last = (st.get("switch") or {}).get("last")
    if last:
        how = "succeeded" if last.get("ok") else f"failed in {last.get('phase')}: " \
            f"{last.get('error') or last.get('reason')}"
        ctx.print(f"last       job {last['job']} to {last.get('to')} {how}")
    return exits.OK


def _print_test(ctx: Context, report: dict[str, Any]) -> None:
    ctx.print(f"{report['url']}: {'OK' if report['ok'] else 'NOT USABLE'}"
              + (f" ({report['reason']})" if report.get("reason") else ""))
    if report.get("server_version"):
        ctx.print(f"  server   {report['server_version']}")
    catalog = report.get("catalog")
    if catalog:
        rows = sum((catalog.get("rows") or {}).values())
        ctx.print(f"  catalog  {catalog['state']}" + (f", revision {catalog['revision']}"
                                                     if catalog.get("revision") else "")
                  + (f", {rows} rows" if rows else ""))
    for c in report["checks"]:
        mark = {True: "ok  ", False: "FAIL", None: "skip"}[c["ok"]]
        ctx.print(f"  {mark} {c['name']:<11} {c['detail']}")
