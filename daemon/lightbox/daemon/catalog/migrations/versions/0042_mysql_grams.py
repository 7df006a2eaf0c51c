"""MariaDB/MySQL: trigrams in B-tree tables instead of FULLTEXT words

Replaces ``photos_terms`` and ``folders_terms`` (0008_text_index, 0016_perf: each row's
trigrams as FULLTEXT words) with ``photos_grams`` and ``folders_grams``: one row
``(id, gram)`` per distinct trigram of the lower-cased photo name or folder path, primary
key ``(id, gram)`` (a row's trigrams together: the triggers replace them, the foreign key
cascades deletes) and an index ``(gram, id)`` (the rows holding one trigram, in id order).

Why: InnoDB FULLTEXT reads the whole document list of every term of a query, so a word's
lookup cost what its commonest trigram costs (``DSC_5305`` 47 ms, a place's folders, a
month's, at 1,000,000 photos), and it keeps deleted documents until ``OPTIMIZE``. A join of
a word's trigram lists through the B-tree is driven by the rarest list (the optimizer's
index dives estimate each one) and probes the others by primary key for the survivors
only: a word no name holds costs one empty index range.

The trigrams are the bytes of each distinct three-character substring of ``LOWER(name)``
(``name`` is ``utf8mb4_bin``: the very ``lower()`` the search's LIKE applies) and of the
path converted to ``utf8mb4_bin``; the search asks for the trigrams of its word as it
lower-cases it for the LIKE, so the index offers a superset of what the LIKE accepts.
Triggers keep them current whatever writes the rows (the scanner, the indexer, a copy from
another engine); deletes, also those cascading from folders and sources (which fire no
trigger), go through the foreign key. ``photos_grams_seq`` holds the positions 1..65535
(a TEXT path has at most that many characters), for the set-based statements.

MySQL DDL is not transactional: every step can run again after a failure (``IF EXISTS``,
tables rebuilt whole, triggers dropped before they are made). SQLite and PostgreSQL are
left alone.

Revision ID: 0042_mysql_grams
Revises: 0032_backup_clean_mark
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0042_mysql_grams"
down_revision: str | None = "0032_backup_clean_mark"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SEQ = "photos_grams_seq"
MAX_POS = 65535
TEXT = {"photos": "name", "folders": "path"}


def lowered(expr: str) -> str:
    """The lower-cased text whose trigrams are indexed, compared byte for byte (LOCATE
    below must find an accented trigram only where it is, not where its unaccented twin
    is, as a case- and accent-insensitive collation would)."""
    return f"CONVERT(LOWER({expr}) USING utf8mb4) COLLATE utf8mb4_bin"


def grams_select(id_expr: str, text: str, where: str = "") -> str:
    """SELECT (id, gram) for each distinct trigram of ``text``: positions whose trigram
    first occurs there (LOCATE finds the first occurrence), so no pair repeats."""
    gram = f"SUBSTRING({text}, n.i, 3)"
    return (f"SELECT {id_expr}, CAST({gram} AS BINARY) FROM {SEQ} n "
            f"WHERE n.i <= CHAR_LENGTH({text}) - 2 AND LOCATE({gram}, {text}) = n.i"
            + (f" AND {where}" if where else ""))


def _triggers(table: str) -> list[str]:
    col = TEXT[table]
    grams = f"{table}_grams"
    fill = f"INSERT INTO {grams} (id, gram) {grams_select('NEW.id', 's')}; "
    declare = ("DECLARE s TEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin DEFAULT "
               f"{lowered(f'NEW.{col}')}; ")
    return [
        f"DROP TRIGGER IF EXISTS {grams}_ai",
        f"DROP TRIGGER IF EXISTS {grams}_au",
        f"CREATE TRIGGER {grams}_ai AFTER INSERT ON {table} FOR EACH ROW "
        f"BEGIN {declare}{fill}END",
        # An update that changes neither the text nor the id leaves the trigrams alone,
        # unless the session asks for a rebuild (textindex.rebuild).
        f"CREATE TRIGGER {grams}_au AFTER UPDATE ON {table} FOR EACH ROW BEGIN {declare}"
        f"IF NOT (NEW.{col} <=> OLD.{col}) OR NEW.id <> OLD.id OR @lightbox_text_rebuild "
        f"THEN DELETE FROM {grams} WHERE id = OLD.id; {fill}END IF; END",
    ]


def _positions() -> None:
    op.execute(f"DROP TABLE IF EXISTS {SEQ}")
    op.execute(f"CREATE TABLE {SEQ} (i INT NOT NULL PRIMARY KEY) ENGINE=InnoDB")
    digits = " UNION ALL ".join(f"SELECT {d} AS d" for d in range(10))
    parts = [f"({digits}) d{k}" for k in range(5)]
    value = " + ".join(f"d{k}.d * {10 ** k}" for k in range(5)) + " + 1"
    op.execute(f"INSERT INTO {SEQ} (i) SELECT v FROM (SELECT {value} AS v FROM "
               f"{' CROSS JOIN '.join(parts)}) t WHERE v <= {MAX_POS}")


def _build(table: str) -> None:
    """The trigram table of ``table``, filled from its rows in one statement (the index on
    the trigrams made afterwards: one sort, not ten million random inserts), then its
    triggers. The daemon migrates before it writes, so no row is written in between."""
    grams = f"{table}_grams"
    op.execute(f"DROP TABLE IF EXISTS {grams}")
    op.execute(
        f"CREATE TABLE {grams} (id BIGINT NOT NULL, gram VARBINARY(12) NOT NULL, "
        f"PRIMARY KEY (id, gram), CONSTRAINT fk_{grams}_id FOREIGN KEY (id) "
        f"REFERENCES {table} (id) ON DELETE CASCADE) ENGINE=InnoDB")
    text = lowered(f"x.{TEXT[table]}")
    # STRAIGHT_JOIN: each row, then its positions (a range of the sequence's key); left to
    # itself MariaDB joined every position with a buffered scan of all the rows.
    op.execute(f"INSERT INTO {grams} (id, gram) SELECT x.id, CAST(SUBSTRING({text}, n.i, 3) "
               f"AS BINARY) FROM {table} x STRAIGHT_JOIN {SEQ} n ON n.i <= CHAR_LENGTH({text}) "
               f"- 2 WHERE LOCATE(SUBSTRING({text}, n.i, 3), {text}) = n.i")
    op.execute(f"CREATE INDEX ix_{grams}_gram ON {grams} (gram, id)")
    for stmt in _triggers(table):
        op.execute(stmt)


def _drop_terms() -> None:
    for table in TEXT:
        for suffix in ("ai", "au"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_terms_{suffix}")
        op.execute(f"DROP TABLE IF EXISTS {table}_terms")


def _has_text_index() -> bool:
    """Whether 0008 made the text index here (it always does; a catalog whose FULLTEXT
    tables an administrator dropped keeps searching by scan, as before)."""
    return bool(op.get_bind().execute(sa.text(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = DATABASE() "
        "AND table_name IN ('photos_terms', 'photos_grams')")).scalar())


def upgrade() -> None:
    if op.get_bind().dialect.name not in ("mysql", "mariadb") or not _has_text_index():
        return
    # Old triggers first: from here on no write pays for the FULLTEXT index.
    _drop_terms()
    _positions()
    for table in TEXT:
        _build(table)


# -- downgrade: 0016_perf's FULLTEXT side tables (photos: the name; folders: the path) ------
def _terms_triggers(table: str) -> list[str]:
    col = TEXT[table]
    terms = f"{table}_terms"
    text = f"LOWER(CONVERT(CONCAT_WS('\\n', NEW.{col}) USING utf8mb4))"

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
        f"CREATE TRIGGER {terms}_au AFTER UPDATE ON {table} FOR EACH ROW "
        f"{body(f'NOT (NEW.{col} <=> OLD.{col}) OR @lightbox_text_rebuild')}",
    ]


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name not in ("mysql", "mariadb") or not _has_text_index():
        return
    for table in TEXT:
        for suffix in ("ai", "au"):
            op.execute(f"DROP TRIGGER IF EXISTS {table}_grams_{suffix}")
        op.execute(f"DROP TABLE IF EXISTS {table}_grams")
    op.execute(f"DROP TABLE IF EXISTS {SEQ}")
    _drop_terms()
    for table in TEXT:
        for stmt in _terms_triggers(table):
            op.execute(stmt)
    op.execute("SET @lightbox_text_rebuild = 1")
    try:
        for table, col in TEXT.items():
            op.execute(f"UPDATE {table} SET {col} = {col}")
    finally:
        op.execute("SET @lightbox_text_rebuild = NULL")
