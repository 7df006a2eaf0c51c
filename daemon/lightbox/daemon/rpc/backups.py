"""``backups.*``: targets, runs, verify, restore, status and history."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any

from lightbox.common import schedule
from lightbox.common.api.backups import TARGET_KEYS
from lightbox.common.errors import InvalidParams, RpcError
from lightbox.daemon.backups.s3 import SECRET_KEYS
from lightbox.daemon.library import admission
from lightbox.daemon.rpc import Context, method
from lightbox.daemon.settings import actor_of

# What a target's audit entry keeps: its configuration as ``backups.list`` shows it (a
# secret only as "set" and its fingerprint), not what is derived from it.
_DERIVED = ("next_runs", "next_verify", "schedule_explained", "created_at", "where")


def _audited(target: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in target.items() if k not in _DERIVED}


@method("backups.add")
async def add(ctx: Context, name: str, kind: str, **values: Any) -> dict[str, Any]:
    d = ctx.daemon
    try:
        added = await d.backups.add(name, values, kind=kind)
    except RpcError as err:
        reason = err.data.get("reason") if isinstance(err.data, dict) else None
        shown = {k: v for k, v in values.items() if k not in SECRET_KEYS}
        await d.settings.record("backups.add", actor_of(ctx), [
            {"key": f"backup_targets.{name}", "old": None, "new": {"kind": kind, **shown}}],
            result="refused", detail={"reason": reason, "error": err.message[:500]})
        raise
    await d.settings.record("backups.add", actor_of(ctx), [
        {"key": f"backup_targets.{name}", "old": None, "new": _audited(added)}])
    return added


@method("backups.update")
async def update(ctx: Context, target: str, clear: list[str] | None,
                 **values: Any) -> dict[str, Any]:
    # Absent parameters arrive as None (unchanged); `clear` names those set to null.
    changes: dict[str, Any] = {k: v for k, v in values.items()
                               if k in TARGET_KEYS and v is not None}
    for key in clear or []:
        changes[key] = None
    d = ctx.daemon
    before = _audited(d.backups.present(await d.backups.row(target)))
    updated = await d.backups.update(target, changes)
    after = _audited(updated)
    # One entry per key that changed, so ``settings.audit key=backup_targets.NAME.KEY`` is
    # that key's history, as for a setting.
    diff = [{"key": f"backup_targets.{target}.{k}", "old": before.get(k), "new": v}
            for k, v in after.items() if before.get(k) != v]
    if diff:
        await d.settings.record("backups.update", actor_of(ctx), diff)
    return updated


@method("backups.remove")
async def remove(ctx: Context, target: str) -> dict[str, Any]:
    d = ctx.daemon
    before = _audited(d.backups.present(await d.backups.row(target)))
    removed = await d.backups.remove(target)
    await d.settings.record("backups.remove", actor_of(ctx), [
        {"key": f"backup_targets.{target}", "old": before, "new": None}])
    return removed


@method("backups.list")
async def list_targets(ctx: Context) -> dict[str, Any]:
    return {"targets": await ctx.daemon.backups.list_targets()}


@method("backups.schedule")
async def preview(ctx: Context, cron: str, timezone: str, count: int) -> dict[str, Any]:
    problem = schedule.problem(cron) or schedule.zone_problem(timezone)
    if problem:
        return {"valid": False, "problem": problem, "explanation": None, "next": []}
    runs = schedule.next_runs(cron, dt.datetime.now(dt.UTC), timezone, count)
    return {"valid": True, "problem": None, "explanation": schedule.explain(cron),
            "next": [w.isoformat() for w in runs]}


@method("backups.run")
async def run(ctx: Context, target: str, check_sources: bool) -> dict[str, Any]:
    await ctx.daemon.backups.row(target)
    params: dict[str, Any] = {"target": target}
    if check_sources:
        params["check_sources"] = True
    return {"job": await ctx.daemon.jobs.submit("backup", params)}


@method("backups.verify")
async def verify(ctx: Context, target: str, budget: str | None, sample: float | None,
                 all: bool) -> dict[str, Any]:
    await ctx.daemon.backups.row(target)
    params: dict[str, Any] = {"target": target}
    if budget is not None:
        params["budget"] = budget
    if sample is not None:
        params["sample"] = sample
    if all:
        params["all"] = True
    return {"job": await ctx.daemon.jobs.submit("backup_verify", params)}


@method("backups.restore")
async def restore(ctx: Context, target: str, dest: str, photo: int | None, folder: str | None,
                  taken_from: str | None, taken_to: str | None, all: bool, overwrite: bool,
                  dry_run: bool) -> dict[str, Any]:
    d = ctx.daemon
    await d.backups.row(target)
    chosen = [photo is not None, bool(folder), bool(taken_from or taken_to), all]
    if sum(chosen) != 1:
        raise InvalidParams("say what to restore: one of photo, folder, taken_from/taken_to "
                            "or all", {"errors": {"photo": "choose one selection"}})
    for key, value in (("taken_from", taken_from), ("taken_to", taken_to)):
        if value:
            try:
                dt.date.fromisoformat(value)
            except ValueError:
                raise InvalidParams(f"{key}: not a date", {"errors": {key: "not a date"}}) \
                    from None
    real = admission.resolve(dest)
    # Not into a backup target either (this one or another): its files would be extra
    # files of that target, and a verify would report them.
    guards = admission.system_guards() + list(d.backups.guarded) \
        + await d.backups.target_guards()
    refusal = await asyncio.to_thread(admission.check_new, real, guards)
    if refusal is not None:
        raise InvalidParams(f"dest: {refusal.message}; refusing to restore there",
                            {"reason": refusal.reason, "errors": {"dest": refusal.message}})
    params: dict[str, Any] = {"target": target, "dest": real, "overwrite": overwrite,
                              "dry_run": dry_run}
    if photo is not None:
        params["photo"] = photo
    for key, text in (("folder", folder), ("taken_from", taken_from), ("taken_to", taken_to)):
        if text:
            params[key] = text
    if all:
        params["all"] = True
    return {"job": await d.jobs.submit("backup_restore", params, dedupe=False)}


@method("backups.status")
async def status(ctx: Context, target: str | None) -> dict[str, Any]:
    return {"targets": await ctx.daemon.backups.status_of(target)}


@method("backups.history")
async def history(ctx: Context, target: str | None, kind: str | None, limit: int,
                  cursor: str | None) -> dict[str, Any]:
    return await ctx.daemon.backups.history(target, kind, limit, cursor)
