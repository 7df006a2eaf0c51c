"""What a backup target looks like on disk, and every file operation on it.

Everything here is blocking and runs in threads (``asyncio.to_thread``), never on the event
loop. A target is a plain folder a person can use without lightbox::

    <target>/README.txt             what the folder is, how to verify and restore it
    <target>/SHA256SUMS             `sha256sum -c SHA256SUMS` checks every copy
    <target>/<root name>/<path>     the photos, byte for byte, in the library's layout
    <target>/.lightbox-target       marker: which target this folder is (a JSON object)
    <target>/.lightbox-tmp/         files being written; nothing there is a finished copy

A copy is written as an unnamed file (``O_TMPFILE``) in its own folder, or where the file
system has none under a temporary name in ``.lightbox-tmp`` (same file system, so the
rename is atomic), flushed, its page cache dropped and read back from the device and hashed
— compared with the catalog's sha256, which proves the source's bytes and the copy's with
one hash — then linked or renamed to its final name (never over an existing file), and the
directory flushed before the manifest records it. A file under its final name is therefore
always complete; a crash leaves at most a temporary file (removed by the next run; an
unnamed one leaves nothing) or a finished file the manifest does not know yet (recognised
by its hash and adopted by the next run, not copied again).
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import errno
import hashlib
import itertools
import json
import os
import queue
import re
import resource
import stat
import sys
import threading
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Protocol

from lightbox.daemon.backups.real_dirs import RealDirs
from lightbox.daemon.media import confine
from lightbox.daemon.procs import pid_alive

MARKER = ".lightbox-target"
TMP_DIR = ".lightbox-tmp"
SUMS = "SHA256SUMS"
README = "README.txt"
RESERVED = frozenset({MARKER, TMP_DIR, SUMS, README})
CHUNK = 1 << 20

# Why a run stops (``data.reason`` of the failed job).
TARGET_MISSING, TARGET_READ_ONLY, DISK_FULL, TARGET_IO = (
    "target_missing", "target_read_only", "disk_full", "target_io")

_counter = itertools.count()

README_TEXT = """\
This folder is a backup made by lightbox (a photo library daemon).

Layout: every photo is stored byte for byte under <root name>/<path inside that root>.
A photo whose content changed after it was copied is kept under its old name, and the new
content is stored beside it as <name>.<first 8 hex digits of its sha256>.<extension>.
Nothing is ever deleted from this folder unless the target was configured to do so.

Checking it without lightbox (GNU coreutils):

    cd {path}
    sha256sum -c --quiet SHA256SUMS

prints only the files that are missing or damaged. SHA256SUMS is rewritten after every
run that changes the folder.

Restoring without lightbox: copy the folders you need (cp -a, rsync -a). The files beginning
with ".lightbox" belong to lightbox and are not photos.
"""


class TargetError(Exception):
    """The target cannot take writes (missing, read-only, full, failing): stop the run."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def target_error(exc: OSError, where: str) -> TargetError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return TargetError(DISK_FULL, f"the target is full ({where})")
    if exc.errno == errno.EROFS:
        return TargetError(TARGET_READ_ONLY, f"the target is read-only ({where})")
    if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ENODEV, errno.ESTALE, errno.ENXIO):
        return TargetError(TARGET_MISSING, f"the target went away ({where}: {exc.strerror})")
    return TargetError(TARGET_IO, f"writing to the target failed ({where}: {exc.strerror})")


# -- the folder itself --------------------------------------------------------------------

def read_marker(path: str) -> dict[str, object] | None:
    try:
        with open(os.path.join(path, MARKER), "rb") as f:
            data = json.loads(f.read(65536))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def prepare(path: str, name: str, marker: str) -> None:
    """Make ``path`` the target ``marker`` (``backups.add``): marker, README, temp dir."""
    st = os.stat(path)
    if not stat.S_ISDIR(st.st_mode):
        raise NotADirectoryError(errno.ENOTDIR, "not a directory", path)
    os.makedirs(os.path.join(path, TMP_DIR), exist_ok=True)
    write_atomic(path, MARKER, json.dumps({"lightbox": "backup target", "name": name,
                                           "id": marker}, indent=1).encode() + b"\n")
    write_atomic(path, README, README_TEXT.format(path=path).encode())
    if not os.path.exists(os.path.join(path, SUMS)):
        write_atomic(path, SUMS, b"")


def check(path: str, marker: str) -> TargetError | None:
    """None when ``path`` is this target and takes writes; else why not (nothing written)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return TargetError(TARGET_MISSING, f"{path} is not there (unmounted, renamed or "
                                           "deleted?)")
    except OSError as exc:
        return TargetError(TARGET_MISSING, f"{path}: {exc.strerror}")
    if not stat.S_ISDIR(st.st_mode):
        return TargetError(TARGET_MISSING, f"{path} is not a directory")
    found = read_marker(path)
    if found is None or found.get("id") != marker:
        return TargetError(TARGET_MISSING, f"{path} is not this target: its marker file "
                           f"{MARKER} is {'missing' if found is None else 'another'} (is the "
                           "disk mounted?)")
    tmp = os.path.join(path, TMP_DIR)
    try:
        os.makedirs(tmp, exist_ok=True)
        probe = os.path.join(tmp, f"probe-{os.getpid()}")
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        return target_error(exc, "a test write")
    return None


def clear_temp(path: str) -> int:
    """Remove what interrupted runs left in the temp dir (the caller holds the run lock)."""
    removed = 0
    tmp = os.path.join(path, TMP_DIR)
    try:
        entries = list(os.scandir(tmp))
    except OSError:
        return 0
    for entry in entries:
        try:
            if entry.is_dir(follow_symlinks=False):
                # A second writer's own folder (``CopyRun``): its files, then itself.
                for sub in list(os.scandir(entry.path)):
                    with contextlib.suppress(OSError):
                        os.unlink(sub.path)
                        removed += 1
                os.rmdir(entry.path)
                continue
            os.unlink(entry.path)
            removed += 1
        except OSError:
            pass
    # write_atomic's temporary files (SHA256SUMS, README, marker) beside them.
    try:
        top = list(os.scandir(path))
    except OSError:
        return removed
    for entry in top:
        if _is_atomic_tmp(entry.name):
            try:
                os.unlink(entry.path)
                removed += 1
            except OSError:
                pass
    return removed


def _is_atomic_tmp(name: str) -> bool:
    return name.endswith(".tmp") and any(name.startswith(f".{n}.") for n in (SUMS, README,
                                                                              MARKER))


def fsync_dir(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(directory: str, name: str, data: bytes | Iterable[bytes]) -> None:
    """``directory/name`` replaced by ``data`` at once: temp file, fsync, rename, dir fsync."""
    tmp = os.path.join(directory, f".{name}.{os.getpid()}.{next(_counter)}.tmp")
    try:
        with open(tmp, "wb") as f:
            if isinstance(data, bytes):
                f.write(data)
            else:
                for chunk in data:
                    f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, os.path.join(directory, name))
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    fsync_dir(directory)


def sums_line(sha256: str, path: str) -> bytes:
    r"""One line of a ``sha256sum`` file, escaped as GNU coreutils does: a name holding ``\``
    or a newline is written with them escaped and the line starts with ``\``."""
    if "\\" in path or "\n" in path or "\r" in path:
        escaped = path.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
        return f"\\{sha256}  {escaped}\n".encode("utf-8", "surrogateescape")
    return f"{sha256}  {path}\n".encode("utf-8", "surrogateescape")


def write_sums(path: str, rows: Iterable[tuple[str, str]]) -> None:
    """Rewrite SHA256SUMS from (sha256, path) rows, atomically."""
    def lines() -> Iterator[bytes]:
        buf: list[bytes] = []
        for sha, rel in rows:
            buf.append(sums_line(sha, rel))
            if len(buf) >= 4096:
                yield b"".join(buf)
                buf.clear()
        yield b"".join(buf)

    write_atomic(path, SUMS, lines())


# -- names on the target ------------------------------------------------------------------

def source_dir(name: str) -> str:
    """A root's folder name on the target: its name, made a single safe path component."""
    safe = name.replace("/", "_").replace("\0", "_").strip() or "_"
    if safe in (".", "..") or safe in RESERVED or safe.startswith(".lightbox"):
        safe = "_" + safe
    return safe


