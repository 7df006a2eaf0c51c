"""The catalog's tables, as SQLAlchemy Core metadata (the hot paths use Core, not the ORM).

Every change here goes with an Alembic revision in ``migrations/versions``; a test compares
this metadata with a freshly migrated database so the two cannot drift.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from lightbox.daemon.catalog.types import Id, Name, Real, SortKey, Timestamp, natural_key

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = sa.MetaData(naming_convention=NAMING)

JOB_STATES = ("queued", "running", "succeeded", "failed", "cancelled")

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("state", sa.String(16), nullable=False, server_default="queued"),
    sa.Column("params", sa.JSON, nullable=False),
    sa.Column("priority", sa.SmallInteger, nullable=False, server_default="0"),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("max_attempts", sa.Integer, nullable=False, server_default="3"),
    sa.Column("processed", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("total", sa.BigInteger, nullable=True),
    sa.Column("bytes", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("errors", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("error", sa.Text, nullable=True),
    sa.Column("result", sa.JSON, nullable=True),
    sa.Column("checkpoint", sa.JSON, nullable=True),
    sa.Column("owner", sa.String(64), nullable=True),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("started_at", Timestamp, nullable=True),
    sa.Column("finished_at", Timestamp, nullable=True),
    sa.Column("not_before", Timestamp, nullable=True),
    sa.Column("heartbeat_at", Timestamp, nullable=True),
    # Which daemon may run it, when several share the catalog: None for any, "source:N"
    # for the holder of that source's lease (a scan must run where the files are).
    sa.Column("affinity", sa.String(100), nullable=True),
    sa.CheckConstraint(
        "state IN ('queued', 'running', 'succeeded', 'failed', 'cancelled')", name="state"
    ),
    sa.Index(None, "state", "priority", "id"),
    sa.Index(None, "created_at"),
)

# -- the library ------------------------------------------------------------------------
# A source is where photos come from: a local folder ("root") now, an S3 bucket later. The
# tree below a source is the folders table; the root folder of a source has path "".

SOURCE_KINDS = ("local", "s3")
PHOTO_STATES = ("pending", "ok", "error", "missing")

sources = sa.Table(
    "sources",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("name", Name(200), nullable=False),
    sa.Column("path", sa.Text, nullable=True),  # local: absolute path of the root
    sa.Column("config", sa.JSON, nullable=True),  # s3: endpoint, bucket, prefix...
    sa.Column("device", sa.BigInteger, nullable=True),  # st_dev of a local root when added
    # The rest of a local root's identity (``library.identity``): the root directory's inode
    # and the mount it lives on (mount id and major:minor from /proc/self/mountinfo).
    sa.Column("root_inode", sa.BigInteger, nullable=True),
    sa.Column("mount_id", sa.BigInteger, nullable=True),
    sa.Column("mount_device", sa.String(32), nullable=True),
    sa.Column("online", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("status", sa.Text, nullable=True),  # why it is offline, last scan problem
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("scanned_at", Timestamp, nullable=True),  # last complete pass
    sa.CheckConstraint("kind IN ('local', 's3')", name="kind"),
    sa.UniqueConstraint("name"),
)

# A source's secrets (an S3 secret access key): written, replaced or removed, never read
# back by any method, log or event; clients see only ``fingerprint`` (a short digest that
# tells whether the secret changed).
source_secrets = sa.Table(
    "source_secrets",
    metadata,
    sa.Column("source_id", Id, sa.ForeignKey("sources.id", ondelete="CASCADE"), nullable=False),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("fingerprint", sa.String(16), nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
    sa.PrimaryKeyConstraint("source_id", "name"),
)

folders = sa.Table(
    "folders",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("source_id", Id, sa.ForeignKey("sources.id", ondelete="CASCADE"), nullable=False),
    sa.Column("parent_id", Id, sa.ForeignKey("folders.id", ondelete="CASCADE"), nullable=True),
    # Relative to the source, "/"-separated, "" for the source's root folder. Paths can be
    # longer than any portable unique index allows, so uniqueness is on path_hash.
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("path_hash", sa.String(40), nullable=False),
    sa.Column("name", Name(255), nullable=False),
    sa.Column("depth", sa.Integer, nullable=False),
    sa.Column("photo_count", sa.Integer, nullable=False, server_default="0"),  # direct
    sa.Column("folder_count", sa.Integer, nullable=False, server_default="0"),  # direct
    sa.Column("total_count", sa.Integer, nullable=False, server_default="0"),  # subtree
    sa.Column("bytes", sa.BigInteger, nullable=False, server_default="0"),  # direct
    sa.Column("missing_since", Timestamp, nullable=True),
    sa.Column("first_seen", Timestamp, nullable=False),
    # A digest of the folder's listing (names, sizes, mtimes, inodes) when the catalog was
    # last reconciled with it; NULL once anything changed its rows. A rescan that lists the
    # same digest skips the folder without reading its photos.
    sa.Column("listing_hash", sa.String(32), nullable=True),
    sa.UniqueConstraint("source_id", "path_hash"),
    sa.Index(None, "parent_id", "name"),
)

def _name_key(context: Any) -> str:
    """Insert default of ``name_key`` (per row, also in an executemany)."""
    return natural_key(context.get_current_parameters()["name"])


photos = sa.Table(
    "photos",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("source_id", Id, sa.ForeignKey("sources.id", ondelete="CASCADE"), nullable=False),
    sa.Column("folder_id", Id, sa.ForeignKey("folders.id", ondelete="CASCADE"), nullable=False),
    sa.Column("name", Name(255), nullable=False),
    # The listing order by name (natural, case-insensitive): filled from ``name`` on every
    # insert; whatever renames a photo sets it too (writer.move_photo).
    sa.Column("name_key", SortKey(), nullable=False, server_default="",
              default=_name_key),
    # What the scanner compares to decide that a file is unchanged and need not be read.
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("mtime_ns", sa.BigInteger, nullable=False),
    sa.Column("inode", sa.BigInteger, nullable=True),
    # st_dev when the file was last read: with inode, size and mtime_ns, what every later
    # read is checked against (media.confine).
    sa.Column("device", sa.BigInteger, nullable=True),
    # An S3 object's ETag when it was listed: a change detector only (a multipart upload's
    # ETag is not an MD5), checked with If-Match on every read. NULL for local files.
    sa.Column("etag", sa.String(128), nullable=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("error", sa.Text, nullable=True),
    # Why, machine-readable, for an ``error`` row: the content's (corrupt, unsupported, ...)
    # or a bucket read's given up on (server_error, throttled, timeout). NULL otherwise.
    sa.Column("error_reason", sa.String(32), nullable=True),
    sa.Column("sha256", sa.String(64), nullable=True),
    sa.Column("mime", sa.String(64), nullable=True),
    sa.Column("format", sa.String(16), nullable=True),
    sa.Column("width", sa.Integer, nullable=True),
    sa.Column("height", sa.Integer, nullable=True),
    sa.Column("orientation", sa.SmallInteger, nullable=True),
    # The camera's wall-clock time, naive, as recorded; the offset (minutes east of UTC) when
    # the camera recorded one. Sorting and date ranges use the wall clock, as people do.
    sa.Column("taken_at", Timestamp, nullable=True),
    sa.Column("taken_offset", sa.SmallInteger, nullable=True),
    sa.Column("make", sa.String(100), nullable=True),
    sa.Column("model", sa.String(100), nullable=True),
    sa.Column("lens", sa.String(200), nullable=True),
    sa.Column("exposure_time", Real, nullable=True),
    sa.Column("f_number", Real, nullable=True),
    sa.Column("iso", sa.Integer, nullable=True),
    sa.Column("focal_length", Real, nullable=True),
    sa.Column("gps_lat", sa.Double, nullable=True),
    sa.Column("gps_lon", sa.Double, nullable=True),
    sa.Column("gps_alt", sa.Double, nullable=True),
    sa.Column("phash", sa.BigInteger, nullable=True),
    sa.Column("thumbs", sa.SmallInteger, nullable=False, server_default="0"),  # bit per size
    sa.Column("first_seen", Timestamp, nullable=False),
    sa.Column("indexed_at", Timestamp, nullable=True),
    sa.Column("missing_since", Timestamp, nullable=True),
    sa.CheckConstraint("status IN ('pending', 'ok', 'error', 'missing')", name="status"),
    sa.UniqueConstraint("folder_id", "name"),
    # One index per list the UI shows and per lookup the scanner makes.
    sa.Index(None, "folder_id", "taken_at"),
    sa.Index(None, "folder_id", "size"),
    sa.Index(None, "taken_at"),
    sa.Index(None, "sha256"),
    sa.Index(None, "make", "model"),
    # sha256 last: the anti-join of a backup (photos a target lacks) reads the index alone.
    sa.Index(None, "status", "source_id", "sha256"),
    sa.Index(None, "source_id", "inode"),
    sa.Index(None, "name"),
    sa.Index(None, "status", "indexed_at"),
    # PostgreSQL: with id and status, a set of folders' photos in name order (a place's,
    # a month's) come from the index alone (0026_pg_cover).
    sa.Index(None, "folder_id", "name_key", postgresql_include=["id", "status"]),
    # PostgreSQL: with what the walks of text search test and return, index-only scans
    # (0044_pg_name_cover).
    sa.Index(None, "name_key", postgresql_include=["id", "folder_id", "status"]),
    # A camera's or a lens's photos in name order (text search of a common word, and the
    # columns' distinct values by a skip scan).
    sa.Index(None, "make", "name_key", postgresql_include=["id", "status"]),
    sa.Index(None, "model", "name_key", postgresql_include=["id", "status"]),
    sa.Index(None, "lens", "name_key", postgresql_include=["id", "status"]),
)


# -- several daemons, one catalog --------------------------------------------------------
# A lease is held by one daemon at a time and kept by its heartbeat; a lease whose holder
# stopped heart-beating past ``expires_at`` may be taken over. Keys: "daemon:<owner>" (the
# daemon's presence), "source:<id>" (which daemon watches and scans that source).
leases = sa.Table(
    "leases",
    metadata,
    sa.Column("key", sa.String(100), primary_key=True),
    sa.Column("owner", sa.String(200), nullable=False),
    sa.Column("acquired_at", Timestamp, nullable=False),
    sa.Column("heartbeat_at", Timestamp, nullable=False),
    sa.Column("expires_at", Timestamp, nullable=False),
    sa.Column("info", sa.JSON, nullable=True),  # host, pid, version, data dir of a daemon
    sa.Index(None, "owner"),
)

# Pending photos a daemon's indexer has taken (claimed with FOR UPDATE SKIP LOCKED), so
# that no other daemon reads the same file; released when the result is written, or taken
# over when the claimant's daemon lease expires.
index_claims = sa.Table(
    "index_claims",
    metadata,
    sa.Column("photo_id", Id, sa.ForeignKey("photos.id", ondelete="CASCADE"),
              primary_key=True, autoincrement=False),
    sa.Column("owner", sa.String(200), nullable=False),
    sa.Column("claimed_at", Timestamp, nullable=False),
    sa.Index(None, "owner"),
)

# Events one daemon relays to the others where the engine has no LISTEN/NOTIFY (MySQL,
# MariaDB): appended by their origin, polled by the rest, pruned after a while.
event_feed = sa.Table(
    "event_feed",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("origin", sa.String(200), nullable=False),
    sa.Column("topic", sa.String(40), nullable=False),
    sa.Column("type", sa.String(60), nullable=False),
    sa.Column("data", sa.JSON, nullable=False),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Index(None, "created_at"),
)


# -- backups -----------------------------------------------------------------------------
# A target is a place copies go (a local folder now; an S3 bucket later). Its settings are
# one JSON object validated by ``lightbox.common.api.backups.TARGET_FIELDS``; the columns
# beside it are what the scheduler and the run lock need to query.
backup_targets = sa.Table(
    "backup_targets",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("name", Name(200), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("path", sa.Text, nullable=True),  # local: the target folder
    # The id written into the target's marker file: a folder without it (an empty mount
    # point, another disk) is not this target, and nothing is written there.
    sa.Column("marker", sa.String(64), nullable=False),
    sa.Column("config", sa.JSON, nullable=False),
    sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("created_at", Timestamp, nullable=False),
    sa.Column("next_run_at", Timestamp, nullable=True),
    sa.Column("next_verify_at", Timestamp, nullable=True),
    # One run (backup, verify, restore) per target at a time: the owner (host/pid/boot, as
    # jobs have) holds it; a dead owner's lock is taken over.
    sa.Column("lock_owner", sa.String(200), nullable=True),
    sa.Column("lock_at", Timestamp, nullable=True),
    # What the catalog looked like when a run left nothing lacking (backups.service:
    # the fingerprint that lets a run with nothing new skip the anti-join); null: unknown.
    sa.Column("clean_mark", sa.JSON, nullable=True),
    sa.CheckConstraint("kind IN ('local', 's3')", name="kind"),
    sa.UniqueConstraint("name"),
)

# What a target holds, by content: the source of truth for what it lacks. One row per
# sha256 (a photo kept twice in the library is copied once); ``path`` is relative to the
# target ("<source name>/<path below the source>").
# An S3 target's secrets, kept out of its config row (as ``source_secrets`` are for
# buckets): read only to sign requests, shown to clients as set or not and a fingerprint.
backup_target_secrets = sa.Table(
    "backup_target_secrets",
    metadata,
    sa.Column("target_id", Id, sa.ForeignKey("backup_targets.id", ondelete="CASCADE"),
              nullable=False),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("value", sa.Text, nullable=False),
    sa.Column("fingerprint", sa.String(16), nullable=False),
    sa.Column("updated_at", Timestamp, nullable=False),
    sa.PrimaryKeyConstraint("target_id", "name"),
)

backup_manifest = sa.Table(
    "backup_manifest",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("target_id", Id, sa.ForeignKey("backup_targets.id", ondelete="CASCADE"),
              nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("path", sa.Text, nullable=False),
    sa.Column("path_hash", sa.String(40), nullable=False),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("copied_at", Timestamp, nullable=False),
    sa.Column("verified_at", Timestamp, nullable=True),
    # ok | missing | changed: what the last verify found (copying leaves ok)
    sa.Column("result", sa.String(16), nullable=False, server_default="ok"),
    # When a run first found no photo of the library with this content (retention).
    sa.Column("orphaned_at", Timestamp, nullable=True),
    sa.UniqueConstraint("target_id", "sha256"),
    sa.UniqueConstraint("target_id", "path_hash"),
    sa.Index(None, "target_id", "verified_at"),
)

# Every backup, verify and restore run: the history ``backups.history`` shows.
backup_runs = sa.Table(
    "backup_runs",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("target_id", Id, sa.ForeignKey("backup_targets.id", ondelete="CASCADE"),
              nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # backup | verify | restore
    sa.Column("job_id", sa.BigInteger, nullable=True),
    sa.Column("state", sa.String(16), nullable=False),  # running | succeeded | failed
    sa.Column("started_at", Timestamp, nullable=False),
    sa.Column("finished_at", Timestamp, nullable=True),
    sa.Column("files", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("bytes", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("errors", sa.Integer, nullable=False, server_default="0"),
    sa.Column("result", sa.JSON, nullable=True),
    sa.Index(None, "target_id", "kind", "id"),
)


# -- settings (F10) --------------------------------------------------------------------
# Runtime settings that differ from their defaults, one row per key with its own version.
# ``settings_revision`` holds one row (id 1): the global revision, bumped in the same
# transaction as every change, so a daemon that sees a new revision re-reads and applies
# (two daemons on one catalog converge by polling it). A key set back to its default is
# deleted, not stored.
settings = sa.Table(
    "settings",
    metadata,
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("value", sa.JSON, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("revision", sa.BigInteger, nullable=False),  # of the last change to the row
    sa.Column("updated_at", Timestamp, nullable=False),
)

settings_revision = sa.Table(
    "settings_revision",
    metadata,
    sa.Column("id", sa.SmallInteger, primary_key=True, autoincrement=False),
    sa.Column("revision", sa.BigInteger, nullable=False),
)

# Tables whose rows a migration writes (a singleton to update in place): an empty catalog
# has them, a switch's target clears them before the copy brings the source's.
SEEDED = frozenset({"settings_revision"})

# One row per change (settings.set/reset/revert, roots.add/remove): who, when, what, the
# result. ``changes`` is [{key, old, new}] with secrets as fingerprints only; the keys are
# also in ``settings_audit_keys`` so one key's history is an index range, on every engine.
settings_audit = sa.Table(
    "settings_audit",
    metadata,
    sa.Column("id", Id, primary_key=True, autoincrement=True),
    sa.Column("revision", sa.BigInteger, nullable=False),
    sa.Column("at", Timestamp, nullable=False),
    sa.Column("action", sa.String(40), nullable=False),
    sa.Column("actor", sa.JSON, nullable=False),
    sa.Column("changes", sa.JSON, nullable=False),
    sa.Column("result", sa.String(40), nullable=False),
    sa.Column("detail", sa.JSON, nullable=True),
    sa.Index(None, "revision"),
)

settings_audit_keys = sa.Table(
    "settings_audit_keys",
    metadata,
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("audit_id", Id, sa.ForeignKey("settings_audit.id", ondelete="CASCADE"),
              primary_key=True, autoincrement=False),
)
