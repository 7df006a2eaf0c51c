"""S3 sources: an object's ETag on its photo row, and the sources' secrets in their own table

Revision ID: 0013_s3
Revises: 0012_settings
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from lightbox.daemon.catalog.types import Id, Timestamp

revision: str = "0013_s3"
down_revision: str | None = "0012_settings"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, no default: every engine adds it in place. Local photos keep NULL.
    op.add_column("photos", sa.Column("etag", sa.String(128), nullable=True))
    op.create_table(
        "source_secrets",
        sa.Column("source_id", Id, sa.ForeignKey("sources.id", ondelete="CASCADE",
                                                 name="fk_source_secrets_source_id_sources"),
                  nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("fingerprint", sa.String(16), nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("source_id", "name", name="pk_source_secrets"),
    )


def downgrade() -> None:
    op.drop_table("source_secrets")
    op.drop_column("photos", "etag")
