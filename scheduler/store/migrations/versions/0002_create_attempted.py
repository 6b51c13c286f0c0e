"""meetings.create_attempted_at: a create that may have reached the provider, as a column.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01

Until now "a create was attempted" was an audit row with the detail ``create attempted``; the
column makes it a fact the overlap and pair checks can query. Existing rows are back-filled from
those audit rows.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("meetings") as batch:
        batch.add_column(
            sa.Column("create_attempted_at", sa.DateTime(timezone=True), nullable=True)
        )
    op.execute(
        "UPDATE meetings SET create_attempted_at = ("
        " SELECT MIN(audit_log.at) FROM audit_log"
        " WHERE audit_log.meeting_id = meetings.id AND audit_log.detail = 'create attempted')"
    )


def downgrade() -> None:
    with op.batch_alter_table("meetings") as batch:
        batch.drop_column("create_attempted_at")
