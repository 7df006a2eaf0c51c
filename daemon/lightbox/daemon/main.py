"""``lightboxd``: run the daemon in the foreground (systemd, a terminal, or ``lightbox start``).

Exit codes: 0 stopped normally; 1 failed while running; 2 bad configuration or arguments;
3 another daemon already serves this socket; 4 the catalog could not be opened or migrated.
"""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import os
import signal
import sys
from collections.abc import Sequence

from lightbox.common import __version__, logs
from lightbox.common import config as configmod
from lightbox.common.paths import PathError

EXIT_OK, EXIT_FAILED, EXIT_CONFIG, EXIT_RUNNING, EXIT_DATABASE = 0, 1, 2, 3, 4


def build_parser(prog: str = "lightboxd") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="The lightbox daemon: catalog, watchers, jobs and the control socket. "
        "Runs in the foreground; use systemd (see systemd/) or `lightbox start` to run it "
        "in the background.",
        epilog="exit codes: 0 stopped normally, 1 failed, 2 bad configuration, "
        "3 already running, 4 catalog database unusable",
    )
    add_daemon_arguments(parser)
    parser.add_argument("--version", action="version", version=f"lightboxd {__version__}")
    return parser


def add_daemon_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE",
                        help="bootstrap TOML file (default: $XDG_CONFIG_HOME/lightbox/"
                        "lightboxd.toml; env LIGHTBOX_CONFIG)")
    parser.add_argument("--data-dir", metavar="DIR",
                        help="keep catalog, cache, logs and sockets under DIR, so that several "
                        "instances can run side by side (env LIGHTBOX_DATA_DIR)")
    parser.add_argument("--database", metavar="URL", help="catalog database URL")
    parser.add_argument("--log-level", choices=configmod.LOG_LEVELS)
    parser.add_argument("--log-format", choices=("text", "json"))
    parser.add_argument("--print-config", action="store_true",
                        help="print every bootstrap key with its effective value and exit")


def run(args: argparse.Namespace) -> int:
    # Everything the daemon creates — catalog, WAL, logs, thumbnails, keys, sockets — is
    # the owner's alone, whatever umask it was started with.
    os.umask(0o077)
    try:
        cfg = configmod.load(
            args.config,
            args.data_dir,
            overrides={"database.url": args.database, "log.level": args.log_level,
                       "log.format": args.log_format},
        )
    except configmod.ConfigError as exc:
        print(f"lightboxd: configuration error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if args.print_config:
        _print_config(cfg)
        return EXIT_OK
    logs.setup(cfg["log.level"], cfg["log.format"])
    log = logs.get("daemon")
    # `kill -USR2` writes every thread's stack to stderr (the journal), from a C-level handler
    # that runs even while the event loop is stuck: the one way to see where a daemon that
    # is alive but answering nothing is waiting, without a debugger on a NAS.
    faulthandler.register(signal.SIGUSR2, all_threads=True)
    try:
        for fixed in cfg.paths.ensure():
            log.warning("closed to other users", what=fixed)
    except PathError as exc:
        print(f"lightboxd: {exc}", file=sys.stderr)
        return EXIT_CONFIG

    # Imported here so `lightboxd --help` and config errors stay fast.
    from lightbox.daemon.app import Daemon
    from lightbox.daemon.catalog.database import DatabaseError
    from lightbox.daemon.control.server import BindError
    from lightbox.daemon.lock import AlreadyRunning

    try:
        return asyncio.run(Daemon(cfg).run())
    except AlreadyRunning as exc:
        print(f"lightboxd: {exc}", file=sys.stderr)
        return EXIT_RUNNING
    except DatabaseError as exc:
        log.error("catalog unusable", error=str(exc))
        print(f"lightboxd: {exc}", file=sys.stderr)
        return EXIT_DATABASE
    except BindError as exc:
        print(f"lightboxd: {exc}", file=sys.stderr)
        return EXIT_RUNNING if exc.in_use else EXIT_CONFIG
    except PathError as exc:
        print(f"lightboxd: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return EXIT_OK
    except Exception:
        log.exception("daemon failed")
        return EXIT_FAILED


def _print_config(cfg: configmod.Config) -> None:
    print(f"# config file: {cfg.source or '(none)'}")
    print(f"# data dir: {cfg.paths.data_dir}")
    print(f"# cache dir: {cfg.paths.cache_dir}")
    print(f"# state dir: {cfg.paths.state_dir}")
    print(f"# control socket: {cfg.control_endpoint}")
    print("# runtime settings below are starting values: a value stored in the catalog wins "
          "(see `lightbox settings`)")
    for key in configmod.KEYS:
        value = cfg[key.name]
        shown = "(unset)" if value is None else value
        if key.secret:
            shown = "(set)" if value else "(unset)"
        if key.name == "database.url":
            from lightbox.daemon.catalog.database import mask

            shown = mask(cfg.database_url)
        print(f"{key.name} = {shown}    # {cfg.origins.get(key.name, 'default')}")


def main(argv: Sequence[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    sys.exit(run(args))


if __name__ == "__main__":
    main()
