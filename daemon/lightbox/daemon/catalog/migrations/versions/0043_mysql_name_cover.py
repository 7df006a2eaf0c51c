"""MariaDB/MySQL: the name order with each photo's folder and status, from one index

A place's photos (more than ``textindex.DENSE``, in folders spread over the library) make a
page sorted by name fastest by walking the name order and keeping the photos of its folders:
a page after a few thousand rows. InnoDB's ``(name_key)`` index lacks the folder and the
status, so each row walked cost a primary-key lookup, and MariaDB preferred fetching all
25,000 photos of the place's folders and sorting them (``sydney`` at 1,000,000 photos: a
47 ms sort of 25,000 entries, 169 ms in all under load 9). ``ix_photos_name_cover``
(name_key, id, folder_id, status) is that walk from the index alone, in the ``(name_key,
id)`` order of a page; ``textindex`` asks for it on those streams (``Arm.walk_index``). It
lives beside ``tables.metadata``, like 0027's index. SQLite and PostgreSQL are left alone.

Revision ID: 0043_mysql_name_cover
Revises: 0042_mysql_grams
Create Date: 2026-12-01
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0043_mysql_name_cover"
down_revision: str | None = "0042_mysql_grams"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_photos_name_cover"


def upgrade() -> None:
    if op.get_bind().dialect.name in ("mysql", "mariadb"):
        op.execute(f"CREATE INDEX {INDEX} ON photos (name_key, id, folder_id, status)")


def downgrade() -> None:
    if op.get_bind().dialect.name in ("mysql", "mariadb"):
        op.execute(f"DROP INDEX {INDEX} ON photos")
