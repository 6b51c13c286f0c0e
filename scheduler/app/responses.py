"""Responses: follow what happens to an invite once it is out.

accepted / tentative / declined are mirrored; a decline backs the cadence off; an event
cancelled or moved at the provider is followed; once the end time passes an accepted or
tentative meeting is completed (counts as contact for both sides) and an unanswered one counts
towards pausing the stakeholder. Answers that come by e-mail (iMIP REPLY) are applied here too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from scheduler.app.groups import HISTORY_LOOKBACK, follow_group
from scheduler.app.pipeline import Pipeline, policy_for, with_status
from scheduler.app.ports import StorePort
from scheduler.app.records import ContactSource, Meeting, RoundMeetings
from scheduler.core.cadence import backoff_after_decline
from scheduler.core.errors import (
    AuthorizationRevoked,
    CalendarUnavailable,
    ConnectorError,
    RateLimited,
    ResourceGone,
)
from scheduler.core.intervals import Interval
from scheduler.core.model import AttendeeStatus
from scheduler.core.policy import Policy
from scheduler.core.ports import (
    CalendarBackend,
    EventState,
    ListedResponseReader,
    ReplyRecorder,
    ResponseReader,
)
from scheduler.core.states import FOLLOWED_STATES, MeetingState

__all__ = [
    "FOLLOWED_STATES",
    "OWNER_LEVEL_ERRORS",
    "STALE",
    "ReplyOutcome",
    "ReplyResult",
    "read_round_meetings",
    "record_organic",
    "record_reply",
    "sync_responses",
]

_S = MeetingState
log = logging.getLogger("goodwill.responses")
#: Errors that say the owner's calendar cannot be read at all (not that an event is gone):
#: following answers stops there and changes nothing.
OWNER_LEVEL_ERRORS = (AuthorizationRevoked, CalendarUnavailable)
#: Declined meetings are still followed this far back (the stakeholder may change their mind).
_DECLINED_LOOKBACK = timedelta(days=30)
_DECLINED_LOOKAHEAD = timedelta(days=400)
#: How long a stakeholder is paused after too many unanswered invites in a row.
_UNANSWERED_PAUSE = timedelta(weeks=12)


def record_organic(
    store: StorePort, user_id: int, organic: Mapping[str, datetime]
) -> dict[str, datetime]:
    """Record the contacts found on the calendar that are later than the store's latest for
    that person (only the latest is ever read): ONE statement, none when nothing is new.
    Returns the latest contact per lower-cased e-mail, as ``store.last_contacts`` now would."""
    latest = store.last_contacts(user_id)
    new: dict[str, datetime] = {}
    for email, met_at in organic.items():
        key = email.lower()
        known = new.get(key, latest.get(key))
        if known is None or met_at > known:
            new[key] = met_at
    if new:
        store.record_contacts(user_id, new, ContactSource.ORGANIC)
    return {**latest, **new}


def read_round_meetings(
    store: StorePort, user_id: int, owner_email: str, now: datetime
) -> RoundMeetings:
    """Every meeting read a planning round makes (following answers, expiring and withdrawing
    proposals, the stored state, the group history), in ONE store query."""
    return store.round_meetings(
        user_id,
        owner_email,
        now=now,
        declined_since=now - _DECLINED_LOOKBACK,
        declined_until=now + _DECLINED_LOOKAHEAD,
        history_since=now - HISTORY_LOOKBACK,
    )


_ANSWER = {
    AttendeeStatus.ACCEPTED: _S.ACCEPTED,
    AttendeeStatus.DECLINED: _S.DECLINED,
    AttendeeStatus.TENTATIVE: _S.TENTATIVE,
}


def sync_responses(
    p: Pipeline,
    user_id: int,
    *,
    policy: Policy | None = None,
    backend: CalendarBackend | None = None,
    on_counter: Callable[[Meeting, datetime, datetime], int] | None = None,
    meetings: RoundMeetings | None = None,
) -> int:
    """Follow the answers to the user's invites. Returns how many meetings changed.

    ``meetings``: the round's meetings (:func:`read_round_meetings`), already read.

    A transient provider error is raised (the caller retries); an event that is gone at the
    provider cancels its meeting. A new time the attendee proposed (Graph ``proposedNewTime``)
    goes to ``on_counter`` (the sync pass turns it into a proposal for the owner).
    """
    now = p.clock.now()
    if policy is None:
        policy = policy_for(p, p.store.get_user(user_id))
        if policy is None:
            return 0
    backend = backend or p.backends(policy)
    if backend.responses is None:
        return 0
    changed = 0
    followed = _followed_meetings(p, user_id, now, meetings)
    listed = _listed_states(p, policy, backend, followed)
    for m in followed:
        try:
            states = {
                email: listed.get((m.provider_event_id or "", email))
                or _event_state(p, policy, backend.provider, backend.responses, m, email)
                for email in (m.attendees or (m.stakeholder_email,))
            }
        except ConnectorError as exc:
            if exc.transient or isinstance(exc, OWNER_LEVEL_ERRORS):
                raise  # nothing is known of the events: change none of them
            if isinstance(exc, ResourceGone):
                changed += _event_gone(p, m, exc, now)
            else:  # this one read failed (a bug, a malformed reply): the event may well exist
                log.warning("meeting %s: answer not read: %s", m.id, type(exc).__name__)
            continue
        if m.is_group:  # every attendee's answer; the quorum (scheduler.app.groups)
            changed += follow_group(p, m, states, now)
            continue
        state = states[m.stakeholder_email]
        changed += _follow(p, policy, m, state, now)
        if state.proposed is not None and on_counter is not None and not state.cancelled:
            changed += on_counter(m, *state.proposed)
    return changed


def _event_state(
    p: Pipeline, policy: Policy, provider: str, reader: ResponseReader, m: Meeting, email: str
) -> EventState:
    with p.provider_call(provider, "event_state"):
        return reader.event_state(policy.owner.person, m.provider_event_id or "", email)


#: Answers are read with one listing of the owner's calendar (where the provider offers one)
#: from this many followed meetings on, when they all fall within this span.
_LIST_FROM = 3
_LIST_SPAN = timedelta(weeks=6)


def _listed_states(
    p: Pipeline, policy: Policy, backend: CalendarBackend, followed: list[Meeting]
) -> Mapping[tuple[str, str], EventState]:
    """The followed meetings' answers from ONE listing of the owner's calendar over their
    times (:class:`ListedResponseReader`), instead of one read per event; empty when the
    provider has no listing, there are few meetings, or they are spread too far apart. What the
    listing does not find (a cancelled or moved event) is read one by one, as before, and so is
    everything when the listing fails with a permanent error."""
    reader = backend.responses
    if not isinstance(reader, ListedResponseReader) or len(followed) < _LIST_FROM:
        return {}
    window = Interval(min(m.start for m in followed), max(m.end for m in followed))
    if window.end - window.start > _LIST_SPAN:
        return {}
    wanted = [
        (m.provider_event_id or "", email)
        for m in followed
        for email in (m.attendees or (m.stakeholder_email,))
    ]
    try:
        with p.provider_call(backend.provider, "event_states"):
            return reader.listed_event_states(policy.owner.person, wanted, window)
    except ConnectorError as exc:
        if isinstance(exc, (RateLimited, *OWNER_LEVEL_ERRORS)):
            raise  # the reads one by one would meet the same
        return {}  # (a listing that times out, a bad page): read them one by one


def _followed_meetings(
    p: Pipeline, user_id: int, now: datetime, meetings: RoundMeetings | None
) -> list[Meeting]:
    if meetings is None:
        meetings = read_round_meetings(p.store, user_id, "", now)
    return [
        m
        for m in meetings.open + meetings.declined
        if m.state in FOLLOWED_STATES and m.provider_event_id
    ]


def _event_gone(p: Pipeline, m: Meeting, exc: ConnectorError, now: datetime) -> int:
    if m.state == _S.DECLINED:
        return 0
    p.store.transition(
        m.id,
        _S.CANCELLED,
        actor="sync",
        now=now,
        detail=f"event gone at the provider ({type(exc).__name__})",
    )
    return 1


def _follow(p: Pipeline, policy: Policy, m: Meeting, state: EventState, now: datetime) -> int:
    """Mirror one event's state onto its meeting. Returns how many changes were written."""
    if state.cancelled:
        if m.state == _S.DECLINED:
            return 0
        p.store.transition(
            m.id, _S.CANCELLED, actor="sync", now=now, detail="cancelled at the provider"
        )
        return 1
    changed = 0
    if (state.start, state.end) != (m.start, m.end):
        changed += int(p.store.reschedule(m.id, state.start, state.end, now=now, actor="sync"))
    # The stakeholder's etiquette row is read only where a change is written (not per
    # followed meeting: most rounds find every answer already mirrored).
    answered, m_state = _mirror_answer(p, policy, m, state.response, now)
    changed += answered
    if state.end <= now and m_state in (_S.ACCEPTED, _S.TENTATIVE):
        changed += _complete(p, policy, m, m_state, state.end, now)
    elif state.end <= now and m_state == _S.BOOKED:
        changed += _unanswered(p, policy, m, now)
    return changed


