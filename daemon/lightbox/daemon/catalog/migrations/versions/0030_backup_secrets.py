"""backup_target_secrets: an S3 target's secret key out of its config row; existing ones moved

Revision ID: 0030_backup_secrets
Revises: 0016_perf
Create Date: 2026-12-01
"""

import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "0030_backup_secrets"
down_revision: str | None = "0016_perf"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Timestamp = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
SECRET_KEYS = ("secret_access_key",)

targets = sa.table("backup_targets", sa.column("id", Id), sa.column("config", sa.JSON))
secrets = sa.table("backup_target_secrets", sa.column("target_id", Id),
                   sa.column("name", sa.String), sa.column("value", sa.Text),
                   sa.column("fingerprint", sa.String), sa.column("updated_at", Timestamp))


def _fingerprint(value: str) -> str:
    # The same digest as lightbox.daemon.library.sources.secret_fingerprint.
    return hashlib.sha256(b"lightbox-secret:" + value.encode()).hexdigest()[:12]


def _config(raw: Any) -> dict[str, Any]:
    if isinstance(raw, str):  # a JSON column some drivers hand back as text
        raw = json.loads(raw)
    return dict(raw or {})


def upgrade() -> None:
    op.create_table(
        "backup_target_secrets",
        sa.Column("target_id", Id, sa.ForeignKey(
            "backup_targets.id", ondelete="CASCADE",
            name="fk_backup_target_secrets_target_id_backup_targets"), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", sa.Text, nullable=False),
        sa.Column("fingerprint", sa.String(16), nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.PrimaryKeyConstraint("target_id", "name", name="pk_backup_target_secrets"),
    )
    conn = op.get_bind()
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    for tid, raw in conn.execute(sa.select(targets.c.id, targets.c.config)).all():
        cfg = _config(raw)
        moved = {k: cfg.pop(k) for k in SECRET_KEYS if k in cfg}
        if not moved:
            continue
        for name, value in moved.items():
            if value:
                conn.execute(secrets.insert().values(target_id=tid, name=name,
                                                     value=str(value),
                                                     fingerprint=_fingerprint(str(value)),
                                                     updated_at=now))
        conn.execute(targets.update().where(targets.c.id == tid).values(config=cfg))


def downgrade() -> None:
    conn = op.get_bind()
    held: dict[int, dict[str, str]] = {}
    for tid, name, value in conn.execute(sa.select(secrets.c.target_id, secrets.c.name,
                                                   secrets.c.value)).all():
        held.setdefault(tid, {})[name] = value
    for tid, values in held.items():
        raw = conn.execute(sa.select(targets.c.config).where(targets.c.id == tid)).scalar()
        conn.execute(targets.update().where(targets.c.id == tid)
                     .values(config={**_config(raw), **values}))
    op.drop_table("backup_target_secrets")
