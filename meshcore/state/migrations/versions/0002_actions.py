"""Contract 2: resources table, quota reservations, platform identities, revocation time.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "resources",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("platform", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("key", sa.String(512), nullable=False),
        sa.Column("cloud_id", sa.String(512), nullable=False),
        sa.Column("owner", sa.String(256), nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        _ts("created_at"),
        _ts("updated_at"),
        sa.UniqueConstraint("platform", "kind", "key", name="uq_resource"),
    )
    op.create_index("ix_resource_owner", "resources", ["platform", "owner"])
    op.create_table(
        "quota_locks",
        sa.Column("platform", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(64), primary_key=True),
        _ts("touched_at"),
    )
    op.create_table(
        "quota_reservations",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("platform", sa.String(64), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("key", sa.String(512), nullable=False),
        _ts("at"),
    )
    op.create_index("ix_quota_window", "quota_reservations", ["platform", "name", "at"])
    op.create_table(
        "platforms",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("identity", sa.String(512), nullable=False),
        _ts("first_seen"),
        _ts("last_seen"),
    )
    with op.batch_alter_table("tenants") as batch:
        batch.add_column(_ts("revoked_at", True))
        batch.drop_column("spec_hash")


def downgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.add_column(sa.Column("spec_hash", sa.String(64), nullable=False, server_default=""))
        batch.drop_column("revoked_at")
    op.drop_table("platforms")
    op.drop_index("ix_quota_window", "quota_reservations")
    op.drop_table("quota_reservations")
    op.drop_table("quota_locks")
    op.drop_index("ix_resource_owner", "resources")
    op.drop_table("resources")
