"""The tick's send scan by lease, not by reading the backlog in flight (issue 13).

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03

``approved_needing_send`` reads the approved meetings never sent (``lease_until`` NULL) by the
partial index ``ix_meetings_never_sent``, and those whose send lease ran out and the bookings
whose lease ran out by ranges of ``ix_meetings_state_lease_until_id``. By ``(state, id)`` alone
it read every approved meeting in id order and skipped those still in flight: with the workers
5,000 messages behind, each tick round read the 5,000 to find the few due.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | None = None
depends_on: str | None = None

NEVER_SENT = "state = 'approved' AND lease_until IS NULL"


def upgrade() -> None:
    op.create_index("ix_meetings_state_lease_until_id", "meetings", ["state", "lease_until", "id"])
    op.create_index(
        "ix_meetings_never_sent",
        "meetings",
        ["id"],
        postgresql_where=sa.text(NEVER_SENT),
        sqlite_where=sa.text(NEVER_SENT),
    )


def downgrade() -> None:
    op.drop_index("ix_meetings_never_sent", table_name="meetings")
    op.drop_index("ix_meetings_state_lease_until_id", table_name="meetings")