def target_rel(source: str, folder: str, name: str) -> str:
    parts = [source_dir(source)]
    if folder:
        parts.append(folder)
    parts.append(name)
    return "/".join(parts)


def variant(rel: str, sha256: str) -> str:
    """Where other content for an occupied name goes: ``name.<sha8>.ext``."""
    head, _, name = rel.rpartition("/")
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        stem, ext = name, ""
    new = f"{stem}.{sha256[:8]}" + (f".{ext}" if ext else "")
    return f"{head}/{new}" if head else new


# -- hashing and copying ------------------------------------------------------------------

def hash_file(f: BinaryIO) -> tuple[str, int]:
    h = hashlib.sha256()
    size = 0
    while True:
        chunk = f.read(CHUNK)
        if not chunk:
            break
        h.update(chunk)
        size += len(chunk)
    return h.hexdigest(), size


def hash_path(path: str, drop_cache: bool = False) -> tuple[str, int]:
    """sha256 and size of a file read from the device (``drop_cache``: not from the page
    cache, where the kernel can drop clean pages; a freshly fsynced copy's are clean)."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        if drop_cache and hasattr(os, "posix_fadvise"):
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        with os.fdopen(fd, "rb", closefd=False) as f:
            return hash_file(f)
    finally:
        os.close(fd)


@dataclass(slots=True)
class CopyItem:
    """One photo to copy: where it is (a locator with the catalog's fingerprint), what its
    content must be, and where it goes on the target."""

    photo_id: int
    loc: confine.Locator  # a local file, or an object of a bucket source
    sha256: str
    size: int
    rel: str


@dataclass(slots=True)
class CopyOutcome:
    item: CopyItem
    status: str  # copied | adopted | damaged | changed | failed
    rel: str = ""  # where it is on the target (copied, adopted)
    message: str = ""
    bytes: int = 0


@dataclass
class Batch:
    outcomes: list[CopyOutcome] = field(default_factory=list)
    dirs: set[str] = field(default_factory=set)
    stop: TargetError | None = None


def _chunks(loc: confine.Locator) -> Generator[bytes, None, None]:
    """The source's bytes: a local file read beneath its root (no links, fingerprint
    checked), or a bucket's object streamed through the source kind (``If-Match`` its
    ETag), so either is read once while it is hashed and written."""
    if loc.kind == "s3":
        from lightbox.daemon.kinds import s3 as s3kind

        assert isinstance(loc, s3kind.S3Object)
        yield from s3kind.stream(loc)
        return
    src, _ = confine.open_photo(loc)
    with src:
        while chunk := src.read(CHUNK):
            yield chunk


def _copy_to_temp(item: CopyItem, tmp: str, fsync: bool) -> tuple[str, int]:
    """Read the source into ``tmp``, hashing as it goes (``fsync``: and fsync it). OSError
    from the target side is raised as TargetError; the source's errors as they are."""
    chunks = _chunks(item.loc)
    first = next(chunks, b"")  # opened (and refused, when changed) before any write
    h = hashlib.sha256()
    size = 0
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        chunks.close()
        raise target_error(exc, "creating a temporary file") from None
    with contextlib.closing(chunks):
        try:
            for chunk in itertools.chain((first,) if first else (), chunks):
                h.update(chunk)
                size += len(chunk)
                view = memoryview(chunk)
                while view:
                    try:
                        n = os.write(fd, view)
                    except OSError as exc:
                        raise target_error(exc, "writing a copy") from None
                    view = view[n:]
            if fsync:
                try:
                    os.fsync(fd)
                except OSError as exc:
                    raise target_error(exc, "fsync of a copy") from None
        finally:
            os.close(fd)
    return h.hexdigest(), size


_libc: Any = None
_renameat2: Any = None  # libc's renameat2, or False where this libc has none
_linkat: Any = None  # libc's linkat, or False
_FS_ENCODING = sys.getfilesystemencoding()
_sync_file_range: Any = None  # libc's sync_file_range, or False
_AT_FDCWD = -100
_RENAME_NOREPLACE = 1


def _load_libc() -> None:
    global _libc, _renameat2, _sync_file_range, _linkat
    try:
        lib = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        _libc = _renameat2 = _sync_file_range = _linkat = False
        return
    try:
        fn = lib["linkat"]  # as renameat2 below: C ints and strings, no prototype
    except AttributeError:
        _linkat = False
    else:
        fn.restype = ctypes.c_int
        _linkat = fn
    try:
        sfr = lib.sync_file_range
    except AttributeError:
        _sync_file_range = False
    else:
        sfr.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
        sfr.restype = ctypes.c_int
        _sync_file_range = sfr
    try:
        lib.syncfs.argtypes = [ctypes.c_int]
    except AttributeError:
        _libc = False
    else:
        _libc = lib
    try:
        # Its own function object, without ``argtypes``: its parameters are C ints and
        # strings, which ctypes passes as they are, and the per-argument conversion of a
        # prototype costs about a third of the call (once per copy of a backup).
        fn = lib["renameat2"]
    except AttributeError:
        _renameat2 = False
    else:
        fn.restype = ctypes.c_int
        _renameat2 = fn


def has_syncfs() -> bool:
    """Whether ``syncfs`` is available here (else an fsync per file is the way)."""
    if _libc is None:
        _load_libc()
    return bool(_libc)


def syncfs(path: str) -> bool:
    """Flush the whole file system holding ``path`` (one call makes every file written to
    it durable: cheaper than an fsync per file for a batch of small ones). False where the
    call is not available; raises TargetError when the flush reports a write error."""
    if not has_syncfs():
        return False
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise target_error(exc, "flushing the target") from None
    try:
        if _libc.syncfs(fd) != 0:
            err = ctypes.get_errno()
            raise target_error(OSError(err, os.strerror(err)), "flushing the target")
    finally:
        os.close(fd)
    return True


def _rename_noreplace(src: str, dst: str) -> bool | None:
    """Rename ``src`` to ``dst`` unless ``dst`` exists, in one atomic call (``renameat2``
    with ``RENAME_NOREPLACE``: no window between a check and the rename, and one system
    call instead of three). True when renamed, False when ``dst`` is taken, None where the
    C library, the kernel or the file system lacks the call. Other failures raise
    OSError (ENOENT: a folder of ``dst`` is missing, or ``src`` is gone)."""
    if _renameat2 is None:
        _load_libc()
    if not _renameat2:
        return None
    enc = _FS_ENCODING
    if _renameat2(_AT_FDCWD, src.encode(enc, "surrogateescape"), _AT_FDCWD,
                  dst.encode(enc, "surrogateescape"), _RENAME_NOREPLACE) == 0:
        return True
    err = ctypes.get_errno()
    if err == errno.EEXIST:
        return False
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return None
    raise OSError(err, os.strerror(err), dst)


def _rename_checked(tmp: str, final: str) -> bool:
    """The same without ``renameat2``: look, then rename (a run holds the target's lock,
    so nothing else places files there between the two)."""
    if not os.path.lexists(tmp):
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), tmp)
    if os.path.lexists(final):
        return False
    os.rename(tmp, final)
    return True


