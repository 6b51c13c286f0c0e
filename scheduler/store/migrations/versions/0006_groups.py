"""Group meetings: one meeting with several attendees, each with their own answer.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01

- ``meetings.group_name``: a group meeting's group, or "introduction" (None: a one-to-one).
- ``meetings.presenter``: a group meeting's presenter (None: none).
- ``meetings.quorum``: attendees (the owner excluded) who must stay for it to stand.
- ``meeting_attendees``: everyone invited to a group meeting and their answer; for a group
  meeting ``meetings.stakeholder_email`` is the first of them (the presenter when there is one),
  so per-stakeholder queries keep working. Indexed by e-mail: the cross-owner clash check looks
  a person up among every group's attendees.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("meetings") as batch:
        batch.add_column(sa.Column("group_name", sa.Text(), nullable=True))
        batch.add_column(sa.Column("presenter", sa.String(320), nullable=True))
        batch.add_column(sa.Column("quorum", sa.Integer(), nullable=True))
    op.create_table(
        "meeting_attendees",
        sa.Column("meeting_id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("status", sa.String(32), nullable=False, server_default="needsAction"),
        sa.Column("responded_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["meeting_id"],
            ["meetings.id"],
            name=op.f("fk_meeting_attendees_meeting_id_meetings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("meeting_id", "email", name=op.f("pk_meeting_attendees")),
    )
    op.create_index(op.f("ix_meeting_attendees_email"), "meeting_attendees", ["email"])


def downgrade() -> None:
    op.drop_index(op.f("ix_meeting_attendees_email"), table_name="meeting_attendees")
    op.drop_table("meeting_attendees")
    with op.batch_alter_table("meetings") as batch:
        batch.drop_column("quorum")
        batch.drop_column("presenter")
        batch.drop_column("group_name")
