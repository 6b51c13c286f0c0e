"""Booking: turn one approved meeting into a real invite, exactly once.

Claim it, make sure it may still happen, re-check both calendars, record that a create is about
to go out, create the event with the meeting's idempotency key, and record the result, fenced on
the claim number. The provider's idempotency key makes a retried create return the existing
event, so a crash anywhere in here never leads to a second invite.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TypeVar

from scheduler.app.groups import group_draft, group_refusal, group_slot_taken
from scheduler.app.pipeline import Pipeline, policy_for, revoke
from scheduler.app.recheck import SharedRead, calendars_busy
from scheduler.app.records import BookingClaim, Meeting
from scheduler.app.rivals import (
    RivalsRead,
    clashing_meeting,
    other_side_meeting,
    rival_people,
)
from scheduler.core.errors import (
    AuthorizationRevoked,
    CalendarDataError,
    ConfigurationError,
    ConnectorError,
    RateLimited,
)
from scheduler.core.invites import invite_text
from scheduler.core.model import CreatedEvent, EventDraft
from scheduler.core.policy import Policy, Stakeholder
from scheduler.core.ports import CalendarBackend, CalendarWriter
from scheduler.core.states import MeetingState

__all__ = [
    "BookOutcome",
    "BookResult",
    "Claimed",
    "attempt",
    "before_announce",
    "book_meeting",
    "check_claimed",
    "claim_for_booking",
    "create_announced",
    "other_side_meeting",
    "rival_people",
]

_S = MeetingState
_R = TypeVar("_R", bound="BookResult | None")


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
    ready = claim_for_booking(p, meeting_id, p.clock.now())
    return ready if isinstance(ready, BookResult) else attempt(ready)


def claim_for_booking(p: Pipeline, meeting_id: int, now: datetime) -> BookResult | Claimed:
    """Claim one meeting and check it may still be booked: what to book, or how it ended."""
    claim = p.store.claim_booking(meeting_id, now, p.lease_s)  # with the owner's row
    if claim is None:
        return BookResult(BookOutcome.ALREADY)
    return check_claimed(p, claim, now)


def check_claimed(
    p: Pipeline,
    claim: BookingClaim,
    now: datetime,
    policies: dict[int | None, Policy | None] | None = None,
) -> BookResult | Claimed:
    """Check a claimed meeting may still be booked: what to book, or how it ended.
    ``policies``: the owners' policies already loaded (by user id), filled in as they are."""
    m, user = claim.meeting, claim.owner
    if user is not None and user.paused_at(now) and m.create_attempted_at is None:
        return _held_by_pause(p, m, now, user.paused_until or now)
    loaded = {} if policies is None else policies
    if (key := None if user is None else user.id) not in loaded:
        loaded[key] = policy_for(p, user)
    policy = loaded[key]
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
    b = _Booking(p, m, policy, backend, writer, now)
    # A group meeting's people are its attendees, checked by scheduler.app.groups.
    stakeholder = None if m.is_group else policy.stakeholder(m.stakeholder_email)
    ending = _group_why_not(b) if m.is_group else _why_not(policy, stakeholder, m, now)
    if ending is not None:
        return _end_unbooked(b, ending)
    return Claimed(b, stakeholder)


def attempt(ready: Claimed) -> BookResult:
    """Book a claimed meeting (see :func:`claim_for_booking`); provider errors end here."""
    b = ready.booking
    return _guarded(b, lambda: _book(b, ready.stakeholder))


def before_announce(ready: Claimed) -> BookResult | None:
    """A batch's first steps (:mod:`.booking_batch`): an earlier create looked up, the store's
    other meetings checked (from ``rivals``). None: the meeting may be announced."""
    b = ready.booking
    return _guarded(b, lambda: _before_announce(b))