def place(root: str, tmp: str | int, rel: str, sha256: str,
          dirs: RealDirs | None = None) -> tuple[str, bool]:
    """Rename ``tmp`` to ``rel`` below ``root``, never over another file: an occupied name
    holding the same content is adopted (``tmp`` dropped), other content gets a variant
    name. Returns (final rel, adopted). Its folders must be real folders of the root's
    filesystem (``dirs``, the run's: ``NotBeneath``, an OSError of this file alone).
    ``tmp`` is a temporary file's path, or the descriptor of an unnamed file
    (``_send_to_tmpfile``), which is linked to its name instead (``linkat``, which never
    replaces a name either); the descriptor stays the caller's to close.

    The rename is tried first and the folders made only when it says one is missing: a
    file of a folder that exists costs one system call. When the temporary file itself is
    gone (or the unnamed one is on another file system than the root's path now), the
    target's disk was unmounted (its path is the empty mount point now): nothing is
    created there."""
    attempt = 0
    made = False
    if dirs is None:
        dirs = RealDirs(root)
    dirs.check(rel.rpartition("/")[0])
    unnamed = isinstance(tmp, int)
    while True:
        final = f"{root}/{rel}"
        try:
            if isinstance(tmp, int):
                renamed = _link_noreplace(tmp, final)
            else:
                done = _rename_noreplace(tmp, final)
                renamed = _rename_checked(tmp, final) if done is None else done
        except OSError as exc:
            if unnamed and exc.errno == errno.EXDEV:
                raise TargetError(TARGET_MISSING, f"the target went away ({root})") from None
            if exc.errno not in (errno.ENOENT, errno.ENOTDIR) or made:
                raise target_error(exc, "renaming a copy into place") from None
            if (_target_gone(root, os.fstat(tmp).st_dev) if isinstance(tmp, int)
                    else not os.path.lexists(tmp)):
                raise TargetError(TARGET_MISSING, f"the target went away ({root})") from None
            try:
                os.makedirs(os.path.dirname(final), exist_ok=True)
            except OSError as exc2:
                raise target_error(exc2, "creating a folder") from None
            dirs.made(os.path.dirname(rel))
            made = True
            continue
        if renamed:
            return rel, False
        try:
            same = os.path.isfile(final) and not os.path.islink(final) \
                and hash_path(final)[0] == sha256
        except OSError:
            same = False
        if same:
            if isinstance(tmp, str):
                os.unlink(tmp)
            return rel, True
        attempt += 1
        if attempt >= 4:
            raise TargetError(TARGET_IO, f"no free name for {rel} on the target")
        rel = variant(rel, sha256) if attempt == 1 else variant(rel, sha256[(attempt - 1) * 8:])
        made = False


def _target_gone(root: str, device: int | None) -> bool:
    """After a copy's folder was not found: whether ``root`` is no longer the target the
    run writes to — another file system at that path than ``device`` (the target's disk
    unmounted: the path is its empty mount point now) or no marker there (moved away).
    Then nothing may be created at that path."""
    try:
        return (device is not None and os.stat(root).st_dev != device) \
            or not os.path.lexists(f"{root}/{MARKER}")
    except OSError:
        return True


# -- unnamed copies (O_TMPFILE) -------------------------------------------------------------
#
# Where the target's file system has them, a run's copies are written as unnamed files
# (``O_TMPFILE``) in the folder they belong in, and given their name by ``linkat`` once
# they read back right: no temporary name in another folder (a create there and a rename
# across folders, both holding folder locks, and an inode allocated far from its folder),
# no second open for the read-back (the writer's descriptor is kept), and nothing a kill
# can leave behind: an unnamed file goes when its last descriptor is closed, by the
# process's death too. A crash of the machine leaves at most an orphan inode, which the
# file system check frees. Nothing ever has a final name before it read back right.

_O_TMPFILE = getattr(os, "O_TMPFILE", 0)
_TMPFILE = os.O_RDWR | _O_TMPFILE | os.O_CLOEXEC
_AT_SYMLINK_FOLLOW = 0x400
# The most copies a run holds open as unnamed files at once (about four batches in
# flight: two being written, one queued, one being read back); more fall back to
# temporary names. The process's soft limit of descriptors is raised for them when it is
# lower (``_fd_room``), keeping FD_RESERVE free for everything else the daemon opens.
TMPFILE_FDS = 4096
FD_RESERVE = 512


def _link_noreplace(fd: int, dst: str) -> bool:
    """Give the unnamed file ``fd`` the name ``dst`` unless it is taken (``linkat``
    through ``/proc/self/fd``, which needs no privilege, unlike ``AT_EMPTY_PATH``): True
    when linked, False when ``dst`` exists; other failures raise OSError."""
    if _linkat(_AT_FDCWD, f"/proc/self/fd/{fd}".encode(), _AT_FDCWD,
               dst.encode(_FS_ENCODING, "surrogateescape"), _AT_SYMLINK_FOLLOW) == 0:
        return True
    err = ctypes.get_errno()
    if err == errno.EEXIST:
        return False
    raise OSError(err, os.strerror(err), dst)


def tmpfile_works(root: str) -> bool:
    """Whether copies to the target at ``root`` can be unnamed files linked into place:
    the kernel and the file system have ``O_TMPFILE`` (ext4, xfs, btrfs, tmpfs; not vfat,
    exFAT, NFS or most FUSE file systems) and ``/proc`` is there for the link. Tried once
    per run in its temp dir (an unnamed file linked to a probe name, then removed)."""
    if not _O_TMPFILE:
        return False
    if _linkat is None:
        _load_libc()
    if not _linkat:
        return False
    tmp = os.path.join(root, TMP_DIR)
    try:
        fd = os.open(tmp, _TMPFILE, 0o600)
    except OSError:
        return False
    probe = f"{tmp}/probe-{os.getpid()}-{next(_counter)}"
    try:
        if not _link_noreplace(fd, probe):
            return False
        os.unlink(probe)  # (if this fails, clear_temp removes it)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def _fd_room(want: int) -> int:
    """How many descriptors (up to ``want``) a run may hold open for its unnamed copies:
    the soft limit is raised towards the hard one when it is lower than what is open now
    + ``want`` + FD_RESERVE (as systemd advises for programs that need many and use no
    ``select()``; the daemon's event loop is epoll), and what is left above the reserve is
    the room."""
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (OSError, ValueError):
        return 0
    try:
        used = len(os.listdir("/proc/self/fd"))
    except OSError:
        used = FD_RESERVE
    need = used + want + FD_RESERVE
    inf = resource.RLIM_INFINITY
    if soft != inf and soft < need and (hard == inf or hard > soft):
        new = need if hard == inf else min(hard, need)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
            soft = new
        except (OSError, ValueError):
            pass
    if soft == inf:
        return want
    return max(0, min(want, soft - used - FD_RESERVE))


class _FdBudget:
    """The descriptors a run may still hold for unnamed copies: a writer takes what a
    batch may use, the placing stage gives it back once the batch's are closed."""

    def __init__(self, room: int) -> None:
        self._lock = threading.Lock()
        self.free = room

    def take(self, n: int) -> int:
        with self._lock:
            k = min(n, self.free)
            self.free -= k
            return k

    def give(self, k: int) -> None:
        if k:
            with self._lock:
                self.free += k


