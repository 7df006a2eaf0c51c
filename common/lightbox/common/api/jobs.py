"""``jobs.*``: the persisted queue of long-running work."""

from lightbox.common.api.schema import EventSpec, MethodSpec, Param, Permission

JOB_STATES = ("queued", "running", "succeeded", "failed", "cancelled")
JOB_FIELDS = ("{id, kind, state, phase, params, processed, total, bytes, errors, rate, eta, "
              "attempts, max_attempts, error, result, owner, created_at, started_at, "
              "finished_at, not_before}")
JOB_ID = Param("id", "integer", "job id", required=True, minimum=1)

METHODS = (
    MethodSpec(
        "jobs.list",
        Permission.READ,
        "Jobs, newest first.",
        params=(
            Param("state", "string", "only jobs in this state", enum=JOB_STATES),
            Param("kind", "string", "only jobs of this kind (scan, cleanup, ...)",
                  max_length=40),
            Param("limit", "integer", "jobs per page", default=50, minimum=1, maximum=1000),
            Param("cursor", "string", "from the previous page's next_cursor", max_length=64),
        ),
        result=f"{{jobs[{JOB_FIELDS}], next_cursor}}",
        paginated=True,
    ),
    MethodSpec("jobs.get", Permission.READ, "One job.", params=(JOB_ID,), result=JOB_FIELDS),
    MethodSpec(
        "jobs.cancel",
        Permission.CONTROL,
        "Cancel a queued or running job. A running job stops at its next checkpoint; what it "
        "already did stays done. The reply comes within about 4 s: a job still winding down "
        "then is returned `running`, and its `job.finished` event (state `cancelled`) follows.",
        params=(JOB_ID,),
        result=JOB_FIELDS,
    ),
    MethodSpec(
        "jobs.wait",
        Permission.READ,
        "Block until the job ends or `timeout` seconds pass; returns the job either way "
        "(look at `state`).",
        params=(JOB_ID, Param("timeout", "number", "seconds to wait at most", default=30,
                              minimum=0, maximum=300)),
        result=JOB_FIELDS,
    ),
)

EVENTS = (
    EventSpec("job", "queued", "A job was created.", {"id": "", "kind": ""}),
    EventSpec("job", "started", "A job began (or resumed after a restart).",
              {"id": "", "kind": "", "attempt": ""}),
    EventSpec("job", "progress", "Progress, at most twice a second per job.",
              {"id": "", "kind": "", "processed": "", "total": "", "bytes": "", "errors": "",
               "rate": "items per second", "eta": "seconds left, when known"}),
    EventSpec("job", "finished", "A job ended.",
              {"id": "", "kind": "", "state": "succeeded, failed or cancelled", "error": "",
               "result": ""}),
    EventSpec("job", "retrying", "A job failed and will run again after a delay.",
              {"id": "", "kind": "", "attempt": "", "delay": "seconds", "error": ""}),
)
