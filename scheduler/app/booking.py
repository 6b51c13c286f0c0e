"""Booking: turn one approved meeting into a real invite, exactly once.

Claim it, make sure it may still happen, re-check both calendars, record that a create is about
to go out, create the event with the meeting's idempotency key, and record the result, fenced on
the claim number. The provider's idempotency key makes a retried create return the existing
event, so a crash anywhere in here never leads to a second invite.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from scheduler.app.pipeline import Pipeline, policy_for, revoke
from scheduler.app.records import Meeting
from scheduler.core.busy import apply_busy_rules
from scheduler.core.errors import (
    AuthorizationRevoked,
    ConfigurationError,
    ConnectorError,
    RateLimited,
)
from scheduler.core.intervals import Interval, overlaps_any
from scheduler.core.invites import invite_text
from scheduler.core.model import BusyQuery, CreatedEvent, EventDraft
from scheduler.core.policy import Policy, Stakeholder
from scheduler.core.ports import CalendarBackend, CalendarWriter
from scheduler.core.states import MeetingState

__all__ = ["BookOutcome", "BookResult", "book_meeting", "other_side_meeting"]

_S = MeetingState


class BookOutcome(StrEnum):
    BOOKED = "booked"
    ALREADY = "already"  # not claimable: done, leased elsewhere or not due
    SLOT_TAKEN = "slot_taken"
    RETRY = "retry"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class BookResult:
    outcome: BookOutcome
    retry_after_s: float | None = None
    detail: str = ""


@dataclass(frozen=True, slots=True)
class _Ending:
    """Why a claimed meeting will not be booked, and where it goes."""

    target: MeetingState
    detail: str
    error: str | bool | None
    outcome: BookOutcome


def book_meeting(p: Pipeline, meeting_id: int) -> BookResult:
    """Book one approved meeting: claim it, re-check both calendars, create the event."""
    now = p.clock.now()
    m = p.store.claim_for_booking(meeting_id, now, p.lease_s)
    if m is None:
        return BookResult(BookOutcome.ALREADY)
    user = p.store.get_user(m.user_id)
    policy = policy_for(p, user)
    if policy is None:
        return _retry(p, m, now, "policy unavailable", 600.0)
    try:
        backend = p.backends(policy)
    except ConfigurationError as exc:
        return _retry(p, m, now, f"calendar not configured: {exc}", 3600.0)
    writer = backend.writer
    if writer is None:
        error = f"provider {backend.provider} cannot create events"
        _finish(p, m, now, _S.FAILED, "read-only provider", error=error)
        return BookResult(BookOutcome.FAILED, detail="read-only provider")
    stakeholder = policy.stakeholder(m.stakeholder_email)
    ending = _why_not(policy, stakeholder, m, now)
    if ending is not None or stakeholder is None:
        assert ending is not None
        return _end_unbooked(p, m, backend, writer, policy, ending, now)
    try:
        taken = _slot_taken(p, m, policy, backend, stakeholder, now)
        if taken is not None:
            return taken
        created = _create(p, m, policy, backend, writer, stakeholder, now)
        if created is None:
            return BookResult(BookOutcome.ALREADY, detail="the claim was lost")
    except AuthorizationRevoked as exc:
        revoke(p, policy.owner.email, backend.provider, str(exc), now)
        return _retry(p, m, now, "credential revoked: reconnect the calendar", 3600.0)
    except ConnectorError as exc:
        return _after_provider_error(p, m, exc, now)
    return _record_booked(p, m, created, now)


# -- the steps -------------------------------------------------------------------------------


def _why_not(
    policy: Policy, stakeholder: Stakeholder | None, m: Meeting, now: datetime
) -> _Ending | None:
    """A reason this meeting may no longer happen at all, or None when it still may."""
    domain = m.stakeholder_email.rsplit("@", 1)[-1].lower()
    if stakeholder is None:
        return _Ending(
            _S.CANCELLED, "stakeholder no longer in the policy", None, BookOutcome.CANCELLED
        )
    if domain not in {d.lower() for d in policy.allowed_domains}:
        return _Ending(_S.FAILED, "domain not allowed", True, BookOutcome.FAILED)
    if m.start <= now:
        return _Ending(
            _S.FAILED, "slot passed", "slot passed before it could be booked", BookOutcome.FAILED
        )
    return None


def _end_unbooked(
    p: Pipeline,
    m: Meeting,
    backend: CalendarBackend,
    writer: CalendarWriter,
    policy: Policy,
    ending: _Ending,
    now: datetime,
) -> BookResult:
    """End a meeting that will not happen; take back an invite an earlier attempt may have sent."""
    if m.create_attempted_at is not None:
        # An earlier attempt may have created the event and died before recording it.
        try:
            with p.provider_call(backend.provider, "cancel_by_key"):
                writer.cancel_by_key(policy.owner.person, m.idempotency_key)
        except ConnectorError as exc:
            if exc.transient:
                return _retry(p, m, now, f"cancelling a stray event: {exc}", None)
    _finish(p, m, now, ending.target, ending.detail, error=ending.error)
    return BookResult(ending.outcome, detail=ending.detail)


def _slot_taken(
    p: Pipeline,
    m: Meeting,
    policy: Policy,
    backend: CalendarBackend,
    stakeholder: Stakeholder,
    now: datetime,
) -> BookResult | None:
    """Whether another meeting or event now holds the slot (then the meeting ends), else None.

    Only checked before the first create: after one, our own event may fill the slot.
    """
    if m.create_attempted_at is not None:
        return None
    clash = _clashing_meeting(p, m, policy)
    if clash is not None:
        _finish(p, m, now, _S.CANCELLED, f"slot_taken: clashes with meeting {clash.id}")
        p.store.set_next_plan(m.user_id, now)
        return BookResult(BookOutcome.SLOT_TAKEN)
    other_side = other_side_meeting(p, policy.owner.email, m)
    if other_side is not None:
        _finish(p, m, now, _S.CANCELLED, f"pair_taken: their meeting {other_side.id} comes first")
        return BookResult(BookOutcome.CANCELLED, detail="the other side booked first")
    if _calendars_busy(p, m, policy, backend, stakeholder):
        _finish(p, m, now, _S.CANCELLED, "slot_taken")
        p.store.set_next_plan(m.user_id, now)  # back to planning
        return BookResult(BookOutcome.SLOT_TAKEN)
    return None


def _clashing_meeting(p: Pipeline, m: Meeting, policy: Policy) -> Meeting | None:
    """Another goodwill meeting with either person at this time, booked or being booked.

    One being booked by another worker wins when its id is lower: the provider re-check cannot
    see an event that is being created at this very moment.
    """
    emails = [policy.owner.email, m.stakeholder_email]
    for c in p.store.active_overlapping(emails, m.start, m.end, exclude_id=m.id):
        if c.state != _S.BOOKING or c.id < m.id:
            return c
    return None


def other_side_meeting(p: Pipeline, owner_email: str, m: Meeting) -> Meeting | None:
    """The stakeholder's own goodwill meeting with this owner, booked or claimed before ``m``.

    Two users who list each other get one meeting: the first one booked wins.
    """
    for other_owner, theirs in p.store.open_meetings_as_stakeholder(owner_email):
        if other_owner != m.stakeholder_email.lower():
            continue
        if theirs.state in (_S.BOOKED, _S.ACCEPTED, _S.TENTATIVE) or (
            theirs.state == _S.BOOKING and theirs.id < m.id
        ):
            return theirs
    return None


def _calendars_busy(
    p: Pipeline, m: Meeting, policy: Policy, backend: CalendarBackend, stakeholder: Stakeholder
) -> bool:
    """Read both calendars again for this slot (owner with buffer) under the busy rules."""
    owner, person = policy.owner.person, policy.person_of(stakeholder)
    buffer = policy.availability.buffer
    with p.provider_call(backend.provider, "recheck"):
        result = backend.source.busy(
            BusyQuery(window=Interval(m.start - buffer, m.end + buffer), people=(owner, person))
        )
    rules = policy.availability.busy
    slot = Interval(m.start, m.end)
    owner_busy = apply_busy_rules(result.blocks.get(owner.email, []), rules)
    their_busy = apply_busy_rules(result.blocks.get(m.stakeholder_email, []), rules)
    return (
        m.stakeholder_email in result.unavailable
        or owner.email in result.unavailable
        or overlaps_any(slot.padded(buffer), owner_busy)
        or overlaps_any(slot, their_busy)
    )


def _create(
    p: Pipeline,
    m: Meeting,
    policy: Policy,
    backend: CalendarBackend,
    writer: CalendarWriter,
    stakeholder: Stakeholder,
    now: datetime,
) -> CreatedEvent | None:
    """Record that a create goes out, then create the event. None: our claim was lost."""
    if m.create_attempted_at is None and not p.store.mark_create_attempted(
        m.id, now, attempt=m.attempts
    ):
        return None
    person = policy.person_of(stakeholder)
    title, description = invite_text(policy, stakeholder, person)
    draft = EventDraft(
        idempotency_key=m.idempotency_key,
        organizer=policy.owner.person,
        attendee=person,
        start=m.start,
        end=m.end,
        title=title,
        description=description,
        location=policy.meeting.location,
        video=None if policy.meeting.video == "none" else policy.meeting.video,
    )
    with p.provider_call(backend.provider, "create_event"):
        return writer.create_event(draft)


def _after_provider_error(
    p: Pipeline, m: Meeting, exc: ConnectorError, now: datetime
) -> BookResult:
    if exc.transient:
        retry_after = exc.retry_after_s if isinstance(exc, RateLimited) else None
        return _retry(p, m, now, f"{type(exc).__name__}: {exc}", retry_after)
    _finish(p, m, now, _S.FAILED, "permanent provider error", error=f"{type(exc).__name__}: {exc}")
    return BookResult(BookOutcome.FAILED, detail=type(exc).__name__)


def _record_booked(p: Pipeline, m: Meeting, created: CreatedEvent, now: datetime) -> BookResult:
    moved = p.store.transition(
        m.id,
        _S.BOOKED,
        actor="worker",
        now=now,
        expect=_S.BOOKING,
        attempt=m.attempts,
        provider_event_id=created.provider_event_id,
        last_error=None,
        detail="created" if created.created else "reconciled existing event",
    )
    if moved and p.metrics is not None:
        p.metrics.bookings_total.inc()
    return BookResult(BookOutcome.BOOKED if moved else BookOutcome.ALREADY)


# -- ending an attempt -----------------------------------------------------------------------


def _finish(
    p: Pipeline,
    m: Meeting,
    now: datetime,
    target: MeetingState,
    detail: str,
    error: str | bool | None = None,
) -> bool:
    """End a booking attempt we hold (fenced on our claim number) in ``target``.

    ``error=True`` records ``detail`` as the meeting's last error too.
    """
    last_error = detail if error is True else (error or None)
    fields = {"last_error": last_error[:500]} if last_error else {}
    return p.store.transition(
        m.id, target, actor="worker", now=now, expect=_S.BOOKING, attempt=m.attempts,
        detail=detail, **fields,
    )  # fmt: skip


def _retry(p: Pipeline, m: Meeting, now: datetime, error: str, after_s: float | None) -> BookResult:
    if m.attempts >= p.max_attempts:
        gave_up = f"gave up after {m.attempts} attempts: {error}"
        _finish(p, m, now, _S.FAILED, "retries exhausted", error=gave_up)
        return BookResult(BookOutcome.FAILED, detail="retries exhausted")
    delay = (
        after_s
        if after_s is not None
        else min(p.retry_cap_s, p.retry_base_s * 2 ** (m.attempts - 1))
    )
    p.store.transition(
        m.id,
        _S.APPROVED,
        actor="worker",
        now=now,
        expect=_S.BOOKING,
        attempt=m.attempts,
        next_attempt_at=now + timedelta(seconds=delay),
        last_error=error[:500],
        detail=f"retry in {delay:.0f}s",
    )
    return BookResult(BookOutcome.RETRY, retry_after_s=delay, detail=error)
