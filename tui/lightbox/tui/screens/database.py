"""Database: where the catalog is, testing another database and moving the catalog there.

The top shows ``database.status`` (engine, masked URL, revision, where the URL comes from,
the last switch). The URL field is a password field: the URL holds a secret, which the
daemon never shows again, so nothing here echoes it either. "Test connection"
(``database.test``) lists the checks and says why a database cannot hold the catalog;
"Switch" (``database.switch``) starts the job and follows it live through its ``database``
events (phase, switched, failed) and its ``job`` progress; the daemon keeps answering
meanwhile, and on a failure stays where it was, which the screen then says.

The settings screen's ``database.url`` row opens this screen with the URL typed there
(``DatabaseScreen(url)``): the field is prefilled and tested at once (a test changes
nothing), so ctrl+s is the only step left to move the catalog.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Group, RenderableType
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.css.query import NoMatches
from textual.widgets import Button, Footer, Input, Static

from lightbox.common import errors
from lightbox.tui.messages import DaemonEvent, Resync
from lightbox.tui.screens.base import LinkedScreen
from lightbox.tui.widgets.status_line import StatusLine

RPC_ERRORS = (errors.ClientError, errors.RpcError)
HERE = Path(__file__).parent
PHASES = ("test", "migrate", "copy", "verify", "sync", "freeze", "switch", "done")


def describe_status(st: dict[str, Any]) -> RenderableType:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", width=12)
    grid.add_column()
    origin = {"config": "bootstrap config (database.url)",
              "switched": "a completed switch (the state file)"}.get(
        str(st.get("origin")), str(st.get("origin") or "?"))
    grid.add_row("engine", str(st.get("engine") or "?"))
    grid.add_row("url", str(st.get("url") or "?"))
    grid.add_row("revision", f"{st.get('revision')} (head {st.get('head')})")
    grid.add_row("from", origin)
    last = (st.get("switch") or {}).get("last")
    if last:
        if last.get("ok"):
            text = (f"job {last.get('job')}: to {last.get('to')}, {last.get('rows', 0):,} rows, "
                    f"writes held {last.get('freeze_seconds')} s")
        else:
            text = (f"job {last.get('job')} failed in {last.get('phase')} "
                    f"({last.get('reason')}): {last.get('error')}")
        grid.add_row("last switch", text)
    return grid


def describe_test(r: dict[str, Any]) -> RenderableType:
    head = Text()
    if r.get("ok"):
        head.append("usable", style="bold green")
    else:
        head.append(f"not usable: {r.get('reason')}", style="bold red")
    head.append(f"  {r.get('engine') or ''} {r.get('server_version') or ''}")
    catalog = r.get("catalog") or {}
    if catalog.get("state"):
        head.append(f"  holds: {catalog['state']}")
    rows = Table.grid(padding=(0, 1))
    rows.add_column(width=2)
    rows.add_column(style="bold", width=22)
    rows.add_column()
    for check in r.get("checks") or []:
        ok = check.get("ok")
        mark = Text("✓", style="green") if ok else Text("✗", style="red")
        detail = str(check.get("detail") or "")
        if not ok and check.get("reason"):
            detail = f"{check['reason']}: {detail}"
        rows.add_row(mark, str(check.get("name")), detail)
    return Group(head, rows)


def describe_switch(job: int | None, phase: str | None, progress: dict[str, Any],
                    outcome: str | None = None, *, bar_width: int = 50) -> RenderableType:
    """A switch's phases (done green, current cyan), its row progress and its outcome."""
    steps = Text()
    current = PHASES.index(phase) if phase in PHASES else -1
    for i, name in enumerate(PHASES[:-1]):
        style = "green" if i < current or phase == "done" else (
            "bold cyan" if i == current else "dim")
        steps.append(f" {name} ", style=style)
    parts: list[RenderableType] = [Text(f"switch, job {job}", style="bold"), steps]
    total, done = progress.get("total"), progress.get("processed")
    if total and phase != "done":
        parts.append(ProgressBar(total=float(total), completed=float(min(done or 0, total)),
                                 width=bar_width))
        parts.append(Text(f"{done or 0:,} / {total:,} rows"))
    if outcome:
        parts.append(Text(outcome, style="green" if phase == "done" else "red"))
    return Group(*parts)


