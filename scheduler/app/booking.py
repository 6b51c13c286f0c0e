"""The booking pipeline's use cases: register policies, plan a user, book a meeting, follow
responses, approve/decline proposals, expire stale ones.

Each function reads state from the store, does one piece of work through the ports, and writes
the outcome with a compare-and-set, so calling it twice (a redelivered message, a second worker)
is harmless. Nothing here imports dramatiq: the actors in ``workers/`` are thin wrappers.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol

from scheduler.app.planning import ORGANIC_LOOKBACK, dry_run_plan
from scheduler.app.policies import PolicyBook
from scheduler.core.busy import apply_busy_rules
from scheduler.core.cadence import backoff_after_decline
from scheduler.core.clock import Clock
from scheduler.core.errors import (
    AuthorizationRevoked,
    ConfigurationError,
    ConnectorError,
    PolicyIssue,
    RateLimited,
)
from scheduler.core.intervals import Interval, overlaps_any
from scheduler.core.invites import invite_text
from scheduler.core.model import AttendeeStatus, BusyQuery, EventDraft
from scheduler.core.planner import ExistingMeeting, Plan
from scheduler.core.policy import Policy
from scheduler.core.ports import (
    CalendarSource,
    CalendarWriter,
    ContactHistory,
    ReplyRecorder,
    ResponseReader,
)
from scheduler.core.states import MeetingState
from scheduler.store import ContactSource, Meeting, NewMeeting, StakeholderStatus, Store, User

__all__ = [
    "BackendFactory",
    "BookOutcome",
    "BookResult",
    "CalendarBackend",
    "Pipeline",
    "approve",
    "book_meeting",
    "decline",
    "expire_proposals",
    "idempotency_key",
    "plan_user",
    "record_reply",
    "register_policies",
    "sync_responses",
]

if TYPE_CHECKING:
    from scheduler.entrypoints.metrics import Metrics

log = logging.getLogger("goodwill.booking")

_S = MeetingState
#: States whose invite is out and whose answer we follow.
FOLLOWED_STATES = (_S.BOOKED, _S.ACCEPTED, _S.TENTATIVE, _S.DECLINED)


@dataclass(frozen=True, slots=True)
class CalendarBackend:
    """The connector objects serving one user's provider. Writers are optional (read-only ICS)."""

    provider: str
    source: CalendarSource
    history: ContactHistory | None = None
    writer: CalendarWriter | None = None
    responses: ResponseReader | None = None


class BackendFactory(Protocol):
    def __call__(self, policy: Policy) -> CalendarBackend: ...


@dataclass
class Pipeline:
    """What every use case needs; built once per process by the composition root.

    Attributes:
        lease_s: how long a booking claim holds; longer than the actor's time limit.
        send_lease_s: how long a sent ``book_meeting`` message counts as in flight.
        plan_every: how often a user is re-planned when nothing else brings it forward.
        max_attempts: booking attempts before a meeting is marked failed.
        plan_retry_s: when a planning round failed or its message was lost, retry after this.
        metrics: counters and histograms for /metrics (None: not collected).
    """

    store: Store
    clock: Clock
    backends: BackendFactory
    policies: PolicyBook
    lease_s: float = 300.0
    send_lease_s: float = 120.0
    plan_every: timedelta = timedelta(hours=12)
    retry_base_s: float = 30.0
    retry_cap_s: float = 6 * 3600.0
    max_attempts: int = 8
    plan_retry_s: float = 300.0
    metrics: Metrics | None = None

    @contextmanager
    def provider_call(self, provider: str, operation: str) -> Iterator[None]:
        """Count and time one provider call (no-op without metrics)."""
        if self.metrics is None:
            yield
            return
        with self.metrics.provider_call(provider, operation):
            yield

    @contextmanager
    def plan_cycle(self) -> Iterator[None]:
        if self.metrics is None:
            yield
            return
        with self.metrics.plan_cycle():
            yield


def idempotency_key(user_id: int, stakeholder: str, start: datetime) -> str:
    """Stable key for one (user, stakeholder, slot): the provider-side dedupe id derives from it."""
    raw = f"goodwill:{user_id}:{stakeholder.lower()}:{start.isoformat()}"
    return "gw" + hashlib.sha256(raw.encode()).hexdigest()[:30]


