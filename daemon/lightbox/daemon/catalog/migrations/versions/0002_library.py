"""library: sources (roots, later buckets), the folder tree and photos

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def Name(length: int) -> sa.types.TypeEngine[str]:
    return sa.String(length).with_variant(
        mysql.VARCHAR(length, charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "sources",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("name", Name(200), nullable=False),
        sa.Column("path", sa.Text, nullable=True),
        sa.Column("config", sa.JSON, nullable=True),
        sa.Column("device", sa.BigInteger, nullable=True),
        sa.Column("online", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("status", sa.Text, nullable=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("scanned_at", Timestamp, nullable=True),
        sa.CheckConstraint("kind IN ('local', 's3')", name="ck_sources_kind"),
        sa.UniqueConstraint("name", name="uq_sources_name"),
    )
    op.create_table(
        "folders",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("source_id", Id, sa.ForeignKey("sources.id", ondelete="CASCADE",
                                                 name="fk_folders_source_id_sources"),
                  nullable=False),
        sa.Column("parent_id", Id, sa.ForeignKey("folders.id", ondelete="CASCADE",
                                                 name="fk_folders_parent_id_folders"),
                  nullable=True),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("path_hash", sa.String(40), nullable=False),
        sa.Column("name", Name(255), nullable=False),
        sa.Column("depth", sa.Integer, nullable=False),
        sa.Column("photo_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("folder_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("total_count", sa.Integer, nullable=False, server_default="0"),
        sa.Column("bytes", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("missing_since", Timestamp, nullable=True),
        sa.Column("first_seen", Timestamp, nullable=False),
        sa.UniqueConstraint("source_id", "path_hash", name="uq_folders_source_id_path_hash"),
    )
    op.create_index("ix_folders_parent_id_name", "folders", ["parent_id", "name"])
    op.create_table(
        "photos",
        sa.Column("id", Id, primary_key=True, autoincrement=True),
        sa.Column("source_id", Id, sa.ForeignKey("sources.id", ondelete="CASCADE",
                                                 name="fk_photos_source_id_sources"),
                  nullable=False),
        sa.Column("folder_id", Id, sa.ForeignKey("folders.id", ondelete="CASCADE",
                                                 name="fk_photos_folder_id_folders"),
                  nullable=False),
        sa.Column("name", Name(255), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("mtime_ns", sa.BigInteger, nullable=False),
        sa.Column("inode", sa.BigInteger, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("sha256", sa.String(64), nullable=True),
        sa.Column("mime", sa.String(64), nullable=True),
        sa.Column("format", sa.String(16), nullable=True),
        sa.Column("width", sa.Integer, nullable=True),
        sa.Column("height", sa.Integer, nullable=True),
        sa.Column("orientation", sa.SmallInteger, nullable=True),
        sa.Column("taken_at", Timestamp, nullable=True),
        sa.Column("taken_offset", sa.SmallInteger, nullable=True),
        sa.Column("make", sa.String(100), nullable=True),
        sa.Column("model", sa.String(100), nullable=True),
        sa.Column("lens", sa.String(200), nullable=True),
        sa.Column("exposure_time", sa.Float, nullable=True),
        sa.Column("f_number", sa.Float, nullable=True),
        sa.Column("iso", sa.Integer, nullable=True),
        sa.Column("focal_length", sa.Float, nullable=True),
        sa.Column("gps_lat", sa.Double, nullable=True),
        sa.Column("gps_lon", sa.Double, nullable=True),
        sa.Column("gps_alt", sa.Double, nullable=True),
        sa.Column("phash", sa.BigInteger, nullable=True),
        sa.Column("thumbs", sa.SmallInteger, nullable=False, server_default="0"),
        sa.Column("first_seen", Timestamp, nullable=False),
        sa.Column("indexed_at", Timestamp, nullable=True),
        sa.Column("missing_since", Timestamp, nullable=True),
        sa.CheckConstraint("status IN ('pending', 'ok', 'error', 'missing')",
                           name="ck_photos_status"),
        sa.UniqueConstraint("folder_id", "name", name="uq_photos_folder_id_name"),
    )
    for cols in (["folder_id", "taken_at"], ["folder_id", "size"], ["taken_at"], ["sha256"],
                 ["make", "model"], ["status", "source_id"], ["source_id", "inode"]):
        op.create_index(f"ix_photos_{'_'.join(cols)}", "photos", cols)


def downgrade() -> None:
    op.drop_table("photos")
    op.drop_table("folders")
    op.drop_table("sources")
