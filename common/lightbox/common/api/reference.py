"""Render the method and event reference of ``docs/protocol.md`` from the registry.

The reference part of the document sits between two marker comments and is generated; the
prose around it is written by hand. ``python -m lightbox.common.api.reference FILE`` rewrites
the generated part (``make docs``); ``--check`` exits 1 when the file is out of date, and a
test does the same, so the document cannot drift from the code.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lightbox.common import errors
from lightbox.common.api import EVENTS, METHODS
from lightbox.common.api.schema import MethodSpec, Param

BEGIN = "<!-- BEGIN GENERATED REFERENCE (make docs) -->"
END = "<!-- END GENERATED REFERENCE -->"


def _param_row(p: Param) -> str:
    kind = p.type + (f" of {p.items}" if p.items else "") + (" or null" if p.nullable else "")
    limits = []
    if p.enum is not None:
        limits.append("one of " + ", ".join(f"`{v}`" for v in p.enum))
    if p.minimum is not None:
        limits.append(f"≥ {p.minimum:g}")
    if p.maximum is not None:
        limits.append(f"≤ {p.maximum:g}")
    if p.max_length is not None:
        limits.append(f"at most {p.max_length} " + ("items" if p.type == "array" else "chars"))
    need = "required" if p.required else (f"default `{p.default}`" if p.default is not None
                                          else "optional")
    desc = p.description + (f" ({'; '.join(limits)})" if limits else "")
    return f"| `{p.name}` | {kind} | {need} | {desc} |"


def _method(spec: MethodSpec) -> list[str]:
    out = [f"### `{spec.name}`", "", f"Permission: **{spec.permission.label}**."
           + (" Starts a job (returns `{job}` at once)." if spec.starts_job else "")
           + (" Paginated (`limit`, `cursor`)." if spec.paginated else ""), "", spec.summary, ""]
    if spec.params:
        out += ["| param | type | | meaning |", "|---|---|---|---|"]
        out += [_param_row(p) for p in spec.params]
        out.append("")
    else:
        out += ["No parameters.", ""]
    out.append(f"Result: `{spec.result}`")
    if spec.frames:
        out.append(f"\nBinary frames: {spec.frames}")
    for ex in spec.examples:
        out += ["", "```", ex, "```"]
    out.append("")
    return out


def render() -> str:
    lines = [BEGIN, "", "## Methods", ""]
    areas: dict[str, list[MethodSpec]] = {}
    for spec in METHODS.values():
        areas.setdefault(spec.name.split(".")[0], []).append(spec)
    lines.append("| method | permission | summary |")
    lines.append("|---|---|---|")
    for spec in METHODS.values():
        first = spec.summary.split(". ")[0].rstrip(".")
        lines.append(f"| [`{spec.name}`](#{spec.name.replace('.', '')}) | "
                     f"{spec.permission.label} | {first} |")
    lines.append("")
    for area in sorted(areas):
        for spec in areas[area]:
            lines += _method(spec)
    lines += ["## Error codes", "", "| code | name | exit code of `lightbox` |", "|---|---|---|"]
    for cls in errors.ERROR_CLASSES:
        lines.append(f"| {cls.code} | {cls.title} | {cls.exit_code} |")
    lines += ["", "## Events", "", "| topic | type | meaning | data |", "|---|---|---|---|"]
    for ev in EVENTS:
        data = ", ".join(f"`{k}`: {v}" for k, v in ev.data.items()) or "—"
        lines.append(f"| `{ev.topic}` | `{ev.type}` | {ev.summary} | {data} |")
    lines += ["", END]
    return "\n".join(lines)


def splice(document: str) -> str:
    """The document with its generated part replaced by ``render()``."""
    if BEGIN not in document or END not in document:
        raise ValueError(f"markers {BEGIN!r} and {END!r} not found")
    head, _, rest = document.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return head + render() + tail


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("file", type=Path)
    parser.add_argument("--check", action="store_true", help="exit 1 if FILE is out of date")
    args = parser.parse_args(argv)
    current = args.file.read_text()
    wanted = splice(current)
    if args.check:
        if current != wanted:
            print(f"{args.file} is out of date: run `make docs`", file=sys.stderr)
            return 1
        return 0
    if current != wanted:
        args.file.write_text(wanted)
        print(f"updated {args.file}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
