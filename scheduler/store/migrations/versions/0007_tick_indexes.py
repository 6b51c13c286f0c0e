"""Indexes for a tick round that costs what is due, not the number of users.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01

- ``ix_users_policy_path``: registration by change looks up the users of the few policy files
  that changed or went away (by path as well as by e-mail).
- ``ix_meetings_state_start``: the tick expires the proposals whose slot is near, reading only
  those (``state = 'proposed' AND start < …``), not every proposal in the system.
"""

from __future__ import annotations

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_index("ix_users_policy_path", "users", ["policy_path"])
    op.create_index("ix_meetings_state_start", "meetings", ["state", "start"])


def downgrade() -> None:
    op.drop_index("ix_meetings_state_start", table_name="meetings")
    op.drop_index("ix_users_policy_path", table_name="users")
