"""A local root's identity: which directory, on which mount, a root is.

An unmounted disk or bind mount leaves a directory at the root's path: often empty, but not
always (a ``.keep`` file, a mount point that holds older files). Emptiness is therefore no
proof; identity is. It is recorded when the root is added and compared at every scan pass,
every watcher pass and every few seconds while watched:

- the root directory's own (st_dev, st_ino): an unmount, a rename-away, a directory put in
  its place all change it;
- the mount it lives on, from ``/proc/self/mountinfo``: its major:minor and its mount id. A
  mount id is new at every mount, so a different id over the same (dev, inode) is the same
  file system mounted again: the id is updated, the root stays trusted.

Runs in a thread (a stat and a read of the mount table).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from lightbox.daemon.library import admission


@dataclass(frozen=True)
class Identity:
    dev: int
    inode: int
    mount_id: int | None = None
    mount_device: str | None = None   # major:minor, as mountinfo writes it

    def same_directory(self, other: Identity) -> bool:
        """The very directory that was recorded (the mount id may differ: remounted)."""
        if (self.dev, self.inode) != (other.dev, other.inode):
            return False
        return (self.mount_device is None or other.mount_device is None
                or self.mount_device == other.mount_device)

    def describe(self) -> str:
        return (f"dev {self.dev} inode {self.inode}, mount {self.mount_id} "
                f"({self.mount_device})")


def probe(path: str, mountinfo: str = "/proc/self/mountinfo") -> Identity:
    """The identity of the directory at ``path`` now (OSError when it cannot be stat'ed)."""
    st = os.stat(path)
    mount = admission.mount_of(path, admission.mounts(mountinfo))
    if mount is None:
        return Identity(st.st_dev, st.st_ino)
    return Identity(st.st_dev, st.st_ino, mount.id if mount.id >= 0 else None, mount.device)
