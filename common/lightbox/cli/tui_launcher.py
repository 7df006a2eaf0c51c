"""Open the TUI from ``lightbox`` with no command, keeping Textual out of the CLI's imports.

The daemon is checked first, while a plain one-line error is still possible: a TUI that opens
only to say "not connected" is a worse first experience than the command that starts it.
Once running, the TUI itself copes with the daemon going away and coming back.
"""

from __future__ import annotations

import os
import sys

from lightbox.cli import exits
from lightbox.cli.context import Context
from lightbox.common import errors

GRAPHICS = ("auto", "kitty", "sixel", "symbols", "halfcell", "none")


def launch(ctx: Context, graphics: str | None) -> int:
    # --graphics, then LIGHTBOX_GRAPHICS; None lets the TUI use its setting, then detection.
    mode = graphics or os.environ.get("LIGHTBOX_GRAPHICS") or None
    if mode is not None and mode not in GRAPHICS:
        ctx.error(f"LIGHTBOX_GRAPHICS={mode!r}: expected one of {', '.join(GRAPHICS)}")
        return exits.USAGE
    if not sys.stdin.isatty() or not sys.stdout.isatty():
        ctx.error("the terminal UI needs a terminal; for scripts use the subcommands "
                  "(lightbox --help)")
        return exits.USAGE
    endpoint = ctx.endpoint()
    try:
        ctx.call("hello", timeout=3.0)
    except errors.DaemonNotRunning as exc:
        ctx.error(f"{exc}. Start it with `{ctx.command('start')}`, then run "
                  f"`{ctx.command()}` again.")
        return exits.NOT_RUNNING
    finally:
        ctx.close()
    from lightbox.tui.main import run_app

    return run_app(endpoint, graphics=mode, start_command=ctx.command("start"))
