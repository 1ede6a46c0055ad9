"""Initial schema: tenants, journal, runs, steps, audit, leases, usage lines, statements.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("workspace", sa.String(64), nullable=False),
        sa.Column("project", sa.String(64), nullable=False),
        sa.Column("platform", sa.String(64), nullable=False),
        sa.Column("landing_zone", sa.String(64), nullable=False),
        sa.Column("status", sa.String(32), nullable=False),
        sa.Column("platform_tenant_id", sa.String(256), nullable=True),
        sa.Column("provisioning", sa.String(32), nullable=False),
        sa.Column("attributes", sa.JSON, nullable=False),
        sa.Column("spec_hash", sa.String(64), nullable=False),
        sa.Column("last_error", sa.Text, nullable=False),
        _ts("created_at"),
        _ts("updated_at"),
        _ts("marked_at", True),
        _ts("approved_at", True),
        _ts("deleted_at", True),
        sa.UniqueConstraint("platform", "platform_tenant_id", name="uq_tenant_platform_id"),
    )
    op.create_index("ix_tenant_identity", "tenants", ["workspace", "project", "platform"])
    op.create_table(
        "journal",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("platform", sa.String(64), nullable=False),
        sa.Column("tenant_key", sa.String(256), nullable=False),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("key", sa.String(512), nullable=False),
        sa.Column("intent", sa.JSON, nullable=False),
        sa.Column("operation_id", sa.String(512), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("result", sa.JSON, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        _ts("created_at"),
        _ts("updated_at"),
    )
    op.create_index("ix_journal_lookup", "journal", ["platform", "kind", "key", "status"])
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("command", sa.String(32), nullable=False),
        sa.Column("runner", sa.String(256), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("summary", sa.JSON, nullable=False),
        _ts("started_at"),
        _ts("finished_at", True),
    )
    op.create_table(
        "steps",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("run_id", sa.Integer, nullable=False),
        sa.Column("tenant_key", sa.String(256), nullable=False),
        sa.Column("platform", sa.String(64), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        _ts("started_at"),
        sa.Column("duration_ms", sa.Integer, nullable=False),
    )
    op.create_index("ix_steps_run", "steps", ["run_id"])
    op.create_index("ix_steps_tenant", "steps", ["tenant_key"])
    op.create_table(
        "audit",
        sa.Column("id", sa.Integer, primary_key=True),
        _ts("at"),
        sa.Column("actor", sa.String(256), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("subject", sa.String(256), nullable=False),
        sa.Column("details", sa.JSON, nullable=False),
    )
    op.create_table(
        "leases",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("holder", sa.String(256), nullable=False),
        _ts("expires_at"),
    )
    op.create_table(
        "usage_lines",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("platform", sa.String(64), nullable=False),
        sa.Column("platform_tenant_id", sa.String(256), nullable=False),
        sa.Column("tenant_key", sa.String(256), nullable=True),
        sa.Column("period", sa.String(7), nullable=False),
        sa.Column("seller", sa.String(256), nullable=False),
        sa.Column("product", sa.String(256), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount", sa.String(64), nullable=False),
        _ts("collected_at"),
        sa.UniqueConstraint(
            "platform",
            "platform_tenant_id",
            "period",
            "seller",
            "product",
            "currency",
            name="uq_usage_line",
        ),
    )
    op.create_index("ix_usage_period", "usage_lines", ["period", "platform"])
    op.create_table(
        "chargeback_statements",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("workspace", sa.String(64), nullable=False),
        sa.Column("project", sa.String(64), nullable=False),
        sa.Column("period", sa.String(7), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("totals", sa.JSON, nullable=False),
        sa.Column("lines", sa.JSON, nullable=False),
        sa.Column("payment_method", sa.JSON, nullable=False),
        sa.Column("tags", sa.JSON, nullable=False),
        _ts("created_at"),
        sa.UniqueConstraint("workspace", "project", "period", "version", name="uq_statement_version"),
    )
