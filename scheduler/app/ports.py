"""The application's own ports: the store the use cases write to, and the instruments they tick.

:class:`scheduler.store.Store` (SQLAlchemy) implements :class:`StorePort`; the use-case tests
run the same scenarios against an in-memory fake of it (``tests/usecase/fakes.py``). Provider
ports (calendars, writers, responses) live in :mod:`scheduler.core.ports`.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from typing import Any, NamedTuple, Protocol

from scheduler.app.records import (
    AuditEntry,
    BookedEvent,
    BookingClaim,
    ContactSource,
    FollowedOwner,
    Heartbeat,
    HeldReply,
    HeldReplyState,
    Meeting,
    NewHeldReply,
    NewMeeting,
    OwnerMail,
    OwnerMailKind,
    RevokedCredential,
    Rival,
    RoundMeetings,
    StakeholderStatus,
    User,
)
from scheduler.core.model import AttendeeStatus
from scheduler.core.states import MeetingState

__all__ = ["Counter", "Instruments", "StorePort"]


class UserRegistration(NamedTuple):
    """One policy file to register (:meth:`StorePort.register_users`): the owner's e-mail, the
    file's path and content hash, and the user's ``policy_error`` afterwards (None: none)."""

    email: str
    policy_path: str
    policy_hash: str
    policy_error: str | None


class StorePort(Protocol):
    """What the use cases and the tick need from persistence.

    Every method is its own short transaction and returns plain records; time comes in as an
    aware UTC ``now``. State changes are compare-and-set: a method that returns ``bool`` returns
    False when the row was not in the state (or claim) the caller expected, and wrote nothing.
    """

    # -- users --------------------------------------------------------------------------------
    def upsert_user(
        self, email: str, policy_path: str, policy_hash: str, *, now: datetime
    ) -> int: ...
    def get_user(self, user_id: int) -> User | None: ...
    def get_user_by_email(self, email: str) -> User | None: ...
    def claim_users_for_planning(self, now: datetime, limit: int, retry_s: float) -> list[int]: ...
    def set_next_plan(
        self, user_id: int, at: datetime, *, planned_at: datetime | None = None
    ) -> None: ...
    def record_policy_error(self, user_id: int, message: str | None) -> None: ...
    def all_users(self) -> list[User]: ...
    def register_users(self, users: Sequence[UserRegistration], *, now: datetime) -> list[int]: ...
    def users_matching(self, emails: Collection[str], paths: Collection[str]) -> list[User]: ...
    def followed_owners(
        self,
        user_ids: Collection[int] | None,
        *,
        now: datetime | None = None,
        cutoff: timedelta | None = None,
    ) -> dict[int, FollowedOwner]: ...
    def mark_policy_missing(self, user_id: int, *, now: datetime) -> datetime | None: ...
    def clear_policy_missing(self, user_id: int, *, now: datetime) -> bool: ...
    def claim_removed_owners(
        self, missing_before: datetime, now: datetime, limit: int, retry_s: float
    ) -> list[int]: ...
    def set_owner_pause(self, user_id: int, until: datetime | None, *, now: datetime) -> bool: ...

    # -- meetings -----------------------------------------------------------------------------
    def add_meetings(
        self,
        user_id: int,
        proposals: Sequence[NewMeeting],
        *,
        now: datetime,
        actor: str = "planner",
    ) -> list[int]: ...
    def record_plan_round(
        self,
        user_id: int,
        proposals: Sequence[NewMeeting],
        skips: Sequence[str],
        next_plan_at: datetime,
        *,
        now: datetime,
        actor: str = "planner",
        history: tuple[datetime, str] | None = None,
    ) -> list[int]:
        """One planning round's writes in ONE transaction: ``proposals`` (as
        :meth:`add_meetings`), one audit row per ``skips`` detail, and the next round at
        ``next_plan_at`` (``now`` recorded as the last round).

        ``history=(until, key)``: the round read the owner's calendar history up to ``until``
        for the stakeholder set whose digest is ``key``; stored as the user's
        ``history_read_until`` / ``history_read_key`` with the rest, so the next round reads
        only what came after (a round that fails records no read, so it is read again). None:
        the round read no history; the values stored before are kept."""
        ...

    def get_meeting(self, meeting_id: int) -> Meeting | None: ...
    def meeting_by_event_id(self, provider_event_id: str) -> Meeting | None: ...
    def open_meetings(self, user_id: int) -> list[Meeting]: ...
    def open_meetings_as_stakeholder(self, email: str) -> list[tuple[str, Meeting]]: ...
    def round_meetings(
        self,
        user_id: int,
        owner_email: str,
        *,
        now: datetime,
        declined_since: datetime,
        declined_until: datetime,
        history_since: datetime,
    ) -> RoundMeetings:
        """What a planning round reads of meetings, in ONE query: the user's open ones, their
        declined ones overlapping ``[declined_since, declined_until)``, their group meetings
        starting at ``history_since`` or later, their completed ones overlapping
        ``[history_since, now)``, and the open ones other owners have with ``owner_email`` as
        the stakeholder (each list as the single-purpose read returns it)."""
        ...

    def stakeholder_load(
        self,
        emails: Collection[str],
        start: datetime,
        end: datetime,
        *,
        exclude_user_id: int,
        invited_since: datetime,
    ) -> tuple[dict[str, list[datetime]], set[str]]: ...
    def active_overlapping(
        self, emails: Collection[str], start: datetime, end: datetime, *, exclude_id: int
    ) -> list[Meeting]: ...
    def booking_rivals(
        self,
        emails: Collection[str],
        start: datetime,
        end: datetime,
        *,
        exclude_id: int,
        owner_email: str,
    ) -> tuple[list[Meeting], list[tuple[str, Meeting]]]:
        """``(active_overlapping(emails, start, end, exclude_id=…),
        open_meetings_as_stakeholder(owner_email))`` in one read."""
        ...

    def booking_rival_rows(
        self, emails: Collection[str], start: datetime, end: datetime, *, owner_email: str
    ) -> list[Rival]:
        """The rows :meth:`booking_rivals` reads (no meeting excluded), each with its owner's
        e-mail and both flags: one read a batch of one owner's bookings answers each of its
        meetings' re-checks from (:class:`scheduler.app.rivals.RivalsRead`)."""
        ...

    def meetings_by_state(
        self, state: MeetingState, *, limit: int | None = None
    ) -> list[Meeting]: ...
    def proposals_starting_before(self, before: datetime, limit: int) -> list[Meeting]: ...
    def meetings_between(
        self,
        user_id: int,
        start: datetime,
        end: datetime,
        *,
        states: Collection[MeetingState] | None = None,
    ) -> list[Meeting]: ...
    def transition(
        self,
        meeting_id: int,
        target: MeetingState,
        *,
        actor: str,
        now: datetime,
        detail: str = "",
        expect: MeetingState | None = None,
        attempt: int | None = None,
        **fields: Any,
    ) -> bool: ...
    def reschedule(
        self,
        meeting_id: int,
        start: datetime,
        end: datetime,
        *,
        now: datetime,
        actor: str,
        why: str = "",
    ) -> bool: ...
    def set_conflict(
        self, meeting_id: int, at: datetime | None, *, now: datetime, detail: str
    ) -> bool: ...
    def group_meetings(self, user_id: int, *, since: datetime) -> list[Meeting]: ...
    def set_attendee_status(
        self, meeting_id: int, email: str, status: AttendeeStatus, *, now: datetime
    ) -> bool: ...

    # -- booking jobs -------------------------------------------------------------------------
    def claim_for_booking(
        self, meeting_id: int, now: datetime, lease_s: float, *, actor: str = "worker"
    ) -> Meeting | None: ...
    def claim_booking(
        self, meeting_id: int, now: datetime, lease_s: float, *, actor: str = "worker"
    ) -> BookingClaim | None:
        """:meth:`claim_for_booking` that also returns the owner's row (one statement on
        PostgreSQL)."""
        ...

    def claim_bookings(
        self, meeting_ids: Sequence[int], now: datetime, lease_s: float, *, actor: str = "worker"
    ) -> dict[int, BookingClaim]:
        """:meth:`claim_booking` for each of ``meeting_ids`` (one statement on PostgreSQL for
        the due ``approved`` ones): the claims made, by meeting id."""
        ...

    def mark_create_attempted(self, meeting_id: int, now: datetime, *, attempt: int) -> bool: ...
    def mark_creates_attempted(self, claims: Sequence[tuple[int, int]], now: datetime) -> set[int]:
        """:meth:`mark_create_attempted` for each ``(meeting id, claim number)`` (ONE
        statement on PostgreSQL): the ids whose claim still held (only those may call the
        provider)."""
        ...

    def record_bookings(
        self, booked: Sequence[BookedEvent], now: datetime, *, actor: str = "worker"
    ) -> set[int]:
        """``booking`` → ``booked`` for each event, fenced on its claim number, with its audit
        row, in one write (all or none): the ids that moved."""
        ...

    def approved_needing_send(
        self, now: datetime, limit: int, *, send_lease_s: float = 120.0
    ) -> list[int]: ...
    def booking_leases_expired(self, now: datetime, limit: int) -> list[int]: ...
    def try_acquire_tick(
        self, holder: str, now: datetime, lease_s: float, *, max_lease_s: float | None = None
    ) -> bool: ...
    def database_now(self) -> datetime: ...
    def record_heartbeat(self, name: str, holder: str) -> datetime: ...
    def record_heartbeat_failure(self, name: str, error: str) -> int: ...
    def heartbeat(self, name: str) -> Heartbeat | None: ...

    # -- audit, contacts, etiquette, credentials ----------------------------------------------
    def audit_trail(self, meeting_id: int) -> list[AuditEntry]: ...
    def user_events(self, user_id: int, *, since: datetime) -> list[AuditEntry]: ...
    def events_after(self, after_id: int, *, since: datetime, limit: int) -> list[AuditEntry]: ...
    def record_event(
        self,
        *,
        now: datetime,
        actor: str,
        detail: str,
        user_id: int | None = None,
        meeting_id: int | None = None,
    ) -> None: ...
    def record_contact(
        self, user_id: int, email: str, met_at: datetime, source: ContactSource
    ) -> None: ...
    def record_contacts(
        self, user_id: int, contacts: Mapping[str, datetime], source: ContactSource
    ) -> None: ...
    def last_contacts(self, user_id: int) -> dict[str, datetime]: ...
    def get_stakeholder_status(self, user_id: int, email: str) -> StakeholderStatus: ...
    def stakeholder_statuses(self, user_id: int) -> dict[str, StakeholderStatus]: ...
    def save_stakeholder_status(self, status: StakeholderStatus) -> None: ...
    def save_credential(
        self, user_email: str, provider: str, plaintext: bytes, *, now: datetime
    ) -> None: ...
    def mark_credential_revoked(
        self, user_email: str, provider: str, reason: str, *, now: datetime
    ) -> bool: ...
    def flag_credential_revoked(
        self, user_email: str, provider: str, reason: str, *, now: datetime
    ) -> None: ...
    def revoked_credentials(self) -> list[RevokedCredential]: ...

    # -- replies held for the owner (an e-mailed answer from someone other than the attendee) --
    def hold_reply(self, reply: NewHeldReply, *, now: datetime) -> HeldReply: ...
    def get_held_reply(self, held_id: int) -> HeldReply | None: ...
    def held_replies(
        self, user_id: int, *, states: Collection[HeldReplyState] = (HeldReplyState.HELD,)
    ) -> list[HeldReply]: ...
    def decide_held_reply(
        self, held_id: int, state: HeldReplyState, *, now: datetime, actor: str
    ) -> bool: ...

    # -- e-mails to the owner: digests and notices, claimed before sending ---------------------
    def set_next_digest(self, user_id: int, at: datetime | None) -> None: ...
    def due_digest_users(self, now: datetime, limit: int) -> list[User]: ...
    def claim_owner_mail(
        self, user_id: int, kind: OwnerMailKind, period_key: str, *, now: datetime, lease_s: float
    ) -> OwnerMail | None: ...
    def finish_owner_mail(
        self,
        mail_id: int,
        *,
        attempt: int,
        now: datetime,
        error: str | None = None,
        retry_at: datetime | None = None,
        next_digest_at: datetime | None = None,
    ) -> bool: ...
    def last_owner_mail(self, user_id: int, kind: OwnerMailKind) -> OwnerMail | None: ...


class Counter(Protocol):
    def inc(self, amount: float = 1) -> None: ...


class Instruments(Protocol):
    """Counters and timers the use cases report to (Prometheus in production, nothing in tests).

    Implemented by :class:`scheduler.entrypoints.metrics.Metrics`.
    """

    @property
    def bookings_total(self) -> Counter: ...

    @property
    def lease_redrives_total(self) -> Counter: ...

    def provider_call(self, provider: str, operation: str) -> AbstractContextManager[None]: ...

    def plan_cycle(self) -> AbstractContextManager[None]: ...

    def policy_error(self, reason: str) -> None:
        """Count one policy file (or one user's round) that could not be used, by ``reason``
        (:data:`scheduler.app.planning.POLICY_ERROR_REASONS`)."""
        ...
