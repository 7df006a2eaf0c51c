"""Backups: every target with its state, next runs, last run and verify, a live progress
bar while a run works on it, and the history of runs; run or verify the selected target.

The targets come from ``backups.status`` and ``backups.list`` (next run times), the history
from ``backups.history``. ``job`` progress events of backup, verify and restore jobs move
the bar of their target; a ``backup.finished`` event reloads everything.
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
from lightbox.tui.messages import DaemonEvent, Resync
from lightbox.tui.removal import removed
from lightbox.tui.screens.base import LinkedScreen
from lightbox.tui.widgets.status_line import StatusLine

RPC_ERRORS = (errors.ClientError, errors.RpcError)
KINDS = {"backup": "backing up", "backup_verify": "verifying", "backup_restore": "restoring"}
HERE = Path(__file__).parent


def run_line(run: dict[str, Any] | None) -> Text:
    if not run:
        return Text("never", style="dim")
    state = str(run.get("state"))
    style = {"succeeded": "green", "failed": "bold red", "running": "cyan"}.get(state, "")
    out = Text(state, style=style)
    out.append(f"  {fmt.utc_local(run.get('finished_at') or run.get('started_at'))}  "
               f"{fmt.count(int(run.get('files') or 0), 'file')}  {fmt.size(run.get('bytes'))}",
               style="dim")
    out.append_text(problems(run))
    reason = (run.get("result") or {}).get("error") if state == "failed" else None
    if reason:
        out.append(f"  {reason}", style="red")
    return out


def problems(run: dict[str, Any]) -> Text:
    """``  2 errors: <the first one>``: a run that left files undone must not look clean
    (the CLI lists them all: ``lightbox backup history --json``)."""
    n = int(run.get("errors") or 0)
    if not n:
        return Text("")
    result = run.get("result") or {}
    first = next(iter((result.get("failed") or []) + (result.get("damaged") or [])
                      + (result.get("problems") or [])), None)
    out = Text(f"  {fmt.count(n, 'error')}", style="bold yellow")
    if isinstance(first, dict) and first.get("error"):
        out.append(f": {first['error']}", style="yellow")
    return out


class TargetCard(Widget, can_focus=False):
    DEFAULT_CSS = """
    TargetCard {
        height: 7;
        padding: 0 1;
        border-left: outer $surface;
    }
    TargetCard.-selected {
        background: $boost;
        border-left: outer $accent;
    }
    """

    def __init__(self, status: dict[str, Any], target: dict[str, Any]) -> None:
        super().__init__()
        self.status = status
        self.target = target
        self.progress: dict[str, Any] | None = None

    @property
    def name_(self) -> str:
        return str(self.status["name"])

    def render(self) -> RenderableType:
        s, t = self.status, self.target
        head = Text(f"{s['name']}", style="bold")
        head.append(f"  {s['path']}  ", style="dim")
        if s.get("online"):
            head.append("ready", style="green")
        else:
            head.append(f"unavailable: {s.get('problem')}", style="bold red")
        if not s.get("enabled", True):
            head.append("  (schedule off)", style="yellow")
        grid = Table.grid(padding=(0, 1))
        grid.add_column(width=13, style="dim")
        grid.add_column(ratio=1)
        nxt = [fmt.utc_local(w) for w in (t.get("next_runs") or [])[:3]]
        sched = t.get("schedule")
        grid.add_row("schedule", Text(f"{sched} ({t.get('schedule_explained')}): next "
                                      + ", ".join(nxt) if sched else "manual only"))
        grid.add_row("last run", run_line(s.get("last_run")))
        lv = run_line(s.get("last_verify"))
        age = s.get("oldest_verified_age")
        if age is not None:
            lv.append(f"  oldest check {age:.1f} days ago", style="dim")
        if s.get("never_verified"):
            lv.append(f"  {s['never_verified']:,} never verified", style="yellow")
        grid.add_row("last verify", lv)
        lacking = int(s.get("not_backed_up") or 0)
        grid.add_row("holds", Text(f"{int(s.get('files') or 0):,} files, "
                                   f"{fmt.size(s.get('bytes'))}; ")
                     + Text(f"{lacking:,} photo{'' if lacking == 1 else 's'} not backed up yet",
                            style="yellow" if lacking else "green"))
        parts: list[RenderableType] = [head, grid]
        p = self.progress
        if p is not None:
            total = p.get("total") or 0
            done = p.get("processed") or 0
            bar = Table.grid(padding=(0, 1), expand=True)
            bar.add_column(width=12)
            bar.add_column(ratio=1)
            bar.add_column(width=30, justify="right")
            bar.add_row(Text(KINDS.get(str(p.get("kind")), "working"), style="bold cyan"),
                        ProgressBar(total=float(total) if total else None,
                                    completed=float(min(done, total or done)),
                                    pulse=not total),
                        Text(f"{done:,}/{total:,}  {fmt.rate(p.get('rate'))}  ETA "
                             f"{fmt.duration(p.get('eta'))}"))
            parts.append(bar)
        return Group(*parts)


class BackupsScreen(LinkedScreen):
    CSS_PATH = HERE / "backups.tcss"
    BINDINGS = [
        Binding("j,down", "select(1)", "Down", show=False),
        Binding("k,up", "select(-1)", "Up", show=False),
        Binding("r", "run", "Back up now"),
        Binding("v", "verify", "Verify"),
        Binding("e", "edit", "Edit target"),
        Binding("a", "add", "Add target"),
        Binding("ctrl+r", "reload", "Reload", show=False),
        Binding("escape,q", "close", "Back"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.cards: dict[str, TargetCard] = {}
        self.targets: dict[str, dict[str, Any]] = {}  # backups.list's entries, by name
        self.selected = 0
        self.jobs: dict[int, str] = {}  # running job id -> target

    def compose(self) -> ComposeResult:
        yield Static(" Backups   r backs up the selected target now, v verifies it, e edits "
                     "it, a adds one",
                     id="backups-title")
        yield VerticalScroll(id="backups-targets")
        yield Static("", id="backups-empty")
        yield Static(" History", id="backups-history-title")
        yield Static("", id="backups-history")
        yield StatusLine()
        yield Footer()

    def on_mount(self) -> None:
        self.load()

    @work(group="backups", exclusive=True)
    async def load(self) -> None:
        try:
            status = (await self.link.call("backups.status"))["targets"]
            targets = {t["name"]: t for t in (await self.link.call("backups.list"))["targets"]}
            history = (await self.link.call("backups.history", {"limit": 15}))["runs"]
            running = (await self.link.call("jobs.list", {"state": "running"}))["jobs"]
        except RPC_ERRORS as exc:
            self.say(f"cannot read the backups: {exc}", error=True)
            return
        box = self.query_one("#backups-targets", VerticalScroll)
        await removed(box.remove_children())
        self.targets = targets
        self.cards = {s["name"]: TargetCard(s, targets.get(s["name"], {})) for s in status}
        for job in running:
            name = (job.get("params") or {}).get("target")
            if job["kind"] in KINDS and name in self.cards:
                self.jobs[int(job["id"])] = name
                self.cards[name].progress = job
        await box.mount_all(list(self.cards.values()))
        empty = self.query_one("#backups-empty", Static)
        empty.update("" if self.cards else
                     "No backup targets yet: lightbox backup add NAME /path/to/disk")
        empty.display = not self.cards
        self._select(min(self.selected, max(0, len(self.cards) - 1)))
        self.query_one("#backups-history", Static).update(self._history(history))

    @staticmethod
    def _history(runs: list[dict[str, Any]]) -> RenderableType:
        if not runs:
            return Text(" no runs yet", style="dim")
        table = Table.grid(padding=(0, 2))
        for _ in range(6):
            table.add_column()
        for r in runs:
            state = str(r["state"])
            table.add_row(Text(f"#{r['id']}", style="dim"), r["target"], r["kind"],
                          Text(state, style={"succeeded": "green", "failed": "red"}
                               .get(state, "cyan")),
                          fmt.utc_local(r.get("started_at")),
                          Text(f"{fmt.count(int(r.get('files') or 0), 'file')} "
                               f"{fmt.size(r.get('bytes'))}").append_text(problems(r)))
        return table

    def _ordered(self) -> list[TargetCard]:
        return list(self.cards.values())

    def _select(self, index: int) -> None:
        cards = self._ordered()
        if not cards:
            return
        self.selected = max(0, min(len(cards) - 1, index))
        for i, card in enumerate(cards):
            card.set_class(i == self.selected, "-selected")
        cards[self.selected].scroll_visible(animate=False)

    def action_select(self, step: int) -> None:
        self._select(self.selected + step)

    def action_reload(self) -> None:
        self.load()

    def on_resync(self, message: Resync) -> None:
        self.load()

    def on_daemon_event(self, message: DaemonEvent) -> None:
        data = message.data
        if message.topic == "backup" and message.type == "finished":
            self.load()
            return
        if message.topic != "job" or data.get("kind") not in KINDS:
            return
        jid = int(data.get("id") or 0)
        if message.type == "progress":
            name = self.jobs.get(jid)
            card = self.cards.get(name) if name else None
            if card is not None:
                card.progress = {**data, "kind": data.get("kind")}
                card.refresh()
            elif name is None:
                self.load()  # a run this screen did not start: find its target
        elif message.type == "finished":
            name = self.jobs.pop(jid, None)
            card = self.cards.get(name) if name else None
            if card is not None:
                card.progress = None
                card.refresh()

    async def _start(self, method: str, what: str) -> None:
        cards = self._ordered()
        if not cards:
            self.say("no target to run", error=True)
            return
        name = cards[self.selected].name_
        try:
            r = await self.link.call(method, {"target": name})
        except RPC_ERRORS as exc:
            self.say(f"cannot {what} {name}: {exc}", error=True)
            return
        self.jobs[int(r["job"])] = name
        cards[self.selected].progress = {"kind": "backup" if method == "backups.run"
                                         else "backup_verify", "processed": 0}
        cards[self.selected].refresh()
        self.say(f"{what} {name}: job {r['job']}")

    @work(group="act")
    async def action_run(self) -> None:
        await self._start("backups.run", "backing up")

    @work(group="act")
    async def action_verify(self) -> None:
        await self._start("backups.verify", "verifying")

    def _form(self, target: dict[str, Any] | None) -> None:
        from lightbox.tui.screens.target_form import TargetForm

        def saved(out: dict[str, Any] | None) -> None:
            if out is not None:
                self.say(f"{out['name']} saved")
                self.load()

        self.app.push_screen(TargetForm(target), saved)

    def action_add(self) -> None:
        self._form(None)

    def action_edit(self) -> None:
        cards = self._ordered()
        if not cards:
            self.say("no target to edit", error=True)
            return
        self._form(self.targets.get(cards[self.selected].name_))

    def action_close(self) -> None:
        self.dismiss(None)
