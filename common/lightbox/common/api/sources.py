"""``sources.*``: every photo source, local roots and S3 buckets, and syncing buckets.

Roots keep their own ``roots.*`` methods (the local kind); buckets are added, tested and
synced here. A bucket's secret access key is a secret: sent once (admin class), stored, and
never returned, logged, audited or put in an event; clients see whether it is set and a
short fingerprint that changes when it does.
"""

from lightbox.common.api.schema import EventSpec, MethodSpec, Param, Permission

SOURCE_REF = Param("source", "any", "a source's id or name", required=True)
SOURCE_SHAPE = ("{id, name, kind, path, online, status, photos, folders, bytes, errors, "
                "pending, missing, scanned_at, folder_id, config{endpoint, region, bucket, "
                "prefix, addressing_style, access_key_id, credentials_profile, interval, "
                "page_size, read_timeout, object_timeout, attempts}, "
                "secrets{secret_access_key{set, fingerprint}}}")

S3_PARAMS = (
    Param("endpoint", "string", "the S3 endpoint URL, e.g. https://s3.us-west-004."
          "backblazeb2.com (default: AWS)", nullable=True, max_length=500),
    Param("region", "string", "the region", default="us-east-1", max_length=64),
    Param("bucket", "string", "the bucket's name", required=True, max_length=255),
    Param("prefix", "string", "only keys below this prefix (a folder in the bucket)",
          default="", max_length=1024),
    Param("addressing_style", "string", "path or virtual-host addressing", default="auto",
          enum=("auto", "path", "virtual")),
    Param("access_key_id", "string", "the access key id", nullable=True, max_length=256),
    Param("secret_access_key", "string", "the secret access key (stored, never shown again)",
          nullable=True, max_length=1024, secret=True),
    Param("credentials_profile", "string", "a profile of the standard AWS credentials "
          "file instead of a key", nullable=True, max_length=128),
    Param("interval", "number", "seconds between automatic syncs (0: on demand only)",
          default=86400, minimum=0, maximum=365 * 86400),
    Param("page_size", "integer", "keys per LIST request (S3's own maximum is 1000; some "
          "providers want fewer)", default=1000, minimum=1, maximum=1000),
    Param("read_timeout", "number", "seconds one socket read of a request may wait (the "
          "response's headers, or the next bytes of a body)", default=60, minimum=1,
          maximum=3600),
    Param("object_timeout", "number", "seconds the whole transfer of one object may take, "
          "retries included, plus its size at 256 KiB/s; past it the read fails with "
          "`timeout`", default=300, minimum=1, maximum=86400),
    Param("attempts", "integer", "tries of each object read (retries with exponential "
          "backoff and jitter, honouring `Retry-After`, on 500, 503 SlowDown, throttling "
          "and connection resets); an object that fails every try, in two rounds, gets a "
          "lasting error (`error_reason` `server_error`, `throttled` or `timeout`)",
          default=6, minimum=1, maximum=20),
)

# What ``sources.update`` may change: how the bucket is reached and synced. The bucket and
# the prefix say which objects the source is, so they are not among them (a different bucket
# is a new source: its photos are other photos).
UPDATABLE = ("endpoint", "region", "addressing_style", "access_key_id", "secret_access_key",
             "credentials_profile", "interval", "page_size", "read_timeout", "object_timeout",
             "attempts")
CLEARABLE = ("endpoint", "access_key_id", "credentials_profile")


def _clearable(keys: list[str]) -> str | None:
    bad = [k for k in keys if k not in CLEARABLE]
    return f"only {', '.join(CLEARABLE)} can be cleared, not {', '.join(bad)}" if bad else None


def _unchanged_if_absent(p: Param) -> Param:
    """The same field for ``sources.update``: absent (or null) means unchanged."""
    return Param(p.name, p.type, p.description, nullable=True, minimum=p.minimum,
                 maximum=p.maximum, max_length=p.max_length, enum=p.enum, secret=p.secret)


