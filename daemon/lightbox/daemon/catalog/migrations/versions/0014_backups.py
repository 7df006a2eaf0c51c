"""backups: targets, their manifests (what each holds, by sha256) and the history of runs

Revision ID: 0014_backups
Revises: 0010_firsthour
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0014_backups"
down_revision: str | None = "0010_firsthour"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
Name = sa.String(200).with_variant(
    mysql.VARCHAR(200, charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "backup_targets",
        sa.Column("id", Id, nullable=False, autoincrement=True),
        sa.Column("name", Name, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("path", sa.Text, nullable=True),
        sa.Column("marker", sa.String(64), nullable=False),
        sa.Column("config", sa.JSON, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("next_run_at", Timestamp, nullable=True),
        sa.Column("next_verify_at", Timestamp, nullable=True),
        sa.Column("lock_owner", sa.String(200), nullable=True),
        sa.Column("lock_at", Timestamp, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_backup_targets"),
        sa.CheckConstraint("kind IN ('local', 's3')", name="ck_backup_targets_kind"),
        sa.UniqueConstraint("name", name="uq_backup_targets_name"),
    )
    op.create_table(
        "backup_manifest",
        sa.Column("id", Id, nullable=False, autoincrement=True),
        sa.Column("target_id", Id, nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("path_hash", sa.String(40), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("copied_at", Timestamp, nullable=False),
        sa.Column("verified_at", Timestamp, nullable=True),
        sa.Column("result", sa.String(16), nullable=False, server_default="ok"),
        sa.Column("orphaned_at", Timestamp, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_backup_manifest"),
        sa.ForeignKeyConstraint(["target_id"], ["backup_targets.id"], ondelete="CASCADE",
                                name="fk_backup_manifest_target_id_backup_targets"),
        sa.UniqueConstraint("target_id", "sha256", name="uq_backup_manifest_target_id_sha256"),
        sa.UniqueConstraint("target_id", "path_hash",
                            name="uq_backup_manifest_target_id_path_hash"),
    )
    op.create_index("ix_backup_manifest_target_id_verified_at", "backup_manifest",
                    ["target_id", "verified_at"])
    op.create_table(
        "backup_runs",
        sa.Column("id", Id, nullable=False, autoincrement=True),
        sa.Column("target_id", Id, nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("job_id", sa.BigInteger, nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("started_at", Timestamp, nullable=False),
        sa.Column("finished_at", Timestamp, nullable=True),
        sa.Column("files", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("bytes", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("errors", sa.Integer, nullable=False, server_default="0"),
        sa.Column("result", sa.JSON, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_backup_runs"),
        sa.ForeignKeyConstraint(["target_id"], ["backup_targets.id"], ondelete="CASCADE",
                                name="fk_backup_runs_target_id_backup_targets"),
    )
    op.create_index("ix_backup_runs_target_id_kind_id", "backup_runs",
                    ["target_id", "kind", "id"])


def downgrade() -> None:
    op.drop_index("ix_backup_runs_target_id_kind_id", table_name="backup_runs")
    op.drop_table("backup_runs")
    op.drop_index("ix_backup_manifest_target_id_verified_at", table_name="backup_manifest")
    op.drop_table("backup_manifest")
    op.drop_table("backup_targets")
