"""One module per command: ``register(subparsers) -> parser`` and ``run(ctx, args) -> int``."""

from lightbox.cli.commands import call, daemon, events, keys, lifecycle, status

COMMANDS = (status, call, events, lifecycle.Start, lifecycle.Stop, daemon, keys)
