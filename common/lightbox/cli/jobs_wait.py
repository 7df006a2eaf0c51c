"""``--wait``: block until a job ends, the way scripts want it (mpc's ``--wait`` shape).

Methods that start work return ``{"job": ID, ...}`` at once. Waiting uses ``jobs.wait`` in
slices well under the reply timeout, so a long job never looks like a dead daemon, and shows
progress on stderr when stderr is a terminal. The exit code says how the job ended.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

from lightbox.cli import exits
from lightbox.cli.context import CliError, Context

TERMINAL = ("succeeded", "failed", "cancelled")
SLICE = 5.0
TTY_SLICE = 1.0


def progress_line(job: dict[str, Any]) -> str:
    """``job 7 scan: indexing 120/300 (40%)``: what a person watching a terminal wants."""
    total = job.get("total")
    done = job.get("processed") or 0
    what = job.get("phase") if job["state"] == "running" and job.get("phase") else job["state"]
    count = f"{done}/{total} ({100 * done / max(total, 1):.0f}%)" if total else f"{done}"
    return f"job {job['id']} {job['kind']}: {what} {count}"


# What a finished job's result says beyond its state: lines for a person, and whether some
# of the work was not done (a backup that could not copy a file "succeeded" as a run, but a
# script asking ``--wait`` must hear that not everything is safe: exit 1, as rsync's 23).
Report = Callable[[dict[str, Any]], tuple[list[str], bool]]


def wait_for_job(ctx: Context, started: Any, timeout: float | None = None,
                 report: Report | None = None) -> int:
    if not isinstance(started, dict) or "job" not in started:
        raise CliError(f"expected a job id in the reply, got {started!r}", exits.ERROR)
    job_id = started["job"]
    show = sys.stderr.isatty() and not ctx.json
    # On a terminal ask every second, so the count moves; a script needs no more than the end.
    piece = TTY_SLICE if show else SLICE
    waited = 0.0
    width = 0
    try:
        while True:
            job = ctx.call("jobs.wait", {"id": job_id, "timeout": piece},
                           timeout=piece + ctx.timeout)
            if show:
                text = progress_line(job)
                sys.stderr.write("\r" + text.ljust(width))
                sys.stderr.flush()
                width = len(text)
            if job["state"] in TERMINAL:
                break
            waited += piece
            if timeout is not None and waited >= timeout:
                raise CliError(f"job {job_id} still {job['state']} after {timeout:g} s",
                               exits.TIMEOUT)
    except KeyboardInterrupt:
        # Only the waiting stops: say so, and how to pick it up again.
        sys.stderr.write(("\n" if show else "") + f"lightbox: stopped waiting; job {job_id} "
                         f"goes on in the daemon ({ctx.command('jobs', 'wait', str(job_id))}"
                         f" to wait again, {ctx.command('jobs', 'cancel', str(job_id))} to "
                         "stop it)\n")
        return exits.INTERRUPTED
    if show:
        sys.stderr.write("\n")
    lines, incomplete = report(job) if report is not None else ([], False)
    if ctx.json:
        ctx.emit_json(job)
    else:
        line = f"job {job_id} {job['kind']} {job['state']}"
        if job.get("error"):
            line += f": {job['error']}"
        ctx.print(line)
        for text in lines:
            ctx.print(text)
    return exits.OK if job["state"] == "succeeded" and not incomplete else exits.ERROR
