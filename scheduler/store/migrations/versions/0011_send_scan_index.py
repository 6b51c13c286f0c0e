"""The tick's send scan by lease, not by reading the backlog in flight (issue 13).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03

``ix_meetings_state_lease_until_id``: ``approved_needing_send`` reads the approved meetings
never sent (``lease_until`` NULL), those whose send lease ran out and the bookings whose lease
ran out, each by a range of this index. By ``(state, id)`` alone it read every approved meeting
in id order and skipped those still in flight: with the workers 5,000 messages behind, each tick
round read the 5,000 to find the few due.
"""

from __future__ import annotations

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_index("ix_meetings_state_lease_until_id", "meetings", ["state", "lease_until", "id"])


def downgrade() -> None:
    op.drop_index("ix_meetings_state_lease_until_id", table_name="meetings")
