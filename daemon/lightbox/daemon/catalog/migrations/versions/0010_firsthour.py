"""photos.name_key: listing by name in natural, case-insensitive order on every engine

Revision ID: 0010_firsthour
Revises: 0008_text_index
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from lightbox.daemon.catalog.types import SortKey, natural_key

revision: str = "0010_firsthour"
down_revision: str | None = "0008_text_index"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 5000


def upgrade() -> None:
    # NOT NULL with a default: every engine adds it in place (SQLite without a table copy).
    op.add_column("photos", sa.Column("name_key", SortKey(), nullable=False,
                                      server_default=""))
    conn = op.get_bind()
    photos = sa.table("photos", sa.column("id", sa.BigInteger), sa.column("name", sa.String),
                      sa.column("name_key", sa.String))
    last = 0
    while True:  # keyset batches: bounded memory at any catalog size
        rows = conn.execute(sa.select(photos.c.id, photos.c.name).where(photos.c.id > last)
                            .order_by(photos.c.id).limit(BATCH)).all()
        if not rows:
            break
        conn.execute(photos.update().where(photos.c.id == sa.bindparam("pid"))
                     .values(name_key=sa.bindparam("key")),
                     [{"pid": r.id, "key": natural_key(r.name)} for r in rows])
        last = rows[-1].id
    op.create_index("ix_photos_folder_id_name_key", "photos", ["folder_id", "name_key"])
    op.create_index("ix_photos_name_key", "photos", ["name_key"])


def downgrade() -> None:
    op.drop_index("ix_photos_name_key", table_name="photos")
    op.drop_index("ix_photos_folder_id_name_key", table_name="photos")
    op.drop_column("photos", "name_key")
