"""``lightbox call METHOD key=value ...``: any control method, typed from its own schema.

Values are converted with the method's parameter schema (from the registry this CLI was
built with, or the daemon's ``system.methods`` for a method this CLI does not know): a
string parameter keeps ``007`` as text, an integer one turns it into 7. ``key:=JSON`` passes
raw JSON. Without METHOD, lists every method.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from lightbox.cli import exits
from lightbox.cli.context import CliError, Context, Subparsers
from lightbox.cli.jobs_wait import wait_for_job
from lightbox.common.api import METHODS

_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}


def register(sub: Subparsers) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "call", help="call any control method: lightbox call METHOD key=value ...",
        description="Call a control method. Parameters are key=value (converted with the "
        "method's schema) or key:=JSON. Without METHOD, list the methods.",
    )
    p.add_argument("method", nargs="?", metavar="METHOD")
    p.add_argument("params", nargs="*", metavar="KEY=VALUE")
    p.add_argument("--wait", action="store_true",
                   help="for methods that start a job: wait until it ends")
    p.add_argument("-o", "--output", type=Path, metavar="FILE",
                   help="write the reply's first binary frame to FILE")
    return p


def parse_params(method: str, pairs: list[str], schema: dict[str, Any] | None) -> dict[str, Any]:
    props: dict[str, Any] = (schema or {}).get("properties", {})
    out: dict[str, Any] = {}
    for pair in pairs:
        if ":=" in pair and ("=" not in pair or pair.index(":=") < pair.index("=")):
            key, _, raw = pair.partition(":=")
            try:
                out[key] = json.loads(raw)
            except ValueError as exc:
                raise CliError(f"{key}: not valid JSON ({exc})", exits.USAGE) from None
            continue
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise CliError(f"expected KEY=VALUE, got {pair!r}", exits.USAGE)
        out[key] = convert(key, raw, props.get(key))
    return out


def convert(key: str, raw: str, prop: dict[str, Any] | None) -> Any:
    kind = (prop or {}).get("type")
    if isinstance(kind, list):
        if raw == "null" and "null" in kind:
            return None
        kind = next((k for k in kind if k != "null"), None)
    try:
        if kind == "string":
            return raw
        if kind == "integer":
            try:
                return int(raw)
            except ValueError:
                raise ValueError(f"expected a whole number, got {raw!r}") from None
        if kind == "number":
            try:
                return float(raw)
            except ValueError:
                raise ValueError(f"expected a number, got {raw!r}") from None
        if kind == "boolean":
            if raw.lower() in _TRUE:
                return True
            if raw.lower() in _FALSE:
                return False
            raise ValueError("expected true or false")
        if kind == "array":
            if raw.startswith("["):
                return json.loads(raw)
            item = ((prop or {}).get("items") or {}).get("type")
            return [convert(key, part, {"type": item}) for part in raw.split(",") if part]
        if kind == "object":
            return json.loads(raw)
    except ValueError as exc:
        raise CliError(f"{key}: {exc}", exits.USAGE) from None
    # Unknown to the schema: JSON if it parses as JSON, else the text itself.
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def run(ctx: Context, args: argparse.Namespace) -> int:
    if not args.method:
        listing = ctx.call("system.methods")
        if ctx.json:
            ctx.emit_json(listing)
            return 0
        for m in listing["methods"]:
            mark = "" if m["allowed"] else "  (not allowed here)"
            usage = " ".join(
                f"{name}=" + ("…" if name in m["params"]["required"] else "[…]")
                for name in m["params"]["properties"]
            )
            ctx.print(f"{m['name']:<22} {m['permission']:<8} {usage}{mark}")
            ctx.print(f"    {m['summary']}")
        return 0

    spec = METHODS.get(args.method)
    if spec is not None:
        schema: dict[str, Any] | None = spec.describe()["params"]
        starts_job = spec.starts_job
    else:
        listing = ctx.call("system.methods")
        remote = next((m for m in listing["methods"] if m["name"] == args.method), None)
        schema = remote["params"] if remote else None
        starts_job = bool(remote and remote.get("starts_job"))
    params = parse_params(args.method, args.params, schema)
    # A method that waits (jobs.wait timeout=120) must not be cut off by the reply timeout.
    waits = params.get("timeout")
    reply_timeout = None
    if isinstance(waits, (int, float)) and not isinstance(waits, bool):
        reply_timeout = max(ctx.timeout, float(waits) + ctx.timeout)
    result = ctx.call(args.method, params or None, timeout=reply_timeout)
    if args.wait:
        if not starts_job:
            raise CliError(f"{args.method} does not start a job; --wait does not apply",
                           exits.USAGE)
        return wait_for_job(ctx, result)
    if args.output is not None:
        blob = _first_bytes(result)
        if blob is None:
            raise CliError("the reply carries no binary frame", exits.ERROR)
        args.output.write_bytes(blob)
    if ctx.json or not isinstance(result, (dict, list)):
        ctx.emit_json(result)
    else:
        ctx.print(json.dumps(result, indent=2, ensure_ascii=False,
                             default=lambda b: f"<{len(b)} bytes>"))
    return 0


def _first_bytes(value: Any) -> bytes | None:
    if isinstance(value, bytes):
        return value
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, list):
        for v in value:
            found = _first_bytes(v)
            if found is not None:
                return found
    return None
