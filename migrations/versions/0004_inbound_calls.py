"""Inbound calls: calls.direction is outbound | inbound (Twilio's own value moves to
calls.twilio_direction); a LINE call's legs share its line_user_id; kintone_outbox holds inbound
jobs (no record until the customer lookup, the records it matched)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

# The rule as of this revision (CONTRACT.md section 9, the wire agreement with the gateway): a
# call is inbound when its root leg is a SIP leg (LINE) or was not placed from a browser.
CLASSIFY = (
    "UPDATE calls SET twilio_direction = direction, direction = 'outbound'",
    """
UPDATE calls c SET direction = 'inbound'
FROM calls r
WHERE r.call_sid = coalesce(c.parent_call_sid, c.call_sid)
  AND (r.leg = 'sip' OR (r.from_number IS NOT NULL AND r.from_number NOT LIKE 'client:%'))
""",
    """
UPDATE calls c SET line_user_id = r.line_user_id
FROM calls r
WHERE c.parent_call_sid = r.call_sid AND c.line_user_id IS NULL AND r.line_user_id IS NOT NULL
""",
)


def upgrade() -> None:
    op.add_column("calls", sa.Column("twilio_direction", sa.Text()))
    for statement in CLASSIFY:
        op.execute(statement)
    op.add_column(
        "kintone_outbox",
        sa.Column("direction", sa.Text(), nullable=False, server_default="outbound"),
    )
    op.add_column(
        "kintone_outbox", sa.Column("matched_record_ids", postgresql.ARRAY(sa.BigInteger()))
    )
    op.alter_column("kintone_outbox", "kintone_record_id", existing_type=sa.Text(), nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM kintone_outbox WHERE kintone_record_id IS NULL")
    op.alter_column("kintone_outbox", "kintone_record_id", existing_type=sa.Text(), nullable=False)
    op.drop_column("kintone_outbox", "matched_record_ids")
    op.drop_column("kintone_outbox", "direction")
    op.execute("UPDATE calls SET direction = twilio_direction")
    op.drop_column("calls", "twilio_direction")
