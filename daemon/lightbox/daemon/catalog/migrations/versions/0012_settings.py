"""settings: runtime settings, their global revision and the audit log

Revision ID: 0012_settings
Revises: 0011_trust_scan
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0012_settings"
down_revision: str | None = "0011_trust_scan"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "settings",
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("value", sa.JSON, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("revision", sa.BigInteger, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("key", name="pk_settings"),
    )
    op.create_table(
        "settings_revision",
        sa.Column("id", sa.SmallInteger, nullable=False, autoincrement=False),
        sa.Column("revision", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_settings_revision"),
    )
    op.bulk_insert(sa.table("settings_revision", sa.column("id", sa.SmallInteger),
                            sa.column("revision", sa.BigInteger)), [{"id": 1, "revision": 0}])
    op.create_table(
        "settings_audit",
        sa.Column("id", Id, nullable=False, autoincrement=True),
        sa.Column("revision", sa.BigInteger, nullable=False),
        sa.Column("at", Timestamp, nullable=False),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("actor", sa.JSON, nullable=False),
        sa.Column("changes", sa.JSON, nullable=False),
        sa.Column("result", sa.String(40), nullable=False),
        sa.Column("detail", sa.JSON, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_settings_audit"),
    )
    op.create_index("ix_settings_audit_revision", "settings_audit", ["revision"])
    op.create_table(
        "settings_audit_keys",
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("audit_id", Id, nullable=False, autoincrement=False),
        sa.PrimaryKeyConstraint("key", "audit_id", name="pk_settings_audit_keys"),
        sa.ForeignKeyConstraint(["audit_id"], ["settings_audit.id"], ondelete="CASCADE",
                                name="fk_settings_audit_keys_audit_id_settings_audit"),
    )


def downgrade() -> None:
    op.drop_table("settings_audit_keys")
    op.drop_index("ix_settings_audit_revision", table_name="settings_audit")
    op.drop_table("settings_audit")
    op.drop_table("settings_revision")
    op.drop_table("settings")
