"""Whether a process still runs: how leftovers (temp files, job rows) named for their owner's
pid are judged. One function for every such place, so each treats the odd cases alike: a pid
too large for the kernel (a hand-made or damaged name) is no process; a process that is not
ours to signal is alive."""

from __future__ import annotations

import os


def pid_alive(pid: int) -> bool:
    """True while process ``pid`` exists on this machine (``kill(pid, 0)``)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError, ValueError):
        return False
    except PermissionError:
        return True
    return True
