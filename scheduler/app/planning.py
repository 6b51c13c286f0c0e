"""Planning: the dry run (read through the ports, plan, write nothing) and the planning round
(register policy files, follow answers, read busy time once, write proposals)."""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from scheduler.app.booking import other_side_meeting
from scheduler.app.decisions import expire_proposals
from scheduler.app.pipeline import Pipeline, idempotency_key, policy_for, revoke
from scheduler.app.records import ContactSource, NewMeeting
from scheduler.app.responses import sync_responses
from scheduler.core.cadence import assess
from scheduler.core.errors import (
    AuthorizationRevoked,
    ConfigurationError,
    ConnectorError,
    PolicyIssue,
    RateLimited,
)
from scheduler.core.intervals import Interval
from scheduler.core.model import BusyQuery, BusyResult
from scheduler.core.planner import ExistingMeeting, Plan, plan
from scheduler.core.policy import Policy
from scheduler.core.ports import CalendarBackend, CalendarSource, ContactHistory
from scheduler.core.states import MeetingState

__all__ = [
    "ORGANIC_LOOKBACK",
    "PlanRun",
    "dry_run_plan",
    "merge_contacts",
    "plan_user",
    "register_policies",
]

#: How far back organic contact is looked for in the owner's calendar.
ORGANIC_LOOKBACK = timedelta(weeks=26)


def merge_contacts(*sources: Mapping[str, datetime]) -> dict[str, datetime]:
    """Latest contact per lower-cased e-mail across sources."""
    out: dict[str, datetime] = {}
    for source in sources:
        for email, met in source.items():
            key = email.lower()
            if key not in out or met > out[key]:
                out[key] = met
    return out


def dry_run_plan(
    policy: Policy,
    *,
    source: CalendarSource,
    history: ContactHistory | None,
    now: datetime,
    goodwill_contacts: Mapping[str, datetime] | None = None,
    existing: Sequence[ExistingMeeting] = (),
    backoff_until: Mapping[str, datetime] | None = None,
    paused: Collection[str] = (),
) -> Plan:
    """Read what the plan needs through the ports and plan one cycle. Writes nothing.

    Only the owner's and the *due* stakeholders' calendars are read (one batched call), so a
    stakeholder who is not due is never looked at.
    """
    emails = [s.email.lower() for s in policy.stakeholders]
    organic: Mapping[str, datetime] = {}
    if history is not None:
        organic = history.last_contacts(policy.owner.person, emails, now - ORGANIC_LOOKBACK, now)
    contacts = merge_contacts(organic, goodwill_contacts or {})
    open_emails = {m.stakeholder.lower() for m in existing if m.open and m.end > now}
    due, _ = assess(
        policy,
        now=now,
        last_contacts=contacts,
        open_meetings=open_emails,
        backoff_until=backoff_until,
    )
    paused_set = {e.lower() for e in paused}
    due = [d for d in due if d.stakeholder.email.lower() not in paused_set]
    window = Interval(now, now + policy.availability.horizon)
    people = (policy.owner.person, *(policy.person_of(d.stakeholder) for d in due))
    busy: BusyResult = source.busy(BusyQuery(window=window, people=people))
    return plan(
        policy,
        now=now,
        busy=busy,
        last_contacts=contacts,
        existing=existing,
        backoff_until=backoff_until,
        paused=paused,
    )


# -- the planning round ----------------------------------------------------------------------

log = logging.getLogger("goodwill.booking")

_S = MeetingState
#: Retry a user whose calendar is not configured, or whose grant was revoked, after this.
_RECONNECT_RETRY = timedelta(hours=1)


@dataclass(frozen=True, slots=True)
class PlanRun:
    """What one planning round did (for the demo, logs and tests)."""

    user_id: int
    plan: Plan | None
    meeting_ids: tuple[int, ...] = ()
    error: str | None = None


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
    policy = policy_for(p, user)
    if policy is None:
        p.store.set_next_plan(user_id, now + _RECONNECT_RETRY)
        return PlanRun(user_id, None, error="policy invalid")
    backend = _backend_or_none(p, user_id, policy, now)
    if backend is None:
        return PlanRun(user_id, None, error="not configured")
    _follow_answers(p, user_id, policy, backend)
    expire_proposals(p, user_id=user_id, policy=policy)
    _withdraw_covered_proposals(p, user_id, policy, now)
    try:
        plan = _read_and_plan(p, user_id, policy, backend, now)
    except AuthorizationRevoked as exc:
        revoke(p, policy.owner.email, backend.provider, str(exc), now)
        p.store.set_next_plan(user_id, now + _RECONNECT_RETRY)
        p.store.record_event(now=now, actor="planner", user_id=user_id, detail="credential revoked")
        return PlanRun(user_id, None, error="credential revoked")
    except ConnectorError as exc:
        _plan_again_later(p, user_id, exc, now)
        return PlanRun(user_id, None, error=type(exc).__name__)
    ids = _write_plan(p, user_id, plan, backend.provider, now)
    p.store.set_next_plan(user_id, now + p.plan_every, planned_at=now)
    return PlanRun(user_id, plan, tuple(ids))


