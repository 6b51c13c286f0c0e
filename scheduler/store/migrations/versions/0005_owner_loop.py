"""The owner's loop: pause, a proposal's alternatives, digests and notices, single-use links.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01

- ``users.paused_until``: the owner paused goodwill until then (nothing new proposed or booked).
- ``users.next_digest_at``: when the owner's next digest e-mail is due (indexed: the tick reads
  the due ones only).
- ``meetings.alternatives``: a proposal's other slots (JSON), shown on the owner's page.
- ``owner_mails``: one row per digest period or notice, claimed before sending (never twice).
- ``used_links``: nonces of signed e-mail links already used (single use).
- ``ix_audit_log_at``: the notices' first pass reads the last day of audit rows by time.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    ts = sa.DateTime(timezone=True)
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("paused_until", ts, nullable=True))
        batch.add_column(sa.Column("next_digest_at", ts, nullable=True))
    op.create_index(op.f("ix_users_next_digest_at"), "users", ["next_digest_at"])
    with op.batch_alter_table("meetings") as batch:
        batch.add_column(sa.Column("alternatives", sa.Text(), nullable=True))
    op.create_table(
        "owner_mails",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("period_key", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("claimed_at", ts, nullable=False),
        sa.Column("lease_until", ts, nullable=True),
        sa.Column("sent_at", ts, nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_owner_mails_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_owner_mails")),
        sa.UniqueConstraint("user_id", "kind", "period_key", name="uq_owner_mails_period"),
    )
    op.create_table(
        "used_links",
        sa.Column("nonce", sa.String(64), nullable=False),
        sa.Column("user_email", sa.String(320), nullable=False),
        sa.Column("used_at", ts, nullable=False),
        sa.Column("expires_at", ts, nullable=False),
        sa.PrimaryKeyConstraint("nonce", name=op.f("pk_used_links")),
    )
    op.create_index(op.f("ix_used_links_expires_at"), "used_links", ["expires_at"])
    op.create_index("ix_audit_log_at", "audit_log", ["at"])


def downgrade() -> None:
    op.drop_index("ix_audit_log_at", table_name="audit_log")
    op.drop_index(op.f("ix_used_links_expires_at"), table_name="used_links")
    op.drop_table("used_links")
    op.drop_table("owner_mails")
    with op.batch_alter_table("meetings") as batch:
        batch.drop_column("alternatives")
    op.drop_index(op.f("ix_users_next_digest_at"), table_name="users")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("next_digest_at")
        batch.drop_column("paused_until")
