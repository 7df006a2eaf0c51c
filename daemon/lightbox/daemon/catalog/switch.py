"""``database.switch``: move the live catalog to another database, verified, with rollback.

A ``database.switch`` job, in phases (each one a ``job.progress`` phase and a
``database.phase`` event):

1. **test** — ``database.test`` on the target; it must pass, and the target must be empty,
   an empty lightbox catalog, or an incomplete copy left by an earlier switch (reset).
2. **migrate** — the target gets a marker table saying "incomplete copy" *first*, then is
   migrated to head. MySQL's DDL is not transactional, so a migration failing half-way
   leaves tables behind: the marker stays, ``Database.start`` refuses such a database, and
   a later switch to it starts over.
3. **copy** — every table from one read-only snapshot of the source (``copy.py``), while
   the daemon keeps answering and writing; every write it makes meanwhile is captured.
4. **verify** — every table read back from the target: exact counts and digests.
5. **sync** — the rows changed since the snapshot are copied again, in rounds, until few
   are left.
6. **freeze** — jobs are paused (running ones queued again with their checkpoint), the
   write gate closes (new write transactions wait, the open ones end), the last changes are
   copied and verified (counts of every table, small tables whole, every re-copied row read
   back). The target for this phase, with the next, is under 5 seconds.
7. **switch** — the daemon's engine is replaced, every cache holding rows is rebuilt
   (``Database.on_switch``), a health check reads the new catalog; then the new URL is
   written to the state file (``dbstate``): that write completes the switch. The gate
   opens, jobs resume in the new database, the old pool is disposed.

The source is never written. On any failure, or a failed health check, the daemon goes
back to the old engine before the gate opens, so nothing written during the switch is
lost, and the target keeps its marker. A SIGKILL at any point restarts the daemon on the
database whose URL the state file (or the bootstrap config) names: the old one before the
state file was written, the new one after.

URLs carry passwords: the job's parameters and result hold masked URLs only; the real URL
lives in this process's memory for the job's lifetime (a switch interrupted by a restart is
not resumed: it fails, and can be started again).

``LIGHTBOX_SWITCH_HOLD=phase[,phase...]`` (for fault-injection tests) makes the job stop
and wait at that point of that phase, after a ``database.held`` event, until the daemon gets
SIGUSR1 (or is killed): ``test``, ``migrate`` (marker written, before the migration),
``copy`` and ``verify`` (after the first table), ``sync``, ``freeze`` (gate closed, last
rows copied), ``switch`` (engine swapped, state not yet written), ``committed`` (state
written, gate still closed).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
import uuid
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine

from lightbox.common import dburl, logs
from lightbox.common.errors import Conflict, InvalidParams
from lightbox.daemon.catalog import copy, probe, tables
from lightbox.daemon.catalog.database import (
    MARKER,
    Database,
    head_revision,
    make_engine,
    mask,
)
from lightbox.daemon.catalog.dbstate import StateFile
from lightbox.daemon.catalog.types import utcnow
from lightbox.daemon.jobs.queue import JobContext, JobFailed

if TYPE_CHECKING:
    from lightbox.daemon.app import Daemon

log = logs.get("database")

KIND = "database.switch"
PHASES = ("test", "migrate", "copy", "verify", "sync", "freeze", "switch")
FREEZE_TARGET = 5.0  # seconds the write freeze should stay under
SYNC_ROUNDS = 6
SYNC_SMALL = 2000  # captured keys few enough to copy again under the freeze
QUIESCE = 30.0  # seconds the transactions open at capture start may take to end
DRAIN = 10.0  # seconds the open write transactions may take to end when the gate closes


class SwitchFailed(Exception):
    def __init__(self, message: str, reason: str) -> None:
        super().__init__(message)
        self.reason = reason


class Switcher:
    """Runs ``database.switch`` jobs and knows how the last one went."""

    name = "switch"

    def __init__(self, daemon: Daemon, state: StateFile) -> None:
        self.daemon = daemon
        self.state = state
        self._urls: dict[int, str] = {}
        self.active: dict[str, Any] | None = None
        self.last: dict[str, Any] | None = None
        self.holds = {h.strip() for h in os.environ.get("LIGHTBOX_SWITCH_HOLD", "").split(",")
                      if h.strip()}
        self.released = asyncio.Event()
        daemon.jobs.register(KIND, self.run, retry=False, requeue=False,
                             recover=self._recover)

    async def start(self) -> None:
        if self.holds:
            asyncio.get_running_loop().add_signal_handler(signal.SIGUSR1, self.released.set)

    async def stop(self) -> None:
        if self.holds:
            with contextlib.suppress(Exception):
                asyncio.get_running_loop().remove_signal_handler(signal.SIGUSR1)

    def status(self) -> dict[str, Any]:
        return {"active": self.active, "last": self.last}

    @property
    def db(self) -> Database:
        return self.daemon.db

    # -- requests ------------------------------------------------------------------------
    async def submit(self, url: str) -> dict[str, Any]:
        try:
            probe.check_url(url)
        except probe.Unsupported as exc:
            raise InvalidParams(f"url: {exc}", {"errors": {"url": str(exc)},
                                                "reason": "unsupported"}) from None
        if url == self.db.url:
            raise Conflict("the catalog is already at that URL", {"reason": "same_database"})
        j = tables.jobs
        async with self.db.engine.connect() as conn:
            busy = await conn.scalar(sa.select(j.c.id).where(
                j.c.kind == KIND, j.c.state.in_(("queued", "running"))).limit(1))
        if busy is not None or self.active is not None:
            raise Conflict(f"a catalog switch is already running (job {busy})",
                           {"reason": "switch_running", "job": busy})
        cluster = self.daemon.cluster
        others = sorted(cluster.live - {cluster.owner}) if cluster.active else []
        if others:
            # They would go on writing to the catalog this daemon leaves.
            raise Conflict(f"{len(others)} other daemon(s) share this catalog; stop them "
                           "before moving it", {"reason": "shared_catalog", "daemons": others})
        job = await self.daemon.jobs.submit(KIND, {"url": mask(url)}, dedupe=False)
        self._urls[job] = url
        return {"job": job}

    def _recover(self, job_id: int, params: dict[str, Any]
                 ) -> tuple[str, str | None, dict[str, Any] | None]:
        persisted = self.state.read()
        if persisted is not None and persisted.switch_id.startswith(f"{job_id}-") and \
                persisted.url == self.db.url:
            return ("succeeded", None, {"to": mask(persisted.url), "completed": True,
                                        "note": "the daemon stopped right after the switch"})
        return ("failed", "interrupted: the daemon stopped during the switch; the catalog "
                f"stayed at {mask(self.db.url)}", {"reason": "interrupted"})

    # -- the job ---------------------------------------------------------------------------
    async def run(self, ctx: JobContext) -> dict[str, Any]:
        url = self._urls.pop(ctx.id, None)
        if url is None:
            raise JobFailed("the target URL is no longer known (the daemon restarted); "
                            "start the switch again", {"reason": "interrupted"})
        run = _Run(self, ctx, url)
        self.active = {"job": ctx.id, "phase": None, "to": mask(url),
                       "started": time.time()}
        try:
            result = await run.execute()
        except SwitchFailed as exc:
            message = dburl.scrub(str(exc), [url, self.db.url])
            self.last = {"job": ctx.id, "ok": False, "phase": run.phase,
                         "reason": exc.reason, "error": message, "to": mask(url)}
            self.daemon.bus.publish("database", "failed", dict(self.last))
            log.warning("catalog switch failed; the catalog stays where it was",
                        phase=run.phase, reason=exc.reason, error=message)
            raise JobFailed(message, {"reason": exc.reason, "phase": run.phase,
                                      "test": run.report, "seconds": run.seconds}) from None
        except asyncio.CancelledError:
            self.last = {"job": ctx.id, "ok": False, "phase": run.phase,
                         "reason": "cancelled", "to": mask(url)}
            self.daemon.bus.publish("database", "failed", dict(self.last))
            raise
        finally:
            self.active = None
        self.last = {"job": ctx.id, "ok": True, **{k: result[k] for k in (
            "from", "to", "engine", "freeze_seconds", "rows")}}
        return result


class _Run:
    """One switch: the phases, what they found, and the way back."""

    def __init__(self, owner: Switcher, ctx: JobContext, url: str) -> None:
        self.owner = owner
        self.ctx = ctx
        self.url = url
        self.switch_id = f"{ctx.id}-{uuid.uuid4().hex[:8]}"
        self.phase: str | None = None
        self.report: dict[str, Any] | None = None
        self.seconds: dict[str, float] = {}
        self._phase_started = time.monotonic()
        self.states: dict[str, copy.TableState] = {}
        self.rewritten = 0

    @property
    def daemon(self) -> Daemon:
        return self.owner.daemon

    @property
    def db(self) -> Database:
        return self.owner.db

    def _secrets(self) -> list[str]:
        return [self.url, self.db.url]

    def enter(self, phase: str) -> None:
        now = time.monotonic()
        if self.phase is not None:
            self.seconds[self.phase] = round(now - self._phase_started, 3)
        self.phase, self._phase_started = phase, now
        self.ctx.phase = phase
        self.ctx.progress(processed=0, total=None)
        if self.owner.active is not None:
            self.owner.active["phase"] = phase
        self.daemon.bus.publish("database", "phase", {"job": self.ctx.id, "phase": phase,
                                                      "to": mask(self.url)})
        log.info("catalog switch", phase=phase, to=mask(self.url))

    async def hold(self, point: str) -> None:
        if point in self.owner.holds:
            self.owner.released.clear()
            self.daemon.bus.publish("database", "held", {"job": self.ctx.id, "point": point})
            log.warning("catalog switch held (LIGHTBOX_SWITCH_HOLD) until SIGUSR1", point=point)
            await self.owner.released.wait()
            log.info("catalog switch released", point=point)

    def progress(self, phase: str, done: int, total: int | None) -> None:
        self.ctx.progress(processed=done, total=total)

    async def execute(self) -> dict[str, Any]:
        plans = copy.plan()
        old_url = self.db.url
        capture = copy.ChangeCapture(plans)
        source = copy.Reader(old_url, snapshot=True)
        target = copy.Writer(self.url)
        current = copy.Reader(old_url, snapshot=False)
        try:
            self.enter("test")
            await self.test()
            await self.hold("test")
            self.enter("migrate")
            target_engine = probe.probe_engine(self.url)
            try:
                await self.prepare_target(target_engine)
            finally:
                await target_engine.dispose()
            self.enter("copy")
            capture.attach(self.db.engine)
            # A transaction that wrote before the capture began but commits after the
            # snapshot would be in neither: let those end first.
            if not await self.db.gate.quiesce(QUIESCE):
                raise SwitchFailed("write transactions in progress did not end within "
                                   f"{QUIESCE:g} s", "busy")
            await source.open()
            await target.open()
            started = time.monotonic()
            self.states = await copy.copy_all(source, target, plans, self.progress,
                                              self._after_table("copy"))
            copy_seconds = time.monotonic() - started
            await source.close()
            self.enter("verify")
            await copy.verify_all(target, self.states, self.progress,
                                  self._after_table("verify"))
            self.enter("sync")
            await current.open()
            for _ in range(SYNC_ROUNDS):
                captured = capture.take()
                self.rewritten += await copy.reconcile(current, target, plans, self.states,
                                                       captured)
                if capture.current.size() <= SYNC_SMALL:
                    break
            await self.hold("sync")
            result = await self.freeze_and_switch(plans, capture, current, target, old_url)
            result["copy_rows_per_second"] = round(
                sum(s.rows for s in self.states.values()) / max(copy_seconds, 1e-6))
            return result
        except copy.CopyError as exc:
            raise SwitchFailed(str(exc), exc.reason) from None
        except SwitchFailed:
            raise
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.exception("catalog switch failed", phase=self.phase)
            reason, message = probe.classify(exc)
            raise SwitchFailed(f"{self.phase}: {message}",
                               "unreachable" if reason == "unreachable" else
                               f"{self.phase}_failed") from None
        finally:
            capture.detach()
            for closing in (source, current, target):
                with contextlib.suppress(Exception):
                    await closing.close()

    def _after_table(self, point: str) -> Any:
        first = True

        async def after(name: str) -> None:
            nonlocal first
            if first:
                first = False
                await self.hold(point)
        return after

    # -- test and migrate ----------------------------------------------------------------
    async def test(self) -> None:
        report = await probe.run(self.url)
        self.report = report
        if not report["ok"]:
            failed: dict[str, Any] = next(
                (c for c in report["checks"] if c["ok"] is False), {})
            raise SwitchFailed(f"the target failed its test: {failed.get('name')}: "
                               f"{failed.get('detail')}", str(report["reason"]))
        catalog = report.get("catalog") or {}
        state = catalog.get("state")
        if state == "foreign":
            raise SwitchFailed("the target has tables named like the catalog's that no "
                               "lightbox migration made: "
                               + ", ".join(sorted(catalog.get("rows", {}))),
                               "target_conflict")
        if state == "catalog" and any(catalog.get("rows", {}).values()):
            rows = {k: v for k, v in catalog["rows"].items() if v}
            raise SwitchFailed("the target already holds a catalog with rows ("
                               + ", ".join(f"{k}: {v}" for k, v in rows.items())
                               + "); switch to an empty database", "target_not_empty")

    async def prepare_target(self, engine: AsyncEngine) -> None:
        """Reset an incomplete copy, mark the target incomplete, migrate it to head."""
        catalog = (self.report or {}).get("catalog") or {}
        parsed = engine.url
        if parsed.get_backend_name() == "sqlite" and parsed.database:
            await asyncio.to_thread(_make_parent, parsed.database)
        async with engine.begin() as conn:
            if catalog.get("state") == "incomplete":
                log.info("resetting an incomplete copy left by an earlier switch",
                         target=mask(self.url))
                await conn.run_sync(_drop_catalog)
            await conn.run_sync(lambda c: MARKER.create(c, checkfirst=True))
            await conn.execute(MARKER.delete())
            await conn.execute(MARKER.insert().values(
                switch_id=self.switch_id, source=mask(self.db.url), started_at=utcnow()))
        await self.hold("migrate")
        target = Database(self.url)
        target._engine = make_engine(self.url)
        try:
            revision = await target.migrate()
        except Exception as exc:
            detail = await _partial(engine)
            message = dburl.scrub(probe.classify(exc)[1], self._secrets())
            raise SwitchFailed(
                f"migrating the target failed ({message}); {detail}; it stays marked as an "
                "incomplete copy and is not used", "migration_failed") from None
        finally:
            await target.stop()
        if revision != head_revision():
            raise SwitchFailed(f"the target is at revision {revision}, not {head_revision()}",
                               "migration_failed")

    # -- freeze and switch -----------------------------------------------------------------
    async def freeze_and_switch(self, plans: list[copy.TablePlan],
                                capture: copy.ChangeCapture, current: copy.Reader,
                                target: copy.Writer, old_url: str) -> dict[str, Any]:
        self.enter("freeze")
        jobs = self.daemon.jobs
        jobs.pause()
        swapped: AsyncEngine | None = None
        committed = False
        frozen_at: float | None = None
        try:
            requeued = await jobs.interrupt({self.ctx.id}, timeout=DRAIN)
            frozen_at = time.monotonic()
            if not await self.db.gate.close(DRAIN):
                raise SwitchFailed(f"write transactions did not end within {DRAIN:g} s",
                                   "busy")
            self.rewritten += await copy.reconcile(current, target, plans, self.states,
                                                   capture.take())
            await copy.final_check(current, target, self.states)
            await self.hold("freeze")
            self.enter("switch")
            new_engine = make_engine(self.url, self.db)
            swapped = self.db.swap(new_engine, self.url, head_revision())
            await self.db.run_switch_hooks()
            await self.health(plans)
            await self.hold("switch")
            self.owner.state.write(self.url, self.switch_id, self.daemon.config.database_url,
                                   old_url)
            committed = True
            self.db.completed_switch = self.switch_id
            await self.hold("committed")
        except BaseException:
            if swapped is not None and not committed:
                failed_engine = self.db.swap(swapped, old_url, head_revision())
                with contextlib.suppress(Exception):
                    await self.db.run_switch_hooks()
                with contextlib.suppress(Exception):
                    await failed_engine.dispose()
                log.warning("switched back to the old catalog", url=mask(old_url))
            raise
        finally:
            self.db.gate.open()
            jobs.resume()
            freeze = time.monotonic() - frozen_at if frozen_at is not None else None
        # Committed: what is left is tidying, which must not undo the switch.
        try:
            async with new_engine.begin() as conn:
                await conn.run_sync(lambda c: MARKER.drop(c, checkfirst=True))
        except Exception:
            log.exception("removing the incomplete-copy marker failed; the next start "
                          "removes it")
        if swapped is not None:
            await swapped.dispose()
        self.enter("done")
        rows = sum(s.rows for s in self.states.values())
        result = {
            "from": mask(old_url), "to": mask(self.url), "engine": self.db.dialect,
            "switch": self.switch_id, "rows": rows,
            "tables": {name: s.describe() for name, s in self.states.items()},
            "rewritten": self.rewritten, "requeued": requeued,
            "freeze_seconds": round(freeze or 0.0, 3), "seconds": self.seconds,
        }
        self.daemon.bus.publish("database", "switched", {
            "job": self.ctx.id, "engine": self.db.dialect, "url": mask(self.url),
            "from": mask(old_url), "freeze_seconds": result["freeze_seconds"]})
        log.info("catalog switched", to=mask(self.url), engine=self.db.dialect, rows=rows,
                 freeze=result["freeze_seconds"])
        return result

    async def health(self, plans: list[copy.TablePlan]) -> None:
        """The daemon's own engine can read the new catalog, at head, with every row."""
        async with self.db.engine.connect() as conn:
            revision = await conn.scalar(sa.text("SELECT version_num FROM alembic_version"))
            if revision != head_revision():
                raise SwitchFailed(f"health check: the new catalog is at {revision}",
                                   "health_failed")
            for p in plans:
                count = await conn.scalar(sa.select(sa.func.count()).select_from(p.table))
                if count != self.states[p.name].rows:
                    raise SwitchFailed(f"health check: {p.name} has {count} rows, expected "
                                       f"{self.states[p.name].rows}", "health_failed")


