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
from scheduler.core.model import BusyResult, WeeklyHours
from scheduler.core.policy import Policy
from scheduler.core.slots import Candidate, OwnerContext, SlotRules, find_slots

__all__ = ["ExistingMeeting", "Plan", "Proposal", "plan"]

_GRID = timedelta(minutes=15)


@dataclass(frozen=True, slots=True)
class ExistingMeeting:
    """A goodwill meeting already in the store (counts towards caps; blocks its slot)."""

    stakeholder: str
    start: datetime
    end: datetime
    open: bool = True


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
    """
    av = policy.availability
    owner = policy.owner
    owner_zone = ZoneInfo(owner.timezone)
    window = Interval(now, now + av.horizon)
    open_existing = [m for m in existing if m.open]
    due, skipped = assess(
        policy,
        now=now,
        last_contacts=last_contacts,
        open_meetings={m.stakeholder.lower() for m in open_existing if m.end > now},
        backoff_until=backoff_until,
    )
    paused_set = {p.lower() for p in paused}
    if paused_set:
        keep: list[Due] = []
        for d in due:
            if d.stakeholder.email.lower() in paused_set:
                skipped.append(
                    Skip(
                        d.stakeholder.email.lower(),
                        SkipCode.PAUSED,
                        "paused: invites went unanswered",
                    )
                )
            else:
                keep.append(d)
        due = keep
    owner_key = owner.email.lower()
    blocks = {k.lower(): v for k, v in busy.blocks.items()}
    unavailable = {k.lower(): v for k, v in busy.unavailable.items()}
    provider_hours = {k.lower(): v for k, v in busy.working_hours.items()}

    if owner_key in unavailable:
        reason = f"your calendar is unavailable: {unavailable[owner_key]}"
        skipped.extend(
            Skip(d.stakeholder.email.lower(), SkipCode.CALENDAR_UNAVAILABLE, reason) for d in due
        )
        return Plan((), tuple(skipped))

    existing_busy = [Interval(m.start, m.end) for m in open_existing]
    owner_busy = union(apply_busy_rules(blocks.get(owner_key, []), av.busy), existing_busy)
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
        owner_zone=owner.timezone,
        windows=av.windows,
        lunch_window=av.lunch_window if policy.meeting.kind == "lunch" else None,
        no_meeting_days=av.no_meeting_days,
        blackout=av.blackout,
        buffer=av.buffer,
        grid=_GRID,
    )
    # The owner side is computed once per plan and again only after a slot is taken.
    context: OwnerContext | None = None
    proposals: list[Proposal] = []
    for d in due:
        s = d.stakeholder
        email = s.email.lower()
        if email not in blocks or email in unavailable:
            why = unavailable.get(email, "no calendar found")
            if not why.startswith("calendar unavailable"):
                why = f"calendar unavailable: {why}"
            skipped.append(Skip(email, SkipCode.CALENDAR_UNAVAILABLE, why))
            continue
        person = policy.person_of(s)
        other_zone, other_hours = person.timezone, policy.hours_of(s)
        if not policy.hours_explicit(s) and email in provider_hours:
            other_zone, other_hours = provider_hours[email]
        earliest = _ceil_to_grid(max(now + av.min_notice, d.not_before))
        if earliest >= window.end:
            skipped.append(Skip(email, SkipCode.NOT_DUE, f"not due within the horizon ({d.why})"))
            continue
        rules = replace(base_rules, earliest=earliest)
        if context is None:
            context = OwnerContext.build(
                base_rules, owner_hours=av.working_hours, owner_busy=owner_busy
            )
        other_busy = apply_busy_rules(blocks.get(email, []), av.busy)
        candidates = find_slots(
            rules,
            owner_hours=av.working_hours,
            other_hours=other_hours,
            other_zone=other_zone,
            owner_busy=owner_busy,
            other_busy=other_busy,
            day_load=day_load,
            context=context,
        )
        chosen = _first_within_caps(
            candidates, owner_zone, day_load, week_load, av.max_per_day, av.max_per_week
        )
        if chosen is None:
            if candidates:
                skipped.append(
                    Skip(
                        email,
                        SkipCode.CAP_REACHED,
                        f"cap reached: every free slot falls on a day or week that already has "
                        f"{av.max_per_day}/day or {av.max_per_week}/week goodwill meetings",
                    )
                )
            else:
                skipped.append(
                    Skip(
                        email,
                        SkipCode.NO_COMMON_SLOT,
                        _no_slot_reason(policy, other_zone, other_hours, window),
                    )
                )
            continue
        local_day = chosen.start.astimezone(owner_zone).date()
        day_load[local_day] += 1
        week_load[local_day.isocalendar()[:2]] += 1
        owner_busy = normalise([*owner_busy, chosen.interval])
        context = None
        proposals.append(
            Proposal(
                stakeholder=email,
                name=s.name,
                tier=s.tier,
                start=chosen.start,
                end=chosen.end,
                kind=policy.meeting.kind,
                mode=policy.mode_of(s),
                reason=f"{d.why}; {chosen.reason}",
            )
        )
    proposals.sort(key=lambda p: (p.start, p.stakeholder))
    return Plan(tuple(proposals), tuple(skipped))


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
