"""Backup targets, their runs (backup, verify, restore) and the schedule that starts them.

- A target is a row of ``backup_targets`` plus a marker file in its folder; a folder
  without the marker (an empty mount point, another disk) is not the target and nothing is
  written to it.
- The manifest (``backup_manifest``) is the truth about what a target holds, by sha256: a
  run copies exactly the catalog's photos whose sha256 it lacks, so an incremental run with
  nothing new reads no file. ``SHA256SUMS`` on the target is rewritten from it after each
  run that changed the target.
- Roots are checked first (``Sources.check``): an offline or suspect root is skipped with
  its reason and nothing of it is touched on the target, ever: a backup never deletes or
  overwrites a copy (retention, when configured, removes copies of photos gone from the
  library for N days, nothing else).
- One run per target at a time, across daemons sharing a catalog: a lock in the target's row
  (owner = host/pid/boot, as jobs have); a lock whose owner died is taken over.
- File work runs in threads (``files``); the event loop only queries and records.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import stat
import time
import uuid
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa

from lightbox.common import logs, schedule
from lightbox.common.api.backups import S3_KEYS, TARGET_FIELDS, TARGET_KEYS, budget_seconds
from lightbox.common.errors import Conflict, InvalidParams, NotFound
from lightbox.daemon.backups import files
from lightbox.daemon.backups.real_dirs import NotBeneath, RealDirs
from lightbox.daemon.backups.s3 import SECRET_KEYS, S3Store
from lightbox.daemon.catalog import paths, tables
from lightbox.daemon.catalog.database import Database
from lightbox.daemon.catalog.types import iso, utcnow
from lightbox.daemon.control.events import EventBus
from lightbox.daemon.jobs.queue import JobContext, JobFailed, JobQueue, _owner_alive
from lightbox.daemon.kinds.s3 import S3Object
from lightbox.daemon.library import admission
from lightbox.daemon.library.sources import Source, Sources, secret_fingerprint
from lightbox.daemon.media.confine import LocalFile, Locator

log = logs.get("backups")

T, M, R = tables.backup_targets, tables.backup_manifest, tables.backup_runs
S = tables.backup_target_secrets
P, F = tables.photos, tables.folders

BATCH_FILES = 1024
BATCH_BYTES = 64 << 20
LOCK_STALE = 600.0  # another host's lock not refreshed this long is taken over
LOCK_WAIT = 600.0  # how long a run waits for another run on the same target
LIST_LIMIT = 100  # paths listed per kind in a result
# Photos whose bytes are backed up: indexed ones, also those the decoder could not read (a
# file lightbox cannot show may still be someone's only copy of a new RAW format).
BACKED_UP = ("ok", "error")
Store = files.LocalStore | S3Store


def _lim(items: list[Any], item: Any) -> None:
    if len(items) < LIST_LIMIT:
        items.append(item)


class Backups:
    name = "backups"

    def __init__(self, db: Database, bus: EventBus, sources: Sources, jobs: JobQueue, *,
                 guarded: Sequence[admission.Guarded] = (), threads: int = 2) -> None:
        self.db = db
        self.bus = bus
        self.sources = sources
        self.jobs = jobs
        self.guarded = tuple(guarded)
        self.threads = max(1, threads)
        self._scheduler: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        jobs.register("backup", self.run_backup, retry=False)
        jobs.register("backup_verify", self.run_verify, retry=False)
        jobs.register("backup_restore", self.run_restore, retry=False)

    # -- component ------------------------------------------------------------------------
    async def start(self) -> None:
        self._scheduler = asyncio.get_running_loop().create_task(self._schedule_loop(),
                                                                 name="backup-scheduler")

    async def stop(self) -> None:
        if self._scheduler is not None:
            self._scheduler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._scheduler

    def status(self) -> dict[str, Any]:
        return {"scheduler": self._scheduler is not None and not self._scheduler.done()}

    # -- targets --------------------------------------------------------------------------
    @staticmethod
    def settings(row: Any) -> dict[str, Any]:
        cfg = {f.name: f.default for f in TARGET_FIELDS}
        cfg.update({k: v for k, v in dict(row["config"] or {}).items() if k not in S3_KEYS})
        cfg["path"] = row["path"]
        cfg["enabled"] = bool(row["enabled"])
        return cfg

    async def _rows(self, name: str | None = None) -> list[Any]:
        """Target rows as dicts, each with ``secrets`` ({name: (value, fingerprint)}, read
        from ``backup_target_secrets``: never part of the config row)."""
        q = sa.select(T).order_by(T.c.id)
        if name is not None:
            q = q.where(T.c.name == name)
        async with self.db.engine.connect() as conn:
            rows = [dict(r) for r in (await conn.execute(q)).mappings().all()]
            held: dict[int, dict[str, tuple[str, str]]] = {}
            s3 = [r["id"] for r in rows if r["kind"] == "s3"]
            if s3:
                for sec in await conn.execute(sa.select(S).where(S.c.target_id.in_(s3))):
                    held.setdefault(sec.target_id, {})[sec.name] = (sec.value,
                                                                    sec.fingerprint)
        for r in rows:
            r["secrets"] = held.get(r["id"], {})
        return rows

    async def row(self, name: str) -> Any:
        rows = await self._rows(name)
        if not rows:
            raise NotFound(f"no backup target named {name!r} (lightbox backup list)")
        return rows[0]

    def present(self, row: Any) -> dict[str, Any]:
        cfg = self.settings(row)
        now = dt.datetime.now(dt.UTC)
        nxt: list[str] = []
        if cfg["schedule"]:
            nxt = [w.isoformat() for w in schedule.next_runs(cfg["schedule"], now,
                                                             cfg["timezone"])]
        verify = None
        if cfg["verify_schedule"]:
            runs = schedule.next_runs(cfg["verify_schedule"], now, cfg["timezone"], 1)
            verify = runs[0].isoformat() if runs else None
        s3: dict[str, Any] = {}
        if row["kind"] == "s3":
            raw = dict(row["config"] or {})
            s3 = {k: raw.get(k) for k in S3_KEYS if k not in SECRET_KEYS}
            # A secret is never shown again: only whether one is set, and a fingerprint
            # that tells whether it changed.
            held = row.get("secrets") or {}
            for key in SECRET_KEYS:
                s3[key] = "set" if key in held else None
                s3[f"{key}_fingerprint"] = held[key][1] if key in held else None
            s3["where"] = self.store(row).where
        return {"name": row["name"], "kind": row["kind"], **cfg, **s3,
                "schedule_explained": (schedule.explain(cfg["schedule"])
                                       if cfg["schedule"] else None),
                "next_runs": nxt, "next_verify": verify,
                "created_at": iso(row["created_at"])}

    async def list_targets(self) -> list[dict[str, Any]]:
        return [self.present(r) for r in await self._rows()]

    async def add(self, name: str, values: dict[str, Any], kind: str = "local"
                  ) -> dict[str, Any]:
        if await self._rows(name):
            raise Conflict(f"a backup target is already named {name!r}")
        self._known_roots(values.get("roots") or [])
        cfg = {k: values.get(k) for k in TARGET_KEYS if k not in ("path", "enabled")}
        path: str | None = None
        store: Store
        if kind == "s3":
            if not values.get("bucket"):
                raise InvalidParams("bucket: an s3 target needs a bucket",
                                    {"errors": {"bucket": "required"}})
            cfg.update({k: values.get(k) for k in S3_KEYS if k not in SECRET_KEYS})
            secrets = {k: str(values[k]) for k in SECRET_KEYS if values.get(k)}
            store = S3Store({**cfg, **secrets}, "")
        else:
            if not values.get("path"):
                raise InvalidParams("path: a local target needs a folder",
                                    {"errors": {"path": "required"}})
            path = admission.resolve(values["path"])
            await self._admit(path)
            store = files.LocalStore(path, "")
        others = await self._rows()
        if kind == "s3" and any(r["kind"] == "s3" and self.store(r).where == store.where
                                for r in others):
            raise Conflict(f"{store.where} is already a target")
        marker = uuid.uuid4().hex
        existing = await asyncio.to_thread(store.read_marker)
        if existing is not None and isinstance(existing.get("id"), str):
            marker = str(existing["id"])  # a target this catalog forgot: take it back
        store.marker = marker
        try:
            await asyncio.to_thread(store.prepare, name)
        except (OSError, files.TargetError) as exc:
            reason = exc if isinstance(exc, files.TargetError) else \
                files.target_error(exc, "preparing the folder")
            field = "bucket" if kind == "s3" else "path"
            raise InvalidParams(f"{store.where}: {reason}",
                                {"reason": reason.reason, "errors": {field: str(reason)}}) \
                from None
        now = utcnow()
        async with self.db.engine.begin() as conn:
            res = await conn.execute(T.insert().values(
                name=name, kind=kind, path=path, marker=marker, config=cfg,
                enabled=values["enabled"], created_at=now,
                next_run_at=self._next(cfg.get("schedule"), cfg, now),
                next_verify_at=self._next(cfg.get("verify_schedule"), cfg, now)))
            if kind == "s3" and secrets:
                tid = res.inserted_primary_key[0]  # type: ignore[index]
                await conn.execute(S.insert(), [
                    {"target_id": tid, "name": k, "value": v,
                     "fingerprint": secret_fingerprint(v), "updated_at": now}
                    for k, v in secrets.items()])
        log.info("backup target added", name=name, path=path)
        self._wake.set()
        return self.present(await self.row(name))

    async def target_guards(self) -> list[admission.Guarded]:
        """The local targets, as folders no root may be, hold or lie inside
        (``Sources.guard_providers``)."""
        return [admission.Guarded(r["path"], f"the backup target {r['name']}",
                                  admission.BACKUP_TARGET)
                for r in await self._rows() if r["kind"] == "local" and r.get("path")]

    async def _admit(self, path: str) -> None:
        try:
            st = await asyncio.to_thread(os.stat, path)
        except FileNotFoundError:
            raise NotFound(f"{path} does not exist") from None
        if not stat.S_ISDIR(st.st_mode):
            raise InvalidParams(f"{path} is not a directory",
                                {"errors": {"path": "not a directory"}})
        guards = [admission.Guarded(s.path, f"the root {s.name}", admission.SAME_ROOT)
                  for s in self.sources.local()]
        guards += admission.system_guards() + list(self.guarded)
        refusal = await asyncio.to_thread(admission.check, path, guards)
        if refusal is not None:
            # A target inside a root would be scanned as photos; one holding a root would
            # back the root up into itself.
            raise InvalidParams(f"{refusal.message}; refusing to make it a backup target",
                                {"reason": refusal.reason, "errors": {"path": refusal.message}})
        others = await self._rows()
        for other in others:
            if other["kind"] == "local" and other["path"] == path:
                raise Conflict(f"{path} is already the target {other['name']}")

    def _known_roots(self, names: list[str]) -> None:
        known = {s.name for s in self.sources.local() + self.sources.buckets()}
        unknown = [n for n in names if n not in known]
        if unknown:
            raise InvalidParams("roots: no root named " + ", ".join(map(repr, unknown)),
                                {"errors": {"roots": "unknown root"}})

    @staticmethod
    def _next(expr: str | None, cfg: dict[str, Any], after: dt.datetime) -> dt.datetime | None:
        if not expr:
            return None
        return schedule.next_run_utc(expr, after, cfg.get("timezone"))

    async def update(self, name: str, changes: dict[str, Any]) -> dict[str, Any]:
        row = await self.row(name)
        cfg = dict(row["config"] or {})
        values: dict[str, Any] = {}
        for key, value in changes.items():
            if key == "enabled":
                values["enabled"] = bool(value)
            else:
                cfg[key] = value
        if "roots" in changes:
            self._known_roots(changes["roots"] or [])
        merged = {**{f.name: f.default for f in TARGET_FIELDS}, **cfg}
        now = utcnow()
        values.update(config=cfg, clean_mark=None,
                      next_run_at=self._next(merged["schedule"], merged, now),
                      next_verify_at=self._next(merged["verify_schedule"], merged, now))
        async with self.db.engine.begin() as conn:
            await conn.execute(T.update().where(T.c.id == row["id"]).values(**values))
        self._wake.set()
        return self.present(await self.row(name))

    async def remove(self, name: str) -> dict[str, Any]:
        row = await self.row(name)
        if row["lock_owner"] and _owner_alive(row["lock_owner"]) is not False \
                and row["lock_owner"] != self.jobs.owner:
            raise Conflict(f"a run on {name} is in progress ({row['lock_owner']})")
        async with self.db.engine.begin() as conn:
            await conn.execute(S.delete().where(S.c.target_id == row["id"]))
            await conn.execute(M.delete().where(M.c.target_id == row["id"]))
            await conn.execute(R.delete().where(R.c.target_id == row["id"]))
            await conn.execute(T.delete().where(T.c.id == row["id"]))
        return {"removed": name}

    # -- the run lock ---------------------------------------------------------------------
    async def _try_lock(self, target_id: int) -> str | None:
        """Take the target's run lock; None when taken, else who holds it."""
        now = utcnow()
        owner = self.jobs.owner
        async with self.db.engine.begin() as conn:
            got = await conn.execute(T.update().where(T.c.id == target_id,
                                                      T.c.lock_owner.is_(None))
                                     .values(lock_owner=owner, lock_at=now))
            if got.rowcount:
                return None
            holder, at = (await conn.execute(sa.select(T.c.lock_owner, T.c.lock_at)
                                             .where(T.c.id == target_id))).one()
            if holder == owner:
                return str(holder)  # another run of this daemon
            alive = _owner_alive(holder)
            stale = at is None or (now - at).total_seconds() > LOCK_STALE
            if alive is False or (alive is None and stale):
                took = await conn.execute(T.update().where(T.c.id == target_id,
                                                           T.c.lock_owner == holder)
                                          .values(lock_owner=owner, lock_at=now))
                if took.rowcount:
                    log.warning("took over a backup lock left by a stopped daemon",
                                target=target_id, owner=holder)
                    return None
            return str(holder)

    async def _lock(self, ctx: JobContext, target_id: int) -> None:
        deadline = time.monotonic() + LOCK_WAIT
        while True:
            holder = await self._try_lock(target_id)
            if holder is None:
                return
            if time.monotonic() > deadline:
                raise JobFailed(f"another run on this target is in progress ({holder})",
                                {"reason": "busy"})
            ctx.phase = "waiting for another run on the target"
            ctx.progress()
            await asyncio.sleep(1.0)

    async def _unlock(self, target_id: int) -> None:
        async with self.db.engine.begin() as conn:
            await conn.execute(T.update().where(T.c.id == target_id,
                                                T.c.lock_owner == self.jobs.owner)
                               .values(lock_owner=None, lock_at=None))

    async def _touch_lock(self, target_id: int) -> None:
        async with self.db.engine.begin() as conn:
            await conn.execute(T.update().where(T.c.id == target_id,
                                                T.c.lock_owner == self.jobs.owner)
                               .values(lock_at=utcnow()))

    # -- runs (history) -------------------------------------------------------------------
    async def _run_start(self, target_id: int, kind: str, job: int) -> int:
        async with self.db.engine.begin() as conn:
            # We hold the lock: a run still "running" was interrupted (a dead daemon).
            await conn.execute(R.update().where(R.c.target_id == target_id,
                                                R.c.state == "running")
                               .values(state="failed", finished_at=utcnow(),
                                       result={"reason": "interrupted"}))
            res = await conn.execute(R.insert().values(target_id=target_id, kind=kind,
                                                       job_id=job, state="running",
                                                       started_at=utcnow()))
            return int(res.inserted_primary_key[0])  # type: ignore[index]

    async def _run_end(self, run_id: int, target: str, kind: str, state: str,
                       result: dict[str, Any], files_: int, bytes_: int, errors: int) -> None:
        with contextlib.suppress(Exception):  # a full catalog disk must not hide the end
            async with self.db.engine.begin() as conn:
                await conn.execute(R.update().where(R.c.id == run_id).values(
                    state=state, finished_at=utcnow(), files=files_, bytes=bytes_,
                    errors=errors, result=result))
        self.bus.publish("backup", "finished", {
            "target": target, "kind": kind, "run": run_id, "state": state, "files": files_,
            "bytes": bytes_, "errors": errors, "reason": result.get("reason")})

    async def _guarded(self, ctx: JobContext, kind: str,
                       body: Any) -> dict[str, Any]:
        """Lock the target, record the run, run ``body(ctx, row, result)``, record its end."""
        row = await self.row(ctx.params["target"])
        await self._lock(ctx, row["id"])
        try:
            run_id = await self._run_start(row["id"], kind, ctx.id)
        except BaseException:
            await asyncio.shield(self._unlock(row["id"]))
            raise
        result: dict[str, Any] = {"target": row["name"], "run": run_id}
        state = "failed"
        try:
            await body(ctx, row, result)
            state = "succeeded"
            return result
        except JobFailed as exc:
            result.update(exc.result or {})
            result["error"] = str(exc)
            exc.result = result
            raise
        except asyncio.CancelledError:
            result.setdefault("reason", "interrupted")
            raise
        finally:
            await asyncio.shield(self._finish(row, run_id, kind, state, result, ctx))

    async def _finish(self, row: Any, run_id: int, kind: str, state: str,
                      result: dict[str, Any], ctx: JobContext) -> None:
        await self._run_end(run_id, row["name"], kind, state, result, ctx.processed,
                            ctx.bytes, ctx.errors)
        await self._unlock(row["id"])

    @staticmethod
    def store(row: Any) -> Store:
        """The target's folder or bucket, with the operations a run needs."""
        if row["kind"] == "s3":
            secrets = {k: v for k, (v, _) in (row.get("secrets") or {}).items()}
            return S3Store({**dict(row["config"] or {}), **secrets}, row["marker"])
        return files.LocalStore(row["path"], row["marker"])

    async def _check_target(self, row: Any) -> None:
        problem = await asyncio.to_thread(self.store(row).check)
        if problem is not None:
            raise JobFailed(str(problem), {"reason": problem.reason})

    # -- backup ---------------------------------------------------------------------------
    async def run_backup(self, ctx: JobContext) -> dict[str, Any]:
        return await self._guarded(ctx, "backup", self._backup)

    def _included(self, cfg: dict[str, Any]) -> tuple[list[Source], dict[str, str]]:
        """The sources a target backs up: the roots it names (local roots and bucket
        sources), or with none named every local root. A bucket is backed up only when
        named: copying a whole bucket down is a choice, not a default."""
        wanted = cfg.get("roots") or []
        local = self.sources.local()
        if not wanted:
            return local, {}
        by_name = {s.name: s for s in local + self.sources.buckets()}
        missing = {n: "no such root any more" for n in wanted if n not in by_name}
        return [by_name[n] for n in wanted if n in by_name], missing

    async def _backup(self, ctx: JobContext, row: Any, result: dict[str, Any]) -> None:
        cfg = self.settings(row)
        store = self.store(row)
        ctx.phase = "checking"
        ctx.progress()
        clock = time.monotonic()
        timings: dict[str, float] = {}
        result["timings"] = timings

        def lap(name: str) -> None:
            nonlocal clock
            now = time.monotonic()
            timings[name] = round(now - clock, 3)
            clock = now

        await self._check_target(row)
        await asyncio.to_thread(store.clear_temp)
        lap("target")
        sources, skipped = self._included(cfg)
        online: list[Source] = []
        for src in sources:
            if src.kind == "s3":
                # A bucket is as its last sync left it: unreachable, refused or held as
                # suspect (the mass-vanish guard) means skipped, never treated as empty.
                held = self.sources.guard.describe(src.id)
                reason = (src.status or "unreachable") if not src.online else \
                    ("suspect: many photos vanished at once" if held is not None else None)
            else:
                reason = await self.sources.check(src) if src.online else src.status
            if reason:
                # Never treated as empty: nothing of it is looked at, copied or deleted.
                skipped[src.name] = f"offline: {reason}"
                log.warning("backup skips an offline root", target=row["name"], root=src.name,
                            reason=reason)
                continue
            online.append(src)
        result["skipped_roots"] = skipped
        lap("roots")
        copied = adopted = 0
        damaged: list[dict[str, Any]] = []
        failed: list[dict[str, Any]] = []
        changed = n_failed = n_damaged = 0  # the lists hold LIST_LIMIT at most
        seen: set[str] = set()
        ids = [s.id for s in online]
        mark = await self._fingerprint(row["id"], ids)
        if self._still_clean(row, mark):
            # The catalog is as it was when a run left nothing lacking: nothing is.
            todo = []
            result["lacking_from"] = "mark"
        else:
            todo = await self._lacking(row["id"], ids)
            result["lacking_from"] = "manifest"
        result["pending"] = await self._pending(ids)
        lap("lacking")
        total = len(todo)
        ctx.phase = "copying"
        ctx.progress(processed=0, total=total)
        by_id = {s.id: s for s in online}
        # Each root's folder on the target, once (``files.target_rel`` per photo, inlined:
        # this loop runs once per photo of a first backup).
        dirs = {s.id: files.source_dir(s.name) for s in online}
        items: list[files.CopyItem] = []
        # The rows unpacked as tuples (``_lacking``'s column order): a named lookup on a
        # Row costs more than the rest of a photo's line here.
        for pid, source_id, sha, size, mtime_ns, inode, device, etag, name, folder in todo:
            if sha in seen:
                ctx.progress(add=1)
                continue
            seen.add(sha)
            src = by_id[source_id]
            rel = f"{folder}/{name}" if folder else name
            loc: Locator
            if src.kind == "s3":
                s3cfg = self.sources.s3_config(src)
                loc = S3Object(s3cfg, s3cfg.prefix + rel, size, mtime_ns, etag)
            else:
                loc = LocalFile(src.path, rel, size, mtime_ns, inode, device)
            items.append(files.CopyItem(pid, loc, sha, size, f"{dirs[source_id]}/{rel}"))
        stop: files.TargetError | None = None
        # The store runs the batches: a local target as a pipeline (one batch written while
        # the one before is read back and placed, one flush per batch), a bucket as many
        # batches in threads as the daemon has worker processes. Each photo is in one batch
        # only, and its name on the target is its own path: no two threads ever place the
        # same name. A batch handed over here is durable on the target.
        run: files.Run = await asyncio.to_thread(store.copy_run, _batches(items, self.threads),
                                      self.threads)
        try:
            while (out := await asyncio.to_thread(run.next)) is not None:
                done = [o for o in out.outcomes if o.status in ("copied", "adopted")]
                if done:
                    await self._record(row["id"], done)
                for o in out.outcomes:
                    if o.status == "copied":
                        copied += 1
                    elif o.status == "adopted":
                        adopted += 1
                    elif o.status == "damaged":
                        n_damaged += 1
                        _lim(damaged, {"photo": o.item.photo_id, "path": o.item.loc.path,
                                       "error": o.message})
                        self.bus.publish("backup", "damaged", {
                            "target": row["name"], "photo": o.item.photo_id,
                            "path": o.item.loc.path})
                        log.error("source file damaged; its copy is kept",
                                  path=o.item.loc.path)
                    elif o.status == "changed":
                        changed += 1
                    else:
                        n_failed += 1
                        _lim(failed, {"photo": o.item.photo_id, "path": o.item.loc.path,
                                      "error": o.message})
                errors = sum(1 for o in out.outcomes if o.status in ("damaged", "failed"))
                ctx.progress(add=len(out.outcomes),
                             add_bytes=sum(o.bytes for o in out.outcomes),
                             add_errors=errors)
                if out.stop is not None and stop is None:
                    stop = out.stop  # what is in flight finishes; the run starts no more
                    run.stop()
                await self._touch_lock(row["id"])
        finally:
            # Done, or cancelled: what is written but not placed is removed (a cancelled
            # run records nothing more; what it placed is adopted by the next run).
            await asyncio.to_thread(run.close)
        if run.stats:
            result["copy_stages"] = {k: round(v, 3) for k, v in run.stats.items()}
        lap("copy")
        if cfg.get("check_sources") or ctx.params.get("check_sources"):
            ctx.phase = "checking sources"
            n_damaged += await self._check_sources(ctx, row, online, damaged)
        result.update(copied=copied, adopted=adopted, changed_since_indexed=changed,
                      damaged=damaged, failed=failed, failed_count=n_failed,
                      damaged_count=n_damaged)
        if stop is not None and stop.reason != files.DISK_FULL:
            # Gone or failing in the middle: perhaps unmounted. Say which.
            again = await asyncio.to_thread(store.check)
            if again is not None:
                stop = again
        if stop is None and cfg.get("retention_days") is not None:
            result["retention"] = await self._retention(row, int(cfg["retention_days"]))
        ctx.phase = "writing SHA256SUMS"
        ctx.progress()
        removed = int((result.get("retention") or {}).get("removed") or 0)
        unchanged = copied + adopted + removed == 0 and await asyncio.to_thread(
            store.sums_exist)
        if not unchanged and (stop is None or stop.reason == files.DISK_FULL):
            try:
                await self._write_sums(row)
            except OSError as exc:
                if stop is None:
                    stop = files.target_error(exc, "writing SHA256SUMS")
        lap("sums")
        clean = stop is None and not skipped and not failed and not damaged and not changed \
            and not removed
        await self._set_mark(row["id"], {**mark, "manifest": mark["manifest"] + copied
                                         + adopted} if clean else None)
        if stop is not None:
            raise JobFailed(f"backup to {row['name']} stopped: {stop}",
                            {"reason": stop.reason})
        log.info("backup done", target=row["name"], copied=copied, adopted=adopted,
                 damaged=len(damaged), failed=len(failed), skipped=list(skipped))

    async def _fingerprint(self, target_id: int, source_ids: list[int]) -> dict[str, Any]:
        """What a run's "lacking" depends on, cheaply (no photo row is read): the included
        sources; how many of their photos are backed up (ok or error, with a sha256: an
        index-only count); the newest indexed_at of such photos anywhere (every new or
        changed content is indexed, so it moves this); the highest photo id (every new row
        moves it); and the manifest's row count (a copy removed by retention moves it).
        The photos (status, indexed_at) index answers the max, the primary key the id.
        Taken before the anti-join, so whatever is committed after it changes it."""
        async with self.db.engine.connect() as conn:
            n = int(await conn.scalar(sa.select(sa.func.count()).select_from(P).where(
                P.c.status.in_(BACKED_UP), P.c.source_id.in_(source_ids or [-1]),
                P.c.sha256.is_not(None))) or 0)
            newest = [await conn.scalar(sa.select(sa.func.max(P.c.indexed_at))
                                        .where(P.c.status == st)) for st in BACKED_UP]
            top = await conn.scalar(sa.select(sa.func.max(P.c.id)))
            held = int(await conn.scalar(sa.select(sa.func.count()).select_from(M).where(
                M.c.target_id == target_id)) or 0)
        return {"sources": sorted(source_ids), "photos": n,
                "indexed": [None if w is None else w.isoformat() for w in newest],
                "top": top, "manifest": held,
                "at": iso(utcnow())}

    @staticmethod
    def _still_clean(row: Any, mark: dict[str, Any]) -> bool:
        """The mark a clean run left matches the catalog now, and is under a day old (a
        full anti-join at least daily bounds what a coincidence the fingerprint cannot
        see, a photo gone and another back from missing at once, could hide)."""
        old = row.get("clean_mark")
        if not isinstance(old, dict) or not old.get("at"):
            return False
        try:
            age = (utcnow() - dt.datetime.fromisoformat(str(old["at"])).replace(tzinfo=None))
        except ValueError:
            return False
        if not dt.timedelta(0) <= age < dt.timedelta(days=1):
            return False
        keys = ("sources", "photos", "indexed", "top", "manifest")
        return all(old.get(k) == mark.get(k) for k in keys)

    async def _set_mark(self, target_id: int, mark: dict[str, Any] | None) -> None:
        with contextlib.suppress(Exception):  # only an optimisation: never fails a run
            async with self.db.engine.begin() as conn:
                await conn.execute(T.update().where(T.c.id == target_id)
                                   .values(clean_mark=mark))

    async def _lacking(self, target_id: int, source_ids: list[int]) -> list[Any]:
        if not source_ids:
            return []
        has = sa.select(M.c.id).where(M.c.target_id == target_id,
                                      M.c.sha256 == P.c.sha256).exists()
        # The column order is what ``_backup`` unpacks each row as.
        q = (sa.select(P.c.id, P.c.source_id, P.c.sha256, P.c.size, P.c.mtime_ns, P.c.inode,
                       P.c.device, P.c.etag, P.c.name, F.c.path.label("folder"))
             .join(F, F.c.id == P.c.folder_id)
             .where(P.c.source_id.in_(source_ids), P.c.status.in_(BACKED_UP),
                    P.c.sha256.is_not(None), ~has)
             .order_by(P.c.id))
        async with self.db.engine.connect() as conn:
            return list((await conn.execute(q)).all())

    async def _pending(self, source_ids: list[int]) -> int:
        if not source_ids:
            return 0
        async with self.db.engine.connect() as conn:
            return int(await conn.scalar(
                sa.select(sa.func.count()).select_from(P).where(
                    P.c.source_id.in_(source_ids), P.c.status == "pending")) or 0)

    async def _record(self, target_id: int, done: list[files.CopyOutcome]) -> None:
        now = utcnow()
        ph = paths.path_hash
        rows = [{"target_id": target_id, "sha256": o.item.sha256, "path": o.rel,
                 "path_hash": ph(o.rel), "size": o.item.size, "copied_at": now,
                 "result": "ok"} for o in done]
        async with self.db.engine.begin() as conn:
            await conn.execute(M.insert(), rows)

    async def _write_sums(self, row: Any) -> None:
        async with self.db.engine.connect() as conn:
            # Rows are (sha256, path) tuples already: no per-row copy.
            rows = (await conn.execute(
                sa.select(M.c.sha256, M.c.path).where(M.c.target_id == row["id"])
                .order_by(M.c.path))).tuples().all()
        await asyncio.to_thread(self.store(row).write_sums, rows)

    async def _check_sources(self, ctx: JobContext, row: Any, online: list[Source],
                             damaged: list[dict[str, Any]]) -> int:
        """Re-read the included sources' files the target has; returns how many are
        damaged (listed in ``damaged`` up to LIST_LIMIT)."""
        # Local roots only: re-reading a bucket's every object to look for bit rot is a
        # download of the bucket (its ETags already say whether an object changed).
        online = [s for s in online if s.kind == "local"]
        if not online:
            return 0
        has = sa.select(M.c.id).where(M.c.target_id == row["id"],
                                      M.c.sha256 == P.c.sha256).exists()
        q = (sa.select(P.c.id, P.c.source_id, P.c.sha256, P.c.size, P.c.mtime_ns, P.c.inode,
                       P.c.device, P.c.name, F.c.path.label("folder"))
             .join(F, F.c.id == P.c.folder_id)
             .where(P.c.source_id.in_([s.id for s in online]), P.c.status.in_(BACKED_UP), has)
             .order_by(P.c.id))
        async with self.db.engine.connect() as conn:
            todo = list((await conn.execute(q)).all())
        by_id = {s.id: s for s in online}
        items = []
        for r in todo:
            src = by_id[r.source_id]
            rel = f"{r.folder}/{r.name}" if r.folder else r.name
            items.append(files.CopyItem(r.id, LocalFile(src.path, rel, r.size, r.mtime_ns,
                                                        r.inode, r.device), r.sha256, r.size,
                                        ""))
        checked = bad = 0
        for batch in _batches(items):
            found = await asyncio.to_thread(_check_sources_batch, batch)
            checked += len(batch)
            for o in found:
                if o is not None:
                    bad += 1
                    _lim(damaged, {"photo": o.item.photo_id, "path": o.item.loc.path,
                                   "error": o.message})
                    self.bus.publish("backup", "damaged", {"target": row["name"],
                                                           "photo": o.item.photo_id,
                                                           "path": o.item.loc.path})
                    ctx.progress(add_errors=1)
                    log.error("source file damaged; its copy is kept", path=o.item.loc.path)
        return bad

    async def _retention(self, row: Any, days: int) -> dict[str, int]:
        """Copies of content no photo of the library has any more: marked orphaned now,
        removed once orphaned for ``days`` days. Content that reappears is unmarked."""
        now = utcnow()
        alive = sa.select(P.c.id).where(P.c.sha256 == M.c.sha256, P.c.status != "missing") \
            .exists()
        async with self.db.engine.begin() as conn:
            await conn.execute(M.update().where(M.c.target_id == row["id"],
                                                M.c.orphaned_at.is_(None), ~alive)
                               .values(orphaned_at=now))
            await conn.execute(M.update().where(M.c.target_id == row["id"],
                                                M.c.orphaned_at.is_not(None), alive)
                               .values(orphaned_at=None))
            old = list((await conn.execute(sa.select(M.c.id, M.c.path).where(
                M.c.target_id == row["id"],
                M.c.orphaned_at < now - dt.timedelta(days=days)))).all())
        removed = 0
        for rid, rel in old:
            await asyncio.to_thread(self.store(row).delete, rel)
            async with self.db.engine.begin() as conn:
                await conn.execute(M.delete().where(M.c.id == rid))
            removed += 1
        return {"removed": removed}

    # -- verify ---------------------------------------------------------------------------
    async def run_verify(self, ctx: JobContext) -> dict[str, Any]:
        return await self._guarded(ctx, "verify", self._verify)

    async def _verify(self, ctx: JobContext, row: Any, result: dict[str, Any]) -> None:
        cfg = self.settings(row)
        store = self.store(row)
        ctx.phase = "checking"
        await self._check_target(row)
        every = bool(ctx.params.get("all"))
        budget = ctx.params.get("budget") or cfg["verify_budget"]
        seconds = None if every else budget_seconds(str(budget))
        async with self.db.engine.connect() as conn:
            count = int(await conn.scalar(sa.select(sa.func.count()).select_from(M).where(
                M.c.target_id == row["id"])) or 0)
        limit = count
        sample = ctx.params.get("sample")
        if sample is not None and not every:
            limit = max(1, int(-(-count * float(sample) // 100))) if count else 0
        started = utcnow()
        deadline = None if seconds is None else time.monotonic() + seconds
        ctx.phase = "verifying"
        ctx.progress(processed=0, total=limit)
        cursor = _VerifyOrder(self.db, row["id"], started)
        ok = 0
        missing: list[str] = []
        changed: list[str] = []
        n_missing = n_changed = 0
        checked = 0
        reached_end = False
        while checked < limit:
            if deadline is not None and time.monotonic() > deadline:
                break
            want = min(BATCH_FILES * self.threads, limit - checked)
            batch = await cursor.next(want)
            if not batch:
                reached_end = True
                break
            parts = [batch[i::self.threads] for i in range(self.threads)]
            outs = await asyncio.gather(*(asyncio.to_thread(_verify_part, store, p)
                                          for p in parts if p))
            now = utcnow()
            updates: dict[str, list[int]] = {"ok": [], "missing": [], "changed": []}
            nbytes = 0
            for part in outs:
                for r, status, n in part:
                    updates[status].append(r.id)
                    nbytes += n
                    if status == "missing":
                        n_missing += 1
                        _lim(missing, r.path)
                    elif status == "changed":
                        n_changed += 1
                        _lim(changed, r.path)
                    else:
                        ok += 1
            async with self.db.engine.begin() as conn:
                for status, ids in updates.items():
                    if ids:
                        await conn.execute(M.update().where(M.c.id.in_(ids))
                                           .values(verified_at=now, result=status))
            checked += len(batch)
            bad = len(updates["missing"]) + len(updates["changed"])
            ctx.progress(add=len(batch), add_bytes=nbytes, add_errors=bad)
            await self._touch_lock(row["id"])
        if checked >= count:
            reached_end = True
        extra: list[str] = []
        n_extra = 0
        if reached_end:
            ctx.phase = "looking for extra files"
            ctx.progress()
            async with self.db.engine.connect() as conn:
                known = set((await conn.execute(sa.select(M.c.path).where(
                    M.c.target_id == row["id"]))).scalars())
            found = await asyncio.to_thread(lambda: list(store.walk_files()))
            for rel in found:
                if rel not in known:
                    n_extra += 1
                    _lim(extra, rel)
        async with self.db.engine.connect() as conn:
            oldest, never = (await conn.execute(sa.select(
                sa.func.min(M.c.verified_at),
                sa.func.sum(sa.case((M.c.verified_at.is_(None), 1), else_=0)))
                .where(M.c.target_id == row["id"]))).one()
            due = int(await conn.scalar(sa.select(sa.func.count()).select_from(M).where(
                M.c.target_id == row["id"], sa.or_(
                    M.c.verified_at.is_(None),
                    M.c.verified_at < utcnow() - dt.timedelta(days=cfg["verify_days"])))) or 0)
        result.update(checked=checked, ok=ok, missing=missing, changed=changed, extra=extra,
                      missing_count=n_missing, changed_count=n_changed, extra_count=n_extra,
                      files=count, whole=reached_end,
                      oldest_verified_age=_age(oldest), never_verified=int(never or 0),
                      due=due)
        log.info("verify done", target=row["name"], checked=checked, missing=n_missing,
                 changed=n_changed, extra=n_extra)

    # -- restore --------------------------------------------------------------------------
    async def run_restore(self, ctx: JobContext) -> dict[str, Any]:
        return await self._guarded(ctx, "restore", self._restore)

    async def restore_selection(self, target_id: int, params: dict[str, Any]
                                ) -> tuple[list[tuple[str, str, str]], int]:
        """(target rel, dest rel, sha256) for what ``params`` choose, and how many chosen
        photos the target does not hold."""
        if params.get("all"):
            async with self.db.engine.connect() as conn:
                rows = (await conn.execute(sa.select(M.c.path, M.c.sha256).where(
                    M.c.target_id == target_id).order_by(M.c.path))).all()
            return [(r.path, r.path, r.sha256) for r in rows], 0
        q: Any = (sa.select(P.c.sha256, P.c.name, F.c.path.label("folder"), P.c.source_id,
                       M.c.path.label("on_target"))
             .join(F, F.c.id == P.c.folder_id)
             .outerjoin(M, sa.and_(M.c.target_id == target_id, M.c.sha256 == P.c.sha256))
             .where(P.c.sha256.is_not(None)))
        if params.get("photo") is not None:
            q = q.where(P.c.id == params["photo"])
        if params.get("folder"):
            found = self.sources.locate(paths.normalize(params["folder"]))
            if found is None:
                raise JobFailed(f"{params['folder']} is not inside any root",
                                {"reason": "not_found"})
            src, rel = found
            q = q.where(P.c.source_id == src.id)
            if rel:
                q = q.where(sa.or_(F.c.path == rel, F.c.path.startswith(rel + "/",
                                                                        autoescape=True)))
        if params.get("taken_from"):
            q = q.where(P.c.taken_at >= dt.datetime.fromisoformat(params["taken_from"]))
        if params.get("taken_to"):
            q = q.where(P.c.taken_at < dt.datetime.fromisoformat(params["taken_to"])
                        + dt.timedelta(days=1))
        async with self.db.engine.connect() as conn:
            chosen = (await conn.execute(q.order_by(P.c.id))).all()
        out: list[tuple[str, str, str]] = []
        lacking = 0
        names = {s.id: s.name for s in self.sources.by_id.values()}
        for r in chosen:
            if r.on_target is None:
                lacking += 1
                continue
            out.append((r.on_target, files.target_rel(names.get(r.source_id, "_"), r.folder,
                                                      r.name), r.sha256))
        return out, lacking

    async def _restore(self, ctx: JobContext, row: Any, result: dict[str, Any]) -> None:
        store = self.store(row)
        dest = ctx.params["dest"]
        await self._check_target(row)
        chosen, lacking = await self.restore_selection(row["id"], ctx.params)
        dry = bool(ctx.params.get("dry_run"))
        overwrite = bool(ctx.params.get("overwrite"))
        if not dry:
            # What a restore killed mid-way left beside its files (never a finished name).
            folders = {os.path.dirname(os.path.join(dest, d)) for _, d, _ in chosen}
            result["leftovers_removed"] = await asyncio.to_thread(
                files.clear_restore_leftovers, folders)
        # Links inside the destination are not written through (as on a target), mounts
        # inside it are fine: each file is flushed on its own.
        real = RealDirs(dest, same_device=False)
        ctx.phase = "planning" if dry else "restoring"
        ctx.progress(processed=0, total=len(chosen))
        counts: dict[str, int] = {}
        listed: list[dict[str, str]] = []
        problems: list[dict[str, str]] = []
        for i in range(0, len(chosen), BATCH_FILES):
            part = chosen[i:i + BATCH_FILES]
            if dry:
                def plan(p: list[tuple[str, str, str]] = part) -> list[tuple[str, str, str]]:
                    out = []
                    for src, dst, sha in p:
                        target = os.path.join(dest, dst)
                        if not os.path.lexists(target):
                            act = "restore"
                        elif files.hash_path(target)[0] == sha:
                            act = "present"
                        else:
                            act = "overwrite" if overwrite else "kept"
                        out.append((src, dst, act))
                    return out
                for src, dst, act in await asyncio.to_thread(plan):
                    counts[act] = counts.get(act, 0) + 1
                    _lim(listed, {"from": _join(store.where, src),
                                  "to": os.path.join(dest, dst), "action": act})
                ctx.progress(add=len(part))
                continue

            def work(p: list[tuple[str, str, str]] = part) -> list[tuple[str, str, int, str]]:
                done: list[tuple[str, str, int, str]] = []
                for src, dst, sha in p:
                    try:
                        real.check(os.path.dirname(dst))
                    except NotBeneath as exc:
                        done.append((dst, "failed", 0, exc.strerror or str(exc)))
                        continue
                    done.append((dst, *store.restore_one(src, os.path.join(dest, dst), sha,
                                                         overwrite)))
                    if done[-1][1] == files.DISK_FULL:
                        break  # every next file would fail the same way
                return done
            if i == 0:
                await asyncio.to_thread(os.makedirs, dest, exist_ok=True)
            outs = await asyncio.to_thread(work)
            nbytes = 0
            for dst, status, n, msg in outs:
                counts[status] = counts.get(status, 0) + 1
                nbytes += n
                if status not in ("restored", "present"):
                    _lim(problems, {"path": os.path.join(dest, dst), "status": status,
                                    "error": msg})
            ctx.progress(add=len(part), add_bytes=nbytes,
                         add_errors=sum(1 for o in outs if o[1] in ("damaged", "failed",
                                                                    "missing",
                                                                    files.DISK_FULL)))
            if any(o[1] == files.DISK_FULL for o in outs):
                left = len(chosen) - i - len(outs)
                if left:
                    counts["not_started"] = left
                result.update(dest=dest, dry_run=dry, counts=counts, not_on_target=lacking,
                              problems=problems, reason=files.DISK_FULL)
                raise JobFailed(f"restore into {dest} stopped: the destination is full "
                                f"({left + 1} files not restored)", {"reason": files.DISK_FULL})
            await self._touch_lock(row["id"])
        result.update(dest=dest, dry_run=dry, counts=counts, not_on_target=lacking)
        if dry:
            result["plan"] = listed
        else:
            result["problems"] = problems

    # -- status and history ---------------------------------------------------------------
    async def status_of(self, name: str | None) -> list[dict[str, Any]]:
        rows = [await self.row(name)] if name else await self._rows()
        out = []
        for row in rows:
            cfg = self.settings(row)
            sources, _ = self._included(cfg)
            ids = [s.id for s in sources]
            async with self.db.engine.connect() as conn:
                last = {}
                for kind in ("backup", "verify"):
                    r = (await conn.execute(sa.select(R).where(
                        R.c.target_id == row["id"], R.c.kind == kind)
                        .order_by(R.c.id.desc()).limit(1))).mappings().first()
                    last[kind] = self._run(r, row["name"]) if r else None
                nfiles, nbytes, oldest, never = (await conn.execute(sa.select(
                    sa.func.count(), sa.func.coalesce(sa.func.sum(M.c.size), 0),
                    sa.func.min(M.c.verified_at),
                    sa.func.coalesce(sa.func.sum(sa.case((M.c.verified_at.is_(None), 1),
                                                         else_=0)), 0))
                    .where(M.c.target_id == row["id"]))).one()
                lacking = 0
                if ids:
                    has = sa.select(M.c.id).where(M.c.target_id == row["id"],
                                                  M.c.sha256 == P.c.sha256).exists()
                    lacking = int(await conn.scalar(
                        sa.select(sa.func.count(sa.distinct(P.c.sha256))).where(
                            P.c.source_id.in_(ids), P.c.status.in_(BACKED_UP),
                            P.c.sha256.is_not(None), ~has)) or 0)
            problem = await asyncio.to_thread(self.store(row).check)
            out.append({
                "name": row["name"], "kind": row["kind"],
                "path": row["path"] or self.store(row).where, "enabled": bool(row["enabled"]),
                "online": problem is None, "problem": None if problem is None else str(problem),
                "last_run": last["backup"], "last_verify": last["verify"],
                "next_run": iso(row["next_run_at"]), "next_verify": iso(row["next_verify_at"]),
                "files": int(nfiles), "bytes": int(nbytes), "not_backed_up": lacking,
                "oldest_verified_age": _age(oldest) if oldest is not None else None,
                "never_verified": int(never or 0),
                "running": row["lock_owner"] is not None,
            })
        return out

    @staticmethod
    def _run(r: Any, target: str) -> dict[str, Any]:
        return {"id": r["id"], "target": target, "kind": r["kind"], "job": r["job_id"],
                "state": r["state"], "started_at": iso(r["started_at"]),
                "finished_at": iso(r["finished_at"]), "files": r["files"], "bytes": r["bytes"],
                "errors": r["errors"], "result": r["result"]}

    async def history(self, name: str | None, kind: str | None, limit: int,
                      cursor: str | None) -> dict[str, Any]:
        q = sa.select(R, T.c.name.label("target")).join(T, T.c.id == R.c.target_id) \
            .order_by(R.c.id.desc()).limit(limit + 1)
        if name:
            q = q.where(T.c.name == name)
        if kind:
            q = q.where(R.c.kind == kind)
        if cursor:
            if not cursor.isdigit():
                raise InvalidParams("cursor: not a cursor from backups.history",
                                    {"errors": {"cursor": "invalid"}})
            q = q.where(R.c.id < int(cursor))
        async with self.db.engine.connect() as conn:
            rows = (await conn.execute(q)).mappings().all()
        runs = [self._run(r, r["target"]) for r in rows[:limit]]
        return {"runs": runs,
                "next_cursor": str(rows[limit - 1]["id"]) if len(rows) > limit else None}

    # -- the schedule ---------------------------------------------------------------------
    async def _schedule_loop(self) -> None:
        while True:
            delay = 30.0
            try:
                delay = await self._schedule_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("backup scheduler failed; trying again")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(1.0, min(delay, 60.0)))

    async def _schedule_once(self) -> float:
        now = utcnow()
        soonest = 60.0
        for row in await self._rows():
            if not row["enabled"]:
                continue
            cfg = self.settings(row)
            for column, expr, kind in (("next_run_at", cfg["schedule"], "backup"),
                                       ("next_verify_at", cfg["verify_schedule"],
                                        "backup_verify")):
                when = row[column]
                if not expr:
                    continue
                if when is None or when <= now:
                    if when is not None:
                        log.info("scheduled run", target=row["name"], kind=kind)
                        await self.jobs.submit(kind, {"target": row["name"]})
                    when = self._next(expr, cfg, now)
                    async with self.db.engine.begin() as conn:
                        await conn.execute(T.update().where(T.c.id == row["id"])
                                           .values({column: when}))
                if when is not None:
                    soonest = min(soonest, (when - now).total_seconds())
        return soonest


class _VerifyOrder:
    """Manifest rows least recently verified first (never verified first of all), page by
    page with keyset positions on the (target_id, verified_at) index: no page sorts the
    whole manifest again. Rows verified by this run get a later time and drop out."""

    def __init__(self, db: Database, target_id: int, started: dt.datetime) -> None:
        self.db = db
        self.target_id = target_id
        self.started = started
        self.never = True  # first the rows never verified, by id
        self.last: tuple[dt.datetime | None, int] = (None, 0)

    async def next(self, n: int) -> list[Any]:
        cols = (M.c.id, M.c.sha256, M.c.path, M.c.size, M.c.verified_at)
        async with self.db.engine.connect() as conn:
            if self.never:
                rows = list((await conn.execute(
                    sa.select(*cols).where(M.c.target_id == self.target_id,
                                           M.c.verified_at.is_(None), M.c.id > self.last[1])
                    .order_by(M.c.id).limit(n))).all())
                if len(rows) == n:
                    self.last = (None, rows[-1].id)
                    return rows
                self.never, self.last = False, (None, 0)
                if rows:
                    return rows
            when, last_id = self.last
            q = sa.select(*cols).where(M.c.target_id == self.target_id,
                                       M.c.verified_at < self.started)
            if when is not None:
                q = q.where(sa.or_(M.c.verified_at > when,
                                   sa.and_(M.c.verified_at == when, M.c.id > last_id)))
            rows = list((await conn.execute(q.order_by(M.c.verified_at, M.c.id).limit(n)))
                        .all())
        if rows:
            self.last = (rows[-1].verified_at, rows[-1].id)
        return rows


def _join(where: str, rel: str) -> str:
    return where + rel if where.endswith("/") else f"{where}/{rel}"


def _check_sources_batch(batch: list[files.CopyItem]) -> list[files.CopyOutcome | None]:
    return [files.check_source(i) for i in batch]


def _verify_part(store: Store, part: list[Any]) -> list[tuple[Any, str, int]]:
    return [(r, *store.verify_one(r.path, r.sha256, r.size)) for r in part]


# A file at least this large is spread among the batches of small ones (``_spread``).
SPREAD_BYTES = 256 << 10


def _spread(items: list[files.CopyItem]) -> list[files.CopyItem]:
    """``items`` with the large files spaced evenly among the small ones, each kind in its
    own order. A large file's copy is bound by the target's disk (its write-out, then its
    read-back), a small one's by the CPU (creating, renaming, one short read each): in the
    catalog's order a library's large files come in runs (a folder of camera files, the
    small ones in others), and a run of batches of only large files leaves the CPU idle
    while the disk is busy, then the other way round. Mixed, every batch keeps both busy.
    Which batch a file is in changes nothing a batch guarantees."""
    big = [it for it in items if it.size >= SPREAD_BYTES]
    if not big or len(big) == len(items):
        return items
    small = [it for it in items if it.size < SPREAD_BYTES]
    step = len(small) / len(big)
    out: list[files.CopyItem] = []
    taken = 0
    for k, it in enumerate(big):
        upto = int((k + 0.5) * step)
        out.extend(small[taken:upto])
        taken = upto
        out.append(it)
    out.extend(small[taken:])
    return out


def _batches(items: list[files.CopyItem], threads: int = 1) -> list[list[files.CopyItem]]:
    """Batches of at most BATCH_FILES files and BATCH_BYTES bytes, small enough that each
    of ``threads`` gets some, the large files spread among them (``_spread``)."""
    per = max(16, min(BATCH_FILES, -(-len(items) // max(1, threads))))
    out: list[list[files.CopyItem]] = []
    cur: list[files.CopyItem] = []
    size = 0
    for it in _spread(items):
        cur.append(it)
        size += it.size
        if len(cur) >= per or size >= BATCH_BYTES:
            out.append(cur)
            cur, size = [], 0
    if cur:
        out.append(cur)
    return out


def _age(when: dt.datetime | None) -> float | None:
    """Days since ``when`` (naive UTC), one decimal."""
    if when is None:
        return None
    return round((utcnow() - when).total_seconds() / 86400, 3)
