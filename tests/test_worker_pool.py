"""WorkerPool: real spawned processes that time out, crash, run out of memory and recover."""

from __future__ import annotations

import asyncio
import itertools
import multiprocessing
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import media_fixtures as mf
import pytest

from lightbox.daemon.media import DEFAULT_SPECS, AnalyzeRequest, samples
from lightbox.daemon.media.confine import LocalFile
from lightbox.daemon.workers import (
    PRIORITY_INTERACTIVE,
    PoolClosed,
    WorkerCrashed,
    WorkerPool,
    WorkerTimeout,
    analyze_in_pool,
)


def _alive(pid: int) -> bool:
    """True while the process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def _settled(pool: WorkerPool, alive: int, timeout: float = 10.0) -> dict[str, object]:
    """Wait until ``alive`` workers are ready again (a replacement takes a spawn)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = pool.status()
        if st["alive"] == alive and st["starting"] == 0:
            return st
        await asyncio.sleep(0.02)
    raise AssertionError(f"pool did not recover: {pool.status()}")


@pytest.fixture
async def pool() -> AsyncIterator[WorkerPool]:
    p = WorkerPool(2, task_timeout=2.0, memory_limit=1 << 30)
    await p.start()
    try:
        yield p
    finally:
        await p.stop()


async def test_runs_functions_in_niced_workers_that_ignore_sigint(pool: WorkerPool) -> None:
    assert await pool.submit(mf.echo, {"a": [1, 2]}) == {"a": [1, 2]}
    st = pool.status()
    assert st["processes"] == 2 and st["alive"] == 2 and st["busy"] == 0
    pids = set(st["pids"])  # type: ignore[call-overload]
    assert len(pids) == 2 and os.getpid() not in pids
    worker_pid = await pool.submit(mf.getpid)
    assert worker_pid in pids
    assert await pool.submit(mf.worker_nice) >= os.nice(0) + 10
    assert await pool.submit(mf.sigint_ignored) is True
    assert isinstance(st["spawn_ms"], float) and st["spawn_ms"] > 0


async def test_exceptions_propagate_with_their_type(pool: WorkerPool) -> None:
    with pytest.raises(mf.CustomError, match="boom"):
        await pool.submit(mf.raise_custom, "boom")
    with pytest.raises(ValueError, match="invalid literal"):
        await pool.submit(int, "x")
    with pytest.raises(RuntimeError, match="UnpicklableError: needs two arguments"):
        await pool.submit(mf.raise_unpicklable)
    assert pool.status()["failed"] == 3
    assert pool.status()["replaced"] == 0       # exceptions do not cost a worker
    with pytest.raises(TypeError, match="not picklable"):
        await pool.submit(mf.echo, lambda: None)   # unpicklable argument: caller's error


async def test_timeout_kills_and_replaces_the_worker(pool: WorkerPool) -> None:
    pids = set(pool.status()["pids"])  # type: ignore[call-overload]
    started = time.monotonic()
    with pytest.raises(WorkerTimeout, match=r"timed out after 2 s"):
        await pool.submit(mf.sleep_forever)
    assert 1.9 <= time.monotonic() - started < 4
    st = await _settled(pool, 2)
    assert st["timeouts"] == 1 and st["replaced"] == 1
    new_pids = set(st["pids"])  # type: ignore[call-overload]
    killed = pids - new_pids
    assert len(killed) == 1 and not _alive(killed.pop())
    assert await pool.submit(mf.echo, 5) == 5


@pytest.mark.parametrize(("fn", "message"), [
    ((mf.exit_with, 3), r"worker process exited with code 3 while running exit_with"),
    ((mf.kill_self,), r"was killed by SIGKILL"),
    ((mf.segfault,), r"was killed by SIGSEGV"),
])
async def test_crashed_worker_is_replaced(pool: WorkerPool, fn: tuple[object, ...],
                                          message: str) -> None:
    with pytest.raises(WorkerCrashed, match=message):
        await pool.submit(*fn)  # type: ignore[arg-type]
    st = await _settled(pool, 2)
    assert st["crashes"] == 1 and st["replaced"] == 1
    assert all(_alive(pid) for pid in st["pids"])  # type: ignore[attr-defined]
    assert await pool.submit(mf.echo, "still here") == "still here"


