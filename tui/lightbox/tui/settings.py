"""The TUI's own settings and where it left off.

``$XDG_CONFIG_HOME/lightbox/tui.toml`` holds choices a person makes once (graphics mode,
thumbnail size); ``$XDG_STATE_HOME/lightbox/tui-state.json`` remembers the last folder and
photo so the next start opens where the last one ended. The daemon's settings (F10) are
about the library; these are about this terminal, so they live with the client.

The graphics mode: ``--graphics``, then ``LIGHTBOX_GRAPHICS``, then a mode saved for this
terminal (``[graphics_by_terminal]``), then automatic detection; the rules are in
``imaging.choice``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lightbox.common.fields import Field
from lightbox.tui.imaging.graphics import DRAWN, MODES, SYMBOL_SETS

THUMB_SIZES = ("small", "medium", "large")

# The TUI's own preferences, declared with the same Field type as the daemon's settings so
# the file, the settings screen and the daemon's values are checked one way. Attribute of
# ``Settings`` -> field (its name is the key in tui.toml).
PREFS: dict[str, Field] = {
    "graphics": Field("graphics", "string", "how pictures are drawn in every terminal "
                      "(auto: detected; a mode saved for this terminal wins)", default="auto",
                      enum=MODES),
    "symbols": Field("symbols", "string", "character set of the symbols mode",
                     default="auto", enum=("auto", *SYMBOL_SETS)),
    "thumb_size": Field("thumbnails", "string", "size of the grid's thumbnails",
                        default="medium", enum=THUMB_SIZES),
    "view": Field("view", "string", "how a folder opens", default="grid",
                  enum=("grid", "list")),
    "metadata": Field("metadata", "boolean", "show the info panel", default=False),
    "key_hints": Field("key_hints", "boolean", "show the key hints in the footer",
                       default=True),
    "open_command": Field("open_command", "string", "command `o` opens originals with "
                          "({} is the file; empty: xdg-open)", default="", max_length=1000),
}
TERMINAL_MODE = Field("graphics_by_terminal", "string", "mode saved for one terminal",
                      default="symbols", enum=DRAWN)


def config_file(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    base = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return Path(base) / "lightbox" / "tui.toml"


def state_file(env: Mapping[str, str] | None = None, endpoint: str | None = None) -> Path:
    """The last place, per daemon: two instances (``make demo`` beside ``make run``, or a
    remote daemon) each reopen where they were, not at a folder id of the other."""
    env = os.environ if env is None else env
    base = env.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    if endpoint is None:
        return Path(base) / "lightbox" / "tui-state.json"
    digest = hashlib.sha1(endpoint.encode(), usedforsecurity=False).hexdigest()[:12]
    return Path(base) / "lightbox" / f"tui-state-{digest}.json"


@dataclass
class Settings:
    graphics: str = "auto"  # older files: one mode for every terminal
    graphics_saved: dict[str, str] = field(default_factory=dict)  # terminal -> mode
    symbols: str = "auto"  # auto, blocks or sextants
    thumb_size: str = "medium"
    view: str = "grid"  # or "list"
    metadata: bool = False
    key_hints: bool = True
    # How `o` opens an original (fetched through photos.original into a temporary file):
    # a command line, "{}" standing for the file (else it goes last). Empty: xdg-open when
    # there is a display.
    open_command: str = ""
    path: Path | None = None  # where to save; None: do not save (tests)
    problems: list[str] = field(default_factory=list)
    # Keys the file sets. The grid size the file does not set follows the library's default
    # (the daemon's ``tui.grid_size`` setting).
    explicit: set[str] = field(default_factory=set)
    grid_from_library: bool = False  # thumb_size came from the daemon's tui.grid_size

    @property
    def own_grid_size(self) -> bool:
        """The grid size is this client's own choice (else: the library's default)."""
        return "thumbnails" in self.explicit or (
            not self.grid_from_library and self.thumb_size != PREFS["thumb_size"].default)

    @classmethod
    def load(cls, path: Path | None) -> Settings:
        s = cls(path=path)
        if path is None or not path.exists():
            return s
        try:
            doc = tomllib.loads(path.read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            s.problems.append(f"{path}: {exc}")
            return s
        for attr, fld in PREFS.items():
            if fld.name not in doc:
                continue
            try:
                setattr(s, attr, fld.check(doc[fld.name]))
                s.explicit.add(fld.name)
            except ValueError as exc:
                s.problems.append(f"{path}: {fld.name} = {doc[fld.name]!r}: {exc}")
        saved = doc.get("graphics_by_terminal", {})
        if isinstance(saved, dict):
            for terminal, mode in saved.items():
                try:
                    s.graphics_saved[str(terminal)] = TERMINAL_MODE.check(mode)
                except ValueError as exc:
                    s.problems.append(f"{path}: graphics_by_terminal: {terminal} = {mode!r}: "
                                      f"{exc}")
        return s

    def save(self) -> None:
        if self.path is None:
            return
        text = (
            "# lightbox terminal UI settings (written by the app; edit freely)\n"
            f'graphics = "{self.graphics}"    # every terminal: auto (see graphics_by_terminal)\n'
            f'symbols = "{self.symbols}"    # symbols mode: auto, blocks or sextants\n'
            + (f'thumbnails = "{self.thumb_size}"    # small, medium or large\n'
               if self.own_grid_size else
               f'# thumbnails = "{self.thumb_size}"    # unset: the library\'s tui.grid_size\n')
            + f'view = "{self.view}"    # grid or list\n'
            f"metadata = {'true' if self.metadata else 'false'}    # show the info panel\n"
            f"key_hints = {'true' if self.key_hints else 'false'}    # footer key hints\n"
            f"open_command = {json.dumps(self.open_command)}    # o opens originals with "
            "this ({} is the file; empty: xdg-open)\n"
        )
        # Tables last (TOML). Saved in the settings screen, per terminal: see imaging.choice.
        text += "\n[graphics_by_terminal]    # kitty, sixel, symbols, halfcell or none\n"
        text += "".join(f"{json.dumps(t)} = {json.dumps(m)}\n"
                        for t, m in sorted(self.graphics_saved.items()))
        with contextlib.suppress(OSError):
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_suffix(".tmp")
            tmp.write_text(text)
            tmp.replace(self.path)


@dataclass
class Place:
    """Where the browser was: a folder and the photo under the cursor."""

    folder_id: int | None = None
    folder_path: str | None = None
    photo_id: int | None = None

    @classmethod
    def load(cls, path: Path | None) -> Place:
        if path is None:
            return cls()
        try:
            doc: Any = json.loads(path.read_text())
            return cls(doc.get("folder_id"), doc.get("folder_path"), doc.get("photo_id"))
        except (OSError, ValueError, AttributeError):
            return cls()

    def save(self, path: Path | None) -> None:
        if path is None:
            return
        with contextlib.suppress(OSError):
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"folder_id": self.folder_id,
                                       "folder_path": self.folder_path,
                                       "photo_id": self.photo_id}))
            tmp.replace(path)