def create_announced(ready: Claimed) -> BookResult | None:
    """A batch's steps once the create is announced: the store checked again (``rivals``, read
    after the announce), both calendars re-checked, the event created. None: created
    (``ready.booking.created``), for the batch to record."""
    b = ready.booking
    stakeholder = ready.stakeholder
    assert stakeholder is not None, "a batch announces one-to-ones only"

    def steps() -> BookResult | None:
        taken = _announced_clash(b)
        if taken is not None:
            return taken
        if _calendars_busy(b, stakeholder):
            return _end_unbooked(b, _taken("slot_taken"), replan=True)
        b.created = _create(b, stakeholder)
        return None

    return _guarded(b, steps)


def _guarded(b: _Booking, steps: Callable[[], _R]) -> _R | BookResult:
    """Run booking steps; a provider error ends the attempt the way its kind says."""
    try:
        return steps()
    except AuthorizationRevoked as exc:
        revoke(b.p, b.policy.owner.email, b.backend.provider, str(exc), b.now)
        return _retry(b.p, b.m, b.now, "credential revoked: reconnect the calendar", 3600.0)
    except ConnectorError as exc:
        return _after_provider_error(b, exc)
    except CalendarDataError as exc:  # a reply the re-check cannot read: try again later
        return _retry(b.p, b.m, b.now, f"unreadable calendar data: {exc}", 600.0, attempt=b)


def _held_by_pause(p: Pipeline, m: Meeting, now: datetime, until: datetime) -> BookResult:
    """The owner paused goodwill after this meeting was sent for booking: back to approved,
    due when the pause ends, the attempt not counted. (The tick sends no paused owner's
    meetings; this catches one that was already queued.)"""
    p.store.transition(
        m.id, _S.APPROVED, actor="worker", now=now, expect=_S.BOOKING, attempt=m.attempts,
        next_attempt_at=until, attempts=max(0, m.attempts - 1),
        detail="held: the owner paused goodwill",
    )  # fmt: skip
    return BookResult(BookOutcome.ALREADY, detail="held: the owner paused goodwill")


@dataclass(frozen=True, slots=True)
class Claimed:
    """A claimed meeting that may still be booked, and its stakeholder (None for a group)."""

    booking: _Booking
    stakeholder: Stakeholder | None

    @property
    def meeting(self) -> Meeting:
        return self.booking.m


@dataclass(slots=True)
class _Booking:
    """One claimed booking attempt and what it works with."""

    p: Pipeline
    m: Meeting
    policy: Policy
    backend: CalendarBackend
    writer: CalendarWriter
    now: datetime
    #: This attempt recorded that its create goes out (from then on the event may exist).
    announced: bool = False
    #: Both calendars read once for several of the owner's bookings (``booking_batch``): the
    #: re-check uses it when it answers for this meeting, instead of reading again.
    busy: SharedRead | None = None
    #: One store read for several bookings of the owner: the next look answers from it, once.
    rivals: RivalsRead | None = None
    created: CreatedEvent | None = None  #: a batch's create, until the batch records it

    @property
    def uncertain(self) -> bool:
        """An earlier attempt sent a create whose outcome is unknown: the event may exist."""
        return self.m.create_attempted_at is not None


def _book(b: _Booking, stakeholder: Stakeholder | None) -> BookResult:
    """The steps, in order. Raises ConnectorError from the provider calls."""
    taken = _before_announce(b) or _slot_taken(b, stakeholder)
    if taken is not None:
        return taken
    if not b.uncertain:
        if not b.p.store.mark_create_attempted(b.m.id, b.now, attempt=b.m.attempts):
            return BookResult(BookOutcome.ALREADY, detail="the claim was lost")
        b.announced = True
    taken = _announced_clash(b)
    if taken is not None:
        return taken
    return _record_booked(b, _create(b, stakeholder))


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


def _group_why_not(b: _Booking) -> _Ending | None:
    """As :func:`_why_not`, for a group meeting (every attendee, the provider's limit)."""
    if b.m.start <= b.now:
        return _Ending(
            _S.FAILED, "slot passed", "slot passed before it could be booked", BookOutcome.FAILED
        )
    refusal = group_refusal(b.policy, b.m, b.backend.provider)
    if refusal is None:
        return None
    target, why = refusal
    if target == _S.CANCELLED:
        return _Ending(target, why, None, BookOutcome.CANCELLED)
    return _Ending(target, why, True, BookOutcome.FAILED)


