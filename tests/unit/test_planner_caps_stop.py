"""The planner stops asking the slot finder once the day and week caps are full (issue 13).

The early stop must not change the plan: proposals, their slots and alternatives, groups, skips
and their reasons are the same as when every due stakeholder is searched (the private
``_stop_at_caps=False``), but for one documented difference: a stakeholder reached after the caps
are full whom the full search would have skipped for no common free slot (working hours that
overlap but no free time) or for their own weekly cap is reported as "cap reached".
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import scheduler.core.planner_round as planner_round
from scheduler.core.cadence import SkipCode
from scheduler.core.model import BusyBlock, BusyResult
from scheduler.core.planner import ExistingMeeting, Plan, StakeholderLoad, plan
from scheduler.core.policy import Policy, load_policy_text

NOW = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)  # a Monday
ZONES = ("Europe/London", "America/New_York", "Asia/Kolkata", "Pacific/Auckland")
HOURS = ('"09:00-17:00"', '"08:00-12:00"', '"13:00-18:00"', '"02:00-05:00"')


def policy_text(
    people: list[str],
    *,
    per_day: int,
    per_week: int,
    owner_zone: str = "Europe/London",
    availability: str = "",
    group: str = "",
) -> str:
    return (
        f"owner: {{email: alex@corp.example, name: Alex Doe, timezone: {owner_zone}}}\n"
        "meeting: {kind: coffee, duration: 30m}\n"
        "availability:\n"
        '  working_hours: {mon-fri: "09:00-17:00"}\n'
        "  min_notice: 0m\n"
        "  horizon: 14d\n"
        f"  max_per_day: {per_day}\n"
        f"  max_per_week: {per_week}\n"
        '  lunch_window: "11:30-14:00"\n'
        f"{availability}"
        "tiers:\n"
        "  peer: {every: 8w, mode: auto}\n"
        "  mentor: {every: 4w, mode: propose, meeting: {kind: lunch, duration: 60m}}\n"
        "allowed_domains: [corp.example]\n"
        "stakeholders:\n" + "".join(f"  - {p}\n" for p in people) + group
    )


def peers(n: int) -> list[str]:
    return [f"{{email: p{i}@corp.example, name: Peer {i}, tier: peer}}" for i in range(n)]


def free_for(policy: Policy) -> BusyResult:
    blocks: dict[str, list[BusyBlock]] = {policy.owner.email: []}
    blocks.update({s.email: [] for s in policy.stakeholders})
    return BusyResult(blocks=blocks)


CAP_TEXT = "cap reached: every free slot falls on a day or week that already has"


def assert_same_plan(fast: Plan, slow: Plan) -> None:
    """Equal plans, but for the documented skip difference after the stop."""
    assert fast.proposals == slow.proposals  # slots, kinds, reasons, alternatives, notes
    assert fast.group_proposals == slow.group_proposals
    assert fast.group_skipped == slow.group_skipped
    assert fast.notes == slow.notes
    assert [s.stakeholder for s in fast.skipped] == [s.stakeholder for s in slow.skipped]
    for f, s in zip(fast.skipped, slow.skipped, strict=True):
        if f == s:
            continue
        assert f.code is SkipCode.CAP_REACHED, (f, s)
        assert f.reason.startswith(CAP_TEXT), (f, s)
        assert (
            (s.code is SkipCode.NO_COMMON_SLOT and "never overlap" not in s.reason)
            or (s.code is SkipCode.STAKEHOLDER_BUSY and "week" in s.reason)
            or (s.code is SkipCode.CAP_REACHED and "max_per_stakeholder_per_week" in s.reason)
        ), (f, s)


class FinderSpy:
    """Counts calls of the real slot finder (it still answers them)."""

    def __init__(self, real: Callable[..., Any]) -> None:
        self.real, self.calls = real, 0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return self.real(*args, **kwargs)


@pytest.fixture
def finder(monkeypatch: pytest.MonkeyPatch) -> FinderSpy:
    spy = FinderSpy(planner_round.find_slots)
    monkeypatch.setattr(planner_round, "find_slots", spy)
    return spy


def test_twenty_due_with_room_for_six_asks_the_finder_six_times(finder: FinderSpy) -> None:
    # 3 a week; the 14-day horizon from Monday 08:00 holds two working weeks (the third week's
    # Monday ends at 08:00, before working hours): room for 6.
    policy = load_policy_text(
        policy_text(peers(20), per_day=1, per_week=3), source="t.yaml", fmt="yaml"
    )
    busy = free_for(policy)
    fast = plan(policy, now=NOW, busy=busy, last_contacts={})
    assert (len(fast.proposals), finder.calls) == (6, 6)
    finder.calls = 0
    slow = plan(policy, now=NOW, busy=busy, last_contacts={}, _stop_at_caps=False)
    assert finder.calls == 20
    assert fast == slow
    assert [s.code for s in fast.skipped] == [SkipCode.CAP_REACHED] * 14
    assert fast.skipped[0].reason == (
        "cap reached: every free slot falls on a day or week that already has "
        "1/day or 3/week goodwill meetings"
    )


def test_caps_already_full_from_booked_meetings_ask_the_finder_nothing(finder: FinderSpy) -> None:
    policy = load_policy_text(
        policy_text(peers(4), per_day=5, per_week=1), source="t.yaml", fmt="yaml"
    )
    booked = [
        ExistingMeeting(
            "old@corp.example",
            NOW + timedelta(days=d, hours=3),
            NOW + timedelta(days=d, hours=3, minutes=30),
        )
        for d in (0, 7)
    ]
    fast = plan(policy, now=NOW, busy=free_for(policy), last_contacts={}, existing=booked)
    assert finder.calls == 0
    assert [s.code for s in fast.skipped] == [SkipCode.CAP_REACHED] * 4
    slow = plan(
        policy, now=NOW, busy=free_for(policy), last_contacts={}, existing=booked,
        _stop_at_caps=False,
    )  # fmt: skip
    assert fast == slow


def test_a_free_day_the_owner_has_no_time_on_does_not_keep_the_search_going(
    finder: FinderSpy,
) -> None:
    # Wednesdays are no-meeting days and the owner is busy all of Thursday 3 Dec: with 1 a day
    # the other 8 working days fill up and the search stops although those days have no load.
    policy = load_policy_text(
        policy_text(peers(12), per_day=1, per_week=5, availability="  no_meeting_days: [wed]\n"),
        source="t.yaml",
        fmt="yaml",
    )
    busy = free_for(policy)
    thursday = datetime(2026, 12, 3, tzinfo=UTC)
    busy.blocks[policy.owner.email] = [BusyBlock(thursday, thursday + timedelta(days=1))]
    fast = plan(policy, now=NOW, busy=busy, last_contacts={})
    assert (len(fast.proposals), finder.calls) == (7, 7)
    assert fast == plan(policy, now=NOW, busy=busy, last_contacts={}, _stop_at_caps=False)


def test_hours_that_never_overlap_are_still_said_after_the_stop(finder: FinderSpy) -> None:
    people = [
        *peers(2),
        "{email: zfar@corp.example, name: Far Away, tier: peer, timezone: Pacific/Auckland, "
        'working_hours: {mon-fri: "09:00-12:00"}}',
    ]
    policy = load_policy_text(
        policy_text(people, per_day=1, per_week=1), source="t.yaml", fmt="yaml"
    )
    # Equally overdue: the e-mail orders them, so zfar is planned once the two weeks are full.
    met: dict[str, datetime] = {}
    fast = plan(policy, now=NOW, busy=free_for(policy), last_contacts=met)
    assert (len(fast.proposals), finder.calls) == (2, 2)
    (far,) = fast.skipped
    assert far.stakeholder == "zfar@corp.example"
    assert far.code is SkipCode.NO_COMMON_SLOT
    assert "never overlap" in far.reason
    assert fast == plan(
        policy, now=NOW, busy=free_for(policy), last_contacts=met, _stop_at_caps=False
    )


@pytest.mark.parametrize(("per_week", "one_to_ones"), [(4, 7), (5, 8)])
def test_groups_are_planned_before_the_one_to_ones(per_week: int, one_to_ones: int) -> None:
    # 8 one-to-ones at 1 a day: the group (counting once) takes its day first, so with 4 a week
    # (8 days under the caps) one one-to-one is left for the caps; with 5 a week all 8 fit.
    members = [f"p{i}@corp.example" for i in range(4)]
    group = f"groups:\n  - {{name: g, members: [{', '.join(members)}], size: '2..4', quorum: 1}}\n"
    policy = load_policy_text(
        policy_text(peers(8), per_day=1, per_week=per_week, group=group),
        source="t.yaml",
        fmt="yaml",
    )
    met = {m: NOW - timedelta(days=400) for m in members}
    fast = plan(policy, now=NOW, busy=free_for(policy), last_contacts=met)
    slow = plan(policy, now=NOW, busy=free_for(policy), last_contacts=met, _stop_at_caps=False)
    assert fast == slow
    assert len(fast.group_proposals) == 1
    assert fast.group_skipped == ()
    assert len(fast.proposals) == one_to_ones
    assert [s.code for s in fast.skipped] == [SkipCode.CAP_REACHED] * (8 - one_to_ones)
    (lunch,) = fast.group_proposals
    days = {p.start.date() for p in fast.proposals}
    assert lunch.start.date() not in days  # max_per_day: 1 counts the group


# --- the property: same plan with and without the stop ----------------------------------------


@st.composite
def scenarios(draw: st.DrawFn) -> dict[str, Any]:
    n = draw(st.integers(1, 9))
    people = []
    for i in range(n):
        tier = draw(st.sampled_from(["peer", "mentor"]))
        extra = ""
        if draw(st.booleans()):
            zone, hours = draw(st.sampled_from(ZONES)), draw(st.sampled_from(HOURS))
            extra = f", timezone: {zone}, working_hours: {{mon-fri: {hours}}}"
        people.append(f"{{email: p{i}@corp.example, name: P {i}, tier: {tier}{extra}}}")
    avail = draw(
        st.sampled_from(
            [
                "",
                "  no_meeting_days: [wed]\n",
                "  buffer: 15m\n",
                '  windows: ["10:00-11:00"]\n',
                "  blackout: 2026-12-07..2026-12-09\n",
                "  min_notice: 2d\n",
            ]
        )
    )
    group = ""
    if n >= 3 and draw(st.booleans()):
        members = ", ".join(f"p{i}@corp.example" for i in range(n))
        group = f"groups:\n  - {{name: g, members: [{members}], size: '2..3', quorum: 0.5}}\n"
    text = policy_text(
        people,
        per_day=draw(st.integers(1, 3)),
        per_week=draw(st.integers(1, 6)),
        owner_zone=draw(st.sampled_from(ZONES[:3])),
        availability=avail,
        group=group,
    )
    if "min_notice: 2d" in text:
        text = text.replace("  min_notice: 0m\n", "")
    policy = load_policy_text(text, source="p.yaml", fmt="yaml")
    day_blocks = st.lists(
        st.tuples(st.integers(0, 15), st.integers(0, 47), st.integers(1, 20)), max_size=8
    )

    def blocks_of(items: list[tuple[int, int, int]]) -> list[BusyBlock]:
        midnight = datetime(2026, 11, 30, tzinfo=UTC)
        return [
            BusyBlock(
                start=midnight + timedelta(days=d, minutes=30 * h),
                end=midnight + timedelta(days=d, minutes=30 * (h + k)),
            )
            for d, h, k in items
        ]

    blocks = {"alex@corp.example": blocks_of(draw(day_blocks))}
    for s in policy.stakeholders:
        if draw(st.integers(0, 9)) > 0:  # now and then no calendar
            blocks[s.email] = blocks_of(draw(day_blocks))
    existing = [
        ExistingMeeting(
            "old@corp.example",
            NOW + timedelta(days=d, hours=h),
            NOW + timedelta(days=d, hours=h, minutes=30),
        )
        for d, h in draw(st.lists(st.tuples(st.integers(0, 13), st.integers(1, 8)), max_size=4))
    ]
    contacts = {
        s.email: NOW - timedelta(days=draw(st.integers(1, 120)))
        for s in policy.stakeholders
        if draw(st.booleans())
    }
    load = None
    if draw(st.booleans()):
        load = StakeholderLoad(
            weekly_cap=draw(st.integers(1, 2)),
            meetings={
                s.email: [NOW + timedelta(days=draw(st.integers(0, 13)), hours=2)]
                for s in policy.stakeholders
                if draw(st.booleans())
            },
        )
    return {
        "policy": policy,
        "now": NOW,
        "busy": BusyResult(blocks=blocks),
        "last_contacts": contacts,
        "existing": existing,
        "load": load,
    }


@given(scenarios())
def test_the_plan_is_the_same_with_and_without_the_early_stop(kw: dict[str, Any]) -> None:
    fast = plan(**kw)
    slow = plan(**kw, _stop_at_caps=False)
    assert_same_plan(fast, slow)