# -- policies ---------------------------------------------------------------------------------


def register_policies(p: Pipeline) -> list[PolicyIssue]:
    """Scan the policy directory: register new users, bring edited ones forward, report bad files.

    Returns every issue found (bad files are reported, never fatal for the other users).
    """
    now = p.clock.now()
    issues: list[PolicyIssue] = []
    for pf in p.policies.scan():
        issues.extend(pf.issues)
        if pf.policy is None:
            log.warning(
                "policy file %s is invalid and has no good version: skipped (%s); "
                "check it with: goodwill validate %s",
                pf.path, pf.issues[0] if pf.issues else "unreadable", pf.path,
            )  # fmt: skip
            continue
        user_id = p.store.upsert_user(pf.policy.owner.email, pf.path, pf.content_hash, now=now)
        message = None
        if pf.issues:
            message = "; ".join(str(i) for i in pf.issues[:5])
            log.warning("policy file %s is invalid: using its last good version", pf.path)
        p.store.record_policy_error(user_id, message)
    return issues


def _policy_for(p: Pipeline, user: User) -> Policy | None:
    pf = p.policies.load(user.policy_path)
    if pf.issues:
        p.store.record_policy_error(user.id, "; ".join(str(i) for i in pf.issues[:5]))
    return pf.policy


# -- planning ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlanRun:
    """What one planning round did (for the demo, logs and tests)."""

    user_id: int
    plan: Plan | None
    meeting_ids: tuple[int, ...] = ()
    error: str | None = None


def plan_user(p: Pipeline, user_id: int) -> PlanRun:
    """Plan one user: follow responses, read busy time once, write proposals.

    Auto-mode proposals are written as ``approved``; the tick sends ``book_meeting`` for them
    after this transaction has committed. Always reschedules the user's next round.
    """
    with p.plan_cycle():
        return _plan_user(p, user_id)


def _plan_user(p: Pipeline, user_id: int) -> PlanRun:
    now = p.clock.now()
    user = p.store.get_user(user_id)
    if user is None:
        return PlanRun(user_id, None, error="unknown user")
    policy = _policy_for(p, user)
    if policy is None:
        p.store.set_next_plan(user_id, now + timedelta(hours=1))
        return PlanRun(user_id, None, error="policy invalid")
    try:
        backend = p.backends(policy)
    except ConfigurationError as exc:  # e.g. no grant yet: loud in the log and the audit trail
        log.warning("user %s: calendar not configured: %s", user_id, exc)
        p.store.record_event(
            now=now, actor="planner", user_id=user_id, detail=f"not configured: {exc}"
        )
        p.store.set_next_plan(user_id, now + timedelta(hours=1))
        return PlanRun(user_id, None, error="not configured")
    try:
        sync_responses(p, user_id, policy=policy, backend=backend)
    except ConnectorError as exc:  # following answers is best effort; planning still runs
        log.warning("user %s: following responses failed: %s", user_id, type(exc).__name__)
    expire_proposals(p, user_id=user_id, policy=policy)

    for mine in p.store.open_meetings(user_id):
        if mine.state == _S.PROPOSED and _other_side(p, policy.owner.email, mine) is not None:
            p.store.transition(
                mine.id, _S.CANCELLED, actor="planner", now=now, expect=_S.PROPOSED,
                detail="withdrawn: the stakeholder's side booked a meeting with you first",
            )  # fmt: skip
    open_meetings = p.store.open_meetings(user_id)
    existing = [ExistingMeeting(m.stakeholder_email, m.start, m.end) for m in open_meetings]
    # A stakeholder who is a goodwill user too may already have booked this pair from their
    # side: that meeting blocks its slot and counts as the open meeting for the pair.
    existing += [
        ExistingMeeting(other_owner, m.start, m.end)
        for other_owner, m in p.store.open_meetings_as_stakeholder(policy.owner.email)
    ]
    statuses = p.store.stakeholder_statuses(user_id)
    backoff = {e: st.backoff_until for e, st in statuses.items() if st.backoff_until}
    paused = {e for e, st in statuses.items() if st.paused_until and st.paused_until > now}
    try:
        if backend.history is not None:
            emails = [s.email for s in policy.stakeholders]
            with p.provider_call(backend.provider, "read_history"):
                organic = backend.history.last_contacts(
                    policy.owner.person, emails, now - ORGANIC_LOOKBACK, now
                )
            for email, met_at in organic.items():
                p.store.record_contact(user_id, email, met_at, ContactSource.ORGANIC)
        with p.provider_call(backend.provider, "read_busy"):
            plan = dry_run_plan(
                policy,
                source=backend.source,
                history=None,  # read above and recorded: the store now holds every contact
                now=now,
                goodwill_contacts=p.store.last_contacts(user_id),
                existing=existing,
                backoff_until=backoff,
                paused=paused,
            )
    except AuthorizationRevoked as exc:
        _revoke(p, policy.owner.email, backend.provider, str(exc), now)
        p.store.set_next_plan(user_id, now + timedelta(hours=1))
        p.store.record_event(now=now, actor="planner", user_id=user_id, detail="credential revoked")
        return PlanRun(user_id, None, error="credential revoked")
    except ConnectorError as exc:
        delay = (
            exc.retry_after_s
            if isinstance(exc, RateLimited) and exc.retry_after_s
            else p.plan_retry_s
        )
        p.store.set_next_plan(user_id, now + timedelta(seconds=delay))
        p.store.record_event(
            now=now,
            actor="planner",
            user_id=user_id,
            detail=f"calendar read failed: {type(exc).__name__}",
        )
        return PlanRun(user_id, None, error=type(exc).__name__)

    new = [
        NewMeeting(
            stakeholder_email=pr.stakeholder,
            kind=pr.kind,
            start=pr.start,
            end=pr.end,
            mode=pr.mode,
            idempotency_key=idempotency_key(user_id, pr.stakeholder, pr.start),
            provider=backend.provider,
            reason=pr.reason,
            state=_S.APPROVED if pr.mode == "auto" else _S.PROPOSED,
        )
        for pr in plan.proposals
    ]
    ids = p.store.add_meetings(user_id, new, now=now) if new else []
    for skip in plan.skipped:
        p.store.record_event(
            now=now,
            actor="planner",
            user_id=user_id,
            detail=f"skipped {skip.stakeholder} [{skip.code.value}]: {skip.reason}",
        )
    p.store.set_next_plan(user_id, now + p.plan_every, planned_at=now)
    return PlanRun(user_id, plan, tuple(ids))


