"""``events.*``: catching up on what a client missed while it was not subscribed."""

from lightbox.common.api.schema import MethodSpec, Param, Permission

METHODS = (
    MethodSpec(
        "events.since",
        Permission.READ,
        "Replay events with a seq greater than `seq` from the daemon's ring buffer. "
        "`complete` is false when the buffer no longer holds all of them (the client fell too "
        "far behind and should reload); `reset` is true when `boot` names an earlier run of "
        "the daemon (seq restarted).",
        params=(
            Param("seq", "integer", "the last seq the client has seen (0: from the start)",
                  required=True, minimum=0),
            Param("boot", "string", "boot id from hello; a different one means the daemon "
                  "restarted", max_length=64),
            Param("topics", "array", "only these topics", items="string", max_length=32),
            Param("limit", "integer", "most events in one reply", default=1000, minimum=1,
                  maximum=10000),
        ),
        result="{events[], seq, boot, complete, reset, more}",
    ),
)
