"""exact duplicates: a maintained count of ok photos per sha256 (``photos_shas``)

The first exact grouping at 1,000,000 photos walked the whole sha256 index (260 ms on a
quiet machine, target < 100 ms). ``photos_shas`` holds, for every content (sha256) that at
least one ok photo has, how many ok photos have it; the exact groups are its rows with
``n >= 2``, read through an index that holds only those (``ix_photos_shas_dupes``: partial on
SQLite and PostgreSQL; on MariaDB/MySQL a plain index on ``n``, whose range ``n >= 2`` holds
only them too). A content no ok photo has any more leaves the table.

Kept by triggers on ``photos`` in the same transaction as the row they follow (insert,
delete, and an update of ``status`` or ``sha256``), as the text index is (0008): every write
keeps it right whatever code makes it (the writer, a copy between engines, a test's bulk
insert), a SIGKILL loses the row change and the count change together, and several daemons
sharing one catalog add and subtract under the row lock of the count they change (a recount
in each transaction would miss the other's uncommitted row). Like the text index's tables it
lives beside ``tables.metadata``: ``copy.side_table`` keeps copies from carrying it (the
target's triggers fill it as the photos arrive). Backfilled here from the photos.

Revision ID: 0025_sha_counts
Revises: 0035_error_reason
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0025_sha_counts"
down_revision: str | None = "0035_error_reason"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_BACKFILL = ("INSERT INTO photos_shas (sha256, n) SELECT sha256, count(*) FROM photos "
             "WHERE status = 'ok' AND sha256 IS NOT NULL GROUP BY sha256")


def _counted(row: str) -> str:
    """SQL true when the photo row ``row`` (old/new) is counted: ok, with a sha256."""
    return f"{row}.status = 'ok' AND {row}.sha256 IS NOT NULL"


def _sqlite() -> list[str]:
    plus = ("INSERT INTO photos_shas (sha256, n) VALUES (new.sha256, 1) "
            "ON CONFLICT (sha256) DO UPDATE SET n = n + 1;")
    minus = ("UPDATE photos_shas SET n = n - 1 WHERE sha256 = old.sha256; "
             "DELETE FROM photos_shas WHERE sha256 = old.sha256 AND n <= 0;")
    return [
        "CREATE TABLE photos_shas (sha256 VARCHAR(64) NOT NULL PRIMARY KEY, "
        "n INTEGER NOT NULL) WITHOUT ROWID",
        "CREATE INDEX ix_photos_shas_dupes ON photos_shas (n) WHERE n >= 2",
        f"CREATE TRIGGER photos_shas_ai AFTER INSERT ON photos WHEN {_counted('new')} "
        f"BEGIN {plus} END",
        f"CREATE TRIGGER photos_shas_ad AFTER DELETE ON photos WHEN {_counted('old')} "
        f"BEGIN {minus} END",
        # An update that leaves the photo counted under the same sha256 changes nothing.
        f"CREATE TRIGGER photos_shas_au_old AFTER UPDATE OF status, sha256 ON photos "
        f"WHEN {_counted('old')} AND NOT ({_counted('new')} AND new.sha256 = old.sha256) "
        f"BEGIN {minus} END",
        f"CREATE TRIGGER photos_shas_au_new AFTER UPDATE OF status, sha256 ON photos "
        f"WHEN {_counted('new')} AND NOT ({_counted('old')} AND old.sha256 = new.sha256) "
        f"BEGIN {plus} END",
        _BACKFILL,
    ]


def _postgresql() -> list[str]:
    return [
        "CREATE TABLE photos_shas (sha256 VARCHAR(64) NOT NULL PRIMARY KEY, "
        "n INTEGER NOT NULL)",
        "CREATE INDEX ix_photos_shas_dupes ON photos_shas (n) WHERE n >= 2",
        # NEW is NULL in a DELETE trigger and OLD in an INSERT one (PostgreSQL 11+). OR
        # REPLACE: a failed switch's clean-up drops the catalog's tables, not functions.
        "CREATE OR REPLACE FUNCTION photos_shas_track() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "DECLARE was BOOLEAN := TG_OP <> 'INSERT' AND OLD.status = 'ok' "
        "AND OLD.sha256 IS NOT NULL; "
        "now_ BOOLEAN := TG_OP <> 'DELETE' AND NEW.status = 'ok' AND NEW.sha256 IS NOT NULL; "
        "BEGIN "
        "IF was AND NOT (now_ AND NEW.sha256 = OLD.sha256) THEN "
        "UPDATE photos_shas SET n = n - 1 WHERE sha256 = OLD.sha256; "
        "DELETE FROM photos_shas WHERE sha256 = OLD.sha256 AND n <= 0; END IF; "
        "IF now_ AND NOT (was AND OLD.sha256 = NEW.sha256) THEN "
        "INSERT INTO photos_shas (sha256, n) VALUES (NEW.sha256, 1) "
        "ON CONFLICT (sha256) DO UPDATE SET n = photos_shas.n + 1; END IF; "
        "RETURN NULL; END $$",
        "CREATE TRIGGER photos_shas_track AFTER INSERT OR DELETE OR UPDATE OF status, sha256 "
        "ON photos FOR EACH ROW EXECUTE FUNCTION photos_shas_track()",
        _BACKFILL,
    ]


def _mysql() -> list[str]:
    plus = ("INSERT INTO photos_shas (sha256, n) VALUES (NEW.sha256, 1) "
            "ON DUPLICATE KEY UPDATE n = n + 1;")
    minus = ("UPDATE photos_shas SET n = n - 1 WHERE sha256 = OLD.sha256; "
             "DELETE FROM photos_shas WHERE sha256 = OLD.sha256 AND n <= 0;")
    same = "NEW.sha256 = OLD.sha256"
    return [
        # The sha256 column's own type (and so the collation photos' GROUP BY uses).
        "CREATE TABLE photos_shas (sha256 VARCHAR(64) NOT NULL PRIMARY KEY, "
        "n INTEGER NOT NULL, KEY ix_photos_shas_dupes (n))",
        f"CREATE TRIGGER photos_shas_ai AFTER INSERT ON photos FOR EACH ROW "
        f"BEGIN IF {_counted('NEW')} THEN {plus} END IF; END",
        f"CREATE TRIGGER photos_shas_ad AFTER DELETE ON photos FOR EACH ROW "
        f"BEGIN IF {_counted('OLD')} THEN {minus} END IF; END",
        f"CREATE TRIGGER photos_shas_au AFTER UPDATE ON photos FOR EACH ROW BEGIN "
        f"IF {_counted('OLD')} AND NOT ({_counted('NEW')} AND {same}) THEN {minus} END IF; "
        f"IF {_counted('NEW')} AND NOT ({_counted('OLD')} AND {same}) THEN {plus} END IF; "
        "END",
        _BACKFILL,
    ]


def upgrade() -> None:
    name = op.get_bind().dialect.name
    stmts = _sqlite() if name == "sqlite" else _postgresql() if name == "postgresql" \
        else _mysql()
    for stmt in stmts:
        op.execute(stmt)


def downgrade() -> None:
    name = op.get_bind().dialect.name
    if name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS photos_shas_track ON photos")
        op.execute("DROP FUNCTION IF EXISTS photos_shas_track()")
    else:
        for t in ("ai", "ad", "au", "au_old", "au_new"):
            op.execute(f"DROP TRIGGER IF EXISTS photos_shas_{t}")
    op.execute("DROP TABLE IF EXISTS photos_shas")
