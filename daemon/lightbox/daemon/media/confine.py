"""Opening a photo beneath its root, never through a link, and only if it is the catalog's.

Every read of a photo's bytes — a worker's analysis, a thumbnail made on demand,
``photos.original`` — goes through ``open_photo`` with a **locator**: a small picklable value
naming where the file is (for a local root: the root's path and the path below it) and the
fingerprint the catalog has for it. A request never chooses a path.

- The file is opened relative to its root with ``openat2(RESOLVE_BENEATH |
  RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS)`` where the kernel has it (Linux 5.6), else
  by a walk that opens one component at a time with ``O_NOFOLLOW`` from the directory
  before it. Either way no symbolic link is followed, inside the root or out of it (the
  listing skips them too), ``..`` cannot climb out, and a FIFO or device put under a photo's
  name fails at once instead of blocking (``O_NONBLOCK``).
- The open file is then compared with the locator's fingerprint ((dev, inode, size,
  mtime_ns); the parts the catalog knows) before a byte is read: a file swapped for a hard
  link to something else, or changed since it was listed, is refused as ``changed``.

Refusals raise ``Refused`` with a machine-readable ``reason``; the operating system's own
errors (no such file, permission denied, I/O error) propagate as ``OSError`` so the caller
can tell the file's fault from the machine's (``lightbox.daemon.library.failures``).

The root itself is opened by its path (it was resolved when it was added). An S3 object's
locator is ``kinds.s3.S3Object`` (bucket config, key, ETag); ``open_photo`` downloads it
once, checked against its ETag, into an anonymous temporary file; the indexer hands
workers ``kinds.s3.Fetched`` instead (downloaded by the daemon's I/O threads), read here.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import platform
import stat
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO, Union

if TYPE_CHECKING:
    from lightbox.daemon.kinds.s3 import Fetched, S3Object

RESOLVE_NO_MAGICLINKS = 0x02
RESOLVE_NO_SYMLINKS = 0x04
RESOLVE_BENEATH = 0x08
_RESOLVE = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS

# openat2 has the same number on every architecture that came with the unified syscall
# table (5.6+), except the few with their own offsets; elsewhere we walk.
_OPENAT2 = {"x86_64": 437, "amd64": 437, "i386": 437, "i686": 437, "aarch64": 437,
            "arm64": 437, "armv7l": 437, "armv6l": 437, "armv8l": 437, "ppc64le": 437,
            "ppc64": 437, "ppc": 437, "s390x": 437, "riscv64": 437, "loongarch64": 437,
            "alpha": 547}

_FLAGS = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0)
_DIR_FLAGS = getattr(os, "O_PATH", os.O_RDONLY) | os.O_DIRECTORY | os.O_CLOEXEC

# Reasons a read is refused (``Refused.reason``).
SYMLINK, OUTSIDE, NOT_REGULAR, CHANGED = "symlink", "outside", "not_regular", "changed"


class Refused(Exception):
    """The name does not lead, beneath its root and without links, to the expected file.

    ``found`` is the (size, mtime_ns, inode, device) of what was there instead, for
    ``changed``: the caller can queue the file again under its new fingerprint.
    """

    def __init__(self, reason: str, message: str,
                 found: tuple[int, int, int, int] | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.found = found

    def __reduce__(self) -> tuple[type[Refused], tuple[str, str, tuple[int, int, int, int] | None]]:
        return (Refused, (self.reason, str(self), self.found))


@dataclass(frozen=True)
class LocalFile:
    """A photo in a local root: ``root`` (absolute) and ``rel`` ("/"-separated below it), and
    what the catalog knows of the file (None: not checked)."""

    root: str
    rel: str
    size: int | None = None
    mtime_ns: int | None = None
    inode: int | None = None
    device: int | None = None
    kind: str = "local"

    @classmethod
    def at(cls, path: str) -> LocalFile:
        """A file the caller chose itself (tools, tests): beneath its own directory."""
        head, _, name = os.path.abspath(path).rpartition("/")
        return cls(head or "/", name)

    @property
    def path(self) -> str:
        """The absolute path, for messages and logs."""
        return self.root.rstrip("/") + "/" + self.rel if self.rel else self.root

    @property
    def name(self) -> str:
        return self.rel.rpartition("/")[2]


Locator = Union[LocalFile, "S3Object", "Fetched"]  # forward references: no import cycle


def open_photo(loc: Locator) -> tuple[BinaryIO, os.stat_result]:
    """The open file (binary, unbuffered position 0) and its fstat; raises Refused/OSError.

    An S3 object (``kinds.s3.S3Object``) is fetched once, ``If-Match`` its listed ETag,
    into an anonymous temporary file, which is what is returned; one the daemon's I/O
    threads already fetched (``kinds.s3.Fetched``) is its private copy.
    """
    if loc.kind == "s3-copy":
        from lightbox.daemon.kinds.s3 import Fetched, open_copy

        assert isinstance(loc, Fetched)
        return open_copy(loc)
    if loc.kind == "s3":
        from lightbox.daemon.kinds.s3 import S3Object, open_object

        assert isinstance(loc, S3Object)
        return open_object(loc)
    assert isinstance(loc, LocalFile)
    fd, st = open_local(loc)
    try:
        return os.fdopen(fd, "rb"), st
    except BaseException:
        os.close(fd)
        raise


def open_local(loc: LocalFile, root_fd: int | None = None) -> tuple[int, os.stat_result]:
    """``open_photo`` of a local file as a bare descriptor (the caller closes it) and its
    fstat, with the same checks. ``root_fd``: the root already opened (``open_root``) by a
    caller that opens many files of one root in a row (a backup batch), which saves an
    open and a close of the root per file and nothing of the checks: the file is still
    resolved beneath that directory without links, and compared with the catalog."""
    fd = open_beneath(loc.root, loc.rel, root_fd)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise Refused(NOT_REGULAR, "not a regular file")
        check(loc, st)
        return fd, st
    except BaseException:
        os.close(fd)
        raise


def open_root(root: str) -> int:
    """A root's directory as an ``O_PATH`` descriptor for ``open_local(..., root_fd)``."""
    return os.open(root, _DIR_FLAGS)


