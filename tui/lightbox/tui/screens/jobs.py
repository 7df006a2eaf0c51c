"""Jobs: every job with a live progress bar, rate, ETA and errors; rescan and cancel.

The list comes from ``jobs.list``; after that, ``job`` events move it: progress events carry
the numbers (processed, total, rate, eta) and are applied directly, state changes fetch the
one job again. Rows draw their bar with Rich's progress bar renderable, so a hundred jobs are
a hundred small widgets, not five hundred.
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
from textual.containers import VerticalScroll
from textual.widget import Widget
from textual.widgets import Footer, Static

from lightbox.common import errors
from lightbox.tui import format as fmt
from lightbox.tui.messages import DaemonEvent, Resync, StatusChanged
from lightbox.tui.removal import removed
from lightbox.tui.screens.base import LinkedScreen
from lightbox.tui.widgets.status_line import StatusLine

RPC_ERRORS = (errors.ClientError, errors.RpcError)
STATE_STYLE = {"queued": "yellow", "running": "bold cyan", "succeeded": "green",
               "failed": "bold red", "cancelled": "dim"}
ACTIVE = ("queued", "running")


def describe_params(job: dict[str, Any]) -> str:
    params = job.get("params") or {}
    if not isinstance(params, dict):
        return ""
    return " ".join(f"{k}={v}" for k, v in params.items() if v not in (None, False))


def summary(job: dict[str, Any]) -> str:
    """A line about how it went (for finished jobs) or what it is doing."""
    if job.get("error"):
        return f"error: {job['error']}"
    result = job.get("result")
    if isinstance(result, dict) and job.get("kind") == "sync":
        return ", ".join(f"{int(result.get(k) or 0):,} {k}" for k in
                         ("listed", "new", "changed", "missing", "removed", "processed"))
    if isinstance(result, dict) and job.get("kind") == "scan":
        roots = result.get("roots") or {}
        totals: dict[str, int] = {}
        for r in roots.values():
            if isinstance(r, dict):
                for k in ("files", "new", "changed", "moved", "missing", "removed"):
                    totals[k] = totals.get(k, 0) + int(r.get(k) or 0)
        if totals:
            return ", ".join(f"{v:,} {k}" for k, v in totals.items() if v or k == "files")
    if isinstance(result, dict):
        return ", ".join(f"{k}: {v}" for k, v in list(result.items())[:6]
                         if not isinstance(v, (dict, list)))
    return describe_params(job)


HERE = Path(__file__).parent


class JobRow(Widget, can_focus=False):
    DEFAULT_CSS = """
    JobRow {
        height: 3;
        padding: 0 1;
        border-left: outer $surface;
    }
    JobRow.-selected {
        background: $boost;
        border-left: outer $accent;
    }
    """

    def __init__(self, job: dict[str, Any]) -> None:
        super().__init__()
        self.job = job

    def update_job(self, changes: dict[str, Any]) -> None:
        self.job = {**self.job, **changes}
        self.refresh()

    def render(self) -> RenderableType:
        job = self.job
        state = str(job.get("state") or "?")
        total = job.get("total") or 0
        processed = job.get("processed") or 0
        head = Table.grid(padding=(0, 1), expand=True)
        head.add_column(width=6, justify="right")
        head.add_column(width=10)
        head.add_column(width=10)
        head.add_column(ratio=1)
        head.add_column(width=34, justify="right")
        title = Text(f"#{job.get('id')}", style="bold")
        if total:
            bar: RenderableType = ProgressBar(
                total=float(total), completed=float(min(processed, total)),
                pulse=False, complete_style="green" if state == "succeeded" else "cyan",
                finished_style="green" if state == "succeeded" else "red")
            count = f"{processed:,}/{total:,}"
        elif state == "running":
            bar = ProgressBar(total=None, pulse=True)
            count = f"{processed:,}"
        else:
            bar = Text("")
            count = f"{processed:,}" if processed else ""
        if state == "running":
            extra = f"{fmt.rate(job.get('rate'))}  ETA {fmt.duration(job.get('eta'))}"
        else:
            extra = fmt.duration(fmt.between(job.get("started_at"), job.get("finished_at")))
        errs = int(job.get("errors") or 0)
        stats = Text(f"{count}  {extra}")
        if errs:
            stats.append(f"  {errs:,} errors", style="bold red")
        head.add_row(title, Text(str(job.get("kind") or "?")), Text(state,
                     style=STATE_STYLE.get(state, "")), bar, stats)
        when = fmt.utc_local(job.get("started_at") or job.get("created_at"))
        line2 = Text(f"        {when}  ", style="dim", no_wrap=True, overflow="ellipsis")
        text = summary(job)
        line2.append(text, style="red" if job.get("error") else "dim")
        attempts = int(job.get("attempts") or 0)
        if attempts > 1:
            line2.append(f"  (attempt {attempts}/{job.get('max_attempts')})", style="yellow")
        return Group(head, line2)


class IndexingRow(Widget, can_focus=False):
    """The indexer at work, whoever queued its photos (a scan job, or the watcher, which
    has no job): photos left, a bar over this burst of work, the rate. Hidden when idle."""

    DEFAULT_CSS = """
    IndexingRow {
        height: 1;
        padding: 0 1;
        display: none;
    }
    IndexingRow.-active {
        display: block;
    }
    """

    def __init__(self) -> None:
        super().__init__(id="jobs-indexing")
        self.pending = 0
        self.rate: float | None = None
        self._start_done: int | None = None  # indexed+failed when this burst began
        self.done = 0

    def update_indexing(self, data: dict[str, Any] | None) -> None:
        data = data or {}
        self.pending = int(data.get("pending") or 0)
        done = int(data.get("indexed") or 0) + int(data.get("failed") or 0)
        if self.pending == 0:
            if self._start_done is not None:
                self.done = done - self._start_done  # the burst's last figure stays
            self._start_done = None
        else:
            if self._start_done is None:
                self._start_done = done
            self.done = done - self._start_done
        rate = data.get("rate")
        self.rate = float(rate) if isinstance(rate, (int, float)) else None
        self.set_class(self.pending > 0, "-active")
        self.refresh()

    def render(self) -> RenderableType:
        grid = Table.grid(padding=(0, 1), expand=True)
        grid.add_column(width=17)
        grid.add_column(ratio=1)
        grid.add_column(width=34, justify="right")
        total = self.done + self.pending
        bar = ProgressBar(total=float(max(total, 1)), completed=float(self.done), pulse=False)
        eta = self.pending / self.rate if self.rate else None
        grid.add_row(Text(f"indexing {self.pending:,} …", style="bold cyan"), bar,
                     Text(f"{self.done:,}/{total:,}  {fmt.rate(self.rate)}  "
                          f"ETA {fmt.duration(eta)}"))
        return grid


class JobsScreen(LinkedScreen):
    CSS_PATH = HERE / "jobs.tcss"  # absolute: subclasses live elsewhere
    BINDINGS = [
        Binding("j,down", "select(1)", "Down", show=False),
        Binding("k,up", "select(-1)", "Up", show=False),
        Binding("g,home", "select_end(0)", "First", show=False),
        Binding("G,end", "select_end(-1)", "Last", show=False),
        Binding("r", "rescan(False)", "Rescan folder"),
        Binding("R", "rescan(True)", "Rescan all"),
        Binding("c,x,delete", "cancel", "Cancel job"),
        Binding("escape,q", "close", "Back"),
    ]

    def __init__(self, folder: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.folder = folder
        self.rows: dict[int, JobRow] = {}
        self.selected = 0

    def compose(self) -> ComposeResult:
        yield Static(" Jobs", id="jobs-title")
        yield IndexingRow()
        yield VerticalScroll(id="jobs-list")
        yield Static("", id="jobs-empty")
        yield StatusLine()
        yield Footer()

    def on_mount(self) -> None:
        where = self.folder.get("path") if self.folder else None
        self.query_one("#jobs-title", Static).update(
            f" Jobs   r rescans {where or 'the current folder'}, R every root, "
            "c cancels the selected job")
        self.load_jobs()
        self.query_one(IndexingRow).update_indexing(self.link.status.get("indexing"))

    def on_status_changed(self, message: StatusChanged) -> None:
        # (LinkedScreen's handler updates the status line: Textual calls both)
        self.query_one(IndexingRow).update_indexing(message.status.get("indexing"))

    @work(group="jobs", exclusive=True)
    async def load_jobs(self) -> None:
        try:
            page = await self.link.call("jobs.list", {"limit": 100})
        except RPC_ERRORS as exc:
            self._note(f"Cannot list jobs: {exc}")
            return
        box = self.query_one("#jobs-list", VerticalScroll)
        await removed(box.remove_children())
        self.rows = {}
        rows = [JobRow(job) for job in page.get("jobs") or []]
        for row in rows:
            self.rows[int(row.job["id"])] = row
        await box.mount_all(rows)
        self._note("" if rows else "No jobs yet. r rescans the current folder.")
        self._select(min(self.selected, max(0, len(rows) - 1)))

    def _note(self, text: str) -> None:
        note = self.query_one("#jobs-empty", Static)
        note.update(text)
        note.display = bool(text)

    def _ordered(self) -> list[JobRow]:
        return list(self.query_one("#jobs-list", VerticalScroll).query(JobRow))

    def _select(self, index: int) -> None:
        rows = self._ordered()
        if not rows:
            return
        self.selected = max(0, min(len(rows) - 1, index))
        for i, row in enumerate(rows):
            row.set_class(i == self.selected, "-selected")
        rows[self.selected].scroll_visible(animate=False)

    def action_select(self, step: int) -> None:
        self._select(self.selected + step)

    def action_select_end(self, where: int) -> None:
        self._select(0 if where == 0 else len(self._ordered()) - 1)

    # -- live -----------------------------------------------------------------------------
    def on_daemon_event(self, message: DaemonEvent) -> None:
        if message.topic != "job":
            return
        data = message.data
        jid = int(data.get("id") or 0)
        row = self.rows.get(jid)
        if message.type == "progress" and row is not None:
            row.update_job({k: data[k] for k in ("processed", "total", "bytes", "errors",
                                                 "rate", "eta") if k in data}
                           | {"state": "running"})
        else:
            self.refresh_job(jid)

    def on_resync(self, message: Resync) -> None:
        self.load_jobs()

    @work(group="job")
    async def refresh_job(self, jid: int) -> None:
        try:
            job = await self.link.call("jobs.get", {"id": jid})
        except RPC_ERRORS:
            return
        row = self.rows.get(jid)
        if row is not None:
            row.update_job(job)
            return
        row = JobRow(job)
        self.rows[jid] = row
        box = self.query_one("#jobs-list", VerticalScroll)
        first = next(iter(box.query(JobRow)), None)
        await box.mount(row, before=first) if first is not None else await box.mount(row)
        self._note("")
        self._select(self.selected + (1 if first is not None and self.selected else 0))

    # -- actions --------------------------------------------------------------------------
    @work(group="act")
    async def action_rescan(self, everything: bool) -> None:
        params: dict[str, Any] = {}
        if not everything:
            if not self.folder or not self.folder.get("path"):
                self.say("no folder is open; R rescans every root", error=True)
                return
            method, params, _ = fmt.refresh_call(self.folder)
        else:
            method = "library.scan"
        try:
            r = await self.link.call(method, params)
        except RPC_ERRORS as exc:
            self.say(f"cannot start a scan: {exc}", error=True)
            return
        self.say(f"scan started (job {r['job']})")

    @work(group="act")
    async def action_cancel(self) -> None:
        rows = self._ordered()
        if not rows:
            return
        job = rows[self.selected].job
        if job.get("state") not in ACTIVE:
            self.say(f"job {job['id']} is {job.get('state')}: nothing to cancel")
            return
        try:
            updated = await self.link.call("jobs.cancel", {"id": job["id"]})
        except RPC_ERRORS as exc:
            self.say(f"cannot cancel job {job['id']}: {exc}", error=True)
            return
        rows[self.selected].update_job(updated)
        state = updated.get("state")
        if state in ("queued", "running"):  # still winding down: its end arrives as an event
            self.say(f"job {job['id']}: cancelling (still {state})")
        else:
            self.say(f"job {job['id']}: {state}")

    def action_close(self) -> None:
        self.dismiss(None)