def _send_to_tmpfile(loc: confine.LocalFile, root_fd: int, root: str, rel: str,
                     dirs: RealDirs) -> tuple[int, int]:
    """``_send_to_temp`` into an unnamed file in the copy's own folder on the target
    (made when missing, after the folders' check: never through a link or into another
    file system): (its descriptor, open for the read-back and the link, bytes copied).
    When the folder is missing because the target went away, nothing is made."""
    src, st = confine.open_local(loc, root_fd)
    try:
        folder = rel.rpartition("/")[0]
        dirs.check(folder)
        path = f"{root}/{folder}" if folder else root
        try:
            dst = os.open(path, _TMPFILE, 0o600)
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                raise target_error(exc, "creating a copy") from None
            if _target_gone(root, dirs.device):
                raise TargetError(TARGET_MISSING, f"the target went away ({root})") from None
            try:
                os.makedirs(path, exist_ok=True)
                dirs.made(folder)
                dst = os.open(path, _TMPFILE, 0o600)
            except OSError as exc2:
                raise target_error(exc2, "creating a folder") from None
        try:
            done = _send(src, dst, st.st_size)
            if done >= WRITE_BEHIND:
                _write_behind(dst)
        except BaseException:
            os.close(dst)  # the unnamed file goes with it
            raise
    finally:
        os.close(src)
    return dst, done


_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
_DONTNEED = getattr(os, "POSIX_FADV_DONTNEED", 4)
_WILLNEED = getattr(os, "POSIX_FADV_WILLNEED", 3)
_READ_BACK = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC
# The read-back of a batch runs this far ahead of its hashing: the reads of the next files
# are queued at the device (POSIX_FADV_WILLNEED) while this one is hashed, instead of one
# synchronous device read per file.
READ_AHEAD_FILES = 64
READ_AHEAD_BYTES = 32 << 20
# A copy this large is written out as soon as it is written (``_write_behind``); smaller
# ones are left to the batch's flush, which writes them out together.
WRITE_BEHIND = 256 << 10
_SYNC_FILE_RANGE_WRITE = 2
# Errors of a copy made in the kernel that can only be the target's.
_TARGET_ONLY = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EFBIG})


def _send_to_temp(loc: confine.LocalFile, root_fd: int, tmp: str, fsync: bool) -> int:
    """Copy a local source (opened beneath its root, fingerprint checked) into ``tmp`` in
    the kernel (``sendfile``: no byte through Python, no hash on the way: the read-back
    is compared with the catalog's sha256, which proves the source's bytes and the
    copy's at once). Returns the bytes copied. OSError from the target side is raised as
    TargetError; the source's as it is."""
    src, st = confine.open_local(loc, root_fd)
    try:
        try:
            dst = os.open(tmp, _CREATE, 0o600)
        except OSError as exc:
            raise target_error(exc, "creating a temporary file") from None
        try:
            done = _send(src, dst, st.st_size)
            if done >= WRITE_BEHIND and not fsync:
                _write_behind(dst)
            if fsync:
                try:
                    os.fsync(dst)
                except OSError as exc:
                    raise target_error(exc, "fsync of a copy") from None
        finally:
            os.close(dst)
    finally:
        os.close(src)
    return done


def _write_behind(fd: int) -> None:
    """Start writing a large copy out now (``sync_file_range`` WRITE: queued, not waited
    for), so the device writes it while the next files are copied and the batch before is
    read back, instead of all at once in the batch's flush. Only a hint: the flush is what
    makes it durable, and a failure here is the flush's to report."""
    if _sync_file_range is None:
        _load_libc()
    if _sync_file_range:
        _sync_file_range(fd, 0, 0, _SYNC_FILE_RANGE_WRITE)


def _send(src: int, dst: int, size: int) -> int:
    """``size`` bytes of ``src`` appended to ``dst`` by ``sendfile``. A failure whose side
    its errno cannot tell (EIO of either disk, a file system without the call) goes on
    with reads and writes from where it stopped, which tell them apart."""
    off = 0
    while off < size:
        try:
            n = os.sendfile(dst, src, off, size - off)
        except OSError as exc:
            if exc.errno in _TARGET_ONLY:
                raise target_error(exc, "writing a copy") from None
            return _read_write(src, dst, off, size)
        if n == 0:  # the file is shorter than it was: the read-back will say so
            break
        off += n
    return off


def _read_write(src: int, dst: int, off: int, size: int) -> int:
    while off < size:
        chunk = os.pread(src, min(CHUNK, size - off), off)  # the source's errors as they are
        if not chunk:
            break
        view = memoryview(chunk)
        while view:
            try:
                n = os.write(dst, view)
            except OSError as exc:
                raise target_error(exc, "writing a copy") from None
            view = view[n:]
        off += len(chunk)
    return off


_fadvise: Callable[[int, int, int, int], None] | None = getattr(os, "posix_fadvise", None)


def _arm(path: str) -> int | OSError:
    """Open a flushed copy for its read-back, drop its (clean) pages and queue its read
    from the device; the error instead of the descriptor when it cannot be opened. (Once
    per copy: no attribute lookups or context managers that cost more than the calls.)"""
    try:
        fd = os.open(path, _READ_BACK)
    except OSError as exc:
        return exc
    return _arm_fd(fd)


def _arm_fd(fd: int) -> int:
    """``_arm`` of an unnamed copy, whose descriptor the writer kept: no open."""
    if _fadvise is not None:
        try:
            _fadvise(fd, 0, 0, _DONTNEED)
            _fadvise(fd, 0, 0, _WILLNEED)
        except OSError:
            pass
    return fd


def _digest_fd(fd: int, size: int) -> tuple[str, int]:
    """sha256 and length of everything ``fd`` holds, read from its start (``pread``: a
    writer's descriptor is at the end of what it wrote). A small file is one read, asking
    a byte more than it should hold (a longer file shows); others are read in pieces."""
    first = b""
    if size < CHUNK:
        first = os.pread(fd, size + 1, 0)
        if len(first) == size:
            return hashlib.sha256(first).hexdigest(), size
    h = hashlib.sha256(first)
    total = len(first)
    while chunk := os.pread(fd, CHUNK, total):
        h.update(chunk)
        total += len(chunk)
    return h.hexdigest(), total


def _damaged(item: CopyItem, sha: str) -> CopyOutcome:
    # open_photo checked size and mtime against the catalog: the same file, other bytes.
    return CopyOutcome(item, "damaged", message=(
        f"content changed at the source (sha256 {sha[:12]}…, the catalog has "
        f"{item.sha256[:12]}…) while its size and mtime did not"))


def _mismatch(item: CopyItem, hashed: bool) -> CopyOutcome:
    """What a copy whose read-back is not the catalog's content means: the source is
    read again (hashed on its own) when the copy was not hashed on the way; if the source
    no longer matches it is damaged (never copied: the target keeps what it has), else the
    target's disk returned other bytes than it was given."""
    if not hashed:
        try:
            src, _ = confine.open_photo(item.loc)
        except confine.Refused as exc:
            return CopyOutcome(item, "changed", message=str(exc))
        except OSError as exc:
            return CopyOutcome(item, "failed", message=f"{exc.strerror or exc}")
        with src:
            try:
                sha, _ = hash_file(src)
            except OSError as exc:
                return CopyOutcome(item, "failed", message=f"{exc.strerror or exc}")
        if sha != item.sha256:
            return _damaged(item, sha)
    return CopyOutcome(item, "failed", message=(
        "the copy read back differs from what was written (the target's disk may be "
        "failing)"))


class Run(Protocol):
    """A run's copy as the service drives it (``CopyRun``, ``BatchThreads``)."""

    stats: dict[str, float]

    def next(self) -> Batch | None: ...
    def stop(self) -> None: ...
    def close(self) -> None: ...


@dataclass
class _Written:
    """A batch after its first stage: the files written to their temporary names (not yet
    durable), what failed for the source's reasons, and the target error that stopped the
    writing (what was written before it is still finished and kept). A file's temporary
    copy is a path, or the descriptor of an unnamed file (``_send_to_tmpfile``: ``fds``
    of them, taken from the run's budget)."""

    # (item, temp path or unnamed file's descriptor, sha or None, bytes)
    files: list[tuple[CopyItem, str | int, str | None, int]]
    outcomes: list[CopyOutcome] = field(default_factory=list)
    stop: TargetError | None = None
    fds: int = 0


