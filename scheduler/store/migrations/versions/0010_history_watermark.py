"""How far the owner's calendar history was read, for incremental reading (issue 13).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01

- ``users.history_read_until``: the end of the owner's calendar history that the last finished
  planning round read (written by that round's ``record_plan_round``), so the next round reads
  only what came after it instead of the whole lookback.
- ``users.history_read_key``: the digest of the stakeholder set that history was read for; a
  round for another set reads the whole lookback again.

Both are NULL for existing users: their next round reads the whole lookback, as before.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("history_read_until", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("history_read_key", sa.String(64), nullable=True))


def downgrade() -> None:
    # Never the batch's copy-and-move on SQLite: its DROP TABLE users, with foreign keys on (and
    # they cannot be turned off inside the migration's transaction), would cascade-delete every
    # meeting. Plain, unindexed columns: SQLite (3.35+) drops them in place.
    with op.batch_alter_table("users", recreate="never") as batch:
        batch.drop_column("history_read_key")
        batch.drop_column("history_read_until")
