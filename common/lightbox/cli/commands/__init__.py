"""One module per command: ``register(subparsers) -> parser`` and ``run(ctx, args) -> int``."""

from lightbox.cli.commands import (
    call,
    daemon,
    db,
    dupes,
    events,
    get,
    info,
    jobs,
    keys,
    lifecycle,
    ls,
    roots,
    scan,
    search,
    sources,
    status,
    sync,
)

COMMANDS = (status, roots, sources, scan, sync, get, jobs, ls, info, search, dupes, call,
            events, lifecycle.Start, lifecycle.Stop, daemon, keys, db)