def _write_batch(root: str, items: list[CopyItem], flush_each: bool, retries: int = 2,
                 tmp_dir: str | None = None, unnamed: int = 0,
                 dirs: RealDirs | None = None) -> _Written:
    """Write every file of ``items`` to a temporary name in ``tmp_dir`` (a local source by
    ``sendfile``, a bucket's object streamed and hashed; ``flush_each``: each fsynced, where
    there is no ``syncfs``), or up to ``unnamed`` local files as unnamed files in their own
    folders (``_send_to_tmpfile``, checked by ``dirs``). A source's failure is retried,
    then reported; a target error stops the batch."""
    out = _Written([])
    if unnamed and dirs is None:
        dirs = RealDirs(root)
    prefix = f"{tmp_dir or os.path.join(root, TMP_DIR)}/{os.getpid()}-"
    root_fds: dict[str, int] = {}
    local = confine.LocalFile
    counter = _counter
    append = out.files.append
    try:
        for item in items:
            tmp = f"{prefix}{next(counter)}.part"
            outcome: CopyOutcome | None = None
            for _attempt in range(retries + 1):
                try:
                    loc = item.loc
                    if isinstance(loc, local):
                        root_fd = root_fds.get(loc.root)
                        if root_fd is None:
                            root_fd = root_fds[loc.root] = confine.open_root(loc.root)
                        if out.fds < unnamed:
                            assert dirs is not None
                            fd, n = _send_to_tmpfile(loc, root_fd, root, item.rel, dirs)
                            append((item, fd, None, n))
                            out.fds += 1
                            break
                        append((item, tmp, None, _send_to_temp(loc, root_fd, tmp, flush_each)))
                        break
                    sha, size = _copy_to_temp(item, tmp, flush_each)
                    if sha != item.sha256:
                        os.unlink(tmp)
                        outcome = _damaged(item, sha)
                        break
                    append((item, tmp, sha, size))
                    break
                except TargetError as exc:
                    _unlink_quiet(tmp)
                    out.stop = exc
                    break
                except confine.Refused as exc:
                    _unlink_quiet(tmp)
                    outcome = CopyOutcome(item, "changed", message=str(exc))
                    break
                except OSError as exc:
                    _unlink_quiet(tmp)
                    outcome = CopyOutcome(item, "failed", message=(
                        f"{exc.strerror or exc}"
                        + (f" ({exc.filename})" if exc.filename else "")))
            if out.stop is not None:
                break
            if outcome is not None:
                out.outcomes.append(outcome)
    except BaseException:  # a bug: nothing of the batch is handed on
        _unlink_written(out.files)
        raise
    finally:
        for fd in root_fds.values():
            os.close(fd)
    return out


def _fsync_each(written: list[tuple[CopyItem, str | int, str | None, int]]) -> None:
    """Where there is no ``syncfs``: an fsync per written file (never an unnamed one:
    those are written only where there is)."""
    for _, tmp, _, _ in written:
        assert isinstance(tmp, str)
        try:
            fd = os.open(tmp, os.O_RDONLY | os.O_CLOEXEC)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise target_error(exc, "fsync of a copy") from None


def _unlink_written(written: list[tuple[CopyItem, str | int, str | None, int]],
                    unnamed: bool = True) -> None:
    """Drop the temporary copies of a batch not (or not all) placed: temp files removed,
    unnamed ones closed (``unnamed``: False after ``_read_back_and_place``, which closed
    every unnamed file of its part already)."""
    for _, tmp, _, _ in written:
        if isinstance(tmp, int):
            if unnamed:
                os.close(tmp)
        else:
            _unlink_quiet(tmp)


def _drop(tmp: str | int) -> None:
    """One temporary copy dropped: a temp file removed, an unnamed one closed (gone)."""
    if isinstance(tmp, int):
        os.close(tmp)
    else:
        _unlink_quiet(tmp)


def copy_batch(root: str, items: list[CopyItem], retries: int = 2) -> Batch:
    """Copy ``items`` to the target at ``root`` on their own (in a thread; a run uses
    ``CopyRun``, which overlaps one batch's stages with the next one's). A file that fails
    for the source's reasons is retried, then reported, and the batch goes on; a target
    error stops the batch (``Batch.stop``) with what was finished so far in ``outcomes``.

    Two passes: every file of the batch is written to its temporary name, then one
    ``syncfs`` makes them all durable (an fsync per file where syncfs is missing); then
    each is read back from the device (its clean pages dropped, the reads queued a window
    ahead), hashed, compared with the catalog's sha256 and renamed into place. The caller
    flushes again (``settle``) before it records them in the manifest.
    """
    flush_each = not has_syncfs()
    w = _write_batch(root, items, flush_each, retries)
    out = Batch(outcomes=w.outcomes)
    # What was written before a target error (a full disk) is still finished and kept.
    if w.files and not flush_each:
        try:
            if not syncfs(os.path.join(root, TMP_DIR)):
                _fsync_each(w.files)
        except TargetError as exc:
            out.stop = exc
    if out.stop is None:
        _read_back_and_place(root, w.files, out, RealDirs(root))
    if out.stop is not None:
        _unlink_written(w.files)
    out.stop = out.stop or w.stop
    return out


class _GroupFlush:
    """Flushes of the target's file system shared by every stage (group commit).

    A stage that needs what it did so far made durable asks for a ticket (``ask``): the
    number of the next flush to *begin*, which therefore covers everything done before
    the ask; ``wait`` returns once that flush has ended. One thread runs the flushes, so
    a flush is on no stage's path unless that stage has nothing else to do, and when
    flushes are slow (a busy disk, other programs' data on the same file system) every
    ticket asked during one is served by the next: they get fewer, not longer.

    A written batch's ticket is urgent (its read-back waits for it): a flush begins at
    once. A placed batch's ticket (its renames, which only the hand-over to the manifest
    waits for) is not: it is served by the next urgent flush, which the next batch's
    writes ask for soon, or at once when nothing more is written or placed (``hurry``).
    So there is at most one flush per batch, and one for the last renames, instead of
    two per batch.

    A flush that fails fails every ticket it and any later flush would have served (the
    run stops; nothing after it is called durable)."""

    def __init__(self, flush: Callable[[], None], stats: Callable[..., None],
                 failed: Callable[[], None]) -> None:
        self._flush = flush
        self._stats = stats
        self._on_failure = failed
        self._cv = threading.Condition()
        self._asked = 0  # the highest ticket asked for
        self._urgent = 0  # the highest urgent ticket asked for
        self._hurry = False  # no urgent ticket is coming any more: serve every ticket
        self._begun = 0  # the number of the flush running or last run
        self._ended = 0  # tickets up to this one are durable
        self.failed: TargetError | None = None
        self._closing = False
        self._thread = threading.Thread(target=self._loop, name="backup-flush", daemon=True)
        self._thread.start()

    def ask(self, urgent: bool = True) -> int:
        with self._cv:
            self._asked = self._begun + 1
            if urgent:
                self._urgent = self._asked
            self._cv.notify_all()
            return self._asked

    def hurry(self) -> None:
        """No urgent ticket is coming (nothing more to place): serve the others now."""
        with self._cv:
            self._hurry = True
            self._cv.notify_all()

    def wait(self, ticket: int) -> None:
        """Return when flush ``ticket`` has ended; raise its TargetError if it failed."""
        with self._cv:
            while self._ended < ticket and self.failed is None:
                self._cv.wait()
            if self._ended < ticket:
                assert self.failed is not None
                raise self.failed

    def close(self) -> None:
        with self._cv:
            self._closing = True
            self._cv.notify_all()
        self._thread.join()

    def _loop(self) -> None:
        while True:
            with self._cv:
                while not (self._urgent > self._begun or (
                        self._asked > self._begun and (self._hurry or self._closing))
                           or self._closing):
                    self._cv.wait()
                if self._asked <= self._begun or self.failed is not None:
                    return
                self._begun += 1
                number = self._begun
            t0 = time.perf_counter()
            error: TargetError | None = None
            try:
                self._flush()
            except TargetError as exc:
                error = exc
            except BaseException as exc:  # a bug: reported like a failing target
                error = TargetError(TARGET_IO, f"flushing the target failed ({exc!r})")
            self._stats(flush_s=time.perf_counter() - t0, flushes=1)
            with self._cv:
                if error is None:
                    self._ended = number
                else:
                    self.failed = error
                self._cv.notify_all()
            if error is not None:
                self._on_failure()
                return


