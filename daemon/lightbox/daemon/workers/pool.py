"""A process pool for CPU work on untrusted files that survives the files.

concurrent.futures.ProcessPoolExecutor declares the whole pool broken when one worker dies,
and cannot time a task out; a photo library meets decoder segfaults, decompression bombs and
files that make a parser spin. Here each worker is a 'spawn'ed process (the daemon has
threads — aiosqlite, zmq IO — so never plain fork) with one duplex pipe, watched by the event
loop through ``add_reader``: no thread per task, and the loop never blocks on a worker.

- A task that overruns ``task_timeout`` gets its worker SIGKILLed and replaced; the caller
  gets WorkerTimeout. A worker that dies (segfault, ``os._exit``, the OOM killer) is replaced;
  its caller gets WorkerCrashed naming the signal or exit code. Other tasks are unaffected.
- Workers run niced, ignore SIGINT (the daemon owns Ctrl-C and stops them) and have RLIMIT_AS
  set, so a hostile file raises MemoryError in the worker (returned as the task's exception)
  instead of swapping the machine.
- Tasks queue FIFO within a priority (higher first): an on-demand thumbnail for the TUI
  overtakes bulk indexing. Concurrency is bounded by the number of processes.
- Workers are recycled after ``max_tasks_per_child`` tasks (decoder leaks, fragmentation).
  The replacement is started then, and the old worker goes on taking tasks until it is
  ready: a worker's interpreter and imports take 0.2-1 s, which with small photos (3-4 ms
  each) was a sixth of a first index when a slot stood empty for each recycle.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import multiprocessing
import os
import pickle
import select
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from lightbox.common import logs
from lightbox.daemon.media.analyze import Analysis, AnalyzeRequest, analyze

log = logs.get("workers")

PRIORITY_BACKGROUND = -10   # previews made after indexing: any indexing overtakes them
PRIORITY_BULK = 0
PRIORITY_INTERACTIVE = 10

_START_TIMEOUT = 60.0         # seconds for all workers to report ready in start()
_MAX_START_FAILURES = 5       # consecutive workers dying before ready -> pool is broken
_STOP_GRACE = 1.0             # seconds between SIGTERM and SIGKILL in stop()


class WorkerTimeout(Exception):
    """The task ran longer than the pool's task_timeout; its worker was killed."""


class WorkerCrashed(Exception):
    """The worker process died while running the task (signal or exit code in the message)."""


class PoolClosed(RuntimeError):
    """The pool was stopped (or never started) before the task could finish."""


# -- worker side -------------------------------------------------------------------------------

def _limit_memory(limit: int) -> None:
    import resource

    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _portable(exc: BaseException) -> BaseException:
    """``exc`` if it survives pickling, else a RuntimeError carrying its type and text."""
    with contextlib.suppress(Exception):
        exc.add_note(f"(raised in worker process {os.getpid()})\n{traceback.format_exc()}")
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")


STDERR_KEEP = 50  # lines of a worker's stderr kept per task; the rest are counted


