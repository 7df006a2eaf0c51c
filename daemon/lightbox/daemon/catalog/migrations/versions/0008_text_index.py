"""text index: each engine's own substring index for photo names, cameras, lenses and folder
paths (see lightbox.daemon.catalog.textindex for how searches use it)

- SQLite: FTS5 tables with the trigram tokenizer over the photos and folders tables
  (external content: the index holds no copy of the text), kept current by triggers;
- PostgreSQL: pg_trgm GIN indexes on the columns themselves (ordinary indexes: always
  current); without the pg_trgm extension (it cannot be installed) search still works, by
  scanning;
- MariaDB/MySQL: side tables with a FULLTEXT index over the text's trigrams written as
  words, kept current by triggers (FULLTEXT indexes words, and we search for substrings).

Triggers rather than code in the writer: every write keeps the index current whatever
code makes it (the scanner, the indexer, a copy between engines, a test's bulk insert).

Revision ID: 0008_text_index
Revises: 0006_trust_confine
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008_text_index"
down_revision: str | None = "0006_trust_confine"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PHOTO_TEXT = ("name", "make", "model", "lens")
FOLDER_TEXT = ("path",)


def _sqlite_fts(table: str, columns: Sequence[str]) -> list[str]:
    fts = f"{table}_text"
    cols = ", ".join(columns)
    new = ", ".join(f"new.{c}" for c in columns)
    old = ", ".join(f"old.{c}" for c in columns)
    return [
        # detail=full: a trigram phrase then is an exact substring match answered from the
        # index alone (detail=none is 3x smaller but re-reads every candidate row: 40x
        # slower on common words); columnsize=0: no ranking, no sizes to keep.
        f"CREATE VIRTUAL TABLE {fts} USING fts5({cols}, content='{table}', "
        "content_rowid='id', tokenize='trigram', detail='full', columnsize=0)",
        f"CREATE TRIGGER {fts}_ai AFTER INSERT ON {table} BEGIN "
        f"INSERT INTO {fts}(rowid, {cols}) VALUES (new.id, {new}); END",
        f"CREATE TRIGGER {fts}_ad AFTER DELETE ON {table} BEGIN "
        f"INSERT INTO {fts}({fts}, rowid, {cols}) VALUES ('delete', old.id, {old}); END",
        f"CREATE TRIGGER {fts}_au AFTER UPDATE OF {cols} ON {table} BEGIN "
        f"INSERT INTO {fts}({fts}, rowid, {cols}) VALUES ('delete', old.id, {old}); "
        f"INSERT INTO {fts}(rowid, {cols}) VALUES (new.id, {new}); END",
        f"INSERT INTO {fts}({fts}) VALUES ('rebuild')",
    ]


def _mysql_terms(table: str, columns: Sequence[str]) -> list[str]:
    """A side table ``<table>_terms`` (id, terms) whose ``terms`` are the trigrams of the
    lower-cased columns (joined by newlines, which no search word contains) as words ``x``
    + hex: FULLTEXT then finds rows holding every trigram of a word, and never drops one
    as too short or as a stop word."""
    terms = f"{table}_terms"
    text = ("LOWER(CONVERT(CONCAT_WS('\\n', " + ", ".join(f"NEW.{c}" for c in columns)
            + ") USING utf8mb4))")
    changed = " OR ".join(f"NOT (NEW.{c} <=> OLD.{c})" for c in columns)

    def body(when: str) -> str:
        return (
            f"BEGIN DECLARE s TEXT CHARACTER SET utf8mb4 DEFAULT {text}; "
            "DECLARE t MEDIUMTEXT DEFAULT ''; DECLARE i INT DEFAULT 1; "
            f"IF {when} THEN "
            "WHILE i <= CHAR_LENGTH(s) - 2 DO SET t = CONCAT(t, ' x', HEX(SUBSTRING(s, i, 3))); "
            "SET i = i + 1; END WHILE; "
            f"REPLACE INTO {terms} (id, terms) VALUES (NEW.id, t); END IF; END")

    return [
        f"CREATE TABLE {terms} (id BIGINT NOT NULL PRIMARY KEY, terms MEDIUMTEXT NOT NULL, "
        f"FULLTEXT INDEX ix_{terms} (terms), CONSTRAINT fk_{terms}_id FOREIGN KEY (id) "
        f"REFERENCES {table} (id) ON DELETE CASCADE) ENGINE=InnoDB "
        "DEFAULT CHARSET=ascii COLLATE=ascii_bin",
        f"CREATE TRIGGER {terms}_ai AFTER INSERT ON {table} FOR EACH ROW {body('TRUE')}",
        # An update that changes none of the columns leaves the terms alone, unless the
        # session asks for a rebuild (the migration, textindex.rebuild).
        f"CREATE TRIGGER {terms}_au AFTER UPDATE ON {table} FOR EACH ROW "
        f"{body(f'{changed} OR @lightbox_text_rebuild')}",
    ]


def upgrade() -> None:
    bind = op.get_bind()
    name = bind.dialect.name
    if name == "sqlite":
        for stmt in [*_sqlite_fts("photos", PHOTO_TEXT), *_sqlite_fts("folders", FOLDER_TEXT)]:
            op.execute(stmt)
    elif name == "postgresql":
        have = bind.execute(sa.text(
            "SELECT count(*) FROM pg_extension WHERE extname = 'pg_trgm'")).scalar()
        if not have:
            # Trusted since PostgreSQL 13: a database owner may install it. If this role
            # cannot, searches fall back to scanning (textindex.available says which).
            with bind.begin_nested() as nested:
                try:
                    bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS pg_trgm"))
                    have = 1
                except sa.exc.DBAPIError:
                    nested.rollback()
        if have:
            op.execute("CREATE INDEX ix_photos_text_trgm ON photos USING gin "
                       "(name gin_trgm_ops, make gin_trgm_ops, model gin_trgm_ops, "
                       "lens gin_trgm_ops)")
            op.execute("CREATE INDEX ix_folders_path_trgm ON folders USING gin "
                       "(path gin_trgm_ops)")
    elif name in ("mysql", "mariadb"):
        for stmt in [*_mysql_terms("photos", PHOTO_TEXT),
                     *_mysql_terms("folders", FOLDER_TEXT)]:
            op.execute(stmt)
        # Existing rows: an update that changes nothing, with the flag that makes the
        # trigger write their terms anyway.
        op.execute("SET @lightbox_text_rebuild = 1")
        try:
            op.execute("UPDATE photos SET name = name")
            op.execute("UPDATE folders SET path = path")
        finally:
            op.execute("SET @lightbox_text_rebuild = NULL")


def downgrade() -> None:
    bind = op.get_bind()
    name = bind.dialect.name
    if name == "sqlite":
        for table in ("photos", "folders"):
            for suffix in ("ai", "ad", "au"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_text_{suffix}")
            op.execute(f"DROP TABLE IF EXISTS {table}_text")
    elif name == "postgresql":
        op.execute("DROP INDEX IF EXISTS ix_photos_text_trgm")
        op.execute("DROP INDEX IF EXISTS ix_folders_path_trgm")
    elif name in ("mysql", "mariadb"):
        for table in ("photos", "folders"):
            for suffix in ("ai", "au"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_terms_{suffix}")
            op.execute(f"DROP TABLE IF EXISTS {table}_terms")