class CopyRun:
    """A run's copy as a pipeline of stages that share their flushes (a local target).

    Writer threads write whole batches to temporary names (``_write_batch``), ask for a
    flush (``_GroupFlush``) and queue the batch (a bounded queue: at most ``ahead``
    written batches wait). The placing threads take a batch, wait for its flush, read it
    back from the device, compare each file with the catalog's sha256 and rename it into
    place, ask for a flush again and queue it for the caller; ``next`` hands a batch over
    once that second flush has ended. The flush that makes batch N+1's data durable is
    usually the one that makes batch N's renames durable too, the flushes run while the
    stages go on (the read-back of one batch overlaps the writes of the next, and a
    flush overlaps both), and when flushes are slow several batches share one.

    The trust is ``copy_batch``'s: a file is read back only after a flush that began after
    it was written, placed only when it read back as the catalog's content, and handed
    over (recorded in the manifest by the caller) only after a flush that began after its
    rename. A flush that fails stops the run: no batch it (or a later flush) would have
    made durable is reported copied (the next run adopts, by hash, what did reach the
    disk), nothing it covered is read back or placed (those temporary files are removed).

    Where ``syncfs`` is missing the writers fsync each file and the placing thread fsyncs
    the batch's folders after its renames, before it is handed over.

    Where the target's file system has ``O_TMPFILE`` (``tmpfile_works``), a local file's
    copy is an unnamed file in its own folder instead of a temporary name, linked to its
    name where a named one is renamed (see the section on unnamed copies above): the
    writers keep the descriptors (up to TMPFILE_FDS in flight; beyond, temporary names)
    and the placing stage reads back through them. The guarantees are the same; a kill
    leaves nothing to clear.
    """

    def __init__(self, root: str, batches: Iterable[list[CopyItem]], writers: int = 1,
                 ahead: int = 1, placers: int = 1) -> None:
        self.root = root
        self._dirs = RealDirs(root)  # the folders checked once per run
        self._batches = iter(batches)
        self._take = threading.Lock()
        # Where the time goes (the job's result): seconds the writers spent writing and
        # waiting for the placing stage (the queue full), the flushes, the placing stage
        # reading back and placing, and waiting for a written batch and for its flush.
        self.stats: dict[str, float] = dict.fromkeys(
            ("write_s", "write_wait_s", "flush_s", "flushes", "place_s", "place_wait_s",
             "batches"), 0.0)
        self._syncfs = has_syncfs()
        # Unnamed copies where the file system has them (and syncfs: they are never
        # fsynced one by one), as many at once as the budget of descriptors allows.
        self._fds = _FdBudget(_fd_room(TMPFILE_FDS)
                              if self._syncfs and tmpfile_works(root) else 0)
        # The descriptor every flush goes through, opened before the first write: syncfs
        # reports a write-back error that happened any time after the descriptor was
        # opened, so one the kernel met between two flushes is not missed.
        self._fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC) \
            if self._syncfs else -1
        self._flusher = _GroupFlush(self._flush_now, self._add, self.stop) \
            if self._syncfs else None
        self._written: queue.Queue[tuple[_Written, int] | None] = queue.Queue(
            maxsize=max(1, ahead))
        self._out: queue.Queue[tuple[Batch, int] | BaseException | None] = queue.Queue()
        self._starting = True  # writers take new batches (cleared by stop and by errors)
        self._abort = threading.Event()  # close(): nothing more is read back or placed
        self._ended = False
        self._placers = max(1, placers)
        self._helpers = ThreadPoolExecutor(self._placers - 1, thread_name_prefix="backup-place") \
            if self._placers > 1 else None
        # Each writer creates its files in a folder of its own: a create holds its folder's
        # lock while the file system allocates the inode (on ext4 without a journal a scan
        # past recently freed inodes), so writers sharing one folder would take turns.
        # The first writes in the temp dir itself, the others in ``w<n>`` below it
        # (removed again by ``close``, or by the next run's ``clear_temp``).
        tmp = os.path.join(root, TMP_DIR)
        self._tmp_dirs = [tmp] + [os.path.join(tmp, f"w{i}") for i in range(1, max(1, writers))]
        try:
            for d in self._tmp_dirs[1:]:
                os.makedirs(d, exist_ok=True)
        except OSError:  # the target's trouble shows (and is reported) at the first write
            self._tmp_dirs = [tmp] * len(self._tmp_dirs)
        self._writers = [threading.Thread(target=self._write_loop, args=(d,),
                                          name=f"backup-write-{i}", daemon=True)
                         for i, d in enumerate(self._tmp_dirs)]
        self._placer = threading.Thread(target=self._place_loop, name="backup-place",
                                        daemon=True)
        for t in self._writers:
            t.start()
        self._placer.start()

    # -- the caller's side

    def next(self) -> Batch | None:
        """The next batch whose copies are durable (blocking), None when the run is done."""
        if self._ended:
            return None
        got = self._out.get()
        if got is None:
            self._ended = True
            return None
        if isinstance(got, BaseException):
            self._ended = True
            raise got
        out, ticket = got
        if ticket and self._flusher is not None:
            try:
                self._flusher.wait(ticket)
            except TargetError as exc:
                # Its renames are not known durable: handed over without its copies.
                out.outcomes = [o for o in out.outcomes
                                if o.status not in ("copied", "adopted")]
                out.stop = out.stop or exc
        return out

    def stop(self) -> None:
        """Start no more batches; those already taken finish and are still handed over."""
        self._starting = False

    def close(self) -> None:
        """End the run now (cancelled, or every batch taken): what is written but not
        placed is removed, the threads are waited for, the flush descriptor closed."""
        self._starting = False
        self._abort.set()
        for t in self._writers:
            t.join()
        self._placer.join()
        if self._helpers is not None:
            self._helpers.shutdown()
        if self._flusher is not None:
            self._flusher.close()
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        for d in set(self._tmp_dirs[1:]) - {self._tmp_dirs[0]}:
            with contextlib.suppress(OSError):  # not empty: the next run's clear_temp
                os.rmdir(d)

    # -- the threads

    def _add(self, **values: float) -> None:
        with self._take:
            for k, v in values.items():
                self.stats[k] += v

    def _ask(self) -> int:
        return self._flusher.ask() if self._flusher is not None else 0

    def _write_loop(self, tmp_dir: str) -> None:
        try:
            while self._starting and not self._abort.is_set():
                with self._take:
                    batch = next(self._batches, None)
                if batch is None:
                    break
                t0 = time.perf_counter()
                took = self._fds.take(len(batch)) if self._fds.free else 0
                try:
                    w = _write_batch(self.root, batch, not self._syncfs, tmp_dir=tmp_dir,
                                     unnamed=took, dirs=self._dirs)
                except BaseException:
                    self._fds.give(took)
                    raise
                self._fds.give(took - w.fds)  # the rest when the batch's are closed
                ticket = self._ask() if w.files else 0
                t1 = time.perf_counter()
                if w.stop is not None:
                    self._starting = False
                self._written.put((w, ticket))
                self._add(write_s=t1 - t0, write_wait_s=time.perf_counter() - t1)
        except BaseException as exc:  # a bug, not a file's failure: the run ends with it
            self._starting = False
            self._out.put(exc)
        finally:
            self._written.put(None)

    def _flush_now(self) -> None:
        """Everything written and renamed so far made durable (raises TargetError)."""
        if _libc.syncfs(self._fd) != 0:
            err = ctypes.get_errno()
            raise target_error(OSError(err, os.strerror(err)), "flushing the target")

    def _place_loop(self) -> None:
        failed = False  # a flush or a rename stopped the run: nothing more is placed
        ended = 0
        try:
            while ended < len(self._writers):
                t0 = time.perf_counter()
                got = self._written.get()
                if got is None:
                    ended += 1
                    continue
                w, ticket = got
                try:
                    if failed or self._abort.is_set():
                        _unlink_written(w.files)
                        continue
                    try:
                        if self._flusher is not None and ticket:
                            self._flusher.wait(ticket)
                    except TargetError as exc:
                        # Its data is not known durable: nothing of it is read back or placed.
                        failed, self._starting = True, False
                        _unlink_written(w.files)
                        self._out.put((Batch(outcomes=w.outcomes, stop=exc), 0))
                        continue
                    t1 = time.perf_counter()
                    out = Batch(outcomes=w.outcomes)
                    self._read_back(w.files, out)
                    if out.stop is not None:
                        failed, self._starting = True, False
                        _unlink_written(w.files, unnamed=False)
                    out.stop = out.stop or w.stop
                    renames = 0
                    if any(o.status in ("copied", "adopted") for o in out.outcomes):
                        if self._flusher is not None:
                            renames = self._flusher.ask(urgent=False)
                        else:
                            try:
                                fsync_dirs(out.dirs)
                            except TargetError as exc:
                                out.outcomes = [o for o in out.outcomes
                                                if o.status not in ("copied", "adopted")]
                                out.stop = out.stop or exc
                                failed, self._starting = True, False
                    if out.outcomes or out.stop is not None:
                        self._out.put((out, renames))
                    self._add(place_s=time.perf_counter() - t1, place_wait_s=t1 - t0, batches=1)
                finally:
                    self._fds.give(w.fds)  # its unnamed copies are closed now
        except BaseException as exc:
            self._out.put(exc)
            self._drain()
        finally:
            # Nothing more is written or placed: the last renames' tickets are served now.
            if self._flusher is not None:
                self._flusher.hurry()
            self._out.put(None)

    def _read_back(self, written: list[tuple[CopyItem, str | int, str | None, int]],
                   out: Batch) -> None:
        """``_read_back_and_place`` of a batch, its files shared among the placing
        threads (each reads its part back with its own window of queued reads)."""
        if self._helpers is None or len(written) < 2:
            _read_back_and_place(self.root, written, out, self._dirs)
            return
        n = self._placers
        parts = [written[i::n] for i in range(n)]
        outs = [Batch() for _ in parts]
        futs = [self._helpers.submit(_read_back_and_place, self.root, p, o, self._dirs)
                for p, o in zip(parts[1:], outs[1:], strict=True)]
        _read_back_and_place(self.root, parts[0], outs[0], self._dirs)
        for f in futs:
            f.result()
        for o in outs:
            out.outcomes.extend(o.outcomes)
            out.dirs |= o.dirs
            out.stop = out.stop or o.stop

    def _drain(self) -> None:
        """After a bug in the placing thread: the writers are let finish, their files
        removed."""
        self._starting = False
        ended = 0
        while ended < len(self._writers):
            got = self._written.get()
            if got is None:
                ended += 1
            else:
                _unlink_written(got[0].files)
                self._fds.give(got[0].fds)


