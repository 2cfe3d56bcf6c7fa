"""The delivery store, the outbox and the write-back state.

Revision ID: 0001
Revises:
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deliveries",
        sa.Column("source", sa.String(64), primary_key=True),
        sa.Column("delivery_id", sa.String(255), primary_key=True),
        sa.Column("received_at", sa.Float, nullable=False),
        sa.Column("answer", sa.LargeBinary, nullable=True),
    )
    op.create_index("ix_deliveries_received_at", "deliveries", ["received_at"])
    op.create_table(
        "outbox_jobs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("crm", sa.String(32), nullable=False),
        sa.Column("object_type", sa.String(64), nullable=False),
        sa.Column("object_id", sa.String(255), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("record", sa.JSON, nullable=True),
        sa.Column("as_of", sa.String(10), nullable=True),
        sa.Column("source", sa.String(64), nullable=True),
        sa.Column("delivery_id", sa.String(255), nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("not_before", sa.Float, nullable=False),
        sa.Column("lease_until", sa.Float, nullable=True),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("updated_at", sa.Float, nullable=False),
        sa.Column("last_error", sa.Text, nullable=True),
        sa.Column("outcome", sa.JSON, nullable=True),
    )
    op.create_index("outbox_due", "outbox_jobs", ["state", "not_before"])
    op.create_index("outbox_one_queued", "outbox_jobs", ["crm", "object_type", "object_id"],
                    unique=True, sqlite_where=sa.text("state = 'queued'"),
                    postgresql_where=sa.text("state = 'queued'"))
    op.create_table(
        "writeback_state",
        sa.Column("crm", sa.String(32), primary_key=True),
        sa.Column("object_type", sa.String(64), primary_key=True),
        sa.Column("object_id", sa.String(255), primary_key=True),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("written_at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("writeback_state")
    op.drop_index("outbox_one_queued", "outbox_jobs")
    op.drop_index("outbox_due", "outbox_jobs")
    op.drop_table("outbox_jobs")
    op.drop_index("ix_deliveries_received_at", "deliveries")
    op.drop_table("deliveries")
