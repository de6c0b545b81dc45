"""calls, call_events, numbers, tariffs and the monthly_charges view

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from services.recorder.adapters.tables import MONTHLY_CHARGES_VIEW

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "calls",
        sa.Column("call_sid", sa.Text(), primary_key=True),
        sa.Column("parent_call_sid", sa.Text()),
        sa.Column("leg", sa.Text(), nullable=False),
        sa.Column("destination_type", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("status_sequence", sa.Integer(), nullable=False),
        sa.Column("direction", sa.Text()),
        sa.Column("from_number", sa.Text()),
        sa.Column("to_number", sa.Text()),
        sa.Column("started_at", TZ),
        sa.Column("answered_at", TZ),
        sa.Column("ended_at", TZ),
        sa.Column("duration_s", sa.Integer()),
        sa.Column("billable_minutes", sa.Integer()),
        sa.Column("charge", sa.Numeric()),
        sa.Column("currency", sa.Text()),
        sa.Column("rate", sa.Numeric()),
        sa.Column("tariff_effective_from", sa.Date()),
        sa.Column("billing_month", sa.Date()),
        sa.Column("kintone_app_id", sa.Text()),
        sa.Column("kintone_record_id", sa.Text()),
        sa.Column("user_identity", sa.Text()),
        sa.Column("line_user_id", sa.Text()),
        sa.Column("created_at", TZ, nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", TZ, nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_calls_parent_call_sid", "calls", ["parent_call_sid"])
    op.create_index("ix_calls_billing_month", "calls", ["billing_month"])
    op.create_table(
        "call_events",
        sa.Column("event_key", sa.Text(), primary_key=True),
        sa.Column("call_sid", sa.Text(), nullable=False),
        sa.Column("root_call_sid", sa.Text(), nullable=False),
        sa.Column("kind", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("sequence", sa.Integer()),
        sa.Column("received_at", TZ, nullable=False),
        sa.Column("payload", postgresql.JSON(), nullable=False),
        sa.Column("recorded_at", TZ, nullable=False, server_default=sa.func.now()),
    )
    op.create_index("ix_call_events_call_sid", "call_events", ["call_sid"])
    op.create_table(
        "numbers",
        sa.Column("e164", sa.Text(), primary_key=True),
        sa.Column("held_from", sa.Date(), nullable=False),
        sa.Column("held_until", sa.Date()),
        sa.Column("note", sa.Text()),
    )
    op.create_table(
        "tariffs",
        sa.Column("effective_from", sa.Date(), primary_key=True),
        sa.Column("currency", sa.Text(), nullable=False),
        sa.Column("per_minute", postgresql.JSONB(), nullable=False),
        sa.Column("number_rental_per_month", sa.Numeric()),
    )
    op.execute(MONTHLY_CHARGES_VIEW)


def downgrade() -> None:
    op.execute("DROP VIEW monthly_charges")
    op.drop_table("tariffs")
    op.drop_table("numbers")
    op.drop_index("ix_call_events_call_sid", table_name="call_events")
    op.drop_table("call_events")
    op.drop_index("ix_calls_billing_month", table_name="calls")
    op.drop_index("ix_calls_parent_call_sid", table_name="calls")
    op.drop_table("calls")
