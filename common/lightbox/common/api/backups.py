"""``backups.*`` and ``library.import``: copies of the library that can be trusted, and
bringing photos in from a card.

A target's settings are ``TARGET_FIELDS``: the same ``Field``s validate ``backups.add``,
``backups.update``, the CLI and the TUI's forms. Schedules are cron expressions
(``lightbox.common.schedule``), evaluated in the target's time zone.
"""

from __future__ import annotations

import re

from lightbox.common import schedule
from lightbox.common.api.schema import EventSpec, MethodSpec, Param, Permission
from lightbox.common.fields import Field

NAME_PATTERN = r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}"
_BUDGET = re.compile(r"(\d+)\s*([smhd]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def budget_seconds(text: str) -> int:
    """``30m`` → 1800; a bare number is seconds."""
    m = _BUDGET.fullmatch(text.strip().lower())
    if m is None:
        raise ValueError("a duration like 90s, 30m, 2h or 1d")
    return int(m.group(1)) * _UNITS[m.group(2)]


def _budget_problem(text: str) -> str | None:
    try:
        seconds = budget_seconds(text)
    except ValueError as exc:
        return f"must be {exc}"
    return None if seconds > 0 else "must be more than zero"


def _cron_problem(text: str) -> str | None:
    return schedule.problem(text)


CLEARABLE = ("schedule", "verify_schedule", "retention_days")


def _clearable(keys: list[str]) -> str | None:
    bad = [k for k in keys if k not in CLEARABLE]
    return f"only {', '.join(CLEARABLE)} can be cleared, not {', '.join(bad)}" if bad else None


TARGET_NAME = Field("name", "string", "the target's name: letters, digits, `.`, `_`, `-`",
                    required=True, pattern=NAME_PATTERN,
                    pattern_hint="letters, digits, '.', '_' or '-', at most 64, starting "
                    "with a letter or digit")
TARGET_REF = Param("target", "string", "the target's name", required=True, max_length=64)

# The settings of a target, in the order a form shows them.
TARGET_FIELDS = (
    Field("path", "path", "local targets: the folder copies go to (a USB disk, a NAS "
          "mount); it must exist", absolute=True, max_length=4096),
    Field("roots", "array", "names of the roots and bucket sources to back up (empty: every "
          "local root; a bucket only when named)", items="string",
          default=[], max_length=1000),
    Field("schedule", "string", "when to run: a cron expression (minute hour day month "
          "weekday) or @daily, @weekly…; null: only when asked", nullable=True,
          default="0 2 * * *", max_length=200, check_fn=_cron_problem),
    Field("timezone", "string", "the time zone the schedules are read in (IANA name, or "
          "local)", default="local", max_length=64, check_fn=schedule.zone_problem),
    Field("verify_schedule", "string", "when to verify the target (cron); null: only when "
          "asked", nullable=True, default="0 4 * * 0", max_length=200, check_fn=_cron_problem),
    Field("verify_budget", "string", "how long one scheduled verify may read (90s, 30m, 2h)",
          default="30m", max_length=20, check_fn=_budget_problem),
    Field("verify_days", "integer", "every file is to be verified at least this often",
          default=30, minimum=1, maximum=3650, unit="days"),
    Field("retention_days", "integer", "remove copies of photos deleted from the library this "
          "many days ago; null: never delete from the target", nullable=True, default=None,
          minimum=0, maximum=36500, unit="days"),
    Field("enabled", "boolean", "run on schedule", default=True),
)
TARGET_KEYS = tuple(f.name for f in TARGET_FIELDS)

# An S3 bucket as a target, configured like an S3 source.
S3_FIELDS = (
    Field("bucket", "string", "s3 targets: the bucket", max_length=63,
          pattern=r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]",
          pattern_hint="a bucket name: 3-63 lower-case letters, digits, '.' or '-'"),
    Field("prefix", "string", "s3 targets: a key prefix (a folder in the bucket)",
          default="", max_length=512),
    Field("endpoint_url", "string", "s3 targets: the endpoint (empty: AWS)", max_length=500,
          pattern=r"https?://\S+", pattern_hint="an http:// or https:// URL"),
    Field("region", "string", "s3 targets: the region", max_length=64),
    Field("access_key_id", "string", "s3 targets: the access key id", max_length=128),
    Field("secret_access_key", "string", "s3 targets: the secret key (never shown again)",
          max_length=256, secret=True),
)
S3_KEYS = tuple(f.name for f in S3_FIELDS)

