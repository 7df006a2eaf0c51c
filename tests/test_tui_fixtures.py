"""Shared helpers of the TUI tests (imported by the ``test_tui_*`` modules).

The app runs in-process under Textual's pilot, against a real ``lightboxd`` in a subprocess
on a temporary data dir. The photo library is generated (deterministic pixels and EXIF) at a
fixed path with fixed file times, so snapshot tests see the same names, sizes, dates, paths
and thumbnails on every run. It is built once per test process and shared by the tests that
only look; tests that change the library or restart the daemon make their own.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import fcntl
import functools
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from lbtest import DaemonProcess, short_tmpdir
from textual.pilot import Pilot

from lightbox.common.client import Client
from lightbox.daemon.media import samples
from lightbox.tui.app import LightboxApp
from lightbox.tui.imaging.graphics import Graphics
from lightbox.tui.settings import Place, Settings

LIBRARY = Path("/tmp/lb-tui-library")  # fixed: paths appear in snapshots
_LOCKS: list[Any] = []


def hold_fixed_paths() -> None:
    """Take, for the rest of this test process, the lock on the fixed /tmp paths the TUI
    tests use: a second test run on the same machine (another checkout) would otherwise
    delete and rebuild the library under this run's daemon, which then (rightly) reports
    the root offline. The second run waits here instead."""
    if _LOCKS:
        return
    lock = open("/tmp/lb-tui.lock", "w")  # noqa: SIM115 - held until the process exits
    fcntl.flock(lock, fcntl.LOCK_EX)
    _LOCKS.append(lock)
FIXED_TIME = 1_700_000_000  # 2023-11-14T22:13:20Z, every file's mtime
SIZE = (120, 40)


def make_library(root: Path, count: int = 24) -> list[Path]:
    """A small dated library: 4 trips, a near duplicate, an exact copy in Unsorted."""
    shutil.rmtree(root, ignore_errors=True)
    paths = samples.make_demo_library(root, count, seed=7, megapixels=0.3, processes=1)
    for p in paths:
        os.utime(p, (FIXED_TIME, FIXED_TIME))
    return paths


def add_root(d: DaemonProcess, path: Path) -> dict[str, Any]:
    out = d.call("roots.add", {"path": str(path)})
    done: dict[str, Any] = d.call("jobs.wait", {"id": out["job"], "timeout": 120}, timeout=130)
    assert done["state"] == "succeeded", done
    return done


def quiet_config() -> dict[str, Any]:
    """No reconcile scans while tests look (they would add jobs and events)."""
    return {"library": {"reconcile_interval": 0}}


@functools.cache
def shared_library() -> DaemonProcess:
    """The read-only library and its daemon, once per test process."""
    hold_fixed_paths()
    make_library(LIBRARY / "photos")
    d = DaemonProcess(short_tmpdir("lbtui"), config=quiet_config())
    d.start()
    atexit.register(_cleanup, d)
    add_root(d, LIBRARY / "photos")
    wait_idle(d)
    # Near-duplicate counts are computed in the background on first use; have them ready so
    # the metadata panel never says "? near" in one run and "1 near" in the next.
    d.call("photos.duplicates", {"kind": "near"}, timeout=30)
    return d


def _cleanup(d: DaemonProcess) -> None:
    d.close()
    shutil.rmtree(d.data_dir, ignore_errors=True)
    shutil.rmtree(LIBRARY, ignore_errors=True)


def wait_idle(d: DaemonProcess, timeout: float = 60.0) -> None:
    """Until no job is queued or running (the startup scan, indexing)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = d.call("system.status")
        if not st["jobs"].get("running") and not st["jobs"].get("queued") \
                and not st["counts"].get("pending"):
            return
        time.sleep(0.2)
    raise AssertionError(f"daemon still busy after {timeout} s")


@pytest.fixture
def library() -> DaemonProcess:
    return shared_library()


def folder_path(*parts: str) -> str:
    return str(LIBRARY.joinpath("photos", *parts))


TRIP = ("2023", "2023-06-14 Lake trip")


def make_app(d: DaemonProcess, graphics: str = "halfcell", start: str | None = None,
             **settings: Any) -> LightboxApp:
    """The app against ``d`` with test settings (nothing saved) and a fast heartbeat."""
    s = Settings(**settings)
    place = Place(folder_path=start) if start else Place()
    return LightboxApp(lambda: Client(d.endpoint, timeout=5.0), graphics=Graphics(graphics),
                       settings=s, start=place, heartbeat=0.5)


async def until(pilot: Pilot[Any], check: Callable[[], Any], timeout: float = 10.0,
                what: Any = "") -> Any:
    """Poll ``check`` between frames until it returns something true."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(Exception):
            got = check()
            if got:
                return got
        if time.monotonic() > deadline:
            said = what() if callable(what) else what
            raise AssertionError(f"timed out waiting for {said or check}")
        await pilot.pause(0.05)


async def settled(pilot: Pilot[Any], timeout: float = 15.0) -> None:
    """Until the browser shows a complete folder and every visible image is drawn."""
    app = pilot.app
    assert isinstance(app, LightboxApp)

    def done() -> bool:
        screen: Any = app.screen
        seq = getattr(screen, "seq", None)
        if seq is not None and hasattr(screen, "grid") and not seq.complete:
            return False
        if app.link.state != "connected" or not app.images.idle:
            return False
        return not any(w.is_running for w in app.workers
                       if w.group in ("photos", "rows", "roots", "children", "meta", "dupes",
                                      "group", "jobs", "info", "start", "reveal"))

    await until(pilot, done, timeout, "the app to settle")
    await pilot.pause(0.2)
    await until(pilot, done, timeout, "the app to settle")


def grid_names(app: LightboxApp) -> list[str]:
    screen: Any = app.screen
    return [p["name"] for p in screen.seq.items]


@contextlib.contextmanager
def utc() -> Iterator[None]:
    """Local time is UTC (job times are shown in local time)."""
    old = os.environ.get("TZ")
    os.environ["TZ"] = "UTC"
    time.tzset()
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = old
        time.tzset()


def run(coro: Any) -> Any:
    return asyncio.run(coro)


async def acall(d: DaemonProcess, method: str, params: Any = None, timeout: float = 10.0) -> Any:
    """Call the daemon from inside an async test (``DaemonProcess.call`` has its own loop)."""
    async with Client(d.endpoint, timeout=timeout) as c:
        return await c.call(method, params)