class BatchThreads:
    """``CopyRun``'s interface over a store's own ``copy_batch`` (an S3 bucket: each
    upload is checked by the endpoint, nothing to pipeline), ``threads`` batches at once;
    a batch stopped by a target error lets those in flight finish and starts no more."""

    def __init__(self, copy: Callable[[list[CopyItem]], Batch],
                 batches: Iterable[list[CopyItem]], threads: int) -> None:
        self._pool = ThreadPoolExecutor(max(1, threads), thread_name_prefix="backup-copy")
        self._copy = copy
        self._batches = iter(batches)
        self._running: set[Future[Batch]] = set()
        self._starting = True
        self.stats: dict[str, float] = {}
        for _ in range(max(1, threads)):
            self._launch()

    def _launch(self) -> None:
        if self._starting:
            batch = next(self._batches, None)
            if batch is not None:
                self._running.add(self._pool.submit(self._copy, batch))

    def next(self) -> Batch | None:
        if not self._running:
            return None
        done, _ = wait(self._running, return_when=FIRST_COMPLETED)
        fut = done.pop()
        self._running.discard(fut)
        out = fut.result()
        if out.stop is not None:
            self._starting = False
        self._launch()
        return out

    def stop(self) -> None:
        self._starting = False

    def close(self) -> None:
        self._starting = False
        self._pool.shutdown(wait=True)


def _read_back_and_place(root: str,
                         written: list[tuple[CopyItem, str | int, str | None, int]],
                         out: Batch, dirs: RealDirs | None = None) -> None:
    """The second pass of ``copy_batch``: read back, compare, rename (or link, an unnamed
    copy); stops at a target error (``out.stop``), the temporary files not placed left for
    the caller to remove. Every unnamed copy of ``written`` is closed when this returns
    (placed or not: what was not linked is gone with it)."""
    armed: dict[int, int | OSError] = {}
    ahead = 0  # the next file to arm
    ahead_bytes = 0
    owned = 0  # written[owned:]'s unnamed copies are still open (closed by the finally)
    try:
        for i, (item, tmp, sha, size) in enumerate(written):
            while ahead < len(written) and (ahead <= i or (
                    ahead - i < READ_AHEAD_FILES and ahead_bytes < READ_AHEAD_BYTES)):
                t = written[ahead][1]
                armed[ahead] = _arm_fd(t) if isinstance(t, int) else _arm(t)
                ahead_bytes += written[ahead][3]
                ahead += 1
            fd = armed.pop(i)
            ahead_bytes -= size
            named = isinstance(tmp, str)
            try:
                if isinstance(fd, OSError):
                    raise fd
                try:
                    again, n = _digest_fd(fd, size)
                finally:
                    if named:
                        os.close(fd)
                if again != item.sha256 or n != size:
                    owned = i + 1
                    _drop(tmp)
                    out.outcomes.append(_mismatch(item, sha is not None))
                    continue
                rel, adopted = place(root, tmp, item.rel, again, dirs)
            except TargetError as exc:
                owned = i + 1
                _drop(tmp)
                out.stop = exc
                return
            except OSError as exc:
                owned = i + 1
                _drop(tmp)
                out.outcomes.append(CopyOutcome(item, "failed",
                                                message=f"{exc.strerror or exc}"))
                continue
            owned = i + 1
            if not named:
                os.close(fd)
            head = rel.rpartition("/")[0]
            out.dirs.add(f"{root}/{head}" if head else root)
            out.outcomes.append(CopyOutcome(item, "adopted" if adopted else "copied",
                                            rel=rel, bytes=0 if adopted else size))
    finally:
        for j, fd in armed.items():
            if not isinstance(fd, OSError) and isinstance(written[j][1], str):
                os.close(fd)
        for _, t, _, _ in written[owned:]:
            if isinstance(t, int):
                os.close(t)


