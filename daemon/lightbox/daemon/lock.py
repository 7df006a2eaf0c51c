"""One daemon per control socket, decided before anything else happens.

libzmq unlinks an existing ipc socket file when it binds, so without a lock a second daemon
would silently steal the first one's socket. An flock(2) on a file beside the socket is held
for the daemon's lifetime; the kernel drops it when the process dies however it dies, so a
crash leaves nothing that blocks the next start (the stale socket file is simply rebound).

The lock is the daemon's first component: a second daemon started on a data dir in use
exits 3 before it migrates the catalog, spawns workers, watches folders or cleans up the
temporary files of the one that is running.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Any

from lightbox.common.paths import ensure_private_dir


class AlreadyRunning(Exception):
    """Another live daemon holds the lock."""


class InstanceLock:
    name = "instance"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    async def start(self) -> None:
        ensure_private_dir(self.path.parent)
        self.acquire()

    async def stop(self) -> None:
        self.release()

    def status(self) -> dict[str, Any]:
        return {"held": self._fd is not None}

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            finally:
                os.close(fd)
            raise AlreadyRunning(
                f"another lightboxd (pid {holder}) is already serving {self.path.parent}; "
                "stop it first (`lightbox call system.shutdown`) or use another --data-dir"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            try:
                os.ftruncate(self._fd, 0)
            finally:
                os.close(self._fd)  # closing drops the flock
                self._fd = None