class DatabaseScreen(LinkedScreen):
    CSS_PATH = HERE / "database.tcss"  # absolute: subclasses live elsewhere
    BINDINGS = [
        Binding("ctrl+t", "test", "Test connection"),
        Binding("ctrl+s", "switch", "Switch"),
        Binding("escape", "close", "Back"),
    ]

    def __init__(self, url: str = "") -> None:
        super().__init__()
        self.prefill = url.strip()  # from the settings screen's database.url row
        self.job: int | None = None  # the switch this screen started or follows
        self.phase: str | None = None
        self.progress: dict[str, Any] = {}
        self.outcome: str | None = None
        self.shown: dict[str, RenderableType] = {}  # what each panel shows (for tests)

    def show(self, panel: str, what: RenderableType) -> None:
        self.shown[panel] = what
        try:
            self.query_one(panel, Static).update(what)
        except NoMatches:  # closed while a reply was on its way: nothing left to draw on
            pass

    def compose(self) -> ComposeResult:
        yield Static(" Database — where the catalog is", id="db-title")
        yield Static("", id="db-status")
        yield Input(placeholder="postgresql+asyncpg://USER:PASSWORD@HOST/DB", password=True,
                    id="db-url")
        with Horizontal(id="db-buttons"):
            yield Button("Test connection", id="db-test")
            yield Button("Switch", id="db-switch", variant="warning")
        yield Static("", id="db-test-result")
        yield Static("", id="db-progress")
        yield StatusLine()
        yield Footer()

    def on_mount(self) -> None:
        super().on_mount()
        self.load_status()
        field = self.query_one("#db-url", Input)
        field.focus()
        if self.prefill:
            field.value = self.prefill
            self.action_test()

    @property
    def url(self) -> str:
        return self.query_one("#db-url", Input).value.strip()

    @work(group="status", exclusive=True)
    async def load_status(self) -> None:
        try:
            st = await self.link.call("database.status")
        except RPC_ERRORS as exc:
            self.show("#db-status", f"cannot read the status: {exc}")
            return
        self.show("#db-status", describe_status(st))
        active = (st.get("switch") or {}).get("active")
        if active and self.job is None:  # a switch started elsewhere: follow it too
            self.job, self.phase = active.get("job"), active.get("phase")
            self._draw_progress()

    def on_input_submitted(self, _message: Input.Submitted) -> None:
        self.action_test()

    def on_button_pressed(self, message: Button.Pressed) -> None:
        if message.button.id == "db-test":
            self.action_test()
        elif message.button.id == "db-switch":
            self.action_switch()

    @work(group="act", exclusive=True)
    async def action_test(self) -> None:
        url = self.url
        if not url:
            self.say("type a database URL first", error=True)
            return
        self.show("#db-test-result", Text("testing…", style="dim"))
        try:
            r = await self.link.call("database.test", {"url": url}, timeout=60)
        except RPC_ERRORS as exc:
            self.show("#db-test-result", Text(f"cannot test: {exc}", style="red"))
            return
        self.show("#db-test-result", describe_test(r))
        self.say("the database can hold the catalog" if r.get("ok")
                 else f"not usable: {r.get('reason')}", error=not r.get("ok"))

    @work(group="act", exclusive=True)
    async def action_switch(self) -> None:
        url = self.url
        if not url:
            self.say("type a database URL first", error=True)
            return
        try:
            r = await self.link.call("database.switch", {"url": url})
        except RPC_ERRORS as exc:
            self.say(f"cannot start the switch: {exc}", error=True)
            return
        self.job, self.phase, self.progress, self.outcome = r["job"], "test", {}, None
        self._draw_progress()
        self.say(f"switch started (job {self.job}); the daemon keeps answering meanwhile")

    # -- live -----------------------------------------------------------------------------
    def on_daemon_event(self, message: DaemonEvent) -> None:
        data = message.data
        if self.job is None or data.get("job", data.get("id")) != self.job:
            return
        if message.topic == "job" and message.type == "progress":
            self.progress = data
        elif message.topic == "database" and message.type == "phase":
            self.phase = str(data.get("phase"))
            self.progress = {}
        elif message.topic == "database" and message.type == "switched":
            self.phase = "done"
            self.outcome = (f"switched to {data.get('url')} ({data.get('engine')}); writes "
                            f"waited {data.get('freeze_seconds')} s")
            self.say(self.outcome)
            self.load_status()
        elif message.topic == "database" and message.type == "failed":
            self.outcome = (f"failed in {data.get('phase')} ({data.get('reason')}): "
                            f"{data.get('error')}; the catalog stayed where it was")
            self.say(self.outcome, error=True)
            self.load_status()
        else:
            return
        self._draw_progress()

    def on_resync(self, _message: Resync) -> None:
        self.load_status()

    def _draw_progress(self) -> None:
        self.show("#db-progress", describe_switch(self.job, self.phase, self.progress,
                                                  self.outcome))

    def action_close(self) -> None:
        self.dismiss(None)
