"""The right pane: everything the catalog knows about the selected photo."""

from __future__ import annotations

from typing import Any

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.containers import VerticalScroll
from textual.widgets import Static

from lightbox.common.orientation import upright_of
from lightbox.tui import format as fmt


def rows(p: dict[str, Any]) -> list[tuple[str, str]]:
    """Label/value pairs for one photo (``photos.get``), most useful first."""
    dup = p.get("duplicates") or {}
    near = dup.get("near")
    out = [
        ("name", p.get("name") or "—"),
        ("taken", fmt.taken(p.get("taken_at"), p.get("taken_offset"), seconds=True)),
        ("camera", fmt.camera(p)),
        ("lens", p.get("lens") or "—"),
        ("exposure", fmt.exposure(p.get("exposure_time"))),
        ("aperture", fmt.number(p.get("f_number"), "f/")),
        ("ISO", fmt.number(p.get("iso"))),
        ("focal length", fmt.number(p.get("focal_length"), suffix=" mm")),
        ("GPS", fmt.gps(p.get("gps_lat"), p.get("gps_lon"), p.get("gps_alt"))),
        ("dimensions", fmt.dims(*upright_of(p))),  # as shown, after the EXIF rotation
        ("orientation", str(p.get("orientation") or "—")),
        ("format", (p.get("format") or "—").upper() + (f" ({p['mime']})" if p.get("mime")
                                                        else "")),
        ("size", fmt.size(p.get("size"))),
        ("modified", fmt.utc_local(p.get("mtime"))),
        ("path", p.get("path") or "—"),
        ("sha256", p.get("sha256") or "—"),
        ("duplicates", f"{dup.get('exact', 0)} exact, "
                       f"{'?' if near is None else near} near"),
        ("status", p.get("status") or "—"),
    ]
    if p.get("error"):
        out.append(("error", str(p["error"])))
    if p.get("missing_since"):
        out.append(("missing since", fmt.utc_local(p["missing_since"])))
    return out


class MetadataPanel(VerticalScroll, can_focus=False):
    DEFAULT_CSS = """
    MetadataPanel {
        width: 40;
        background: $panel;
        border-left: vkey $panel-lighten-2;
        padding: 0 1;
    }
    MetadataPanel > Static {
        width: 1fr;
    }
    """

    def compose(self) -> ComposeResult:
        yield Static("", id="meta-body")

    photo: dict[str, Any] | None = None

    def show(self, photo: dict[str, Any] | None, note: str = "") -> None:
        self.photo = photo
        body = self.query_one("#meta-body", Static)
        if photo is None:
            body.update(Text(note or "no photo selected", style="dim"))
            return
        table = Table.grid(padding=(0, 1))
        table.add_column(style="dim", no_wrap=True)
        table.add_column(overflow="fold")
        for key, value in rows(photo):
            style = "bold red" if key == "error" else ""
            table.add_row(key, Text(value, style=style))
        body.update(table)
