"""``o``: open a photo's original with a program of the user's choice.

The bytes come through the daemon (``photos.original``, chunk by chunk), so this works the
same against a daemon on another host; they land in ``$XDG_CACHE_HOME/lightbox/originals``
(written to a temporary name, then renamed) and the program runs detached from the terminal,
which belongs to the UI. The command is ``open_command`` in tui.toml; ``{}`` stands for the
file, or it goes last.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import threading
from pathlib import Path

from lightbox.tui.link import Link

CHUNK = 8 << 20


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "lightbox" / "originals"


def command(configured: str) -> list[str] | None:
    """The command line to run, or None when nothing is configured and nothing will do."""
    if configured.strip():
        return shlex.split(configured)
    if (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")) and \
            shutil.which("xdg-open"):
        return ["xdg-open"]
    return None


def safe_name(photo_id: int, name: str) -> str:
    """A file name for the cache: the id first (unique), then the name without anything a
    shell or a viewer could misread."""
    return f"{photo_id}-{re.sub(r'[^A-Za-z0-9._-]+', '_', name)[-120:] or 'photo'}"


async def fetch(link: Link, photo_id: int, name: str) -> Path:
    """The original of ``photo_id`` in the cache (fetched again each time: it may have
    changed)."""
    target = cache_dir() / safe_name(photo_id, name)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".part")
    offset = 0
    with tmp.open("wb") as out:
        while True:
            part = await link.call("photos.original", {"id": photo_id, "offset": offset,
                                                       "length": CHUNK}, timeout=60)
            data = part.get("data") or b""
            out.write(data)
            offset += len(data)
            if part.get("eof") or not data:
                break
    tmp.replace(target)
    return target


def launch(argv: list[str], path: Path) -> subprocess.Popen[bytes]:
    """Run ``argv`` on ``path`` in its own session, with no access to the UI's terminal."""
    args = [str(path) if a == "{}" else a for a in argv]
    if "{}" not in argv:
        args.append(str(path))
    proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, start_new_session=True)
    threading.Thread(target=proc.wait, daemon=True, name="opener").start()  # no zombie
    return proc
