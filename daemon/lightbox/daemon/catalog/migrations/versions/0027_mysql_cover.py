"""MariaDB/MySQL: a set of folders' ok photos with their sort keys from an index alone

The MariaDB side of 0026_pg_cover: a place's or a month's photos (its folders') are found
by ``folder_id IN (...) AND status = 'ok'`` and sorted by ``name_key``; InnoDB's
``(folder_id, name_key)`` index lacks the status, so each of 25,000 photos cost a primary
key lookup. ``ix_photos_folder_cover`` (folder_id, status, name_key) holds all of it (InnoDB
secondary indexes carry the primary key, ``id``). It lives beside ``tables.metadata``, like
the text index's objects (``textindex.OBJECTS``). SQLite and PostgreSQL are left alone.

Revision ID: 0027_mysql_cover
Revises: 0026_pg_cover
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0027_mysql_cover"
down_revision: str | None = "0026_pg_cover"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_photos_folder_cover"


def upgrade() -> None:
    if op.get_bind().dialect.name in ("mysql", "mariadb"):
        op.execute(f"CREATE INDEX {INDEX} ON photos (folder_id, status, name_key)")


def downgrade() -> None:
    if op.get_bind().dialect.name in ("mysql", "mariadb"):
        op.execute(f"DROP INDEX {INDEX} ON photos")
