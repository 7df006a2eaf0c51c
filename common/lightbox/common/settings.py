"""The one schema of every setting: bootstrap keys and runtime settings, as ``Field``s.

A setting is declared here once, with its type, default, limits, description, whether it is
secret and when a change takes effect (``applies``: live, when workers restart, when the
daemon restarts). From these declarations:

- ``lightbox.common.config`` reads the bootstrap TOML file and ``LIGHTBOX_*`` environment;
- the daemon stores the runtime settings in the catalog, validates ``settings.set`` patches
  and tells components what changed (``lightbox.daemon.settings``);
- ``settings.schema`` hands clients what they need to build a form (the TUI's screen);
- ``docs`` and the README's configuration table are generated.

Precedence, lowest first: built-in default < bootstrap TOML < ``LIGHTBOX_*`` environment
(< command-line flag) < value stored in the database. ``scope="bootstrap"`` keys are needed
before the database opens (where it is, the sockets, the log format), so they are never
stored in it and ``settings.set`` refuses them (reason ``read_only``).

Per-object sections (``roots.<id>.watch`` …) are declared as templates in ``OBJECTS``; a
later issue adds buckets and backup targets the same way (one more ``ObjectSection``).
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from lightbox.common.fields import Field, FieldError, reason_of

LOG_LEVELS = ("debug", "info", "warning", "error")
GRID_SIZES = ("small", "medium", "large")


def _check_hostport(value: str) -> str | None:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        return f"expected HOST:PORT (for example 0.0.0.0:7480), got {value!r}"
    return None


def _check_db_url(value: str) -> str | None:
    allowed = ("sqlite+aiosqlite://", "postgresql+asyncpg://", "mysql+aiomysql://",
               "mariadb+aiomysql://")
    if not value.startswith(allowed):
        return (
            f"unsupported database URL {value.split('://', maxsplit=1)[0]!r}; use one of "
            + ", ".join(a.rstrip(":/") for a in allowed)
        )
    return None


def _check_globs(value: list[str]) -> str | None:
    for i, pattern in enumerate(value):
        if not pattern.strip():
            return f"item {i}: an ignore pattern must not be empty"
        try:
            re.compile(fnmatch.translate(pattern))
        except re.error as exc:  # pragma: no cover - fnmatch escapes almost everything
            return f"item {i}: not a valid pattern: {exc}"
    return None


def _boot(name: str, type_: str, default: Any, description: str, **kw: Any) -> Field:
    return Field(name, type_, description, default=default, nullable=default is None,
                 scope="bootstrap", applies="restart", **kw)


def _live(name: str, type_: str, default: Any, description: str, **kw: Any) -> Field:
    return Field(name, type_, description, default=default, **kw)


FIELDS: tuple[Field, ...] = (
    # -- bootstrap: needed before the database opens -------------------------------------
    _boot("database.url", "string", None,
          "SQLAlchemy URL of the catalog; default: SQLite file catalog.db in the data dir",
          check_fn=_check_db_url, max_length=4096),
    _boot("database.lease_ttl", "number", 15.0,
          "seconds a daemon sharing a PostgreSQL or MySQL catalog may miss heart-beats before "
          "others take its sources and indexing work over", minimum=1.0, maximum=3600.0,
          unit="s"),
    _boot("control.socket_dir", "path", None,
          "directory for control.sock and events.sock; default: the runtime dir"),
    _boot("control.tcp", "string", None,
          "HOST:PORT to also serve requests over TCP (CURVE encryption required)",
          check_fn=_check_hostport),
    _boot("control.tcp_events", "string", None,
          "HOST:PORT for the TCP event socket; default: the control port + 1",
          check_fn=_check_hostport),
    _boot("control.server_key", "path", None,
          "CURVE secret key file of the daemon (from `lightbox keys generate`); needed with "
          "tcp"),
    _boot("control.authorized_keys", "path", None,
          "file of 'CLASS PUBLIC-KEY [comment]' lines (CLASS: read, control or admin); "
          "needed with tcp"),
    _boot("control.max_message_bytes", "integer", 1 << 20,
          "largest request accepted, in bytes", minimum=1024, maximum=64 << 20, unit="bytes"),
    _boot("control.reply_budget", "integer", 32,
          "MiB of replies in flight to one connection (file chunks, thumbnails, large pages) "
          "before its requests are answered busy", minimum=16, maximum=4096, unit="MiB"),
    _boot("control.reply_budget_total", "integer", 128,
          "MiB of replies in flight to all connections together", minimum=16,
          maximum=65536, unit="MiB"),
    _boot("log.format", "string", "text", "text (key=value) or json, one record a line",
          enum=("text", "json")),
    _boot("daemon.stop_timeout", "number", 3.0,
          "seconds that in-flight work gets to finish after SIGTERM", minimum=0.1,
          maximum=600, unit="s"),
    # -- runtime: stored in the catalog, changed live --------------------------------------
    _live("log.level", "string", "info", "least severe level logged", enum=LOG_LEVELS),
    _live("events.buffer", "integer", 10_000,
          "how many past events events.since can replay", minimum=100, maximum=1_000_000,
          note="a smaller buffer drops the oldest events at once"),
    _live("workers.processes", "integer", 0,
          "worker processes for hashing, metadata and thumbnails; 0: one per CPU",
          minimum=0, maximum=256),
    _live("workers.task_timeout", "number", 120.0,
          "seconds one file may take before its worker is killed and the file marked error",
          minimum=1, maximum=3600, unit="s"),
    _live("workers.memory_mb", "integer", 2048,
          "address-space limit of each worker process in MiB (0: none)", minimum=0,
          maximum=1 << 20, unit="MiB", applies="workers",
          note="running workers keep their limit; new ones (recycled, replaced) get it"),
    _live("library.watch", "boolean", True,
          "watch roots for changes (inotify) as they happen",
          note="turned on again, every root gets a pass for what changed meanwhile"),
    _live("library.reconcile_interval", "number", 3600.0,
          "seconds between full rescans that catch what watching missed (0: never)",
          minimum=0, maximum=7 * 86400, unit="s"),
    _live("library.max_watches", "integer", 0,
          "most folders one root may watch with inotify; a larger root is rescanned every "
          "library.poll_interval instead (0: half the kernel's per-user limit)",
          minimum=0, maximum=1 << 24, applies="restart"),
    _live("library.poll_interval", "number", 300.0,
          "seconds between rescans of a root that cannot be watched", minimum=0.1,
          maximum=86400, unit="s"),
    _live("library.vanish_delay", "number", 600.0,
          "seconds photos a pass found gone en masse (more than max(50, 10 %) of a root) are "
          "held as suspect before a later pass may mark them missing", minimum=0,
          maximum=30 * 86400, unit="s"),
    _live("library.debounce", "number", 1.0,
          "seconds a changed file must stay unchanged before it is indexed", minimum=0.05,
          maximum=60, unit="s"),
    _live("thumbnails.grid", "integer", 256, "long edge of grid thumbnails, px", minimum=64,
          maximum=1024, unit="px",
          note="thumbnails made from now on get the new size; existing ones stay until "
          "rebuilt (`lightbox scan --full`)"),
    _live("thumbnails.preview", "integer", 1280, "long edge of preview images, px",
          minimum=256, maximum=4096, unit="px",
          note="previews made from now on get the new size; existing ones stay until "
          "rebuilt"),
    _live("thumbnails.preview_min", "integer", 960,
          "smallest acceptable preview long edge: when the JPEG decoder's own 1/2, 1/4, 1/8 "
          "scaling lands between this and thumbnails.preview, its output is used as is, "
          "saving a resize (a 12 MP photo then gets a 1000 px preview); 0: always exactly "
          "thumbnails.preview", minimum=0, maximum=4096, unit="px"),
    _live("thumbnails.quality", "integer", 82, "JPEG quality of thumbnails", minimum=30,
          maximum=100, note="applies to thumbnails made from now on"),
    _live("thumbnails.cleanup_days", "integer", 30,
          "thumbnails of photos missing this long are removed by the daily cleanup",
          minimum=0, maximum=3650, unit="days"),
    _live("jobs.concurrency", "integer", 2, "jobs that run at the same time", minimum=1,
          maximum=16),
    _live("jobs.max_attempts", "integer", 3, "attempts before a failing job is given up",
          minimum=1, maximum=20, note="jobs submitted from now on"),
    _live("tui.grid_size", "string", "medium",
          "thumbnail size of the TUI's grid for every client of this library, unless a "
          "client's own file chooses another", enum=GRID_SIZES),
    _live("s3.access_key_id", "string", "",
          "default access key id for S3 sources that name no credentials of their own",
          max_length=256),
    _live("s3.secret_access_key", "string", "",
          "the secret of s3.access_key_id", max_length=256, secret=True),
)
BY_KEY: dict[str, Field] = {f.name: f for f in FIELDS}
BOOTSTRAP: tuple[Field, ...] = tuple(f for f in FIELDS if f.scope == "bootstrap")
RUNTIME: tuple[Field, ...] = tuple(f for f in FIELDS if f.scope == "runtime")

SECTION_TITLES = {
    "log": "Logging", "events": "Events", "workers": "Worker processes",
    "library": "Library", "thumbnails": "Thumbnails", "jobs": "Jobs",
    "tui": "Terminal UI (library defaults)", "s3": "S3 credentials", "roots": "Roots",
    "database": "Database", "control": "Control socket", "daemon": "Daemon",
}


@dataclass(frozen=True)
class ObjectSection:
    """Settings that exist once per object (a root; later a bucket, a backup target).

    A key is ``<prefix>.<id>.<field>``; the daemon knows which ids exist.
    """

    prefix: str
    title: str
    fields: tuple[Field, ...]

    def field(self, name: str) -> Field | None:
        return next((f for f in self.fields if f.name == name), None)


OBJECTS: tuple[ObjectSection, ...] = (
    ObjectSection("roots", "Per root", (
        Field("watch", "boolean", "watch this root for changes (with library.watch on)",
              default=True),
        Field("ignore", "array", "glob patterns of file and folder names this root skips "
              "(for example *.tmp, @eaDir)", items="string", default=[], max_length=100,
              check_fn=_check_globs,
              note="the next scan of the root skips them; photos already in the catalog "
              "that match leave it as gone"),
        Field("reconcile_interval", "number", "seconds between full rescans of this root; "
              "empty: library.reconcile_interval", nullable=True, minimum=0,
              maximum=7 * 86400, unit="s"),
    )),
)
OBJECT_BY_PREFIX = {o.prefix: o for o in OBJECTS}
KEY_MAX = 200


def field_for(key: str) -> tuple[Field, str | None] | None:
    """The field that declares ``key`` and, for a per-object key, its object id."""
    fixed = BY_KEY.get(key)
    if fixed is not None:
        return fixed, None
    prefix, _, rest = key.partition(".")
    section = OBJECT_BY_PREFIX.get(prefix)
    if section is None:
        return None
    oid, _, name = rest.partition(".")
    found = section.field(name)
    if not oid or found is None:
        return None
    return replace(found, name=key), oid


def object_keys(prefix: str, oid: str | int) -> list[str]:
    return [f"{prefix}.{oid}.{f.name}" for f in OBJECT_BY_PREFIX[prefix].fields]


def fingerprint(key: str, value: Any) -> str:
    """A short, stable tag of a secret's value: tells two values apart, reveals neither."""
    blob = json.dumps([key, value], ensure_ascii=False).encode("utf-8", "surrogatepass")
    return "sha256:" + hashlib.sha256(b"lightbox-setting\0" + blob).hexdigest()[:10]


