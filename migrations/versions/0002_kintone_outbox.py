"""kintone_outbox: write-back jobs, one per call

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "kintone_outbox",
        sa.Column("call_sid", sa.Text(), primary_key=True),
        sa.Column("kintone_app_id", sa.Text(), nullable=False),
        sa.Column("kintone_record_id", sa.Text(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False, server_default="pending"),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("available_at", TZ, nullable=False, server_default=sa.func.now()),
        sa.Column("leased_until", TZ),
        sa.Column("last_error", sa.Text()),
        sa.Column("created_at", TZ, nullable=False, server_default=sa.func.now()),
        sa.Column("done_at", TZ),
    )
    op.create_index("ix_kintone_outbox_due", "kintone_outbox", ["state", "available_at"])


def downgrade() -> None:
    op.drop_index("ix_kintone_outbox_due", table_name="kintone_outbox")
    op.drop_table("kintone_outbox")
