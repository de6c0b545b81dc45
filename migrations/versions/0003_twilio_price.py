"""calls.twilio_price, calls.twilio_price_unit: what Twilio billed for each leg

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Filled by `calltrail reconcile`: a positive amount, in Twilio's price_unit.
    op.add_column("calls", sa.Column("twilio_price", sa.Numeric()))
    op.add_column("calls", sa.Column("twilio_price_unit", sa.Text()))


def downgrade() -> None:
    op.drop_column("calls", "twilio_price_unit")
    op.drop_column("calls", "twilio_price")
