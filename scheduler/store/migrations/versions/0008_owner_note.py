"""The owner's private note on a proposal ("ask Maria to introduce you to Nina").

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01

- ``meetings.owner_note``: a note the planner attached to a one-to-one for the owner only
  (:attr:`scheduler.core.planner.Proposal.owner_note`). Shown on the owner's page and in the
  owner's digest; never in an invite, a log line or a metric. Not ``reason``: the reason is the
  "why this slot" text that ``goodwill proposals`` shows the operator and ``plan --json`` prints.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("meetings") as batch:
        batch.add_column(sa.Column("owner_note", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("meetings") as batch:
        batch.drop_column("owner_note")