_TARGET = ("{name, kind, path, roots, schedule, timezone, verify_schedule, verify_budget, "
           "verify_days, retention_days, enabled, next_runs[], next_verify, created_at}")
_RUN = "{id, target, kind, job, state, started_at, finished_at, files, bytes, errors, result}"


def _optional(f: Field) -> Field:
    """The same field for ``backups.update``: absent means unchanged."""
    return Field(f.name, f.type, f.description, items=f.items, nullable=f.nullable,
                 minimum=f.minimum, maximum=f.maximum, max_length=f.max_length,
                 pattern=f.pattern, pattern_hint=f.pattern_hint, check_fn=f.check_fn,
                 absolute=f.absolute, unit=f.unit)


METHODS = (
    MethodSpec(
        "backups.add",
        Permission.ADMIN,
        "Add a backup target: a local folder (it must exist and be writable) or an S3 bucket "
        "(`kind=s3`, `bucket`, `prefix`, `endpoint_url`, keys). lightbox writes a marker, a "
        "README and `SHA256SUMS` there; files go under `<root name>/<path>`. Nothing is "
        "ever deleted from a target unless `retention_days` is set.",
        params=(TARGET_NAME,
                Param("kind", "string", "local (a folder) or s3 (a bucket)", default="local",
                      enum=("local", "s3")),
                *TARGET_FIELDS, *S3_FIELDS),
        result=_TARGET,
    ),
    MethodSpec(
        "backups.update",
        Permission.ADMIN,
        "Change a target's settings; parameters left out stay as they are.",
        params=(TARGET_REF, *(_optional(f) for f in TARGET_FIELDS if f.name != "path"),
                Param("clear", "array", "settings to set to null: schedule, verify_schedule "
                      "(only when asked), retention_days (never delete)", items="string",
                      max_length=3, check_fn=_clearable)),
        result=_TARGET,
    ),
    MethodSpec(
        "backups.remove",
        Permission.ADMIN,
        "Forget a target: its manifest and history leave the catalog; the files on the "
        "target are not touched.",
        params=(TARGET_REF,),
        result="{removed}",
    ),
    MethodSpec(
        "backups.list",
        Permission.READ,
        "Every backup target with its settings and next five run times.",
        result=f"{{targets[{_TARGET}]}}",
    ),
    MethodSpec(
        "backups.schedule",
        Permission.READ,
        "Check a cron expression and show its next run times (daylight-saving changes "
        "included) without saving anything.",
        params=(Param("cron", "string", "a cron expression", required=True, max_length=200),
                Param("timezone", "string", "IANA time zone (default: local)",
                      default="local", max_length=64),
                Param("count", "integer", "how many run times", default=5, minimum=1,
                      maximum=100)),
        result="{valid, problem, explanation, next[]}",
    ),
    MethodSpec(
        "backups.run",
        Permission.CONTROL,
        "Back up now: copy every photo of the included roots that the target lacks (by "
        "sha256). Offline roots are skipped, never treated as empty; a target that is "
        "missing, unmounted or read-only fails the run (`data.reason`: `target_missing`, "
        "`target_read_only`, `disk_full`, `busy`).",
        params=(TARGET_REF,
                Param("check_sources", "boolean", "also re-read the source files already on "
                      "the target and report those whose content no longer matches the "
                      "catalog (bit rot)", default=False)),
        result="{job}",
        starts_job=True,
    ),
    MethodSpec(
        "backups.verify",
        Permission.CONTROL,
        "Re-read files on the target and compare them with the manifest, least recently "
        "verified first, within a budget; reports missing, changed and extra files.",
        params=(TARGET_REF,
                Param("budget", "string", "at most this long (90s, 30m, 2h); default: the "
                      "target's verify_budget", max_length=20, check_fn=_budget_problem),
                Param("sample", "number", "at most this percentage of the files", minimum=0,
                      maximum=100),
                Param("all", "boolean", "every file, whatever the budget", default=False)),
        result="{job}",
        starts_job=True,
    ),
    MethodSpec(
        "backups.restore",
        Permission.CONTROL,
        "Copy files from a target into a folder, each hash-checked after writing: one photo, "
        "a folder, a date range or everything. A file that exists and differs is kept "
        "unless `overwrite`; `dry_run` lists what would be restored and from where. `dest` "
        "is made when missing; refused (`invalid params`, `data.reason`) when it is or lies "
        "inside a system tree, the daemon's own directories or a backup target "
        "(`backup_target`), or is a home directory itself (a new folder in one is fine).",
        params=(TARGET_REF,
                Param("dest", "path", "the folder to restore into", required=True,
                      absolute=True, max_length=4096),
                Param("photo", "integer", "one photo (its id)", minimum=1),
                Param("folder", "string", "a folder (absolute path inside a root) and what is "
                      "below it", max_length=4096),
                Param("taken_from", "string", "photos taken on or after this date "
                      "(YYYY-MM-DD)", pattern=r"\d{4}-\d{2}-\d{2}",
                      pattern_hint="a date YYYY-MM-DD"),
                Param("taken_to", "string", "photos taken on or before this date",
                      pattern=r"\d{4}-\d{2}-\d{2}", pattern_hint="a date YYYY-MM-DD"),
                Param("all", "boolean", "everything the target holds", default=False),
                Param("overwrite", "boolean", "replace files that exist and differ",
                      default=False),
                Param("dry_run", "boolean", "only list what would be restored",
                      default=False)),
        result="{job}",
        starts_job=True,
    ),
    MethodSpec(
        "backups.status",
        Permission.READ,
        "Per target: last run, last verify, next run, oldest verification age and how many "
        "photos are not yet backed up.",
        params=(Param("target", "string", "only this target", max_length=64),),
        result="{targets[{name, online, problem, last_run, last_verify, next_run, "
        "next_verify, files, bytes, not_backed_up, oldest_verified_age, never_verified, "
        "running}]}",
    ),
    MethodSpec(
        "backups.history",
        Permission.READ,
        "Runs (backup, verify, restore), newest first.",
        params=(Param("target", "string", "only this target", max_length=64),
                Param("kind", "string", "only this kind", enum=("backup", "verify",
                                                                 "restore")),
                Param("limit", "integer", "runs per page", default=50, minimum=1,
                      maximum=1000),
                Param("cursor", "string", "from the previous page's next_cursor",
                      max_length=32)),
        result=f"{{runs[{_RUN}], next_cursor}}",
        paginated=True,
    ),
    MethodSpec(
        "library.import",
        Permission.CONTROL,
        "Copy (or move) photos from a card or folder into a root, laid out by a template "
        "on their metadata, e.g. `{taken:%Y}/{taken:%Y-%m-%d}/{name}`. Files whose sha256 "
        "the catalog has are skipped; a name taken by other content gets a suffix from the "
        "sha256 (a rerun gives the same names); each copy is re-hashed before a move "
        "deletes its source. The result says whether the card is safe to erase. Refused "
        "(`invalid params`, `data.reason`) for a folder inside a root (`inside_a_root`), "
        "holding one (`holds_a_root`), being, holding or inside a backup target "
        "(`backup_target`), the daemon's own directories, a system tree or a home itself.",
        params=(Param("source_path", "path", "the card or folder to import from",
                      required=True, absolute=True, max_length=4096),
                Param("root", "any", "the root to import into (id, name or path)",
                      required=True),
                Param("template", "string", "layout below the root; fields: taken, mtime "
                      "(with a strftime format and an optional `|fallback`), name, stem, "
                      "ext, make, model, sha8",
                      default="{taken:%Y}/{taken:%Y-%m-%d}/{name}", max_length=500),
                Param("mode", "string", "copy, or move (sources deleted once verified)",
                      default="copy", enum=("copy", "move")),
                Param("dry_run", "boolean", "only show the plan", default=False)),
        result="{job}",
        starts_job=True,
    ),
)

EVENTS = (
    EventSpec("backup", "finished", "A backup, verify or restore run ended.",
              {"target": "", "kind": "backup, verify or restore", "run": "run id",
               "state": "succeeded or failed", "files": "", "bytes": "", "errors": "",
               "reason": "why it failed, when it did"}),
    EventSpec("backup", "damaged", "A source file's content no longer matches its catalog "
              "sha256 while its size and mtime did not change (bit rot); its good copy on "
              "the target is kept.",
              {"target": "", "photo": "photo id", "path": ""}),
)
