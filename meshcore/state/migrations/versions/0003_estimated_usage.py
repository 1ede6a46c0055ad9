"""Usage lines the platform still estimates (e.g. AWS Cost Explorer's current month), and when a
tenant imported an existing platform tenant (usage from before the import is not the importer's).

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def upgrade() -> None:
    with op.batch_alter_table("usage_lines") as batch:
        batch.add_column(sa.Column("estimated", sa.Boolean, nullable=False, server_default=sa.false()))
        batch.drop_constraint("uq_usage_line", type_="unique")
        batch.create_unique_constraint(  # a platform tenant's usage from before and after its import
            "uq_usage_line",
            ["platform", "platform_tenant_id", "tenant_key", "period", "seller", "product", "currency"],
        )
    with op.batch_alter_table("tenants") as batch:
        batch.add_column(sa.Column("imported_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("tenants") as batch:
        batch.drop_column("imported_at")
    with op.batch_alter_table("usage_lines") as batch:
        batch.drop_column("estimated")
