"""``settings.*``: the runtime settings stored in the catalog, changed live, audited.

The schema of every setting is ``lightbox.common.settings``; ``settings.schema`` hands it to
clients. Errors are machine-readable: ``invalid params`` with ``data.reason`` =
``invalid_settings`` and ``data.fields`` = ``[{key, reason, message}]`` (every bad key of the
patch, reasons ``unknown_key``, ``read_only``, ``unknown_object``, ``type``, ``null``,
``range``, ``choice``, ``pattern``, ``length``, ``text``, ``path``, ``invalid``); ``conflict``
with ``data.reason`` = ``stale_revision`` when ``if_revision`` is not the current revision.
"""

from lightbox.common.api.schema import EventSpec, MethodSpec, Param, Permission

IF_REVISION = Param("if_revision", "integer",
                    "apply only if the settings are still at this revision (else `conflict`, "
                    "`data.reason`: `stale_revision`, `data.revision`: the current one)",
                    minimum=0)
KEY = Param("key", "string", "a setting's key, e.g. `library.debounce` or `roots.3.watch`",
            max_length=200)

CHANGE_RESULT = ("{revision, changed[key], applied[key]: in effect now, workers[key]: for "
                 "workers started from now on, restart[key]: stored, in effect after a daemon "
                 "restart, notes{key: what the change means}, unchanged[key], previous}")

METHODS = (
    MethodSpec(
        "settings.get",
        Permission.READ,
        "Values in effect with their origin (`default`, the bootstrap file, `environment "
        "LIGHTBOX_…`, `command line`, `database`). A secret is never returned: its value is "
        "`{secret: true, set, fingerprint}` (a short hash that tells two values apart). A "
        "read-only TCP client gets no paths and no database URL (value null).",
        params=(Param("keys", "array", "only these keys (default: every setting, with the "
                      "per-root ones of every root)", items="string", max_length=1000),),
        result="{revision, settings{key: {value, origin, default, applies, scope, secret, "
        "pending_restart}}}",
    ),
    MethodSpec(
        "settings.set",
        Permission.ADMIN,
        "Change settings. The whole patch is validated first: on any error nothing changes "
        "and every bad key is named with its reason (`invalid params`, `data.fields`). The "
        "change is stored in one transaction with a new revision and an audit entry, then "
        "applied; `null` for a key resets it. Keys read before the database opens "
        "(`database.url`, `control.*`, `log.format`, `daemon.stop_timeout`) are refused "
        "(reason `read_only`).",
        params=(Param("patch", "object", "key -> new value (typed as in settings.schema)",
                      required=True),
                IF_REVISION),
        result=CHANGE_RESULT,
        examples=('lightbox settings set library.debounce=0.5 jobs.concurrency=4',),
    ),
    MethodSpec(
        "settings.reset",
        Permission.ADMIN,
        "Back to the value without the database (default, file or environment): the rows "
        "are deleted, audited and applied like a set.",
        params=(Param("keys", "array", "keys to reset", items="string", required=True,
                      max_length=1000),
                IF_REVISION),
        result=CHANGE_RESULT,
    ),
    MethodSpec(
        "settings.schema",
        Permission.READ,
        "Every setting with its type, default, limits, description, unit, whether it is "
        "secret and when a change takes effect, in sections; and the per-object templates "
        "(`roots.<id>.<field>`); and the collections kept as rows of their own (backup "
        "targets), with their fields and the methods that list, add, update and remove "
        "them. Everything a client needs to build a form.",
        result="{sections[{name, title, fields[{key, label, type, description, default, "
        "nullable, enum, minimum, maximum, items, max_length, pattern, pattern_hint, "
        "secret, applies, scope, unit, note, env}]}], objects[{prefix, title, fields}], "
        "collections[{name, title, key, list, add, update, remove, preview, fields, "
        "s3_fields}]}",
    ),
    MethodSpec(
        "settings.audit",
        Permission.CONTROL,
        "Who changed what, newest first: settings changes, root additions and removals, and "
        "backup targets added, edited (one change per key: `backup_targets.NAME.KEY`) and "
        "removed. "
        "`actor` holds the Unix user of an ipc client (from SO_PEERCRED), the key and its "
        "name over TCP, and the client kind the client declared in `hello` "
        "(`client_declared`: true — a client can claim any name). Secrets appear as "
        "fingerprints only.",
        params=(Param("limit", "integer", "entries per page", default=50, minimum=1,
                      maximum=500),
                Param("cursor", "integer", "`next_cursor` of the previous page",
                      nullable=True, minimum=0),
                KEY),
        result="{entries[{id, revision, at, action, actor, by, changes[{key, old, new}], "
        "result, detail}], next_cursor}",
        paginated=True,
    ),
    MethodSpec(
        "settings.revert",
        Permission.ADMIN,
        "Apply the inverse of the change that made `revision` (its keys go back to their "
        "values before it), as a new audited change. Refused for a change of a secret "
        "(`conflict`, `data.reason`: `secret_not_revertible`): the audit log keeps none.",
        params=(Param("revision", "integer", "the revision of the change to undo",
                      required=True, minimum=1),
                IF_REVISION),
        result=CHANGE_RESULT,
    ),
)

EVENTS = (
    EventSpec("settings", "changed", "Settings changed, here or in another daemon sharing "
              "the catalog (`source`: `catalog`). Secrets as `{secret, set, fingerprint}`.",
              {"revision": "", "source": "set, reset, revert or catalog", "keys": "",
               "values": "key -> new value", "applied": "keys in effect now",
               "workers": "keys for new workers", "restart": "keys waiting for a restart",
               "by": "who (when known)"}),
    EventSpec("settings", "applied", "A component took new values (after `changed`).",
              {"revision": "", "component": "e.g. workers, watcher, indexer", "keys": ""}),
)
