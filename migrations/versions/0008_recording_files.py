"""The recording's file on kintone (CONTRACT.md section 11, "On the record"):
recordings.kintone_file_error, why a recording was written without its file after the retries
(``calltrail kintone status`` lists them)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("recordings", sa.Column("kintone_file_error", sa.Text()))


def downgrade() -> None:
    op.drop_column("recordings", "kintone_file_error")