def _end_unbooked(b: _Booking, ending: _Ending, *, replan: bool = False) -> BookResult:
    """End a meeting that will not happen; take back an invite an earlier attempt may have sent."""
    if b.uncertain:
        # An earlier attempt may have created the event and died before recording it (or a
        # stalled worker may still be creating it): cancel it by its key, which is a no-op
        # when there is none.
        try:
            with b.p.provider_call(b.backend.provider, "cancel_by_key"):
                b.writer.cancel_by_key(b.policy.owner.person, b.m.idempotency_key)
        except ConnectorError as exc:
            if exc.transient:
                return _retry(b.p, b.m, b.now, f"cancelling a stray event: {exc}", None)
    _finish(b.p, b.m, b.now, ending.target, ending.detail, error=ending.error)
    if replan:
        b.p.store.set_next_plan(b.m.user_id, b.now)  # back to planning
    return BookResult(ending.outcome, detail=ending.detail)


def _taken(detail: str) -> _Ending:
    return _Ending(_S.CANCELLED, detail, None, BookOutcome.SLOT_TAKEN)


def _clashed(b: _Booking, clash: Meeting) -> BookResult:
    return _end_unbooked(b, _taken(f"slot_taken: clashes with meeting {clash.id}"), replan=True)


def _pair_taken(b: _Booking, theirs: Meeting) -> BookResult:
    why = f"pair_taken: their meeting {theirs.id} comes first"
    return _end_unbooked(b, _Ending(_S.CANCELLED, why, None, BookOutcome.CANCELLED))


def _before_announce(b: _Booking) -> BookResult | None:
    """An earlier create that got through is recorded; else the store's other meetings are
    looked at (one-to-ones; a group meeting's look is :func:`_slot_taken`'s)."""
    if b.uncertain:
        found = _look_up(b)
        if found is not None:  # the lost create got through: nothing more to send
            return _record_booked(b, found)
    return None if b.m.is_group else _store_taken(b)


def _store_taken(b: _Booking) -> BookResult | None:
    """Whether another goodwill meeting holds this one-to-one's slot or pair (it ends), else
    None."""
    overlapping, theirs = _rivals(b)
    clash = clashing_meeting(b.m, overlapping, announced_only=False)
    if clash is not None:
        return _clashed(b, clash)
    other_side = other_side_meeting(b.p, b.policy.owner.email, b.m, known=theirs)
    if other_side is not None:
        return _pair_taken(b, other_side)
    return None


def _slot_taken(b: _Booking, stakeholder: Stakeholder | None) -> BookResult | None:
    """After :func:`_before_announce`: whether another meeting or event now holds the slot
    (then the meeting ends), else None."""
    if stakeholder is None:  # a group meeting: the store, then its people in one busy read
        overlapping, _ = _rivals(b)
        clash = clashing_meeting(b.m, overlapping, announced_only=False)
        if clash is not None:
            return _clashed(b, clash)
        why_not = group_slot_taken(b.p, b.policy, b.backend, b.m)
        return None if why_not is None else _end_unbooked(b, _taken(why_not), replan=True)
    if _calendars_busy(b, stakeholder):
        return _end_unbooked(b, _taken("slot_taken"), replan=True)
    return None


def _rivals(b: _Booking) -> tuple[list[Meeting], list[tuple[str, Meeting]]]:
    """One read: the meetings overlapping this one's people and time, and the open meetings
    other owners have with this owner as their stakeholder."""
    emails = rival_people(b.policy, b.m)
    read, b.rivals = b.rivals, None  # a batch's read answers one look only
    if read is not None:
        return read.answer(b.m, emails)
    return b.p.store.booking_rivals(
        emails, b.m.start, b.m.end, exclude_id=b.m.id, owner_email=b.policy.owner.email
    )