async def test_a_crash_does_not_disturb_other_tasks(pool: WorkerPool) -> None:
    slow = asyncio.ensure_future(pool.submit(mf.slow_echo, "survivor", 1.0))
    await asyncio.sleep(0.2)
    with pytest.raises(WorkerCrashed):
        await pool.submit(mf.kill_self)
    assert await slow == "survivor"


async def test_memory_limit_turns_a_huge_allocation_into_memoryerror(pool: WorkerPool) -> None:
    # 4 GB is well within this machine's RAM: only RLIMIT_AS (1 GiB here) can refuse it.
    with pytest.raises(MemoryError):
        await pool.submit(mf.allocate, 4 << 30)
    assert await pool.submit(mf.allocate, 50 << 20) == 50 << 20
    st = pool.status()
    assert st["alive"] == 2 and st["crashes"] == 0


async def test_submits_beyond_the_process_count_queue_and_all_complete(
        pool: WorkerPool) -> None:
    busiest = 0

    async def watch() -> None:
        nonlocal busiest
        while True:
            st = pool.status()
            busiest = max(busiest, st["busy"])  # type: ignore[call-overload]
            await asyncio.sleep(0.01)

    watcher = asyncio.ensure_future(watch())
    started = time.monotonic()
    results = await asyncio.gather(*(pool.submit(mf.slow_echo, i, 0.2) for i in range(10)))
    elapsed = time.monotonic() - started
    watcher.cancel()
    assert results == list(range(10))
    assert busiest == 2
    assert elapsed >= 5 * 0.2 * 0.95       # two at a time, never ten
    assert pool.status()["queued"] == 0


async def test_fifo_with_interactive_priority_first() -> None:
    p = WorkerPool(1, task_timeout=10)
    await p.start()
    try:
        order: list[str] = []

        async def run(name: str, priority: int = 0) -> None:
            await p.submit(mf.echo, name, priority=priority)
            order.append(name)

        blocker = asyncio.ensure_future(p.submit(mf.slow_echo, "blocker", 0.3))
        await asyncio.sleep(0.05)
        tasks = [asyncio.ensure_future(run(n)) for n in ("bulk1", "bulk2", "bulk3")]
        await asyncio.sleep(0.01)
        tasks.append(asyncio.ensure_future(run("thumbnail", PRIORITY_INTERACTIVE)))
        await asyncio.gather(blocker, *tasks)
        assert order == ["thumbnail", "bulk1", "bulk2", "bulk3"]
    finally:
        await p.stop()


async def test_cancelled_queued_task_never_runs(tmp_path: Path) -> None:
    p = WorkerPool(1, task_timeout=10)
    await p.start()
    try:
        blocker = asyncio.ensure_future(p.submit(mf.slow_echo, None, 0.3))
        await asyncio.sleep(0.05)
        marker = tmp_path / "ran"
        queued = asyncio.ensure_future(p.submit(Path.touch, marker))
        await asyncio.sleep(0.02)
        queued.cancel()
        await blocker
        assert await p.submit(mf.echo, 1) == 1
        assert not marker.exists()
    finally:
        await p.stop()


async def test_workers_are_recycled_after_max_tasks_without_an_empty_slot() -> None:
    """After ``max_tasks_per_child`` tasks a worker's replacement starts, and the old one
    goes on taking tasks until it is ready: with quick tasks back to back, it runs more than
    its share meanwhile (before, the slot stood empty for each recycle's 0.2-1 s start), and
    there are never more than one worker plus one starting."""
    p = WorkerPool(1, task_timeout=10, max_tasks_per_child=3)
    await p.start()
    try:
        pids: list[int] = []
        most = 0
        while len(set(pids)) < 3 and len(pids) < 20_000:
            pids.append(await p.submit(mf.getpid))
            st = p.status()
            most = max(most, int(st["alive"]) + int(st["starting"])  # type: ignore[call-overload]
                       - int(st["retiring"]))  # type: ignore[call-overload]
        assert len(set(pids)) == 3, len(pids)
        first = pids.index(pids[-1])
        runs = [len(list(g)) for _, g in itertools.groupby(pids[:first])]
        assert len(runs) == 2 and all(n > 3 for n in runs), runs
        assert most <= 2, most
        st = await _settled(p, 1)
        assert st["recycled"] >= 2 and st["crashes"] == 0 and st["alive"] == 1
        assert not _alive(pids[0])
    finally:
        await p.stop()