def _backend_or_none(
    p: Pipeline, user_id: int, policy: Policy, now: datetime
) -> CalendarBackend | None:
    """The user's connectors; None (loud in the log and the audit trail) when not configured."""
    try:
        return p.backends(policy)
    except ConfigurationError as exc:  # e.g. no grant yet
        log.warning("user %s: calendar not configured: %s", user_id, exc)
        p.store.record_event(
            now=now, actor="planner", user_id=user_id, detail=f"not configured: {exc}"
        )
        p.store.set_next_plan(user_id, now + _RECONNECT_RETRY)
        return None


def _follow_answers(p: Pipeline, user_id: int, policy: Policy, backend: CalendarBackend) -> None:
    """Following answers is best effort: planning still runs when the provider fails here."""
    try:
        sync_responses(p, user_id, policy=policy, backend=backend)
    except ConnectorError as exc:
        log.warning("user %s: following responses failed: %s", user_id, type(exc).__name__)


def _withdraw_covered_proposals(p: Pipeline, user_id: int, policy: Policy, now: datetime) -> None:
    """A pending proposal whose pair the stakeholder's own side already booked is withdrawn."""
    for mine in p.store.open_meetings(user_id):
        if mine.state == _S.PROPOSED and other_side_meeting(p, policy.owner.email, mine):
            p.store.transition(
                mine.id, _S.CANCELLED, actor="planner", now=now, expect=_S.PROPOSED,
                detail="withdrawn: the stakeholder's side booked a meeting with you first",
            )  # fmt: skip


def _existing_meetings(p: Pipeline, user_id: int, policy: Policy) -> list[ExistingMeeting]:
    """The user's open meetings, plus those stakeholders who use goodwill booked with them.

    A stakeholder's own meeting with this owner blocks its slot and counts as the pair's open
    meeting.
    """
    existing = [
        ExistingMeeting(m.stakeholder_email, m.start, m.end) for m in p.store.open_meetings(user_id)
    ]
    existing += [
        ExistingMeeting(other_owner, m.start, m.end)
        for other_owner, m in p.store.open_meetings_as_stakeholder(policy.owner.email)
    ]
    return existing


def _read_and_plan(
    p: Pipeline, user_id: int, policy: Policy, backend: CalendarBackend, now: datetime
) -> Plan:
    """Record organic contact, then read busy time once and plan. Raises ConnectorError."""
    statuses = p.store.stakeholder_statuses(user_id)
    backoff = {e: st.backoff_until for e, st in statuses.items() if st.backoff_until}
    paused = {e for e, st in statuses.items() if st.paused_until and st.paused_until > now}
    if backend.history is not None:
        emails = [s.email for s in policy.stakeholders]
        with p.provider_call(backend.provider, "read_history"):
            organic = backend.history.last_contacts(
                policy.owner.person, emails, now - ORGANIC_LOOKBACK, now
            )
        for email, met_at in organic.items():
            p.store.record_contact(user_id, email, met_at, ContactSource.ORGANIC)
    with p.provider_call(backend.provider, "read_busy"):
        return dry_run_plan(
            policy,
            source=backend.source,
            history=None,  # read above and recorded: the store now holds every contact
            now=now,
            goodwill_contacts=p.store.last_contacts(user_id),
            existing=_existing_meetings(p, user_id, policy),
            backoff_until=backoff,
            paused=paused,
        )


def _plan_again_later(p: Pipeline, user_id: int, exc: ConnectorError, now: datetime) -> None:
    """A failed calendar read: retry after the provider's Retry-After, else the retry setting."""
    delay = (
        exc.retry_after_s if isinstance(exc, RateLimited) and exc.retry_after_s else p.plan_retry_s
    )
    p.store.set_next_plan(user_id, now + timedelta(seconds=delay))
    p.store.record_event(
        now=now,
        actor="planner",
        user_id=user_id,
        detail=f"calendar read failed: {type(exc).__name__}",
    )


def _write_plan(p: Pipeline, user_id: int, plan: Plan, provider: str, now: datetime) -> list[int]:
    """Write the proposals (auto mode as ``approved``) and one audit row per skipped person."""
    new = [
        NewMeeting(
            stakeholder_email=pr.stakeholder,
            kind=pr.kind,
            start=pr.start,
            end=pr.end,
            mode=pr.mode,
            idempotency_key=idempotency_key(user_id, pr.stakeholder, pr.start),
            provider=provider,
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
    return ids
