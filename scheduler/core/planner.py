"""The planner: (policy, busy time, history, now) -> a plan. Pure: it performs nothing.

The plan holds proposals (stakeholder, slot, kind, mode, why) and skips (stakeholder, reason).
Guarantees, checked by tests:

- proposals never overlap each other or anyone's busy time (after the busy rules);
- ``max_per_day`` and ``max_per_week`` (owner-local days, ISO weeks) count goodwill meetings
  already open plus the ones proposed in this plan;
- at most one open proposal per stakeholder, and at most
  ``etiquette.max_per_stakeholder_per_week`` of the owner's meetings (one-to-ones, group
  meetings and introductions, open, held or proposed now) in any of a stakeholder's own ISO
  weeks: a member at the limit is not invited to a group that week, a one-to-one not proposed;
- the same inputs give the same plan.

Due stakeholders are planned in due order; once the caps leave no day for another one-to-one
the slot finder is no longer asked and the rest are skipped as "cap reached"
(:mod:`scheduler.core.planner_round`). The data types live in
:mod:`scheduler.core.planner_model`, one round's bookkeeping and slot picking in
:mod:`scheduler.core.planner_round`; import everything from here.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from scheduler.core.cadence import Due, Skip, SkipCode, assess
from scheduler.core.groups import (
    GroupHistory,
    GroupProposal,
    GroupSkip,
    OwnerTaken,
    outside_groups,
    owner_meetings,
    plan_groups,
    skip_groups,
)
from scheduler.core.introductions import hold_back_unmet, introduction_notes
from scheduler.core.model import BusyResult
from scheduler.core.planner_model import (
    ALTERNATIVES,
    ExistingMeeting,
    Plan,
    Proposal,
    StakeholderLoad,
)
from scheduler.core.planner_round import Round, plan_one, settle_alternatives
from scheduler.core.policy import Policy
from scheduler.core.slots import Candidate

__all__ = [
    "ALTERNATIVES",
    "ExistingMeeting",
    "Plan",
    "Proposal",
    "StakeholderLoad",
    "paused_until_text",
    "plan",
    "replan_one",
]


def plan(
    policy: Policy,
    *,
    now: datetime,
    busy: BusyResult,
    last_contacts: Mapping[str, datetime],
    existing: Sequence[ExistingMeeting] = (),
    backoff_until: Mapping[str, datetime] | None = None,
    paused: Collection[str] = (),
    load: StakeholderLoad | None = None,
    owner_paused_until: datetime | None = None,
    group_history: GroupHistory | None = None,
    _stop_at_caps: bool = True,
) -> Plan:
    """Plan one cycle for one owner: groups and introductions, then one-to-ones.

    Args:
        policy: the owner's validated policy.
        now: aware UTC "now".
        busy: busy blocks for the owner and stakeholders over ``[now, now + horizon)``.
        last_contacts: lower-cased e-mail -> latest contact (goodwill or organic), aware UTC.
        existing: the owner's goodwill meetings from the store (open ones block their slot and
            count towards caps).
        backoff_until: lower-cased e-mail -> end of a decline back-off.
        paused: lower-cased e-mails paused by the service (e.g. too many unanswered invites) or
            snoozed by the owner; a mapping gives each one's reason.
        load: what stakeholders already have from other owners (None: not considered).
        owner_paused_until: the owner paused goodwill until then: nothing is proposed before
            it (every due stakeholder is skipped, saying so).
        group_history: past group meetings (:class:`~scheduler.core.groups.GroupHistory`;
            None: none known). ``busy`` must hold the people of ``groups.group_people``.
        _stop_at_caps: private, for tests: ``False`` asks the slot finder for every due
            stakeholder even once the caps are full (see :mod:`scheduler.core.planner_round`).
    """
    open_existing = [m for m in existing if m.open]
    due, skipped = assess(
        policy,
        now=now,
        last_contacts=last_contacts,
        open_meetings={m.stakeholder.lower() for m in open_existing if m.end > now},
        backoff_until=backoff_until,
    )
    due = hold_back_unmet(policy, _drop_paused(due, paused, skipped), last_contacts, skipped)
    if owner_paused_until is not None and owner_paused_until > now:
        reason = paused_until_text(owner_paused_until, policy.owner.timezone)
        skipped.extend(Skip(d.stakeholder.email.lower(), SkipCode.PAUSED, reason) for d in due)
        groups = skip_groups(policy, last_contacts, "paused", reason)
        return Plan((), tuple(skipped), group_skipped=groups)
    r = Round.start(policy, now, busy, open_existing)
    if (owner_down := r.unavailable.get(policy.owner.email.lower())) is not None:
        reason = f"your calendar is unavailable: {owner_down}"
        code = SkipCode.CALENDAR_UNAVAILABLE
        skipped.extend(Skip(d.stakeholder.email.lower(), code, reason) for d in due)
        groups = skip_groups(policy, last_contacts, "calendar_unavailable", reason)
        return Plan((), tuple(skipped), group_skipped=groups)
    group_proposals, group_skipped = _groups_first(r, busy, last_contacts, group_history)
    outcomes = [plan_one(r, d, load, stop_at_caps=_stop_at_caps) for d in due]  # in due order
    skipped.extend(o for o in outcomes if isinstance(o, Skip))
    proposals = sorted(
        (o for o in outcomes if not isinstance(o, Skip)), key=lambda p: (p.start, p.stakeholder)
    )
    notes, buffer = introduction_notes(policy, last_contacts), policy.availability.buffer
    settled = [
        replace(
            p,
            alternatives=outside_groups(p.alternatives, group_proposals, buffer),
            owner_note=notes.get(p.stakeholder, ""),
        )
        for p in settle_alternatives(r, proposals)
    ]
    return Plan(tuple(settled), tuple(skipped), (), group_proposals, group_skipped)


def _groups_first(
    r: Round,
    busy: BusyResult,
    last_contacts: Mapping[str, datetime],
    history: GroupHistory | None,
) -> tuple[tuple[GroupProposal, ...], tuple[GroupSkip, ...]]:
    """Plan the groups and introductions into ``r`` before the one-to-ones.

    A group meets every few weeks and serves several relationships in one slot; placed after
    the one-to-ones it would never find a day under the caps while a backlog of due one-to-ones
    fills them. It takes its slot (counting once towards the owner's caps), the one-to-ones fill
    the rest. ``etiquette.max_per_stakeholder_per_week`` counts every attendee of the owner's
    group meetings (open, held, proposed now) in their own week, as for a one-to-one.
    """
    taken = OwnerTaken(r.owner_busy, r.day_load, r.week_load, owner_meetings(r.met))
    proposals, skipped = plan_groups(
        r.policy, now=r.now, busy=busy, last_contacts=last_contacts, history=history, owner=taken
    )
    r.met = owner_meetings(r.met, history.attended if history else {})
    for g in proposals:
        r.take(Candidate(g.start, g.end, preferred=False, score=0.0, reason=g.group))
        for email in g.attendees:
            r.met.setdefault(email, []).append(g.start)
    return proposals, skipped


def replan_one(
    policy: Policy,
    email: str,
    *,
    now: datetime,
    busy: BusyResult,
    existing: Sequence[ExistingMeeting] = (),
    load: StakeholderLoad | None = None,
    why: str,
) -> Proposal | Skip:
    """A new slot for a meeting with ``email`` that must move, under the same rules and caps.

    Cadence does not apply (the meeting is owed already); ``busy`` and ``existing`` must leave
    out the meeting being moved, so its own slot does not count against it.
    """
    s = policy.stakeholder(email)
    if s is None:
        return Skip(email.lower(), SkipCode.NOT_DUE, "no longer in your policy")
    r = Round.start(policy, now, busy, [m for m in existing if m.open])
    owner_key = policy.owner.email.lower()
    if owner_key in r.unavailable:
        reason = f"your calendar is unavailable: {r.unavailable[owner_key]}"
        return Skip(email.lower(), SkipCode.CALENDAR_UNAVAILABLE, reason)
    due = Due(stakeholder=s, last_contact=None, due_at=now, not_before=now, overdue=0.0)
    outcome = plan_one(r, due, load)
    if isinstance(outcome, Proposal):
        (outcome,) = settle_alternatives(r, [outcome])
        return replace(outcome, reason=f"{why}; {outcome.reason.split('; ', 1)[-1]}")
    return outcome


def paused_until_text(until: datetime, zone: str) -> str:
    """``paused until the end of Tue 15 Dec`` for a pause that ends at ``until`` (the start of
    the next owner-local day)."""
    last = (until - timedelta(microseconds=1)).astimezone(ZoneInfo(zone))
    return f"paused until the end of {last:%a} {last.day} {last:%b %Y}: you paused goodwill"


def _drop_paused(due: list[Due], paused: Collection[str], skipped: list[Skip]) -> list[Due]:
    """The due stakeholders not paused by the service; the paused ones are skipped."""
    reasons = {p.lower(): paused[p] for p in paused} if isinstance(paused, Mapping) else {}
    paused_set = {p.lower() for p in paused}
    keep: list[Due] = []
    for d in due:
        email = d.stakeholder.email.lower()
        if email in paused_set:
            why = reasons.get(email) or "invites went unanswered"
            skipped.append(Skip(email, SkipCode.PAUSED, f"paused: {why}"))
        else:
            keep.append(d)
    return keep