async def test_a_worker_being_recycled_that_dies_leaves_its_successor_in_place() -> None:
    """The old worker killed while its successor starts: no third process; the successor
    takes over, and the pool goes on at its size."""
    p = WorkerPool(2, task_timeout=10, max_tasks_per_child=1)
    await p.start()
    try:
        pid = await p.submit(mf.getpid)  # its worker is being recycled now
        os.kill(pid, signal.SIGKILL)
        st = await _settled(p, 2)
        assert int(st["alive"]) == 2 and int(st["starting"]) == 0  # type: ignore[call-overload]
        for _ in range(20):
            await p.submit(mf.getpid)
        st = await _settled(p, 2)
        assert len(st["pids"]) == 2, st  # type: ignore[arg-type]
    finally:
        await p.stop()


async def test_stop_is_bounded_and_leaves_no_children() -> None:
    p = WorkerPool(2, task_timeout=60)
    await p.start()
    pids = list(p.status()["pids"])  # type: ignore[call-overload]
    running = [asyncio.ensure_future(p.submit(mf.sleep_forever)) for _ in range(3)]
    await asyncio.sleep(0.3)
    started = time.monotonic()
    await p.stop()
    assert time.monotonic() - started < 2.5
    for task in running:
        with pytest.raises(PoolClosed):
            await task
    assert not any(_alive(pid) for pid in pids)
    assert not [c for c in multiprocessing.active_children() if c.pid in pids]
    with pytest.raises(PoolClosed):
        await p.submit(mf.echo, 1)


async def test_event_loop_stays_responsive_while_workers_are_busy(pool: WorkerPool) -> None:
    # Work on the loop would show up as stalls of a whole task (1.5 s); scheduler noise from
    # whatever else runs on the machine stays in milliseconds.
    burners = [asyncio.ensure_future(pool.submit(mf.burn_cpu, 1.5)) for _ in range(4)]
    lags: list[float] = []
    end = time.monotonic() + 2.0
    while time.monotonic() < end:
        t = time.perf_counter()
        await asyncio.sleep(0.005)
        lags.append(time.perf_counter() - t - 0.005)
    await asyncio.gather(*burners)
    assert pool.status()["completed"] == 4
    lags.sort()
    p90, worst = lags[int(len(lags) * 0.9)], lags[-1]
    assert p90 < 0.02 and worst < 0.25, f"p90 {p90 * 1000:.1f} ms, worst {worst * 1000:.0f} ms"


async def test_spawn_start_up_cost_is_measured(pool: WorkerPool) -> None:
    started = time.monotonic()
    with pytest.raises(WorkerCrashed):
        await pool.submit(mf.exit_with, 1)
    st = await _settled(pool, 2)
    replacement = time.monotonic() - started
    assert isinstance(st["spawn_ms"], float)
    assert replacement < 5.0, replacement
    print(f"\nworker spawn: {st['spawn_ms']} ms to ready; crash->replaced in "
          f"{replacement * 1000:.0f} ms")


# -- analyze_in_pool ---------------------------------------------------------------------------

async def test_analyze_in_pool_returns_the_analysis(pool: WorkerPool, tmp_path: Path) -> None:
    _, files = mf.fixture_set()
    a = await analyze_in_pool(pool, AnalyzeRequest(str(files["dated"]), str(tmp_path),
                                                   DEFAULT_SPECS))
    assert a.ok and a.taken_at == "2021-07-04T18:30:15" and set(a.thumbs) == {"grid",
                                                                             "preview"}


