"""Add an S3 bucket as a source from the settings screen (ctrl+b), or change one (ctrl+e):
a form, "test connection" (ctrl+t: ``sources.test`` with what is typed, each check shown
with its words) and save (ctrl+s: ``sources.add``, which starts the first sync, or for a
bucket that exists ``sources.update`` with what changed only: its photos stay). The name,
bucket and prefix of an existing bucket are fixed (another bucket is another source). The
secret is typed into a password field, sent once and never shown again. Network I/O runs in
workers; the look is in ``bucket_form.tcss``.
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
from textual.widgets import Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from lightbox.common import errors

if TYPE_CHECKING:
    from lightbox.tui.app import LightboxApp
    from lightbox.tui.link import Link

HERE = Path(__file__).parent
RPC_ERRORS = (errors.ClientError, errors.RpcError)

# (param, label, placeholder, password)
FIELDS = (
    ("name", "Name", "how the bucket shows in the tree", False),
    ("endpoint", "Endpoint", "https://s3.us-west-004.backblazeb2.com (empty: AWS)", False),
    ("region", "Region", "us-east-1", False),
    ("bucket", "Bucket", "my-photos", False),
    ("prefix", "Prefix", "only keys below this (optional)", False),
    ("addressing_style", "Addressing", "auto, path or virtual", False),
    ("access_key_id", "Access key id", "", False),
    ("secret_access_key", "Secret key", "stored, never shown again", True),
    ("interval", "Sync interval (s)", "seconds between syncs; 0: on demand only (empty: a "
     "day)", False),
)
# What sources.update cannot change: what the source is.
FIXED = ("name", "bucket", "prefix")
# Emptied in the edit form: set to null (endpoint: AWS; the key: forgotten with its secret).
CLEARABLE = ("endpoint", "access_key_id")


def _detail(exc: Exception) -> str:
    """The daemon's refusal per field where it gave one, else its message."""
    data = getattr(exc, "data", None)
    if isinstance(data, dict) and isinstance(data.get("errors"), dict):
        return "; ".join(f"{k}: {v}" for k, v in data["errors"].items())
    return str(exc)


def input_id(param: str) -> str:
    return "bf-" + param.replace("_", "-")


