"""``lightbox get ID [-o FILE]``: download one photo's original, from a root or a bucket,
checking its sha256 against the catalog's before the file is kept."""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile

from lightbox.cli.context import CliError, Context, Subparsers

CHUNK = 4 << 20


def register(sub: Subparsers) -> argparse.ArgumentParser:
    p = sub.add_parser("get", help="download a photo's original (sha256 checked)")
    p.add_argument("id", type=int, help="photo id")
    p.add_argument("-o", "--output", help="file to write (default: the photo's name here; "
                   "- for standard output)")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    return p


def run(ctx: Context, args: argparse.Namespace) -> int:
    first = ctx.call("photos.original", {"id": args.id, "offset": 0, "length": CHUNK})
    want = first.get("sha256")
    if args.output == "-":
        out_dir, target = None, None
    else:
        name = args.output or ctx.call("photos.get", {"id": args.id})["name"]
        target = os.path.abspath(name)
        if os.path.exists(target) and not args.force:
            raise CliError(f"{target} exists (--force to overwrite)")
        out_dir = os.path.dirname(target)
    digest = hashlib.sha256()
    fd, tmp = (None, None) if out_dir is None else tempfile.mkstemp(
        prefix=".lightbox-get-", dir=out_dir)
    sink = sys.stdout.buffer if fd is None else os.fdopen(fd, "wb")
    written = 0
    try:
        reply = first
        while True:
            data = reply["data"]
            digest.update(data)
            sink.write(data)
            written += len(data)
            if reply["eof"] or not data:
                break
            reply = ctx.call("photos.original", {"id": args.id, "offset": written,
                                                 "length": CHUNK})
        sink.flush()
        got = digest.hexdigest()
        if want and got != want:
            raise CliError(f"photo {args.id}: sha256 {got} is not the catalog's {want}; "
                           "nothing kept")
        if tmp is not None and target is not None:
            os.fsync(sink.fileno())
            sink.close()
            os.replace(tmp, target)
            tmp = None
    finally:
        if fd is not None and not sink.closed:
            sink.close()
        if tmp is not None:
            os.unlink(tmp)
    result = {"id": args.id, "bytes": written, "sha256": digest.hexdigest(), "path": target}
    if ctx.json:
        ctx.emit_json(result)
    elif target is not None:
        ctx.print(f"{target}: {written} bytes, sha256 {digest.hexdigest()} (checked)")
    return 0
