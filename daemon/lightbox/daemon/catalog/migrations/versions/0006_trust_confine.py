"""photos.device, and environment errors of older versions made pending again

``device`` is the st_dev of the file when it was last read: with (inode, size, mtime_ns) it
is what a read of the photo is checked against (``media.confine``).

Versions before this one recorded some failures that were the machine's, not the file's,
as lasting errors ("cannot write thumbnail (No space left on device)", a file that could not
be opened for a moment). Those rows go back to ``pending``, so the indexer reads them again
and classifies what happens (``library.failures``). Their text is all there is to go by:
those versions stored no reason.

Revision ID: 0006_trust_confine
Revises: 0009_database
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_trust_confine"
down_revision: str | None = "0009_database"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ENVIRONMENT = ("cannot write thumbnail (%", "cannot open file (%", "cannot read file (%")


def upgrade() -> None:
    op.add_column("photos", sa.Column("device", sa.BigInteger, nullable=True))
    photos = sa.table("photos", sa.column("status", sa.String), sa.column("error", sa.Text))
    op.execute(photos.update()
               .where(photos.c.status == "error",
                      sa.or_(*(photos.c.error.like(p) for p in _ENVIRONMENT)))
               .values(status="pending", error=None))


def downgrade() -> None:
    with op.batch_alter_table("photos") as batch:
        batch.drop_column("device")
