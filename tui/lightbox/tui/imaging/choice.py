"""Which graphics mode to use, and what a person's choice means: the rules in one place.

- ``--graphics`` and ``LIGHTBOX_GRAPHICS`` are explicit for this run and win.
- A mode chosen in the command palette applies to this session only.
- A mode saved on purpose (the settings screen calls ``save``) is stored in ``tui.toml``
  *for the terminal it was saved in* (``Graphics.terminal``: "xterm-256color",
  "tmux in xterm-256color", ...). In another terminal it does not apply; in the same one it
  applies only while the terminal can still show it (Sixel saved in an xterm is not used
  once that xterm runs tmux without passthrough). When a saved choice is not used the app
  says why (``Resolved.notice``) and the log records it.
- Otherwise: detection.

The API for the settings screen: ``options`` (the values to offer, with "auto (detected:
…)" first), ``saved`` (what is saved for this terminal), ``save`` (store or, with "auto",
forget it) and ``LightboxApp.set_graphics`` to switch the running session.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

from lightbox.tui.imaging.graphics import LABELS, SYMBOL_SETS, Graphics, detect
from lightbox.tui.settings import Settings

log = logging.getLogger("lightbox.tui.graphics")


@dataclass(frozen=True)
class Resolved:
    graphics: Graphics
    notice: str = ""  # said once in the app when a saved choice was not used


def start(flag: str | None, env: Mapping[str, str], settings: Settings) -> Resolved:
    """The graphics for this run (call before the App starts: detection asks the
    terminal)."""
    symbols = env.get("LIGHTBOX_SYMBOLS") or settings.symbols or "auto"
    if symbols not in ("auto", *SYMBOL_SETS):
        log.warning("LIGHTBOX_SYMBOLS=%r ignored: expected one of %s", symbols, SYMBOL_SETS)
        symbols = "auto"
    forced = flag or env.get("LIGHTBOX_GRAPHICS")
    if forced:
        return Resolved(detect(forced, env, symbols=symbols))
    found = detect("auto", env, symbols=symbols)
    mode, where = saved_with_origin(settings, found)
    if mode == "auto":
        return Resolved(found)
    if mode in found.available:
        log.info("graphics: %s, saved for %s", mode, where)
        return Resolved(found.with_mode(mode, f"saved for {where}"))
    notice = (f"{LABELS.get(mode, mode)} is saved for {where}, but this terminal cannot show "
              f"it: using {LABELS[found.mode]} (detected)")
    log.info("graphics: %s", notice)
    return Resolved(found, notice)


def saved_with_origin(settings: Settings, graphics: Graphics) -> tuple[str, str]:
    """The mode saved for this terminal ("auto" when none) and where it came from."""
    mode = settings.graphics_saved.get(graphics.terminal)
    if mode:
        return mode, graphics.terminal
    if settings.graphics != "auto":  # an older tui.toml: one mode for every terminal
        return settings.graphics, "every terminal (graphics in tui.toml)"
    return "auto", ""


def saved(settings: Settings, graphics: Graphics) -> str:
    """What the settings screen shows as the saved value for this terminal."""
    return saved_with_origin(settings, graphics)[0]


def options(graphics: Graphics) -> list[tuple[str, str]]:
    """(value, label) pairs: auto first, then only the modes this terminal can show."""
    detected = graphics.detected
    auto = (f"auto (detected: {LABELS[detected]})" if detected
            else "auto (detected at start unless --graphics or LIGHTBOX_GRAPHICS is set)")
    return [("auto", auto), *((m, LABELS[m]) for m in graphics.available)]


def save(settings: Settings, graphics: Graphics, mode: str) -> None:
    """Save ``mode`` for this terminal ("auto": forget the saved choice) and write the
    file. The running session is switched separately (``LightboxApp.set_graphics``)."""
    if mode != "auto" and mode not in graphics.available:
        raise ValueError(f"{mode!r} cannot be shown in this terminal "
                         f"(it can show {', '.join(graphics.available)})")
    if mode == "auto":
        settings.graphics_saved.pop(graphics.terminal, None)
    else:
        settings.graphics_saved[graphics.terminal] = mode
    settings.graphics = "auto"  # the old one-for-all value is replaced by per-terminal ones
    settings.save()
    log.info("graphics: saved %s for %s", mode, graphics.terminal)
