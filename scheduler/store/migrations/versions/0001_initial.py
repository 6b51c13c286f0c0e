"""Initial schema: users, meetings, contacts, stakeholder status, credentials, tick lease, audit.

Revision ID: 0001
Revises:
Create Date: 2026-11-26

Types are spelled out here (not imported from ``tables.py``) so this revision keeps meaning the
same thing when the models change later. ``DateTime(timezone=True)`` is ``timestamptz`` on
PostgreSQL and text on SQLite, where ``tables.UTCDateTime`` stores naive UTC.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

EMAIL = 320


def upgrade() -> None:
    ts = sa.DateTime(timezone=True)
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(EMAIL), nullable=False),
        sa.Column("policy_path", sa.Text(), nullable=False),
        sa.Column("policy_hash", sa.String(128), nullable=False),
        sa.Column("policy_error", sa.Text(), nullable=True),
        sa.Column("next_plan_at", ts, nullable=True),
        sa.Column("last_planned_at", ts, nullable=True),
        sa.Column("created_at", ts, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
    )
    op.create_index(op.f("ix_users_next_plan_at"), "users", ["next_plan_at"])

    op.create_table(
        "meetings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("stakeholder_email", sa.String(EMAIL), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("start", ts, nullable=False),
        sa.Column("end", ts, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("idempotency_key", sa.String(128), nullable=False),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("provider_event_id", sa.String(1024), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", ts, nullable=True),
        sa.Column("lease_until", ts, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_at", ts, nullable=False),
        sa.Column("updated_at", ts, nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_meetings_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_meetings")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_meetings_idempotency_key")),
    )
    op.create_index("ix_meetings_state_next_attempt_at", "meetings", ["state", "next_attempt_at"])
    op.create_index("ix_meetings_user_id_start", "meetings", ["user_id", "start"])

    op.create_table(
        "contacts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("stakeholder_email", sa.String(EMAIL), nullable=False),
        sa.Column("met_at", ts, nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.CheckConstraint("source IN ('goodwill', 'organic')", name=op.f("ck_contacts_source")),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_contacts_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_contacts")),
        sa.UniqueConstraint("user_id", "stakeholder_email", "met_at", name="uq_contacts_meeting"),
    )

    op.create_table(
        "stakeholder_status",
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("stakeholder_email", sa.String(EMAIL), nullable=False),
        sa.Column("paused_reason", sa.Text(), nullable=True),
        sa.Column("paused_until", ts, nullable=True),
        sa.Column("unanswered_in_row", sa.Integer(), nullable=False),
        sa.Column("backoff_until", ts, nullable=True),
        sa.Column("last_declined_at", ts, nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_stakeholder_status_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("user_id", "stakeholder_email", name=op.f("pk_stakeholder_status")),
    )

    op.create_table(
        "credentials",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_email", sa.String(EMAIL), nullable=False),
        sa.Column("provider", sa.String(32), nullable=False),
        sa.Column("ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("updated_at", ts, nullable=False),
        sa.Column("revoked_reason", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_credentials")),
        sa.UniqueConstraint("user_email", "provider", name="uq_credentials_user_email_provider"),
    )

    op.create_table(
        "tick_lease",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("holder", sa.String(255), nullable=False),
        sa.Column("lease_until", ts, nullable=False),
        sa.Column("ticked_at", ts, nullable=False),
        sa.CheckConstraint("id = 1", name=op.f("ck_tick_lease_singleton")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tick_lease")),
    )

    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("meeting_id", sa.Integer(), nullable=True),
        sa.Column("user_id", sa.Integer(), nullable=True),
        sa.Column("at", ts, nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("from_state", sa.String(16), nullable=True),
        sa.Column("to_state", sa.String(16), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["meeting_id"],
            ["meetings.id"],
            name=op.f("fk_audit_log_meeting_id_meetings"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_audit_log_user_id_users"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index(op.f("ix_audit_log_meeting_id"), "audit_log", ["meeting_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_audit_log_meeting_id"), table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_table("tick_lease")
    op.drop_table("credentials")
    op.drop_table("stakeholder_status")
    op.drop_table("contacts")
    op.drop_index("ix_meetings_user_id_start", table_name="meetings")
    op.drop_index("ix_meetings_state_next_attempt_at", table_name="meetings")
    op.drop_table("meetings")
    op.drop_index(op.f("ix_users_next_plan_at"), table_name="users")
    op.drop_table("users")
