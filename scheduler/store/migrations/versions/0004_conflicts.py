"""Conflict watch: a conflicted meeting, a proposal that would move a meeting, and the index the
cross-owner checks use.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

- ``meetings.conflict_at``: when a busy event was first seen overlapping a booked meeting
  (None: no conflict known). Cleared when the meeting moves or the conflict goes away.
- ``meetings.replaces_id``: an ``ask`` proposal's meeting to move (approving it moves that
  meeting's event to the proposal's time; never a second invite).
- ``ix_meetings_stakeholder_email_state_start``: the cross-owner checks (a person's overlapping
  or open meetings across every owner) read by stakeholder, state and start.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("meetings") as batch:
        batch.add_column(sa.Column("conflict_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("replaces_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            op.f("fk_meetings_replaces_id_meetings"),
            "meetings",
            ["replaces_id"],
            ["id"],
            ondelete="CASCADE",
        )
    op.create_index(
        op.f("ix_meetings_stakeholder_email_state_start"),
        "meetings",
        ["stakeholder_email", "state", "start"],
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_meetings_stakeholder_email_state_start"), table_name="meetings")
    with op.batch_alter_table("meetings") as batch:
        batch.drop_constraint(op.f("fk_meetings_replaces_id_meetings"), type_="foreignkey")
        batch.drop_column("replaces_id")
        batch.drop_column("conflict_at")
