"""Settings: a form generated from ``settings.schema()``, edited from the keyboard.

Every field comes from the daemon's schema (sections, type, limits, description, when a
change applies), so a setting added to ``lightbox.common.settings`` appears here without
code. Each row: the key (● when edited and not saved, ⟳ when a change waits for a daemon
restart), an editor (``Input`` validated by the field itself, ``Select`` for choices,
``Switch`` for booleans), the description with the value's origin, and a line for the
daemon's or the validator's message about that field. Secrets show set/unset and a
fingerprint; typing into one replaces it.

ctrl+s shows the diff and saves on confirmation (one ``settings.set`` with ``if_revision``;
a concurrent change is reported, and the values are re-read with the edits kept), ctrl+r
resets the focused setting to its default, ctrl+u drops its unsaved edit, ctrl+o shows the
audit log (the focused key's history; ctrl+o again: every change), where r
reverts the selected change. The last section holds
this terminal's own preferences (graphics, grid size, key hints), saved in ``tui.toml``,
not in the catalog. Network I/O runs in workers; the look is in ``settings.tcss``.

``database.url`` is read at daemon start, so it is not saved like the others: its row
(``DatabaseRow``) shows where the catalog is now (``database.status``) and the progress of
a switch running anywhere (its ``database`` and ``job`` events); enter on it opens the
database screen with the URL typed there prefilled and tested — test connection, then
ctrl+s to move the catalog live.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import RenderableType
from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.validation import ValidationResult, Validator
from textual.widget import Widget
from textual.widgets import DataTable, Footer, Input, Label, Select, Static, Switch

from lightbox.common import errors
from lightbox.common import settings as schema
from lightbox.common.fields import Field
from lightbox.tui import format as fmt
from lightbox.tui.imaging import choice
from lightbox.tui.messages import DaemonEvent, Resync
from lightbox.tui.screens.base import LinkedScreen
from lightbox.tui.settings import PREFS
from lightbox.tui.widgets.status_line import StatusLine

HERE = Path(__file__).parent
RPC_ERRORS = (errors.ClientError, errors.RpcError)
LOCAL = "tui."  # keys of this terminal's own preferences: "tui.local.<attr>"
LOCAL_PREFIX = "local."


def widget_id(key: str) -> str:
    return "f-" + key.replace(".", "--").replace("*", "_")


class FieldValidator(Validator):
    """Checks what is typed with the setting's own ``Field.parse`` (the rules the daemon
    applies, so most mistakes are shown before anything is sent)."""

    def __init__(self, field: Field) -> None:
        super().__init__()
        self.field = field

    def validate(self, value: str) -> ValidationResult:
        if self.field.secret and value == "":
            return self.success()  # empty: keep the secret as it is
        try:
            self.field.parse(value)
        except ValueError as exc:
            return self.failure(str(exc))
        return self.success()


class FieldRow(Vertical):
    """One setting: label, editor, description and origin, message."""

    def __init__(self, key: str, field: Field, entry: dict[str, Any] | None,
                 options: list[tuple[str, Any]] | None = None) -> None:
        super().__init__(classes="field-row", id="row-" + widget_id(key)[2:])
        self.key = key
        self.field = field
        self.entry = entry or {}
        self.options = options
        self.edited: Any = None
        self.has_edit = False
        self.problem = ""

    @property
    def current(self) -> Any:
        return self.entry.get("value")

    def compose(self) -> ComposeResult:
        with Horizontal(classes="field-head"):
            yield Label(self._label(), classes="field-key")
            yield self._editor()
        yield Static(self._about(), classes="field-about")
        yield Static("", classes="field-error")

    def _label(self) -> Text:
        text = Text(self.key if not self.key.startswith(LOCAL_PREFIX) else self.field.name)
        if self.has_edit:
            text.append(" ●", style="bold yellow")
        if self.field.applies == "restart":
            text.append(" ⟳", style="magenta")
        return text

    def _about(self) -> Text:
        text = Text(self.field.description, style="dim")
        origin = self.entry.get("origin")
        if origin:
            text.append(f"  [{origin}]", style="cyan")
        if self.field.applies == "restart":
            text.append("  needs a daemon restart", style="magenta")
        elif self.field.applies == "workers":
            text.append("  for new worker processes", style="magenta")
        if self.entry.get("pending_restart"):
            text.append("  (restart pending)", style="bold magenta")
        if self.field.note:
            text.append(f"\n{self.field.note}", style="dim italic")
        return text

    def _editor(self) -> Widget:
        wid = widget_id(self.key)
        f = self.field
        value = self.current
        if self.options is not None or f.enum is not None:
            opts = self.options or [(str(v), v) for v in (f.enum or ())]
            allowed = [v for _, v in opts]
            return Select(opts, value=value if value in allowed else Select.NULL,
                          allow_blank=value not in allowed, id=wid,
                          classes="field-editor")
        if f.type == "boolean":
            return Switch(value=bool(value), id=wid, classes="field-editor")
        if f.secret:
            return Input("", placeholder=self._secret_hint(), password=True, id=wid,
                         validators=[FieldValidator(f)], classes="field-editor")
        return Input(f.format(value), id=wid, validators=[FieldValidator(f)],
                     classes="field-editor", valid_empty=f.nullable)

    def _secret_hint(self) -> str:
        state = self.current if isinstance(self.current, dict) else {}
        return (f"set ({state.get('fingerprint')}) — type to replace" if state.get("set")
                else "unset — type to set")

    def refresh_row(self) -> None:
        self.query_one(".field-key", Label).update(self._label())
        self.query_one(".field-about", Static).update(self._about())
        self.query_one(".field-error", Static).update(
            Text(self.problem, style="bold red") if self.problem else "")
        self.set_class(self.has_edit, "-unsaved")
        self.set_class(bool(self.problem), "-invalid")

    def set_entry(self, entry: dict[str, Any]) -> None:
        """A new value from the daemon; an unsaved edit stays."""
        self.entry = entry
        if not self.has_edit:
            self._show(self.current)
        self.refresh_row()

    def _show(self, value: Any) -> None:
        editor = self.query_one(".field-editor")
        with editor.prevent(Input.Changed, Select.Changed, Switch.Changed):
            if isinstance(editor, Input):
                editor.value = "" if self.field.secret else self.field.format(value)
                if self.field.secret:
                    editor.placeholder = self._secret_hint()
            elif isinstance(editor, Switch):
                editor.value = bool(value)
            elif isinstance(editor, Select):
                editor.value = value

    def edit(self, raw: Any, typed: bool) -> None:
        """The person changed the editor: parse, compare with the current value, mark."""
        self.problem = ""
        if typed:
            if self.field.secret and raw == "":
                self.has_edit = False
                self.refresh_row()
                return
            try:
                raw = self.field.parse(raw)
            except ValueError as exc:
                self.problem = str(exc)
                self.has_edit = True
                self.edited = None
                self.refresh_row()
                return
        self.edited = raw
        self.has_edit = self.field.secret or raw != self.current
        self.refresh_row()

    def undo(self) -> None:
        self.has_edit = False
        self.edited = None
        self.problem = ""
        self._show(self.current)
        self.refresh_row()

    def shown(self, value: Any) -> str:
        if self.field.secret:
            if isinstance(value, dict):
                return f"set ({value.get('fingerprint')})" if value.get("set") else "unset"
            return "a new value"
        return self.field.format(value) or "(empty)"


class DatabaseRow(Vertical):
    """``database.url``: where the catalog is, a URL to move it to, a switch's progress."""

    KEY = "database.url"

    def __init__(self, field: Field) -> None:
        super().__init__(classes="field-row", id="row-" + widget_id(self.KEY)[2:])
        self.field = field
        self.status: dict[str, Any] = {}
        self.problem = ""
        self.job: int | None = None  # a switch running (or just ended) anywhere
        self.phase: str | None = None
        self.progress: dict[str, Any] = {}
        self.outcome: str | None = None
        self.drawn: RenderableType = ""  # what the progress line shows (for tests)

    def compose(self) -> ComposeResult:
        with Horizontal(classes="field-head"):
            yield Label(Text(self.KEY).append(" ⟳", style="magenta"), classes="field-key")
            # A password field: a URL holds a secret, and the daemon never shows it again.
            yield Input("", placeholder="a URL to move the catalog to — enter: test, switch",
                        password=True, id=widget_id(self.KEY), classes="field-editor")
        yield Static(self._about(), classes="field-about")
        yield Static("", classes="field-progress").set_styles("display: none;")
        yield Static("", classes="field-error").set_styles("display: none;")

    def _about(self) -> Text:
        text = Text(self.field.description, style="dim")
        st = self.status
        if st:
            origin = {"config": "bootstrap config", "switched": "moved by a switch"}.get(
                str(st.get("origin")), str(st.get("origin")))
            text.append(f"\nnow: {st.get('engine')} at {st.get('url')}", style="bold")
            text.append(f"  [{origin}]", style="cyan")
            last = (st.get("switch") or {}).get("last")
            if last and last.get("job") != self.job:  # the one followed is drawn below
                text.append(f"\nlast switch: job {last.get('job')}, " + (
                    f"to {last.get('to')}" if last.get("ok") else
                    f"failed in {last.get('phase')} ({last.get('reason')})"), style="dim")
        text.append("\nenter: the database screen — test connection, then switch live "
                    "(verified; on any failure the catalog stays where it is)",
                    style="dim italic")
        return text

    def set_status(self, st: dict[str, Any]) -> None:
        self.status, self.problem = st, ""
        active = (st.get("switch") or {}).get("active")
        if active and (self.job is None or self.job == active.get("job")):
            self.job, self.phase = active.get("job"), str(active.get("phase"))
        self.refresh_row()

    def follow(self, message: DaemonEvent) -> bool:
        """A ``database`` or ``job`` event of a switch; True when the status is stale."""
        data = message.data
        if message.topic == "database" and message.type in ("phase", "switched", "failed"):
            if self.job != data.get("job"):
                self.job, self.progress, self.outcome = data.get("job"), {}, None
            if message.type == "phase":
                self.phase, self.progress = str(data.get("phase")), {}
            elif message.type == "switched":
                self.phase = "done"
                self.outcome = f"switched to {data.get('url')} ({data.get('engine')})"
            else:
                self.outcome = (f"failed in {data.get('phase')} ({data.get('reason')}); "
                                "the catalog stayed where it was")
            self.refresh_row()
            return message.type != "phase"
        if (message.topic == "job" and message.type == "progress" and self.job is not None
                and data.get("id") == self.job and self.phase != "done"):
            self.progress = data
            self.refresh_row()
        return False

    def refresh_row(self) -> None:
        from lightbox.tui.screens.database import describe_switch

        if not self.is_mounted:  # the screen closed while a reply or an event came in
            return
        self.query_one(".field-about", Static).update(self._about())
        self.drawn = (describe_switch(self.job, self.phase, self.progress, self.outcome,
                                      bar_width=40) if self.job is not None else "")
        progress = self.query_one(".field-progress", Static)
        progress.update(self.drawn)
        progress.display = self.job is not None
        error = self.query_one(".field-error", Static)
        error.update(Text(self.problem, style="bold red") if self.problem else "")
        error.display = bool(self.problem)


