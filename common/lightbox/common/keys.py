"""CURVE key pairs for the TCP control socket.

Files use pyzmq's certificate format (``NAME.key`` holds the public key, ``NAME.key_secret``
both), written by ``lightbox keys generate``. A public key may also be given inline as its
40-character Z85 text, which is what goes into the daemon's authorized-keys file.
"""

from __future__ import annotations

import os
from pathlib import Path

import zmq
import zmq.auth


class KeyError_(Exception):
    """A key file that is missing, unreadable or not a CURVE key."""


def generate(directory: Path, name: str) -> tuple[Path, Path]:
    """Write NAME.key and NAME.key_secret (mode 0600) in ``directory``; returns both paths."""
    if not zmq.has("curve"):
        raise KeyError_("this libzmq was built without CURVE support")
    directory.mkdir(parents=True, exist_ok=True)
    public, secret = directory / f"{name}.key", directory / f"{name}.key_secret"
    for existing in (public, secret):
        if existing.exists():
            raise KeyError_(f"{existing} exists; refusing to overwrite a key")
    old = os.umask(0o077)
    try:
        pub_file, sec_file = zmq.auth.create_certificates(str(directory), name)
    finally:
        os.umask(old)
    os.chmod(sec_file, 0o600)
    return Path(pub_file), Path(sec_file)


def load_pair(path: Path) -> tuple[bytes, bytes]:
    """(public, secret) Z85 keys from a ``.key_secret`` file."""
    try:
        public, secret = zmq.auth.load_certificate(str(path))
    except (OSError, ValueError) as exc:
        raise KeyError_(f"cannot read CURVE secret key {path}: {exc}") from None
    if not secret:
        raise KeyError_(f"{path} holds no secret key (use the .key_secret file)")
    return public, secret


def load_public(value: str) -> bytes:
    """A public key from its Z85 text or from a ``.key`` / ``.key_secret`` file."""
    text = value.strip()
    if len(text) == 40 and not os.path.exists(text):
        return text.encode("ascii")
    try:
        public, _ = zmq.auth.load_certificate(os.path.expanduser(text))
    except (OSError, ValueError) as exc:
        raise KeyError_(f"cannot read CURVE public key {text}: {exc}") from None
    return public
