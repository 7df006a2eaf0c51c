"""``lightbox daemon``: run lightboxd in the foreground (the same as ``lightboxd``)."""

from __future__ import annotations

import argparse

from lightbox.cli.context import Context, Subparsers


def register(sub: Subparsers) -> argparse.ArgumentParser:
    p = sub.add_parser("daemon", help="run the daemon in the foreground (same as lightboxd)",
                       description="Run lightboxd in the foreground. Stop it with Ctrl-C or "
                       "SIGTERM.")
    p.add_argument("--database", metavar="URL", help="catalog database URL")
    p.add_argument("--log-level", choices=("debug", "info", "warning", "error"))
    p.add_argument("--log-format", choices=("text", "json"))
    p.add_argument("--print-config", action="store_true",
                   help="print the effective bootstrap configuration and exit")
    return p


def run(ctx: Context, args: argparse.Namespace) -> int:
    from lightbox.daemon.main import run as run_daemon

    args.config = ctx.config
    args.data_dir = ctx.data_dir
    return run_daemon(args)
