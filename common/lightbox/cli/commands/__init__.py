"""One module per command: ``register(subparsers) -> parser`` and ``run(ctx, args) -> int``."""

from lightbox.cli.commands import (
    backup,
    call,
    daemon,
    db,
    dupes,
    events,
    get,
    importing,
    info,
    jobs,
    keys,
    lifecycle,
    ls,
    roots,
    scan,
    search,
    settings,
    sources,
    status,
    sync,
)

COMMANDS = (status, roots, sources, scan, sync, get, importing, backup, jobs, ls, info,
            search, dupes, call, events, lifecycle.Start, lifecycle.Stop, daemon, keys, db,
            settings)