def redact(key: str, value: Any) -> Any:
    """What may be shown of ``value``: the value itself, or for a secret set/unset and its
    fingerprint."""
    found = field_for(key)
    if found is None or not found[0].secret:
        return value
    if value in (None, ""):
        return {"secret": True, "set": False}
    return {"secret": True, "set": True, "fingerprint": fingerprint(key, value)}


@dataclass(frozen=True)
class Problem:
    key: str
    reason: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"key": self.key, "reason": self.reason, "message": self.message}


def validate(patch: Mapping[str, Any], objects: Mapping[str, Iterable[str]] | None = None,
             *, text: bool = False) -> tuple[dict[str, Any], list[Problem]]:
    """Check every entry of ``patch`` (key -> value) and return (checked values, problems).

    All entries are checked, so one answer names every bad field. ``objects`` maps a
    per-object prefix to the ids that exist (None: do not check ids). ``text``: values are
    what a person typed (``Field.parse``), else decoded JSON (``Field.check``). A secret's
    value never appears in a message.
    """
    good: dict[str, Any] = {}
    problems: list[Problem] = []
    for key, raw in patch.items():
        if not isinstance(key, str) or len(key) > KEY_MAX:
            problems.append(Problem(str(key)[:KEY_MAX], "unknown_key", "no such setting"))
            continue
        found = field_for(key)
        if found is None:
            import difflib

            close = difflib.get_close_matches(key, BY_KEY, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            problems.append(Problem(key, "unknown_key", f"no such setting{hint}"))
            continue
        fld, oid = found
        if fld.scope == "bootstrap":
            problems.append(Problem(key, "read_only",
                                    "read before the database opens: set it in the bootstrap "
                                    f"file or {env_name(key)}, then restart the daemon"))
            continue
        if oid is not None and objects is not None:
            prefix = key.split(".", 1)[0]
            if oid not in set(objects.get(prefix, ())):
                problems.append(Problem(key, "unknown_object", f"no {prefix[:-1]} {oid}"))
                continue
        try:
            good[key] = fld.parse(raw) if text and isinstance(raw, str) else fld.check(raw)
        except ValueError as exc:
            message = str(exc)
            if fld.secret and isinstance(raw, str) and raw and raw in message:
                message = message.replace(raw, "…")
            problems.append(Problem(key, reason_of(exc), message))
    return good, problems


def env_name(key: str) -> str:
    return "LIGHTBOX_" + key.replace(".", "_").upper()


def schema() -> dict[str, Any]:
    """Everything a client needs to build a settings form (``settings.schema``)."""
    sections: dict[str, list[dict[str, Any]]] = {}
    for f in FIELDS:
        sections.setdefault(f.name.split(".", 1)[0], []).append(
            {**f.describe(), "env": env_name(f.name)})
    return {
        "sections": [{"name": name, "title": SECTION_TITLES.get(name, name),
                      "fields": fields} for name, fields in sections.items()],
        "objects": [{"prefix": o.prefix, "title": o.title,
                     "fields": [f.describe() for f in o.fields]} for o in OBJECTS],
        "collections": collections(),
    }


def collections() -> list[dict[str, Any]]:
    """Settings kept as rows of their own, each edited through its methods (not
    ``settings.set``): backup targets, validated by the same ``Field``s."""
    from lightbox.common.api.backups import S3_FIELDS, TARGET_FIELDS

    return [{"name": "backup_targets", "title": "Backup targets", "key": "name",
             "list": "backups.list", "add": "backups.add", "update": "backups.update",
             "remove": "backups.remove", "preview": "backups.schedule",
             "fields": [f.describe() for f in TARGET_FIELDS],
             "s3_fields": [f.describe() for f in S3_FIELDS]}]


__all__ = ["BY_KEY", "FIELDS", "OBJECTS", "Field", "FieldError", "Problem", "field_for",
           "fingerprint", "redact", "schema", "validate"]
