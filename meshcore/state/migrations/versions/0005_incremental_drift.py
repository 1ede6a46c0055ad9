"""Incremental drift checks: when each tenant was last verified and against which desired state, and
how far each platform's change feed has been read.

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.add_column(sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("desired_digest", sa.String(64), nullable=False, server_default=""))
    with op.batch_alter_table("platforms") as batch:
        batch.add_column(sa.Column("full_check_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("changes_read_to", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("platforms") as batch:
        batch.drop_column("changes_read_to")
        batch.drop_column("full_check_at")
    with op.batch_alter_table("tenants") as batch:
        batch.drop_column("desired_digest")
        batch.drop_column("verified_at")
