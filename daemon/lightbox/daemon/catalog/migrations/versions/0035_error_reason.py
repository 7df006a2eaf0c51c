"""a photo's error reason: why it is in ``error``, machine-readable

``photos.error_reason``: the content's reason (corrupt, unsupported, bomb, ...) or, for a
bucket object whose reads kept failing and were given up on, the transfer's
(server_error, throttled, timeout). Rows already in error keep NULL until read again.

Revision ID: 0035_error_reason
Revises: 0031_backup_antijoin
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0035_error_reason"
down_revision: str | None = "0031_backup_antijoin"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, no default: every engine adds it in place.
    op.add_column("photos", sa.Column("error_reason", sa.String(32), nullable=True))


def downgrade() -> None:
    op.drop_column("photos", "error_reason")
