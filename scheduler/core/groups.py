"""Group meetings and introductions: (policy, busy time, history, now) -> group proposals. Pure.

For each group of the policy that is due (``every`` after the last one held, never while one is
open), :func:`plan_groups` chooses attendees and a slot:

- **Attendees**, at most ``size.high``: never both of an ``avoid_together`` pair; at least
  ``mix_departments`` departments where the members allow (new departments are taken first);
  nobody paused, nobody ``to_meet`` who has not been met (never invited cold), no senior member
  before one one-to-one with the owner has completed ("meet senior people one-to-one first"),
  nobody whose calendar could not be read. Members who presented longest ago come first.
  Nobody is invited in a week (their own ISO week) in which they already have
  ``etiquette.max_per_stakeholder_per_week`` of the owner's meetings (open one-to-ones, open
  and held groups and introductions, the ones placed before in this plan).
- **Slot**: the owner's rules, exactly as for a one-to-one (:func:`~scheduler.core.slots.
  find_slots`: notice, horizon, working hours, preferred windows, no-meeting days, blackouts,
  buffer, the owner's busy time; the lunch window for ``kind: lunch``), and the owner's
  ``max_per_day``/``max_per_week``, a group meeting counting once. Only members inside *their
  own* working hours (and lunch window, for a lunch) in *their own* zone are invited, at least
  ``size.low`` of them, and at least ``ceil(quorum × invited)`` of those must be free. Each
  person's hours are expanded per local day (:mod:`scheduler.core.availability`): DST-correct.
- **Presenter** (``presenter: rotate``): among the invited who are free, whoever presented
  longest ago (never first, then e-mail). So nobody presents twice before everyone else
  attending has presented since.

Introductions (``introductions: {mode: meeting}``, :mod:`scheduler.core.introductions`): one
proposal ``group="introduction"``, attendees ``(Y, X)``, both free in their own hours.

Everything is propose mode; attendees never include the owner. Same inputs, same plan.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from scheduler.core.busy import apply_busy_rules
from scheduler.core.cadence import EARLY_FRACTION
from scheduler.core.group_members import (
    MemberLoad,
    choose_attendees,
    eligible,
    left_out_code,
    left_out_text,
    own_limit_text,
    owner_meetings,
)
from scheduler.core.group_slots import (
    Attendee,
    OwnerState,
    as_intervals,
    attendee_time,
    ceil_to_grid,
    covered,
    covers,
    department,
    share,
    weeks_text,
)
from scheduler.core.intervals import Interval
from scheduler.core.introductions import pending_introductions
from scheduler.core.model import BusyResult
from scheduler.core.policy import Policy
from scheduler.core.policy.groups import INTRODUCTION, Group
from scheduler.core.slots import Candidate, SlotRules, find_slots
from scheduler.core.spans import ceil_ts, floor_ts, subtract_spans

__all__ = [
    "GroupHistory",
    "GroupProposal",
    "GroupSkip",
    "OwnerTaken",
    "group_people",
    "outside_groups",
    "owner_meetings",
    "plan_groups",
    "skip_groups",
]

_GRID = timedelta(minutes=15)


@dataclass(frozen=True, slots=True)
class GroupProposal:
    """One group meeting (or introduction) to propose. ``start``/``end`` are aware UTC."""

    group: str  # the group's name, or "introduction"
    attendees: tuple[str, ...]  # lower-case e-mails, the owner NOT included, presenter first
    presenter: str | None  # None for presenter: none and for introductions
    start: datetime
    end: datetime
    kind: str  # "lunch" | "coffee"
    mode: str = "propose"  # groups and introductions are always propose
    reason: str = ""  # why this slot / these people, for the owner
    location: str | None = None
    video: str | None = None
    quorum: int = 1  # attendees (owner excluded) who must stay for it to stand

    def as_json(self) -> dict[str, object]:
        """One entry of ``plan --json``'s ``group_proposals`` (a public contract: only grows)."""
        return {
            "group": self.group,
            "attendees": list(self.attendees),
            "presenter": self.presenter,
            "start": _z(self.start),
            "end": _z(self.end),
            "kind": self.kind,
            "mode": self.mode,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class GroupSkip:
    """Why a group (or an introduction) gets no proposal this cycle."""

    group: str
    reason: str
    code: str  # "no_quorum_slot", "too_few_members", "not_due", "senior_first", "caps_full", …

    def as_json(self) -> dict[str, object]:
        """One entry of ``plan --json``'s ``group_skipped``."""
        return {"group": self.group, "reason": self.reason, "code": self.code}


@dataclass(frozen=True, slots=True)
class GroupHistory:
    """What the store knows of past group meetings (the app feeds it; all e-mails lower-case).

    Attributes:
        last_held: group name -> start of its latest meeting that was held (cadence).
        open_groups: group names with an open meeting (proposed or booked, not yet held): no
            second one is proposed.
        presented: group name -> e-mail -> start of the meeting they last presented at.
        one_to_one_done: e-mails with at least one completed goodwill one-to-one with the
            owner; ``None``: anyone in the planner's ``last_contacts`` counts as met.
        open_introductions: ``to_meet`` e-mails with an open introduction meeting.
        declined_until: group name -> end of the back-off after the owner declined its
            proposal (as for a one-to-one): not proposed again before.
        taken: group name -> slots of its meetings that ended while being booked (the slot
            was taken): re-planned in another slot, never the same one.
        load: what members already have from other owners (the planner's
            ``StakeholderLoad``; None: not considered): the service-wide weekly cap and
            "a senior at most one new invite a day" apply to group members too.
        attended: e-mail -> starts of the owner's open and held group meetings and
            introductions they are invited to (and of held one-to-ones): with the owner's open
            one-to-ones (:attr:`OwnerTaken.met`) they count towards
            ``etiquette.max_per_stakeholder_per_week`` in the person's own ISO week.
    """

    last_held: Mapping[str, datetime] = field(default_factory=dict)
    open_groups: Collection[str] = ()
    presented: Mapping[str, Mapping[str, datetime]] = field(default_factory=dict)
    one_to_one_done: Collection[str] | None = None
    open_introductions: Collection[str] = ()
    declined_until: Mapping[str, datetime] = field(default_factory=dict)
    taken: Mapping[str, Sequence[Interval]] = field(default_factory=dict)
    load: MemberLoad | None = None
    attended: Mapping[str, Sequence[datetime]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class OwnerTaken:
    """The owner's side already taken when groups are planned (the one-to-ones of this plan).

    Attributes:
        busy: the owner's busy time after the busy rules, plus open goodwill meetings and this
            plan's proposals (UTC intervals).
        day_load: goodwill meetings per owner-local date (open plus proposed).
        week_load: the same per owner-local ISO week ``(year, week)``.
        met: lower-cased e-mail -> starts of the owner's open one-to-ones with them (the
            planner's ``existing``), for ``etiquette.max_per_stakeholder_per_week``.
    """

    busy: Sequence[Interval] = ()
    day_load: Mapping[date, int] = field(default_factory=dict)
    week_load: Mapping[tuple[int, int], int] = field(default_factory=dict)
    met: Mapping[str, Sequence[datetime]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class _Spec:
    """One meeting to place: a due group, or an introduction."""

    name: str
    kind: str
    duration: timedelta
    low: int
    high: int
    quorum: float
    rotate: bool
    mix: int
    not_before: datetime
    why: str
    location: str | None
    video: str | None
    #: Slots not to propose again (they were taken while being booked).
    avoid: tuple[Interval, ...] = ()


def plan_groups(
    policy: Policy,
    *,
    now: datetime,
    busy: BusyResult,
    last_contacts: Mapping[str, datetime],
    history: GroupHistory | None = None,
    owner: OwnerTaken | None = None,
) -> tuple[tuple[GroupProposal, ...], tuple[GroupSkip, ...]]:
    """Plan the due groups, then the introductions, for one owner.

    Args:
        policy: the owner's validated policy.
        now: aware UTC "now".
        busy: busy blocks over ``[now, now + horizon)`` for the owner and every person of
            :func:`group_people` (a member without blocks, or ``unavailable``, is left out).
        last_contacts: lower-cased e-mail -> latest completed contact, as for one-to-ones.
        history: past group meetings (None: none known).
        owner: the owner's time already taken this plan (None: the owner's blocks in ``busy``
            after the busy rules, nothing proposed yet).
    """
    history = history or GroupHistory()
    zone = ZoneInfo(policy.owner.timezone)
    if owner is None:
        own = apply_busy_rules(
            busy.blocks.get(policy.owner.email.lower(), []), policy.availability.busy
        )
        owner = OwnerTaken(busy=own)
    met = owner_meetings(owner.met, history.attended)
    state = OwnerState(
        list(owner.busy), Counter(owner.day_load), Counter(owner.week_load), zone, met
    )
    outcomes: list[GroupProposal | GroupSkip] = []
    for group in policy.groups:
        outcomes.append(_plan_group(policy, group, now, busy, last_contacts, history, state))
    if policy.introductions.mode == "meeting":
        outcomes.extend(_plan_introductions(policy, now, busy, last_contacts, history, state))
    proposals = [o for o in outcomes if isinstance(o, GroupProposal)]
    skipped = [o for o in outcomes if isinstance(o, GroupSkip)]
    proposals.sort(key=lambda p: (p.start, p.group, p.attendees))
    return tuple(proposals), tuple(skipped)


def group_people(policy: Policy, last_contacts: Mapping[str, datetime]) -> list[str]:
    """Lower-cased e-mails whose busy time :func:`plan_groups` needs (members and introductions)."""
    wanted = {m for g in policy.groups for m in g.members}
    if policy.introductions.mode == "meeting":
        for p in pending_introductions(policy, last_contacts):
            wanted.update((p.person.email, p.via.email))
    return sorted(wanted)


def outside_groups(
    slots: Sequence[tuple[datetime, datetime]],
    groups: Sequence[GroupProposal],
    buffer: timedelta,
) -> tuple[tuple[datetime, datetime], ...]:
    """The ``slots`` (a one-to-one's alternatives) that keep ``buffer`` clear of every group."""
    taken = [Interval(g.start, g.end).padded(buffer) for g in groups]
    return tuple((a, b) for a, b in slots if not any(Interval(a, b).overlaps(t) for t in taken))


def skip_groups(
    policy: Policy, last_contacts: Mapping[str, datetime], code: str, reason: str
) -> tuple[GroupSkip, ...]:
    """Every group and introduction skipped for one reason (the owner paused, no calendar)."""
    names = [g.name for g in policy.groups]
    if policy.introductions.mode == "meeting" and pending_introductions(policy, last_contacts):
        names.append(INTRODUCTION)
    return tuple(GroupSkip(name, reason, code) for name in names)


def _plan_group(
    policy: Policy,
    group: Group,
    now: datetime,
    busy: BusyResult,
    last_contacts: Mapping[str, datetime],
    history: GroupHistory,
    state: OwnerState,
) -> GroupProposal | GroupSkip:
    if group.name in history.open_groups:
        return GroupSkip(group.name, "already has an open group meeting", "open_meeting")
    declined = {k.strip().lower(): v for k, v in history.declined_until.items()}
    until = declined.get(group.name.strip().lower())  # a store may keep keys lower-case
    if until is not None and until > now:
        reason = f"backing off after you declined it until {until:%Y-%m-%d}"
        return GroupSkip(group.name, reason, "backoff")
    last = history.last_held.get(group.name)
    not_before, why = now, "never held"
    if last is not None:
        due_at = last + group.every
        not_before = max(now, due_at - group.every / EARLY_FRACTION)
        why = f"last held {last:%Y-%m-%d}, due {due_at:%Y-%m-%d}"
    if not_before >= now + policy.availability.horizon:
        return GroupSkip(group.name, f"not due: {why}", "not_due")
    met, load = history.one_to_one_done, history.load
    can, left_out = eligible(policy, group, now, busy, last_contacts, met, load)
    if len(can) < group.size.low:
        reason = (
            f"only {len(can)} of {len(group.members)} members can be invited "
            f"({left_out_text(left_out)}); size needs {group.size.low}"
        )
        return GroupSkip(group.name, reason, left_out_code(left_out))
    presented = history.presented.get(group.name, {})
    order = sorted(can, key=lambda e: (_presented_key(presented, e), e))
    departments = {e: department(policy, e) for e in order}
    chosen = choose_attendees(group, order, departments)
    spec = _Spec(
        group.name, group.kind, group.duration, group.size.low, group.size.high,
        group.quorum, group.presenter == "rotate", group.mix_departments, not_before,
        f"every {weeks_text(group.every)}, {why}", group.location,
        None if group.video == "none" else group.video, tuple(history.taken.get(group.name, ())),
    )  # fmt: skip
    return _place(policy, spec, chosen, now, busy, state, presented, load)


def _presented_key(presented: Mapping[str, datetime], email: str) -> tuple[int, datetime]:
    last = presented.get(email)
    return (0, datetime.min.replace(tzinfo=UTC)) if last is None else (1, last)


def _plan_introductions(
    policy: Policy,
    now: datetime,
    busy: BusyResult,
    last_contacts: Mapping[str, datetime],
    history: GroupHistory,
    state: OwnerState,
) -> list[GroupProposal | GroupSkip]:
    intro = policy.introductions
    out: list[GroupProposal | GroupSkip] = []
    open_set = {e.lower() for e in history.open_introductions}
    blocks = {k.lower() for k in busy.blocks}
    unavailable = {k.lower() for k in busy.unavailable}
    for p in pending_introductions(policy, last_contacts):
        x, y = p.person.email.lower(), p.via.email.lower()
        what = f"introduction to {p.person.name} through {p.via.name}"
        if x in open_set:
            out.append(GroupSkip(INTRODUCTION, f"{what}: already proposed", "open_meeting"))
            continue
        if any(e not in blocks or e in unavailable for e in (x, y)):
            reason = f"{what}: a calendar could not be read"
            out.append(GroupSkip(INTRODUCTION, reason, "calendar_unavailable"))
            continue
        video = policy.meeting.video
        spec = _Spec(
            INTRODUCTION, intro.kind, intro.duration, 2, 2, 1.0, False, 1, now, what,
            policy.meeting.location, None if video == "none" else video,
        )  # fmt: skip
        out.append(_place(policy, spec, [y, x], now, busy, state, {}, history.load))
    return out


def _place(
    policy: Policy,
    spec: _Spec,
    chosen: Sequence[str],
    now: datetime,
    busy: BusyResult,
    state: OwnerState,
    presented: Mapping[str, datetime],
    load: MemberLoad | None = None,
) -> GroupProposal | GroupSkip:
    """The best slot for ``spec`` with ``chosen`` (see the module docstring), taken."""
    av = policy.availability
    earliest = ceil_to_grid(max(now + av.min_notice, spec.not_before))
    latest = now + av.horizon
    if earliest + spec.duration > latest:
        return GroupSkip(spec.name, f"not due within the horizon ({spec.why})", "not_due")
    lo, hi = ceil_ts(earliest), floor_ts(latest)
    lunch = spec.kind == "lunch"
    own_cap = policy.etiquette.max_per_stakeholder_per_week
    people = [
        attendee_time(policy, e, busy, lunch, lo, hi, load, state.met.get(e, ()), own_cap)
        for e in chosen
    ]
    rules = SlotRules(
        duration=spec.duration,
        earliest=earliest,
        latest=latest,
        owner_zone=policy.owner.timezone,
        windows=av.windows,
        lunch_window=av.lunch_window if spec.kind == "lunch" else None,
        no_meeting_days=av.no_meeting_days,
        blackout=av.blackout,
        buffer=av.buffer,
        grid=_GRID,
    )
    # The owner's rules are find_slots' own; the attendees' side is "at least k of them free".
    need_least = max(1, share(spec.quorum, spec.low))
    together = covered([p.free for p in people], need_least)
    candidates = find_slots(
        rules,
        owner_hours=av.working_hours,
        other_hours=av.working_hours,
        other_zone=policy.owner.timezone,
        owner_busy=[*state.busy, *spec.avoid],
        other_busy=as_intervals(subtract_spans([(lo, hi)], together)),
        day_load=state.day_load,
    )
    capped = False
    departments = {department(policy, p.email) for p in people} - {None}
    for c in candidates:
        s, e = ceil_ts(c.start), ceil_ts(c.end)
        invited = [p for p in people if covers(p.work, s, e)]
        free = [p for p in invited if covers(p.free, s, e)]
        need = share(spec.quorum, len(invited))
        mixed = {department(policy, p.email) for p in invited} - {None}
        if (
            len(invited) < spec.low
            or len(free) < max(need, 1)
            or len(mixed) < min(spec.mix, len(departments))
        ):
            continue
        if not state.fits(c, av.max_per_day, av.max_per_week):
            capped = True
            continue
        state.take(c, [p.email for p in invited])
        at_cap = sum(1 for p in people if covers(p.capped, s, e))
        proposal = _proposal(spec, c, invited, free, need, presented, at_cap)
        if mine := sum(1 for p in people if covers(p.own_capped, s, e)):
            why = f"; {mine} not invited: {own_limit_text(own_cap)} that week"
            return replace(proposal, reason=proposal.reason + why)
        return proposal
    return _no_slot(policy, spec, people, capped=capped)


def _no_slot(policy: Policy, spec: _Spec, people: Sequence[Attendee], *, capped: bool) -> GroupSkip:
    """Why :func:`_place` found no slot: the owner's caps, members at a weekly limit, or no
    quorum."""
    av = policy.availability
    own_cap = policy.etiquette.max_per_stakeholder_per_week
    if capped:
        reason = (
            f"cap reached: every slot with a quorum falls on a day or week that already has "
            f"{av.max_per_day}/day or {av.max_per_week}/week goodwill meetings"
        )
        return GroupSkip(spec.name, reason, "caps_full")
    reason = (
        f"no slot in the next {av.horizon.days} days where at least {spec.low} of "
        f"{len(people)} chosen attendees are in their working hours and {spec.quorum:.0%} of "
        f"them are free"
    )
    at_cap = sum(1 for p in people if p.capped)
    if at_cap:
        reason += f"; {at_cap} of them {_AT_CAP} in some of those weeks"
        return GroupSkip(spec.name, reason, "stakeholder_busy")
    if mine := sum(1 for p in people if p.own_capped):
        reason += (
            f"; {mine} of them {own_limit_text(own_cap)} in some of those weeks "
            f"(etiquette.max_per_stakeholder_per_week: {own_cap})"
        )
        return GroupSkip(spec.name, reason, "caps_full")
    return GroupSkip(spec.name, reason, "no_quorum_slot")


#: Why a member is not invited in a week (never naming who else asked them).
_AT_CAP = "already have the most goodwill meetings a week"


def _proposal(
    spec: _Spec,
    c: Candidate,
    invited: Sequence[Attendee],
    free: Sequence[Attendee],
    need: int,
    presented: Mapping[str, datetime],
    at_cap: int = 0,
) -> GroupProposal:
    presenter = None
    if spec.rotate:
        presenter = min((p.email for p in free), key=lambda e: (_presented_key(presented, e), e))
    rest = [p.email for p in invited if p.email != presenter]
    if spec.name != INTRODUCTION:  # an introduction stays (Y, X)
        rest.sort()
    attendees = (presenter, *rest) if presenter else tuple(rest)
    reason = f"{spec.why}; {len(free)} of {len(invited)} invited are free; {c.reason}"
    if at_cap:
        reason += f"; {at_cap} not invited: {_AT_CAP} that week"
    return GroupProposal(
        group=spec.name,
        attendees=attendees,
        presenter=presenter,
        start=c.start,
        end=c.end,
        kind=spec.kind,
        reason=reason,
        location=spec.location,
        video=spec.video,
        quorum=max(need, 1),
    )


def _z(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
