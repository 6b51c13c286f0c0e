"""The planner: (policy, busy time, history, now) -> a plan. Pure: it performs nothing.

The plan holds proposals (stakeholder, slot, kind, mode, why) and skips (stakeholder, reason).
Guarantees, checked by tests:

- proposals never overlap each other or anyone's busy time (after the busy rules);
- ``max_per_day`` and ``max_per_week`` (owner-local days, ISO weeks) count goodwill meetings
  already open plus the ones proposed in this plan;
- at most one open proposal per stakeholder;
- the same inputs give the same plan.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from scheduler.core.availability import working_intervals
from scheduler.core.busy import apply_busy_rules
from scheduler.core.cadence import Due, Skip, SkipCode, assess
from scheduler.core.intervals import Interval, intersect, normalise, union
from scheduler.core.model import BusyBlock, BusyResult, WeeklyHours
from scheduler.core.policy import Policy
from scheduler.core.slots import Candidate, OwnerContext, SlotRules, find_slots

__all__ = ["ExistingMeeting", "Plan", "Proposal", "StakeholderLoad", "plan", "replan_one"]

_GRID = timedelta(minutes=15)


@dataclass(frozen=True, slots=True)
class ExistingMeeting:
    """A goodwill meeting already in the store (counts towards caps; blocks its slot)."""

    stakeholder: str
    start: datetime
    end: datetime
    open: bool = True


@dataclass(frozen=True, slots=True)
class StakeholderLoad:
    """What the people being asked already have from goodwill, across every owner.

    Attributes:
        weekly_cap: at most this many goodwill coffees per stakeholder per week (ISO week in
            the stakeholder's zone), whoever the owners are.
        meetings: lower-cased e-mail -> starts of the goodwill meetings other owners have with
            that person (open, booked or held).
        invited_today: lower-cased e-mails who got a new goodwill invite from another owner in
            the last day (a senior is asked at most once a day).
    """

    weekly_cap: int = 2
    meetings: Mapping[str, Sequence[datetime]] = field(default_factory=dict)
    invited_today: Collection[str] = ()


@dataclass(frozen=True, slots=True)
class Proposal:
    """A slot to propose. ``start``/``end`` are aware UTC."""

    stakeholder: str
    name: str
    tier: str
    start: datetime
    end: datetime
    kind: str
    mode: str
    reason: str


@dataclass(frozen=True, slots=True)
class Plan:
    proposals: tuple[Proposal, ...] = ()
    skipped: tuple[Skip, ...] = ()
    notes: tuple[str, ...] = field(default=())

    def as_json(self) -> dict[str, list[dict[str, str]]]:
        """The ``goodwill plan --json`` shape (a public contract: extend, never rename)."""
        return {
            "proposals": [
                {
                    "stakeholder": p.stakeholder,
                    "start": _z(p.start),
                    "end": _z(p.end),
                    "kind": p.kind,
                    "mode": p.mode,
                    "reason": p.reason,
                }
                for p in self.proposals
            ],
            "skipped": [
                {"stakeholder": s.stakeholder, "reason": s.reason, "code": s.code.value}
                for s in self.skipped
            ],
        }


def _z(moment: datetime) -> str:
    return moment.astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%dT%H:%M:%SZ")


def _ceil_to_grid(moment: datetime) -> datetime:
    epoch = datetime(1970, 1, 1, tzinfo=moment.tzinfo)
    steps = -((epoch - moment) // _GRID)
    return epoch + steps * _GRID


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
) -> Plan:
    """Plan one cycle for one owner.

    Args:
        policy: the owner's validated policy.
        now: aware UTC "now".
        busy: busy blocks for the owner and stakeholders over ``[now, now + horizon)``.
        last_contacts: lower-cased e-mail -> latest contact (goodwill or organic), aware UTC.
        existing: the owner's goodwill meetings from the store (open ones block their slot and
            count towards caps).
        backoff_until: lower-cased e-mail -> end of a decline back-off.
        paused: lower-cased e-mails paused by the service (e.g. too many unanswered invites).
        load: what stakeholders already have from other owners (None: not considered).
    """
    open_existing = [m for m in existing if m.open]
    due, skipped = assess(
        policy,
        now=now,
        last_contacts=last_contacts,
        open_meetings={m.stakeholder.lower() for m in open_existing if m.end > now},
        backoff_until=backoff_until,
    )
    due = _drop_paused(due, paused, skipped)
    r = _Round.start(policy, now, busy, open_existing)
    owner_key = policy.owner.email.lower()
    if owner_key in r.unavailable:
        reason = f"your calendar is unavailable: {r.unavailable[owner_key]}"
        skipped.extend(
            Skip(d.stakeholder.email.lower(), SkipCode.CALENDAR_UNAVAILABLE, reason) for d in due
        )
        return Plan((), tuple(skipped))
    proposals: list[Proposal] = []
    for d in due:
        outcome = _plan_one(r, d, load)
        if isinstance(outcome, Skip):
            skipped.append(outcome)
        else:
            proposals.append(outcome)
    proposals.sort(key=lambda p: (p.start, p.stakeholder))
    return Plan(tuple(proposals), tuple(skipped))


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
    r = _Round.start(policy, now, busy, [m for m in existing if m.open])
    owner_key = policy.owner.email.lower()
    if owner_key in r.unavailable:
        reason = f"your calendar is unavailable: {r.unavailable[owner_key]}"
        return Skip(email.lower(), SkipCode.CALENDAR_UNAVAILABLE, reason)
    due = Due(stakeholder=s, last_contact=None, due_at=now, not_before=now, overdue=0.0)
    outcome = _plan_one(r, due, load)
    if isinstance(outcome, Proposal):
        return replace(outcome, reason=f"{why}; {outcome.reason.split('; ', 1)[-1]}")
    return outcome


def _drop_paused(due: list[Due], paused: Collection[str], skipped: list[Skip]) -> list[Due]:
    """The due stakeholders not paused by the service; the paused ones are skipped."""
    paused_set = {p.lower() for p in paused}
    keep: list[Due] = []
    for d in due:
        email = d.stakeholder.email.lower()
        if email in paused_set:
            skipped.append(Skip(email, SkipCode.PAUSED, "paused: invites went unanswered"))
        else:
            keep.append(d)
    return keep


@dataclass
class _Round:
    """The owner's side of one plan, updated as slots are taken."""

    policy: Policy
    now: datetime
    window: Interval
    owner_zone: ZoneInfo
    blocks: dict[str, list[BusyBlock]]
    unavailable: dict[str, str]
    provider_hours: dict[str, tuple[str, WeeklyHours]]
    owner_busy: list[Interval]
    day_load: Counter[date]
    week_load: Counter[tuple[int, int]]
    base_rules: SlotRules
    #: Computed once per plan and again only after a slot is taken.
    context: OwnerContext | None = None

    @classmethod
    def start(
        cls, policy: Policy, now: datetime, busy: BusyResult, open_existing: list[ExistingMeeting]
    ) -> _Round:
        av = policy.availability
        owner_zone = ZoneInfo(policy.owner.timezone)
        window = Interval(now, now + av.horizon)
        blocks = {k.lower(): list(v) for k, v in busy.blocks.items()}
        existing_busy = [Interval(m.start, m.end) for m in open_existing]
        owner_busy = union(
            apply_busy_rules(blocks.get(policy.owner.email.lower(), []), av.busy), existing_busy
        )
        day_load: Counter[date] = Counter()
        week_load: Counter[tuple[int, int]] = Counter()
        for m in open_existing:
            local_day = m.start.astimezone(owner_zone).date()
            day_load[local_day] += 1
            week_load[local_day.isocalendar()[:2]] += 1
        base_rules = SlotRules(
            duration=policy.meeting.duration,
            earliest=_ceil_to_grid(now + av.min_notice),
            latest=window.end,
            owner_zone=policy.owner.timezone,
            windows=av.windows,
            lunch_window=av.lunch_window if policy.meeting.kind == "lunch" else None,
            no_meeting_days=av.no_meeting_days,
            blackout=av.blackout,
            buffer=av.buffer,
            grid=_GRID,
        )
        return cls(
            policy, now, window, owner_zone, blocks,
            {k.lower(): v for k, v in busy.unavailable.items()},
            {k.lower(): v for k, v in busy.working_hours.items()},
            owner_busy, day_load, week_load, base_rules,
        )  # fmt: skip

    def take(self, chosen: Candidate) -> None:
        local_day = chosen.start.astimezone(self.owner_zone).date()
        self.day_load[local_day] += 1
        self.week_load[local_day.isocalendar()[:2]] += 1
        self.owner_busy = normalise([*self.owner_busy, chosen.interval])
        self.context = None


