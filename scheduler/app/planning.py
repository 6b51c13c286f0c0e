"""Planning: the planning round (follow answers, read busy time once, write proposals).

The dry run (read through the ports, plan, write nothing) lives in :mod:`scheduler.app.dry_run`;
registering the policy files and cancelling a removed owner's meetings live in
:mod:`scheduler.app.registration`; their public names are re-exported here.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from scheduler.app.booking import other_side_meeting
from scheduler.app.decisions import WITHDRAWN_PAIR, expire_proposals
from scheduler.app.dry_run import StoredState as StoredState
from scheduler.app.dry_run import dry_run_plan as dry_run_plan
from scheduler.app.dry_run import merge_contacts as merge_contacts
from scheduler.app.groups import group_history, group_new_meetings, slot_holder
from scheduler.app.history_window import ORGANIC_LOOKBACK, history_key, history_since, owner_window
from scheduler.app.pipeline import Pipeline, idempotency_key, revoke
from scheduler.app.ports import StorePort
from scheduler.app.problems import POLICY_ERROR_REASONS as POLICY_ERROR_REASONS
from scheduler.app.records import NewMeeting, RoundMeetings, User
from scheduler.app.registration import OWNER_REMOVED as OWNER_REMOVED
from scheduler.app.registration import (
    PLAN_CRASHED,
    count_policy_error,
    load_isolated,
    report_policy_problem,
)
from scheduler.app.registration import (
    cancel_removed_owner_meetings as cancel_removed_owner_meetings,
)
from scheduler.app.registration import register_policies as register_policies
from scheduler.app.responses import read_round_meetings, record_organic, sync_responses
from scheduler.core.errors import (
    AuthorizationRevoked,
    ConfigurationError,
    ConnectorError,
    PolicyIssue,
    RateLimited,
)
from scheduler.core.groups import group_people
from scheduler.core.intervals import Interval
from scheduler.core.planner import ExistingMeeting, Plan, StakeholderLoad
from scheduler.core.policy import Policy
from scheduler.core.ports import CalendarBackend, OwnerCalendar
from scheduler.core.states import MeetingState

__all__ = [
    "ORGANIC_LOOKBACK",
    "OWNER_REMOVED",
    "POLICY_ERROR_REASONS",
    "PlanRun",
    "StoredState",
    "cancel_removed_owner_meetings",
    "dry_run_plan",
    "merge_contacts",
    "plan_user",
    "register_policies",
    "stored_state",
]


def stored_state(
    store: StorePort,
    user_id: int,
    policy: Policy,
    now: datetime,
    *,
    weekly_cap: int,
    user: User | None = None,
    meetings: RoundMeetings | None = None,
    contacts: dict[str, datetime] | None = None,
) -> StoredState:
    """The user's open meetings (and those booked with them by stakeholders who use goodwill),
    back-offs, pauses, recorded contacts and what their stakeholders have from other owners.

    ``user``, ``meetings`` (:func:`read_round_meetings` at ``now``), ``contacts`` (as
    ``store.last_contacts``): read this round already; what is not given is read here."""
    if meetings is None:
        meetings = read_round_meetings(store, user_id, policy.owner.email, now)
    if user is None:
        user = store.get_user(user_id)
    statuses = store.stakeholder_statuses(user_id)
    # A group meeting blocks its slot and counts once, as nobody's open one-to-one.
    existing = [ExistingMeeting(slot_holder(m), m.start, m.end) for m in meetings.open]
    # A stakeholder's own meeting with this owner blocks its slot and counts as the pair's
    # open meeting.
    existing += [
        ExistingMeeting(slot_holder(m) if m.is_group else other_owner, m.start, m.end)
        for other_owner, m in meetings.as_stakeholder
    ]
    contacts = store.last_contacts(user_id) if contacts is None else contacts
    # Group members who are not stakeholders are capped across owners too.
    emails = {s.email.lower() for s in policy.stakeholders} | set(group_people(policy, contacts))
    window = Interval(now - _WEEK, now + policy.availability.horizon + _WEEK)
    their_meetings, invited = store.stakeholder_load(
        sorted(emails), window.start, window.end, exclude_user_id=user_id,
        invited_since=now - _DAY,
    )  # fmt: skip
    load = StakeholderLoad(weekly_cap, their_meetings, invited)
    backoff = {e: st.backoff_until for e, st in statuses.items() if st.backoff_until}
    return StoredState(
        goodwill_contacts=contacts,
        existing=existing,
        backoff_until=backoff,
        paused={
            e: st.paused_reason or ""
            for e, st in statuses.items()
            if st.paused_until and st.paused_until > now
        },
        load=load,
        owner_paused_until=user.paused_until if user is not None else None,
        group_history=group_history(
            store, user_id, now, backoff_until=backoff, load=load, meetings=meetings
        ),
    )


# -- the planning round ----------------------------------------------------------------------

_WEEK = timedelta(weeks=1)
_DAY = timedelta(days=1)

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


def plan_user(p: Pipeline, user_id: int) -> PlanRun:
    """Plan one user: follow responses, read busy time once, write proposals.

    Auto-mode proposals are written as ``approved``; the tick sends ``book_meeting`` for them
    after this transaction has committed. Always reschedules the user's next round.

    Any exception in one user's round is caught here: it is recorded for that user
    (``policy_error``, an audit row, ``goodwill_policy_errors_total{reason="crashed"}``), logged
    once per change of their file, and the user is retried after ``plan_retry_s``; the other
    users' rounds never see it. A user whose policy file was removed is not planned: their round
    only cancels their open future meetings once the grace period is over.
    """
    with p.plan_cycle():
        try:
            return _plan_user(p, user_id)
        except Exception as exc:  # isolation: one user's crash is that user's only
            return _plan_crashed(p, user_id, exc)


def _plan_user(p: Pipeline, user_id: int) -> PlanRun:
    now = p.clock.now()
    user = p.store.get_user(user_id)
    if user is None:
        return PlanRun(user_id, None, error="unknown user")
    if user.policy_missing_since is not None:
        return _removed_owner_round(p, user, now)
    loaded = load_isolated(p, user.policy_path)
    if loaded.file is None:
        assert loaded.crash is not None
        message = str(PolicyIssue(loaded.path, 1, "", loaded.crash.message))
        report_policy_problem(
            p, loaded.path, loaded.digest, loaded.crash.reason, message, user_id, now,
            consequence="its owner is not planned",
        )  # fmt: skip
        p.store.record_policy_error(user_id, message)
        p.store.set_next_plan(user_id, now + timedelta(seconds=p.plan_retry_s))
        return PlanRun(user_id, None, error=f"policy {loaded.crash.reason}")
    if loaded.file.issues:
        p.store.record_policy_error(user_id, "; ".join(str(i) for i in loaded.file.issues[:5]))
    elif (user.policy_error or "").startswith(PLAN_CRASHED):
        # This round gets past loading: forget the last round's crash (recorded anew if it recurs).
        p.store.record_policy_error(user_id, None)
    policy = loaded.file.policy
    if policy is None:
        p.store.set_next_plan(user_id, now + _RECONNECT_RETRY)
        return PlanRun(user_id, None, error="policy invalid")
    backend = _backend_or_none(p, user_id, policy, now)
    if backend is None:
        return PlanRun(user_id, None, error="not configured")
    # ONE read of the round's meetings serves every step below while none of them writes.
    meetings: RoundMeetings | None = read_round_meetings(p.store, user_id, policy.owner.email, now)
    assert meetings is not None
    pending = [m for m in meetings.open if m.state == _S.PROPOSED]
    wrote = _follow_answers(p, user_id, policy, backend, meetings)
    wrote |= bool(expire_proposals(p, user_id=user_id, policy=policy, pending=pending))
    wrote |= _withdraw_covered_proposals(p, meetings, policy, now)
    if wrote:
        meetings = None  # read again by the stored state
    key = history_key(policy)  # read from where the last round's history read ended
    since = history_since(user, key, now)
    try:
        plan = _read_and_plan(p, user, policy, backend, now, meetings, since)
    except AuthorizationRevoked as exc:
        revoke(p, policy.owner.email, backend.provider, str(exc), now)
        p.store.set_next_plan(user_id, now + _RECONNECT_RETRY)
        p.store.record_event(now=now, actor="planner", user_id=user_id, detail="credential revoked")
        return PlanRun(user_id, None, error="credential revoked")
    except ConnectorError as exc:
        _plan_again_later(p, user_id, exc, now)
        return PlanRun(user_id, None, error=type(exc).__name__)
    again = now + p.plan_every
    if user.paused_at(now) and user.paused_until is not None:  # planned again when it ends
        again = min(again, user.paused_until)
    read = (now, key) if backend.history is not None else None
    ids = _write_plan(p, user_id, plan, backend.provider, now, again, read)
    return PlanRun(user_id, plan, tuple(ids))


def _plan_crashed(p: Pipeline, user_id: int, exc: Exception) -> PlanRun:
    """Record a round that raised something unexpected; retry the user after ``plan_retry_s``.

    A store failure here (the database is down) propagates: the message is then retried by the
    broker and the user by the tick, as for any lost round.
    """
    now = p.clock.now()
    error = type(exc).__name__
    count_policy_error(p, "crashed")
    user = p.store.get_user(user_id)
    path = user.policy_path if user is not None else f"user {user_id}"
    digest = user.policy_hash if user is not None else ""
    retry = timedelta(seconds=p.plan_retry_s)
    if p.problems.first(path, digest, f"plan:{error}"):
        log.error(
            "planning user %s crashed (%s); the other users are planned as usual; retrying "
            "this one every %ss until it succeeds or its policy file %s changes",
            user_id, error, p.plan_retry_s, path, exc_info=exc,
        )  # fmt: skip
        if user is not None:
            p.store.record_event(
                now=now, actor="planner", user_id=user_id,
                detail=f"{PLAN_CRASHED} [crashed]: {error}: {str(exc)[:300]}",
            )  # fmt: skip
    if user is not None:
        p.store.record_policy_error(
            user_id,
            f"{PLAN_CRASHED} ({error}: {str(exc)[:200]}); the other users are not affected; "
            f"it is retried every {p.plan_retry_s:.0f} s; the service log has the traceback",
        )
        p.store.set_next_plan(user_id, now + retry)
    return PlanRun(user_id, None, error=f"crashed: {error}")


# -- a removed policy file ----------------------------------------------------------------------


def _removed_owner_round(p: Pipeline, user: User, now: datetime) -> PlanRun:
    """The owner's policy file is gone: plan nothing; after the grace, cancel what is open."""
    assert user.policy_missing_since is not None
    cancel_at = user.policy_missing_since + p.policy_removed_grace
    if now < cancel_at:
        p.store.set_next_plan(user.id, cancel_at)
        return PlanRun(user.id, None, error="policy file removed")
    left = cancel_removed_owner_meetings(p, user, now)
    again = now + (timedelta(seconds=p.plan_retry_s) if left else p.plan_every)
    p.store.set_next_plan(user.id, again)
    return PlanRun(
        user.id, None, error="policy file removed: " + ("cancelling" if left else "cancelled")
    )


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