def settle(root: str, dirs: Iterable[str]) -> None:
    """Make the renames of a batch durable: one syncfs, or an fsync per folder."""
    if not syncfs(root):
        fsync_dirs(dirs)


def check_source(item: CopyItem) -> CopyOutcome | None:
    """Re-read a source file already on the target: damaged (bit rot) or None when it
    still matches (or changed the ordinary way: the scanner's business)."""
    try:
        src, _ = confine.open_photo(item.loc)
    except (OSError, confine.Refused):
        return None
    with src:
        sha, _ = hash_file(src)
    if sha == item.sha256:
        return None
    return CopyOutcome(item, "damaged", message=(
        f"content changed at the source (sha256 {sha[:12]}…, the catalog has "
        f"{item.sha256[:12]}…) while its size and mtime did not; the copy on the target "
        "is kept"))


def fsync_dirs(dirs: Iterable[str]) -> None:
    for d in sorted(dirs):
        try:
            fsync_dir(d)
        except OSError as exc:
            raise target_error(exc, "fsync of a folder") from None


def _unlink_quiet(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


# -- verify and restore -------------------------------------------------------------------

def verify_one(root: str, rel: str, sha256: str, size: int) -> tuple[str, int]:
    """(ok | missing | changed, bytes read) for one manifest row. The manifest's size says
    how to read it: a small file in one read of just its size (and a byte more, so a
    longer file shows), not through a buffered file object's 1 MB reads."""
    path = os.path.join(root, rel)
    try:
        fd = os.open(path, _READ_BACK)
    except OSError:
        return "missing", 0
    try:
        got, n = _digest_fd(fd, size)
    except OSError:
        return "missing", 0
    finally:
        os.close(fd)
    return ("ok" if got == sha256 and n == size else "changed"), n


def walk_files(root: str) -> Iterator[str]:
    """Every regular file below the target, relative, lightbox's own files left out."""
    stack = [""]
    while stack:
        rel = stack.pop()
        try:
            with os.scandir(os.path.join(root, rel) if rel else root) as it:
                entries = list(it)
        except OSError:
            continue
        for e in entries:
            if not rel and e.name in RESERVED:
                continue
            child = f"{rel}/{e.name}" if rel else e.name
            try:
                if e.is_dir(follow_symlinks=False):
                    stack.append(child)
                elif e.is_file(follow_symlinks=False):
                    yield child
            except OSError:
                continue


_LEFTOVER = re.compile(r"^\..*\.(\d+)(?:-\d+)?\.(?:lbrestore|lbdownload)$")


def clear_restore_leftovers(folders: Iterable[str]) -> int:
    """Remove the temporary files (``.<name>.<pid>-<n>.lbrestore``, ``….lbdownload``) that
    restores of processes no longer running left in ``folders``; returns how many."""
    removed = 0
    for folder in folders:
        try:
            entries = list(os.scandir(folder))
        except OSError:
            continue
        for e in entries:
            m = _LEFTOVER.match(e.name)
            if m is None or int(m.group(1)) == os.getpid() or pid_alive(int(m.group(1))):
                continue
            try:
                os.unlink(e.path)
                removed += 1
            except OSError:
                pass
    return removed




def restore_one(src: str, dest: str, sha256: str, overwrite: bool) -> tuple[str, int, str]:
    """Copy ``src`` (on the target) to ``dest``, hash-checked: (status, bytes, message) with
    status restored | present | kept | damaged | failed | missing | disk_full."""
    if os.path.lexists(dest):
        try:
            same = os.path.isfile(dest) and not os.path.islink(dest) \
                and hash_path(dest)[0] == sha256
        except OSError:
            same = False
        if same:
            return "present", 0, ""
        if not overwrite:
            return "kept", 0, "a different file is there (restore with overwrite to replace it)"
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    tmp = os.path.join(os.path.dirname(dest),
                       f".{os.path.basename(dest)[:100]}.{os.getpid()}-{next(_counter)}.lbrestore")
    try:
        h = hashlib.sha256()
        size = 0
        with open(src, "rb") as fin, open(tmp, "xb") as fout:
            while True:
                chunk = fin.read(CHUNK)
                if not chunk:
                    break
                h.update(chunk)
                size += len(chunk)
                fout.write(chunk)
            fout.flush()
            os.fsync(fout.fileno())
        if h.hexdigest() != sha256:
            _unlink_quiet(tmp)
            return "damaged", 0, "the copy on the target does not match its manifest sha256"
        if hash_path(tmp, drop_cache=True)[0] != sha256:
            _unlink_quiet(tmp)
            return "failed", 0, "the restored file read back differs"
        os.replace(tmp, dest)
        fsync_dir(os.path.dirname(dest))
        return "restored", size, ""
    except FileNotFoundError as exc:
        _unlink_quiet(tmp)
        return ("missing" if exc.filename == src else "failed"), 0, f"{exc.strerror}"
    except OSError as exc:
        _unlink_quiet(tmp)
        return restore_failure(exc)


def restore_failure(exc: OSError) -> tuple[str, int, str]:
    """A restore's failed file: ``disk_full`` when the destination has no room (the run
    stops there: every later file would fail the same way), else ``failed``."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DISK_FULL, 0, f"{exc.strerror or exc} (the destination is full)"
    return "failed", 0, f"{exc.strerror or exc}"


class LocalStore:
    """A local folder as a target: the operations a run needs, as ``s3.S3Store`` has them."""

    def __init__(self, path: str, marker: str) -> None:
        self.path = path
        self.marker = marker

    @property
    def where(self) -> str:
        return self.path

    def read_marker(self) -> dict[str, object] | None:
        return read_marker(self.path)

    def prepare(self, name: str) -> None:
        prepare(self.path, name, self.marker)

    def check(self) -> TargetError | None:
        return check(self.path, self.marker)

    def clear_temp(self) -> int:
        return clear_temp(self.path)

    def copy_batch(self, items: list[CopyItem]) -> Batch:
        out = copy_batch(self.path, items)
        if out.outcomes:
            try:
                settle(self.path, out.dirs)
            except TargetError as exc:
                # Not durable for sure: none of the batch is recorded (the next run adopts
                # what did reach the disk, by hash).
                out.outcomes = [o for o in out.outcomes
                                if o.status not in ("copied", "adopted")]
                out.stop = exc
        return out

    def copy_run(self, batches: Iterable[list[CopyItem]], threads: int) -> CopyRun:
        """A run's batches as a pipeline (``CopyRun``): ``threads`` is the daemon's worker
        count; as many writers, and two placing threads more. Both stages' time is mostly
        the kernel's, outside the GIL (a writer's: creating files, ``sendfile``; a placing
        thread's: waiting for its device reads, renames): with one writer the placing
        threads waited for data through most of a first backup of small files, with two
        the writers waited for the placing stage, whose extra threads keep reads queued
        at the device while the others wait for a CPU."""
        return CopyRun(self.path, batches, writers=max(1, threads), placers=threads + 2)

    def sums_exist(self) -> bool:
        return os.path.exists(os.path.join(self.path, SUMS))

    def write_sums(self, rows: Iterable[tuple[str, str]]) -> None:
        write_sums(self.path, rows)

    def verify_one(self, rel: str, sha256: str, size: int) -> tuple[str, int]:
        return verify_one(self.path, rel, sha256, size)

    def walk_files(self) -> Iterator[str]:
        return walk_files(self.path)

    def delete(self, rel: str) -> None:
        try:
            os.unlink(os.path.join(self.path, rel))
        except FileNotFoundError:
            pass

    def restore_one(self, rel: str, dest: str, sha256: str, overwrite: bool
                    ) -> tuple[str, int, str]:
        return restore_one(os.path.join(self.path, rel), dest, sha256, overwrite)
