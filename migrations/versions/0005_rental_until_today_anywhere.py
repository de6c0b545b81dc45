"""monthly_charges: a number still held is charged up to today anywhere on Earth, not up to the
database's current_date

``numbers.held_from`` is the first of a month in the business time zone (Asia/Tokyo), but the
view ended a held number's months at ``current_date``, the database session's (UTC) date. From
15:00 UTC on the last day of a month, Tokyo is in the next month and UTC is not: that month
had no rental, and a number first held then had none at all. Today in Etc/GMT-14 (UTC+14,
the zone furthest ahead) is today or later in every zone, whatever the session's time zone.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30
"""

from __future__ import annotations

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

# The whole view, as 0001 built it but for the bound of a held number's months. A migration
# never imports live code or another migration: it keeps building the same schema.
MONTHLY_CHARGES_VIEW = """
CREATE OR REPLACE VIEW monthly_charges AS
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
        date_trunc('month', coalesce(n.held_until, {today})),
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
TODAY_ANYWHERE = "(now() AT TIME ZONE 'Etc/GMT-14')::date"
TODAY_IN_SESSION = "current_date"  # 0001's bound


def upgrade() -> None:
    op.execute(MONTHLY_CHARGES_VIEW.format(today=TODAY_ANYWHERE))


def downgrade() -> None:
    op.execute(MONTHLY_CHARGES_VIEW.format(today=TODAY_IN_SESSION))
