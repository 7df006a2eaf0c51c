"""``lightbox keys generate``: a CURVE key pair for the TCP control socket."""

from __future__ import annotations

import argparse
from pathlib import Path

from lightbox.cli import exits
from lightbox.cli.context import CliError, Context, Subparsers
from lightbox.common import keys as keymod
from lightbox.common import paths


def register(sub: Subparsers) -> argparse.ArgumentParser:
    p = sub.add_parser(
        "keys", help="make CURVE key pairs for TCP access",
        description="Make a CURVE key pair. For the daemon: name it `server` and set "
        "control.server_key to the .key_secret file. For a client: the default name `client` "
        "in $XDG_CONFIG_HOME/lightbox is where lightbox looks; add the printed line to the "
        "daemon's authorized-keys file.",
    )
    ks = p.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    g = ks.add_parser("generate", help="write NAME.key and NAME.key_secret")
    g.add_argument("--dir", type=Path, help="where to write (default $XDG_CONFIG_HOME/lightbox)")
    g.add_argument("--name", default="client", help="file name stem (default client)")
    g.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                   help="print JSON only, on stdout")
    g.add_argument("--class", dest="klass", default="control",
                   choices=("read", "control", "admin"),
                   help="permission class for the suggested authorized-keys line")
    return p


def run(ctx: Context, args: argparse.Namespace) -> int:
    directory = args.dir or paths.default_client_key_file().parent
    try:
        public_file, secret_file = keymod.generate(directory, args.name)
    except keymod.KeyError_ as exc:
        raise CliError(str(exc), exits.ERROR) from None
    public, _ = keymod.load_pair(secret_file)
    line = f"{args.klass} {public.decode()} {args.name}"
    if ctx.json:
        ctx.emit_json({"public_key": public.decode(), "public_file": str(public_file),
                       "secret_file": str(secret_file), "authorized_keys_line": line})
    else:
        ctx.print(f"public key   {public.decode()}")
        ctx.print(f"written      {public_file}")
        ctx.print(f"             {secret_file}  (keep this one private)")
        ctx.print("authorized-keys line for the daemon:")
        ctx.print(f"  {line}")
    return 0
