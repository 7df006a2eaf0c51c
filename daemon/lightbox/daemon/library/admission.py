"""Which folders may become roots: no system tree, none of the daemon's own files, no overlap.

A root is a promise that everything below it may be read, hashed and served to any client
with the ``read`` class. ``roots.add`` therefore refuses:

- ``/`` and the kernel's and the system's trees (``/proc``, ``/sys``, ``/dev``, ``/run``,
  ``/etc``, ``/usr``, ``/boot``, ``/var/lib`` …), a folder inside one, and a folder holding
  one (``/var``); any folder on a pseudo file system (procfs, sysfs … mounted elsewhere);
- the daemon's own data, cache, state, config and runtime directories, its catalog file's
  directory, a folder inside one, and a folder holding one;
- a home directory itself, or a folder holding one (``/home``): it holds dotfiles, keys and
  the daemon's own data. A folder *inside* a home is fine: ``~/Pictures`` is the default
  root of ``make run`` (``/root/Pictures`` for root). Homes are those of root and of
  ordinary users (uid ≥ 1000) in the password database, and ``$HOME``;
- an existing root again, a folder inside one or a folder holding one;
- a local backup target, a folder inside one or a folder holding one: the library would
  index its own copies as photos, and an import into such a root would write into the
  backup (``backups.add`` refuses the converse: a target inside or holding a root).

Paths are compared resolved (``realpath``: symbolic links, ``//x``, ``x/../y``) **and** by
identity: each folder's (device, inode) and those of its ancestors, and where it lies in its
file system (from ``/proc/self/mountinfo``: a bind mount's source folder), so a bind mount of
a root, of a folder inside one, or of ``/etc``, at another path is seen for what it is.
"""

from __future__ import annotations

import os
import pwd
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from lightbox.common.config import Config
from lightbox.common.paths import default_config_file

SYSTEM_TREES = ("/proc", "/sys", "/dev", "/run", "/boot", "/efi", "/etc", "/usr", "/bin",
                "/sbin", "/lib", "/lib32", "/lib64", "/libx32", "/snap", "/var/lib",
                "/var/log", "/var/cache", "/var/spool", "/var/run", "/var/lock", "/var/backups",
                "/var/mail", "/var/db")
PSEUDO_FILESYSTEMS = frozenset({
    "proc", "sysfs", "devtmpfs", "devpts", "cgroup", "cgroup2", "securityfs", "debugfs",
    "tracefs", "bpf", "pstore", "configfs", "fusectl", "mqueue", "hugetlbfs", "efivarfs",
    "binfmt_misc", "selinuxfs", "rpc_pipefs", "nsfs", "autofs"})

# Reasons (``error.data.reason`` of a refused roots.add).
FILESYSTEM_ROOT = "filesystem_root"
SYSTEM_TREE = "system_tree"
PSEUDO_FS = "pseudo_filesystem"
DAEMON_DIR = "daemon_dir"
HOME_DIR = "home_dir"
SAME_ROOT = "already_a_root"
INSIDE_ROOT = "inside_a_root"
HOLDS_ROOT = "holds_a_root"
BACKUP_TARGET = "backup_target"


@dataclass(frozen=True)
class Guarded:
    """A folder a root must keep clear of."""

    path: str
    what: str                 # for the message: "the daemon's cache dir", "the root photos"
    reason: str
    inside_ok: bool = False   # homes: a folder inside one is fine


@dataclass(frozen=True)
class Refusal:
    reason: str
    message: str


_Id = tuple[int, int]


def _ident(path: str) -> _Id | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _chain(path: str) -> list[_Id]:
    """(dev, inode) of ``path`` (resolved, so free of links) and of each ancestor, upwards;
    an ancestor that cannot be stat'ed is left out."""
    out = []
    while True:
        ident = _ident(path)
        if ident is not None:
            out.append(ident)
        if path == "/":
            return out
        path = os.path.dirname(path)


def _under(path: str, top: str) -> bool:
    return top in (path, "/") or path.startswith(top.rstrip("/") + "/")


