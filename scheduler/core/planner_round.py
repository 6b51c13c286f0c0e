"""One plan round for one owner: the owner's side as slots are taken, and picking each slot.

:class:`Round` holds what the round has used up (the owner's busy time, goodwill meetings per
owner-local day and ISO week); :func:`plan_one` finds, checks against every cap and takes one
stakeholder's slot; :func:`settle_alternatives` trims each proposal's alternatives once the
whole round is known. Driven by :func:`scheduler.core.planner.plan` and ``replan_one``.

Stopping at the caps. Once no owner-local day on which the owner still has allowed time (working
hours minus buffered busy time, within notice and horizon, outside no-meeting days and
blackouts) is below both ``max_per_day`` and its week's ``max_per_week``, no further one-to-one
can be proposed in this round (takes only add load and busy time). :meth:`Round.caps_full` says
so; :func:`plan_one` with ``stop_at_caps`` then skips the stakeholder with the cap-reached skip
the finder would have led to, without calling the slot finder. The checks that come before the
finder (calendar, invited today, due within the horizon) still run first, and working hours
that never overlap are still reported as such. Where the full search would instead have found
no common free slot, or only slots in the stakeholder's own full weeks (other owners, or this
owner's ``etiquette.max_per_stakeholder_per_week``), the skip says the plain "cap reached" too:
with the caps full those are not the reason nothing is proposed.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from scheduler.core.availability import working_intervals
from scheduler.core.busy import apply_busy_rules
from scheduler.core.cadence import Due, Skip, SkipCode
from scheduler.core.intervals import Interval, intersect, normalise, union
from scheduler.core.model import BusyBlock, BusyResult, TimeRange, WeeklyHours
from scheduler.core.planner_model import ALTERNATIVES, ExistingMeeting, Proposal, StakeholderLoad
from scheduler.core.policy import Policy
from scheduler.core.slots import Candidate, OwnerContext, SlotRules, find_slots

__all__ = ["GRID", "Round", "ceil_to_grid", "plan_one", "settle_alternatives"]

GRID = timedelta(minutes=15)
#: How many alternatives are kept while the round runs (later proposals may take some).
_POOL = 3 * ALTERNATIVES


def ceil_to_grid(moment: datetime) -> datetime:
    epoch = datetime(1970, 1, 1, tzinfo=moment.tzinfo)
    steps = -((epoch - moment) // GRID)
    return epoch + steps * GRID


@dataclass
class Round:
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
    #: Owner-side contexts by lunch window (a tier's lunch differs from a coffee): built on
    #: first use in a plan, again only after a slot is taken.
    contexts: dict[TimeRange | None, OwnerContext] = field(default_factory=dict)
    #: The contexts from before the last take: a new one takes their untouched days over.
    stale: dict[TimeRange | None, OwnerContext] = field(default_factory=dict)
    #: UTC start -> its owner-local date (candidates of every stakeholder share grid starts).
    days_of: dict[datetime, date] = field(default_factory=dict)
    #: The owner's working hours over the window (for :meth:`hours_never_meet`), once.
    owner_work: list[Interval] | None = None
    #: :meth:`caps_full`, computed on first use and again only after a slot is taken.
    full: bool | None = None
    #: (zone, hours) -> whether those working hours never meet the owner's in the window.
    apart: dict[tuple[str, WeeklyHours], bool] = field(default_factory=dict)
    #: lower-cased e-mail -> starts of the owner's meetings with them (open one-to-ones, open
    #: and held group meetings, this round's proposals), for
    #: ``etiquette.max_per_stakeholder_per_week`` in their own ISO week.
    met: dict[str, list[datetime]] = field(default_factory=dict)

    @classmethod
    def start(
        cls, policy: Policy, now: datetime, busy: BusyResult, open_existing: list[ExistingMeeting]
    ) -> Round:
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
        met: dict[str, list[datetime]] = {}
        for m in open_existing:
            met.setdefault(m.stakeholder.lower(), []).append(m.start)
            local_day = m.start.astimezone(owner_zone).date()
            day_load[local_day] += 1
            week_load[local_day.isocalendar()[:2]] += 1
        base_rules = SlotRules(
            duration=policy.meeting.duration,
            earliest=ceil_to_grid(now + av.min_notice),
            latest=window.end,
            owner_zone=policy.owner.timezone,
            windows=av.windows,
            lunch_window=av.lunch_window if policy.meeting.kind == "lunch" else None,
            no_meeting_days=av.no_meeting_days,
            blackout=av.blackout,
            buffer=av.buffer,
            grid=GRID,
        )
        return cls(
            policy, now, window, owner_zone, blocks,
            {k.lower(): v for k, v in busy.unavailable.items()},
            {k.lower(): v for k, v in busy.working_hours.items()},
            owner_busy, day_load, week_load, base_rules, met=met,
        )  # fmt: skip

    def take(self, chosen: Candidate) -> None:
        local_day = self.local_day(chosen.start)
        self.day_load[local_day] += 1
        self.week_load[local_day.isocalendar()[:2]] += 1
        self.owner_busy = normalise([*self.owner_busy, chosen.interval])
        self.stale.update(self.contexts)
        self.contexts.clear()
        self.full = None

    def local_day(self, moment: datetime) -> date:
        """The owner-local date of ``moment``."""
        day = self.days_of.get(moment)
        if day is None:
            day = self.days_of[moment] = moment.astimezone(self.owner_zone).date()
        return day

    def context_for(self, rules: SlotRules) -> OwnerContext:
        return self._context(rules.lunch_window)

    def _context(self, key: TimeRange | None) -> OwnerContext:
        if key not in self.contexts:
            base = replace(self.base_rules, lunch_window=key)
            self.contexts[key] = OwnerContext.build(
                base,
                owner_hours=self.policy.availability.working_hours,
                owner_busy=self.owner_busy,
                previous=self.stale.pop(key, None),
            )
        return self.contexts[key]

    def within_caps(self, day: date) -> bool:
        """Whether one more goodwill meeting on owner-local ``day`` stays within both caps."""
        av = self.policy.availability
        return (
            self.day_load[day] < av.max_per_day
            and self.week_load[day.isocalendar()[:2]] < av.max_per_week
        )

    def caps_full(self) -> bool:
        """Whether no further one-to-one fits this round: no owner-local day that could hold a
        slot start (the owner has allowed time on it, any meeting kind) is within both caps."""
        if self.full is None:
            self.full = not any(self.within_caps(day) for day in self._slot_days())
        return self.full

    def _slot_days(self) -> set[date]:
        """Owner-local dates on which a slot of any stakeholder could start: those of the
        owner's allowed pieces without a lunch window (a superset of every kind's pieces)."""
        return self._context(None).start_dates()

    def hours_never_meet(self, other_zone: str, other_hours: WeeklyHours) -> bool:
        """Whether the owner's and these working hours never overlap within the window."""
        key = (other_zone, other_hours)
        if key not in self.apart:
            if self.owner_work is None:
                av, zone = self.policy.availability, self.policy.owner.timezone
                self.owner_work = working_intervals(av.working_hours, zone, self.window)
            theirs = working_intervals(other_hours, other_zone, self.window)
            self.apart[key] = not intersect(self.owner_work, theirs)
        return self.apart[key]


