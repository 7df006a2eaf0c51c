"""PostgreSQL: the photos of a set of folders in name order from the index alone

A place or a month is its folders' photos (25,000 in 500 folders for a place at 1,000,000
photos); a page sorted by name reads each folder's photos through ``(folder_id, name_key)``
and keeps the first 200. With the photos' ``id`` and ``status`` in that index (INCLUDE) the
read is an index-only scan, without visiting 25,000 heap tuples (issue 13: a place's
search cost PostgreSQL 60 ms of CPU, now a few). SQLite and InnoDB indexes hold the row's
key already and are left as they are.

Revision ID: 0026_pg_cover
Revises: 0025_sha_counts
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0026_pg_cover"
down_revision: str | None = "0025_sha_counts"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_photos_folder_id_name_key"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index(INDEX, table_name="photos")
        op.create_index(INDEX, "photos", ["folder_id", "name_key"],
                        postgresql_include=["id", "status"])


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.drop_index(INDEX, table_name="photos")
        op.create_index(INDEX, "photos", ["folder_id", "name_key"])
