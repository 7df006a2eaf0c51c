"""``lightbox import SRC --root R [--template T] [--move] [--dry-run] [--wait]``."""

from __future__ import annotations

import argparse
import os
from typing import Any

from lightbox.cli.context import Context, Subparsers
from lightbox.cli.jobs_wait import wait_for_job


def register(sub: Subparsers) -> argparse.ArgumentParser:
    p = sub.add_parser("import", help="copy or move photos from a card or folder into a root",
                       description="Lay photos out below a root by a template on their "
                       "metadata; files the library has already are skipped. With --wait "
                       "the last line says whether the card is safe to erase.")
    p.add_argument("source", help="the card or folder")
    p.add_argument("--root", required=True, help="the root to import into (id, name, path)")
    p.add_argument("--template", default="{taken:%Y}/{taken:%Y-%m-%d}/{name}",
                   help="layout below the root (default %(default)s)")
    p.add_argument("--move", action="store_true",
                   help="delete each source once its copy is verified")
    p.add_argument("--dry-run", action="store_true", help="show the plan, copy nothing")
    p.add_argument("--wait", action="store_true", help="wait until done; exit 1 on failure")
    return p


def run(ctx: Context, args: argparse.Namespace) -> int:
    root: Any = args.root
    if root.startswith(("/", "~", ".")):
        root = os.path.abspath(os.path.expanduser(root))
    elif root.isdigit():
        root = int(root)
    out = ctx.call("library.import", {
        "source_path": os.path.abspath(os.path.expanduser(args.source)), "root": root,
        "template": args.template, "mode": "move" if args.move else "copy",
        "dry_run": args.dry_run})
    if not (args.wait or args.dry_run):
        if ctx.json:
            ctx.emit_json(out)
        else:
            ctx.print(f"import started: job {out['job']} "
                      f"({ctx.command('jobs', 'wait', str(out['job']))})")
        return 0
    return wait_for_job(ctx, out, report=lambda job: (_summary(job, args), False))


def _summary(job: dict[str, Any], args: argparse.Namespace) -> list[str]:
    """The plan or what was done, file by file, and the verdict on the card."""
    lines: list[str] = []
    result = job.get("result") or {}
    for f in result.get("files", []):
        note = f" ({f['reason']})" if f.get("reason") else ""
        lines.append(f"  {f['action']:<9} {f['from']}" + (f" -> {f['to']}" if f["to"] else "")
                     + note)
    if result.get("total", 0) > result.get("listed", 0):
        lines.append(f"  … {result['total'] - result['listed']} more")
    counts = ", ".join(f"{v} {k}" for k, v in sorted((result.get("counts") or {}).items()))
    lines.append(f"{'plan' if args.dry_run else 'done'}: {counts or 'nothing to import'}")
    left = {k: v for k, v in (result.get("counts") or {}).items() if k != "copied" and v}
    if not args.dry_run and args.move and not left:
        # The card gave every file up: "safe to erase" means nothing for an emptied card;
        # what matters now is that the photos are only in the library, on no backup yet.
        waiting = [f"{n} not yet on backup target {target} (lightbox backup run {target})"
                   for target, n in (result.get("not_backed_up") or {}).items() if n]
        if waiting:
            lines.append("moved; " + "; ".join(waiting))
    elif not args.dry_run and "safe_to_erase" in result:
        if result["safe_to_erase"]:
            lines.append("safe to erase: every file on it is in the library and backed up")
        else:
            why: list[str] = []
            if result.get("not_in_library"):
                why.append(f"{result['not_in_library']} not in the library")
            for target, n in (result.get("not_backed_up") or {}).items():
                if n:
                    why.append(f"{n} not yet on backup target {target}")
            if result.get("not_photos"):
                why.append(f"{result['not_photos']} files that are not photos")
            if result.get("copies_unverified"):
                why.append(f"{result['copies_unverified']} copies not yet read back from the "
                           "disk by the catalog")
            if result.get("errors"):
                why.append(f"{result['errors']} errors")
            lines.append("NOT safe to erase: " + "; ".join(why))
    return lines