def plan_one(
    r: Round, d: Due, load: StakeholderLoad | None, *, stop_at_caps: bool = False
) -> Proposal | Skip:
    """A proposal for one due stakeholder, or why there is none. With ``stop_at_caps``, once
    :meth:`Round.caps_full` the slot finder is not asked (see the module docstring)."""
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
    earliest = ceil_to_grid(max(r.now + av.min_notice, d.not_before))
    if earliest >= r.window.end:
        return Skip(email, SkipCode.NOT_DUE, f"not due within the horizon ({d.why})")
    if stop_at_caps and r.caps_full():
        if r.hours_never_meet(other_zone, other_hours):
            reason = _no_slot_reason(r, other_zone, other_hours)
            return Skip(email, SkipCode.NO_COMMON_SLOT, reason)
        return _cap_reached(r, email)
    meeting = policy.meeting_of(s)  # a tier's or their own kind and length
    lunch = av.lunch_window if meeting.kind == "lunch" else None
    rules = replace(r.base_rules, earliest=earliest, duration=meeting.duration, lunch_window=lunch)
    candidates = find_slots(
        rules,
        owner_hours=av.working_hours,
        other_hours=other_hours,
        other_zone=other_zone,
        owner_busy=r.owner_busy,
        other_busy=apply_busy_rules(r.blocks.get(email, []), av.busy),
        day_load=r.day_load,
        context=r.context_for(rules),
    )
    picked = _choose(r, email, candidates, other_zone, other_hours, load)
    if isinstance(picked, Skip):
        return picked
    chosen, others = picked
    r.take(chosen)
    r.met.setdefault(email, []).append(chosen.start)
    return Proposal(
        stakeholder=email,
        name=s.name,
        tier=s.tier,
        start=chosen.start,
        end=chosen.end,
        kind=meeting.kind,
        mode=policy.mode_of(s),
        reason=f"{d.why}; {chosen.reason}",
        alternatives=tuple((c.start, c.end) for c in others),
    )


def settle_alternatives(r: Round, proposals: Sequence[Proposal]) -> list[Proposal]:
    """Keep the alternatives that are still open after the whole round: not overlapping (with
    the buffer) another proposal of the round, and on a day and week whose caps the others
    left room in (each alternative replaces its own proposal's slot)."""
    av = r.policy.availability
    out: list[Proposal] = []
    padded = [(o, Interval(o.start, o.end).padded(av.buffer)) for o in proposals]
    for p in proposals:
        own_day = r.local_day(p.start)
        others = [iv for o, iv in padded if o is not p]
        kept: list[tuple[datetime, datetime]] = []
        for start, end in p.alternatives:
            day = r.local_day(start)
            week = day.isocalendar()[:2]
            day_load = r.day_load[day] - (day == own_day)
            week_load = r.week_load[week] - (week == own_day.isocalendar()[:2])
            slot = Interval(start, end)
            if (
                day_load < av.max_per_day
                and week_load < av.max_per_week
                and not any(slot.overlaps(o) for o in others)
            ):
                kept.append((start, end))
            if len(kept) == ALTERNATIVES:
                break
        out.append(replace(p, alternatives=tuple(kept)))
    return out


