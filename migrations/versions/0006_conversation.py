"""The conversation (CONTRACT.md section 11): recordings, transcriptions, transcript segments,
the call_transcripts view; recording and transcription charges in monthly_charges

call_events.status becomes nullable: a recording's or transcript's event carries none.
monthly_charges keeps its columns (the dashboards read them) and counts the new charges in
usage_charge and total; the columns it gains come last, as CREATE OR REPLACE VIEW requires.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _price_columns() -> list[sa.Column[object]]:
    return [
        sa.Column("billable_minutes", sa.Integer()),
        sa.Column("charge", sa.Numeric()),
        sa.Column("currency", sa.Text()),
        sa.Column("rate", sa.Numeric()),
        sa.Column("tariff_effective_from", sa.Date()),
        sa.Column("billing_month", sa.Date()),
    ]


def _timestamps() -> list[sa.Column[object]]:
    return [
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
        sa.Column(
            "updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    ]


# The utterances of each call in spoken order: its transcriptions by when they started, each
# by SequenceId (whatever order the callbacks arrived in). A speaker still unknown (the call's
# direction not known yet) is shown as such, never guessed from the track.
CALL_TRANSCRIPTS_VIEW = """
CREATE VIEW call_transcripts AS
SELECT t.call_sid,
       coalesce(string_agg(
           CASE s.speaker WHEN 'staff' THEN '担当者: ' WHEN 'customer' THEN 'お客様: '
                ELSE '話者不明: ' END || s.text,
           E'\\n' ORDER BY t.started_at NULLS LAST, s.transcription_sid, s.sequence_id
       ) FILTER (WHERE s.sequence_id IS NOT NULL), '') AS text,
       CASE WHEN bool_or(t.status = 'failed') THEN 'failed'
            WHEN bool_and(t.status = 'complete') THEN 'complete'
            ELSE 'in-progress' END AS status
