"""Properties of group planning, checked independently of the planner's own helpers: pairs kept
apart, the quorum, everyone in their own working hours (across London, New York and Kolkata
over DST change weeks), and the presenter rotation over simulated rounds."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from scheduler.core.availability import local_ranges, working_intervals
from scheduler.core.busy import apply_busy_rules
from scheduler.core.groups import GroupHistory, GroupProposal, plan_groups
from scheduler.core.intervals import Interval, overlaps_any
from scheduler.core.model import BusyBlock, BusyResult
from scheduler.core.policy import Policy, load_policy_text

ZONES = ("Europe/London", "America/New_York", "Asia/Kolkata")
#: Each horizon covers a DST change: London 29 Mar 2026; London 25 Oct and New York 1 Nov 2026.
NOWS = (datetime(2026, 3, 23, 6, tzinfo=UTC), datetime(2026, 10, 21, 6, tzinfo=UTC))
HOURS = ('"08:00-16:00"', '"09:00-17:00"', '"10:00-18:30"', '"07:00-12:00"')


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[Policy, BusyResult, datetime]:
    n = draw(st.integers(3, 7))
    people = []
    for i in range(n):
        zone = draw(st.sampled_from(ZONES))
        hours = draw(st.sampled_from(HOURS))
        dept = draw(st.sampled_from(["A", "B", "C"]))
        people.append(
            f"  - {{email: m{i}@corp.example, name: M {i}, tier: peer, timezone: {zone}, "
            f"working_hours: {{mon-fri: {hours}}}, department: {dept}}}"
        )
    members = [f"m{i}@corp.example" for i in range(n)]
    pairs = draw(
        st.lists(st.tuples(st.sampled_from(members), st.sampled_from(members)), max_size=3)
    )
    pairs = [list(p) for p in {tuple(sorted(p)) for p in pairs if p[0] != p[1]}]
    low = draw(st.integers(1, min(3, n)))
    high = draw(st.integers(low, n))
    quorum = draw(st.sampled_from([0.3, 0.5, 0.6, 0.75, 1.0]))
    kind = draw(st.sampled_from(["coffee", "lunch"]))
    owner_zone = draw(st.sampled_from(ZONES))
    text = (
        f"owner: {{email: o@corp.example, name: Owner, timezone: {owner_zone}}}\n"
        "availability: {working_hours: {mon-fri: '07:00-19:00'}, min_notice: 0m, horizon: 14d, "
        "max_per_day: 3, max_per_week: 10, lunch_window: '11:00-15:00'}\n"
        "tiers: {peer: {every: 8w}}\n"
        "stakeholders:\n" + "\n".join(people) + "\n"
        f"groups:\n  - {{name: g, members: [{', '.join(members)}], size: '{low}..{high}', "
        f"quorum: {quorum}, kind: {kind}, duration: {draw(st.sampled_from(['30m', '60m']))}, "
        f"avoid_together: {pairs}, mix_departments: {draw(st.integers(1, 3))}}}\n"
    )
    policy = load_policy_text(text, source="p.yaml", fmt="yaml")
    now = draw(st.sampled_from(NOWS))
    blocks: dict[str, list[BusyBlock]] = {"o@corp.example": []}
    for m in members:
        starts = draw(st.lists(st.integers(0, 14 * 24 * 4), max_size=12))
        lengths = draw(st.lists(st.integers(1, 16), min_size=len(starts), max_size=len(starts)))
        blocks[m] = [
            BusyBlock(now + timedelta(minutes=15 * s), now + timedelta(minutes=15 * (s + k)))
            for s, k in zip(starts, lengths, strict=True)
        ]
    return policy, BusyResult(blocks=blocks), now


def inside(policy: Policy, email: str, p: GroupProposal) -> bool:
    """Independently: the slot lies in the member's working hours (and lunch window) locally."""
    s = policy.stakeholder(email)
    assert s is not None
    zone = policy.person_of(s).timezone
    slot = Interval(p.start, p.end)
    window = Interval(p.start - timedelta(days=1), p.end + timedelta(days=1))
    ok = any(
        w.start <= slot.start and slot.end <= w.end
        for w in working_intervals(policy.hours_of(s), zone, window)
    )
    if p.kind == "lunch":
        lunch = local_ranges((policy.availability.lunch_window,), zone, window)
        ok = ok and any(w.start <= slot.start and slot.end <= w.end for w in lunch)
    return ok


def is_free(policy: Policy, busy: BusyResult, email: str, p: GroupProposal) -> bool:
    taken = apply_busy_rules(busy.blocks[email], policy.availability.busy)
    return not overlaps_any(Interval(p.start, p.end), taken)


@given(scenarios())
def test_every_group_proposal_keeps_pairs_apart_holds_quorum_and_working_hours(
    case: tuple[Policy, BusyResult, datetime],
) -> None:
    policy, busy, now = case
    (group,) = policy.groups
    proposals, skipped = plan_groups(policy, now=now, busy=busy, last_contacts={})
    assert len(proposals) + len(skipped) == 1
    for p in proposals:
        assert len(set(p.attendees)) == len(p.attendees)
        assert group.size.low <= len(p.attendees) <= group.size.high
        assert set(p.attendees) <= set(group.members)
        for pair in group.avoid_together:
            assert not set(pair) <= set(p.attendees)
        assert all(inside(policy, e, p) for e in p.attendees)
        free = [e for e in p.attendees if is_free(policy, busy, e, p)]
        assert len(free) >= math.ceil(round(group.quorum * len(p.attendees), 9))
        assert p.quorum <= len(free)
        assert p.presenter in free
        assert p.attendees[0] == p.presenter
        assert now <= p.start
        assert p.end <= now + policy.availability.horizon


@given(scenarios(), st.integers(3, 8))
def test_the_presenter_never_repeats_before_everyone_attending_presented(
    case: tuple[Policy, BusyResult, datetime], rounds: int
) -> None:
    policy, busy, now = case
    presented: dict[str, datetime] = {}
    held: list[tuple[str, set[str]]] = []  # (presenter, free attendees) per round
    for r in range(rounds):
        at = now + timedelta(weeks=4 * r)
        shifted = BusyResult(
            blocks={
                k: [BusyBlock(b.start + (at - now), b.end + (at - now)) for b in v]
                for k, v in busy.blocks.items()
            }
        )
        history = GroupHistory(presented={"g": dict(presented)})
        proposals, _ = plan_groups(policy, now=at, busy=shifted, last_contacts={}, history=history)
        for p in proposals:
            assert p.presenter is not None
            free = {e for e in p.attendees if is_free(policy, shifted, e, p)}
            held.append((p.presenter, free))
            presented[p.presenter] = p.start
    for t, (presenter, free) in enumerate(held):
        before = [i for i, (who, _) in enumerate(held[:t]) if who == presenter]
        if before:
            since = {who for who, _ in held[before[-1] + 1 : t]}
            assert free - {presenter} <= since, (presenter, free, since)
