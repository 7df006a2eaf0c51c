"""text search at scale: camera and lens values in name order, names alone in the text index

A common word is answered from sorted streams instead of a walk of the whole library:

- indexes on (make, name_key), (model, name_key) and (lens, name_key): the photos of one
  camera or lens value in name order (a page is the first rows of each matching value,
  merged), and the columns' few distinct values found by a skip scan of each index;
- the substring index of photo rows holds the name alone: camera and lens words are found
  from those distinct values, so their trigrams no longer crowd the index (on SQLite a
  name-only lookup had to read the position lists of every camera's trigrams: 15 ms for
  a word in no name at all). SQLite: ``photos_text`` recreated over ``name``; MariaDB/MySQL:
  ``photos_terms`` rebuilt from the name; PostgreSQL: the pg_trgm index on ``name`` only.

Revision ID: 0016_perf
Revises: 0013_s3
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016_perf"
down_revision: str | None = "0013_s3"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

VALUE_COLUMNS = ("make", "model", "lens")
OLD_TEXT = ("name", "make", "model", "lens")
NEW_TEXT = ("name",)


def _sqlite_text(columns: Sequence[str]) -> list[str]:
    cols = ", ".join(columns)
    new = ", ".join(f"new.{c}" for c in columns)
    old = ", ".join(f"old.{c}" for c in columns)
    return [
        "DROP TRIGGER IF EXISTS photos_text_ai",
        "DROP TRIGGER IF EXISTS photos_text_ad",
        "DROP TRIGGER IF EXISTS photos_text_au",
        "DROP TABLE IF EXISTS photos_text",
        f"CREATE VIRTUAL TABLE photos_text USING fts5({cols}, content='photos', "
        "content_rowid='id', tokenize='trigram', detail='full', columnsize=0)",
        f"CREATE TRIGGER photos_text_ai AFTER INSERT ON photos BEGIN "
        f"INSERT INTO photos_text(rowid, {cols}) VALUES (new.id, {new}); END",
        f"CREATE TRIGGER photos_text_ad AFTER DELETE ON photos BEGIN "
        f"INSERT INTO photos_text(photos_text, rowid, {cols}) VALUES ('delete', old.id, {old}); "
        "END",
        f"CREATE TRIGGER photos_text_au AFTER UPDATE OF {cols} ON photos BEGIN "
        f"INSERT INTO photos_text(photos_text, rowid, {cols}) VALUES ('delete', old.id, {old}); "
        f"INSERT INTO photos_text(rowid, {cols}) VALUES (new.id, {new}); END",
        "INSERT INTO photos_text(photos_text) VALUES ('rebuild')",
    ]


def _mysql_terms(columns: Sequence[str]) -> list[str]:
    """The triggers of ``photos_terms`` (see 0008_text_index) over ``columns``."""
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
            f"REPLACE INTO photos_terms (id, terms) VALUES (NEW.id, t); END IF; END")

    return [
        "DROP TRIGGER IF EXISTS photos_terms_ai",
        "DROP TRIGGER IF EXISTS photos_terms_au",
        f"CREATE TRIGGER photos_terms_ai AFTER INSERT ON photos FOR EACH ROW {body('TRUE')}",
        f"CREATE TRIGGER photos_terms_au AFTER UPDATE ON photos FOR EACH ROW "
        f"{body(f'{changed} OR @lightbox_text_rebuild')}",
    ]


def _text(columns: Sequence[str]) -> None:
    bind = op.get_bind()
    name = bind.dialect.name
    if name == "sqlite":
        if bind.execute(sa.text(
                "SELECT count(*) FROM sqlite_master WHERE name = 'photos_text'")).scalar():
            for stmt in _sqlite_text(columns):
                op.execute(stmt)
    elif name == "postgresql":
        if bind.execute(sa.text(
                "SELECT count(*) FROM pg_indexes WHERE indexname = 'ix_photos_text_trgm'"
        )).scalar():
            op.execute("DROP INDEX ix_photos_text_trgm")
            cols = ", ".join(f"{c} gin_trgm_ops" for c in columns)
            op.execute(f"CREATE INDEX ix_photos_text_trgm ON photos USING gin ({cols})")
    elif name in ("mysql", "mariadb") and bind.execute(sa.text(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = "
            "DATABASE() AND table_name = 'photos_terms'")).scalar():
        for stmt in _mysql_terms(columns):
            op.execute(stmt)
        op.execute("SET @lightbox_text_rebuild = 1")
        try:
            op.execute("UPDATE photos SET name = name")
        finally:
            op.execute("SET @lightbox_text_rebuild = NULL")


def upgrade() -> None:
    for col in VALUE_COLUMNS:
        op.create_index(f"ix_photos_{col}_name_key", "photos", [col, "name_key"])
    bind = op.get_bind()
    if bind.dialect.name == "sqlite" and bind.execute(sa.text(
            "SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'")).scalar():
        # A catalog with planner statistics gets them for the new indexes too (each an
        # index scan), or SQLite would guess their selectivity next to measured ones.
        for col in VALUE_COLUMNS:
            op.execute(f"ANALYZE ix_photos_{col}_name_key")
    _text(NEW_TEXT)


def downgrade() -> None:
    _text(OLD_TEXT)
    for col in VALUE_COLUMNS:
        op.drop_index(f"ix_photos_{col}_name_key", table_name="photos")
