"""SQLite: text search's folder streams and name walks from their indexes alone

A search page sorted by name merges streams (``textindex.arms``). Two of them read many
photos for a page of 200: a month's or an event's folders' photos, fetched and sorted
(5,000-8,000 of them), and a common place's photos, found by walking the name order and
keeping those of its folders (about 8,000 entries visited). SQLite's ``(folder_id,
name_key)`` and ``(name_key)`` indexes lack what those streams test (``status``; the
walk's ``folder_id``), so each photo cost a lookup of its table row, about 2 us each on a
catalog of 1,000,000 photos (``bruges beach``: 8,350 rows read, 17-23 ms of the query; a
place's walk 8-10 ms). With these two indexes the streams are index-only (3-4 and 1.5 ms):

- ``ix_photos_folder_cover`` (folder_id, name_key, status): a superset of ``(folder_id,
  name_key)`` in the same order, so the listing's plans that used that index can use this
  one the same way;
- ``ix_photos_name_cover`` (name_key, id, folder_id, status): ``id`` second so that the
  index's order is the page's ``(name_key, id)`` (a trailing rowid would come after the
  folder and the status).

They live beside ``tables.metadata``, under the names of MariaDB's indexes made for the
same streams (0027, 0043; their columns differ by engine), which the schema comparison
leaves out (``textindex.OBJECTS``). PostgreSQL (0044's INCLUDE) and MariaDB are left alone.
A catalog with planner statistics gets them for the new indexes too (as in 0016).

Revision ID: 0045_sqlite_covers
Revises: 0044_pg_name_cover
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0045_sqlite_covers"
down_revision: str | None = "0044_pg_name_cover"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COVERS = {
    "ix_photos_folder_cover": ["folder_id", "name_key", "status"],
    "ix_photos_name_cover": ["name_key", "id", "folder_id", "status"],
}


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        return
    for name, columns in COVERS.items():
        op.execute(f"CREATE INDEX IF NOT EXISTS {name} ON photos ({', '.join(columns)})")
    if bind.execute(sa.text(
            "SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'")).scalar():
        for name in COVERS:
            op.execute(f"ANALYZE {name}")


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for name in COVERS:
        op.execute(f"DROP INDEX IF EXISTS {name}")
