"""backup_targets.clean_mark: the catalog's fingerprint when a run left nothing lacking

A run with nothing new compares it with the catalog's fingerprint now and, when they are
equal (and the mark is recent), skips the anti-join of the photos against the manifest.

Revision ID: 0032_backup_clean_mark
Revises: 0027_mysql_cover
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0032_backup_clean_mark"
down_revision: str | None = "0027_mysql_cover"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, no default: every engine adds it in place.
    op.add_column("backup_targets", sa.Column("clean_mark", sa.JSON, nullable=True))


def downgrade() -> None:
    op.drop_column("backup_targets", "clean_mark")
