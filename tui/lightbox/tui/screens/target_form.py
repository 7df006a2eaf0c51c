"""Add or edit a backup target from the settings screen (ctrl+k) or the backups screen (e):
a form whose cron expressions are read back as the daemon reads them (``backups.schedule``:
its explanation and the next five run times in the target's time zone, daylight-saving
changes included) while they are typed, and saved with ``backups.add`` or, for a target
that exists, ``backups.update`` (what changed only). A bucket target's secret is typed into
a password field, sent once and never shown again. Network I/O runs in workers; the look is
in ``target_form.tcss``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from lightbox.common import errors
from lightbox.common.api.backups import S3_FIELDS, TARGET_FIELDS

if TYPE_CHECKING:
    from lightbox.tui.app import LightboxApp
    from lightbox.tui.link import Link

HERE = Path(__file__).parent
RPC_ERRORS = (errors.ClientError, errors.RpcError)

# (param, label, hint, password); descriptions come from the registry's fields.
_DESCRIBED = {f.name: f.description for f in (*TARGET_FIELDS, *S3_FIELDS)}
FIELDS: tuple[tuple[str, str, str, bool], ...] = (
    ("name", "Name", "how the target is called (lightbox backup run NAME)", False),
    ("kind", "Kind", "local (a folder) or s3 (a bucket)", False),
    ("path", "Folder", _DESCRIBED["path"], False),
    ("roots", "Roots", "comma-separated root and bucket names (empty: every local root)",
     False),
    ("schedule", "Schedule", _DESCRIBED["schedule"] + " ('none': only when asked)", False),
    ("timezone", "Time zone", _DESCRIBED["timezone"], False),
    ("verify_schedule", "Verify schedule", "cron; 'none': only when asked", False),
    ("verify_budget", "Verify budget", _DESCRIBED["verify_budget"], False),
    ("retention_days", "Retention (days)", "empty: never delete from the target", False),
    ("bucket", "Bucket", _DESCRIBED["bucket"], False),
    ("prefix", "Prefix", _DESCRIBED["prefix"], False),
    ("endpoint_url", "Endpoint", _DESCRIBED["endpoint_url"], False),
    ("region", "Region", _DESCRIBED["region"], False),
    ("access_key_id", "Access key id", _DESCRIBED["access_key_id"], False),
    ("secret_access_key", "Secret key", "stored, never shown again", True),
)
S3_ONLY = {f.name for f in S3_FIELDS}
# What backups.update takes (the rest is fixed once the target exists).
EDITABLE = {f.name for f in TARGET_FIELDS} - {"path"}
NULLABLE = {"schedule", "verify_schedule", "retention_days"}


def input_id(param: str) -> str:
    return "tf-" + param.replace("_", "-")


def _shown(param: str, value: Any) -> str:
    if value is None:
        return "none" if param in ("schedule", "verify_schedule") else ""
    if isinstance(value, list):
        return ", ".join(map(str, value))
    return str(value)


class TargetForm(ModalScreen[dict[str, Any] | None]):
    """Dismissed with the target as the daemon returned it (added or changed), or None."""

    CSS_PATH = HERE / "target_form.tcss"
    BINDINGS = [
        Binding("ctrl+s", "save", "Save", priority=True),
        Binding("escape", "close", "Cancel"),
    ]

    def __init__(self, target: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.target = target  # editing this one (backups.list's entry), or adding
        self.result_text = ""  # the result line as plain text (tests, screen readers)
        self.schedule_text = ""  # the schedule preview as plain text

    @property
    def link(self) -> Link:
        return cast("LightboxApp", self.app).link

    def compose(self) -> ComposeResult:
        verb = f"Edit the backup target {self.target['name']}" if self.target else \
            "Add a backup target"
        with Vertical(id="tf-box"):
            yield Static(f" {verb}   ctrl+s save · esc cancel", id="tf-title")
            with VerticalScroll(id="tf-fields"):
                for param, label, hint, password in FIELDS:
                    fixed = self.target is not None and param not in EDITABLE
                    if fixed and param in S3_ONLY and self.target is not None \
                            and self.target.get("kind") != "s3":
                        continue
                    yield Label(label + (" (fixed)" if fixed else ""), classes="tf-label")
                    value = _shown(param, self.target.get(param)) if self.target else ""
                    if password:
                        value = ""
                    box = Input(value=value, placeholder=hint, password=password,
                                id=input_id(param))
                    box.disabled = fixed
                    yield box
                    if param == "timezone":
                        yield Static("", id="tf-schedule-preview")
            yield Static("", id="tf-result")

    def on_mount(self) -> None:
        self.preview()

    # -- the schedule, as the daemon reads it -------------------------------------------
    @on(Input.Changed, "#tf-schedule, #tf-timezone")
    def _schedule_changed(self) -> None:
        self.preview()

    def _value(self, param: str) -> str:
        try:
            return self.query_one("#" + input_id(param), Input).value.strip()
        except Exception:  # a field this form does not show (a local target's bucket)
            return ""

    @work(group="target-form-preview", exclusive=True)
    async def preview(self) -> None:
        cron = self._value("schedule")
        zone = self._value("timezone") or "local"
        box = self.query_one("#tf-schedule-preview", Static)
        if not cron or cron.lower() == "none":
            self.schedule_text = "no schedule: runs only when asked"
            box.update(Text(self.schedule_text, style="dim"))
            return
        try:
            out = await self.link.call("backups.schedule", {"cron": cron, "timezone": zone,
                                                            "count": 5})
        except RPC_ERRORS as exc:
            self.schedule_text = f"cannot check the schedule: {exc}"
            box.update(Text(self.schedule_text, style="red"))
            return
        if not out["valid"]:
            self.schedule_text = f"not a schedule: {out['problem']}"
            box.update(Text(self.schedule_text, style="bold red"))
            return
        text = Text(f"{out['explanation']}; next runs:\n", style="green")
        text.append("\n".join("  " + when for when in out["next"]))
        self.schedule_text = text.plain
        box.update(text)

    # -- saving ---------------------------------------------------------------------------
    def say(self, text: Text | str) -> None:
        self.result_text = text.plain if isinstance(text, Text) else text
        self.query_one("#tf-result", Static).update(text)

    def params(self) -> tuple[dict[str, Any], list[str]]:
        """(values typed, nullable settings emptied): the params backups.add/update take."""
        out: dict[str, Any] = {}
        cleared: list[str] = []
        for param, _, _, _ in FIELDS:
            text = self._value(param)
            # 'none' for a schedule, nothing for the retention: null (only when asked;
            # never delete). An empty schedule is the default (or, editing, unchanged).
            if (param in NULLABLE and text.lower() in ("none", "null")) \
                    or (param == "retention_days" and not text):
                cleared.append(param)
                continue
            if not text:
                continue
            if param == "roots":
                out[param] = [r.strip() for r in text.split(",") if r.strip()]
            elif param == "retention_days":
                try:
                    out[param] = int(text)
                except ValueError:
                    out[param] = text  # the daemon says why not
            else:
                out[param] = text
        return out, cleared

    @work(group="target-form", exclusive=True)
    async def action_save(self) -> None:
        values, cleared = self.params()
        try:
            if self.target is None:
                if "name" not in values:
                    self.say(Text("give the target a name", style="bold red"))
                    return
                params = {**values, **{k: None for k in cleared}}
                params.setdefault("kind", "local")
                out = await self.link.call("backups.add", params)
            else:
                changes = {k: v for k, v in values.items()
                           if k in EDITABLE and v != self.target.get(k)}
                clear = [k for k in cleared if self.target.get(k) is not None]
                if not changes and not clear:
                    self.dismiss(self.target)
                    return
                out = await self.link.call("backups.update", {
                    "target": self.target["name"], **changes,
                    **({"clear": clear} if clear else {})})
        except RPC_ERRORS as exc:
            data = getattr(exc, "data", None)
            detail = ""
            if isinstance(data, dict) and isinstance(data.get("errors"), dict):
                detail = "; ".join(f"{k}: {v}" for k, v in data["errors"].items())
            self.say(Text(f"not saved: {detail or exc}", style="bold red"))
            return
        self.dismiss(out)

    def action_close(self) -> None:
        self.dismiss(None)
