"""database: doubles on MySQL, job affinity, leases, index claims, the event feed

Revision ID: 0009_database
Revises: 0004
Create Date: 2026-11-22

- photos.exposure_time, f_number and focal_length become DOUBLE on MySQL/MariaDB (FLOAT
  there is single precision; the other engines already store doubles);
- jobs.affinity names the daemon (by lease) that may run a job;
- leases, index_claims and event_feed let several daemons share one catalog.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0009_database"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
REALS = ("exposure_time", "f_number", "focal_length")


def upgrade() -> None:
    if op.get_bind().dialect.name in ("mysql", "mariadb"):
        for column in REALS:
            op.alter_column("photos", column, type_=mysql.DOUBLE(),
                            existing_type=mysql.FLOAT(), existing_nullable=True)
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("affinity", sa.String(100), nullable=True))
    op.create_table(
        "leases",
        sa.Column("key", sa.String(100), nullable=False),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("acquired_at", Timestamp, nullable=False),
        sa.Column("heartbeat_at", Timestamp, nullable=False),
        sa.Column("expires_at", Timestamp, nullable=False),
        sa.Column("info", sa.JSON, nullable=True),
        sa.PrimaryKeyConstraint("key", name="pk_leases"),
    )
    op.create_index("ix_leases_owner", "leases", ["owner"])
    op.create_table(
        "index_claims",
        sa.Column("photo_id", Id, nullable=False, autoincrement=False),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("claimed_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("photo_id", name="pk_index_claims"),
        sa.ForeignKeyConstraint(["photo_id"], ["photos.id"], ondelete="CASCADE",
                                name="fk_index_claims_photo_id_photos"),
    )
    op.create_index("ix_index_claims_owner", "index_claims", ["owner"])
    op.create_table(
        "event_feed",
        sa.Column("id", Id, nullable=False, autoincrement=True),
        sa.Column("origin", sa.String(200), nullable=False),
        sa.Column("topic", sa.String(40), nullable=False),
        sa.Column("type", sa.String(60), nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_event_feed"),
    )
    op.create_index("ix_event_feed_created_at", "event_feed", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_event_feed_created_at", table_name="event_feed")
    op.drop_table("event_feed")
    op.drop_index("ix_index_claims_owner", table_name="index_claims")
    op.drop_table("index_claims")
    op.drop_index("ix_leases_owner", table_name="leases")
    op.drop_table("leases")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("affinity")
    if op.get_bind().dialect.name in ("mysql", "mariadb"):
        for column in REALS:
            op.alter_column("photos", column, type_=mysql.FLOAT(),
                            existing_type=mysql.DOUBLE(), existing_nullable=True)
