"""Listing directories for the scanner: the one part of a rescan that touches every file.

A listing is a directory's subdirectories and candidate files with their (size, mtime_ns,
inode), plus a digest of those. It runs outside the event loop: in a thread for small
passes, in the worker processes for big ones (``list_many`` is picklable by reference and
leaves out the files of folders whose digest is as expected, so little comes back).

The loop in ``list_dir`` is the hot path of a rescan: one ``stat`` per file, like ``find``;
keep it lean.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import stat
from dataclasses import dataclass, field
from typing import NamedTuple

from lightbox.daemon.catalog import paths
from lightbox.daemon.library.ignore import ignored_dir, ignored_file


class FileEntry(NamedTuple):
    name: str
    size: int
    mtime_ns: int
    inode: int


@dataclass
class Listing:
    rel: str
    dirs: list[str] = field(default_factory=list)
    files: list[FileEntry] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    unreadable: set[str] = field(default_factory=set)  # names seen but not stat-able
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (name, reason): links,
    # FIFOs, sockets, devices — never opened; the scanner reports them
    complete: bool = False  # the directory itself could be listed
    gone: bool = False  # the directory itself is not there
    digest: str | None = None  # of the files' names and fingerprints, when complete
    key: tuple[int, int] | None = None  # (st_dev, st_ino) of the directory
    unchanged: bool = False  # digest as expected: ``files`` was dropped, ``count`` kept
    count: int = 0  # files listed


def ignored(name: str, patterns: tuple[str, ...]) -> bool:
    """Whether a file or folder name matches one of a root's ``ignore`` patterns."""
    return any(fnmatch.fnmatchcase(name, p) for p in patterns)


def list_dir(root: str, rel: str, exclude: frozenset[str] = frozenset(),
             ignore: tuple[str, ...] = (), expected: str | None = None) -> Listing:
    """One directory's subdirectories and candidate files, with their stat data.

    ``ignore``: the root's name patterns (``roots.<id>.ignore``); matching files and folders
    are not listed at all, so the digest is that of what is kept. ``expected``: the digest
    the catalog has for this folder; when the listing has it, the files are left out
    (``unchanged``: the caller knows them already)."""
    out = Listing(rel)
    path = paths.join(root, rel)
    try:
        st = os.stat(path)
        if not stat.S_ISDIR(st.st_mode):
            out.gone = True
            return out
        out.key = (st.st_dev, st.st_ino)
        with os.scandir(path) as it:
            entries = list(it)
    except FileNotFoundError:
        out.gone = True
        return out
    except OSError as exc:
        out.problems.append(f"{path}: {exc.strerror or exc}")
        return out
    out.complete = True
    # The hot loop of a rescan (a stat per file, like find): keep it lean. Regular files
    # first, by the d_type of the directory read (no system call); plain tuples, made
    # FileEntry only when the listing is not as expected.
    found: list[tuple[str, int, int, int]] = []
    append = found.append
    for entry in entries:
        name = entry.name
        if not name.isascii() and not paths.is_storable(name):
            out.problems.append(f"{path}: skipped a name that is not valid UTF-8: "
                                f"{os.fsencode(name)!r}")
            continue
        if ignore and ignored(name, ignore):
            continue
        try:
            if entry.is_file(follow_symlinks=False):
                if name in exclude:
                    out.unreadable.add(name)  # still changing: neither new nor gone yet
                    continue
                if ignored_file(name):
                    continue
                est = entry.stat(follow_symlinks=False)
                append((name, est.st_size, est.st_mtime_ns, est.st_ino))
            elif entry.is_dir(follow_symlinks=False):
                if not ignored_dir(name):
                    out.dirs.append(name)
            elif entry.is_symlink():
                # Links are never followed, out of the root or inside it (``confine``
                # refuses them at read time too).
                if not ignored_file(name):
                    out.skipped.append((name, "symlink"))
            elif name in exclude:
                out.unreadable.add(name)
            elif not ignored_file(name):
                out.skipped.append((name, "not_regular"))  # FIFO, socket, device: not opened
        except OSError as exc:
            out.unreadable.add(name)
            out.problems.append(f"{path}/{name}: {exc.strerror or exc}")
    out.count = len(found)
    if not out.unreadable:
        found.sort()
        h = hashlib.blake2b(digest_size=16)
        h.update("\n".join([f"{n}\0{s}\0{m}\0{i}" for n, s, m, i in found]).encode())
        out.digest = h.hexdigest()
        if expected is not None and out.digest == expected:
            out.unchanged = True
            return out
    out.files = list(map(FileEntry._make, found))
    return out


def list_many(root: str, rels: list[str], exclude: frozenset[str],
              expected: dict[str, str], ignore: tuple[str, ...] = ()) -> list[Listing]:
    """Several directories; those whose digest is as ``expected`` come back without their
    files (the caller knows them already). Runs in a thread or a worker process."""
    return [list_dir(root, rel, exclude, ignore, expected.get(rel)) for rel in rels]
