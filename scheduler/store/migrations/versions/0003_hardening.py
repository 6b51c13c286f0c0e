"""Hardening: a missing policy file, the tick's heartbeat, replies held for the owner.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01

- ``users.policy_missing_since``: when the tick first found the user's policy file gone.
- ``heartbeats``: a row a process updates when it completes a round (readiness's write probe).
- ``held_replies``: iMIP REPLYs whose sender is not the attendee they answer for.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | None = None
depends_on: str | None = None

EMAIL = 320


def upgrade() -> None:
    ts = sa.DateTime(timezone=True)
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("policy_missing_since", ts, nullable=True))
    op.create_table(
        "heartbeats",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("holder", sa.String(255), nullable=False),
        sa.Column("beat_at", ts, nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_heartbeats")),
    )
    op.create_table(
        "held_replies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("meeting_id", sa.Integer(), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("received_at", ts, nullable=False),
        sa.Column("sender", sa.String(EMAIL), nullable=False),
        sa.Column("attendee", sa.String(EMAIL), nullable=False),
        sa.Column("partstat", sa.String(32), nullable=False),
        sa.Column("uid", sa.String(1024), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("decided_at", ts, nullable=True),
        sa.Column("message_digest", sa.String(64), nullable=False),
        sa.ForeignKeyConstraint(
            ["meeting_id"],
            ["meetings.id"],
            name=op.f("fk_held_replies_meeting_id_meetings"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_held_replies_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_held_replies")),
        sa.UniqueConstraint("message_digest", name="uq_held_replies_message_digest"),
    )
    op.create_index(op.f("ix_held_replies_meeting_id"), "held_replies", ["meeting_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_held_replies_meeting_id"), table_name="held_replies")
    op.drop_table("held_replies")
    op.drop_table("heartbeats")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("policy_missing_since")
