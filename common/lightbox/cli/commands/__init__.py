"""One module per command: ``register(subparsers) -> parser`` and ``run(ctx, args) -> int``."""

from lightbox.cli.commands import (
    call,
    daemon,
    db,
    dupes,
    events,
    info,
    jobs,
    keys,
    lifecycle,
    ls,
    roots,
    scan,
    search,
    settings,
    status,
)

COMMANDS = (status, roots, scan, jobs, ls, info, search, dupes, call, events, lifecycle.Start,
            lifecycle.Stop, daemon, keys, db, settings)
