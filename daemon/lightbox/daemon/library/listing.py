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
import re
from array import array
from dataclasses import dataclass, field
from itertools import compress
from operator import attrgetter, not_
from stat import S_ISDIR, S_ISLNK, S_ISREG
from typing import NamedTuple

from lightbox.daemon.catalog import paths
from lightbox.daemon.library.ignore import IGNORED_EXT, ignored_dir, ignored_file

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_MODE, _SIZE = attrgetter("st_mode"), attrgetter("st_size")
_MTIME, _INODE = attrgetter("st_mtime_ns"), attrgetter("st_ino")
_FINGERPRINT = attrgetter("st_size", "st_mtime_ns", "st_ino")
_NAME = attrgetter("name")
# A name ending in one of the ignored extensions, in names joined by "/" and lowered.
_IGNORED_EXT_RE = re.compile(r"\.(?:{})(?=/|$)".format("|".join(
    re.escape(e[1:]) for e in sorted(IGNORED_EXT, key=lambda e: (-len(e), e)))))


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


def _digest(names: list[str], sts: list[os.stat_result]) -> str:
    """The digest of a folder's candidate files: their names (sorted) and fingerprints.

    Built from whole lists in C (one join, one array per field) rather than a string per
    file: this runs for every folder of every rescan. The encoding is unambiguous (names
    cannot hold ``/``, so the join splits one way; the arrays have one item per name), so
    an equal digest means an equal listing. A field out of the arrays' range (an mtime
    past 2262, an inode or size past 2**64) falls back to a tagged text form."""
    head = b"2\0" + "/".join(names).encode()
    h = hashlib.blake2b(head, digest_size=16)
    try:
        h.update(b"\0")
        h.update(array("Q", map(_SIZE, sts)).tobytes())
        h.update(array("q", map(_MTIME, sts)).tobytes())
        h.update(array("Q", map(_INODE, sts)).tobytes())
    except OverflowError:
        h = hashlib.blake2b(head, digest_size=16)
        h.update(b"\1" + repr(list(map(_FINGERPRINT, sts))).encode())
    return h.hexdigest()


def _maybe_ignored(joined: str) -> bool:
    """Whether any of the names joined by ``/`` might be ``ignored_file``: False only when
    none is (then the per-name check is skipped; it is a fifth of a listing's Python)."""
    if joined.startswith(".") or "/." in joined:
        return True  # hidden
    if not joined.isascii():
        return True  # str.lower maps a few non-ASCII letters to ASCII (K, the Kelvin sign)
    return _IGNORED_EXT_RE.search(joined.lower()) is not None


def list_dir(root: str, rel: str, exclude: frozenset[str] = frozenset(),
             ignore: tuple[str, ...] = (), expected: str | None = None) -> Listing:
    """One directory's subdirectories and candidate files, with their stat data.

    ``ignore``: the root's name patterns (``roots.<id>.ignore``); matching files and folders
    are not listed at all, so the digest is that of what is kept. ``expected``: the digest
    the catalog has for this folder; when the listing has it, the files are left out
    (``unchanged``: the caller knows them already).

    The common case runs on whole lists (``_list_fast``: the directory opened once, names
    sorted, one ``lstat`` per name relative to it, as ``find`` does); a directory with
    anything unusual in it (a name that is not UTF-8, one matching the root's patterns or
    ``exclude``, an entry that vanished or cannot be stat'ed) is listed again, entry by
    entry (``_list_entries``), which reports each of those."""
    path = paths.join(root, rel)
    out = _list_fast(path, rel, exclude, ignore, expected)
    return out if out is not None else _list_entries(path, rel, exclude, ignore, expected)


def _list_fast(path: str, rel: str, exclude: frozenset[str], ignore: tuple[str, ...],
               expected: str | None) -> Listing | None:
    """``list_dir`` for a directory with nothing unusual in it, else None."""
    try:
        fd = os.open(path, _DIR_FLAGS)
    except OSError:
        return None  # gone, not a directory, unreadable: worded by ``_list_entries``
    try:
        st = os.fstat(fd)
        names = os.listdir(fd)
        names.sort()
        joined = "/".join(names)
        try:
            joined.encode("utf-8")
        except UnicodeEncodeError:
            return None  # a name that is not valid UTF-8: reported entry by entry
        if exclude and not exclude.isdisjoint(names):
            return None  # names still changing: ``unreadable``, entry by entry
        if ignore:
            hits = {n for p in ignore for n in names if fnmatch.fnmatchcase(n, p)}
            if hits:
                names = [n for n in names if n not in hits]
                joined = "/".join(names)
        lstat = os.lstat
        sts = [lstat(n, dir_fd=fd) for n in names]
    except OSError:
        return None  # an entry vanished or cannot be stat'ed: reported entry by entry
    finally:
        os.close(fd)
    out = Listing(rel, complete=True, key=(st.st_dev, st.st_ino))
    regular = list(map(S_ISREG, map(_MODE, sts)))
    if not all(regular):
        for name, est in compress(zip(names, sts, strict=True), map(not_, regular)):
            mode = est.st_mode
            if S_ISDIR(mode):
                if not ignored_dir(name):
                    out.dirs.append(name)
            elif not ignored_file(name):
                # Links are never followed, out of the root or inside it (``confine``
                # refuses them at read time too); FIFOs, sockets, devices are not opened.
                out.skipped.append((name, "symlink" if S_ISLNK(mode) else "not_regular"))
        names = list(compress(names, regular))
        sts = list(compress(sts, regular))
        joined = "/".join(names)
    if _maybe_ignored(joined):
        keep = [not ignored_file(n) for n in names]
        names = list(compress(names, keep))
        sts = list(compress(sts, keep))
    out.count = len(names)
    out.digest = _digest(names, sts)
    if expected is not None and out.digest == expected:
        out.unchanged = True
        return out
    out.files = list(map(FileEntry._make, zip(names, map(_SIZE, sts), map(_MTIME, sts),
                                              map(_INODE, sts), strict=True)))
    return out


def _list_entries(path: str, rel: str, exclude: frozenset[str], ignore: tuple[str, ...],
                  expected: str | None) -> Listing:
    """``list_dir`` entry by entry, saying what is wrong with each unusual one."""
    out = Listing(rel)
    try:
        st = os.stat(path)
        if not S_ISDIR(st.st_mode):
            out.gone = True
            return out
        out.key = (st.st_dev, st.st_ino)
        with os.scandir(path) as it:
            entries = sorted(it, key=_NAME)
    except FileNotFoundError:
        out.gone = True
        return out
    except OSError as exc:
        out.problems.append(f"{path}: {exc.strerror or exc}")
        return out
    out.complete = True
    names: list[str] = []
    sts: list[os.stat_result] = []
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
                sts.append(entry.stat(follow_symlinks=False))
                names.append(name)
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
    out.count = len(names)
    if not out.unreadable:
        out.digest = _digest(names, sts)
        if expected is not None and out.digest == expected:
            out.unchanged = True
            return out
    out.files = list(map(FileEntry._make, zip(names, map(_SIZE, sts), map(_MTIME, sts),
                                              map(_INODE, sts), strict=True)))
    return out


def list_many(root: str, rels: list[str], exclude: frozenset[str],
              expected: dict[str, str], ignore: tuple[str, ...] = ()) -> list[Listing]:
    """Several directories; those whose digest is as ``expected`` come back without their
    files (the caller knows them already). Runs in a thread or a worker process."""
    return [list_dir(root, rel, exclude, ignore, expected.get(rel)) for rel in rels]
