"""``library.import``: bring photos in from a card or folder."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from lightbox.common.errors import InvalidParams, NotFound
from lightbox.daemon.backups.importer import template_problem
from lightbox.daemon.catalog import paths
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
                            {"errors": {"source_path": "inside a root"}})
    params = {"source_path": src, "root": target.id, "template": template, "mode": mode,
              "dry_run": dry_run}
    return {"job": await d.jobs.submit("import", params)}
