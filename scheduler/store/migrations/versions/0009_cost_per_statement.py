"""Indexes for statements that cost what they return, not the number of users (issue 13).

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01

- ``ix_meetings_state_id`` replaces ``ix_meetings_state_next_attempt_at``: the tick's sends
  (``approved_needing_send``) and lease re-drives read one state in id order and stop at their
  limit; ``next_attempt_at`` is a filter on those few rows. (Nothing reads a range of
  ``next_attempt_at``.)
- ``ix_users_next_plan_at_id`` replaces ``ix_users_next_plan_at``: the planning claims read the
  due users in ``(next_plan_at, id)`` order and stop at their limit, instead of reading and
  sorting every due user.
- ``ix_users_policy_missing_since``, ``ix_users_paused_until``: the removed owners' claim reads
  the few users whose policy file is gone, not every due user; the tick's sends leave out the
  meetings of those owners and of owners who paused by probing or hashing those few rows, not by
  reading every user.
"""

from __future__ import annotations

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_index("ix_meetings_state_id", "meetings", ["state", "id"])
    op.drop_index("ix_meetings_state_next_attempt_at", table_name="meetings")
    op.create_index("ix_users_next_plan_at_id", "users", ["next_plan_at", "id"])
    op.drop_index("ix_users_next_plan_at", table_name="users")
    op.create_index("ix_users_policy_missing_since", "users", ["policy_missing_since"])
    op.create_index("ix_users_paused_until", "users", ["paused_until"])


def downgrade() -> None:
    op.drop_index("ix_users_paused_until", table_name="users")
    op.drop_index("ix_users_policy_missing_since", table_name="users")
    op.create_index("ix_users_next_plan_at", "users", ["next_plan_at"])
    op.drop_index("ix_users_next_plan_at_id", table_name="users")
    op.create_index("ix_meetings_state_next_attempt_at", "meetings", ["state", "next_attempt_at"])
    op.drop_index("ix_meetings_state_id", table_name="meetings")
