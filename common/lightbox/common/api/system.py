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
        "component states; `indexing` says whether indexing is paused and why, and how many "
        "photos wait for a retry, by reason. `database.warnings` lists the catalog's "
        "problems as `{reason, message}` (`buffer_pool_small`: on MariaDB/MySQL the "
        "server's InnoDB buffer pool holds less than a quarter of the catalog's data and "
        "indexes, `database.buffer_pool{bytes, catalog_bytes, small}`; null on other engines).",
        result="{version, pid, started, uptime, database{engine, revision, statistics, "
        "buffer_pool, warnings[]}, "
        "counts{}, jobs{}, indexing{paused, retrying{}}, components{}, clients}",
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
    EventSpec("system", "indexing_paused", "Indexing stopped for a cause no photo is to blame "
              "for (a full or read-only thumbnail disk, a full catalog disk); published once. "
              "The photos stay pending and indexing resumes by itself when the cause is gone.",
              {"reason": "disk_full | cache_unwritable | catalog_unavailable",
               "scope": "what is unusable: thumbnail disk, thumbnail cache, catalog disk, "
               "catalog", "message": "for people: 'thumbnail disk full: 2,837 photos waiting'",
               "detail": "the error seen", "waiting": "pending photos",
               "since": "when it began (Unix time)"}),
    EventSpec("system", "indexing_resumed", "The cause of a pause is gone; indexing goes on.",
              {"reason": "the pause's reason", "waited": "seconds paused",
               "waiting": "pending photos when it resumed"}),
)
