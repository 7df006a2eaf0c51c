# ruff: noqa: ASYNC110 - polling the app's state between frames is the point here
"""The TUI under measurement: the real app, on a real terminal (a pty), instrumented.

Started by ``tui_bench.py`` on a pseudo-terminal of 120x40 cells (8x17 px), so Textual runs
its real Linux driver: frames are rendered to escape sequences and written, Sixel strings
included. Every write is timestamped (``LinuxDriver.write``); a scripted run then presses
keys through Textual's own key path and measures, for each, the time from the key to the
first frame written after the change it causes. Results go to a JSON file.

Not meant to be run by hand (its output is a full-screen app on the terminal it is given).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import gc
import json
import resource
import time
from pathlib import Path
from typing import Any

T_IMPORT = time.time()

from lightbox.tui.main import hold_collections

hold_collections()  # as ``lightbox.tui.main.run_app`` does before it imports the app

from textual import events
from textual.drivers.linux_driver import LinuxDriver
from textual.pilot import Pilot

from lightbox.common.client import Client
from lightbox.tui.app import LightboxApp
from lightbox.tui.imaging.graphics import Graphics
from lightbox.tui.link import Link
from lightbox.tui.screens.browser import BrowserScreen
from lightbox.tui.settings import Place, Settings

WRITES: list[tuple[float, int]] = []
MARKS: dict[str, float] = {}
_write = LinuxDriver.write


def _timed_write(self: LinuxDriver, data: str) -> None:
    _write(self, data)
    _mark(f"frame written ({len(data)} chars)")
    now = time.perf_counter()
    WRITES.append((now, len(data)))
    for hook in list(HOOKS):
        try:
            hook(now)
        except Exception:  # no screen yet, or gone: not a paint we are waiting for
            pass


HOOKS: list[Any] = []
# The start as it happened: (seconds since spawn, what), for the calls to the daemon and the
# screens' mounts, so a slow start shows which step waited for which.
TIMELINE: list[tuple[float, str]] = []


def _mark(what: str) -> None:
    if "folder" not in MARKS:
        TIMELINE.append((time.time(), what))


def _timed_call(original: Any) -> Any:
    async def call(self: Any, method: str, params: Any = None, **kwargs: Any) -> Any:
        brief = {k: v for k, v in (params or {}).items() if k in ("path", "folder", "photos")}
        _mark(f"> {method} {brief}")
        try:
            return await original(self, method, params, **kwargs)
        finally:
            _mark(f"< {method} {brief}")
    return call
GC_PAUSES: list[float] = []
_gc_start = [0.0]


def _gc_timer(phase: str, info: dict[str, Any]) -> None:
    if phase == "start":
        _gc_start[0] = time.perf_counter()
    elif info.get("generation") == 2:
        GC_PAUSES.append(1000 * (time.perf_counter() - _gc_start[0]))


gc.callbacks.append(_gc_timer)
LinuxDriver.write = _timed_write  # type: ignore[method-assign]


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


async def painted_after(t: float, timeout: float = 5.0) -> float:
    """The time of the first frame written at or after ``t`` (writes are in time order)."""
    deadline = time.perf_counter() + timeout
    while time.perf_counter() < deadline:
        i = bisect.bisect_left(WRITES, (t, -1))
        if i < len(WRITES):
            return WRITES[i][0]
        await asyncio.sleep(0.001)
    raise TimeoutError("no frame was written")


def stamp_calls(obj: Any, name: str, stamps: list[float],
                when: Any = lambda *a, **k: True) -> None:
    """Record the time right after each call of ``obj.name`` (for which ``when`` holds)."""
    original = getattr(obj, name)

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        if when(*args, **kwargs):
            stamps.append(time.perf_counter())
        return result

    setattr(obj, name, wrapper)


Link.call = _timed_call(Link.call)  # type: ignore[method-assign]
_browser_mount = BrowserScreen.on_mount


def _mounted(self: BrowserScreen) -> None:
    _mark("browser mounted")
    _browser_mount(self)


BrowserScreen.on_mount = _mounted  # type: ignore[method-assign]
_show_seq = BrowserScreen._show_seq


def _shown(self: BrowserScreen, *args: Any) -> None:
    _mark("first page to the views")
    _show_seq(self, *args)
    _mark("views updated")


BrowserScreen._show_seq = _shown  # type: ignore[method-assign]


class ProbeApp(LightboxApp):
    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__(lambda: Client(args.endpoint, timeout=20),
                         graphics=Graphics(args.graphics, 8, 17),
                         settings=Settings(), start=Place(folder_path=args.folder))
        self.args = args
        self.results: dict[str, Any] = {"graphics": args.graphics}
        HOOKS.append(self._first_paint)

    def _first_paint(self, now: float) -> None:
        screen = self.screen
        if not isinstance(screen, BrowserScreen) or screen.seq is None:
            return
        cells = [c for c in screen.grid._cells if c.index is not None]
        if cells and "folder" not in MARKS:
            MARKS["folder"] = time.time()
            MARKS["folder_cpu"] = time.process_time()
        if cells and "images" not in MARKS and all(c.view.encoded is not None for c in cells):
            MARKS["images"] = time.time()

    def on_mount(self) -> None:
        _mark("app mounted")
        self.run_worker(self.script(), name="probe")

    async def settle(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen: Any = self.screen
            seq = getattr(screen, "seq", None)
            if (self.images.idle and self.link.connected
                    and (seq is None or seq.complete)
                    and not any(w.is_running for w in self.workers if w.group == "photos")):
                await asyncio.sleep(0.05)
                if self.images.idle:
                    return
            await asyncio.sleep(0.02)
        raise TimeoutError("the app did not settle")

    phase = "start"

    async def sample_rss(self) -> None:
        """The highest RSS seen in each phase of the script (where the peak comes from)."""
        peaks: dict[str, float] = self.results.setdefault("rss_peak_by_phase_mb", {})
        while True:
            now = rss_mb()
            peaks[self.phase] = max(peaks.get(self.phase, 0.0), round(now, 1))
            await asyncio.sleep(0.05)

    async def script(self) -> None:
        pilot: Pilot[Any] = Pilot(self)
        r = self.results
        sampler = asyncio.get_running_loop().create_task(self.sample_rss())
        try:
            while ("folder" if self.args.start_only else "images") not in MARKS:
                await asyncio.sleep(0.01)
            r["start_to_folder_s"] = MARKS["folder"] - self.args.t0
            r["cpu_to_folder_s"] = MARKS["folder_cpu"]
            r["import_s"] = T_IMPORT - self.args.t0
            r["timeline"] = [(round(t - self.args.t0, 3), what) for t, what in TIMELINE]
            if self.args.start_only:
                raise StopAsyncIteration
            r["start_to_images_s"] = MARKS["images"] - self.args.t0
            await self.settle()
            browser = self.screen
            assert isinstance(browser, BrowserScreen)
            r["folder_photos"] = len(browser.seq or [])
            if self.args.profile:
                import cProfile

                prof = cProfile.Profile()
                prof.enable()
            if self.args.preview_only:  # working on the preview: only its back-to-back run
                stats = self.images.stats
                cpu0, enc0 = time.process_time(), stats["preview_encode_cpu_seconds"]
                n0 = stats["previews_encoded"]
                r["preview_back_to_back_ms"] = await self.preview(pilot, browser, 400,
                                                                  paced=False)
                n = max(1, stats["previews_encoded"] - n0)
                r["process_cpu_per_photo_ms"] = 1000 * (time.process_time() - cpu0) / n
                r["encode_cpu_ms"] = 1000 * (stats["preview_encode_cpu_seconds"] - enc0) / n
                r["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
                raise StopAsyncIteration
            self.phase = "grid"
            r["grid_next_row_ms"] = await self.grid_rows(pilot, browser)
            if self.args.profile:
                prof.disable()
                prof.dump_stats(self.args.profile)
            r["rss_after_grid_mb"] = rss_mb()
            self.phase = "whole folder"
            await self.scroll_all(pilot, browser)
            r["rss_after_whole_folder_mb"] = rss_mb()
            r["encoded_cache_mb"] = self.images.encoded.used / 1e6
            self.phase = "preview paced"
            r["preview_paced_ms"] = await self.preview(pilot, browser, 100, paced=True)
            self.phase = "preview back to back"
            r["preview_back_to_back_ms"] = await self.preview(pilot, browser, 400, paced=False)
            r["rss_end_mb"] = rss_mb()
            r["maxrss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            r["gc_full_ms"] = GC_PAUSES
            from collections import Counter

            r["gc_objects"] = len(gc.get_objects())
            r["gc_types"] = Counter(type(o).__name__ for o in gc.get_objects()).most_common(12)
            r["encode_mean_ms"] = (1000 * self.images.stats["encode_seconds"]
                                   / max(1, self.images.stats["encoded"]))
            r["encode_cpu_ms"] = (1000 * self.images.stats["preview_encode_cpu_seconds"]
                                  / max(1, self.images.stats["previews_encoded"]))
        except StopAsyncIteration:
            pass
        except Exception as exc:  # report, do not hang the pty
            r["error"] = repr(exc)
        finally:
            sampler.cancel()
        Path(self.args.out).write_text(json.dumps(r))  # noqa: ASYNC240 - once, at the end
        self.exit(0)

    async def grid_rows(self, pilot: Pilot[Any], browser: BrowserScreen) -> list[float]:
        changed: list[float] = []
        stamp_calls(browser.grid, "_cursor_changed", changed)
        out = []
        for _ in range(self.args.moves):
            before = browser.grid.cursor
            t0 = time.perf_counter()
            await pilot.press("j")
            if browser.grid.cursor == before:
                await pilot.press("g")  # the end: start again from the top
                continue
            painted = await painted_after(changed[-1])
            out.append(1000 * (painted - t0))
            self.results.setdefault("grid_key_to_change_ms", []).append(
                1000 * (changed[-1] - t0))
            await asyncio.sleep(0.03)  # a fast key repeat, not a flood
        return out

    async def scroll_all(self, pilot: Pilot[Any], browser: BrowserScreen) -> None:
        grid = browser.grid
        while grid.cursor < len(browser.seq or []) - 1:
            await pilot.press("pagedown")
            await self.settle()

    def press_now(self, key: str) -> None:
        """A key as the terminal would send it, without Pilot's waiting for idle."""
        assert self._driver is not None
        self._driver.send_message(events.Key(key, key))

    async def preview(self, pilot: Pilot[Any], browser: BrowserScreen, start: int,
                      paced: bool) -> list[float]:
        """Open the preview at ``start`` (photos not seen in it before) and step through."""
        from lightbox.tui.screens.preview import PreviewScreen  # as the app: when opened

        browser.grid.move_cursor(start)
        await self.settle()
        await pilot.press("enter")
        screen: Any = None
        while not isinstance(screen, PreviewScreen):
            await asyncio.sleep(0.01)
            screen = self.screen
        await self.settle()
        shown: list[float] = []
        stamp_calls(screen.picture, "show", shown, lambda enc, *a, **k: enc is not None)
        out = []
        for _ in range(self.args.previews):
            if paced:
                await asyncio.sleep(0.6)  # looking at the photo: prefetch has time
            before = len(shown)
            index = screen.index
            t0 = time.perf_counter()
            self.press_now("l")
            while screen.index == index:
                await asyncio.sleep(0.0005)
            while screen.seq.get(screen.index) is None:  # its row is on its way
                await asyncio.sleep(0.001)
            want = screen.seq[screen.index]["id"]
            while not (len(shown) > before and screen.key is not None
                       and screen.key.photo_id == want
                       and screen.picture.encoded is not None):
                await asyncio.sleep(0.001)
            out.append(1000 * (await painted_after(shown[-1]) - t0))
        await pilot.press("escape")
        await asyncio.sleep(0.2)
        return out


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--endpoint", required=True)
    p.add_argument("--folder", required=True)
    p.add_argument("--graphics", default="sixel")
    p.add_argument("--t0", type=float, required=True)
    p.add_argument("--moves", type=int, default=200)
    p.add_argument("--previews", type=int, default=40)
    p.add_argument("--out", required=True)
    p.add_argument("--profile", help="write a cProfile of the grid moves here")
    p.add_argument("--preview-only", action="store_true",
                   help="only the preview's back-to-back run (to work on the encoder)")
    p.add_argument("--start-only", action="store_true",
                   help="exit once the first folder is painted (to profile the start)")
    args = p.parse_args()
    ProbeApp(args).run()


if __name__ == "__main__":
    main()