# -- booking ----------------------------------------------------------------------------------


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


_CREATE_MARK = "create attempted"


def book_meeting(p: Pipeline, meeting_id: int) -> BookResult:
    """Book one approved meeting: claim it, re-check both calendars, create the event.

    The provider's idempotency key makes a retried create return the existing event, so a
    crash anywhere in here never leads to a second invite.
    """
    now = p.clock.now()
    m = p.store.claim_for_booking(meeting_id, now, p.lease_s)
    if m is None:
        return BookResult(BookOutcome.ALREADY)
    user = p.store.get_user(m.user_id)
    policy = _policy_for(p, user) if user else None
    if policy is None:
        return _retry(p, m, now, "policy unavailable", 600.0)
    try:
        backend = p.backends(policy)
    except ConfigurationError as exc:
        return _retry(p, m, now, f"calendar not configured: {exc}", 3600.0)
    if backend.writer is None:
        _finish(
            p,
            m,
            now,
            _S.FAILED,
            "read-only provider",
            error=f"provider {backend.provider} cannot create events",
        )
        return BookResult(BookOutcome.FAILED, detail="read-only provider")
    stakeholder = policy.stakeholder(m.stakeholder_email)
    domain = m.stakeholder_email.rsplit("@", 1)[-1].lower()
    ending: tuple[MeetingState, str, str | bool | None, BookOutcome] | None = None
    if stakeholder is None:
        ending = (_S.CANCELLED, "stakeholder no longer in the policy", None, BookOutcome.CANCELLED)
    elif domain not in {d.lower() for d in policy.allowed_domains}:
        ending = (_S.FAILED, "domain not allowed", True, BookOutcome.FAILED)
    elif m.start <= now:
        ending = (
            _S.FAILED,
            "slot passed",
            "slot passed before it could be booked",
            BookOutcome.FAILED,
        )
    if ending is not None:
        target, detail, error, outcome = ending
        if _create_attempted(p, m):
            # An earlier attempt may have created the event and died before recording it:
            # take it back, so no invite is left behind for a meeting that will not happen.
            try:
                with p.provider_call(backend.provider, "cancel_by_key"):
                    backend.writer.cancel_by_key(policy.owner.person, m.idempotency_key)
            except ConnectorError as exc:
                if exc.transient:
                    return _retry(p, m, now, f"cancelling a stray event: {exc}", None)
        _finish(p, m, now, target, detail, error=error)
        return BookResult(outcome, detail=detail)
    assert stakeholder is not None
    person = policy.person_of(stakeholder)
    owner = policy.owner.person
    # Another goodwill meeting with either person at this time, already booked or being booked
    # by another worker (the lower id wins a tie), means this slot is taken: the provider
    # re-check below cannot see an event that is being created at this very moment.
    clash = [
        c
        for c in p.store.active_overlapping(
            [owner.email, m.stakeholder_email], m.start, m.end, exclude_id=m.id
        )
        if c.state != _S.BOOKING or c.id < m.id
    ]
    if clash and not _create_attempted(p, m):
        _finish(p, m, now, _S.CANCELLED, f"slot_taken: clashes with meeting {clash[0].id}")
        p.store.set_next_plan(m.user_id, now)
        return BookResult(BookOutcome.SLOT_TAKEN)
    # The stakeholder uses goodwill too and their side already books a coffee with this owner
    # (planned in the same round): one meeting per pair, the first one wins.
    other_side = _other_side(p, owner.email, m)
    if other_side is not None and not _create_attempted(p, m):
        _finish(p, m, now, _S.CANCELLED, f"pair_taken: their meeting {other_side.id} comes first")
        return BookResult(BookOutcome.CANCELLED, detail="the other side booked first")
    try:
        # Re-check only before the first create: after one, our own event fills the slot.
        if not _create_attempted(p, m):
            buffer = policy.availability.buffer
            window = Interval(m.start - buffer, m.end + buffer)
            with p.provider_call(backend.provider, "recheck"):
                result = backend.source.busy(BusyQuery(window=window, people=(owner, person)))
            rules = policy.availability.busy
            slot = Interval(m.start, m.end)
            taken = (
                m.stakeholder_email in result.unavailable
                or owner.email in result.unavailable
                or overlaps_any(
                    slot.padded(buffer), apply_busy_rules(result.blocks.get(owner.email, []), rules)
                )
                or overlaps_any(
                    slot, apply_busy_rules(result.blocks.get(m.stakeholder_email, []), rules)
                )
            )
            if taken:
                _finish(p, m, now, _S.CANCELLED, "slot_taken")
                p.store.set_next_plan(m.user_id, now)  # back to planning
                return BookResult(BookOutcome.SLOT_TAKEN)
            p.store.record_event(
                now=now, actor="worker", meeting_id=m.id, user_id=m.user_id, detail=_CREATE_MARK
            )
        title, description = invite_text(policy, stakeholder, person)
        draft = EventDraft(
            idempotency_key=m.idempotency_key,
            organizer=owner,
            attendee=person,
            start=m.start,
            end=m.end,
            title=title,
            description=description,
            location=policy.meeting.location,
            video=None if policy.meeting.video == "none" else policy.meeting.video,
        )
        with p.provider_call(backend.provider, "create_event"):
            created = backend.writer.create_event(draft)
    except AuthorizationRevoked as exc:
        _revoke(p, owner.email, backend.provider, str(exc), now)
        return _retry(p, m, now, "credential revoked: reconnect the calendar", 3600.0)
    except ConnectorError as exc:
        if exc.transient:
            retry_after = exc.retry_after_s if isinstance(exc, RateLimited) else None
            return _retry(p, m, now, f"{type(exc).__name__}: {exc}", retry_after)
        _finish(
            p, m, now, _S.FAILED, "permanent provider error", error=f"{type(exc).__name__}: {exc}"
        )
        return BookResult(BookOutcome.FAILED, detail=type(exc).__name__)
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