def resolve(path: str) -> str:
    """The canonical form of a root's path: absolute, resolved, one leading slash."""
    real = os.path.realpath(os.path.expanduser(path))
    return "/" + real.lstrip("/")


def homes() -> list[str]:
    found = {os.path.expanduser("~")}
    try:
        for pw in pwd.getpwall():
            if (pw.pw_uid == 0 or 1000 <= pw.pw_uid < 65534) and pw.pw_dir:
                found.add(pw.pw_dir)
    except OSError:
        pass
    return sorted(p for p in found if p and p != "/")


def system_guards() -> list[Guarded]:
    return ([Guarded(p, "a system tree", SYSTEM_TREE) for p in SYSTEM_TREES]
            + [Guarded(h, "a home directory", HOME_DIR, inside_ok=True) for h in homes()])


def daemon_dirs(config: Config) -> list[Guarded]:
    """The daemon's own directories (and its catalog file's), for ``Sources``."""
    p = config.paths
    found = [(p.data_dir, "the daemon's data dir"), (p.cache_dir, "the daemon's cache dir"),
             (p.state_dir, "the daemon's state dir"), (p.runtime_dir, "the daemon's runtime dir"),
             (config.socket_dir, "the daemon's socket dir"),
             (default_config_file().parent, "the daemon's config dir")]
    if config.source is not None:
        found.append((config.source.parent, "the daemon's config dir"))
    for key in ("control.server_key", "control.authorized_keys"):
        if config[key]:
            found.append((Path(config[key]).parent, "the daemon's keys"))
    url = sa.engine.make_url(config.database_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        found.append((Path(url.database).parent, "the catalog's directory"))
    return [Guarded(str(path.absolute()), what, DAEMON_DIR) for path, what in found]


def check(candidate: str, guards: Iterable[Guarded]) -> Refusal | None:
    """Why ``candidate`` (resolved, an existing directory) may not be a root, or None."""
    if candidate == "/":
        return Refusal(FILESYSTEM_ROOT, "/ is the whole file system, not a photo folder")
    pseudo = _pseudo(candidate)
    if pseudo is not None:
        return pseudo
    for g, kind, gpath, alias in _relations(candidate, guards):
        if kind == "same":
            shown = f" ({gpath}{alias})" if alias or gpath != candidate else ""
            already = "already a root: " if g.reason == SAME_ROOT else ""
            return Refusal(g.reason, f"{candidate} is {already}{g.what}{shown}")
        if kind == "inside" and not g.inside_ok:
            return Refusal(INSIDE_ROOT if g.reason == SAME_ROOT else g.reason,
                           f"{candidate} is inside {g.what}: {gpath}{alias}")
        if kind == "holds":
            return Refusal(HOLDS_ROOT if g.reason == SAME_ROOT else g.reason,
                           f"{candidate} holds {g.what}: {gpath}{alias}")
    return None


def check_new(candidate: str, guards: Iterable[Guarded]) -> Refusal | None:
    """``check`` for a folder that may not exist yet (a restore's destination, made by the
    restore): it will lie inside its nearest existing ancestor and hold nothing, so that
    ancestor being a guarded folder means "inside" it (``~/restored`` is inside a home,
    which is fine; it is not the home), and the ancestor holding one means nothing."""
    if os.path.exists(candidate):
        return check(candidate, guards)
    anc = _existing(candidate)
    pseudo = _pseudo(anc)
    if pseudo is not None:
        return pseudo
    for g, kind, gpath, alias in _relations(anc, guards):
        if kind in ("same", "inside") and not g.inside_ok:
            return Refusal(INSIDE_ROOT if g.reason == SAME_ROOT else g.reason,
                           f"{candidate} is inside {g.what}: {gpath}{alias}")
    return None


def _pseudo(candidate: str) -> Refusal | None:
    fstype = filesystem_type(candidate)
    if fstype in PSEUDO_FILESYSTEMS:
        return Refusal(PSEUDO_FS, f"{candidate} is on a {fstype} file system, which holds "
                                  "the kernel's state, not photos")
    return None


def _relations(candidate: str, guards: Iterable[Guarded]
               ) -> Iterable[tuple[Guarded, str, str, str]]:
    """(guard, "same" | "inside" | "holds", its resolved path, an alias note) for each
    relation of ``candidate`` (an existing directory) to each guard, in the guards' order
    and, per guard, in that order."""
    chain = _chain(candidate)
    me = chain[0] if chain else None
    table = mounts()
    here = location(candidate, table)
    for g in guards:
        gpath = resolve(g.path)
        gexists = os.path.exists(gpath)
        gchain = _chain(_existing(gpath))
        gid = gchain[0] if gexists and gchain else None
        there = location(gpath, table) if gexists else None
        by_path = (candidate == gpath, _under(candidate, gpath) and candidate != gpath,
                   _under(gpath, candidate) and candidate != gpath)
        by_id = (gid is not None and gid == me, gid is not None and gid in chain[1:],
                 me is not None and me in (gchain[1:] if gexists else gchain))
        if here is not None and there is not None and here[0] == there[0]:
            # Where each lies in its file system: a bind mount of a folder inside a root (or
            # of a folder above one) has parents the (dev, inode) chain cannot see.
            by_id = (by_id[0] or here == there,
                     by_id[1] or (_under(here[1], there[1]) and here != there),
                     by_id[2] or (_under(there[1], here[1]) and here != there))
        same, inside, holds = (p or i for p, i in zip(by_path, by_id, strict=True))
        alias = "" if any(by_path) else ", reached by another path (a bind mount?)"
        for kind, true in (("same", same), ("inside", inside), ("holds", holds)):
            if true:
                yield g, kind, gpath, alias


def _existing(path: str) -> str:
    """``path`` or its nearest ancestor that exists."""
    while path != "/" and not os.path.exists(path):
        path = os.path.dirname(path)
    return path


@dataclass(frozen=True)
class Mount:
    point: str     # where it is mounted
    root: str      # which directory of its file system appears there (bind mounts: not /)
    device: str    # major:minor
    fstype: str
    id: int = -1   # the mount id (first field of a mountinfo line): new at every mount


def mounts(mountinfo: str = "/proc/self/mountinfo") -> list[Mount]:
    try:
        with open(mountinfo, encoding="utf-8", errors="replace") as f:
            lines: Sequence[str] = f.read().splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        left, sep, right = line.partition(" - ")
        fields = left.split()
        if sep and len(fields) >= 5:
            out.append(Mount(_unescape(fields[4]), _unescape(fields[3]), fields[2],
                             right.split(" ", 1)[0], int(fields[0]) if fields[0].isdigit()
                             else -1))
    return out


def mount_of(path: str, table: Sequence[Mount]) -> Mount | None:
    best: Mount | None = None
    for m in table:     # later lines are mounted over earlier ones at the same point
        if _under(path, m.point) and (best is None or len(m.point) >= len(best.point)):
            best = m
    return best


def location(path: str, table: Sequence[Mount]) -> tuple[str, str] | None:
    """(device, path inside that file system) of a resolved path: the same directory
    reached through two bind mounts has one location."""
    m = mount_of(path, table)
    if m is None:
        return None
    below = path[len(m.point.rstrip("/")):] if m.point != "/" else path
    return m.device, "/" + (m.root.rstrip("/") + below).lstrip("/")


def filesystem_type(path: str, mountinfo: str = "/proc/self/mountinfo") -> str | None:
    """The type of the file system ``path`` (resolved) is on, from the mount table."""
    m = mount_of(path, mounts(mountinfo))
    return None if m is None else m.fstype


def _unescape(text: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal (\\040 …)."""
    if "\\" not in text:
        return text
    out, i = [], 0
    while i < len(text):
        if text[i] == "\\" and text[i + 1:i + 4].isdigit():
            out.append(chr(int(text[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(text[i])
            i += 1
    return "".join(out)