def _announced_clash(b: _Booking) -> BookResult | None:
    """After announcing our create, look again: someone else who announced first wins.

    Announce, then check: of two workers that race for one person's slot (or for one pair),
    the one that announces second always sees the first and backs off; at worst both back off
    and are planned again. Never both create.
    """
    overlapping, theirs = _rivals(b)
    clash = clashing_meeting(b.m, overlapping, announced_only=True)
    if clash is not None:
        return _clashed(b, clash)
    other_side = other_side_meeting(
        b.p, b.policy.owner.email, b.m, announced_only=True, known=theirs
    )
    if other_side is not None:
        return _pair_taken(b, other_side)
    return None


def _calendars_busy(b: _Booking, stakeholder: Stakeholder) -> bool:
    return calendars_busy(b.p, b.policy, b.backend, stakeholder, b.m.start, b.m.end, read=b.busy)


def _look_up(b: _Booking) -> CreatedEvent | None:
    """After a create whose outcome is unknown: the event, if it got through."""
    with b.p.provider_call(b.backend.provider, "find_by_key"):
        return b.writer.find_by_key(b.policy.owner.person, b.m.idempotency_key)


def _create(b: _Booking, stakeholder: Stakeholder | None) -> CreatedEvent:
    if stakeholder is None:  # ONE event with every attendee, the presenter named
        with b.p.provider_call(b.backend.provider, "create_event"):
            return b.writer.create_event(group_draft(b.policy, b.m))
    policy = b.policy
    person = policy.person_of(stakeholder)
    title, description = invite_text(policy, stakeholder, person)
    meeting = policy.meeting_of(stakeholder)  # kind, place and video of their tier or their own
    draft = EventDraft(
        idempotency_key=b.m.idempotency_key,
        organizer=policy.owner.person,
        attendee=person,
        start=b.m.start,
        end=b.m.end,
        title=title,
        description=description,
        location=meeting.location,
        video=None if meeting.video == "none" else meeting.video,
    )
    with b.p.provider_call(b.backend.provider, "create_event"):
        return b.writer.create_event(draft)


def _after_provider_error(b: _Booking, exc: ConnectorError) -> BookResult:
    if exc.transient:
        retry_after = exc.retry_after_s if isinstance(exc, RateLimited) else None
        return _retry(b.p, b.m, b.now, f"{type(exc).__name__}: {exc}", retry_after, attempt=b)
    error = f"{type(exc).__name__}: {exc}"
    _finish(b.p, b.m, b.now, _S.FAILED, "permanent provider error", error=error)
    return BookResult(BookOutcome.FAILED, detail=type(exc).__name__)


def _record_booked(b: _Booking, created: CreatedEvent) -> BookResult:
    moved = b.p.store.transition(
        b.m.id,
        _S.BOOKED,
        actor="worker",
        now=b.now,
        expect=_S.BOOKING,
        attempt=b.m.attempts,
        provider_event_id=created.provider_event_id,
        last_error=None,
        detail="created" if created.created else "reconciled existing event",
    )
    if moved and b.p.metrics is not None:
        b.p.metrics.bookings_total.inc()
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


def _retry(
    p: Pipeline,
    m: Meeting,
    now: datetime,
    error: str,
    after_s: float | None,
    *,
    attempt: _Booking | None = None,
) -> BookResult:
    """Back to ``approved`` with a delay, or ``failed`` once the attempts are used up.

    Giving up after a create whose outcome is unknown also takes back the event it may have
    made (best effort), so a failed meeting leaves no invite behind.
    """
    if m.attempts >= p.max_attempts:
        if attempt is not None and (attempt.uncertain or attempt.announced):
            try:
                attempt.writer.cancel_by_key(attempt.policy.owner.person, m.idempotency_key)
            except ConnectorError as exc:
                error = f"{error}; the event may exist: cancelling it failed ({exc})"
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