def _plan_one(r: _Round, d: Due, load: StakeholderLoad | None) -> Proposal | Skip:
    """A proposal for one due stakeholder, or why there is none."""
    policy, av, s = r.policy, r.policy.availability, d.stakeholder
    email = s.email.lower()
    if email not in r.blocks or email in r.unavailable:
        why = r.unavailable.get(email, "no calendar found")
        if not why.startswith("calendar unavailable"):
            why = f"calendar unavailable: {why}"
        return Skip(email, SkipCode.CALENDAR_UNAVAILABLE, why)
    if load is not None and s.senior and email in load.invited_today:
        reason = "stakeholder_busy: they already got a goodwill invite today; asked tomorrow"
        return Skip(email, SkipCode.STAKEHOLDER_BUSY, reason)
    other_zone, other_hours = policy.person_of(s).timezone, policy.hours_of(s)
    if not policy.hours_explicit(s) and email in r.provider_hours:
        other_zone, other_hours = r.provider_hours[email]
    earliest = _ceil_to_grid(max(r.now + av.min_notice, d.not_before))
    if earliest >= r.window.end:
        return Skip(email, SkipCode.NOT_DUE, f"not due within the horizon ({d.why})")
    if r.context is None:
        r.context = OwnerContext.build(
            r.base_rules, owner_hours=av.working_hours, owner_busy=r.owner_busy
        )
    candidates = find_slots(
        replace(r.base_rules, earliest=earliest),
        owner_hours=av.working_hours,
        other_hours=other_hours,
        other_zone=other_zone,
        owner_busy=r.owner_busy,
        other_busy=apply_busy_rules(r.blocks.get(email, []), av.busy),
        day_load=r.day_load,
        context=r.context,
    )
    chosen = _choose(r, email, candidates, other_zone, other_hours, load)
    if isinstance(chosen, Skip):
        return chosen
    r.take(chosen)
    return Proposal(
        stakeholder=email,
        name=s.name,
        tier=s.tier,
        start=chosen.start,
        end=chosen.end,
        kind=policy.meeting.kind,
        mode=policy.mode_of(s),
        reason=f"{d.why}; {chosen.reason}",
    )


