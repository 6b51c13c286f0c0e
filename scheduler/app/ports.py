"""The application's own ports: the store the use cases write to, and the instruments they tick.

:class:`scheduler.store.Store` (SQLAlchemy) implements :class:`StorePort`; the use-case tests
run the same scenarios against an in-memory fake of it (``tests/usecase/fakes.py``). Provider
ports (calendars, writers, responses) live in :mod:`scheduler.core.ports`.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Protocol

from scheduler.app.records import (
    AuditEntry,
    ContactSource,
    Heartbeat,
    HeldReply,
    HeldReplyState,
    Meeting,
    NewHeldReply,
    NewMeeting,
    StakeholderStatus,
    User,
)
from scheduler.core.states import MeetingState

__all__ = ["Counter", "Instruments", "StorePort"]


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
    def mark_policy_missing(self, user_id: int, *, now: datetime) -> datetime | None: ...
    def clear_policy_missing(self, user_id: int, *, now: datetime) -> bool: ...
    def claim_removed_owners(
        self, missing_before: datetime, now: datetime, limit: int, retry_s: float
    ) -> list[int]: ...

    # -- meetings -----------------------------------------------------------------------------
    def add_meetings(
        self,
        user_id: int,
        proposals: Sequence[NewMeeting],
        *,
        now: datetime,
        actor: str = "planner",
    ) -> list[int]: ...
    def get_meeting(self, meeting_id: int) -> Meeting | None: ...
    def meeting_by_event_id(self, provider_event_id: str) -> Meeting | None: ...
    def open_meetings(self, user_id: int) -> list[Meeting]: ...
    def open_meetings_as_stakeholder(self, email: str) -> list[tuple[str, Meeting]]: ...
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
    def meetings_by_state(
        self, state: MeetingState, *, limit: int | None = None
    ) -> list[Meeting]: ...
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

    # -- booking jobs -------------------------------------------------------------------------
    def claim_for_booking(
        self, meeting_id: int, now: datetime, lease_s: float, *, actor: str = "worker"
    ) -> Meeting | None: ...
    def mark_create_attempted(self, meeting_id: int, now: datetime, *, attempt: int) -> bool: ...
    def approved_needing_send(
        self, now: datetime, limit: int, *, send_lease_s: float = 120.0
    ) -> list[int]: ...
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

    # -- replies held for the owner (an e-mailed answer from someone other than the attendee) --
    def hold_reply(self, reply: NewHeldReply, *, now: datetime) -> HeldReply: ...
    def get_held_reply(self, held_id: int) -> HeldReply | None: ...
    def held_replies(
        self, user_id: int, *, states: Collection[HeldReplyState] = (HeldReplyState.HELD,)
    ) -> list[HeldReply]: ...
    def decide_held_reply(
        self, held_id: int, state: HeldReplyState, *, now: datetime, actor: str
    ) -> bool: ...


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
