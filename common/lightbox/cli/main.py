"""``lightbox``: the command line for scripts and people, and the launcher of the TUI.

Each command lives in its own module under ``lightbox.cli.commands`` with ``register`` (its
argparse subparser) and ``run``. This module owns what they share: connection options,
``--json``, errors and exit codes. With no command, ``lightbox`` opens the TUI (imported
only then: the CLI itself never imports Textual).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from lightbox.cli import exits
from lightbox.cli.commands import COMMANDS
from lightbox.cli.context import CliError, Context
from lightbox.cli.tui_launcher import GRAPHICS
from lightbox.common import __version__, errors
from lightbox.common import keys as keymod

EPILOG = """\
exit codes:
  0  success
  1  the daemon answered with an error (or a job --wait'ed for failed, or a
     backup, verify or restore --wait'ed for left files undone: listed on stdout)
  2  bad usage or invalid parameters
  3  the daemon is not running or cannot be reached
  4  not found
  5  permission denied
  6  timed out waiting for a reply or a job
  7  conflict or busy: retry later
  130 interrupted (Ctrl-C)
  141 stdout was closed early (as with `lightbox search --all | head`): nothing printed

With no command, lightbox opens the terminal UI.
"""


def connection_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """Options every command takes; on subcommands they default to SUPPRESS so that
    ``lightbox --json status`` and ``lightbox status --json`` both work."""
    d: dict[str, Any] = {"default": argparse.SUPPRESS} if suppress else {}
    g = parser.add_argument_group("connection and output")
    g.add_argument("--json", action="store_true", help="print JSON only, on stdout", **d)
    g.add_argument("--socket", metavar="ADDR",
                   help="daemon address: /path, ipc:///path or tcp://host:port "
                   "(env LIGHTBOX_SOCKET; default: from the bootstrap config)", **d)
    g.add_argument("--data-dir", metavar="DIR",
                   help="talk to the instance whose --data-dir is DIR", **d)
    g.add_argument("--config", metavar="FILE", help="bootstrap config file", **d)
    g.add_argument("--server-key", metavar="KEY|FILE",
                   help="daemon public key for tcp:// (env LIGHTBOX_SERVER_KEY)", **d)
    g.add_argument("--client-key", metavar="FILE",
                   help="client secret key file for tcp:// (env LIGHTBOX_CLIENT_KEY)", **d)
    g.add_argument("--timeout", type=float, metavar="SECONDS",
                   help="seconds to wait for each reply (default 10)", **d)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lightbox",
        description="A photo library in the terminal. Talks to lightboxd over its control "
        "socket.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"lightbox {__version__}")
    parser.add_argument("--graphics", choices=GRAPHICS,
                        help="how the TUI draws images (env LIGHTBOX_GRAPHICS; default auto)")
    connection_options(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMANDS:
        p = module.register(sub)
        connection_options(p, suppress=True)
        p.set_defaults(run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    sys.exit(run(argv))


def run(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    ctx = Context.from_args(args)
    try:
        if getattr(args, "run", None) is None:
            from lightbox.cli.tui_launcher import launch

            return launch(ctx, args.graphics)
        code: int = args.run(ctx, args)
        sys.stdout.flush()  # a closed pipe shows here, while it can still be handled
        return code
    except BrokenPipeError:
        # The reader went away (`| head`): stop quietly, as coreutils do. Point stdout at
        # /dev/null so the interpreter's own flush at exit does not complain again.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
        return exits.BROKEN_PIPE
    except KeyboardInterrupt:
        return exits.INTERRUPTED
    except keymod.KeyError_ as exc:
        ctx.error(f"{exc}. A tcp:// daemon needs a client key pair: make one with "
                  f"`lightbox keys generate` and add its public key to the daemon's "
                  f"authorized keys (or pass --client-key FILE).")
        return exits.USAGE
    except CliError as exc:
        ctx.error(str(exc))
        return exc.code
    except errors.DaemonNotRunning as exc:
        ctx.error(f"{exc}. Start it with `{ctx.command('start')}` (or `lightboxd` in the "
                  "foreground).")
        return exits.NOT_RUNNING
    except errors.RequestTimeout as exc:
        ctx.error(str(exc))
        return exits.TIMEOUT
    except errors.RpcError as exc:
        ctx.error(exc.message, exc.data)
        return exits.for_error(exc)
    except (ValueError, OSError) as exc:
        ctx.error(str(exc))
        return exits.USAGE if isinstance(exc, ValueError) else exits.ERROR
    finally:
        ctx.close()


if __name__ == "__main__":
    main()
