"""Render the generated parts of the docs: the protocol reference and the config table.

Generated parts sit between marker comments; the prose around them is written by hand.
``python -m lightbox.common.api.reference FILE...`` rewrites every generated part found in
the files (``make docs``); ``--check`` exits 1 when one is out of date, and a test does the
same, so ``docs/protocol.md`` (methods, events, error codes, from the method registry) and
the README's configuration table (from ``lightbox.common.config.KEYS``) cannot drift.
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
CONFIG_BEGIN = "<!-- BEGIN GENERATED CONFIG (make docs) -->"
CONFIG_END = "<!-- END GENERATED CONFIG -->"


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


def render_config() -> str:
    from lightbox.common.config import KEYS, env_var

    lines = [CONFIG_BEGIN, "", "| key | environment | default | changes | meaning |",
             "|---|---|---|---|---|"]
    for key in KEYS:
        default = "—" if key.default in (None, "") or key.secret else f"`{key.default}`"
        limits = ""
        if key.enum:
            limits = " (" + ", ".join(map(str, key.enum)) + ")"
        when = ("bootstrap, restart" if key.scope == "bootstrap" else
                {"live": "live", "workers": "new workers", "restart": "restart"}[key.applies])
        secret = " — secret: shown only as set/unset and a fingerprint" if key.secret else ""
        lines.append(f"| `{key.name}` | `{env_var(key)}` | {default} | {when} | "
                     f"{key.description}{limits}{secret} |")
    lines += ["", CONFIG_END]
    return "\n".join(lines)


SECTIONS = ((BEGIN, END, render), (CONFIG_BEGIN, CONFIG_END, render_config))


def splice(document: str) -> str:
    """The document with every generated part it has replaced by a fresh rendering."""
    found = False
    for begin, end, fn in SECTIONS:
        if begin not in document:
            continue
        if end not in document:
            raise ValueError(f"{begin!r} without {end!r}")
        found = True
        head, _, rest = document.partition(begin)
        _, _, tail = rest.partition(end)
        document = head + fn() + tail
    if not found:
        raise ValueError("no generated-section markers found")
    return document


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("files", type=Path, nargs="+")
    parser.add_argument("--check", action="store_true", help="exit 1 if a file is out of date")
    args = parser.parse_args(argv)
    stale = 0
    for path in args.files:
        current = path.read_text()
        wanted = splice(current)
        if current == wanted:
            continue
        if args.check:
            print(f"{path} is out of date: run `make docs`", file=sys.stderr)
            stale += 1
        else:
            path.write_text(wanted)
            print(f"updated {path}")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