async def test_analyze_in_pool_turns_timeouts_and_crashes_into_errors(tmp_path: Path) -> None:
    big = tmp_path / "big.png"
    samples.make_photo(4000, 3000, 3).save(big, "PNG", compress_level=1)
    st = big.stat()
    # The catalog's fingerprint travels with the locator; a failed analysis keeps it.
    loc = LocalFile(str(tmp_path), "big.png", st.st_size, st.st_mtime_ns, st.st_ino)
    req = AnalyzeRequest(loc, str(tmp_path / "thumbs"), DEFAULT_SPECS)
    p = WorkerPool(1, task_timeout=0.05)
    await p.start()
    try:
        a = await analyze_in_pool(p, req)
        assert not a.ok and a.error_kind == "timeout"
        assert a.error == "analysis timed out after 0.05 s; the file may be hostile or huge"
        assert (a.size, a.mtime_ns, a.inode) == (st.st_size, st.st_mtime_ns, st.st_ino)
    finally:
        await p.stop()

    p = WorkerPool(1, task_timeout=30)
    await p.start()
    try:
        pid = p.status()["pids"][0]  # type: ignore[index]
        pending = asyncio.ensure_future(analyze_in_pool(p, req))
        await asyncio.sleep(0.1)
        os.kill(pid, signal.SIGKILL)         # what the OOM killer would do
        a = await pending
        assert not a.ok and a.error_kind == "crash"
        assert a.error is not None and "SIGKILL" in a.error
        assert (await analyze_in_pool(p, req)).ok
    finally:
        await p.stop()


_UNGUARDED_MAIN = """
import asyncio
from lightbox.daemon.workers import WorkerPool

asyncio.run(WorkerPool(1).start())   # no __main__ guard: each spawned worker re-runs this
"""


def test_workers_that_cannot_start_break_the_pool_instead_of_looping(tmp_path: Path) -> None:
    import subprocess
    import sys

    script = tmp_path / "unguarded.py"
    script.write_text(_UNGUARDED_MAIN)
    started = time.monotonic()
    out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                         timeout=120, check=False)
    assert out.returncode == 1
    last = out.stderr.strip().splitlines()[-1]
    assert last == ("RuntimeError: worker processes cannot start: worker died at start-up "
                    "(exited with code 1)"), out.stderr[-3000:]
    assert time.monotonic() - started < 30


async def test_what_a_worker_writes_to_stderr_becomes_a_debug_record(
        pool: WorkerPool, capfd: pytest.CaptureFixture[str],
        caplog: pytest.LogCaptureFixture) -> None:
    """C libraries write warnings to fd 2 (libtiff: one line per unknown tag): they must
    not land raw in the daemon's log, but as records of it (debug) naming the task."""
    import logging

    caplog.set_level(logging.DEBUG, logger="lightbox")
    line = "TIFFReadDirectory: Warning, Unknown field with tag 50341 (0xc4a5) encountered."

    def got() -> list[str]:
        records = [r for r in caplog.records if r.getMessage() == "worker stderr"]
        return [ln for r in records for ln in getattr(r, "fields", {}).get("lines", [])]

    for i in range(3):
        assert await pool.submit(mf.write_stderr, line + "\n") > 0
        # Carried by the reply of the call that wrote them (not left for a later reply,
        # maybe another worker's, when the capture's thread had not run yet).
        assert got().count(line) == i + 1, got()
    err = capfd.readouterr().err
    assert "TIFFReadDirectory" not in err


async def test_a_pool_that_does_not_wait_for_its_workers_queues_tasks_until_one_is_ready(
        ) -> None:
    """``wait_ready=False`` (the daemon's pool): start returns once the processes are
    spawned, before any has reported ready, and what is submitted meanwhile waits in the
    queue and runs when a worker comes up."""
    p = WorkerPool(2, task_timeout=60.0, memory_limit=1 << 30, wait_ready=False)
    await p.start()
    try:
        st = p.status()
        assert st["alive"] == 0 and st["starting"] == 2, st
        results = await asyncio.wait_for(
            asyncio.gather(*(p.submit(mf.echo, i) for i in range(5))), 120)
        assert results == list(range(5))
        await _settled(p, 2, timeout=120)
    finally:
        await p.stop()


def test_pid_alive_judges_odd_pids_as_no_process() -> None:
    """Leftovers are named for their owner's pid; a damaged or hand-made name must not crash
    the cleanup that reads it (a pid too large for the kernel raised OverflowError)."""
    import os

    from lightbox.daemon.procs import pid_alive

    assert pid_alive(os.getpid())
    assert pid_alive(1)               # not ours to signal, or ours: alive either way
    assert not pid_alive(10**30)
    assert not pid_alive(0) and not pid_alive(-5)
