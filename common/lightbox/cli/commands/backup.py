"""``lightbox backup [list|add|update|remove|schedule|run|verify|restore|status|history]``.

Targets are local folders (a USB disk, a NAS mount) that stay plain folder trees with a
``SHA256SUMS`` file; ``lightbox backup run nas --wait`` is what a cron job or a script
calls, and its exit code says whether the run succeeded.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from lightbox.cli import exits
from lightbox.cli.context import CliError, Context, Subparsers
from lightbox.cli.jobs_wait import wait_for_job
from lightbox.cli.quote import shell_name
from lightbox.common.api.backups import TARGET_FIELDS


def _human(n: int | None) -> str:
    value = float(n or 0)
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if value < 1000 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1000
    return f"{value:.1f} TB"


def _settings(p: argparse.ArgumentParser, update: bool) -> None:
    for f in TARGET_FIELDS:
        if f.name == "path" or (update and f.name == "path"):
            continue
        flag = "--" + f.name.replace("_", "-")
        if f.type == "boolean":
            p.add_argument(flag, dest=f.name, choices=("true", "false"), help=f.description)
        else:
            p.add_argument(flag, dest=f.name, help=f.description
                           + ("" if update else f" (default {f.format(f.default) or 'none'})"))


def register(sub: Subparsers) -> argparse.ArgumentParser:
    p = sub.add_parser("backup", help="backup targets: list, run, verify, restore, status",
                       description="Without an action, list the targets.")
    actions = p.add_subparsers(dest="backup_action", metavar="ACTION")
    actions.add_parser("list", help="targets with their schedules and next runs")
    add = actions.add_parser("add", help="add a target folder or bucket",
                             description="PATH is a folder, or s3://BUCKET/PREFIX for a "
                             "bucket (then --endpoint-url, --region, --access-key-id, and "
                             "the secret key from --secret-key-file, '-' for stdin, or "
                             "LIGHTBOX_S3_SECRET_ACCESS_KEY).")
    add.add_argument("name")
    add.add_argument("path", help="a folder, or s3://BUCKET/PREFIX")
    _settings(add, update=False)
    add.add_argument("--endpoint-url", help="s3: the endpoint (default: AWS)")
    add.add_argument("--region", help="s3: the region")
    add.add_argument("--access-key-id", help="s3: the access key id")
    add.add_argument("--secret-key-file", metavar="FILE",
                     help="s3: a file holding the secret key ('-': read it from stdin)")
    upd = actions.add_parser("update", help="change a target's settings")
    upd.add_argument("target")
    _settings(upd, update=True)
    rm = actions.add_parser("remove", help="forget a target (its files are not touched)")
    rm.add_argument("target")
    sch = actions.add_parser("schedule", help="check a cron expression, show its next runs")
    sch.add_argument("cron")
    sch.add_argument("--timezone", default="local")
    sch.add_argument("--count", type=int, default=5)
    run = actions.add_parser("run", help="back up now")
    run.add_argument("target")
    run.add_argument("--check-sources", action="store_true",
                     help="also re-read source files already backed up (bit rot)")
    ver = actions.add_parser("verify", help="re-read the target's files and compare")
    ver.add_argument("target")
    ver.add_argument("--budget", help="at most this long: 90s, 30m, 2h")
    ver.add_argument("--sample", type=float, metavar="PERCENT",
                     help="at most this percentage of the files")
    ver.add_argument("--all", action="store_true", help="every file, whatever the budget")
    res = actions.add_parser("restore", help="copy files back from a target")
    res.add_argument("target")
    res.add_argument("dest", help="folder to restore into")
    what = res.add_mutually_exclusive_group(required=True)
    what.add_argument("--photo", type=int, help="one photo (id)")
    what.add_argument("--folder", help="a folder inside a root, and what is below it")
    what.add_argument("--taken", metavar="FROM..TO", help="photos taken in a date range "
                      "(YYYY-MM-DD..YYYY-MM-DD; either side may be empty)")
    what.add_argument("--all", action="store_true", help="everything on the target")
    res.add_argument("--overwrite", action="store_true",
                     help="replace files that exist and differ")
    res.add_argument("--dry-run", action="store_true", help="only list what would happen")
    st = actions.add_parser("status", help="last runs, next runs, what is not backed up")
    st.add_argument("target", nargs="?")
    hist = actions.add_parser("history", help="runs, newest first")
    hist.add_argument("target", nargs="?")
    hist.add_argument("--kind", choices=("backup", "verify", "restore"))
    hist.add_argument("--limit", type=int, default=20)
    for a in (run, ver, res):
        a.add_argument("--wait", action="store_true",
                       help="wait until the run ends; exit 1 if it failed")
    for a in actions.choices.values():
        a.add_argument("--json", action="store_true", default=argparse.SUPPRESS)
    return p


NONE = ("none", "off", "never", "null")


def _values(args: argparse.Namespace) -> tuple[dict[str, Any], list[str]]:
    """The settings given on the command line, and those given as ``none`` (cleared)."""
    out: dict[str, Any] = {}
    cleared: list[str] = []
    for f in TARGET_FIELDS:
        text = getattr(args, f.name, None)
        if text is None or f.name == "path":
            continue
        if f.nullable and text.strip().lower() in NONE:
            cleared.append(f.name)
            continue
        try:
            out[f.name] = f.parse(text)
        except ValueError as exc:
            flag = "--" + f.name.replace("_", "-")
            raise CliError(f"{flag}: {exc}", exits.USAGE) from None
    return out, cleared


def _secret(source: str | None) -> str | None:
    """The secret key from a file, stdin or the environment: never from the command line,
    where other users of the machine can read it."""
    if source == "-":
        return sys.stdin.readline().strip() or None
    if source:
        try:
            with open(os.path.expanduser(source)) as f:
                return f.read().strip() or None
        except OSError as exc:
            raise CliError(f"--secret-key-file: {exc.strerror}", exits.USAGE) from None
    return os.environ.get("LIGHTBOX_S3_SECRET_ACCESS_KEY") or None


SHOWN = 20  # problems listed per kind; the rest counted (``--json`` has the daemon's list)


def _listed(lines: list[str], title: str, items: list[Any], count: int,
            line: Any) -> None:
    if not count:
        return
    lines.append(f"{title} ({count}):")
    lines.extend("  " + line(it) for it in items[:SHOWN])
    if count > min(len(items), SHOWN):
        lines.append(f"  … {count - min(len(items), SHOWN)} more")


def report(job: dict[str, Any]) -> tuple[list[str], bool]:
    """What a finished backup, verify or restore did, and whether some of it was not done:
    files that failed or were damaged, roots skipped as offline, missing or changed copies
    on the target, restores that failed or were kept."""
    r = job.get("result") or {}
    lines: list[str] = []
    if job["state"] != "succeeded" or not r:
        return lines, False
    if job["kind"] == "backup":
        lines.append(f"copied {r.get('copied', 0)} ({_human(job.get('bytes'))}), "
                     f"adopted {r.get('adopted', 0)} already on the target")
        skipped = r.get("skipped_roots") or {}
        _listed(lines, "roots skipped", sorted(skipped.items()), len(skipped),
                lambda kv: f"{shell_name(str(kv[0]))}: {kv[1]}")
        _listed(lines, "failed", r.get("failed") or [], int(r.get("failed_count") or 0),
                lambda f: f"{shell_name(str(f.get('path')))}: {f.get('error')}")
        _listed(lines, "damaged at the source (the target's copy kept)",
                r.get("damaged") or [], int(r.get("damaged_count") or 0),
                lambda f: shell_name(str(f.get("path") if isinstance(f, dict) else f)))
        return lines, bool(skipped or r.get("failed_count") or r.get("damaged_count"))
    if job["kind"] == "backup_verify":
        lines.append(f"checked {r.get('checked', 0)} of {r.get('files', 0)}: "
                     f"{r.get('ok', 0)} ok" + ("" if r.get("whole") else
                                              " (a rolling part: the budget ended it)"))
        for key in ("missing", "changed", "extra"):
            _listed(lines, key, r.get(key) or [], int(r.get(f"{key}_count") or 0),
                    lambda path: shell_name(str(path)))
        return lines, bool(r.get("missing_count") or r.get("changed_count"))
    if job["kind"] == "backup_restore":
        counts = r.get("counts") or {}
        lines.append(", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
                     or "nothing to restore")
        if r.get("dry_run"):
            _listed(lines, "plan", r.get("plan") or [], sum(counts.values()),
                    lambda f: f"{f['action']:<9} {shell_name(str(f['from']))} -> "
                              f"{shell_name(str(f['to']))}")
            return lines, False
        problems = r.get("problems") or []
        _listed(lines, "not restored", problems, sum(
            v for k, v in counts.items() if k not in ("restored", "present")),
            lambda f: f"{shell_name(str(f.get('path')))}: {f.get('status')}"
                      + (f" ({f['error']})" if f.get("error") else ""))
        return lines, bool(problems)
    return lines, False


def _started(ctx: Context, args: argparse.Namespace, out: dict[str, Any], what: str) -> int:
    if getattr(args, "wait", False):
        return wait_for_job(ctx, out, report=report)
    if ctx.json:
        ctx.emit_json(out)
    else:
        ctx.print(f"{what}: job {out['job']} ({ctx.command('jobs', 'wait', str(out['job']))})")
    return 0


def run(ctx: Context, args: argparse.Namespace) -> int:
    action = getattr(args, "backup_action", None) or "list"
    if action == "add":
        values, cleared = _values(args)
        values.update(dict.fromkeys(cleared))
        if args.path.startswith("s3://"):
            bucket, _, prefix = args.path[5:].partition("/")
            values.update(kind="s3", bucket=bucket, prefix=prefix,
                          endpoint_url=args.endpoint_url, region=args.region,
                          access_key_id=args.access_key_id,
                          secret_access_key=_secret(args.secret_key_file))
        else:
            values["path"] = os.path.abspath(os.path.expanduser(args.path))
        out = ctx.call("backups.add", {"name": args.name, **values})
        return _show_targets(ctx, [out])
    if action == "update":
        values, cleared = _values(args)
        out = ctx.call("backups.update", {"target": args.target, **values,
                                          "clear": cleared})
        return _show_targets(ctx, [out])
    if action == "remove":
        out = ctx.call("backups.remove", {"target": args.target})
        if ctx.json:
            ctx.emit_json(out)
        else:
            ctx.print(f"forgot target {args.target} (its files are untouched)")
        return 0
    if action == "schedule":
        out = ctx.call("backups.schedule", {"cron": args.cron, "timezone": args.timezone,
                                            "count": args.count})
        if ctx.json:
            ctx.emit_json(out)
            return 0 if out["valid"] else 2
        if not out["valid"]:
            ctx.print(f"invalid: {out['problem']}")
            return 2
        ctx.print(out["explanation"])
        for when in out["next"]:
            ctx.print(f"  {when}")
        return 0
    if action == "run":
        out = ctx.call("backups.run", {"target": args.target,
                                       "check_sources": args.check_sources})
        return _started(ctx, args, out, f"backup of {args.target} started")
    if action == "verify":
        params: dict[str, Any] = {"target": args.target, "all": args.all}
        if args.budget:
            params["budget"] = args.budget
        if args.sample is not None:
            params["sample"] = args.sample
        return _started(ctx, args, ctx.call("backups.verify", params),
                        f"verify of {args.target} started")
    if action == "restore":
        params = {"target": args.target,
                  "dest": os.path.abspath(os.path.expanduser(args.dest)),
                  "overwrite": args.overwrite, "dry_run": args.dry_run, "all": args.all}
        if args.photo is not None:
            params["photo"] = args.photo
        if args.folder:
            params["folder"] = os.path.abspath(os.path.expanduser(args.folder))
        if args.taken:
            start, _, end = args.taken.partition("..")
            if start:
                params["taken_from"] = start
            if end:
                params["taken_to"] = end
        return _started(ctx, args, ctx.call("backups.restore", params),
                        f"restore from {args.target} started")
    if action == "status":
        targets = ctx.call("backups.status", {"target": args.target})["targets"]
        if ctx.json:
            ctx.emit_json(targets)
            return 0
        for t in targets:
            state = "online" if t["online"] else f"UNAVAILABLE ({t['problem']})"
            ctx.print(f"{t['name']}: {state}, {t['files']} files, {_human(t['bytes'])}, "
                      f"{t['not_backed_up']} photo{'' if t['not_backed_up'] == 1 else 's'} "
                      "not backed up yet")
            last = t["last_run"]
            ctx.print("  last run:    " + (f"{last['state']} {last['finished_at'] or ''} "
                                           f"({last['files']} files)" if last else "never"))
            lv = t["last_verify"]
            ctx.print("  last verify: " + (f"{lv['state']} {lv['finished_at'] or ''}"
                                           if lv else "never")
                      + (f"; oldest check {t['oldest_verified_age']:.1f} days ago"
                         if t["oldest_verified_age"] is not None else "")
                      + (f"; {t['never_verified']} never verified"
                         if t["never_verified"] else ""))
            ctx.print(f"  next run:    {t['next_run'] or 'not scheduled'}"
                      f"; next verify: {t['next_verify'] or 'not scheduled'}")
        if not targets:
            ctx.print("no backup targets: lightbox backup add NAME /path/to/disk")
        return 0
    if action == "history":
        out = ctx.call("backups.history", {"target": args.target, "kind": args.kind,
                                           "limit": args.limit})
        if ctx.json:
            ctx.emit_json(out["runs"])
            return 0
        for r in out["runs"]:
            err = (r.get("result") or {}).get("error") if r["state"] == "failed" else None
            errors = int(r.get("errors") or 0)
            ctx.print(f"{r['id']:>5} {r['target']:<12} {r['kind']:<8} {r['state']:<10} "
                      f"{r['started_at']} {r['files']:>7} files {_human(r['bytes']):>9}"
                      + (f"  {errors} error{'' if errors == 1 else 's'}" if errors else "")
                      + (f"  {err}" if err else ""))
        return 0
    return _show_targets(ctx, ctx.call("backups.list")["targets"])


def _show_targets(ctx: Context, targets: list[dict[str, Any]]) -> int:
    if ctx.json:
        ctx.emit_json(targets if len(targets) != 1 else targets[0])
        return 0
    if not targets:
        ctx.print("no backup targets: lightbox backup add NAME /path/to/disk")
    for t in targets:
        roots = ", ".join(t["roots"]) or "every root"
        state = "" if t["enabled"] else " (disabled)"
        ctx.print(f"{t['name']}{state}: {t.get('where') or t['path']} <- {roots}")
        ctx.print(f"  schedule: {t['schedule'] or 'manual'}"
                  + (f" ({t['schedule_explained']}, {t['timezone']})"
                     if t["schedule"] else ""))
        for when in t["next_runs"][:5]:
            ctx.print(f"    {when}")
        ctx.print(f"  verify: {t['verify_schedule'] or 'manual'}, budget {t['verify_budget']}, "
                  f"every file within {t['verify_days']} days")
        ctx.print("  retention: " + ("never delete from the target"
                                     if t["retention_days"] is None else
                                     f"remove copies {t['retention_days']} days after the "
                                     "photo left the library"))
    return 0
