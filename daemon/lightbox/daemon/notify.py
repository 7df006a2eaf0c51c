"""sd_notify(3) in a few lines of stdlib: READY=1, STATUS=, STOPPING=1 and the watchdog.

systemd passes ``NOTIFY_SOCKET`` (a datagram socket path, ``@`` for the abstract namespace)
to ``Type=notify`` services and ``WATCHDOG_USEC`` when ``WatchdogSec=`` is set. Without them
every call is a no-op, so the daemon behaves the same in a terminal. The watchdog is pinged
from the event loop itself: if the loop stalls, the pings stop and systemd restarts us, which
is the point.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket

from lightbox.common import logs

log = logs.get("notify")


class Notifier:
    def __init__(self, env: dict[str, str] | None = None) -> None:
        env = dict(os.environ) if env is None else env
        address = env.get("NOTIFY_SOCKET", "")
        self._address: str | bytes | None = None
        if address.startswith("@"):
            self._address = "\0" + address[1:]
        elif address.startswith("/"):
            self._address = address
        self._sock: socket.socket | None = None
        self.watchdog_interval: float | None = None
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        if usec.isdigit() and int(usec) > 0 and (not pid or pid == str(os.getpid())):
            self.watchdog_interval = int(usec) / 1_000_000 / 2
        self._task: asyncio.Task[None] | None = None

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def send(self, *fields: str) -> None:
        if self._address is None:
            return
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            # MSG_DONTWAIT: a receiver that stops reading (its queue holds ten datagrams)
            # must cost a warning, never a blocked event loop.
            self._sock.sendto("\n".join(fields).encode(), socket.MSG_DONTWAIT, self._address)
        except OSError as exc:
            # systemd going away must not take the daemon with it.
            log.warning("sd_notify failed", error=str(exc))

    def ready(self, status: str) -> None:
        self.send("READY=1", f"STATUS={status}", f"MAINPID={os.getpid()}")

    def status(self, text: str) -> None:
        self.send(f"STATUS={text}")

    def stopping(self, status: str = "stopping") -> None:
        self.send("STOPPING=1", f"STATUS={status}")

    def start_watchdog(self) -> None:
        if self.watchdog_interval and self._address is not None and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._ping(), name="watchdog")

    async def _ping(self) -> None:
        assert self.watchdog_interval is not None
        while True:
            self.send("WATCHDOG=1")
            await asyncio.sleep(self.watchdog_interval)

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._sock is not None:
            self._sock.close()
            self._sock = None
