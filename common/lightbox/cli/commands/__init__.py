"""One module per command: ``register(subparsers) -> parser`` and ``run(ctx, args) -> int``."""

from lightbox.cli.commands import call, daemon, events, jobs, keys, lifecycle, roots, scan, status

COMMANDS = (status, roots, scan, jobs, call, events, lifecycle.Start, lifecycle.Stop, daemon,
            keys)
