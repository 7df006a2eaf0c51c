"""Folders below a target (or an import's root) that are what they seem: real directories
on the same filesystem as the root.

``place`` renames a copy to ``<root>/<rel>`` and makes the missing folders with
``makedirs``; both follow symbolic links in the folders of the path, and both cross mounts.
So a folder of the target that is a symbolic link (``photos/2020 -> /srv/other``) would
put copies outside the target, and one that is a mount point would put them on another
filesystem, which the run's ``syncfs`` of the target does not make durable before the
manifest says "copied" (and which takes the copies with it when it is unmounted).

``RealDirs.check`` walks the folders of a path once per run, from the root down, with
``lstat``: each must be a directory (not a link to one) with the root's device. A folder
seen once is remembered, so a run of 100,000 files in 1,000 folders pays ~1,000 walks, and
the folders a run makes itself are real by construction. The check is against mistakes
and surprises on a disk the user owns (a symlink left in a backup folder, a disk mounted
inside another), not against someone racing the daemon on its own target: that person
can already change the copies.
"""

from __future__ import annotations

import errno
import os
import stat


class NotBeneath(OSError):
    """A folder of the path is a symbolic link, not a directory, or another filesystem."""


class RealDirs:
    """The folders below ``root`` checked so far in this run (see module doc)."""

    def __init__(self, root: str, *, same_device: bool = True) -> None:
        self.root = root
        # A restore's destination may hold a disk mounted on purpose (each restored file
        # is flushed on its own): there only links are refused.
        self.same_device = same_device
        self.device: int | None = None  # the root's, read at the first check
        self._seen: set[str] = {""}

    def check(self, rel_dir: str) -> None:
        """Raise ``NotBeneath`` when a folder of ``rel_dir`` (relative to the root, "/"
        separated) that exists is not a real directory on the root's filesystem; folders
        that do not exist yet are fine (``makedirs`` makes them real)."""
        if rel_dir in self._seen:
            return
        if self.device is None:
            self.device = os.stat(self.root).st_dev
        parts = [p for p in rel_dir.split("/") if p]
        done = ""
        for part in parts:
            if part in (".", ".."):
                raise NotBeneath(errno.EINVAL, f"'{part}' in the folder {rel_dir!r}",
                                 rel_dir)
            here = f"{done}/{part}" if done else part
            if here not in self._seen:
                try:
                    st = os.lstat(os.path.join(self.root, here))
                except FileNotFoundError:
                    return  # the rest is made by this run
                path = os.path.join(self.root, here)
                if stat.S_ISLNK(st.st_mode):
                    raise NotBeneath(errno.ELOOP, f"{path} is a symbolic link: lightbox "
                                     "does not write through links", path)
                if not stat.S_ISDIR(st.st_mode):
                    raise NotBeneath(errno.ENOTDIR, f"{path} is a file, not a folder", path)
                if self.same_device and st.st_dev != self.device:
                    raise NotBeneath(errno.EXDEV, f"{path} is another filesystem mounted "
                                     "inside this one: lightbox does not write across "
                                     "mounts", path)
                self._seen.add(here)
            done = here
        self._seen.add(rel_dir)

    def made(self, rel_dir: str) -> None:
        """``rel_dir`` and its parents were just made by this run: real by construction."""
        parts = [p for p in rel_dir.split("/") if p]
        for i in range(1, len(parts) + 1):
            self._seen.add("/".join(parts[:i]))
