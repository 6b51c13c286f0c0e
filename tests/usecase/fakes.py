"""In-memory stand-ins for the ports the use cases depend on.

:class:`FakeStore` implements :class:`scheduler.app.ports.StorePort` with the semantics of
:class:`scheduler.store.Store` (compare-and-set transitions checked by the state machine, audit
rows, the claim/lease/attempt fencing, idempotent writes, lower-cased e-mails, aware UTC times).
``tests/contract/test_store_contract.py`` runs the same assertions against it and against the
real store on SQLite and PostgreSQL, which is what keeps it honest.

:class:`FakeCalendar` is one provider: busy time, organic contact history, a writer that is
idempotent on the draft's key, and attendee answers, with knobs for what a test needs to happen
(busy blocks, answers, cancellations, moves, one-shot errors, a lost create reply) and a count of
the calls made per operation.
"""

from __future__ import annotations

import itertools
import threading
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from scheduler.app.ports import StorePort, UserRegistration
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
from scheduler.core.errors import ResourceGone, SchedulerError
from scheduler.core.model import (
    AttendeeStatus,
    BusyBlock,
    BusyQuery,
    BusyResult,
    CreatedEvent,
    EventDraft,
    Person,
    ShowAs,
)
from scheduler.core.policy import Policy
from scheduler.core.ports import CalendarBackend, EventState
from scheduler.core.states import (
    FOLLOWED_STATES,
    INITIAL_STATES,
    OPEN_STATES,
    TERMINAL_STATES,
    MeetingState,
)
from scheduler.core.states import transition as check_transition

__all__ = [
    "FAKE_PROVIDER",
    "FakeCalendar",
    "FakeEvent",
    "FakeStore",
    "Operation",
    "UnknownMeeting",
]

_S = MeetingState

#: Columns ``transition`` may set along with the state (as in the real store).
_TRANSITION_FIELDS = frozenset(
    {"provider_event_id", "next_attempt_at", "lease_until", "last_error", "attempts", "reason"}
)
_DATETIME_FIELDS = frozenset({"next_attempt_at", "lease_until"})
#: States :meth:`FakeStore.active_overlapping` reports: being booked or on calendars (plus
#: ``approved`` once a create was attempted: its event may exist).
_ACTIVE = frozenset({_S.BOOKING, _S.BOOKED, _S.ACCEPTED, _S.TENTATIVE})


class UnknownMeeting(SchedulerError, LookupError):
    """No meeting has this id (the fake's twin of ``scheduler.store.UnknownMeeting``)."""


def _email(value: str) -> str:
    return value.strip().lower()


def _check_attendees(p: NewMeeting) -> None:
    """As the real store: distinct attendees, the first one the meeting's stakeholder."""
    attendees = [_email(e) for e in p.attendees]
    if not attendees:
        return
    if len(set(attendees)) != len(attendees):
        raise ValueError(f"meeting {p.idempotency_key} lists an attendee twice")
    if attendees[0] != _email(p.stakeholder_email):
        raise ValueError(
            f"meeting {p.idempotency_key}: stakeholder_email must be the first attendee"
        )


def _attendee_fields(p: NewMeeting) -> dict[str, Any]:
    """A stored group meeting's attendees as the real store reads them back: the stakeholder
    first, then by e-mail, everyone's answer ``needsAction``."""
    if not p.attendees:
        return {}
    first, *rest = [_email(e) for e in p.attendees]
    ordered = (first, *sorted(rest))
    return {
        "attendees": ordered,
        "attendee_status": tuple((e, AttendeeStatus.NEEDS_ACTION.value) for e in ordered),
    }