class _StderrCapture:
    """The worker's fd 2 as a pipe: C libraries (libtiff: "TIFFReadDirectory: Warning,
    Unknown field with tag …", about 200 lines for the corpus) write there directly, past
    Python's warnings. The lines go to the pool with each reply and become debug records of
    the daemon's log instead of raw text in it. ``take`` drains the pipe itself, so a reply
    carries every line its call wrote (a reader thread that had not yet run would leave them
    for a later reply, maybe of another task); a thread drains it meanwhile too, so a file
    that makes a decoder write megabytes never blocks the worker."""

    def __init__(self) -> None:
        read, write = os.pipe()
        os.dup2(write, 2)
        os.close(write)
        os.set_blocking(read, False)
        self._fd = read
        self._lock = threading.Lock()
        self._lines: list[str] = []
        self._partial = b""
        self._dropped = 0
        threading.Thread(target=self._pump, daemon=True, name="stderr").start()

    def _pump(self) -> None:
        while True:
            select.select([self._fd], [], [])
            with self._lock:
                if not self._drain():
                    return

    def _drain(self) -> bool:
        """Read what the pipe holds (the lock held); False at its end."""
        while True:
            try:
                data = os.read(self._fd, 65536)
            except BlockingIOError:
                return True
            except OSError:
                return False
            if not data:
                return False
            *complete, self._partial = (self._partial + data).split(b"\n")
            for raw in complete:
                self._keep(raw)
            if len(self._partial) > 4096:      # a "line" without an end: kept in pieces
                self._keep(self._partial)
                self._partial = b""

    def _keep(self, raw: bytes) -> None:
        line = raw.decode("utf-8", "replace").rstrip()
        if not line:
            return
        if len(self._lines) < STDERR_KEEP:
            self._lines.append(line)
        else:
            self._dropped += 1

    def take(self) -> tuple[list[str], int]:
        """What was written since the last call (the C side has flushed: it is unbuffered)."""
        with self._lock:
            self._drain()
            if self._partial:
                self._keep(self._partial)
                self._partial = b""
            lines, dropped = self._lines, self._dropped
            self._lines, self._dropped = [], 0
        return lines, dropped


