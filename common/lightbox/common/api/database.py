"""``database.*``: where the catalog lives, testing another database, moving it there live.

URLs are secrets: they are only ever sent to the daemon (admin class) and come back masked
(``user:***@host``). The password is never stored in the catalog, a job or an event.
"""

from lightbox.common.api.schema import EventSpec, MethodSpec, Param, Permission

URL = Param("url", "string", "SQLAlchemy URL: sqlite+aiosqlite:///PATH, "
            "postgresql+asyncpg://USER:PASSWORD@HOST/DB or mysql+aiomysql://USER:PASSWORD@HOST/DB",
            required=True, max_length=2000)
TEST_RESULT = ("{ok, reason, url, engine, driver, server_version, user, collation, "
               "catalog{state: empty|catalog|incomplete|foreign, revision, head, rows{}, "
               "other_tables, switch}, checks[{name, ok, detail, reason}]}")

METHODS = (
    MethodSpec(
        "database.test",
        Permission.ADMIN,
        "Connect to a database and report whether it can hold the catalog, changing nothing: "
        "server version, privileges for migrations, charset and collation, and a round trip "
        "of a microsecond timestamp, 64-bit integers, NULL beside 0 and names differing only "
        "in case. `ok` is false with a `reason` (unreachable, auth_failed, no_database, "
        "read_only, privileges, charset, case_insensitive_names, timestamp_precision, bigint, "
        "unsupported...) when it cannot.",
        params=(URL, Param("timeout", "number", "seconds to wait for the connection",
                           default=10, minimum=0.5, maximum=120)),
        result=TEST_RESULT,
    ),
    MethodSpec(
        "database.switch",
        Permission.ADMIN,
        "Move the catalog to another database while the daemon runs: a job in phases (test, "
        "migrate, copy, verify, sync, freeze, switch) that never writes to the current "
        "database, verifies every table, and keeps the current database on any failure. The "
        "target must be empty (or an incomplete copy left by an earlier switch). Refused "
        "while another switch runs, and while other daemons share the catalog "
        "(`reason: shared_catalog`).",
        params=(URL,),
        result="{job}",
        starts_job=True,
    ),
    MethodSpec(
        "database.status",
        Permission.READ,
        "Where the catalog is: engine, masked URL, schema revision, where the URL comes from "
        "(bootstrap config or the state file a switch wrote), the switch in progress and the "
        "last one.",
        result="{engine, url, revision, head, origin: config|switched, switched{url, switch, "
        "switched_at, previous}, state_file, switch{active{job, phase, to, started}, "
        "last{job, ok, phase, reason, error, from, to, engine, freeze_seconds, rows}}}",
    ),
)

EVENTS = (
    EventSpec("database", "phase", "A catalog switch entered a phase.",
              {"job": "", "phase": "test, migrate, copy, verify, sync, freeze, switch, done",
               "to": "masked target URL"}),
    EventSpec("database", "switched", "The catalog now lives in another database.",
              {"job": "", "engine": "", "url": "masked", "from": "masked",
               "freeze_seconds": "how long writes waited"}),
    EventSpec("database", "failed", "A catalog switch failed; the catalog stayed where it was.",
              {"job": "", "phase": "", "reason": "", "error": "", "to": "masked"}),
    EventSpec("database", "held", "A switch stopped at a fault-injection point "
              "(LIGHTBOX_SWITCH_HOLD, for tests).", {"job": "", "point": ""}),
)