def _other_side(p: Pipeline, owner_email: str, m: Meeting) -> Meeting | None:
    """The stakeholder's own goodwill meeting with this owner, booked or claimed before ``m``."""
    for other_owner, theirs in p.store.open_meetings_as_stakeholder(owner_email):
        if other_owner != m.stakeholder_email.lower():
            continue
        if theirs.state in (_S.BOOKED, _S.ACCEPTED, _S.TENTATIVE) or (
            theirs.state == _S.BOOKING and theirs.id < m.id
        ):
            return theirs
    return None


def _revoke(p: Pipeline, email: str, provider: str, reason: str, now: datetime) -> None:
    """Flag the grant so /readyz and the report show it (app-wide grants get a marker row)."""
    if not p.store.mark_credential_revoked(email, provider, reason[:500], now=now):
        p.store.save_credential(email, provider, b"", now=now)
        p.store.mark_credential_revoked(email, provider, reason[:500], now=now)


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


def _create_attempted(p: Pipeline, m: Meeting) -> bool:
    if m.attempts <= 1:
        return False
    return any(e.detail == _CREATE_MARK for e in p.store.audit_trail(m.id))


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


# -- responses --------------------------------------------------------------------------------

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
) -> int:
    """Follow the answers to the user's invites. Returns how many meetings changed.

    accepted/tentative/declined are mirrored; a decline backs the cadence off; an event
    cancelled or moved at the provider is followed; once the end time passes an accepted or
    tentative meeting is completed (counts as contact) and an unanswered one counts towards
    pausing the stakeholder (``etiquette.max_unanswered`` in a row).
    """
    now = p.clock.now()
    if policy is None:
        user = p.store.get_user(user_id)
        policy = _policy_for(p, user) if user else None
        if policy is None:
            return 0
    backend = backend or p.backends(policy)
    if backend.responses is None:
        return 0
    owner = policy.owner.person
    changed = 0
    for m in p.store.open_meetings(user_id) + p.store.meetings_between(
        user_id, now - timedelta(days=30), now + timedelta(days=400), states=[_S.DECLINED]
    ):
        if m.state not in FOLLOWED_STATES or not m.provider_event_id:
            continue
        try:
            with p.provider_call(backend.provider, "event_state"):
                state = backend.responses.event_state(
                    owner, m.provider_event_id, m.stakeholder_email
                )
        except ConnectorError as exc:
            if exc.transient:
                raise
            if m.state != _S.DECLINED:
                p.store.transition(
                    m.id,
                    _S.CANCELLED,
                    actor="sync",
                    now=now,
                    detail=f"event gone at the provider ({type(exc).__name__})",
                )
                changed += 1
            continue
        changed += _follow(
            p, policy, m, state.response, state.cancelled, state.start, state.end, now
        )
    return changed


