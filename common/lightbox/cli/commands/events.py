"""``lightbox events``: stream events as they happen, like ``mpc idleloop``.

Subscribes first, then replays from ``--since`` through ``events.since`` and switches to the
live stream without losing or repeating an event: live events already replayed are skipped
by seq, and a gap in the live seqs (a slow terminal made the socket drop some) is filled
from the ring buffer. A daemon restart is noticed by its new boot id and reported on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

from lightbox.cli.context import Context, Subparsers
from lightbox.common.client import Client


def register(sub: Subparsers) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "events", help="stream events (job progress, catalog changes...) as they happen",
        description="Print events as they happen, one a line (JSON Lines with --json). "
        "--count 1 waits for the next event and exits, like `mpc idle`.",
    )
    p.add_argument("--topic", action="append", default=[], metavar="TOPIC",
                   help="only this topic (repeatable): system, job, catalog, ...")
    p.add_argument("--since", type=int, metavar="SEQ",
                   help="first replay the events after SEQ that the daemon still holds")
    p.add_argument("--count", type=int, metavar="N", help="exit after N events")
    p.add_argument("--idle-timeout", type=float, metavar="SECONDS",
                   help="exit (code 0) after SECONDS without an event")
    return p


def _value(v: Any) -> str:
    if isinstance(v, str) and v and not any(c in v for c in ' "='):
        return v
    return json.dumps(v, ensure_ascii=False)


def format_event(ev: dict[str, Any]) -> str:
    data = ev.get("data") or {}
    fields = " ".join(f"{k}={_value(v)}" for k, v in data.items())
    return f"{ev['seq']} {ev['time']} {ev['topic']}.{ev['type']} {fields}".rstrip()


def run(ctx: Context, args: argparse.Namespace) -> int:
    return asyncio.run(_stream(ctx, args))


async def _stream(ctx: Context, args: argparse.Namespace) -> int:
    async with Client(ctx.endpoint(), timeout=ctx.timeout) as client:
        hello = await client.connect()
        sub = await client.subscribe(args.topic)
        printed = 0
        boot = hello["boot"]
        last = hello["seq"] if args.since is None else args.since

        def out(ev: dict[str, Any]) -> bool:
            nonlocal printed, last
            last = ev["seq"]
            if ctx.json:
                sys.stdout.write(json.dumps(ev, ensure_ascii=False) + "\n")
            else:
                sys.stdout.write(format_event(ev) + "\n")
            sys.stdout.flush()
            printed += 1
            return args.count is not None and printed >= args.count

        async def replay(after: int) -> bool:
            more = True
            while more:
                page = await client.call("events.since", {"seq": after, "boot": boot,
                                                          "topics": args.topic or None})
                if not page["complete"]:
                    sys.stderr.write(f"lightbox: events after {after} are no longer held; "
                                     "some were missed\n")
                for ev in page["events"]:
                    if ev["seq"] > last and out(ev):
                        return True
                    after = ev["seq"]
                more = page["more"]
            return False

        try:
            if args.since is not None and await replay(args.since):
                return 0
            while True:
                try:
                    ev = await sub.next(args.idle_timeout)
                except TimeoutError:
                    return 0
                if ev.get("boot") != boot:
                    sys.stderr.write("lightbox: the daemon restarted; event numbers start over\n")
                    boot, last = ev.get("boot", boot), 0
                if ev["seq"] <= last:
                    continue
                # Topic filters make gaps normal; only fill them when we take everything.
                if not args.topic and ev["seq"] > last + 1 and await replay(last):
                    return 0
                if ev["seq"] > last and out(ev):
                    return 0
        finally:
            sub.close()