def _utc(value: datetime) -> datetime:
    """An aware value in UTC; naive values are refused, as the real store's column type does."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"naive datetime {value!r} given to the store: pass an aware value")
    return value.astimezone(UTC)


def _utc_or_none(value: datetime | None) -> datetime | None:
    return None if value is None else _utc(value)


@dataclass
class _Credential:
    plaintext: bytes
    updated_at: datetime
    revoked_reason: str | None = None


@dataclass
class _TickLease:
    holder: str
    lease_until: datetime
    ticked_at: datetime


class FakeStore:
    """An in-memory :class:`~scheduler.app.ports.StorePort`; every method is atomic (one lock).

    Besides the port it offers the read-outs tests use on the real store too:
    :meth:`user_events`, :meth:`revoked_credentials`, :meth:`load_credential`, :meth:`last_tick`.

    Args:
        database_clock: what :meth:`database_now` answers (the database server's clock);
            the system clock by default.
    """

    def __init__(self, *, database_clock: Callable[[], datetime] | None = None) -> None:
        self._lock = threading.RLock()
        self._database_clock = database_clock or (lambda: datetime.now(UTC))
        self._heartbeats: dict[str, Heartbeat] = {}
        self._users: dict[int, User] = {}
        self._meetings: dict[int, Meeting] = {}
        self._key_index: dict[str, int] = {}
        self._audit: list[AuditEntry] = []
        self._contacts: dict[tuple[int, str, datetime], ContactSource] = {}
        self._statuses: dict[tuple[int, str], StakeholderStatus] = {}
        self._credentials: dict[tuple[str, str], _Credential] = {}
        self._tick: _TickLease | None = None
        self._user_ids = itertools.count(1)
        self._meeting_ids = itertools.count(1)
        self._audit_ids = itertools.count(1)
        self._held: dict[int, HeldReply] = {}
        self._held_digests: dict[int, str] = {}
        self._held_ids = itertools.count(1)
        self._owner_mails: dict[tuple[int, OwnerMailKind, str], OwnerMail] = {}
        self._owner_mail_ids = itertools.count(1)

    # -- plumbing ----------------------------------------------------------------------------

    @contextmanager
    def _atomic(self) -> Iterator[None]:
        with self._lock:
            yield

    def _write_audit(
        self,
        *,
        at: datetime,
        actor: str,
        meeting_id: int | None = None,
        user_id: int | None = None,
        from_state: MeetingState | None = None,
        to_state: MeetingState | None = None,
        detail: str = "",
    ) -> None:
        self._audit.append(
            AuditEntry(
                id=next(self._audit_ids),
                meeting_id=meeting_id,
                user_id=user_id,
                at=at,
                actor=actor,
                from_state=None if from_state is None else MeetingState(from_state).value,
                to_state=None if to_state is None else MeetingState(to_state).value,
                detail=detail,
            )
        )

    def _require_user(self, user_id: int) -> None:
        # The real store has foreign keys: rows for an unknown user are refused.
        if user_id not in self._users:
            raise ValueError(f"no user with id {user_id} (foreign key)")

    # -- users -------------------------------------------------------------------------------

    def upsert_user(self, email: str, policy_path: str, policy_hash: str, *, now: datetime) -> int:
        email, now = _email(email), _utc(now)
        with self._atomic():
            user = next((u for u in self._users.values() if u.email == email), None)
            if user is None:
                user = User(
                    id=next(self._user_ids),
                    email=email,
                    policy_path=policy_path,
                    policy_hash=policy_hash,
                    policy_error=None,
                    next_plan_at=now,
                    last_planned_at=None,
                    created_at=now,
                )
            user = replace(user, policy_path=policy_path)
            if user.policy_hash != policy_hash:
                user = replace(user, policy_hash=policy_hash)
                if user.next_plan_at is None or user.next_plan_at > now:
                    user = replace(user, next_plan_at=now)
            self._users[user.id] = user
            return user.id

    def get_user(self, user_id: int) -> User | None:
        with self._atomic():
            return self._users.get(user_id)

    def get_user_by_email(self, email: str) -> User | None:
        wanted = _email(email)
        with self._atomic():
            return next((u for u in self._users.values() if u.email == wanted), None)

    def claim_users_for_planning(self, now: datetime, limit: int, retry_s: float) -> list[int]:
        return self._claim_users(lambda u: u.policy_missing_since is None, now, limit, retry_s)

    def claim_removed_owners(
        self, missing_before: datetime, now: datetime, limit: int, retry_s: float
    ) -> list[int]:
        missing_before = _utc(missing_before)

        def removed(u: User) -> bool:
            return u.policy_missing_since is not None and u.policy_missing_since <= missing_before

        return self._claim_users(removed, now, limit, retry_s)

    def _claim_users(
        self, wanted: Callable[[User], bool], now: datetime, limit: int, retry_s: float
    ) -> list[int]:
        if retry_s <= 0:
            raise ValueError("retry_s must be positive")
        now = _utc(now)
        with self._atomic():
            due = [
                u
                for u in self._users.values()
                if (u.next_plan_at is None or u.next_plan_at <= now) and wanted(u)
            ]
            due.sort(key=lambda u: (u.next_plan_at is not None, u.next_plan_at or now, u.id))
            ids = [u.id for u in due[: max(limit, 0)]]
            for user_id in ids:
                self._users[user_id] = replace(
                    self._users[user_id], next_plan_at=now + timedelta(seconds=retry_s)
                )
            return ids

    def set_next_plan(
        self, user_id: int, at: datetime, *, planned_at: datetime | None = None
    ) -> None:
        at, planned_at = _utc(at), _utc_or_none(planned_at)
        with self._atomic():
            user = self._users.get(user_id)
            if user is None:
                return
            user = replace(user, next_plan_at=at)
            if planned_at is not None:
                user = replace(user, last_planned_at=planned_at)
            self._users[user_id] = user

    def record_policy_error(self, user_id: int, message: str | None) -> None:
        with self._atomic():
            user = self._users.get(user_id)
            if user is not None:
                self._users[user_id] = replace(user, policy_error=message)

    def all_users(self) -> list[User]:
        with self._atomic():
            return [self._users[i] for i in sorted(self._users)]

    def register_users(self, users: Sequence[UserRegistration], *, now: datetime) -> list[int]:
        with self._atomic():
            ids = []
            for u in users:
                user_id = self.upsert_user(u.email, u.policy_path, u.policy_hash, now=now)
                self._users[user_id] = replace(self._users[user_id], policy_error=u.policy_error)
                ids.append(user_id)
            return ids

    def users_matching(self, emails: Collection[str], paths: Collection[str]) -> list[User]:
        wanted, at = {_email(e) for e in emails}, set(paths)
        with self._atomic():
            return [
                self._users[i]
                for i in sorted(self._users)
                if self._users[i].email in wanted or self._users[i].policy_path in at
            ]

    def followed_owners(
        self,
        user_ids: Collection[int] | None,
        *,
        now: datetime | None = None,
        cutoff: timedelta | None = None,
    ) -> dict[int, FollowedOwner]:
        with self._atomic():
            meetings = [m for m in self._meetings.values() if m.state in FOLLOWED_STATES]
            owners = {m.user_id for m in meetings}
            if user_ids is not None:
                owners &= set(user_ids)

            def soonest(keep: Callable[[Meeting], bool]) -> dict[int, datetime]:
                found: dict[int, datetime] = {}
                for m in meetings:
                    if keep(m) and (m.user_id not in found or m.start < found[m.user_id]):
                        found[m.user_id] = m.start
                return found

            near: dict[int, datetime] = {}
            far: dict[int, datetime] = {}
            if now is not None:
                near = soonest(lambda m: m.end > now or m.state != _S.DECLINED)
                if cutoff is not None:
                    far = soonest(lambda m: m.start > now + cutoff)
            return {
                i: FollowedOwner(
                    self._users[i].policy_missing_since is not None, near.get(i), far.get(i)
                )
                for i in sorted(owners)
                if i in self._users
            }

    def mark_policy_missing(self, user_id: int, *, now: datetime) -> datetime | None:
        with self._atomic():
            user = self._users.get(user_id)
            if user is None:
                return None
            if user.policy_missing_since is None:
                user = replace(user, policy_missing_since=_utc(now))
                self._users[user_id] = user
            return user.policy_missing_since

    def clear_policy_missing(self, user_id: int, *, now: datetime) -> bool:
        with self._atomic():
            user = self._users.get(user_id)
            if user is None or user.policy_missing_since is None:
                return False
            self._users[user_id] = replace(user, policy_missing_since=None, next_plan_at=_utc(now))
            return True

    def set_owner_pause(self, user_id: int, until: datetime | None, *, now: datetime) -> bool:
        until, now = _utc_or_none(until), _utc(now)
        with self._atomic():
            user = self._users.get(user_id)
            if user is None:
                return False
            self._users[user_id] = replace(user, paused_until=until)
            detail = "resumed" if until is None else f"paused until {until.isoformat()}"
            self._write_audit(at=now, actor="owner", user_id=user_id, detail=detail)
            return True

    # -- meetings ----------------------------------------------------------------------------

    def add_meetings(
        self,
        user_id: int,
        proposals: Sequence[NewMeeting],
        *,
        now: datetime,
        actor: str = "planner",
    ) -> list[int]:
        now = _utc(now)
        with self._atomic():
            # Validate everything first: the real store writes all proposals or none. Its
            # foreign key refuses an unknown user only when a row would be inserted.
            if any(p.idempotency_key not in self._key_index for p in proposals):
                self._require_user(user_id)
            for p in proposals:
                if p.state not in INITIAL_STATES:
                    raise ValueError(f"a new meeting cannot start as {p.state}")
                if not _utc(p.start) < _utc(p.end):
                    raise ValueError(f"meeting {p.idempotency_key} ends before it starts")
                _check_attendees(p)
            ids: list[int] = []
            for p in proposals:
                existing = self._key_index.get(p.idempotency_key)
                if existing is not None:
                    ids.append(existing)
                    continue
                meeting = Meeting(
                    id=next(self._meeting_ids),
                    user_id=user_id,
                    stakeholder_email=_email(p.stakeholder_email),
                    kind=p.kind,
                    start=_utc(p.start),
                    end=_utc(p.end),
                    state=MeetingState(p.state),
                    mode=p.mode,
                    idempotency_key=p.idempotency_key,
                    provider=p.provider,
                    provider_event_id=None,
                    attempts=0,
                    next_attempt_at=None,
                    lease_until=None,
                    last_error=None,
                    reason=p.reason,
                    created_at=now,
                    updated_at=now,
                    create_attempted_at=None,
                    replaces_id=p.replaces_id,
                    alternatives=tuple((_utc(a), _utc(b)) for a, b in p.alternatives),
                    group_name=p.group_name,
                    presenter=_email(p.presenter) if p.presenter else None,
                    quorum=p.quorum,
                    owner_note=p.owner_note,
                    **_attendee_fields(p),
                )
                self._meetings[meeting.id] = meeting
                self._key_index[p.idempotency_key] = meeting.id
                self._write_audit(
                    at=now, actor=actor, meeting_id=meeting.id, user_id=user_id,
                    to_state=meeting.state, detail="created",
                )  # fmt: skip
                ids.append(meeting.id)
            return ids

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
        # A naive ``until`` is refused before anything is written, as the real store's is.
        read = None if history is None else (_utc(history[0]), history[1])
        with self._atomic():  # all of it or (add_meetings raises first) nothing
            ids = self.add_meetings(user_id, proposals, now=now, actor=actor)
            for detail in skips:
                self.record_event(now=now, actor=actor, user_id=user_id, detail=detail)
            self.set_next_plan(user_id, next_plan_at, planned_at=now)
            user = self._users.get(user_id)
            if read is not None and user is not None:  # None: the stored values are kept
                self._users[user_id] = replace(
                    user, history_read_until=read[0], history_read_key=read[1]
                )
            return ids

    def get_meeting(self, meeting_id: int) -> Meeting | None:
        with self._atomic():
            return self._meetings.get(meeting_id)

    def meeting_by_event_id(self, provider_event_id: str) -> Meeting | None:
        with self._atomic():
            found = [m for m in self._meetings.values() if m.provider_event_id == provider_event_id]
            return max(found, key=lambda m: m.id) if found else None

    def open_meetings(self, user_id: int) -> list[Meeting]:
        with self._atomic():
            found = [
                m
                for m in self._meetings.values()
                if m.user_id == user_id and m.state in OPEN_STATES
            ]
            return sorted(found, key=lambda m: (m.start, m.id))

    def stakeholder_load(
        self,
        emails: Collection[str],
        start: datetime,
        end: datetime,
        *,
        exclude_user_id: int,
        invited_since: datetime,
    ) -> tuple[dict[str, list[datetime]], set[str]]:
        wanted = {_email(e) for e in emails}
        if not wanted:
            return {}, set()
        start, end, invited_since = _utc(start), _utc(end), _utc(invited_since)
        counted = OPEN_STATES | {_S.COMPLETED}
        meetings: dict[str, list[datetime]] = {}
        invited: set[str] = set()
        with self._atomic():
            rows = sorted(
                (
                    (email, m)
                    for m in self._meetings.values()
                    if m.user_id != exclude_user_id and m.state in counted
                    # a group meeting: every attendee; a one-to-one: its stakeholder
                    for email in (m.attendees or (m.stakeholder_email,))
                    if email in wanted
                ),
                key=lambda row: row[1].start,
            )
            for email, m in rows:
                if m.start < end and m.end > start:
                    meetings.setdefault(email, []).append(m.start)
                # an invite sent, or approved to go out, since invited_since (not a proposal)
                sent = m.create_attempted_at or m.updated_at
                if m.state != _S.PROPOSED and m.state in OPEN_STATES and sent > invited_since:
                    invited.add(email)
        return meetings, invited

    def open_meetings_as_stakeholder(self, email: str) -> list[tuple[str, Meeting]]:
        wanted = _email(email)
        with self._atomic():
            found = sorted(
                (
                    m
                    for m in self._meetings.values()
                    if m.stakeholder_email == wanted and m.state in OPEN_STATES
                ),
                key=lambda m: (m.start, m.id),
            )
            return [(self._users[m.user_id].email, m) for m in found]

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
        with self._atomic():
            return RoundMeetings(
                open=self.open_meetings(user_id),
                declined=self.meetings_between(
                    user_id, declined_since, declined_until, states=[_S.DECLINED]
                ),
                groups=self.group_meetings(user_id, since=history_since),
                completed=self.meetings_between(user_id, history_since, now, states=[_S.COMPLETED]),
                as_stakeholder=self.open_meetings_as_stakeholder(owner_email),
            )

    def booking_rivals(
        self,
        emails: Collection[str],
        start: datetime,
        end: datetime,
        *,
        exclude_id: int,
        owner_email: str,
    ) -> tuple[list[Meeting], list[tuple[str, Meeting]]]:
        with self._atomic():
            return (
                self.active_overlapping(emails, start, end, exclude_id=exclude_id),
                self.open_meetings_as_stakeholder(owner_email),
            )

    def booking_rival_rows(
        self, emails: Collection[str], start: datetime, end: datetime, *, owner_email: str
    ) -> list[Rival]:
        with self._atomic():
            hits = {m.id for m in self.active_overlapping(emails, start, end, exclude_id=0)}
            theirs = {m.id for _, m in self.open_meetings_as_stakeholder(owner_email)}
            rows = [self._meetings[i] for i in sorted(hits | theirs)]
            return [
                Rival(self._users[m.user_id].email, m, m.id in hits, m.id in theirs)
                for m in sorted(rows, key=lambda m: (m.start, m.id))
            ]

    def active_overlapping(
        self, emails: Collection[str], start: datetime, end: datetime, *, exclude_id: int
    ) -> list[Meeting]:
        wanted = {_email(e) for e in emails}
        start, end = _utc(start), _utc(end)
        with self._atomic():
            found = [
                m
                for m in self._meetings.values()
                if m.id != exclude_id
                and (
                    m.state in _ACTIVE
                    or (m.state == _S.APPROVED and m.create_attempted_at is not None)
                )
                and m.start < end
                and m.end > start
                and (
                    m.stakeholder_email in wanted
                    or self._users[m.user_id].email in wanted
                    or not wanted.isdisjoint(m.attendees)
                )
            ]
            return sorted(found, key=lambda m: m.id)

    def group_meetings(self, user_id: int, *, since: datetime) -> list[Meeting]:
        since = _utc(since)
        with self._atomic():
            found = [
                m
                for m in self._meetings.values()
                if m.user_id == user_id and m.group_name is not None and m.start >= since
            ]
            return sorted(found, key=lambda m: (m.start, m.id))

    def set_attendee_status(
        self, meeting_id: int, email: str, status: AttendeeStatus, *, now: datetime
    ) -> bool:
        value, who = AttendeeStatus(status).value, _email(email)
        with self._atomic():
            m = self._meetings.get(meeting_id)
            if m is None or (who, value) in m.attendee_status or who not in m.attendees:
                return False
            answers = tuple((e, value if e == who else v) for e, v in m.attendee_status)
            self._meetings[meeting_id] = replace(m, attendee_status=answers)
            self._write_audit(
                at=_utc(now), actor="sync", meeting_id=meeting_id, user_id=m.user_id,
                detail=f"attendee {who} answered {value}",
            )  # fmt: skip
            return True

    def proposals_starting_before(self, before: datetime, limit: int) -> list[Meeting]:
        before = _utc(before)
        with self._atomic():
            due = [
                m for m in self._meetings.values() if m.state == _S.PROPOSED and m.start <= before
            ]
            return sorted(due, key=lambda m: (m.start, m.id))[:limit]

    def booking_leases_expired(self, now: datetime, limit: int) -> list[int]:
        now = _utc(now)
        with self._atomic():
            return sorted(
                m.id
                for m in self._meetings.values()
                if m.state == _S.BOOKING and m.lease_until is not None and m.lease_until <= now
            )[:limit]

    def meetings_by_state(self, state: MeetingState, *, limit: int | None = None) -> list[Meeting]:
        state = MeetingState(state)
        with self._atomic():
            found = sorted(
                (m for m in self._meetings.values() if m.state == state), key=lambda m: m.id
            )
            return found if limit is None else found[: max(limit, 0)]

    def meetings_between(
        self,
        user_id: int,
        start: datetime,
        end: datetime,
        *,
        states: Collection[MeetingState] | None = None,
    ) -> list[Meeting]:
        start, end = _utc(start), _utc(end)
        wanted = None if states is None else {MeetingState(s) for s in states}
        with self._atomic():
            found = [
                m
                for m in self._meetings.values()
                if m.user_id == user_id
                and m.start < end
                and m.end > start
                and (wanted is None or m.state in wanted)
            ]
            return sorted(found, key=lambda m: (m.start, m.id))

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
    ) -> bool:
        target = MeetingState(target)
        unknown = set(fields) - _TRANSITION_FIELDS
        if unknown:
            raise TypeError(f"transition() cannot set {', '.join(sorted(unknown))}")
        if expect is not None:
            check_transition(expect, target)
        now = _utc(now)
        values: dict[str, Any] = {
            k: _utc_or_none(v) if k in _DATETIME_FIELDS else v for k, v in fields.items()
        }
        with self._atomic():
            meeting = self._meetings.get(meeting_id)
            if meeting is None:
                raise UnknownMeeting(f"no meeting with id {meeting_id}")
            current = meeting.state
            if expect is not None and current != expect:
                return False
            check_transition(current, target)
            if attempt is not None and meeting.attempts != attempt:
                return False
            if target != _S.BOOKING:
                values.setdefault("lease_until", None)
            self._meetings[meeting_id] = replace(meeting, state=target, updated_at=now, **values)
            self._write_audit(
                at=now, actor=actor, meeting_id=meeting_id, user_id=meeting.user_id,
                from_state=current, to_state=target, detail=detail,
            )  # fmt: skip
            return True

    def reschedule(
        self,
        meeting_id: int,
        start: datetime,
        end: datetime,
        *,
        now: datetime,
        actor: str,
        why: str = "",
    ) -> bool:
        if not start < end:
            raise ValueError("a meeting must end after it starts")
        start, end, now = _utc(start), _utc(end), _utc(now)
        with self._atomic():
            meeting = self._meetings.get(meeting_id)
            if meeting is None or meeting.state in TERMINAL_STATES:
                return False
            old = f"{meeting.start.isoformat()}..{meeting.end.isoformat()}"
            self._meetings[meeting_id] = replace(
                meeting, start=start, end=end, updated_at=now, conflict_at=None
            )
            moved = f"moved from {old} to {start.isoformat()}..{end.isoformat()}"
            self._write_audit(
                at=now, actor=actor, meeting_id=meeting_id, user_id=meeting.user_id,
                detail=f"{why}; {moved}" if why else moved,
            )  # fmt: skip
            return True

    def set_conflict(
        self, meeting_id: int, at: datetime | None, *, now: datetime, detail: str
    ) -> bool:
        now = _utc(now)
        with self._atomic():
            meeting = self._meetings.get(meeting_id)
            if meeting is None or meeting.state in TERMINAL_STATES:
                return False
            if (meeting.conflict_at is None) == (at is None):
                return False
            self._meetings[meeting_id] = replace(
                meeting, conflict_at=None if at is None else _utc(at), updated_at=now
            )
            self._write_audit(
                at=now, actor="sync", meeting_id=meeting_id, user_id=meeting.user_id,
                detail=detail,
            )  # fmt: skip
            return True

    # -- booking jobs ------------------------------------------------------------------------

    def claim_for_booking(
        self, meeting_id: int, now: datetime, lease_s: float, *, actor: str = "worker"
    ) -> Meeting | None:
        if lease_s <= 0:
            raise ValueError("lease_s must be positive")
        now = _utc(now)
        with self._atomic():
            meeting = self._meetings.get(meeting_id)
            if meeting is None:
                return None
            current = meeting.state
            if current == _S.APPROVED and (
                meeting.next_attempt_at is None or meeting.next_attempt_at <= now
            ):
                detail = "claimed"
            elif current == _S.BOOKING and (
                meeting.lease_until is not None and meeting.lease_until <= now
            ):
                detail = f"lease expired at {meeting.lease_until.isoformat()}: re-claimed"
            else:
                return None
            # attempts doubles as a version number: it changes on every claim.
            claimed = replace(
                meeting,
                state=_S.BOOKING,
                lease_until=now + timedelta(seconds=lease_s),
                attempts=meeting.attempts + 1,
                updated_at=now,
            )
            self._meetings[meeting_id] = claimed
            self._write_audit(
                at=now, actor=actor, meeting_id=meeting_id, user_id=meeting.user_id,
                from_state=current, to_state=_S.BOOKING, detail=detail,
            )  # fmt: skip
            return claimed

    def claim_booking(
        self, meeting_id: int, now: datetime, lease_s: float, *, actor: str = "worker"
    ) -> BookingClaim | None:
        with self._atomic():
            claimed = self.claim_for_booking(meeting_id, now, lease_s, actor=actor)
            if claimed is None:
                return None
            return BookingClaim(claimed, self._users.get(claimed.user_id))

    def claim_bookings(
        self, meeting_ids: Sequence[int], now: datetime, lease_s: float, *, actor: str = "worker"
    ) -> dict[int, BookingClaim]:
        if lease_s <= 0:
            raise ValueError("lease_s must be positive")
        found: dict[int, BookingClaim] = {}
        with self._atomic():
            for meeting_id in dict.fromkeys(meeting_ids):
                claim = self.claim_booking(meeting_id, now, lease_s, actor=actor)
                if claim is not None:
                    found[meeting_id] = claim
        return found

    def mark_create_attempted(self, meeting_id: int, now: datetime, *, attempt: int) -> bool:
        now = _utc(now)
        with self._atomic():
            meeting = self._meetings.get(meeting_id)
            if meeting is None or meeting.state != _S.BOOKING or meeting.attempts != attempt:
                return False
            self._meetings[meeting_id] = replace(
                meeting,
                create_attempted_at=meeting.create_attempted_at or now,
                updated_at=now,
            )
            self._write_audit(
                at=now, actor="worker", meeting_id=meeting_id, user_id=meeting.user_id,
                detail="create attempted",
            )  # fmt: skip
            return True

    def mark_creates_attempted(self, claims: Sequence[tuple[int, int]], now: datetime) -> set[int]:
        with self._atomic():
            return {
                m for m, attempt in claims if self.mark_create_attempted(m, now, attempt=attempt)
            }

    def record_bookings(
        self, booked: Sequence[BookedEvent], now: datetime, *, actor: str = "worker"
    ) -> set[int]:
        moved: set[int] = set()
        with self._atomic():
            for b in booked:
                if b.meeting_id in self._meetings and self.transition(
                    b.meeting_id, _S.BOOKED, actor=actor, now=now, detail=b.detail,
                    expect=_S.BOOKING, attempt=b.attempt,
                    provider_event_id=b.provider_event_id, last_error=None,
                ):  # fmt: skip
                    moved.add(b.meeting_id)
        return moved

    def approved_needing_send(
        self, now: datetime, limit: int, *, send_lease_s: float = 120.0
    ) -> list[int]:
        if send_lease_s <= 0:
            raise ValueError("send_lease_s must be positive")
        now = _utc(now)
        in_flight_until = now + timedelta(seconds=send_lease_s)

        def due(m: Meeting) -> bool:
            owner = self._users.get(m.user_id)
            if owner is not None and owner.policy_missing_since is not None:
                return False  # the owner's policy file is gone: nothing is sent
            if owner is not None and owner.paused_at(now):
                return False  # the owner paused goodwill: sent once the pause ends
            if m.state == _S.APPROVED:
                return (m.next_attempt_at is None or m.next_attempt_at <= now) and (
                    m.lease_until is None or m.lease_until <= now
                )
            return m.state == _S.BOOKING and m.lease_until is not None and m.lease_until <= now

        with self._atomic():
            picked = sorted((m for m in self._meetings.values() if due(m)), key=lambda m: m.id)
            picked = picked[: max(limit, 0)]
            for m in picked:
                changed = replace(m, lease_until=in_flight_until, updated_at=now)
                if m.state == _S.BOOKING:
                    assert m.lease_until is not None  # picked by lease_until <= now
                    changed = replace(changed, state=_S.APPROVED, next_attempt_at=None)
                    self._write_audit(
                        at=now, actor="tick", meeting_id=m.id, user_id=m.user_id,
                        from_state=_S.BOOKING, to_state=_S.APPROVED,
                        detail=f"lease expired at {m.lease_until.isoformat()}: re-drive",
                    )  # fmt: skip
                self._meetings[m.id] = changed
            return [m.id for m in picked]

    def try_acquire_tick(
        self, holder: str, now: datetime, lease_s: float, *, max_lease_s: float | None = None
    ) -> bool:
        if lease_s <= 0:
            raise ValueError("lease_s must be positive")
        if max_lease_s is not None and lease_s > max_lease_s:
            raise ValueError(f"lease_s {lease_s:g} is longer than max_lease_s {max_lease_s:g}")
        now = _utc(now)
        until = now + timedelta(seconds=lease_s)
        with self._atomic():
            held = self._tick is not None and self._tick.lease_until > now
            if held and max_lease_s is not None:  # a lease from a clock running ahead is void
                assert self._tick is not None
                held = self._tick.lease_until <= now + timedelta(seconds=max_lease_s)
            if held:
                return False
            self._tick = _TickLease(holder, until, now)
            return True

    # -- the database clock and heartbeats ---------------------------------------------------

    def database_now(self) -> datetime:
        return _utc(self._database_clock())

    def record_heartbeat(self, name: str, holder: str) -> datetime:
        at = self.database_now()
        with self._atomic():
            self._heartbeats[name] = Heartbeat(name, holder, at, 0, None)
        return at

    def record_heartbeat_failure(self, name: str, error: str) -> int:
        with self._atomic():
            beat = self._heartbeats.get(name)
            if beat is None:
                return 0
            beat = replace(beat, failures=beat.failures + 1, last_error=error[:500])
            self._heartbeats[name] = beat
            return beat.failures

    def heartbeat(self, name: str) -> Heartbeat | None:
        with self._atomic():
            return self._heartbeats.get(name)

    def last_tick(self) -> tuple[str, datetime] | None:
        with self._atomic():
            return (self._tick.holder, self._tick.ticked_at) if self._tick else None

    # -- audit -------------------------------------------------------------------------------

    def audit_trail(self, meeting_id: int) -> list[AuditEntry]:
        with self._atomic():
            return [e for e in self._audit if e.meeting_id == meeting_id]

    def user_events(self, user_id: int, *, since: datetime) -> list[AuditEntry]:
        since = _utc(since)
        with self._atomic():
            return [e for e in self._audit if e.user_id == user_id and e.at >= since]

    def events_after(self, after_id: int, *, since: datetime, limit: int) -> list[AuditEntry]:
        since = _utc(since)
        with self._atomic():
            found = [e for e in self._audit if e.id > after_id and e.at >= since]
            return sorted(found, key=lambda e: e.id)[:limit]

    def record_event(
        self,
        *,
        now: datetime,
        actor: str,
        detail: str,
        user_id: int | None = None,
        meeting_id: int | None = None,
    ) -> None:
        now = _utc(now)
        with self._atomic():
            if user_id is not None:
                self._require_user(user_id)
            if meeting_id is not None and meeting_id not in self._meetings:
                raise ValueError(f"no meeting with id {meeting_id} (foreign key)")
            self._write_audit(
                at=now, actor=actor, user_id=user_id, meeting_id=meeting_id, detail=detail
            )

    # -- e-mails to the owner (digests and notices) -----------------------------------------

    def set_next_digest(self, user_id: int, at: datetime | None) -> None:
        with self._atomic():
            user = self._users.get(user_id)
            if user is not None:
                self._users[user_id] = replace(user, next_digest_at=_utc_or_none(at))

    def due_digest_users(self, now: datetime, limit: int) -> list[User]:
        now = _utc(now)
        with self._atomic():
            due = [
                u
                for u in self._users.values()
                if u.next_digest_at is not None
                and u.next_digest_at <= now
                and u.policy_missing_since is None
            ]
            due.sort(key=lambda u: (u.next_digest_at or now, u.id))
            return due[:limit]

    def claim_owner_mail(
        self, user_id: int, kind: OwnerMailKind, period_key: str, *, now: datetime, lease_s: float
    ) -> OwnerMail | None:
        if lease_s <= 0:
            raise ValueError("lease_s must be positive")
        now, kind = _utc(now), OwnerMailKind(kind)
        lease = now + timedelta(seconds=lease_s)
        key = (user_id, kind, period_key)
        with self._atomic():
            self._require_user(user_id)
            mail = self._owner_mails.get(key)
            if mail is None:
                mail = OwnerMail(
                    id=next(self._owner_mail_ids), user_id=user_id, kind=kind,
                    period_key=period_key, state="sending", claimed_at=now, lease_until=lease,
                    sent_at=None, attempts=1, last_error=None,
                )  # fmt: skip
            elif mail.state != "sent" and (mail.lease_until is None or mail.lease_until <= now):
                mail = replace(
                    mail, state="sending", claimed_at=now, lease_until=lease,
                    attempts=mail.attempts + 1,
                )  # fmt: skip
            else:
                return None
            self._owner_mails[key] = mail
            return mail

    def finish_owner_mail(
        self,
        mail_id: int,
        *,
        attempt: int,
        now: datetime,
        error: str | None = None,
        retry_at: datetime | None = None,
        next_digest_at: datetime | None = None,
    ) -> bool:
        now = _utc(now)
        with self._atomic():
            key = next((k for k, m in self._owner_mails.items() if m.id == mail_id), None)
            mail = None if key is None else self._owner_mails[key]
            if key is None or mail is None or mail.state != "sending" or mail.attempts != attempt:
                return False
            if error is None:
                mail = replace(mail, state="sent", sent_at=now, lease_until=None, last_error=None)
                user = self._users.get(mail.user_id)
                if next_digest_at is not None and user is not None:
                    self._users[user.id] = replace(user, next_digest_at=_utc(next_digest_at))
            else:
                lease = _utc(retry_at) if retry_at is not None else now
                mail = replace(mail, state="failed", lease_until=lease, last_error=error)
            self._owner_mails[key] = mail
            return True

    def last_owner_mail(self, user_id: int, kind: OwnerMailKind) -> OwnerMail | None:
        kind = OwnerMailKind(kind)
        with self._atomic():
            sent = [
                m
                for m in self._owner_mails.values()
                if m.user_id == user_id and m.kind is kind and m.state == "sent"
            ]
            return max(sent, key=lambda m: (m.sent_at or m.claimed_at, m.id), default=None)

    # -- contacts ----------------------------------------------------------------------------

    def record_contact(
        self, user_id: int, email: str, met_at: datetime, source: ContactSource
    ) -> None:
        source = ContactSource(source)
        key = (user_id, _email(email), _utc(met_at))
        with self._atomic():
            self._require_user(user_id)
            self._contacts.setdefault(key, source)

    def record_contacts(
        self, user_id: int, contacts: Mapping[str, datetime], source: ContactSource
    ) -> None:
        source = ContactSource(source)
        with self._atomic():
            self._require_user(user_id)
            for email, met_at in contacts.items():
                self._contacts.setdefault((user_id, _email(email), _utc(met_at)), source)

    def last_contacts(self, user_id: int) -> dict[str, datetime]:
        with self._atomic():
            latest: dict[str, datetime] = {}
            for uid, email, met_at in self._contacts:
                if uid == user_id and (email not in latest or met_at > latest[email]):
                    latest[email] = met_at
            return latest

    # -- stakeholder status ------------------------------------------------------------------

    def get_stakeholder_status(self, user_id: int, email: str) -> StakeholderStatus:
        wanted = _email(email)
        with self._atomic():
            return self._statuses.get((user_id, wanted), StakeholderStatus(user_id, wanted))

    def stakeholder_statuses(self, user_id: int) -> dict[str, StakeholderStatus]:
        with self._atomic():
            return {e: s for (uid, e), s in self._statuses.items() if uid == user_id}

    def save_stakeholder_status(self, status: StakeholderStatus) -> None:
        stored = replace(
            status,
            stakeholder_email=_email(status.stakeholder_email),
            paused_until=_utc_or_none(status.paused_until),
            backoff_until=_utc_or_none(status.backoff_until),
            last_declined_at=_utc_or_none(status.last_declined_at),
        )
        with self._atomic():
            self._require_user(status.user_id)
            self._statuses[(stored.user_id, stored.stakeholder_email)] = stored

    # -- credentials -------------------------------------------------------------------------

    def save_credential(
        self, user_email: str, provider: str, plaintext: bytes, *, now: datetime
    ) -> None:
        now = _utc(now)
        with self._atomic():
            self._credentials[(_email(user_email), provider)] = _Credential(plaintext, now)

    def load_credential(self, user_email: str, provider: str) -> bytes | None:
        with self._atomic():
            found = self._credentials.get((_email(user_email), provider))
            return None if found is None or found.revoked_reason is not None else found.plaintext

    def mark_credential_revoked(
        self, user_email: str, provider: str, reason: str, *, now: datetime
    ) -> bool:
        now = _utc(now)
        with self._atomic():
            found = self._credentials.get((_email(user_email), provider))
            if found is None:
                return False
            found.revoked_reason, found.updated_at = reason, now
            return True

    def flag_credential_revoked(
        self, user_email: str, provider: str, reason: str, *, now: datetime
    ) -> None:
        now = _utc(now)
        with self._atomic():
            key = (_email(user_email), provider)
            found = self._credentials.setdefault(key, _Credential(b"", now))
            found.revoked_reason, found.updated_at = reason, now

    def revoked_credentials(self) -> list[RevokedCredential]:
        with self._atomic():
            return [
                RevokedCredential(email, provider, c.revoked_reason or "", c.updated_at)
                for (email, provider), c in sorted(self._credentials.items())
                if c.revoked_reason is not None
            ]

    # -- replies held for the owner ----------------------------------------------------------

    def hold_reply(self, reply: NewHeldReply, *, now: datetime) -> HeldReply:
        now = _utc(now)
        with self._atomic():
            for held_id, digest in self._held_digests.items():
                if digest == reply.message_digest:
                    return self._held[held_id]
            new = HeldReply(
                id=next(self._held_ids),
                meeting_id=reply.meeting_id,
                user_id=reply.user_id,
                received_at=now,
                sender=_email(reply.sender)[:320],
                attendee=_email(reply.attendee)[:320],
                answer=AttendeeStatus(reply.answer),
                uid=reply.uid[:1024],
                sequence=reply.sequence,
                reason=reply.reason,
                state=HeldReplyState.HELD,
                decided_at=None,
            )
            self._held[new.id] = new
            self._held_digests[new.id] = reply.message_digest
            self._write_audit(
                at=now, actor="replies", meeting_id=reply.meeting_id, user_id=reply.user_id,
                detail=f"reply held for the owner ({new.id})",
            )  # fmt: skip
            return new

    def get_held_reply(self, held_id: int) -> HeldReply | None:
        with self._atomic():
            return self._held.get(held_id)

    def held_replies(
        self, user_id: int, *, states: Collection[HeldReplyState] = (HeldReplyState.HELD,)
    ) -> list[HeldReply]:
        wanted = {HeldReplyState(x) for x in states}
        with self._atomic():
            return [
                h
                for _, h in sorted(self._held.items())
                if h.user_id == user_id and h.state in wanted
            ]

    def decide_held_reply(
        self, held_id: int, state: HeldReplyState, *, now: datetime, actor: str
    ) -> bool:
        target = HeldReplyState(state)
        if target is HeldReplyState.HELD:
            raise ValueError("a held reply is decided as applied or refused")
        now = _utc(now)
        with self._atomic():
            held = self._held.get(held_id)
            if held is None or held.state is not HeldReplyState.HELD:
                return False
            self._held[held_id] = replace(held, state=target, decided_at=now)
            self._write_audit(
                at=now, actor=actor, meeting_id=held.meeting_id, user_id=held.user_id,
                detail=f"held reply {held_id} {target.value}",
            )  # fmt: skip
            return True


# A static check that the fake satisfies the port (mypy; free at run time).
_port_check: Callable[[], StorePort] = FakeStore


# -- the calendar ------------------------------------------------------------------------------

FAKE_PROVIDER = "fake"

#: The calls :class:`FakeCalendar` counts and can be told to fail.
Operation = Literal[
    "busy",
    "last_contacts",
    "create_event",
    "cancel_event",
    "cancel_by_key",
    "find_by_key",
    "move_event",
    "event_state",
    "set_attendee_status",
]


@dataclass(frozen=True, slots=True)
class FakeEvent:
    """One event on the fake provider: the organizer's, with one attendee.

    ``key`` is the idempotency key of an event goodwill created (None: one the people made
    themselves, which counts as organic contact).
    """

    id: str
    organizer: str
    attendee: str
    start: datetime
    end: datetime
    key: str | None = None
    title: str = ""
    description: str = ""
    response: AttendeeStatus = AttendeeStatus.NEEDS_ACTION
    cancelled: bool = False
    sequence: int = 0
    #: A new time the attendee proposed (a counter-proposal), if any.
    proposed: tuple[datetime, datetime] | None = None
    #: A group event's other attendees and their answers (``attendee`` is the first).
    others: tuple[tuple[str, AttendeeStatus], ...] = ()
    #: Where and how the draft said to meet (``EventDraft.location`` / ``video``).
    location: str | None = None
    video: str | None = None

    @property
    def attendees(self) -> tuple[str, ...]:
        """Everyone invited, ``attendee`` first."""
        return (self.attendee, *(e for e, _ in self.others))

    def answer_of(self, email: str) -> AttendeeStatus:
        """``email``'s answer (``needsAction`` for someone not invited)."""
        if email == self.attendee:
            return self.response
        return dict(self.others).get(email, AttendeeStatus.NEEDS_ACTION)

    def answered(self, email: str, status: AttendeeStatus) -> FakeEvent:
        """This event with ``email``'s answer set."""
        if email == self.attendee:
            return replace(self, response=status)
        return replace(self, others=tuple((e, status if e == email else a) for e, a in self.others))


@dataclass(frozen=True, slots=True)
class _Fault:
    #: Usually a :class:`ConnectorError`; anything else stands for the worker dying mid-call.
    error: Exception
    #: For ``create_event``: the event is stored first, then the error raised (a lost reply).
    after_write: bool = False


class FakeCalendar:
    """One in-memory provider implementing ``CalendarSource``, ``ContactHistory``,
    ``CalendarWriter``, ``ResponseReader`` and ``ReplyRecorder``.

    Event ids are opaque (``evt-1``, ``evt-2`` …), never derived from the key, so a caller that
    needs the event of a key must ask by key.
    """

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self._busy: defaultdict[str, list[BusyBlock]] = defaultdict(list)
        self._unavailable: dict[str, str] = {}
        self._events: dict[str, FakeEvent] = {}
        self._by_key: dict[str, str] = {}
        self._faults: defaultdict[str, deque[_Fault]] = defaultdict(deque)
        self._during: defaultdict[str, deque[Callable[[], None]]] = defaultdict(deque)
        self._ids = itertools.count(1)

    # -- wiring --------------------------------------------------------------------------------

    def backend(self, policy: Policy | None = None) -> CalendarBackend:
        """This calendar as every port of one backend (usable as the ``BackendFactory``)."""
        return CalendarBackend(FAKE_PROVIDER, self, self, self, self)

    # -- knobs for tests -----------------------------------------------------------------------

    def add_busy(
        self,
        email: str,
        start: datetime,
        end: datetime,
        *,
        show_as: ShowAs = ShowAs.BUSY,
    ) -> None:
        """A block on ``email``'s calendar that is not an event with anyone we know."""
        self._busy[_email(email)].append(BusyBlock(start, end, show_as=show_as))

    def add_meeting(self, organizer: str, attendee: str, start: datetime, end: datetime) -> str:
        """A meeting two people had (or will have) by themselves, both attending."""
        event = FakeEvent(
            id=self._next_id(),
            organizer=_email(organizer),
            attendee=_email(attendee),
            start=start,
            end=end,
            response=AttendeeStatus.ACCEPTED,
        )
        self._events[event.id] = event
        return event.id

    def make_unavailable(
        self, email: str, reason: str = "calendar unavailable: not shared"
    ) -> None:
        """Reading ``email``'s calendar reports it unavailable (not shared, not found)."""
        self._unavailable[_email(email)] = reason

    def respond(
        self, event_id: str, status: AttendeeStatus, *, attendee: str | None = None
    ) -> None:
        """The attendee (of a group event: ``attendee``) answers in their own calendar client."""
        event = self._events[event_id]
        who = event.attendee if attendee is None else _email(attendee)
        self._events[event_id] = event.answered(who, status)

    def cancel(self, event_id: str) -> None:
        """Someone cancels the event at the provider (the organizer in their client)."""
        event = self._events[event_id]
        self._events[event_id] = replace(event, cancelled=True, sequence=event.sequence + 1)

    def delete(self, event_id: str) -> None:
        """The event disappears from the provider altogether."""
        event = self._events.pop(event_id)
        if event.key is not None:
            self._by_key.pop(event.key, None)

    def propose(self, event_id: str, start: datetime, end: datetime) -> None:
        """The attendee proposes a new time (Graph ``proposedNewTime``)."""
        self._events[event_id] = replace(self._events[event_id], proposed=(start, end))

    def move(self, event_id: str, start: datetime, end: datetime) -> None:
        """The organizer drags the event to another time."""
        event = self._events[event_id]
        self._events[event_id] = replace(event, start=start, end=end, sequence=event.sequence + 1)

    def fail_next(self, operation: Operation, error: Exception, *, times: int = 1) -> None:
        """The next ``times`` calls of ``operation`` raise ``error`` (before doing anything)."""
        self._faults[operation].extend(_Fault(error) for _ in range(times))

    def lose_next_create_reply(self, error: Exception, *, times: int = 1) -> None:
        """The next ``times`` creates reach the provider (the event exists) but raise ``error``."""
        self._faults["create_event"].extend(_Fault(error, after_write=True) for _ in range(times))

    def during_next(self, operation: Operation, action: Callable[[], None]) -> None:
        """Run ``action`` (another worker, say) while the next ``operation`` call is in flight.

        A read has taken its snapshot and not answered yet; a write has not landed yet.
        """
        self._during[operation].append(action)

    # -- read-outs -----------------------------------------------------------------------------

    def events(
        self,
        *,
        attendee: str | None = None,
        organizer: str | None = None,
        cancelled: bool = False,
        goodwill_only: bool = True,
    ) -> list[FakeEvent]:
        """Events on the provider, oldest first (by default live goodwill events only)."""
        return [
            e
            for e in self._events.values()
            if (attendee is None or _email(attendee) in e.attendees)
            and (organizer is None or e.organizer == _email(organizer))
            and e.cancelled == cancelled
            and (e.key is not None or not goodwill_only)
        ]

    def event(self, event_id: str) -> FakeEvent:
        return self._events[event_id]

    def event_for_key(self, key: str) -> FakeEvent | None:
        event_id = self._by_key.get(key)
        return None if event_id is None else self._events[event_id]

    # -- CalendarSource ------------------------------------------------------------------------

    def busy(self, query: BusyQuery) -> BusyResult:
        self._enter("busy")
        window = query.window
        blocks: dict[str, list[BusyBlock]] = {}
        unavailable: dict[str, str] = {}
        for person in query.people:
            email = _email(person.email)
            if email in self._unavailable:
                unavailable[person.email] = self._unavailable[email]
                continue
            found = [*self._busy[email], *self._event_blocks(email)]
            blocks[person.email] = [
                replace(b, start=max(b.start, window.start), end=min(b.end, window.end))
                for b in sorted(found, key=lambda b: (b.start, b.end))
                if b.start < window.end and b.end > window.start
            ]
        self._in_flight("busy")
        return BusyResult(blocks=blocks, unavailable=unavailable)

    def _event_blocks(self, email: str) -> list[BusyBlock]:
        out: list[BusyBlock] = []
        for e in self._events.values():
            if e.cancelled:
                continue
            if e.organizer == email:
                # The organizer's own calendar shows which events are goodwill's (by key).
                out.append(BusyBlock(e.start, e.end, response=AttendeeStatus.ORGANIZER, key=e.key))
            elif email in e.attendees:
                out.append(BusyBlock(e.start, e.end, response=e.answer_of(email)))
        return out

    # -- ContactHistory ------------------------------------------------------------------------

    def last_contacts(
        self, owner: Person, emails: Sequence[str], since: datetime, until: datetime
    ) -> Mapping[str, datetime]:
        """Latest end of a meeting (not created by goodwill, not cancelled, nobody declined)
        that ended in ``(since, until]`` and that the owner and the person both attended (as
        the connectors: events overlapping the range that ended by ``until``)."""
        self._enter("last_contacts")
        me = _email(owner.email)
        wanted = {_email(e): e for e in emails}
        latest: dict[str, datetime] = {}
        for e in self._events.values():
            if e.key is not None or e.cancelled or e.response == AttendeeStatus.DECLINED:
                continue
            if not (since < e.end <= until):
                continue
            other = e.attendee if e.organizer == me else e.organizer if e.attendee == me else None
            if other is None or other not in wanted:
                continue
            name = wanted[other]
            if name not in latest or e.end > latest[name]:
                latest[name] = e.end
        self._in_flight("last_contacts")
        return latest

    # -- CalendarWriter ------------------------------------------------------------------------

    def create_event(self, draft: EventDraft) -> CreatedEvent:
        fault = self._enter("create_event", writes=True)
        existing = self._by_key.get(draft.idempotency_key)
        if existing is not None:
            if fault is not None:
                raise fault.error
            return CreatedEvent(provider_event_id=existing, created=False)
        self._in_flight("create_event")
        event = FakeEvent(
            id=self._next_id(),
            organizer=_email(draft.organizer.email),
            attendee=_email(draft.attendee.email),
            start=draft.start,
            end=draft.end,
            key=draft.idempotency_key,
            title=draft.title,
            description=draft.description,
            others=tuple(
                (_email(p.email), AttendeeStatus.NEEDS_ACTION) for p in draft.extra_attendees
            ),
            location=draft.location,
            video=draft.video,
        )
        self._events[event.id] = event
        self._by_key[draft.idempotency_key] = event.id
        if fault is not None:
            raise fault.error  # the event exists; the reply never arrives
        return CreatedEvent(provider_event_id=event.id, created=True)

    def cancel_event(self, organizer: Person, provider_event_id: str) -> None:
        self._enter("cancel_event")
        self._in_flight("cancel_event")
        self._cancel(organizer, provider_event_id)

    def cancel_by_key(self, organizer: Person, idempotency_key: str) -> None:
        self._enter("cancel_by_key")
        self._in_flight("cancel_by_key")
        event_id = self._by_key.get(idempotency_key)
        if event_id is not None:
            self._cancel(organizer, event_id)

    def move_event(
        self, organizer: Person, provider_event_id: str, start: datetime, end: datetime
    ) -> None:
        """Move the same event (SEQUENCE + 1); a cancelled or unknown one is gone."""
        self._enter("move_event")
        self._in_flight("move_event")
        event = self._events.get(provider_event_id)
        if event is None or event.cancelled or event.organizer != _email(organizer.email):
            raise ResourceGone(
                f"event {provider_event_id} not found", provider=FAKE_PROVIDER, status=404
            )
        self._events[provider_event_id] = replace(
            event, start=start, end=end, sequence=event.sequence + 1
        )

    def find_by_key(self, organizer: Person, idempotency_key: str) -> CreatedEvent | None:
        """The organizer's live event for ``idempotency_key`` (``created=False``), or None."""
        self._enter("find_by_key")
        event = self.event_for_key(idempotency_key)
        self._in_flight("find_by_key")
        if event is None or event.cancelled or event.organizer != _email(organizer.email):
            return None
        return CreatedEvent(provider_event_id=event.id, created=False)

    def _cancel(self, organizer: Person, event_id: str) -> None:
        event = self._events.get(event_id)
        if event is None or event.cancelled or event.organizer != _email(organizer.email):
            return  # gone or already cancelled counts as done
        self._events[event_id] = replace(event, cancelled=True, sequence=event.sequence + 1)

    # -- ResponseReader / ReplyRecorder --------------------------------------------------------

    def event_state(
        self, organizer: Person, provider_event_id: str, attendee_email: str
    ) -> EventState:
        self._enter("event_state")
        event = self._events.get(provider_event_id)
        self._in_flight("event_state")
        if event is None or event.organizer != _email(organizer.email):
            raise ResourceGone(
                f"event {provider_event_id} not found", provider=FAKE_PROVIDER, status=404
            )
        return EventState(
            response=event.answer_of(_email(attendee_email)),
            cancelled=event.cancelled,
            start=event.start,
            end=event.end,
            proposed=event.proposed,
        )

    def set_attendee_status(
        self,
        organizer: Person,
        provider_event_id: str,
        attendee_email: str,
        status: AttendeeStatus,
        *,
        sequence: int | None = None,
    ) -> bool:
        """Apply an e-mailed answer; one older than the event's current sequence is ignored."""
        self._enter("set_attendee_status")
        self._in_flight("set_attendee_status")
        event = self._events.get(provider_event_id)
        if event is None or _email(attendee_email) not in event.attendees:
            raise ResourceGone(
                f"event {provider_event_id} with attendee {attendee_email} not found",
                provider=FAKE_PROVIDER,
                status=404,
            )
        if sequence is not None and sequence < event.sequence:
            return False
        self._events[provider_event_id] = event.answered(_email(attendee_email), status)
        return True

    # -- plumbing ------------------------------------------------------------------------------

    def _in_flight(self, operation: Operation) -> None:
        if self._during[operation]:
            self._during[operation].popleft()()

    def _next_id(self) -> str:
        return f"evt-{next(self._ids)}"

    def _enter(self, operation: Operation, *, writes: bool = False) -> _Fault | None:
        """Count the call and pop its fault: raised here, or handed back when it comes after
        the write (only writers have one)."""
        self.calls[operation] += 1
        faults = self._faults[operation]
        if not faults:
            return None
        fault = faults.popleft()
        if fault.after_write and writes:
            return fault
        raise fault.error
