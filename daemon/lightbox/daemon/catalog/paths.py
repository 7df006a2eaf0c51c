"""How catalog rows map to file-system paths, in one place.

A photo's path is ``source.path / folder.path / photo.name``. ``folder.path`` is relative
to its source, "/"-separated, "" for the source's own top folder. Folder paths can be longer
than any portable unique index, so folders are unique on ``path_hash`` (sha1 of the path).

File names that are not valid UTF-8 cannot be stored in a UTF-8 catalog losslessly; the
scanner reports and skips them (``is_storable``) rather than store a name it could not open.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable


def path_hash(rel: str) -> str:
    return hashlib.sha1(rel.encode("utf-8"), usedforsecurity=False).hexdigest()


def join(source_path: str, rel: str, name: str | None = None) -> str:
    parts = [source_path.rstrip("/") or "/"]
    if rel:
        parts.append(rel)
    if name is not None:
        parts.append(name)
    return "/".join(parts) if parts[0] != "/" else "/" + "/".join(parts[1:])


def parent(rel: str) -> str | None:
    """The parent folder's relative path; None for the top folder."""
    if rel == "":
        return None
    head, _, _ = rel.rpartition("/")
    return head


def basename(rel: str) -> str:
    return rel.rpartition("/")[2]


def depth(rel: str) -> int:
    return 0 if rel == "" else rel.count("/") + 1


def ancestors(rel: str) -> list[str]:
    """"" first, then each folder down to ``rel`` itself."""
    out = [""]
    if rel:
        parts = rel.split("/")
        out += ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return out


def normalize(path: str) -> str:
    """An absolute, normalised path without touching the file system.

    POSIX lets ``normpath`` keep two leading slashes (``//x``); on Linux they name ``/x``.
    """
    return "/" + os.path.normpath(os.path.abspath(os.path.expanduser(path))).lstrip("/")


def relative_to(path: str, root: str) -> str | None:
    """``path`` relative to ``root`` ("" for the root itself), or None when outside it."""
    path, root = normalize(path), normalize(root)
    if path == root:
        return ""
    prefix = root.rstrip("/") + "/"
    if path.startswith(prefix):
        return path[len(prefix):]
    return None


def locate(path: str, roots: Iterable[tuple[int, str]]) -> tuple[int, str] | None:
    """Which root holds ``path``, and where below it. Roots never overlap (roots.add checks)."""
    for root_id, root_path in roots:
        rel = relative_to(path, root_path)
        if rel is not None:
            return root_id, rel
    return None


def is_storable(name: str) -> bool:
    """A name decoded with surrogateescape holds lone surrogates where it was not UTF-8."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return "/" not in name and "\0" not in name
