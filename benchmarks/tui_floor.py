"""The floor under "start to first folder painted": the least a Textual client must do.

Started by ``tui_bench.py`` on the same pseudo-terminal as the real app: the interpreter
starts, imports Textual and lightbox's client, connects, asks the daemon for the first page
of the folder (``folders.list``, the grid's fields) and paints the names in a plain Textual
app. The time from spawn to that first frame is the baseline the TUI's start is compared
with; what the TUI adds on top is its own work (widgets, tree, grid, images).

Not meant to be run by hand.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from textual.app import App, ComposeResult
from textual.drivers.linux_driver import LinuxDriver
from textual.widgets import Static

from lightbox.common.client import Client

FIRST: list[float] = []
_write = LinuxDriver.write


def _timed_write(self: LinuxDriver, data: str) -> None:
    _write(self, data)
    if FloorApp.loaded and not FIRST:
        FIRST.append(time.time())
        FIRST.append(time.process_time())


LinuxDriver.write = _timed_write  # type: ignore[method-assign]


class FloorApp(App[None]):
    loaded = False

    def __init__(self, args: argparse.Namespace) -> None:
        super().__init__()
        self.args = args

    def compose(self) -> ComposeResult:
        yield Static("…", id="names")

    async def on_mount(self) -> None:
        client = Client(self.args.endpoint, timeout=20)
        page = await client.call("folders.list", {
            "path": self.args.folder, "limit": 200,
            "fields": ["id", "name", "taken_at", "width", "height", "sha256", "status"]})
        names = "  ".join(p["name"] for p in page["photos"])
        FloorApp.loaded = True
        self.query_one("#names", Static).update(names)
        self.set_timer(0.3, self._done)
        await client.close()

    def _done(self) -> None:
        Path(self.args.out).write_text(json.dumps(
            {"first_frame_s": FIRST[0] - self.args.t0 if FIRST else None,
             "cpu_s": FIRST[1] if FIRST else None}))
        self.exit()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--endpoint", required=True)
    p.add_argument("--folder", required=True)
    p.add_argument("--t0", type=float, required=True)
    p.add_argument("--out", required=True)
    FloorApp(p.parse_args()).run()


if __name__ == "__main__":
    main()
