"""Terminal safety for human-readable output: names and paths quoted the way coreutils ``ls``
quotes them (``--quoting-style=shell-escape``), so a file called ``a<ESC>]2;x<BEL>.jpg`` can
neither retitle the terminal nor hide itself, and what is printed can be pasted into a shell.

A name with nothing unprintable is printed as it is (spaces and all, so columns line up the
way they always did); a name with a control character (C0, DEL, C1) becomes
``'a'$'\\033'']2;x'$'\\a''.jpg'``. ``--json`` never goes through here: it stays exact.
"""

from __future__ import annotations

import re

# C0 controls, DEL and the C1 controls (U+0080-U+009F, which some terminals obey like ESC).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_NAMED = {"\a": "\\a", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\v": "\\v", "\f": "\\f",
          "\r": "\\r"}


def _escape_run(run: str) -> str:
    """A run of control characters as one ``$'...'`` word: named escapes where bash has one,
    else the octal of each UTF-8 byte (as ``ls`` prints a C1 control: ``\\302\\233``)."""
    out = []
    for ch in run:
        named = _NAMED.get(ch)
        if named is not None:
            out.append(named)
        else:
            out.extend(f"\\{b:03o}" for b in ch.encode("utf-8", "surrogateescape"))
    return "$'" + "".join(out) + "'"


def has_control(text: str) -> bool:
    return _CONTROL.search(text) is not None


def shell_name(text: str) -> str:
    """``text`` unchanged when it is printable; else quoted as ``ls`` does."""
    if not has_control(text):
        return text
    parts: list[str] = []
    pos = 0
    for m in re.finditer(r"[\x00-\x1f\x7f-\x9f]+", text):
        if m.start() > pos:
            parts.append("'" + text[pos:m.start()].replace("'", "'\\''") + "'")
        parts.append(_escape_run(m.group()))
        pos = m.end()
    if pos < len(text):
        parts.append("'" + text[pos:].replace("'", "'\\''") + "'")
    return "".join(parts)


def safe_line(text: str) -> str:
    """Last line of defence for any other text on a line (an EXIF camera name, an error
    message that quotes a file name): control characters become octal escapes."""
    if not has_control(text):
        return text
    return _CONTROL.sub(lambda m: "".join(f"\\{b:03o}" for b in m.group().encode()), text)
