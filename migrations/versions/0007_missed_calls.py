"""Missed calls (CONTRACT.md section 12): kintone_outbox.missed (the worker's finding) and
kintone_outbox.notified_record_ids (the records known to carry the call's comment)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("kintone_outbox", sa.Column("missed", sa.Boolean()))
    op.add_column(
        "kintone_outbox", sa.Column("notified_record_ids", postgresql.ARRAY(sa.BigInteger()))
    )


def downgrade() -> None:
    op.drop_column("kintone_outbox", "notified_record_ids")
    op.drop_column("kintone_outbox", "missed")