def _worker_main(conn: Connection, nice: int, memory_limit: int | None) -> None:
    """The loop of one worker process: receive (id, pickled call), reply (id, ok, value),
    after a ("stderr", lines, dropped) message when the call wrote to stderr."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    capture = _StderrCapture()
    if nice:
        with contextlib.suppress(OSError):
            os.nice(nice)
    if memory_limit:
        _limit_memory(memory_limit)
    conn.send(("ready", os.getpid()))
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            return
        if msg is None:
            return
        task_id, payload = msg
        try:
            fn, args = pickle.loads(payload)
            reply: tuple[int, bool, Any] = (task_id, True, fn(*args))
        except BaseException as exc:      # everything goes back to the caller
            reply = (task_id, False, _portable(exc))
        try:
            sys.stderr.flush()
            lines, dropped = capture.take()
            if lines or dropped:
                conn.send(("stderr", lines, dropped))
            conn.send(reply)
        except (BrokenPipeError, EOFError):
            return
        except Exception as exc:      # the result itself cannot be pickled
            conn.send((task_id, False, RuntimeError(f"task result cannot be sent back: {exc}")))
        del reply


# -- pool side ---------------------------------------------------------------------------------

@dataclass(eq=False)
class _Task:
    id: int
    payload: bytes
    future: asyncio.Future[Any]
    priority: int
    seq: int
    name: str
    started: float = 0.0


@dataclass(eq=False)
class _Worker:
    id: int
    process: BaseProcess
    conn: Connection
    spawned: float
    ready: bool = False
    pid: int | None = None
    task: _Task | None = None
    timer: asyncio.TimerHandle | None = None
    done: int = 0
    gone: bool = False          # pipe closed or killed; no longer dispatchable
    retiring: bool = False
    watching: bool = False
    successor: _Worker | None = None    # recycling: started, takes over once ready
    replaces: _Worker | None = None     # the worker this one was started to replace
    history: list[str] = field(default_factory=list)


class WorkerPool:
    """``await pool.submit(fn, *args)`` runs ``fn(*args)`` in a worker process."""

    name = "workers"
    settings_keys = ("workers.processes", "workers.task_timeout", "workers.memory_mb")

    def __init__(self, processes: int, *, task_timeout: float = 60.0,
                 memory_limit: int | None = 2 << 30, max_tasks_per_child: int = 500,
                 nice: int = 10, wait_ready: bool = True) -> None:
        if processes < 1:
            raise ValueError("processes must be >= 1")
        self.processes = processes
        self.task_timeout = task_timeout
        self.memory_limit = memory_limit
        self.max_tasks_per_child = max_tasks_per_child
        self.nice = nice
        # False (the daemon): start() returns once the processes are spawned and tasks
        # wait in the queue until a worker is ready; the daemon answers requests a second
        # sooner at start (a worker's interpreter and imports take 0.3-1 s to come up).
        self.wait_ready = wait_ready
        self._ctx = multiprocessing.get_context("spawn")
        self._workers: list[_Worker] = []
        self._queue: list[tuple[int, int, _Task]] = []
        self._ids = itertools.count(1)
        self._seq = itertools.count()
        self._background: set[asyncio.Task[None]] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = False
        self._closing = False
        self._broken: str | None = None
        self._start_failures = 0
        self.completed = self.failed = self.replaced = self.recycled = 0
        self.timeouts = self.crashes = 0
        self.spawn_ms: float | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Spawn the workers and (unless ``wait_ready`` is False) wait until every one has
        reported ready (~0.1-0.4 s on a quiet machine, a second under load)."""
        if self._started:
            return
        self._loop = asyncio.get_running_loop()
        self._closing = False
        self._broken = None
        self._start_failures = 0
        self._started = True
        for _ in range(self.processes):
            self._spawn()
        if not self.wait_ready:
            self._background_task(self._until_ready(background=True))
            return
        await self._until_ready()

    async def _until_ready(self, background: bool = False) -> None:
        """Wait until every worker has reported ready; stop and raise if they cannot. In the
        background (``wait_ready=False``) a failure is logged instead: tasks fail with its
        cause (the broken pool fails its queue) while the catalog is still served."""
        deadline = time.monotonic() + _START_TIMEOUT
        while sum(1 for w in self._workers if w.ready and not w.gone) < self.processes:
            broken = self.broken
            why = f"worker processes cannot start: {broken}" if broken else \
                "worker processes did not start in time" \
                if time.monotonic() > deadline else None
            if why is not None:
                if background:
                    log.error("workers unavailable", reason=why)
                    return
                await self.stop()
                raise RuntimeError(why)
            await asyncio.sleep(0.01)
        log.info("started", processes=self.processes, spawn_ms=self.spawn_ms,
                 memory_limit=self.memory_limit, task_timeout=self.task_timeout)

    async def stop(self) -> None:
        """Fail queued and running tasks with PoolClosed; SIGTERM, then SIGKILL; ~2 s at most."""
        self._closing = True
        self._started = False
        closed = PoolClosed("worker pool stopped")
        while self._queue:
            _, _, task = heapq.heappop(self._queue)
            _settle(task.future, exc=closed)
        for task_ in list(self._background):
            task_.cancel()
        workers, self._workers = self._workers, []
        for w in workers:
            self._unwatch(w)
            if w.task is not None:
                _settle(w.task.future, exc=closed)
                w.task = None
            if w.process.exitcode is None:
                if w.ready and not w.gone:
                    with contextlib.suppress(OSError, ValueError):
                        w.conn.send(None)
                else:
                    with contextlib.suppress(Exception):
                        w.process.terminate()
        await asyncio.gather(*(self._reap(w, _STOP_GRACE, term_first=True) for w in workers),
                             return_exceptions=True)
        if self._background:
            await asyncio.gather(*self._background, return_exceptions=True)
        log.info("stopped", completed=self.completed, replaced=self.replaced)

    async def apply(self, changes: dict[str, Any]) -> None:
        """New settings: the pool grows or shrinks to the new count at once (idle workers
        leave first, busy ones after their task); a new timeout applies to tasks started
        from now on, a new memory limit to workers started from now on."""
        if "workers.task_timeout" in changes:
            self.task_timeout = float(changes["workers.task_timeout"])
        if "workers.memory_mb" in changes:
            mb = int(changes["workers.memory_mb"])
            self.memory_limit = mb << 20 if mb else None
        if "workers.processes" in changes:
            self.resize(int(changes["workers.processes"]) or os.cpu_count() or 2)

    def resize(self, processes: int) -> None:
        if processes < 1:
            raise ValueError("processes must be >= 1")
        self.processes = processes
        if not self._started or self._closing:
            return
        # A worker being recycled is counted once: as its successor, which takes over.
        staying = [w for w in self._workers
                   if not w.gone and not w.retiring and w.successor is None]
        for _ in range(processes - len(staying)):
            self._spawn()
        extra = len(staying) - processes
        if extra > 0:
            # Idle ones first, the newest (still starting) before the ready ones.
            staying.sort(key=lambda w: (w.task is not None, w.ready, -w.id))
            for w in staying[:extra]:
                w.retiring = True
                if w.replaces is not None:   # a successor let go: its predecessor stays
                    w.replaces.successor, w.replaces = None, None
                if w.task is None:
                    self._retire(w)
        log.info("resized", processes=processes)

    def _retire(self, w: _Worker) -> None:
        with contextlib.suppress(OSError, ValueError):
            w.conn.send(None)
        self._background_task(self._reap(w, 5.0))

    @property
    def closing(self) -> bool:
        return self._closing

    @property
    def broken(self) -> str | None:
        """Why workers cannot start (they died before ready several times in a row)."""
        return self._broken

    def status(self) -> dict[str, Any]:
        alive = [w for w in self._workers if not w.gone]
        return {
            "processes": self.processes,
            "alive": sum(1 for w in alive if w.ready),
            "starting": sum(1 for w in alive if not w.ready),
            "retiring": sum(1 for w in alive if w.retiring),  # finishing, then exiting
            "busy": sum(1 for w in alive if w.task is not None),
            "queued": len(self._queue),
            "completed": self.completed,
            "failed": self.failed,
            "replaced": self.replaced,
            "recycled": self.recycled,
            "timeouts": self.timeouts,
            "crashes": self.crashes,
            "spawn_ms": self.spawn_ms,
            "pids": [w.pid for w in alive if w.pid],
            **({"broken": self._broken} if self._broken else {}),
        }

    # -- submitting --------------------------------------------------------------------------

    async def submit(self, fn: Callable[..., Any], *args: Any, priority: int = PRIORITY_BULK
                     ) -> Any:
        """Run ``fn(*args)`` in a worker; its exception, if any, is re-raised here.

        ``fn`` must be a module-level function. Cancelling the caller drops a queued task;
        a running one finishes in its worker and its result is discarded.
        """
        if not self._started or self._closing:
            raise PoolClosed("worker pool is not running")
        if self._broken:
            raise WorkerCrashed(f"worker processes cannot start: {self._broken}")
        try:
            payload = pickle.dumps((fn, args), protocol=pickle.HIGHEST_PROTOCOL)
        except (pickle.PicklingError, AttributeError, TypeError) as exc:
            # The caller's mistake, said the same way on every Python: 3.11 raises
            # PicklingError for a local function, 3.13 AttributeError, others TypeError.
            raise TypeError(f"cannot send {getattr(fn, '__qualname__', fn)!r} to a worker: "
                            f"not picklable ({exc})") from exc
        assert self._loop is not None
        task = _Task(next(self._ids), payload, self._loop.create_future(), priority,
                     next(self._seq), getattr(fn, "__qualname__", repr(fn)))
        heapq.heappush(self._queue, (-priority, task.seq, task))
        self._dispatch()
        return await task.future

    def _dispatch(self) -> None:
        if self._closing:
            return
        idle = [w for w in self._workers
                if w.ready and not w.gone and not w.retiring and w.task is None]
        while self._queue and idle:
            _, _, task = heapq.heappop(self._queue)
            if task.future.done():      # cancelled while queued
                continue
            w = idle.pop(0)
            try:
                w.conn.send((task.id, task.payload))
            except (OSError, ValueError):
                heapq.heappush(self._queue, (-task.priority, task.seq, task))
                self._lost(w)
                continue
            w.task = task
            task.started = time.monotonic()
            assert self._loop is not None
            w.timer = self._loop.call_later(self.task_timeout, self._on_timeout, w, task)

    # -- worker processes --------------------------------------------------------------------

    def _spawn(self) -> _Worker:
        parent, child = self._ctx.Pipe(duplex=True)
        process = self._ctx.Process(target=_worker_main, args=(child, self.nice,
                                                               self.memory_limit),
                                    name=f"lightbox-worker-{len(self._workers)}", daemon=True)
        t = time.perf_counter()
        process.start()
        child.close()        # so the parent sees EOF when the worker dies
        w = _Worker(next(self._ids), process, parent, t, pid=process.pid)
        self._workers.append(w)
        assert self._loop is not None
        self._loop.add_reader(parent.fileno(), self._on_readable, w)
        w.watching = True
        return w

    def _unwatch(self, w: _Worker) -> None:
        if w.watching and self._loop is not None:
            with contextlib.suppress(Exception):
                self._loop.remove_reader(w.conn.fileno())
        w.watching = False
        if w.timer is not None:
            w.timer.cancel()
            w.timer = None

    def _on_readable(self, w: _Worker) -> None:
        try:
            while not w.gone and w.conn.poll():
                self._handle(w, w.conn.recv())
        except (EOFError, OSError):
            self._lost(w)
        except Exception:
            log.exception("unreadable message from worker", pid=w.pid)
            self._lost(w)

    def _handle(self, w: _Worker, msg: Any) -> None:
        if isinstance(msg, tuple) and msg and msg[0] == "ready":
            w.ready, w.pid = True, msg[1]
            self._start_failures = 0
            self.spawn_ms = round((time.perf_counter() - w.spawned) * 1000, 1)
            old, w.replaces = w.replaces, None
            if old is not None and not old.gone and not old.retiring:
                old.retiring = True
                if old.task is None:
                    self._retire(old)   # else after its task (``_handle`` of the result)
            self._dispatch()
            return
        if isinstance(msg, tuple) and len(msg) == 3 and msg[0] == "stderr":
            task = w.task
            log.debug("worker stderr", pid=w.pid, task=task.name if task else None,
                      lines=msg[1], more=msg[2] or None)
            return
        task_id, ok, value = msg
        task = w.task
        if task is None or task.id != task_id:
            return
        if w.timer is not None:
            w.timer.cancel()
            w.timer = None
        w.task = None
        w.done += 1
        self.completed += 1
        if ok:
            _settle(task.future, result=value)
        else:
            self.failed += 1
            _settle(task.future, exc=value if isinstance(value, BaseException)
                    else RuntimeError(str(value)))
        if w.retiring and not self._closing:  # the pool shrank while it was busy
            self._retire(w)
        elif (w.done >= self.max_tasks_per_child and w.successor is None
              and not self._closing):
            # The replacement starts now; this worker goes on until it is ready (``_handle``
            # of its "ready" retires this one), so the slot never stands empty.
            self.recycled += 1
            w.successor = self._spawn()
            w.successor.replaces = w
        self._dispatch()

    def _lost(self, w: _Worker) -> None:
        """The worker's pipe closed: it exited, or died."""
        if w.gone:
            return
        w.gone = True
        self._unwatch(w)
        if w.retiring or self._closing:
            return
        self._background_task(self._bury(w))

    def _on_timeout(self, w: _Worker, task: _Task) -> None:
        if w.task is not task or w.gone:
            return
        w.gone = True
        w.timer = None
        self._unwatch(w)
        with contextlib.suppress(Exception):
            w.process.kill()
        w.task = None
        self.timeouts += 1
        self.failed += 1
        log.warning("task timed out; worker killed", task=task.name, pid=w.pid,
                    seconds=self.task_timeout)
        _settle(task.future, exc=WorkerTimeout(f"timed out after {self.task_timeout:g} s"))
        self._background_task(self._bury(w, replace_only=True))

    async def _bury(self, w: _Worker, replace_only: bool = False) -> None:
        """Reap a dead worker, fail its task with the cause, start a replacement."""
        code = await self._reap(w, 2.0)
        if not replace_only:
            if not w.ready:
                self._start_failures += 1
                if self._start_failures >= _MAX_START_FAILURES:
                    self._broken = f"worker died at start-up ({_describe_exit(code)})"
                    self._fail_queue(WorkerCrashed(self._broken))
            task, w.task = w.task, None
            if task is not None:
                self.crashes += 1
                self.failed += 1
                log.warning("worker died", task=task.name, pid=w.pid, exit=_describe_exit(code))
                _settle(task.future, exc=WorkerCrashed(
                    f"worker process {_describe_exit(code)} while running {task.name}"))
            elif w.ready:
                log.warning("idle worker died", pid=w.pid, exit=_describe_exit(code))
        if w in self._workers:
            self._workers.remove(w)
        if self._closing or self._broken:
            return
        heir, w.successor = w.successor, None
        if heir is not None and not heir.gone:
            heir.replaces = None    # being recycled: its successor takes the place already
            self.replaced += 1
            return
        if self._start_failures:
            await asyncio.sleep(min(5.0, 0.1 * 2 ** self._start_failures))
            if self.closing:
                return
        self.replaced += 1
        new = self._spawn()
        before = w.replaces   # a successor that died starting: the next one is its heir
        if before is not None and not before.gone and not before.retiring:
            before.successor, new.replaces = new, before

    async def _reap(self, w: _Worker, grace: float, term_first: bool = False) -> int | None:
        """Wait for the process to exit (SIGTERM/SIGKILL after ``grace``); its exit code."""
        self._unwatch(w)
        proc = w.process
        deadline = time.monotonic() + grace
        killed = False
        while True:
            try:
                code = proc.exitcode
            except ValueError:      # already closed
                return None
            if code is not None:
                break
            if time.monotonic() > deadline:
                if term_first and not killed:
                    with contextlib.suppress(Exception):
                        proc.terminate()
                    term_first = False
                    deadline = time.monotonic() + 0.5
                    continue
                if killed:
                    if time.monotonic() > deadline + 2.0:
                        log.error("worker will not die", pid=w.pid)
                        return None
                else:
                    with contextlib.suppress(Exception):
                        proc.kill()
                    killed = True
            await asyncio.sleep(0.01)
        with contextlib.suppress(Exception):
            w.conn.close()
        with contextlib.suppress(Exception):
            proc.close()
        if w in self._workers and (w.retiring or self._closing):
            self._workers.remove(w)
        return code

    def _fail_queue(self, exc: BaseException) -> None:
        while self._queue:
            _, _, task = heapq.heappop(self._queue)
            _settle(task.future, exc=exc)

    def _background_task(self, coro: Any) -> None:
        assert self._loop is not None
        task = self._loop.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)


