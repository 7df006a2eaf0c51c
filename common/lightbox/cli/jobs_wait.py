"""``--wait``: block until a job ends, the way scripts want it (mpc's ``--wait`` shape).

Methods that start work return ``{"job": ID, ...}`` at once. Waiting uses ``jobs.wait`` in
slices well under the reply timeout, so a long job never looks like a dead daemon, and shows
progress on stderr when stderr is a terminal. The exit code says how the job ended.
"""

from __future__ import annotations

import sys
from typing import Any

from lightbox.cli import exits
from lightbox.cli.context import CliError, Context

TERMINAL = ("succeeded", "failed", "cancelled")
SLICE = 5.0


def wait_for_job(ctx: Context, started: Any, timeout: float | None = None) -> int:
    if not isinstance(started, dict) or "job" not in started:
        raise CliError(f"expected a job id in the reply, got {started!r}", exits.ERROR)
    job_id = started["job"]
    show = sys.stderr.isatty() and not ctx.json
    waited = 0.0
    while True:
        job = ctx.call("jobs.wait", {"id": job_id, "timeout": SLICE}, timeout=SLICE + ctx.timeout)
        if show:
            total = job.get("total")
            done = job.get("processed", 0)
            frac = f"{done}/{total}" if total else f"{done}"
            phase = f" {job['phase']}" if job.get("phase") else ""
            sys.stderr.write(f"\rjob {job_id} {job['kind']}: {job['state']}{phase} {frac}   ")
            sys.stderr.flush()
        if job["state"] in TERMINAL:
            break
        waited += SLICE
        if timeout is not None and waited >= timeout:
            raise CliError(f"job {job_id} still {job['state']} after {timeout:g} s",
                           exits.TIMEOUT)
    if show:
        sys.stderr.write("\n")
    if ctx.json:
        ctx.emit_json(job)
    else:
        line = f"job {job_id} {job['kind']} {job['state']}"
        if job.get("error"):
            line += f": {job['error']}"
        ctx.print(line)
    return exits.OK if job["state"] == "succeeded" else exits.ERROR
