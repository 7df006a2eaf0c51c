"""``lightbox settings [get KEY | set KEY=VALUE… | reset KEY… | schema | audit [KEY] |
revert REV]``: the daemon's runtime settings.

Values typed on the command line are parsed by the setting's own field from the shared
schema (``lightbox.common.settings``): ``true``/``off``, ``1_000``, ``a,b`` for lists. Every
bad key is reported, each on its line, and nothing is sent (exit 2); the daemon checks the
whole patch again and reports per key the same way. ``KEY=-`` reads the value from stdin
(one line), so a secret stays out of the shell history and the process list.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from lightbox.cli import exits
from lightbox.cli.context import Context, Subparsers
from lightbox.common import errors
from lightbox.common import settings as schema


def register(sub: Subparsers) -> argparse.ArgumentParser:
    p = sub.add_parser("settings", help="show or change the daemon's settings",
                       description="Without an action: every setting with its value and "
                       "origin (default, file, environment, database).")
    actions = p.add_subparsers(dest="settings_action", metavar="ACTION")
    get = actions.add_parser("get", help="one setting: value, origin, default")
    get.add_argument("key")
    st = actions.add_parser("set", help="change settings: KEY=VALUE … (KEY=- reads stdin)")
    st.add_argument("pairs", nargs="+", metavar="KEY=VALUE")
    st.add_argument("--if-revision", type=int,
                    help="only if the settings are still at this revision (else exit 7)")
    rs = actions.add_parser("reset", help="back to the value without the database")
    rs.add_argument("keys", nargs="+", metavar="KEY")
    actions.add_parser("schema", help="every setting with its type, limits and meaning")
    au = actions.add_parser("audit", help="who changed what, newest first")
    au.add_argument("key", nargs="?")
    au.add_argument("--limit", type=int, default=50)
    au.add_argument("--cursor", type=int)
    rv = actions.add_parser("revert", help="undo the change that made revision REV")
    rv.add_argument("revision", type=int)
    for a in (get, st, rs, actions.choices["schema"], au, rv):
        a.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
    return p


def _shown(value: Any) -> str:
    if isinstance(value, dict) and value.get("secret"):
        return f"(set, {value['fingerprint']})" if value.get("set") else "(unset)"
    return "(unset)" if value is None else schema.Field("v", "any", "").format(value)


def _field_errors(ctx: Context, problems: list[dict[str, str]]) -> int:
    if ctx.json:
        ctx.emit_json({"error": {"reason": "invalid_settings", "fields": problems}})
    else:
        for p in problems:
            ctx.error(f"{p['key']}: {p['message']} ({p['reason']})")
    return exits.USAGE


def _change(ctx: Context, method: str, params: dict[str, Any]) -> int:
    ctx.client.connect()  # says which client this is, for the audit log ("declared")
    try:
        out = ctx.call(method, params)
    except errors.InvalidParams as exc:
        data = exc.data if isinstance(exc.data, dict) else {}
        if data.get("fields"):
            return _field_errors(ctx, list(data["fields"]))
        raise
    if ctx.json:
        ctx.emit_json(out)
        return 0
    if not out["changed"]:
        ctx.print(f"nothing changed (revision {out['revision']})")
        return 0
    ctx.print(f"revision {out['revision']}: changed {', '.join(out['changed'])}")
    for key in out.get("applied", []):
        ctx.print(f"  {key}: in effect now")
    for key in out.get("workers", []):
        ctx.print(f"  {key}: for worker processes started from now on")
    for key in out.get("restart", []):
        ctx.print(f"  {key}: stored; takes effect when the daemon restarts")
    for key in out.get("failed", []):
        ctx.print(f"  {key}: stored, but the daemon could not apply it (see its log)")
    for key, note in out.get("notes", {}).items():
        ctx.print(f"  note: {key}: {note}")
    return 0


def _parse_pairs(pairs: list[str]) -> tuple[dict[str, Any], list[dict[str, str]]]:
    typed: dict[str, str] = {}
    problems: list[dict[str, str]] = []
    for pair in pairs:
        key, sep, text = pair.partition("=")
        if not sep or not key:
            problems.append({"key": pair, "reason": "syntax", "message": "expected KEY=VALUE"})
            continue
        if text == "-":
            text = sys.stdin.readline().rstrip("\n")
        typed[key.strip()] = text
    good, bad = schema.validate(typed, text=True)
    # The daemon decides about objects (roots) and what is read-only; here: types.
    return good, problems + [p.to_json() for p in bad]


def run(ctx: Context, args: argparse.Namespace) -> int:
    action = getattr(args, "settings_action", None)
    if action == "get":
        out = ctx.call("settings.get", {"keys": [args.key]})
        entry = out["settings"][args.key]
        if ctx.json:
            ctx.emit_json({"key": args.key, "revision": out["revision"], **entry})
        else:
            ctx.print(_shown(entry["value"]))
            ctx.print(f"# origin: {entry['origin']}; default: {_shown(entry['default'])}; "
                      f"applies: {entry['applies']}"
                      + ("; waits for a restart" if entry["pending_restart"] else ""))
        return 0
    if action == "set":
        patch, problems = _parse_pairs(args.pairs)
        if problems:
            return _field_errors(ctx, problems)
        return _change(ctx, "settings.set", {"patch": patch, "if_revision": args.if_revision})
    if action == "reset":
        return _change(ctx, "settings.reset", {"keys": args.keys})
    if action == "revert":
        return _change(ctx, "settings.revert", {"revision": args.revision})
    if action == "schema":
        doc = ctx.call("settings.schema")
        if ctx.json:
            ctx.emit_json(doc)
            return 0
        for section in doc["sections"]:
            ctx.print(f"[{section['name']}] {section['title']}")
            for f in section["fields"]:
                limits = []
                if f["enum"]:
                    limits.append("|".join(map(str, f["enum"])))
                if f["minimum"] is not None or f["maximum"] is not None:
                    limits.append(f"{f['minimum']}..{f['maximum']}")
                flags = [f["type"], *limits, f["scope"] if f["scope"] == "bootstrap"
                         else f"applies {f['applies']}"] + (["secret"] if f["secret"] else [])
                ctx.print(f"  {f['key']} ({', '.join(flags)}): {f['description']}")
        for obj in doc["objects"]:
            ctx.print(f"[{obj['prefix']}.<id>] {obj['title']}")
            for f in obj["fields"]:
                ctx.print(f"  {obj['prefix']}.<id>.{f['key']} ({f['type']}): "
                          f"{f['description']}")
        for coll in doc.get("collections", []):
            ctx.print(f"[{coll['name']}] {coll['title']} (rows of their own: "
                      f"{coll['add']}, {coll['update']})")
            for f in coll["fields"] + coll.get("s3_fields", []):
                ctx.print(f"  {f['key']} ({f['type']}): {f['description']}")
        return 0
    if action == "audit":
        page = ctx.call("settings.audit", {"key": args.key, "limit": args.limit,
                                           "cursor": args.cursor})
        if ctx.json:
            ctx.emit_json(page)
            return 0
        for e in page["entries"]:
            changes = "; ".join(f"{c['key']}: {_shown(c['old'])} -> {_shown(c['new'])}"
                                for c in e["changes"])
            ctx.print(f"{e['revision']:>5}  {e['at']}  {e['action']:<12} {e['result']:<8} "
                      f"{e['by']}  {changes}")
        if page["next_cursor"] is not None:
            ctx.print(f"# more: --cursor {page['next_cursor']}")
        return 0
    out = ctx.call("settings.get")
    if ctx.json:
        ctx.emit_json(out)
        return 0
    rows = [(k, _shown(v["value"]), v["origin"] + (" (restart pending)"
                                                    if v["pending_restart"] else ""))
            for k, v in out["settings"].items()]
    width = max((len(r[0]) for r in rows), default=10)
    vwidth = min(40, max((len(r[1]) for r in rows), default=10))
    ctx.print(f"{'KEY':<{width}}  {'VALUE':<{vwidth}}  ORIGIN")
    for key, shown, origin in rows:
        ctx.print(f"{key:<{width}}  {shown:<{vwidth}}  {origin}")
    ctx.print(f"# revision {out['revision']}")
    return 0
