"""calls, call_events, numbers, tariffs and the monthly_charges view

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TZ = sa.DateTime(timezone=True)

# The view as this revision created it. A migration never imports live code: a later change to
# the view is a later migration, and this one keeps building the same schema.
MONTHLY_CHARGES_VIEW = """
CREATE VIEW monthly_charges AS
WITH usage AS (
    SELECT billing_month AS month, currency,
           sum(charge) AS usage_charge,
           count(*) FILTER (WHERE charge IS NULL) AS unrated_legs
    FROM calls
    WHERE billing_month IS NOT NULL AND currency IS NOT NULL
    GROUP BY billing_month, currency
),
held AS (
    SELECT n.e164, m.month::date AS month
    FROM numbers n
    CROSS JOIN LATERAL generate_series(
        date_trunc('month', n.held_from),
        date_trunc('month', coalesce(n.held_until, current_date)),
        interval '1 month'
    ) AS m(month)
),
rental AS (
    SELECT h.month, t.currency, sum(t.number_rental_per_month) AS rental_charge
    FROM held h
    JOIN LATERAL (
        SELECT currency, number_rental_per_month FROM tariffs
        WHERE effective_from <= h.month ORDER BY effective_from DESC LIMIT 1
    ) t ON t.number_rental_per_month IS NOT NULL
    GROUP BY h.month, t.currency
)
SELECT coalesce(u.month, r.month) AS month,
       coalesce(u.usage_charge, 0) AS usage_charge,
       coalesce(r.rental_charge, 0) AS rental_charge,
       coalesce(u.usage_charge, 0) + coalesce(r.rental_charge, 0) AS total,
       coalesce(u.currency, r.currency) AS currency,
       coalesce(u.unrated_legs, 0) AS unrated_legs
FROM usage u
FULL JOIN rental r ON r.month = u.month AND r.currency = u.currency
"""


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