def _follow(
    p: Pipeline,
    policy: Policy,
    m: Meeting,
    response: AttendeeStatus,
    cancelled: bool,
    start: datetime,
    end: datetime,
    now: datetime,
) -> int:
    store = p.store
    if cancelled:
        if m.state != _S.DECLINED:
            store.transition(
                m.id, _S.CANCELLED, actor="sync", now=now, detail="cancelled at the provider"
            )
            return 1
        return 0
    changed = 0
    if (start, end) != (m.start, m.end):
        changed += int(store.reschedule(m.id, start, end, now=now, actor="sync"))
    target = _ANSWER.get(response)
    status = store.get_stakeholder_status(m.user_id, m.stakeholder_email)
    if target is not None and target != m.state:
        if store.transition(
            m.id, target, actor="sync", now=now, expect=m.state, detail="attendee answered"
        ):
            changed += 1
            if target == _S.DECLINED:
                stakeholder = policy.stakeholder(m.stakeholder_email)
                until = (
                    backoff_after_decline(policy, stakeholder, now)
                    if stakeholder is not None
                    else now + timedelta(weeks=4)
                )
                store.save_stakeholder_status(
                    _replace(status, backoff_until=until, last_declined_at=now, unanswered_in_row=0)
                )
            elif status.unanswered_in_row:
                store.save_stakeholder_status(_replace(status, unanswered_in_row=0))
        m_state = target
    else:
        m_state = m.state
    if end <= now and m_state in (_S.ACCEPTED, _S.TENTATIVE):
        if store.transition(m.id, _S.COMPLETED, actor="sync", now=now, detail="meeting took place"):
            store.record_contact(m.user_id, m.stakeholder_email, end, ContactSource.GOODWILL)
            other = store.get_user_by_email(m.stakeholder_email)
            if other is not None:  # the stakeholder uses goodwill too: their clock resets as well
                store.record_contact(other.id, policy.owner.email, end, ContactSource.GOODWILL)
            changed += 1
    elif (
        end <= now
        and m_state == _S.BOOKED
        and store.transition(m.id, _S.CANCELLED, actor="sync", now=now, detail="unanswered")
    ):
        changed += 1
        count = status.unanswered_in_row + 1
        limit = policy.etiquette.max_unanswered
        if count >= limit:
            store.save_stakeholder_status(
                _replace(
                    status,
                    unanswered_in_row=count,
                    paused_until=now + timedelta(weeks=12),
                    paused_reason=f"{count} invites in a row went unanswered",
                )
            )
        else:
            store.save_stakeholder_status(_replace(status, unanswered_in_row=count))
    return changed