METHODS = (
    MethodSpec(
        "sources.list",
        Permission.READ,
        "Every source, local roots and buckets, with state and counts (never a secret).",
        result="{sources[" + SOURCE_SHAPE + "]}",
    ),
    MethodSpec(
        "sources.get",
        Permission.READ,
        "One source.",
        params=(SOURCE_REF,),
        result="{source" + SOURCE_SHAPE + "}",
    ),
    MethodSpec(
        "sources.add",
        Permission.ADMIN,
        "Add a source. `kind=s3` adds a bucket (this method); local folders are added with "
        "`roots.add`. Refused with `invalid params` (per field in `data.errors`) for a bad "
        "bucket name, endpoint or interval, or a key without its secret; `conflict` when the "
        "name is taken (`data.reason`: `name_taken`) or the bucket and prefix overlap another "
        "source (`overlaps_source`). With `sync` the first sync starts at once.",
        params=(Param("kind", "string", "the source kind", required=True, enum=("s3",)),
                Param("name", "string", "display name", required=True, max_length=200),
                *S3_PARAMS,
                Param("sync", "boolean", "start the first sync at once", default=True)),
        result="{source{…as sources.get}, job}",
        starts_job=True,
    ),
    MethodSpec(
        "sources.update",
        Permission.ADMIN,
        "Change how a bucket is reached and synced (endpoint, region, addressing, "
        "credentials, interval, page size, timeouts, attempts) without losing its photos; "
        "parameters left out stay as they are, `clear` sets endpoint (AWS), "
        "access_key_id or credentials_profile to null. A new `access_key_id` needs its "
        "`secret_access_key` in the same call; clearing the key forgets its secret. The "
        "bucket and prefix cannot change (`conflict`, `data.reason` `identity`): another "
        "bucket is another source. Takes effect on the next request; each changed key is "
        "audited as `sources.NAME.KEY` (a secret only as set and its fingerprint).",
        params=(SOURCE_REF,
                *(_unchanged_if_absent(p) for p in S3_PARAMS if p.name in UPDATABLE),
                Param("bucket", "string", "refused unless it is the bucket's own",
                      nullable=True, max_length=255),
                Param("prefix", "string", "refused unless it is the source's own",
                      nullable=True, max_length=1024),
                Param("clear", "array", "settings to set to null: endpoint, access_key_id, "
                      "credentials_profile", items="string", max_length=3,
                      check_fn=_clearable)),
        result="{source{…as sources.get}, changed[]}",
    ),
    MethodSpec(
        "sources.remove",
        Permission.ADMIN,
        "Forget a source: its folders, photos and secrets leave the catalog (the files and "
        "objects are not touched).",
        params=(SOURCE_REF,),
        result="{removed, photos, folders}",
    ),
    MethodSpec(
        "sources.set_secret",
        Permission.ADMIN,
        "Replace (or with `value: null` remove) a source's secret; it takes effect on the "
        "next request. The reply has only the new fingerprint.",
        params=(SOURCE_REF,
                Param("name", "string", "which secret", default="secret_access_key",
                      enum=("secret_access_key",)),
                Param("value", "string", "the new secret, or null to remove it",
                      nullable=True, max_length=1024, secret=True)),
        result="{secrets{secret_access_key{set, fingerprint}}}",
    ),
    MethodSpec(
        "sources.test",
        Permission.CONTROL,
        "Check that a bucket can be used, in order: endpoint reachable, TLS, clock skew, "
        "credentials, bucket exists, list permission, get permission. Stops at the first "
        "failure and names it (`failed`) with a message saying what to fix. Give `source` "
        "for a bucket already added, or the same parameters as `sources.add`.",
        params=(Param("source", "any", "a bucket source's id or name"),
                *(Param(p.name, p.type, p.description, nullable=True,
                        max_length=p.max_length, secret=p.secret)
                  for p in S3_PARAMS if p.name not in ("interval", "page_size", "read_timeout",
                                                       "object_timeout", "attempts"))),
        result="{ok, failed, message, checks[{name, ok, message}]}",
    ),
    MethodSpec(
        "sources.sync",
        Permission.CONTROL,
        "Sync a bucket now (every bucket without `source`): list it (⌈N/1000⌉ requests when "
        "nothing changed), queue new and changed objects, then read them. Deletions apply "
        "only after a complete listing and through the mass-vanish guard; `force` lets a "
        "bucket that lists empty, or loses more photos at once than the guard allows (held "
        "as suspect otherwise), be believed. The job "
        "fails with `data.reason` (`endpoint`, `tls`, `clock_skew`, `credentials`, `bucket`, "
        "`list_denied`, `server_error`, `throttled`, `truncated_without_token`, "
        "`repeated_token`, `page_error`, `page_cap`, `empty_listing`, `mass_vanish`). "
        "An object whose reads kept failing is in `error` (`error_reason` `server_error`, "
        "`throttled`, `timeout`; counted in the result's `failed`) and is read again by a "
        "sync only when it changed (ETag, size or LastModified), or with `retry`.",
        params=(Param("source", "any", "a bucket source's id or name (default: every bucket)"),
                Param("force", "boolean", "apply an empty listing or a mass vanish",
                      default=False),
                Param("retry", "boolean", "also read again the objects whose reads failed "
                      "(error reasons server_error, throttled, timeout), unchanged or not",
                      default=False)),
        result="{job, jobs[]}",
        starts_job=True,
    ),
)

EVENTS = (
    EventSpec("source", "updated", "A bucket's settings changed (`sources.update`).",
              {"id": "source id", "name": "", "changed": "the keys that changed"}),
    EventSpec("source", "synced", "A bucket's listing was reconciled with the catalog.",
              {"id": "source id", "name": "", "new": "", "changed": "", "missing": "",
               "removed": "", "complete": "the listing was proven complete"}),
)