def check(loc: LocalFile, st: os.stat_result) -> None:
    """Refuse a file whose identity or content fingerprint is not the catalog's. (The
    common case, every part known and equal, in one expression: this runs once per file
    of a backup; the loop below only says which part differs.)"""
    if (loc.device == st.st_dev and loc.inode == st.st_ino and loc.size == st.st_size
            and loc.mtime_ns == st.st_mtime_ns):
        return
    for what, want, got in (("device", loc.device, st.st_dev), ("inode", loc.inode, st.st_ino),
                            ("size", loc.size, st.st_size),
                            ("mtime", loc.mtime_ns, st.st_mtime_ns)):
        if want is not None and want != got:
            raise Refused(CHANGED, f"the file is not the one the catalog knows ({what} "
                                   f"{got}, expected {want}); it changed or was replaced",
                          (st.st_size, st.st_mtime_ns, st.st_ino, st.st_dev))


_NOT_PLAIN = frozenset(("", ".", ".."))  # path components open_beneath refuses


def open_beneath(root: str, rel: str, root_fd: int | None = None) -> int:
    """A read-only fd for ``rel`` below ``root``, resolved without following any link
    (``root_fd``: the root's directory, already open, used instead of opening ``root``)."""
    parts = rel.split("/")
    if not _NOT_PLAIN.isdisjoint(parts) or "\0" in rel:  # "" also: a leading or double /
        raise Refused(OUTSIDE, f"{rel!r} is not a plain path below its root")
    dirfd = os.open(root, _DIR_FLAGS) if root_fd is None else root_fd
    try:
        if _openat2_nr() is not None:
            return _openat2(dirfd, rel)
        return _walk(dirfd, parts)
    finally:
        if root_fd is None:
            os.close(dirfd)


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64),
                ("resolve", ctypes.c_uint64)]


# The open_how of every photo open: read-only for the kernel, so one serves all threads.
_HOW = _OpenHow(_FLAGS, 0, _RESOLVE)
_HOW_REF = ctypes.byref(_HOW)
_HOW_SIZE = ctypes.sizeof(_HOW)

_probed: list[int | None] = []
_syscall: Any = None


def _openat2_nr() -> int | None:
    """The syscall number when openat2 works here (probed once per process), else None."""
    if _probed:
        return _probed[0]
    global _syscall
    nr = _OPENAT2.get(platform.machine().lower())
    if nr is not None and platform.system() == "Linux":
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fn = libc.syscall
            fn.restype = ctypes.c_long
            fn.argtypes = [ctypes.c_long, ctypes.c_int, ctypes.c_char_p,
                           ctypes.POINTER(_OpenHow), ctypes.c_size_t]
            _syscall = fn
            how = _OpenHow(_DIR_FLAGS, 0, _RESOLVE)
            fd = fn(nr, -100, b".", ctypes.byref(how), ctypes.sizeof(how))  # AT_FDCWD
            if fd >= 0:
                os.close(fd)
            else:   # ENOSYS (old kernel), EPERM (a seccomp filter), EINVAL...
                nr = None
        except (OSError, AttributeError):
            nr = None
    _probed.append(nr)
    return nr


def _openat2(dirfd: int, rel: str) -> int:
    nr = _openat2_nr()
    assert nr is not None
    assert _syscall is not None
    path = os.fsencode(rel)
    for _ in range(8):
        fd = int(_syscall(nr, dirfd, path, _HOW_REF, _HOW_SIZE))
        if fd >= 0:
            return fd
        err = ctypes.get_errno()
        if err in (errno.EAGAIN, errno.EINTR):  # a rename or mount raced the lookup
            continue
        if err == errno.ELOOP:
            raise Refused(SYMLINK, "a symbolic link is in the way; links are not followed")
        if err == errno.EXDEV:
            raise Refused(OUTSIDE, "the path leads outside its root")
        raise OSError(err, os.strerror(err), rel)
    raise OSError(errno.EAGAIN, os.strerror(errno.EAGAIN), rel)


def _walk(dirfd: int, parts: list[str]) -> int:
    """Without openat2: each directory opened from the one before it, none through a link."""
    fds: list[int] = []
    try:
        current = dirfd
        for part in parts[:-1]:
            try:
                fd = os.open(part, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=current)
            except NotADirectoryError:   # what O_NOFOLLOW|O_DIRECTORY says of a link too
                _refuse_link(part, current)
                raise
            fds.append(fd)
            current = fd
        try:
            return os.open(parts[-1], _FLAGS | os.O_NOFOLLOW, dir_fd=current)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise Refused(SYMLINK, "the file is a symbolic link; links are not followed"
                              ) from None
            raise
    finally:
        for fd in fds:
            os.close(fd)


def _refuse_link(name: str, dirfd: int) -> None:
    with contextlib.suppress(OSError):
        if stat.S_ISLNK(os.lstat(name, dir_fd=dirfd).st_mode):
            raise Refused(SYMLINK, f"{name} is a symbolic link; links are not followed")


def use_walk_only() -> None:
    """Force the O_NOFOLLOW walk in this process (tests of the fallback, benchmarks)."""
    _probed[:] = [None]
