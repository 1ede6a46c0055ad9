"""Shared runners: a lease (with a fencing token) per tenant and platform, API-budget slots, and the
runner and token that recorded each step.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    op.create_table(
        "tenant_leases",
        sa.Column("key", sa.String(256), primary_key=True),
        sa.Column("holder", sa.String(256), nullable=False),
        sa.Column("token", sa.BigInteger, nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("released_at", sa.DateTime(timezone=True), nullable=True),
    )
    op.create_table(
        "limiter_slots",
        sa.Column("name", sa.String(192), primary_key=True),
        sa.Column("slot", sa.Integer, primary_key=True),
        sa.Column("holder", sa.String(256), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    with op.batch_alter_table("steps") as batch:
        batch.add_column(sa.Column("runner", sa.String(256), nullable=False, server_default=""))
        batch.add_column(sa.Column("token", sa.BigInteger, nullable=False, server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("steps") as batch:
        batch.drop_column("token")
        batch.drop_column("runner")
    op.drop_table("limiter_slots")
    op.drop_table("tenant_leases")