def _mirror_answer(
    p: Pipeline,
    policy: Policy,
    m: Meeting,
    response: AttendeeStatus,
    now: datetime,
) -> tuple[int, MeetingState]:
    """Write the attendee's answer; returns (changes, the meeting's state afterwards)."""
    target = _ANSWER.get(response)
    if target is None or target == m.state:
        return 0, m.state
    if not p.store.transition(
        m.id, target, actor="sync", now=now, expect=m.state, detail="attendee answered"
    ):
        # Someone else moved it meanwhile (cancelled, answered): go on from where it is now.
        now_there = p.store.get_meeting(m.id)
        return 0, now_there.state if now_there is not None else m.state
    status = p.store.get_stakeholder_status(m.user_id, m.stakeholder_email)
    if target == _S.DECLINED and m.conflict_at is not None:
        # Declined because of the conflict goodwill saw too: no back-off, plan them again.
        p.store.save_stakeholder_status(with_status(status, last_declined_at=now))
        p.store.set_next_plan(m.user_id, now)
    elif target == _S.DECLINED:
        stakeholder = policy.stakeholder(m.stakeholder_email)
        until = (
            backoff_after_decline(policy, stakeholder, now)
            if stakeholder is not None
            else now + timedelta(weeks=4)
        )
        p.store.save_stakeholder_status(
            with_status(status, backoff_until=until, last_declined_at=now, unanswered_in_row=0)
        )
    elif status.unanswered_in_row:
        p.store.save_stakeholder_status(with_status(status, unanswered_in_row=0))
    return 1, target


