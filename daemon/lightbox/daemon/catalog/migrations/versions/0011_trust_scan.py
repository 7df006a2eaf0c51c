"""sources: a local root's identity (root inode, mount id and device) to tell it from what an
unmount leaves at its path

Revision ID: 0011_trust_scan
Revises: 0014_backups
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_trust_scan"
down_revision: str | None = "0014_backups"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable: roots added before this revision get their identity at their next check
    # (trust on first use, as ``device`` always was).
    op.add_column("sources", sa.Column("root_inode", sa.BigInteger, nullable=True))
    op.add_column("sources", sa.Column("mount_id", sa.BigInteger, nullable=True))
    op.add_column("sources", sa.Column("mount_device", sa.String(32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sources") as batch:
        batch.drop_column("mount_device")
        batch.drop_column("mount_id")
        batch.drop_column("root_inode")
