"""The ``hello`` handshake and the ``system.*`` methods: who is there, how it is doing."""

from lightbox.common.api.schema import EventSpec, MethodSpec, Param, Permission

METHODS = (
    MethodSpec(
        "hello",
        Permission.READ,
        "Handshake: protocol and daemon versions, features, the event endpoint to subscribe "
        "to, the boot id and the current event seq.",
        params=(
            Param("client", "string", "name and version of the client, for the logs",
                  max_length=200),
            Param("protocol", "integer", "the newest protocol version the client speaks",
                  minimum=1),
        ),
        result="{protocol, daemon, version, features[], boot, seq, events, permission, "
        "max_message_bytes}",
    ),
    MethodSpec(
        "system.status",
        Permission.READ,
        "Health of the daemon: uptime, version, database engine, catalog counts, job summary, "
        "component states.",
        result="{version, pid, started, uptime, database{engine, revision}, counts{}, jobs{}, "
        "components{}, clients}",
    ),
    MethodSpec(
        "system.methods",
        Permission.READ,
        "Every control method with its permission class and a JSON Schema of its parameters, "
        "from the daemon's own registry.",
        result="{methods[{name, permission, allowed, summary, params, result, frames, "
        "starts_job, paginated}], events[{topic, type, summary, data}]}",
    ),
    MethodSpec(
        "system.shutdown",
        Permission.ADMIN,
        "Stop the daemon gracefully, as SIGTERM does: in-flight requests are answered, jobs "
        "checkpointed, sockets closed.",
        result="{stopping: true}",
    ),
)

EVENTS = (
    EventSpec("system", "started", "The daemon finished starting.",
              {"version": "daemon version", "pid": "process id"}),
    EventSpec("system", "stopping", "The daemon is shutting down; reconnect later.",
              {"reason": "signal name or 'request'"}),
)