def _complete(
    p: Pipeline, policy: Policy, m: Meeting, state: MeetingState, end: datetime, now: datetime
) -> int:
    """The meeting took place: it counts as contact, for the stakeholder too if they use us."""
    if not p.store.transition(
        m.id, _S.COMPLETED, actor="sync", now=now, expect=state, detail="meeting took place"
    ):
        return 0
    p.store.record_contact(m.user_id, m.stakeholder_email, end, ContactSource.GOODWILL)
    other = p.store.get_user_by_email(m.stakeholder_email)
    if other is not None:
        p.store.record_contact(other.id, policy.owner.email, end, ContactSource.GOODWILL)
    return 1


def _unanswered(p: Pipeline, policy: Policy, m: Meeting, now: datetime) -> int:
    """The slot passed without an answer: count it, and pause the stakeholder after N in a row."""
    if not p.store.transition(
        m.id, _S.CANCELLED, actor="sync", now=now, expect=_S.BOOKED, detail="unanswered"
    ):
        return 0
    status = p.store.get_stakeholder_status(m.user_id, m.stakeholder_email)
    count = status.unanswered_in_row + 1
    if count >= policy.etiquette.max_unanswered:
        p.store.save_stakeholder_status(
            with_status(
                status,
                unanswered_in_row=count,
                paused_until=now + _UNANSWERED_PAUSE,
                paused_reason=f"{count} invites in a row went unanswered",
            )
        )
    else:
        p.store.save_stakeholder_status(with_status(status, unanswered_in_row=count))
    return 1


#: The detail of an answer older than the event (its SEQUENCE is lower): ignored.
STALE = "ignored: older than the invite"


class ReplyOutcome(StrEnum):
    """What became of one e-mailed answer."""

    APPLIED = "applied"  # written on the organizer's copy and followed
    IGNORED = "ignored"  # nothing to do (older than the invite, already decided, …)
    HELD = "held"  # kept for the owner: the sender is not the attendee it answers for
    REFUSED = "refused"  # will never apply (the event is gone, authentication failed)
    UNKNOWN = "unknown"  # no goodwill meeting has this UID


@dataclass(frozen=True, slots=True)
class ReplyResult:
    meeting_id: int | None
    state: MeetingState | None
    detail: str
    outcome: ReplyOutcome = ReplyOutcome.IGNORED


def record_reply(
    p: Pipeline,
    provider_event_id: str,
    attendee_email: str,
    status: AttendeeStatus,
    *,
    sequence: int | None = None,
) -> ReplyResult:
    """Apply an attendee's answer that came by e-mail (iMIP REPLY), then follow it.

    The answer is written on the organizer's copy at the provider (so the calendar shows it),
    and the meeting's state is brought up to date by :func:`sync_responses`. Whether the sender
    may answer for the attendee is decided before (:mod:`scheduler.app.replies`).

    A permanent provider error (the event is gone) is the result ``refused``, never raised, so
    one such answer cannot stop a batch; a transient one is raised (the caller retries later).
    """
    m = p.store.meeting_by_event_id(provider_event_id)
    if m is None:
        return ReplyResult(None, None, "no goodwill meeting with this UID", ReplyOutcome.UNKNOWN)
    if attendee_email.lower() not in (m.attendees or (m.stakeholder_email.lower(),)):
        return ReplyResult(m.id, m.state, "the reply is not from the invited attendee")
    policy = policy_for(p, p.store.get_user(m.user_id))
    if policy is None:
        return ReplyResult(m.id, m.state, "the owner's policy is unavailable")
    backend = p.backends(policy)
    recorder = backend.writer
    if not isinstance(recorder, ReplyRecorder):
        return ReplyResult(m.id, m.state, f"provider {backend.provider} records answers itself")
    try:
        with p.provider_call(backend.provider, "record_reply"):
            applied = recorder.set_attendee_status(
                policy.owner.person, provider_event_id, attendee_email, status, sequence=sequence
            )
    except ConnectorError as exc:
        if exc.transient:
            raise
        gone = isinstance(exc, ResourceGone)
        why = "the event no longer exists at the provider" if gone else "the provider refused it"
        return ReplyResult(
            m.id, m.state, f"refused: {why} ({type(exc).__name__})", ReplyOutcome.REFUSED
        )
    sync_responses(p, m.user_id, policy=policy, backend=backend)
    after = p.store.get_meeting(m.id)
    if not applied:
        return ReplyResult(m.id, after.state if after else None, STALE)
    return ReplyResult(m.id, after.state if after else None, "applied", ReplyOutcome.APPLIED)
