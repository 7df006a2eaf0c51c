"""The first screen: the daemon's status and its live events."""

from __future__ import annotations

import asyncio
from typing import Any

from textual import work
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import Screen
from textual.widgets import Footer, Header, RichLog, Static

from lightbox.common import errors
from lightbox.common.client import Client


def _duration(seconds: float) -> str:
    s = int(seconds)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return f"{h}h {m:02d}m {s:02d}s" if h else f"{m}m {s:02d}s"


class StatusScreen(Screen[None]):
    CSS_PATH = "status.tcss"
    BINDINGS = [("r", "refresh", "Refresh")]

    def __init__(self, client: Client) -> None:
        super().__init__()
        self.client = client

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(id="body"):
            yield Static("connecting…", id="status")
            yield RichLog(id="events", highlight=False, markup=False, wrap=False)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#events", RichLog).border_title = "events"
        self.query_one("#status", Static).border_title = "daemon"
        self.poll_status()
        self.follow_events()

    def action_refresh(self) -> None:
        self.poll_status()

    @work(exclusive=True, group="status")
    async def poll_status(self) -> None:
        while True:
            try:
                st = await self.client.call("system.status", timeout=3.0)
                self.query_one("#status", Static).update(self._render_status(st))
            except (errors.ClientError, errors.RpcError) as exc:
                self.query_one("#status", Static).update(
                    f"[b red]not connected[/]: {exc}\nstart the daemon with `lightbox start`; "
                    "retrying…"
                )
            await asyncio.sleep(2.0)

    def _render_status(self, st: dict[str, Any]) -> str:
        db = st["database"]
        jobs = st.get("jobs", {})
        return (
            f"[b]lightboxd {st['version']}[/]  up {_duration(st['uptime'])}  pid {st['pid']}\n"
            f"catalog  {db['engine']}  {db['url']}  schema {db['revision']}\n"
            f"jobs     {jobs.get('running', 0)} running, {jobs.get('queued', 0)} queued, "
            f"{jobs.get('failed', 0)} failed"
        )

    @work(exclusive=True, group="events")
    async def follow_events(self) -> None:
        log = self.query_one("#events", RichLog)
        while True:
            try:
                sub = await self.client.subscribe()
            except (errors.ClientError, errors.RpcError):
                await asyncio.sleep(1.0)
                continue
            try:
                async for ev in sub:
                    data = " ".join(f"{k}={v}" for k, v in (ev.get("data") or {}).items())
                    log.write(f"{ev['seq']:>6} {ev['time'][11:19]} {ev['topic']}.{ev['type']} "
                              f"{data}")
            finally:
                sub.close()