def _make_parent(database: str) -> None:
    from pathlib import Path

    Path(database).parent.mkdir(mode=0o700, parents=True, exist_ok=True)


def _drop_catalog(conn: sa.Connection) -> None:
    """Drop what lightbox's migrations create in an incomplete copy, nothing else: the
    catalog's tables, Alembic's, the marker, and the side tables of engine-specific
    indexes (named after a catalog table, or holding a foreign key into one)."""
    inspector = sa.inspect(conn)
    present = set(inspector.get_table_names())
    side = [n for n in present if copy.side_table(n) or (any(
        fk.get("referred_table") in tables.metadata.tables
        for fk in inspector.get_foreign_keys(n)) and n not in tables.metadata.tables)]
    quote = conn.dialect.identifier_preparer.quote
    for name in sorted(side, key=len, reverse=True):  # FTS shadow tables go with theirs
        if name in set(sa.inspect(conn).get_table_names()):
            conn.execute(sa.text(f"DROP TABLE {quote(name)}"))
    tables.metadata.drop_all(conn, checkfirst=True)
    conn.execute(sa.text("DROP TABLE IF EXISTS alembic_version"))
    MARKER.drop(conn, checkfirst=True)


async def _partial(engine: AsyncEngine) -> str:
    """What a failed migration left in the target, for the error message."""
    try:
        async with engine.connect() as conn:
            names = set(await conn.run_sync(lambda c: sa.inspect(c).get_table_names()))
            revision = None
            if "alembic_version" in names:
                revision = await conn.scalar(sa.text("SELECT version_num FROM alembic_version"))
    except Exception as exc:
        return f"the target could not be inspected ({type(exc).__name__})"
    ours = sorted(n for n in names if n in tables.metadata.tables)
    if not ours and revision is None:
        return "nothing of the catalog was created"
    return (f"the migration stopped at revision {revision or 'none'} with tables "
            f"{', '.join(ours) or 'none'} created (DDL on this engine is not transactional)"
            if engine.dialect.name in ("mysql", "mariadb") else
            f"the target is at revision {revision or 'none'}")