def _replace(status: StakeholderStatus, **changes: object) -> StakeholderStatus:
    from dataclasses import replace

    return replace(status, **changes)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class ReplyResult:
    meeting_id: int | None
    state: MeetingState | None
    detail: str


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
    and the meeting's state is brought up to date by :func:`sync_responses`.
    """
    m = p.store.meeting_by_event_id(provider_event_id)
    if m is None:
        return ReplyResult(None, None, "no goodwill meeting with this UID")
    if m.stakeholder_email.lower() != attendee_email.lower():
        return ReplyResult(m.id, m.state, "the reply is not from the invited attendee")
    user = p.store.get_user(m.user_id)
    policy = _policy_for(p, user) if user else None
    if policy is None:
        return ReplyResult(m.id, m.state, "the owner's policy is unavailable")
    backend = p.backends(policy)
    recorder = backend.writer
    if not isinstance(recorder, ReplyRecorder):
        return ReplyResult(m.id, m.state, f"provider {backend.provider} records answers itself")
    with p.provider_call(backend.provider, "record_reply"):
        applied = recorder.set_attendee_status(
            policy.owner.person, provider_event_id, attendee_email, status, sequence=sequence
        )
    sync_responses(p, m.user_id, policy=policy, backend=backend)
    after = p.store.get_meeting(m.id)
    detail = "applied" if applied else "ignored: older than the invite"
    return ReplyResult(m.id, after.state if after else None, detail)


# -- the owner's decisions and housekeeping --------------------------------------------------


def approve(p: Pipeline, meeting_id: int, *, actor: str = "user") -> bool:
    """The owner approves a proposal; the tick sends it for booking."""
    return p.store.transition(
        meeting_id,
        _S.APPROVED,
        actor=actor,
        now=p.clock.now(),
        expect=_S.PROPOSED,
        detail="approved",
    )


def decline(p: Pipeline, meeting_id: int, *, actor: str = "user") -> bool:
    """The owner declines a proposal; that stakeholder is not proposed again for a week."""
    now = p.clock.now()
    m = p.store.get_meeting(meeting_id)
    if m is None:
        return False
    if not p.store.transition(
        meeting_id,
        _S.CANCELLED,
        actor=actor,
        now=now,
        expect=_S.PROPOSED,
        detail="declined by the owner",
    ):
        return False
    status = p.store.get_stakeholder_status(m.user_id, m.stakeholder_email)
    p.store.save_stakeholder_status(_replace(status, backoff_until=now + timedelta(days=7)))
    return True


def expire_proposals(
    p: Pipeline, *, user_id: int | None = None, policy: Policy | None = None
) -> int:
    """Expire proposals not approved in time: half the minimum notice before the slot starts."""
    now = p.clock.now()
    expired = 0
    for m in p.store.meetings_by_state(_S.PROPOSED):
        if user_id is not None and m.user_id != user_id:
            continue
        notice = policy.availability.min_notice if policy else timedelta(hours=2)
        if m.start - notice / 2 <= now and p.store.transition(
            m.id,
            _S.EXPIRED,
            actor="tick",
            now=now,
            expect=_S.PROPOSED,
            detail="not approved in time",
        ):
            expired += 1
    return expired


@dataclass
class CycleSummary:
    """Counts of one full cycle (for the demo and tests)."""

    planned_users: int = 0
    proposals: int = 0
    booked: int = 0
    errors: list[str] = field(default_factory=list)