def _cap_reached(r: Round, email: str) -> Skip:
    av = r.policy.availability
    return Skip(
        email,
        SkipCode.CAP_REACHED,
        f"cap reached: every free slot falls on a day or week that already has "
        f"{av.max_per_day}/day or {av.max_per_week}/week goodwill meetings",
    )


def _choose(
    r: Round,
    email: str,
    candidates: Sequence[Candidate],
    other_zone: str,
    other_hours: WeeklyHours,
    load: StakeholderLoad | None,
) -> tuple[Candidate, list[Candidate]] | Skip:
    """The first candidate within every cap and its alternatives, or the skip that says which
    cap stopped it."""
    if not candidates:
        reason = _no_slot_reason(r, other_zone, other_hours)
        return Skip(email, SkipCode.NO_COMMON_SLOT, reason)
    free = _below_own_limit(r, candidates, other_zone, email)
    if not free:
        reason = f"cap reached: every free slot falls in a week {_own_limit_text(r)}"
        return Skip(email, SkipCode.CAP_REACHED, reason)
    limited = len(free) < len(candidates)
    if load is not None:
        free = _within_their_weekly_cap(free, other_zone, load, email)
        if not free:
            return Skip(
                email,
                SkipCode.STAKEHOLDER_BUSY,
                f"stakeholder_busy: every free slot falls in a week when they already have "
                f"{load.weekly_cap} goodwill coffees",
            )
    chosen = next((c for c in free if r.within_caps(r.local_day(c.start))), None)
    if chosen is None:
        skip = _cap_reached(r, email)
        if limited:
            return replace(skip, reason=f"{skip.reason}, or in a week {_own_limit_text(r)}")
        return skip
    return chosen, _alternatives(r, free, chosen)


def _alternatives(r: Round, candidates: Sequence[Candidate], chosen: Candidate) -> list[Candidate]:
    """Up to ``_POOL`` other candidates within the same caps (each would replace the chosen
    slot), best first: one per other day first, then others that do not overlap.
    :func:`settle_alternatives` keeps :data:`ALTERNATIVES` of them once the round is done."""
    days = {r.local_day(chosen.start)}
    picked: list[Candidate] = []
    for c in candidates:
        day = r.local_day(c.start)
        if day not in days and r.within_caps(day):
            picked.append(c)
            days.add(day)
            if len(picked) == _POOL:
                return picked
    taken = [(chosen.start, chosen.end), *((p.start, p.end) for p in picked)]
    for c in candidates:
        if len(picked) == _POOL:
            break
        if not r.within_caps(r.local_day(c.start)):
            continue
        # One already picked overlaps itself (durations are positive): never picked twice.
        start, end = c.start, c.end
        if all(not (start < o_end and o_start < end) for o_start, o_end in taken):
            picked.append(c)
            taken.append((start, end))
    return picked


def _own_limit_text(r: Round) -> str:
    limit = r.policy.etiquette.max_per_stakeholder_per_week
    meetings = "a goodwill meeting" if limit == 1 else f"{limit} goodwill meetings"
    return (
        f"when they already have {meetings} with you "
        f"(etiquette.max_per_stakeholder_per_week: {limit})"
    )


def _below_own_limit(
    r: Round, candidates: Sequence[Candidate], zone_name: str, email: str
) -> Sequence[Candidate]:
    """The candidates in weeks (the stakeholder's ISO weeks) in which they have fewer than
    ``etiquette.max_per_stakeholder_per_week`` of the owner's meetings (groups included)."""
    if not r.met.get(email):
        return candidates
    zone = ZoneInfo(zone_name)
    weeks = Counter(start.astimezone(zone).isocalendar()[:2] for start in r.met[email])
    limit = r.policy.etiquette.max_per_stakeholder_per_week
    return [c for c in candidates if weeks[c.start.astimezone(zone).isocalendar()[:2]] < limit]


def _within_their_weekly_cap(
    candidates: Sequence[Candidate], zone_name: str, load: StakeholderLoad, email: str
) -> list[Candidate]:
    """The candidates in weeks (the stakeholder's ISO weeks) below their weekly cap."""
    theirs = load.meetings.get(email, ())
    if not theirs:  # no week of theirs has any: every candidate's week is below a positive cap
        return list(candidates) if load.weekly_cap > 0 else []
    zone = ZoneInfo(zone_name)
    weeks = Counter(start.astimezone(zone).isocalendar()[:2] for start in theirs)
    return [
        c for c in candidates if weeks[c.start.astimezone(zone).isocalendar()[:2]] < load.weekly_cap
    ]


def _no_slot_reason(r: Round, other_zone: str, other_hours: WeeklyHours) -> str:
    policy = r.policy
    if r.hours_never_meet(other_zone, other_hours):
        return (
            f"no common slot: your working hours ({policy.owner.timezone}) and theirs "
            f"({other_zone}) never overlap"
        )
    days = policy.availability.horizon.days
    return f"no common free slot in the next {days} days"
