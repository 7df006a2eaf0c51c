"""Add an S3 bucket as a source, from the settings screen (ctrl+b): a form, "test
connection" (ctrl+t: ``sources.test`` with what is typed, each check shown with its words)
and add (ctrl+s: ``sources.add``, which starts the first sync). The secret is typed into a
password field, sent once and never shown again. Network I/O runs in workers; the look is
in ``bucket_form.tcss``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

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
)


def input_id(param: str) -> str:
    return "bf-" + param.replace("_", "-")


class BucketForm(ModalScreen[dict[str, Any] | None]):
    """Dismissed with the added source (and its sync job), or None."""

    CSS_PATH = HERE / "bucket_form.tcss"
    BINDINGS = [
        Binding("ctrl+t", "test", "Test connection", priority=True),
        Binding("ctrl+s", "add", "Add bucket", priority=True),
        Binding("escape", "close", "Cancel"),
    ]

    @property
    def link(self) -> Link:
        return cast("LightboxApp", self.app).link

    def compose(self) -> ComposeResult:
        with Vertical(id="bf-box"):
            yield Static(" Add a bucket   ctrl+t test connection · ctrl+s add · esc cancel",
                         id="bf-title")
            for param, label, hint, password in FIELDS:
                yield Label(label, classes="bf-label")
                yield Input(placeholder=hint, password=password, id=input_id(param))
            yield Static("", id="bf-result")

    def params(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for param, _, _, _ in FIELDS:
            value = self.query_one("#" + input_id(param), Input).value.strip()
            if value:
                out[param] = value
        return out

    result_text = ""   # what the result line says, as plain text (tests, screen readers)

    def say(self, text: Text | str) -> None:
        self.result_text = text.plain if isinstance(text, Text) else text
        self.query_one("#bf-result", Static).update(text)

    @work(group="bucket-form", exclusive=True)
    async def action_test(self) -> None:
        params = {k: v for k, v in self.params().items() if k != "name"}
        if "bucket" not in params:
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
    async def action_add(self) -> None:
        params = self.params()
        if "name" not in params or "bucket" not in params:
            self.say(Text("give a name and the bucket", style="bold red"))
            return
        try:
            out = await self.link.call("sources.add", {"kind": "s3", **params})
        except RPC_ERRORS as exc:
            data = getattr(exc, "data", None)
            detail = ""
            if isinstance(data, dict) and isinstance(data.get("errors"), dict):
                detail = "; ".join(f"{k}: {v}" for k, v in data["errors"].items())
            self.say(Text(f"not added: {detail or exc}", style="bold red"))
            return
        self.dismiss(out)

    def action_close(self) -> None:
        self.dismiss(None)
