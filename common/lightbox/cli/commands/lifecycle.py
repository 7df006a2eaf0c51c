"""``lightbox start`` and ``lightbox stop``: the daemon in the background without systemd."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from typing import Any

from lightbox.cli import exits
from lightbox.cli.context import CliError, Context, Subparsers
from lightbox.common import config as configmod
from lightbox.common import errors
from lightbox.common.paths import PathError


def _ping(ctx: Context) -> dict[str, Any] | None:
    """hello's result, {"stopping": True} from a daemon on its way out, None if nothing answers."""
    try:
        result: dict[str, Any] = ctx.call("hello", timeout=2.0)
        return result
    except errors.Unavailable:
        return {"stopping": True, "version": "?"}
    except (errors.DaemonNotRunning, errors.RequestTimeout, errors.ClientError):
        ctx.close()
        return None


class Start:
    @staticmethod
    def register(sub: Subparsers) -> argparse.ArgumentParser:
        p = sub.add_parser("start", help="start the daemon in the background",
                           description="Start lightboxd detached from the terminal, its log "
                           "in the state dir, and wait until it answers.")
        p.add_argument("--wait-timeout", type=float, default=30.0, metavar="SECONDS",
                       help="how long to wait for the daemon to answer (default 30)")
        return p

    @staticmethod
    def run(ctx: Context, args: argparse.Namespace) -> int:
        hello = _ping(ctx)
        if hello is not None and hello.get("stopping"):
            raise CliError("lightboxd is shutting down; try again in a moment", exits.RETRY)
        if hello is not None:
            if ctx.json:
                ctx.emit_json({"started": False, "running": True, **hello})
            else:
                ctx.print(f"lightboxd {hello['version']} is already running")
            return 0
        try:
            cfg = configmod.load(ctx.config, ctx.data_dir)
        except configmod.ConfigError as exc:
            raise CliError(f"configuration error: {exc}", exits.USAGE) from None
        try:
            cfg.paths.ensure()
        except PathError as exc:
            raise CliError(str(exc), exits.USAGE) from None
        log_path = cfg.paths.log_file
        cmd = [sys.executable, "-m", "lightbox.daemon"]
        if ctx.config:
            cmd += ["--config", ctx.config]
        if ctx.data_dir:
            cmd += ["--data-dir", ctx.data_dir]
        # The log names photos and folders: the owner's alone, like the catalog.
        fd = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        with open(fd, "ab") as log, open(os.devnull, "rb") as devnull:
            proc = subprocess.Popen(cmd, stdin=devnull, stdout=log, stderr=log,
                                    start_new_session=True, close_fds=True)
        deadline = time.monotonic() + args.wait_timeout
        while time.monotonic() < deadline:
            code = proc.poll()
            if code is not None:
                raise CliError(f"lightboxd exited with code {code}; see {log_path}",
                               exits.ERROR)
            hello = _ping(ctx)
            if hello is not None:
                if ctx.json:
                    ctx.emit_json({"started": True, "pid": proc.pid, "log": str(log_path),
                                   **hello})
                else:
                    ctx.print(f"lightboxd {hello['version']} started (pid {proc.pid}); "
                              f"log: {log_path}")
                return 0
            time.sleep(0.1)
        raise CliError(f"lightboxd (pid {proc.pid}) did not answer within "
                       f"{args.wait_timeout:g} s; see {log_path}", exits.TIMEOUT)


class Stop:
    @staticmethod
    def register(sub: Subparsers) -> argparse.ArgumentParser:
        p = sub.add_parser("stop", help="stop the daemon (system.shutdown) and wait for it",
                           description="Ask the daemon to stop and wait until it is gone.")
        p.add_argument("--wait-timeout", type=float, default=15.0, metavar="SECONDS")
        return p

    @staticmethod
    def run(ctx: Context, args: argparse.Namespace) -> int:
        try:
            ctx.call("system.shutdown")
        except errors.DaemonNotRunning:
            if not ctx.json:
                ctx.print("lightboxd is not running")
            else:
                ctx.emit_json({"stopped": False, "running": False})
            return 0
        ctx.close()
        deadline = time.monotonic() + args.wait_timeout
        while time.monotonic() < deadline:
            if _ping(ctx) is None:
                if ctx.json:
                    ctx.emit_json({"stopped": True})
                else:
                    ctx.print("lightboxd stopped")
                return 0
            ctx.close()
            time.sleep(0.1)
        raise CliError(f"lightboxd still answers after {args.wait_timeout:g} s", exits.TIMEOUT)
