"""indexes for library-wide sorts by name and for the duplicate cache's fingerprint

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_photos_name", "photos", ["name"])
    op.create_index("ix_photos_status_indexed_at", "photos", ["status", "indexed_at"])


def downgrade() -> None:
    op.drop_index("ix_photos_status_indexed_at", table_name="photos")
    op.drop_index("ix_photos_name", table_name="photos")