class ConfirmDiff(ModalScreen[bool]):
    """The changes about to be saved; y or enter saves, n or escape goes back."""

    BINDINGS = [Binding("y,enter", "answer(True)", "Save"),
                Binding("n,escape", "answer(False)", "Cancel")]

    def __init__(self, lines: list[str]) -> None:
        super().__init__()
        self.lines = lines

    def compose(self) -> ComposeResult:
        with Vertical(id="diff-box"):
            yield Static("Save these changes?", id="diff-title")
            yield Static("\n".join(self.lines), id="diff-lines")
            yield Static("y / enter: save    n / escape: back", id="diff-keys")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class SettingsScreen(LinkedScreen):
    CSS_PATH = HERE / "settings.tcss"
    BINDINGS = [
        Binding("ctrl+s", "save", "Save", priority=True),
        Binding("ctrl+r", "reset", "Reset to default", priority=True),
        Binding("ctrl+u", "undo", "Undo edit", priority=True),
        Binding("ctrl+o", "audit", "Audit log", priority=True),
        Binding("ctrl+b", "add_bucket", "Add bucket", priority=True),
        Binding("ctrl+e", "edit_bucket", "Edit bucket", priority=True),
        Binding("ctrl+k", "add_target", "Add backup target", priority=True),
        Binding("r", "revert", "Revert the change (audit log)", show=False),
        Binding("down", "app.focus_next", "Next", show=False),
        Binding("up", "app.focus_previous", "Previous", show=False),
        Binding("escape", "close", "Back"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.rows: dict[str, FieldRow] = {}
        self.database: DatabaseRow | None = None  # database.url: see DatabaseRow
        self.revision: int | None = None
        self.schema_doc: dict[str, Any] | None = None
        self.audit_key: str | None = None
        self.audit_entries: list[dict[str, Any]] = []
        self.buckets: list[dict[str, Any]] = []  # sources.list's buckets, for ctrl+e
        self._leaving = False

    def compose(self) -> ComposeResult:
        yield Static(" Settings   ctrl+s save · ctrl+r reset · ctrl+u undo · ctrl+o audit log"
                     " · ctrl+b add / ctrl+e edit a bucket · ctrl+k add a backup target",
                     id="settings-title")
        yield VerticalScroll(id="settings-form")
        yield Static("", id="settings-buckets")
        yield Static("", id="settings-targets")
        table: DataTable[Any] = DataTable(id="settings-audit", cursor_type="row")
        yield table
        yield StatusLine()
        yield Footer()

    def on_mount(self) -> None:
        super().on_mount()
        table = self.query_one("#settings-audit", DataTable)
        table.add_columns("rev", "when", "who", "action", "changes", "result")
        table.display = False
        self.load()

    def action_add_bucket(self) -> None:
        """The bucket form (test connection, add): buckets are sources, not settings."""
        from lightbox.tui.screens.bucket_form import BucketForm

        def added(out: dict[str, Any] | None) -> None:
            if out is not None:
                src = out["source"]
                job = f"; syncing (job {out['job']})" if out.get("job") else ""
                self.say(f"bucket {src['name']} added at {src['path']}{job}")
                self.load()

        self.app.push_screen(BucketForm(), added)

    def action_edit_bucket(self) -> None:
        """The bucket form for a bucket that exists (its photos stay; what changed is sent):
        the only one at once, or the one picked from a list."""
        from lightbox.tui.screens.bucket_form import BucketForm, BucketPicker

        def changed(out: dict[str, Any] | None) -> None:
            if out is not None:
                what = ", ".join(out.get("changed") or []) or "nothing"
                self.say(f"bucket {out['source']['name']} changed: {what}")
                self.load()

        def picked(source: dict[str, Any] | None) -> None:
            if source is not None:
                self.app.push_screen(BucketForm(source), changed)

        if not self.buckets:
            self.say("no buckets yet: ctrl+b adds one")
        elif len(self.buckets) == 1:
            picked(self.buckets[0])
        else:
            self.app.push_screen(BucketPicker(self.buckets), picked)

    def action_add_target(self) -> None:
        """The backup target form (schedule read back with its next runs, add)."""
        from lightbox.tui.screens.target_form import TargetForm

        def added(out: dict[str, Any] | None) -> None:
            if out is not None:
                nxt = out.get("next_runs") or []
                self.say(f"backup target {out['name']} added"
                         + (f"; next run {nxt[0]}" if nxt else "; runs only when asked"))
                self.load()

        self.app.push_screen(TargetForm(), added)

    # -- loading ------------------------------------------------------------------------
    @work(group="settings-load", exclusive=True)
    async def load(self) -> None:
        try:
            if self.schema_doc is None:
                self.schema_doc = await self.link.call("settings.schema")
            got = await self.link.call("settings.get")
            roots = (await self.link.call("roots.list"))["roots"]
            sources = (await self.link.call("sources.list"))["sources"]
            targets = []
            if self.schema_doc.get("collections"):
                targets = (await self.link.call("backups.list"))["targets"]
        except RPC_ERRORS as exc:
            self.say(f"cannot read the settings: {exc}", error=True)
            return
        self.revision = got["revision"]
        values: dict[str, Any] = got["settings"]
        self.buckets = [src for src in sources if src["kind"] == "s3"]
        self._show_buckets()
        self._show_targets(targets)
        if self.rows:
            for key, row in self.rows.items():
                if key in values:
                    row.set_entry(values[key])
            return
        await self._build(values, roots)

    buckets_text = ""  # the buckets section as plain text (tests, screen readers)

    def _show_buckets(self) -> None:
        """Buckets are sources, not settings: each with where it is and how often it syncs,
        edited with their form (ctrl+e)."""
        box = self.query_one("#settings-buckets", Static)
        box.display = bool(self.buckets)
        text = Text()
        for src in self.buckets:
            cfg = src.get("config") or {}
            every = cfg.get("interval") or 0
            text.append(f" {src['name']}", style="bold")
            text.append(f"  {src['path']}  {cfg.get('endpoint') or 'AWS'}\n")
            text.append("   " + (f"syncs every {fmt.duration(float(every))}" if every
                                 else "syncs only when asked"), style="dim")
            text.append("\n")
        text.append(" ctrl+e changes a bucket (endpoint, credentials, interval); its photos stay",
                    style="dim")
        self.buckets_text = text.plain
        box.update(text)

    targets_text = ""  # the backup targets section as plain text (tests, screen readers)

    def _show_targets(self, targets: list[dict[str, Any]]) -> None:
        """Backup targets are rows of their own (``settings.schema`` collections), edited
        with their form: here each with its schedule and next five runs."""
        text = Text()
        if not targets:
            text.append(" none yet; ctrl+k adds one\n", style="dim")
        for t in targets:
            where = t.get("path") or t.get("where") or ""
            text.append(f" {t['name']}", style="bold")
            text.append(f"  {t['kind']}  {where}\n")
            when = t.get("schedule_explained") or "only when asked"
            text.append(f"   {when}", style="green" if t.get("schedule") else "dim")
            if t.get("next_runs"):
                text.append(" · next: " + ", ".join(
                    fmt.utc_local(w) for w in t["next_runs"][:5]))
            text.append("\n")
        text.append(" ctrl+k adds a target; e on the backups screen (B) edits one",
                    style="dim")
        self.targets_text = text.plain
        self.query_one("#settings-targets", Static).update(text)

    async def _build(self, values: dict[str, Any], roots: list[dict[str, Any]]) -> None:
        assert self.schema_doc is not None
        form = self.query_one("#settings-form", VerticalScroll)
        widgets: list[Widget] = []
        db_field = schema.field_for(DatabaseRow.KEY)
        if db_field is not None:
            self.database = DatabaseRow(db_field[0])
            widgets += [Static("Catalog database", classes="section-title"), self.database]
        for section in self.schema_doc["sections"]:
            fields = [f for f in section["fields"] if f["scope"] == "runtime"]
            if not fields:
                continue
            widgets.append(Static(section["title"], classes="section-title"))
            for f in fields:
                found = schema.field_for(f["key"])
                if found is None:  # a newer daemon's setting: shown from its description
                    continue
                widgets.append(self._row(f["key"], found[0], values.get(f["key"])))
        names = {str(r["id"]): r["name"] for r in roots}
        for obj in self.schema_doc["objects"]:
            for oid, name in names.items():
                widgets.append(Static(f"{obj['title']}: {name} ({obj['prefix']} {oid})",
                                      classes="section-title"))
                for f in obj["fields"]:
                    key = f"{obj['prefix']}.{oid}.{f['key']}"
                    found = schema.field_for(key)
                    if found is not None:
                        widgets.append(self._row(key, found[0], values.get(key)))
        boot = [f for s in self.schema_doc["sections"] for f in s["fields"]
                if f["scope"] == "bootstrap" and f["key"] != DatabaseRow.KEY]
        widgets.append(Static("This terminal (saved in tui.toml)", classes="section-title"))
        widgets += self._local_rows()
        widgets.append(Static("Read at daemon start (bootstrap file or LIGHTBOX_* "
                              "environment): " + ", ".join(
                                  f"{f['key']} = {_plain(values.get(f['key']))}"
                                  for f in boot), classes="bootstrap-note"))
        await form.mount_all(widgets)
        first = next(iter(self.rows.values()), None)
        if first is not None:
            first.query_one(".field-editor").focus()
        self.load_database()

    @work(group="settings-db", exclusive=True)
    async def load_database(self) -> None:
        if self.database is None:
            return
        try:
            st = await self.link.call("database.status")
        except RPC_ERRORS as exc:
            self.database.problem = f"cannot read where the catalog is: {exc}"
            self.database.refresh_row()
            return
        self.database.set_status(st)

    @on(Input.Submitted, "#" + widget_id(DatabaseRow.KEY))
    def _database_entered(self, event: Input.Submitted) -> None:
        """Enter on database.url: the database screen, with the URL typed here."""
        from lightbox.tui.screens.database import DatabaseScreen

        event.stop()
        url = event.value.strip()
        event.input.value = ""  # the URL may hold a password: not kept on this form

        def back(_result: Any) -> None:
            self.load_database()

        self.app.push_screen(DatabaseScreen(url), back)

    def _row(self, key: str, field: Field, entry: dict[str, Any] | None) -> FieldRow:
        row = FieldRow(key, field, entry)
        self.rows[key] = row
        return row

    def _local_rows(self) -> list[FieldRow]:
        s = self.lb.settings
        g = self.lb.graphics
        rows = []
        mode = choice.saved(s, g)
        graphics = Field("graphics", "string", "how pictures are drawn in this terminal "
                         f"({g.terminal}); auto uses what was detected", default="auto")
        rows.append(FieldRow(LOCAL_PREFIX + "graphics", graphics,
                             {"value": mode, "origin": "tui.toml" if mode != "auto"
                              else "detected"}, options=[(label, v) for v, label in
                                                         choice.options(g)]))
        for attr in ("thumb_size", "key_hints"):
            fld = PREFS[attr]
            origin = "tui.toml" if attr != "thumb_size" or s.own_grid_size else \
                "the library's tui.grid_size"
            rows.append(FieldRow(LOCAL_PREFIX + attr, fld,
                                 {"value": getattr(s, attr), "origin": origin}))
        for row in rows:
            self.rows[row.key] = row
        return rows

    # -- editing ------------------------------------------------------------------------
    def _row_of(self, widget: Widget | None) -> FieldRow | None:
        node: Any = widget
        while node is not None and not isinstance(node, FieldRow):
            node = node.parent
        return node

    @on(Input.Changed)
    def _typed(self, event: Input.Changed) -> None:
        row = self._row_of(event.input)
        if row is not None:
            row.edit(event.value, typed=True)

    @on(Select.Changed)
    def _chosen(self, event: Select.Changed) -> None:
        row = self._row_of(event.select)
        if row is not None and event.value is not Select.NULL:
            row.edit(event.value, typed=False)

    @on(Switch.Changed)
    def _switched(self, event: Switch.Changed) -> None:
        row = self._row_of(event.switch)
        if row is not None:
            row.edit(event.value, typed=False)

    def _focused_row(self) -> FieldRow | None:
        return self._row_of(self.focused)

    def action_undo(self) -> None:
        row = self._focused_row()
        if row is not None:
            row.undo()

    @work(group="settings-save", exclusive=True)
    async def action_reset(self) -> None:
        row = self._focused_row()
        if row is None:
            return
        if row.key.startswith(LOCAL_PREFIX):
            row.edit(row.field.default, typed=False)
            row._show(row.field.default)
            return
        try:
            out = await self.link.call("settings.reset", {"keys": [row.key]})
        except RPC_ERRORS as exc:
            self.say(f"cannot reset {row.key}: {exc}", error=True)
            return
        row.has_edit = False
        self.say(f"{row.key}: back to its default (revision {out['revision']})"
                 if out["changed"] else f"{row.key} already has its default")
        self.load()

    # -- saving -------------------------------------------------------------------------
    def _pending(self) -> list[FieldRow]:
        return [r for r in self.rows.values() if r.has_edit]

    @work(group="settings-save", exclusive=True)
    async def action_save(self) -> None:
        pending = self._pending()
        if not pending:
            self.say("nothing to save")
            return
        bad = [r for r in pending if r.problem]
        if bad:
            self.say(f"fix {len(bad)} field(s) first: " + ", ".join(r.key for r in bad),
                     error=True)
            bad[0].query_one(".field-editor").focus()
            return
        lines = [f"{r.key.removeprefix(LOCAL_PREFIX)}: {r.shown(r.current)} → "
                 f"{r.shown(r.edited)}" + ("   (needs a restart)"
                                          if r.field.applies == "restart" else "")
                 for r in pending]
        if not await self.app.push_screen_wait(ConfirmDiff(lines)):
            self.say("not saved")
            return
        local = [r for r in pending if r.key.startswith(LOCAL_PREFIX)]
        remote = [r for r in pending if not r.key.startswith(LOCAL_PREFIX)]
        if local:
            self._save_local(local)
        if not remote:
            return
        patch = {r.key: r.edited for r in remote}
        try:
            out = await self.link.call("settings.set", {"patch": patch,
                                                        "if_revision": self.revision})
        except errors.InvalidParams as exc:
            data = exc.data if isinstance(exc.data, dict) else {}
            for item in data.get("fields") or []:
                row = self.rows.get(item.get("key"))
                if row is not None:
                    row.problem = str(item.get("message"))
                    row.refresh_row()
            self.say(f"not saved: {exc.message}", error=True)
            return
        except errors.Conflict:
            self.say("someone else changed the settings meanwhile: values re-read, your "
                     "edits kept; check and save again", error=True)
            self.load()
            return
        except RPC_ERRORS as exc:
            self.say(f"not saved: {exc}", error=True)
            return
        for r in remote:
            r.has_edit = False
            r.edited = None
        said = [f"saved (revision {out['revision']})"]
        if out.get("restart"):
            said.append("after a daemon restart: " + ", ".join(out["restart"]))
        self.say("; ".join(said))
        self.load()

    def _save_local(self, rows: list[FieldRow]) -> None:
        s = self.lb.settings
        for r in rows:
            attr = r.key.removeprefix(LOCAL_PREFIX)
            if attr == "graphics":
                try:
                    choice.save(s, self.lb.graphics, str(r.edited))
                except ValueError as exc:
                    r.problem = str(exc)
                    r.refresh_row()
                    continue
                if r.edited != "auto":
                    self.lb.set_graphics(str(r.edited))
            else:
                setattr(s, attr, r.edited)
            if attr == "thumb_size":
                s.explicit.add("thumbnails")  # this client's own choice from now on
                for screen in self.app.screen_stack:
                    grid = getattr(screen, "grid", None)
                    if grid is not None and hasattr(grid, "set_thumb_size"):
                        grid.set_thumb_size(str(r.edited))
            r.entry = {**r.entry, "value": r.edited, "origin": "tui.toml"}
            r.has_edit = False
            r.refresh_row()
        s.save()
        for screen in self.app.screen_stack:
            for footer in screen.query(Footer):
                footer.display = s.key_hints
        self.say("saved for this terminal")

    # -- the daemon ---------------------------------------------------------------------
    def on_daemon_event(self, message: DaemonEvent) -> None:
        if self.database is not None and message.topic in ("database", "job"):
            if self.database.follow(message):
                self.load_database()
            return
        if message.topic == "settings" and message.type == "changed":
            self.load()
            if not self.query_one("#settings-audit", DataTable).display:
                return
            self.load_audit()

    def on_resync(self, message: Resync) -> None:
        self.load()
        self.load_database()

    # -- audit --------------------------------------------------------------------------
    def action_audit(self) -> None:
        table = self.query_one("#settings-audit", DataTable)
        row = self._focused_row()
        key = row.key if row is not None and not row.key.startswith(LOCAL_PREFIX) else None
        if table.display and self.audit_key is None:
            table.display = False
            return
        self.audit_key = None if table.display else key
        table.display = True
        self.load_audit(announce=True)

    @work(group="settings-save", exclusive=True)
    async def action_revert(self) -> None:
        """In the audit table: undo the selected change (after showing what it undoes)."""
        table = self.query_one("#settings-audit", DataTable)
        if self.focused is not table or not table.row_count:
            return
        entry = self.audit_entries[table.cursor_row]
        if entry["action"] not in ("set", "reset", "revert") or entry["result"] != "ok":
            self.say(f"revision {entry['revision']} ({entry['action']}) cannot be reverted",
                     error=True)
            return
        lines = [f"{c['key']}: {_plain(c['new'])} → {_plain(c['old'])}"
                 for c in entry["changes"]]
        if not await self.app.push_screen_wait(ConfirmDiff(
                [f"undo revision {entry['revision']}:", *lines])):
            return
        try:
            out = await self.link.call("settings.revert", {"revision": entry["revision"]})
        except RPC_ERRORS as exc:
            self.say(f"cannot revert revision {entry['revision']}: {exc}", error=True)
            return
        self.say(f"reverted revision {entry['revision']} (now revision {out['revision']})")
        self.load()

    @work(group="settings-audit", exclusive=True)
    async def load_audit(self, announce: bool = False) -> None:
        table = self.query_one("#settings-audit", DataTable)
        try:
            page = await self.link.call("settings.audit", {"limit": 100,
                                                           "key": self.audit_key})
        except RPC_ERRORS as exc:
            self.say(f"cannot read the audit log: {exc}", error=True)
            return
        table.clear()
        self.audit_entries = list(page["entries"])
        for e in page["entries"]:
            changes = "; ".join(f"{c['key']}: {_plain(c['old'])} → {_plain(c['new'])}"
                                for c in e["changes"])
            table.add_row(str(e["revision"]), e["at"][:19].replace("T", " "), e["by"],
                          e["action"], changes, e["result"])
        if announce:
            self.say(f"audit log: {self.audit_key or 'every change'} "
                     f"({len(page['entries'])} entries)")

    def action_close(self) -> None:
        if self._pending() and not self._leaving:
            self._leaving = True
            self.say(f"{len(self._pending())} unsaved change(s): ctrl+s saves, escape again "
                     "discards them", error=True)
            return
        self.dismiss(None)


def _plain(value: Any) -> str:
    if isinstance(value, dict) and value.get("secret"):
        return f"set ({value.get('fingerprint')})" if value.get("set") else "unset"
    if isinstance(value, dict) and "value" in value:
        value = value["value"]
    if value is None:
        return "—"
    return Field("v", "any", "").format(value)