def _shown(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class BucketForm(ModalScreen[dict[str, Any] | None]):
    """Dismissed with the added source (and its sync job) or the changed one, or None."""

    CSS_PATH = HERE / "bucket_form.tcss"
    BINDINGS = [
        Binding("ctrl+t", "test", "Test connection", priority=True),
        Binding("ctrl+s", "save", "Save bucket", priority=True),
        Binding("escape", "close", "Cancel"),
    ]

    def __init__(self, source: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.source = source  # editing this one (sources.list's entry), or adding

    def saved_value(self, param: str) -> str:
        """What the field shows for the bucket being edited (empty when adding)."""
        if self.source is None or param == "secret_access_key":
            return ""
        if param == "name":
            return str(self.source["name"])
        return _shown((self.source.get("config") or {}).get(param))

    @property
    def link(self) -> Link:
        return cast("LightboxApp", self.app).link

    def compose(self) -> ComposeResult:
        verb = f"Edit the bucket {self.source['name']}" if self.source else "Add a bucket"
        with Vertical(id="bf-box"):
            yield Static(f" {verb}   ctrl+t test connection · ctrl+s save · esc cancel",
                         id="bf-title")
            with VerticalScroll(id="bf-fields"):
                for param, label, hint, password in FIELDS:
                    fixed = self.source is not None and param in FIXED
                    shown_hint = "empty: keep the stored one (give it with a new key id)" \
                        if self.source is not None and password else hint
                    yield Label(label + (" (fixed)" if fixed else ""), classes="bf-label")
                    box = Input(value=self.saved_value(param), placeholder=shown_hint,
                                password=password, id=input_id(param))
                    box.disabled = fixed
                    yield box
            yield Static("", id="bf-result")

    def typed(self) -> dict[str, str]:
        """The fields that are not empty, as typed."""
        out: dict[str, str] = {}
        for param, _, _, _ in FIELDS:
            value = self.query_one("#" + input_id(param), Input).value.strip()
            if value:
                out[param] = value
        return out

    @staticmethod
    def as_params(typed: dict[str, str]) -> dict[str, Any]:
        """Typed text as the method's parameters: the interval a number where it reads as
        one (otherwise sent as typed, and the daemon names the field)."""
        out: dict[str, Any] = dict(typed)
        if "interval" in typed:
            try:
                out["interval"] = float(typed["interval"])
            except ValueError:
                pass
        return out

    def params(self) -> dict[str, Any]:
        return self.as_params(self.typed())

    result_text = ""   # what the result line says, as plain text (tests, screen readers)

    def say(self, text: Text | str) -> None:
        self.result_text = text.plain if isinstance(text, Text) else text
        self.query_one("#bf-result", Static).update(text)

    def changes(self) -> tuple[dict[str, Any], list[str]]:
        """For the bucket being edited: the values typed that differ from its own, and the
        fields emptied that had a value (cleared)."""
        typed = self.typed()
        changed = {k: v for k, v in typed.items()
                   if k not in FIXED and v != self.saved_value(k)}
        cleared = [k for k in CLEARABLE if k not in typed and self.saved_value(k)]
        return self.as_params(changed), cleared

    @work(group="bucket-form", exclusive=True)
    async def action_test(self) -> None:
        params = {k: v for k, v in self.params().items() if k not in ("name", "interval")}
        if self.source is not None and self.changes() == ({}, []):
            params = {"source": self.source["id"]}     # as saved: its stored secret too
        elif "bucket" not in params:
            self.say(Text("give at least the bucket", style="bold red"))
            return
        self.say("testing…")
        try:
            out = await self.link.call("sources.test", params, timeout=60)
        except RPC_ERRORS as exc:
            self.say(Text(f"cannot test: {exc}", style="bold red"))
            return
        lines = Text()
        for check in out["checks"]:
            mark, style = ("ok  ", "green") if check["ok"] else ("FAIL", "bold red")
            lines.append(f"{mark}  {check['name']:<12} ", style=style)
            lines.append(f"{check['message']}\n")
        lines.append(out["message"], style="bold green" if out["ok"] else "bold red")
        self.say(lines)

    @work(group="bucket-form", exclusive=True)
    async def action_save(self) -> None:
        if self.source is not None:
            await self._update(self.source)
            return
        params = self.params()
        if "name" not in params or "bucket" not in params:
            self.say(Text("give a name and the bucket", style="bold red"))
            return
        try:
            out = await self.link.call("sources.add", {"kind": "s3", **params})
        except RPC_ERRORS as exc:
            self.say(Text(f"not added: {_detail(exc)}", style="bold red"))
            return
        self.dismiss(out)

    async def _update(self, source: dict[str, Any]) -> None:
        changed, cleared = self.changes()
        if not changed and not cleared:
            self.say("nothing changed")
            return
        params: dict[str, Any] = {"source": source["id"], **changed}
        if cleared:
            params["clear"] = cleared
        try:
            out = await self.link.call("sources.update", params)
        except RPC_ERRORS as exc:
            self.say(Text(f"not changed: {_detail(exc)}", style="bold red"))
            return
        self.dismiss(out)

    def action_close(self) -> None:
        self.dismiss(None)


class BucketPicker(ModalScreen[dict[str, Any] | None]):
    """Which bucket to change, when there are several: dismissed with its sources.list
    entry, or None."""

    CSS_PATH = HERE / "bucket_form.tcss"
    BINDINGS = [Binding("escape", "close", "Cancel")]

    def __init__(self, buckets: list[dict[str, Any]]) -> None:
        super().__init__()
        self.buckets = buckets

    def compose(self) -> ComposeResult:
        with Vertical(id="bf-box"):
            yield Static(" Change which bucket?   enter pick · esc cancel", id="bf-title")
            yield OptionList(*(Option(f"{b['name']}  {b['path']}", id=str(b["id"]))
                               for b in self.buckets), id="bf-pick")

    @on(OptionList.OptionSelected, "#bf-pick")
    def _picked(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.buckets[event.option_index])

    def action_close(self) -> None:
        self.dismiss(None)
