"""``library.import``: bring photos in from a card or folder."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from lightbox.common.errors import InvalidParams, NotFound
from lightbox.daemon.backups.importer import template_problem
from lightbox.daemon.catalog import paths
from lightbox.daemon.library import admission
from lightbox.daemon.rpc import Context, method


@method("library.import")
async def import_(ctx: Context, source_path: str, root: Any, template: str, mode: str,
                  dry_run: bool) -> dict[str, Any]:
    d = ctx.daemon
    problem = template_problem(template)
    if problem:
        raise InvalidParams(f"template: {problem}", {"errors": {"template": problem}})
    src = paths.normalize(source_path)
    if not await asyncio.to_thread(os.path.isdir, src):
        raise NotFound(f"{src} is not a folder")
    target = d.sources.resolve(root)
    if target.kind != "local":
        raise InvalidParams(f"root: {target.name} is a {target.kind} source; import writes "
                            "into a local root", {"errors": {"root": "not a local root"}})
    if d.sources.locate(src) is not None:
        raise InvalidParams("source_path: is inside a root already; import brings files in "
                            "from outside the library",
                            {"reason": admission.INSIDE_ROOT,
                             "errors": {"source_path": "inside a root"}})
    # Nor a folder holding a root, a backup target or the daemon's own files: the walk
    # would take the library's files for a card's, and a move would take the files of the
    # backup (its older versions are in no catalog) out of the backup.
    guards = [admission.Guarded(s.path, f"the root {s.name}", admission.SAME_ROOT)
              for s in d.sources.local()]
    guards += admission.system_guards() + list(d.sources.guarded) \
        + await d.backups.target_guards()
    refusal = await asyncio.to_thread(admission.check, admission.resolve(src), guards)
    if refusal is not None:
        raise InvalidParams(f"source_path: {refusal.message}; import brings files in from "
                            "outside the library", {"reason": refusal.reason,
                                                    "errors": {"source_path": refusal.message}})
    params = {"source_path": src, "root": target.id, "template": template, "mode": mode,
              "dry_run": dry_run}
    return {"job": await d.jobs.submit("import", params)}