FROM transcriptions t
LEFT JOIN transcript_segments s ON s.transcription_sid = t.transcription_sid
GROUP BY t.call_sid
"""

# The numbers held and their rental by month, as 0005 has them (both views below share them).
HELD_AND_RENTAL = """held AS (
    SELECT n.e164, m.month::date AS month
    FROM numbers n
    CROSS JOIN LATERAL generate_series(
        date_trunc('month', n.held_from),
        date_trunc('month', coalesce(n.held_until, (now() AT TIME ZONE 'Etc/GMT-14')::date)),
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
"""

# 0005's view, with the recordings' and transcriptions' charges in the usage.
MONTHLY_CHARGES_VIEW = """
CREATE OR REPLACE VIEW monthly_charges AS
WITH priced AS (
    SELECT billing_month, currency, charge, 'leg' AS item FROM calls
    WHERE billing_month IS NOT NULL AND currency IS NOT NULL
    UNION ALL
    SELECT billing_month, currency, charge, 'recording' FROM recordings
    WHERE billing_month IS NOT NULL AND currency IS NOT NULL
    UNION ALL
    SELECT billing_month, currency, charge, 'transcription' FROM transcriptions
    WHERE billing_month IS NOT NULL AND currency IS NOT NULL
),
usage AS (
    SELECT billing_month AS month, currency,
           sum(charge) AS usage_charge,
           count(*) FILTER (WHERE charge IS NULL AND item = 'leg') AS unrated_legs,
           sum(charge) FILTER (WHERE item = 'recording') AS recording_charge,
           sum(charge) FILTER (WHERE item = 'transcription') AS transcription_charge,
           count(*) FILTER (WHERE charge IS NULL AND item = 'recording') AS unrated_recordings,
           count(*) FILTER (WHERE charge IS NULL AND item = 'transcription')
               AS unrated_transcriptions
    FROM priced
    GROUP BY billing_month, currency
),
{held_and_rental}SELECT coalesce(u.month, r.month) AS month,
       coalesce(u.usage_charge, 0) AS usage_charge,
       coalesce(r.rental_charge, 0) AS rental_charge,
       coalesce(u.usage_charge, 0) + coalesce(r.rental_charge, 0) AS total,
       coalesce(u.currency, r.currency) AS currency,
       coalesce(u.unrated_legs, 0) AS unrated_legs,
       coalesce(u.recording_charge, 0) AS recording_charge,
       coalesce(u.transcription_charge, 0) AS transcription_charge,
       coalesce(u.unrated_recordings, 0) AS unrated_recordings,
       coalesce(u.unrated_transcriptions, 0) AS unrated_transcriptions
FROM usage u
FULL JOIN rental r ON r.month = u.month AND r.currency = u.currency
"""

# 0005's view exactly, for the downgrade (a column cannot be dropped by CREATE OR REPLACE).
MONTHLY_CHARGES_VIEW_0005 = """
CREATE VIEW monthly_charges AS
WITH usage AS (
    SELECT billing_month AS month, currency,
           sum(charge) AS usage_charge,
           count(*) FILTER (WHERE charge IS NULL) AS unrated_legs
    FROM calls
    WHERE billing_month IS NOT NULL AND currency IS NOT NULL
    GROUP BY billing_month, currency
),
{held_and_rental}SELECT coalesce(u.month, r.month) AS month,
       coalesce(u.usage_charge, 0) AS usage_charge,
       coalesce(r.rental_charge, 0) AS rental_charge,
       coalesce(u.usage_charge, 0) + coalesce(r.rental_charge, 0) AS total,
       coalesce(u.currency, r.currency) AS currency,
       coalesce(u.unrated_legs, 0) AS unrated_legs
FROM usage u
FULL JOIN rental r ON r.month = u.month AND r.currency = u.currency
"""


def upgrade() -> None:
    op.alter_column("call_events", "status", existing_type=sa.Text(), nullable=True)
    op.create_table(
        "recordings",
        sa.Column("recording_sid", sa.Text(), primary_key=True),
        sa.Column("call_sid", sa.Text(), nullable=False),  # the call's root
        sa.Column("status", sa.Text(), nullable=False),
        sa.Column("duration_s", sa.Integer()),
        sa.Column("channels", sa.Integer()),
        sa.Column("source", sa.Text()),  # dial | voicemail
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("media_url", sa.Text()),
        sa.Column("error_code", sa.Text()),
        *_price_columns(),
        sa.Column("kintone_file_key", sa.Text()),
        sa.Column("twilio_price", sa.Numeric()),
        sa.Column("twilio_price_unit", sa.Text()),
        sa.Column("deleted_from_twilio_at", sa.DateTime(timezone=True)),
        *_timestamps(),
    )
    op.create_index("ix_recordings_call_sid", "recordings", ["call_sid"])
    op.create_index("ix_recordings_billing_month", "recordings", ["billing_month"])
    op.create_table(
        "transcriptions",
        sa.Column("transcription_sid", sa.Text(), primary_key=True),
        sa.Column("call_sid", sa.Text(), nullable=False),
        sa.Column("status", sa.Text(), nullable=False),  # in-progress | complete | failed
        sa.Column("language_code", sa.Text()),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("ended_at", sa.DateTime(timezone=True)),
        sa.Column("error_code", sa.Text()),
        *_price_columns(),
        *_timestamps(),
    )
    op.create_index("ix_transcriptions_call_sid", "transcriptions", ["call_sid"])
    op.create_index("ix_transcriptions_billing_month", "transcriptions", ["billing_month"])
    op.create_table(
        "transcript_segments",
        sa.Column("transcription_sid", sa.Text(), primary_key=True),
        sa.Column("sequence_id", sa.Integer(), primary_key=True),
        sa.Column("call_sid", sa.Text(), nullable=False),
        sa.Column("track", sa.Text(), nullable=False),  # inbound_track | outbound_track
        sa.Column("speaker", sa.Text()),  # staff | customer; null until the direction is known
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("confidence", sa.Numeric()),
        sa.Column("spoken_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
        ),
    )
    op.create_index("ix_transcript_segments_call_sid", "transcript_segments", ["call_sid"])
    op.execute(CALL_TRANSCRIPTS_VIEW)
    op.execute(MONTHLY_CHARGES_VIEW.format(held_and_rental=HELD_AND_RENTAL))


def downgrade() -> None:
    op.execute("DROP VIEW monthly_charges")
    op.execute(MONTHLY_CHARGES_VIEW_0005.format(held_and_rental=HELD_AND_RENTAL))
    op.execute("DROP VIEW call_transcripts")
    op.drop_table("transcript_segments")
    op.drop_table("transcriptions")
    op.drop_table("recordings")
    op.execute("DELETE FROM call_events WHERE status IS NULL")
    op.alter_column("call_events", "status", existing_type=sa.Text(), nullable=False)
