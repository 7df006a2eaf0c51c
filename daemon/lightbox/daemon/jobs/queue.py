"""The persisted job queue: every long-running task goes through it.

A job is a row in ``jobs``: queued → running → succeeded / failed / cancelled. The row is the
truth, so a job survives the daemon: one that was running when the daemon died is found at
start (its owner process is gone) and queued again, with the checkpoint it saved.

- Claiming is an atomic ``UPDATE … WHERE state = 'queued'``, so several daemons sharing one
  catalog database never run the same job twice. A job with an ``affinity`` (a scan of one
  root: ``source:<id>``) is claimed only by the daemon holding that lease; a running job
  whose owner is no longer among the live daemons is queued again (``take_over``).
- A failed attempt is retried with exponential backoff (``not_before``) until
  ``max_attempts``; then the job stays failed with ``result.dead_letter = true``.
- Cancel: a queued job is cancelled at once; a running one gets CancelledError at its next
  await and what it already did stays done.
- On SIGTERM running jobs are interrupted, their attempt is given back and they are queued
  again (checkpointed), so the next start resumes them.
- Progress lives in memory, is published as throttled ``job.progress`` events (at most twice
  a second per job) and written to the row with the heartbeat every few seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from lightbox.common import logs
from lightbox.common.errors import Conflict, InvalidParams, NotFound
from lightbox.daemon.catalog import tables
from lightbox.daemon.catalog.database import Database
from lightbox.daemon.catalog.types import iso, utcnow
from lightbox.daemon.control.events import EventBus
from lightbox.daemon.library import failures
from lightbox.daemon.procs import pid_alive

log = logs.get("jobs")

TERMINAL = ("succeeded", "failed", "cancelled")
HEARTBEAT = 5.0
STALE_AFTER = 60.0  # a running job whose owner is silent this long is taken over
# How long ``jobs.cancel`` waits for a running job to wind down before it answers with the
# job as it is then (its ``job.finished`` event follows): shorter than every client's call
# timeout (the TUI's 8 s, the CLI's 10 s), so a job that takes long to stop (a scan in the
# middle of writing a batch) never turns a cancel into "no reply".
CANCEL_WAIT = 4.0


class JobFailed(Exception):
    """Raised by a handler for a failure that retrying will not fix (no retry); ``result``
    becomes the job's result (a machine-readable ``reason``, what was done)."""

    def __init__(self, message: str, result: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.result = result


class _Requeue(Exception):
    """Internal: the daemon is stopping; put the job back without spending an attempt."""


@dataclass
class JobContext:
    """What a job's code gets: its parameters, a place for progress, a checkpoint."""

    id: int
    kind: str
    params: dict[str, Any]
    attempt: int
    checkpoint: dict[str, Any] | None
    queue: JobQueue
    processed: int = 0
    total: int | None = None
    bytes: int = 0
    errors: int = 0
    phase: str | None = None  # what the job is doing now ("walking", "indexing"...)
    started: float = field(default_factory=time.monotonic)

    def progress(self, *, processed: int | None = None, total: int | None = None,
                 bytes_: int | None = None, errors: int | None = None,
                 add: int = 0, add_bytes: int = 0, add_errors: int = 0) -> None:
        if processed is not None:
            self.processed = processed
        if total is not None:
            self.total = total
        if bytes_ is not None:
            self.bytes = bytes_
        if errors is not None:
            self.errors = errors
        self.processed += add
        self.bytes += add_bytes
        self.errors += add_errors
        self.queue._publish_progress(self)

    def rate(self) -> float:
        elapsed = time.monotonic() - self.started
        return self.processed / elapsed if elapsed > 0 else 0.0

    def eta(self) -> float | None:
        rate = self.rate()
        if self.total is None or rate <= 0:
            return None
        return max(0.0, (self.total - self.processed) / rate)

    async def save_checkpoint(self, data: dict[str, Any]) -> None:
        self.checkpoint = data
        async with self.queue.db.engine.begin() as conn:
            await conn.execute(tables.jobs.update().where(tables.jobs.c.id == self.id)
                               .values(checkpoint=data))


Handler = Callable[[JobContext], Awaitable[dict[str, Any] | None]]


# What to make of a job found running when the daemon starts (its daemon died): the state,
# error and result to end it with, or None to queue it again (the default for every kind).
Recover = Callable[[int, dict[str, Any]], tuple[str, str | None, dict[str, Any] | None] | None]


@dataclass(frozen=True)
class Kind:
    handler: Handler
    retry: bool = True
    max_attempts: int | None = None
    # False: a job interrupted by a stopping daemon fails instead of being queued again.
    requeue: bool = True
    recover: Recover | None = None


def owner_id(boot: str) -> str:
    return f"{socket.gethostname()}/{os.getpid()}/{boot}"


def _owner_alive(owner: str | None) -> bool | None:
    """True/False for an owner on this host, None when it is another host's."""
    if not owner:
        return False
    host, _, rest = owner.partition("/")
    if host != socket.gethostname():
        return None
    pid_text = rest.partition("/")[0]
    if not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False  # an earlier run of ours that had our pid is certainly gone
    return pid_alive(pid)


# Exceptions that say the code (or its input) is wrong: running it again cannot help.
_BUGS = (ArithmeticError, AssertionError, AttributeError, LookupError, NameError, TypeError,
         ValueError)


def failure_reason(exc: BaseException, ref: str) -> tuple[str, bool]:
    """What a person reads about a failed attempt, and whether another attempt may succeed.

    Never an exception's repr: the environment's errors say what and where in words
    (``OSError`` has strerror and filename; a database error its first line), anything
    else is an internal error with a reference to the traceback in the daemon's log.
    """
    if isinstance(exc, OSError) and (exc.strerror or str(exc)):
        where = f" ({exc.filename})" if exc.filename else ""
        return f"{exc.strerror or exc}{where}", True
    if isinstance(exc, sa.exc.DBAPIError):
        first = str(getattr(exc, "orig", exc) or "").strip().splitlines()[:1]
        detail = f": {first[0][:200]}" if first else ""
        return f"the catalog database failed{detail}", True
    if isinstance(exc, (TimeoutError, ConnectionError)):
        return "timed out" if isinstance(exc, TimeoutError) else "connection failed", True
    retriable = not isinstance(exc, _BUGS)
    return (f"internal error (ref {ref}); see the daemon log", retriable)


def _full_where(exc: BaseException) -> str:
    """Which disk was full, in words: the catalog's (a database error) or a file's."""
    if isinstance(exc, sa.exc.DBAPIError):
        return "the catalog's disk"
    if isinstance(exc, OSError) and exc.filename:
        return f"the disk of {exc.filename}"
    return "a disk the job writes to"


def backoff(attempt: int) -> float:
    """Seconds before attempt ``attempt + 1``: 5 s, 20 s, 80 s, … at most 15 minutes."""
    return float(min(900, 5 * 4 ** max(0, attempt - 1)))


class JobQueue:
    name = "jobs"
    settings_keys = ("jobs.concurrency", "jobs.max_attempts")

    def __init__(self, db: Database, bus: EventBus, boot: str, *, concurrency: int = 2,
                 max_attempts: int = 3) -> None:
        self.db = db
        self.bus = bus
        self.owner = owner_id(boot)
        self.concurrency = concurrency
        self.max_attempts = max_attempts
        self.kinds: dict[str, Kind] = {}
        self.running: dict[int, tuple[JobContext, asyncio.Task[None]]] = {}
        self._wake = asyncio.Event()
        self._done: dict[int, asyncio.Event] = {}
        self._runner: asyncio.Task[None] | None = None
        self._heartbeat: asyncio.Task[None] | None = None
        self._stopping = False
        self._paused = False
        self._user_cancelled: set[int] = set()
        # Running here but queued again by another daemon (this one missed its lease's
        # heart-beats): stopped without writing anything more to the row, which is not
        # this daemon's any longer.
        self._taken: set[int] = set()
        # How jobs ended when the catalog could not record it (a full disk): shown by
        # jobs.get/wait from here, written by the heartbeat once the catalog takes it.
        self._unwritten: dict[int, dict[str, Any]] = {}
        # Several daemons, one catalog (cluster.leases): the affinity a new job gets, and
        # the affinities this daemon may claim (None: every job).
        self.affinity_of: Callable[[str, dict[str, Any]], str | None] = lambda k, p: None
        self.affinities: Callable[[], set[str] | None] = lambda: None

    def register(self, kind: str, handler: Handler, *, retry: bool = True,
                 max_attempts: int | None = None, requeue: bool = True,
                 recover: Recover | None = None) -> None:
        self.kinds[kind] = Kind(handler, retry, max_attempts, requeue, recover)

    def wake(self) -> None:
        """Look for claimable jobs now (this daemon just took over a root's lease)."""
        self._wake.set()

    # -- pausing (a catalog switch's write freeze) ----------------------------------------
    def pause(self) -> None:
        """Claim no new job until ``resume``."""
        self._paused = True

    def resume(self) -> None:
        self._paused = False
        self._wake.set()

    async def interrupt(self, keep: set[int], timeout: float) -> list[int]:
        """Stop the running jobs except ``keep``; each is queued again with its checkpoint
        and its attempt given back, as at a daemon stop. Returns their ids."""
        tasks = {i: t for i, (_, t) in self.running.items() if i not in keep}
        for task in tasks.values():
            task.cancel()
        if tasks:
            await asyncio.wait(tasks.values(), timeout=timeout)
        return sorted(tasks)

    # -- lifecycle ---------------------------------------------------------------------
    async def start(self) -> None:
        await self._recover()
        loop = asyncio.get_running_loop()
        self._runner = loop.create_task(self._run(), name="jobs-runner")
        self._heartbeat = loop.create_task(self._beat(), name="jobs-heartbeat")

    async def stop(self) -> None:
        self._stopping = True
        for task in (self._runner, self._heartbeat):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        tasks = [t for _, t in self.running.values()]
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=3.0)

    def status(self) -> dict[str, Any]:
        return {"running": {str(i): c.kind for i, (c, _) in self.running.items()},
                "concurrency": self.concurrency}

    async def take_over(self, live: set[str]) -> None:
        """Queue again the running jobs of daemons no longer alive (the cluster's lease
        round says which are); this daemon's own are never touched here."""
        await self._recover(lambda owner, beat: owner in live or owner == self.owner)

    async def _recover(self, keep: Callable[[str | None, Any], bool] | None = None) -> None:
        """Queue again the jobs whose owner died while running them."""
        j = tables.jobs
        stale_before = utcnow() - dt.timedelta(seconds=STALE_AFTER)

        def alive(owner: str | None, beat: Any) -> bool:
            here = _owner_alive(owner)
            return bool(here or (here is None and beat is not None and beat > stale_before))

        keep = keep or alive
        async with self.db.engine.connect() as conn:
            running = (await conn.execute(sa.select(j.c.owner, j.c.heartbeat_at)
                                          .where(j.c.state == "running"))).all()
        if all(keep(owner, beat) for owner, beat in running):
            return  # the common case: read only
        async with self.db.engine.begin() as conn:
            rows = (await conn.execute(sa.select(j.c.id, j.c.owner, j.c.heartbeat_at,
                                                 j.c.kind, j.c.params)
                                       .where(j.c.state == "running"))).all()
            for job_id, owner, beat, kind, params in rows:
                if keep(owner, beat):
                    continue
                recover = self.kinds[kind].recover if kind in self.kinds else None
                ending = recover(job_id, dict(params or {})) if recover else None
                if ending is not None:
                    state, error, result = ending
                    await conn.execute(j.update().where(j.c.id == job_id,
                                                        j.c.state == "running").values(
                        state=state, error=error, result=result, finished_at=utcnow(),
                        heartbeat_at=None))
                    log.info("ended a job left running by a stopped daemon", id=job_id,
                             kind=kind, state=state)
                    continue
                await conn.execute(j.update().where(j.c.id == job_id, j.c.state == "running",
                                                    j.c.owner == owner)
                                   .values(state="queued", owner=None, not_before=None,
                                           attempts=sa.case((j.c.attempts > 0,
                                                             j.c.attempts - 1), else_=0)))
                log.info("resuming job left running by a stopped daemon", id=job_id,
                         owner=owner)
        self._wake.set()

    # -- public API ----------------------------------------------------------------------
    async def submit(self, kind: str, params: dict[str, Any] | None = None, *,
                     dedupe: bool = True, priority: int = 0,
                     join_running: bool = True) -> int:
        """Queue a job; an identical queued or running one is reused when ``dedupe``.

        ``join_running=False`` reuses only a queued one: a request to look *now* (a person's
        ``lightbox scan`` right after mounting a disk) must not be answered by a run that
        began before the change it wants seen."""
        if kind not in self.kinds:
            raise InvalidParams(f"unknown job kind {kind!r}")
        params = params or {}
        j = tables.jobs
        affinity = self.affinity_of(kind, params)
        async with self.db.engine.begin() as conn:
            if dedupe:  # the same job for the same place (another daemon's cleanup is not)
                rows = await conn.execute(sa.select(j.c.id, j.c.params, j.c.affinity).where(
                    j.c.kind == kind,
                    j.c.state.in_(("queued", "running") if join_running else ("queued",))))
                for job_id, existing, where in rows:
                    if existing == params and where == affinity:
                        return int(job_id)
            kind_cfg = self.kinds[kind]
            max_attempts = kind_cfg.max_attempts or (self.max_attempts if kind_cfg.retry else 1)
            result = await conn.execute(j.insert().values(
                kind=kind, state="queued", params=params, priority=priority,
                max_attempts=max_attempts, created_at=utcnow(), affinity=affinity))
            job_id = int(result.inserted_primary_key[0])  # type: ignore[index]
        self.bus.publish("job", "queued", {"id": job_id, "kind": kind})
        self._wake.set()
        return job_id

    async def get(self, job_id: int) -> dict[str, Any]:
        async with self.db.engine.connect() as conn:
            row = (await conn.execute(sa.select(tables.jobs).where(tables.jobs.c.id == job_id))
                   ).mappings().first()
        if row is None:
            raise NotFound(f"no job {job_id}")
        return self.present(self._overlay(row))

    def _overlay(self, row: Any) -> Any:
        ended = self._unwritten.get(row["id"])
        return row if ended is None else {**row, **ended}

    async def list(self, state: str | None, kind: str | None, limit: int,
                   cursor: str | None) -> dict[str, Any]:
        j = tables.jobs
        q = sa.select(j).order_by(j.c.id.desc()).limit(limit + 1)
        if state:
            q = q.where(j.c.state == state)
        if kind:
            q = q.where(j.c.kind == kind)
        if cursor:
            if not cursor.isdigit():
                raise InvalidParams("cursor: not a cursor from jobs.list",
                                    {"errors": {"cursor": "invalid"}})
            q = q.where(j.c.id < int(cursor))
        async with self.db.engine.connect() as conn:
            rows = (await conn.execute(q)).mappings().all()
        jobs = [self.present(self._overlay(r)) for r in rows[:limit]]
        next_cursor = str(rows[limit - 1]["id"]) if len(rows) > limit else None
        return {"jobs": jobs, "next_cursor": next_cursor}

    async def cancel(self, job_id: int) -> dict[str, Any]:
        job = await self.get(job_id)
        if job["state"] in TERMINAL:
            raise Conflict(f"job {job_id} already {job['state']}")
        if job_id in self.running:
            self._user_cancelled.add(job_id)
            self.running[job_id][1].cancel()
            await self.wait(job_id, CANCEL_WAIT)
        else:
            j = tables.jobs
            async with self.db.engine.begin() as conn:
                done = await conn.execute(j.update().where(
                    j.c.id == job_id, j.c.state == "queued").values(
                    state="cancelled", finished_at=utcnow(), error="cancelled"))
            if done.rowcount:
                self._finished(job_id, job["kind"], "cancelled", "cancelled", None)
            elif job["state"] == "running":
                raise Conflict(f"job {job_id} runs in another daemon ({job['owner']})")
        return await self.get(job_id)

    async def wait(self, job_id: int, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            job = await self.get(job_id)
            remaining = deadline - time.monotonic()
            if job["state"] in TERMINAL or remaining <= 0:
                return job
            event = self._done.setdefault(job_id, asyncio.Event())
            # Another daemon may run it: look at the row again at least every second.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), min(remaining, 1.0))

    def present(self, row: Any) -> dict[str, Any]:
        live = self.running.get(row["id"])
        ctx = live[0] if live else None
        processed = ctx.processed if ctx else row["processed"]
        total = ctx.total if ctx else row["total"]
        return {
            "id": row["id"], "kind": row["kind"], "state": row["state"],
            "params": row["params"], "processed": processed, "total": total,
            "bytes": ctx.bytes if ctx else row["bytes"],
            "errors": ctx.errors if ctx else row["errors"],
            "rate": round(ctx.rate(), 2) if ctx else None,
            "phase": ctx.phase if ctx else None,
            "eta": (round(e, 1) if ctx and (e := ctx.eta()) is not None else None),
            "attempts": row["attempts"], "max_attempts": row["max_attempts"],
            "error": row["error"], "result": row["result"], "owner": row["owner"],
            "created_at": iso(row["created_at"]), "started_at": iso(row["started_at"]),
            "finished_at": iso(row["finished_at"]),
            "not_before": iso(row["not_before"]),
        }

    async def apply(self, changes: dict[str, Any]) -> None:
        """More concurrency starts queued jobs at once; less lets running ones finish.
        A new attempt count is given to jobs submitted from now on."""
        if "jobs.concurrency" in changes:
            self.concurrency = int(changes["jobs.concurrency"])
            self._wake.set()
        if "jobs.max_attempts" in changes:
            self.max_attempts = int(changes["jobs.max_attempts"])

    # -- running -------------------------------------------------------------------------
    async def _run(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                started = False
                if len(self.running) < self.concurrency and not self._paused:
                    started = await self._claim_next()
                if started:
                    continue
                delay = await self._next_due_in()
            except Exception:
                log.exception("job queue could not read its table; retrying")
                delay = 2.0
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    async def _next_due_in(self) -> float:
        j = tables.jobs
        async with self.db.engine.connect() as conn:
            when = await conn.scalar(sa.select(sa.func.min(j.c.not_before)).where(
                j.c.state == "queued", j.c.not_before.is_not(None)))
        if when is None:
            return 30.0
        due_in: float = (when - utcnow()).total_seconds()
        return max(0.05, min(30.0, due_in))

    async def _claim_next(self) -> bool:
        j = tables.jobs
        now = utcnow()
        mine = self.affinities()
        allowed = sa.true() if mine is None else sa.or_(j.c.affinity.is_(None),
                                                         j.c.affinity.in_(sorted(mine)))
        async with self.db.engine.begin() as conn:
            candidates = (await conn.execute(
                sa.select(j.c.id).where(
                    j.c.state == "queued",
                    j.c.kind.in_(list(self.kinds)), allowed,
                    sa.or_(j.c.not_before.is_(None), j.c.not_before <= now))
                .order_by(j.c.priority.desc(), j.c.id).limit(5))).scalars().all()
            for job_id in candidates:
                claimed = await conn.execute(j.update().where(
                    j.c.id == job_id, j.c.state == "queued").values(
                    state="running", owner=self.owner, started_at=now, heartbeat_at=now,
                    attempts=j.c.attempts + 1, error=None))
                if claimed.rowcount:
                    row = (await conn.execute(sa.select(j).where(j.c.id == job_id))
                           ).mappings().one()
                    break
            else:
                return False
        ctx = JobContext(id=row["id"], kind=row["kind"], params=dict(row["params"] or {}),
                         attempt=row["attempts"], checkpoint=row["checkpoint"], queue=self,
                         processed=0, total=None)
        task = asyncio.get_running_loop().create_task(self._execute(ctx, row),
                                                      name=f"job-{ctx.id}")
        self.running[ctx.id] = (ctx, task)
        self.bus.publish("job", "started", {"id": ctx.id, "kind": ctx.kind,
                                            "attempt": ctx.attempt})
        log.info("job started", id=ctx.id, kind=ctx.kind, attempt=ctx.attempt)
        return True

    async def _execute(self, ctx: JobContext, row: Any) -> None:
        kind = self.kinds[ctx.kind]
        try:
            try:
                result = await kind.handler(ctx)
            except asyncio.CancelledError:
                if ctx.id in self._taken:
                    log.warning("job taken over by another daemon; stopped here", id=ctx.id,
                                kind=ctx.kind)
                    return
                if ctx.id in self._user_cancelled:
                    await self._end(ctx, "cancelled", "cancelled by request", None)
                elif not kind.requeue:
                    await asyncio.shield(self._end(
                        ctx, "failed", "interrupted: the daemon stopped while it ran",
                        {"reason": "interrupted", "phase": ctx.phase}))
                else:
                    raise _Requeue() from None
            except JobFailed as exc:
                await self._end(ctx, "failed", str(exc), exc.result)
            except Exception as exc:
                if failures.disk_full(exc):
                    # Not a bug and not worth a retry in 5 s: the job's own writes found
                    # no room (the catalog's disk, a cache). Said at once, with a reason a
                    # client can act on; the indexer resumes by itself when there is room.
                    log.warning("job failed: no space left", id=ctx.id, kind=ctx.kind,
                                error=str(exc).splitlines()[0][:200])
                    await self._end(ctx, "failed", f"no space left on {_full_where(exc)}; "
                                    "free some space and run it again",
                                    {"reason": "disk_full"})
                    return
                ref = uuid.uuid4().hex[:12]
                log.exception("job attempt failed", id=ctx.id, kind=ctx.kind, ref=ref)
                message, retriable = failure_reason(exc, ref)
                if retriable and kind.retry and ctx.attempt < row["max_attempts"]:
                    await self._retry(ctx, message)
                else:
                    dead = {"dead_letter": True} if kind.retry else None
                    await self._end(ctx, "failed", message, dead)
            else:
                await self._end(ctx, "succeeded", None, result)
        except _Requeue:
            await asyncio.shield(self._requeue(ctx))
        finally:
            self.running.pop(ctx.id, None)
            self._user_cancelled.discard(ctx.id)
            self._taken.discard(ctx.id)
            self._wake.set()

    def _progress_values(self, ctx: JobContext) -> dict[str, Any]:
        return {"processed": ctx.processed, "total": ctx.total, "bytes": ctx.bytes,
                "errors": ctx.errors}

    async def _end(self, ctx: JobContext, state: str, error: str | None,
                   result: dict[str, Any] | None) -> None:
        values = {"state": state, "error": error, "result": result, "finished_at": utcnow(),
                  "heartbeat_at": None, **self._progress_values(ctx)}
        try:
            await self._write_end(ctx.id, values)
        except Exception:
            # The catalog cannot take it now (its disk is full, its server gone): the end
            # still reaches every client (the event, jobs.get/wait) and is written later.
            log.exception("could not record how a job ended; it is kept until the catalog "
                          "takes it", id=ctx.id, state=state)
            self._unwritten[ctx.id] = values
        self.bus.flush_throttled(f"job:{ctx.id}")
        self._finished(ctx.id, ctx.kind, state, error, result)
        log.info("job finished", id=ctx.id, kind=ctx.kind, state=state, error=error,
                 processed=ctx.processed, seconds=round(time.monotonic() - ctx.started, 2))

    async def _write_end(self, job_id: int, values: dict[str, Any]) -> None:
        j = tables.jobs
        async with self.db.engine.begin() as conn:
            await conn.execute(j.update().where(j.c.id == job_id).values(**values))
        self._unwritten.pop(job_id, None)

    def _finished(self, job_id: int, kind: str, state: str, error: str | None,
                  result: dict[str, Any] | None) -> None:
        self.bus.publish("job", "finished", {"id": job_id, "kind": kind, "state": state,
                                             "error": error, "result": result})
        event = self._done.pop(job_id, None)
        if event is not None:
            event.set()

    async def _retry(self, ctx: JobContext, error: str) -> None:
        delay = backoff(ctx.attempt)
        j = tables.jobs
        async with self.db.engine.begin() as conn:
            await conn.execute(j.update().where(j.c.id == ctx.id).values(
                state="queued", error=error, owner=None, heartbeat_at=None,
                not_before=utcnow() + dt.timedelta(seconds=delay),
                checkpoint=ctx.checkpoint, **self._progress_values(ctx)))
        self.bus.publish("job", "retrying", {"id": ctx.id, "kind": ctx.kind,
                                             "attempt": ctx.attempt, "delay": delay,
                                             "error": error})
        log.warning("job will be retried", id=ctx.id, kind=ctx.kind, attempt=ctx.attempt,
                    delay=delay, error=error)

    async def _requeue(self, ctx: JobContext) -> None:
        j = tables.jobs
        async with self.db.engine.begin() as conn:
            await conn.execute(j.update().where(j.c.id == ctx.id).values(
                state="queued", owner=None, heartbeat_at=None, checkpoint=ctx.checkpoint,
                attempts=sa.case((j.c.attempts > 0, j.c.attempts - 1), else_=0),
                **self._progress_values(ctx)))
        log.info("job interrupted; it resumes at next start", id=ctx.id, kind=ctx.kind)

    def _publish_progress(self, ctx: JobContext) -> None:
        eta = ctx.eta()
        self.bus.publish_throttled(
            f"job:{ctx.id}", "job", "progress",
            {"id": ctx.id, "kind": ctx.kind, "phase": ctx.phase, "processed": ctx.processed,
             "total": ctx.total, "bytes": ctx.bytes, "errors": ctx.errors,
             "rate": round(ctx.rate(), 2),
             "eta": None if eta is None else round(eta, 1)})

    async def _beat(self) -> None:
        j = tables.jobs
        while True:
            await asyncio.sleep(HEARTBEAT)
            for job_id, values in list(self._unwritten.items()):
                with contextlib.suppress(Exception):
                    await self._write_end(job_id, values)
            if not self.running:
                continue
            try:
                lost = []
                async with self.db.engine.begin() as conn:
                    for ctx, _ in list(self.running.values()):
                        beat = await conn.execute(j.update().where(
                            j.c.id == ctx.id, j.c.owner == self.owner,
                            j.c.state == "running").values(
                            heartbeat_at=utcnow(), **self._progress_values(ctx)))
                        if beat.rowcount == 0:
                            lost.append(ctx.id)
                for job_id in lost:
                    entry = self.running.get(job_id)
                    if entry is not None:
                        self._taken.add(job_id)
                        entry[1].cancel()
            except sa.exc.DBAPIError as exc:
                # The database refused or timed out (a long write elsewhere holding SQLite's
                # lock past the busy timeout, a server restarting): the next beat tries again,
                # so this is a warning with the driver's words, not an error's traceback.
                log.warning("job heartbeat not written; next try in a beat",
                            error=str(exc.orig), every=HEARTBEAT)
            except Exception:
                log.exception("job heartbeat failed")