def _follow_answers(
    p: Pipeline, user_id: int, policy: Policy, backend: CalendarBackend, meetings: RoundMeetings
) -> bool:
    """Following answers is best effort: planning still runs when the provider fails here.
    Returns whether it may have written (then the round's meetings are read again)."""
    try:
        return bool(sync_responses(p, user_id, policy=policy, backend=backend, meetings=meetings))
    except ConnectorError as exc:
        log.warning("user %s: following responses failed: %s", user_id, type(exc).__name__)
        return True


def _withdraw_covered_proposals(
    p: Pipeline, meetings: RoundMeetings, policy: Policy, now: datetime
) -> bool:
    """A pending proposal whose pair the stakeholder's own side already booked is withdrawn.
    Returns whether one was."""
    wrote = False
    for mine in meetings.open:
        if mine.state == _S.PROPOSED and other_side_meeting(
            p, policy.owner.email, mine, known=meetings.as_stakeholder
        ):
            wrote |= p.store.transition(
                mine.id, _S.CANCELLED, actor="planner", now=now, expect=_S.PROPOSED,
                detail=WITHDRAWN_PAIR,
            )  # fmt: skip
    return wrote


def _read_and_plan(
    p: Pipeline,
    user: User,
    policy: Policy,
    backend: CalendarBackend,
    now: datetime,
    meetings: RoundMeetings | None,
    since: datetime,
) -> Plan:
    """Record organic contact (read from ``since``), then read busy time once and plan.

    ``meetings``: the round's meetings when nothing was written since. Raises ConnectorError."""
    user_id = user.id
    organic: Mapping[str, datetime] = {}
    if backend.history is not None:
        emails = [s.email for s in policy.stakeholders]
        with p.provider_call(backend.provider, "read_history"):
            if isinstance(backend.source, OwnerCalendar):  # one owner read: history and busy
                backend.source.read_owner(policy.owner.person, owner_window(policy, now, since))
            organic = backend.history.last_contacts(policy.owner.person, emails, since, now)
    contacts = record_organic(p.store, user_id, organic)
    known = stored_state(
        p.store, user_id, policy, now, weekly_cap=p.stakeholder_weekly_cap, user=user,
        meetings=meetings, contacts=contacts,
    )  # fmt: skip
    with p.provider_call(backend.provider, "read_busy"):
        return dry_run_plan(
            policy,
            source=backend.source,
            history=None,  # read above and recorded: the store now holds every contact
            now=now,
            known=known,
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


def _write_plan(
    p: Pipeline,
    user_id: int,
    plan: Plan,
    provider: str,
    now: datetime,
    again: datetime,
    read: tuple[datetime, str] | None,
) -> list[int]:
    """Write the proposals (auto mode as ``approved``), one audit row per skipped person, the
    next round at ``again`` and ``read`` (history read until, for whom): one transaction."""
    new = [
        NewMeeting(
            stakeholder_email=pr.stakeholder,
            kind=pr.kind,
            start=pr.start,
            end=pr.end,
            mode=pr.mode,
            idempotency_key=idempotency_key(user_id, pr.stakeholder, pr.start, secret=p.key_secret),
            provider=provider,
            reason=pr.reason,
            state=_S.APPROVED if pr.mode == "auto" else _S.PROPOSED,
            alternatives=pr.alternatives,
            owner_note=pr.owner_note,
        )
        for pr in plan.proposals
    ]
    new += group_new_meetings(p, user_id, plan.group_proposals, provider)
    skips = [f"skipped group {g.group} [{g.code}]: {g.reason}" for g in plan.group_skipped]
    skips += [f"skipped {s.stakeholder} [{s.code.value}]: {s.reason}" for s in plan.skipped]
    return p.store.record_plan_round(user_id, new, skips, again, now=now, history=read)
