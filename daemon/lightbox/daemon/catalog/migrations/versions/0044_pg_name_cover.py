"""PostgreSQL: the name-ordered walks of text search from their indexes alone

A search page sorted by name merges streams (``textindex.arms``); two kinds are *walked*
in name order rather than fetched and sorted: a common place's photos (more than
``textindex.DENSE``, its folders spread over the library: about 8,000 entries of
``name_key`` for a page of 200) and one camera or lens value's photos (``(make|model|lens,
name_key)``: 201 entries). Each entry visited cost a heap fetch for the columns the
stream tests (``folder_id``, ``status``) and returns (``id``), a random read in a table
far larger than shared buffers (issue 13: a place's page 66 ms on a quiet machine). With
those columns in the indexes (INCLUDE) the walks are index-only scans. SQLite and InnoDB
indexes hold the row's key already and are left as they are.

Revision ID: 0044_pg_name_cover
Revises: 0043_mysql_name_cover
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0044_pg_name_cover"
down_revision: str | None = "0043_mysql_name_cover"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# index name -> (columns, included columns)
COVERED = {
    "ix_photos_name_key": (["name_key"], ["id", "folder_id", "status"]),
    "ix_photos_make_name_key": (["make", "name_key"], ["id", "status"]),
    "ix_photos_model_name_key": (["model", "name_key"], ["id", "status"]),
    "ix_photos_lens_name_key": (["lens", "name_key"], ["id", "status"]),
}


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name, (columns, include) in COVERED.items():
            op.drop_index(name, table_name="photos")
            op.create_index(name, "photos", columns, postgresql_include=include)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for name, (columns, _include) in COVERED.items():
            op.drop_index(name, table_name="photos")
            op.create_index(name, "photos", columns)