def _choose(
    r: _Round,
    email: str,
    candidates: Sequence[Candidate],
    other_zone: str,
    other_hours: WeeklyHours,
    load: StakeholderLoad | None,
) -> Candidate | Skip:
    """The first candidate within every cap, or the skip that says which cap stopped it."""
    av = r.policy.availability
    if not candidates:
        reason = _no_slot_reason(r.policy, other_zone, other_hours, r.window)
        return Skip(email, SkipCode.NO_COMMON_SLOT, reason)
    free = candidates
    if load is not None:
        free = _within_their_weekly_cap(candidates, other_zone, load, email)
        if not free:
            return Skip(
                email,
                SkipCode.STAKEHOLDER_BUSY,
                f"stakeholder_busy: every free slot falls in a week when they already have "
                f"{load.weekly_cap} goodwill coffees",
            )
    chosen = _first_within_caps(
        free, r.owner_zone, r.day_load, r.week_load, av.max_per_day, av.max_per_week
    )
    if chosen is None:
        return Skip(
            email,
            SkipCode.CAP_REACHED,
            f"cap reached: every free slot falls on a day or week that already has "
            f"{av.max_per_day}/day or {av.max_per_week}/week goodwill meetings",
        )
    return chosen


def _within_their_weekly_cap(
    candidates: Sequence[Candidate], zone_name: str, load: StakeholderLoad, email: str
) -> list[Candidate]:
    """The candidates in weeks (the stakeholder's ISO weeks) below their weekly cap."""
    zone = ZoneInfo(zone_name)
    weeks = Counter(
        start.astimezone(zone).isocalendar()[:2] for start in load.meetings.get(email, ())
    )
    return [
        c for c in candidates if weeks[c.start.astimezone(zone).isocalendar()[:2]] < load.weekly_cap
    ]


def _first_within_caps(
    candidates: Sequence[Candidate],
    zone: ZoneInfo,
    day_load: Mapping[date, int],
    week_load: Mapping[tuple[int, int], int],
    max_per_day: int,
    max_per_week: int,
) -> Candidate | None:
    for c in candidates:
        day = c.start.astimezone(zone).date()
        if (
            day_load.get(day, 0) < max_per_day
            and week_load.get(day.isocalendar()[:2], 0) < max_per_week
        ):
            return c
    return None


def _no_slot_reason(
    policy: Policy, other_zone: str, other_hours: WeeklyHours, window: Interval
) -> str:
    owner_work = working_intervals(policy.availability.working_hours, policy.owner.timezone, window)
    other_work = working_intervals(other_hours, other_zone, window)
    if not intersect(owner_work, other_work):
        return (
            f"no common slot: your working hours ({policy.owner.timezone}) and theirs "
            f"({other_zone}) never overlap"
        )
    days = policy.availability.horizon.days
    return f"no common free slot in the next {days} days"
