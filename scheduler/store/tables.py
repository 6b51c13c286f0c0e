"""The database schema as SQLAlchemy 2.x declarative models (one migration tree: ``migrations/``).

Every datetime column is :class:`UTCDateTime`: aware UTC in, aware UTC out, on SQLite (which has
no time-zone type) and PostgreSQL (``timestamptz``) alike. E-mail addresses are stored lower-cased
by the repository.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    CheckConstraint,
    DateTime,
    Dialect,
    Enum,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from scheduler.app.records import ContactSource
from scheduler.core.states import MeetingState

__all__ = [
    "AuditRow",
    "Base",
    "ContactRow",
    "ContactSource",
    "CredentialRow",
    "HeartbeatRow",
    "HeldReplyRow",
    "MeetingAttendeeRow",
    "MeetingRow",
    "OwnerMailRow",
    "StakeholderStatusRow",
    "TickLeaseRow",
    "UTCDateTime",
    "UsedLinkRow",
    "UserRow",
]

# Named constraints, so Alembic batch mode on SQLite can find and alter them later.
# https://alembic.sqlalchemy.org/en/latest/batch.html#dropping-unnamed-or-named-foreign-key-constraints
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

EMAIL = 320  # RFC 5321: 64-octet local part + @ + 255-octet domain


class UTCDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime on every backend.

    SQLite has no time-zone type: SQLAlchemy writes a naive ISO string, so we convert to UTC and
    drop the zone on the way in and put UTC back on the way out. Because every value is UTC with
    the same string format, SQLite's text comparison orders them correctly. PostgreSQL stores
    ``timestamptz`` and returns it in the session zone; we normalise to UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r} given to the store: pass an aware value")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _state_enum() -> Enum:
    # Non-native enum: a VARCHAR on both backends, so adding a state needs no ALTER TYPE.
    return Enum(
        MeetingState,
        name="meeting_state",
        native_enum=False,
        create_constraint=False,
        length=16,
        values_callable=lambda e: [m.value for m in e],
        validate_strings=True,
    )


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime()}


class UserRow(Base):
    """A goodwill user: one policy file, one planning schedule."""

    __tablename__ = "users"
    __table_args__ = (
        # The tick's claims read due users in (next_plan_at, id) order and stop at the limit.
        Index("ix_users_next_plan_at_id", "next_plan_at", "id"),
        # The few owners whose file is gone or who paused: the removed owners' claim, and the
        # meetings the tick must not send yet.
        Index("ix_users_policy_missing_since", "policy_missing_since"),
        Index("ix_users_paused_until", "paused_until"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(EMAIL), unique=True)
    policy_path: Mapped[str] = mapped_column(Text, index=True)
    policy_hash: Mapped[str] = mapped_column(String(128))
    #: Why the policy file could not be used (None: it loaded). Shown by the report and /readyz.
    policy_error: Mapped[str | None] = mapped_column(Text)
    next_plan_at: Mapped[datetime | None]
    last_planned_at: Mapped[datetime | None]
    created_at: Mapped[datetime]
    #: When the tick first found the policy file gone (None: it is there). Planning stops at
    #: once; the user's future meetings are cancelled after a grace period unless it comes back.
    policy_missing_since: Mapped[datetime | None]
    #: The owner paused goodwill until this moment (None: not paused). Nothing new is proposed
    #: or booked before it; booked meetings stay.
    paused_until: Mapped[datetime | None]
    #: When the owner's next digest e-mail is due (None: no digest in their policy).
    next_digest_at: Mapped[datetime | None] = mapped_column(index=True)
    #: The end of the owner's calendar history read by the last finished planning round, so the
    #: next round reads only what came after it (None: never read, or read before this column
    #: existed: the next round reads the whole lookback).
    history_read_until: Mapped[datetime | None]
    #: The digest of the stakeholder set that history was read for: another set (a stakeholder
    #: added) makes the next round read the whole lookback again (None: as above).
    history_read_key: Mapped[str | None] = mapped_column(String(64))


#: The predicate of the partial index of the approved meetings never sent (migration 0011).
NEVER_SENT = "state = 'approved' AND lease_until IS NULL"


class MeetingRow(Base):
    """One proposed one-to-one in one concrete slot; also the booking job (state + lease)."""

    __tablename__ = "meetings"
    __table_args__ = (
        # The tick's sends and lease re-drives read one state in id order, up to a limit.
        Index("ix_meetings_state_id", "state", "id"),
        # The tick's sends: the approved never sent (a partial index: the planner cannot tell
        # from per-column statistics that few approved rows have no lease), and the leases run
        # out (a range).
        Index(
            "ix_meetings_never_sent",
            "id",
            postgresql_where=text(NEVER_SENT),
            sqlite_where=text(NEVER_SENT),
        ),
        Index("ix_meetings_state_lease_until_id", "state", "lease_until", "id"),
        Index("ix_meetings_user_id_start", "user_id", "start"),
        Index("ix_meetings_stakeholder_email_state_start", "stakeholder_email", "state", "start"),
        Index("ix_meetings_state_start", "state", "start"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    stakeholder_email: Mapped[str] = mapped_column(String(EMAIL))
    kind: Mapped[str] = mapped_column(String(32))
    start: Mapped[datetime]
    end: Mapped[datetime]
    state: Mapped[MeetingState] = mapped_column(_state_enum())
    mode: Mapped[str] = mapped_column(String(16))  # auto | propose
    #: Also the provider-side key (Google event id / Graph transactionId / ICS UID).
    idempotency_key: Mapped[str] = mapped_column(String(128), unique=True)
    provider: Mapped[str] = mapped_column(String(32))
    provider_event_id: Mapped[str | None] = mapped_column(String(1024))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    #: booking: the worker's lease; approved: the sent message's "in flight until".
    lease_until: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    #: Why this slot was chosen, for the user (never sent in the invite).
    reason: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    #: Set when a create call is first sent: the event may exist at the provider from then on,
    #: even if the reply was lost, so the meeting keeps its claim on the slot.
    create_attempted_at: Mapped[datetime | None]
    #: When a busy event was first seen overlapping this booked meeting (None: none known).
    conflict_at: Mapped[datetime | None]
    #: For an ``ask`` proposal made after a conflict: the meeting whose event it would move.
    replaces_id: Mapped[int | None] = mapped_column(ForeignKey("meetings.id", ondelete="CASCADE"))
    #: A proposal's other slots, as JSON ``[[start_iso, end_iso], …]`` in UTC (None: none).
    alternatives: Mapped[str | None] = mapped_column(Text)
    #: A group meeting's group (or "introduction"); None for a one-to-one. For a group meeting
    #: ``stakeholder_email`` is the first attendee (the presenter when there is one) and
    #: ``meeting_attendees`` holds everyone invited.
    group_name: Mapped[str | None] = mapped_column(Text)
    #: A group meeting's presenter (None: none, or a one-to-one).
    presenter: Mapped[str | None] = mapped_column(String(EMAIL))
    #: Attendees (the owner excluded) who must stay for a group meeting to stand.
    quorum: Mapped[int | None] = mapped_column(Integer)
    #: The owner's private note on a proposal ("ask Y to introduce you to X"); None: none.
    #: For the owner's page and digest only: never in an invite, a log or a metric.
    owner_note: Mapped[str | None] = mapped_column(Text)
    #: Loaded with every meeting read (one extra query per read, never per row).
    attendees: Mapped[list[MeetingAttendeeRow]] = relationship(
        lazy="selectin", passive_deletes=True, order_by="MeetingAttendeeRow.email"
    )


class MeetingAttendeeRow(Base):
    """One person invited to a group meeting, with their own answer."""

    __tablename__ = "meeting_attendees"

    meeting_id: Mapped[int] = mapped_column(
        ForeignKey("meetings.id", ondelete="CASCADE"), primary_key=True
    )
    email: Mapped[str] = mapped_column(String(EMAIL), primary_key=True, index=True)
    #: An :class:`~scheduler.core.model.AttendeeStatus` value.
    status: Mapped[str] = mapped_column(
        String(32), default="needsAction", server_default="needsAction"
    )
    responded_at: Mapped[datetime | None]


class ContactRow(Base):
    """A meeting that happened between a user and a stakeholder (resets the cadence clock)."""

    __tablename__ = "contacts"
    __table_args__ = (
        UniqueConstraint("user_id", "stakeholder_email", "met_at", name="uq_contacts_meeting"),
        CheckConstraint("source IN ('goodwill', 'organic')", name="source"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    stakeholder_email: Mapped[str] = mapped_column(String(EMAIL))
    met_at: Mapped[datetime]
    source: Mapped[str] = mapped_column(String(16))


class StakeholderStatusRow(Base):
    """Etiquette state per (user, stakeholder): pauses, unanswered invites, decline back-off."""

    __tablename__ = "stakeholder_status"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    stakeholder_email: Mapped[str] = mapped_column(String(EMAIL), primary_key=True)
    paused_reason: Mapped[str | None] = mapped_column(Text)
    paused_until: Mapped[datetime | None]
    unanswered_in_row: Mapped[int] = mapped_column(Integer, default=0)
    backoff_until: Mapped[datetime | None]
    last_declined_at: Mapped[datetime | None]


class CredentialRow(Base):
    """An encrypted provider grant (OAuth token cache) for one user; see ``crypto.py``."""

    __tablename__ = "credentials"
    __table_args__ = (
        UniqueConstraint("user_email", "provider", name="uq_credentials_user_email_provider"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_email: Mapped[str] = mapped_column(String(EMAIL))
    provider: Mapped[str] = mapped_column(String(32))
    ciphertext: Mapped[bytes] = mapped_column(LargeBinary)
    updated_at: Mapped[datetime]
    #: Set when the provider refused the grant; the user must reconnect.
    revoked_reason: Mapped[str | None] = mapped_column(Text)


class TickLeaseRow(Base):
    """The singleton row the tick replicas compare-and-set; the winner ticks this period."""

    __tablename__ = "tick_lease"
    __table_args__ = (CheckConstraint("id = 1", name="singleton"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    holder: Mapped[str] = mapped_column(String(255))
    lease_until: Mapped[datetime]
    ticked_at: Mapped[datetime]


class HeartbeatRow(Base):
    """A named heartbeat a process writes when it completes a round (the tick's write probe).

    Readiness reads it back: a stale beat, or too many failed rounds in a row, is not ready.
    """

    __tablename__ = "heartbeats"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(255))
    beat_at: Mapped[datetime]
    #: Rounds that failed in a row since the last good one (0: the last round completed).
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)


class HeldReplyRow(Base):
    """An iMIP REPLY that was not applied (its sender is not the attendee it answers for).

    Shown to the owner, who may apply it (``goodwill replies --accept ID``) or leave it.
    """

    __tablename__ = "held_replies"
    __table_args__ = (UniqueConstraint("message_digest", name="uq_held_replies_message_digest"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    meeting_id: Mapped[int | None] = mapped_column(
        ForeignKey("meetings.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    received_at: Mapped[datetime]
    sender: Mapped[str] = mapped_column(String(EMAIL))
    attendee: Mapped[str] = mapped_column(String(EMAIL))
    partstat: Mapped[str] = mapped_column(String(32))
    uid: Mapped[str] = mapped_column(String(1024))
    sequence: Mapped[int | None] = mapped_column(Integer)
    #: Why it was held or refused, for the owner.
    reason: Mapped[str] = mapped_column(Text, default="")
    #: held | applied | refused
    state: Mapped[str] = mapped_column(String(16), default="held")
    decided_at: Mapped[datetime | None]
    #: sha256 of the raw message: the same mail read twice is held once.
    message_digest: Mapped[str] = mapped_column(String(64))


class AuditRow(Base):
    """One state change or notable event, written in the same transaction as the change."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_at", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    meeting_id: Mapped[int | None] = mapped_column(
        ForeignKey("meetings.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    at: Mapped[datetime]
    actor: Mapped[str] = mapped_column(String(64))
    from_state: Mapped[str | None] = mapped_column(String(16))
    to_state: Mapped[str | None] = mapped_column(String(16))
    detail: Mapped[str] = mapped_column(Text, default="")


class OwnerMailRow(Base):
    """One e-mail goodwill owes an owner: a digest for a period, or a notice for an event.

    The unique (user, kind, period) row is claimed before the mail is sent, so two tick replicas
    or a retry never send the same period twice; ``state`` is sending | sent | failed.
    """

    __tablename__ = "owner_mails"
    __table_args__ = (
        UniqueConstraint("user_id", "kind", "period_key", name="uq_owner_mails_period"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    #: digest | notice
    kind: Mapped[str] = mapped_column(String(16))
    #: The period a digest covers (its scheduled local time, ISO) or a notice's event key.
    period_key: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default="sending")
    claimed_at: Mapped[datetime]
    lease_until: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)


class UsedLinkRow(Base):
    """A signed e-mail link that was used once: a second use of the same nonce is refused."""

    __tablename__ = "used_links"

    nonce: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_email: Mapped[str] = mapped_column(String(EMAIL))
    used_at: Mapped[datetime]
    #: After this the signature has expired anyway; the row may be deleted.
    expires_at: Mapped[datetime] = mapped_column(index=True)