def _settle(future: asyncio.Future[Any], result: Any = None,
            exc: BaseException | None = None) -> None:
    if future.done():
        return
    if exc is not None:
        future.set_exception(exc)
    else:
        future.set_result(result)


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "exit status unknown"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = f"signal {-code}"
        hint = " (out of memory? the kernel's OOM killer sends SIGKILL)" \
            if -code == signal.SIGKILL else ""
        return f"was killed by {name}{hint}"
    return f"exited with code {code}"


async def analyze_in_pool(pool: WorkerPool, req: AnalyzeRequest,
                          priority: int = PRIORITY_BULK) -> Analysis:
    """``analyze(req)`` in the pool; a timeout or crash becomes a failed Analysis.

    PoolClosed still propagates: the daemon is stopping and the file was not analysed.
    """
    try:
        result: Analysis = await pool.submit(analyze, req, priority=priority)
        return result
    except WorkerTimeout as exc:
        failed = Analysis(path=req.locator.path, error_kind="timeout",
                          error=f"analysis {exc}; the file may be hostile or huge")
    except WorkerCrashed as exc:
        failed = Analysis(path=req.locator.path, error_kind="crash",
                          error=f"the decoder crashed: {exc}")
    # The fingerprint it was sent with (the loop never stats a photo: that is the workers').
    loc = req.locator
    failed.size, failed.mtime_ns = loc.size or 0, loc.mtime_ns or 0
    failed.inode = getattr(loc, "inode", None) or 0
    return failed
