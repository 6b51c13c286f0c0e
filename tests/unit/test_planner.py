"""Planner and cadence rules, on in-memory busy data (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scheduler.core.busy import apply_busy_rules
from scheduler.core.cadence import SkipCode, assess
from scheduler.core.intervals import Interval, overlaps_any
from scheduler.core.model import BusyBlock, BusyResult, TimeRange, WeeklyHours
from scheduler.core.planner import ExistingMeeting, Plan, StakeholderLoad, plan
from scheduler.core.policy import Policy, load_policy_text

NOW = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)  # a Monday

BASE = """
owner: {email: alex@corp.example, name: Alex Doe, timezone: Europe/London}
calendar: {provider: ics}
meeting: {kind: coffee, duration: 30m}
availability:
  working_hours: {mon-fri: "09:00-17:00"}
  min_notice: 0m
  horizon: 14d
  buffer: 0m
  max_per_day: %(per_day)s
  max_per_week: %(per_week)s
tiers:
  mentor: {every: 4w, mode: propose}
  peer: {every: 8w, mode: auto}
stakeholders:
%(people)s
allowed_domains: [corp.example]
"""


def make_policy(
    people: list[str], *, per_day: int = 1, per_week: int = 3, extra: str = ""
) -> Policy:
    text = BASE % {
        "per_day": per_day,
        "per_week": per_week,
        "people": "\n".join(f"  - {p}" for p in people),
    }
    return load_policy_text(text + extra, source="test.yaml", fmt="yaml")


def peers(n: int) -> list[str]:
    return [f"{{email: p{i}@corp.example, name: Peer {i}, tier: peer}}" for i in range(n)]


def free_for(policy: Policy, extra: dict[str, list[BusyBlock]] | None = None) -> BusyResult:
    blocks: dict[str, list[BusyBlock]] = {policy.owner.email: []}
    for s in policy.stakeholders:
        blocks[s.email] = []
    blocks.update(extra or {})
    return BusyResult(blocks=blocks)


def block(day: int, h0: int, h1: int) -> BusyBlock:
    start = datetime(2026, 11, 30, tzinfo=UTC) + timedelta(days=day, hours=h0)
    return BusyBlock(start=start, end=start + timedelta(hours=h1 - h0))


def test_never_met_stakeholders_are_proposed_within_working_hours() -> None:
    policy = make_policy(peers(2))
    result = plan(policy, now=NOW, busy=free_for(policy), last_contacts={})
    assert [p.stakeholder for p in result.proposals] != []
    assert {p.stakeholder for p in result.proposals} == {"p0@corp.example", "p1@corp.example"}
    for p in result.proposals:
        local = p.start.astimezone(ZoneInfo("Europe/London"))
        assert local.weekday() < 5
        assert local.hour >= 9
        assert p.end.astimezone(ZoneInfo("Europe/London")).hour <= 17
        assert p.mode == "auto"
        assert "never met" in p.reason


def test_busy_time_is_avoided() -> None:
    policy = make_policy(peers(1), per_day=5)
    # stakeholder busy all Monday and Tuesday working hours; owner busy Wednesday morning
    busy = free_for(
        policy,
        {
            "p0@corp.example": [block(0, 0, 24), block(1, 0, 24)],
            "alex@corp.example": [block(2, 9, 12)],
        },
    )
    result = plan(policy, now=NOW, busy=busy, last_contacts={})
    (p,) = result.proposals
    assert p.start >= datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def test_calendar_unavailable_is_skipped_never_booked_blind() -> None:
    policy = make_policy(peers(2))
    busy = BusyResult(
        blocks={"alex@corp.example": [], "p0@corp.example": []},
        unavailable={"p1@corp.example": "notFound"},
    )
    result = plan(policy, now=NOW, busy=busy, last_contacts={})
    assert [p.stakeholder for p in result.proposals] == ["p0@corp.example"]
    (skip,) = result.skipped
    assert skip.code == SkipCode.CALENDAR_UNAVAILABLE
    assert "notFound" in skip.reason


def test_missing_calendar_is_unavailable_too() -> None:
    policy = make_policy(peers(1))
    result = plan(
        policy, now=NOW, busy=BusyResult(blocks={"alex@corp.example": []}), last_contacts={}
    )
    assert result.proposals == ()
    assert result.skipped[0].code == SkipCode.CALENDAR_UNAVAILABLE


def test_owner_calendar_unavailable_skips_everyone() -> None:
    policy = make_policy(peers(2))
    busy = BusyResult(blocks={}, unavailable={"alex@corp.example": "token revoked"})
    result = plan(policy, now=NOW, busy=busy, last_contacts={})
    assert result.proposals == ()
    assert {s.code for s in result.skipped} == {SkipCode.CALENDAR_UNAVAILABLE}
    assert all("your calendar" in s.reason for s in result.skipped)


def test_recent_contact_is_not_due_and_old_contact_is() -> None:
    policy = make_policy(peers(2))
    contacts = {
        "p0@corp.example": NOW - timedelta(weeks=1),  # due in 7 weeks
        "p1@corp.example": NOW - timedelta(weeks=9),  # overdue by a week
    }
    result = plan(policy, now=NOW, busy=free_for(policy), last_contacts=contacts)
    assert [p.stakeholder for p in result.proposals] == ["p1@corp.example"]
    (skip,) = result.skipped
    assert skip.code == SkipCode.NOT_DUE
    assert "next due" in skip.reason


def test_slot_is_not_offered_long_before_the_due_date() -> None:
    policy = make_policy(peers(1))
    # met 7 weeks ago, every 8 weeks: due in 1 week -> not before due - 1 week (8w/8)
    met = NOW - timedelta(weeks=7)
    result = plan(policy, now=NOW, busy=free_for(policy), last_contacts={"p0@corp.example": met})
    (p,) = result.proposals
    assert p.start >= met + timedelta(weeks=8) - timedelta(weeks=1)


def test_paused_stakeholder_is_skipped() -> None:
    policy = make_policy(
        ["{email: p0@corp.example, name: Peer, tier: peer, paused_until: 2027-01-15}"]
    )
    result = plan(policy, now=NOW, busy=free_for(policy), last_contacts={})
    assert result.proposals == ()
    assert result.skipped[0].code == SkipCode.PAUSED
    assert "2027-01-15" in result.skipped[0].reason


def test_open_meeting_blocks_a_second_proposal_and_counts_towards_caps() -> None:
    policy = make_policy(peers(2), per_day=1, per_week=1)
    existing = [
        ExistingMeeting(
            "p0@corp.example",
            NOW + timedelta(days=1, hours=2),
            NOW + timedelta(days=1, hours=2, minutes=30),
        )
    ]
    result = plan(policy, now=NOW, busy=free_for(policy), last_contacts={}, existing=existing)
    codes = {s.stakeholder: s.code for s in result.skipped}
    assert codes["p0@corp.example"] == SkipCode.OPEN_MEETING
    # p1 may not share the week with p0's meeting (max_per_week 1) -> next ISO week
    (p,) = result.proposals
    assert p.start >= datetime(2026, 12, 7, tzinfo=UTC)


def test_caps_per_day_and_per_week_hold() -> None:
    policy = make_policy(peers(6), per_day=1, per_week=2, extra="")
    result = plan(policy, now=NOW, busy=free_for(policy), last_contacts={})
    zone = ZoneInfo("Europe/London")
    days = [p.start.astimezone(zone).date() for p in result.proposals]
    weeks = [d.isocalendar()[:2] for d in days]
    assert len(days) == len(set(days))
    assert all(weeks.count(w) <= 2 for w in weeks)
    assert len(result.proposals) == 4  # two ISO weeks in a 14-day horizon
    assert sum(s.code == SkipCode.CAP_REACHED for s in result.skipped) == 2


def test_proposals_never_overlap() -> None:
    policy = make_policy(peers(5), per_day=5, per_week=10)
    result = plan(policy, now=NOW, busy=free_for(policy), last_contacts={})
    ivs = sorted(Interval(p.start, p.end) for p in result.proposals)
    assert len(ivs) == 5
    assert all(not a.overlaps(b) for a, b in pairwise(ivs))


def test_most_overdue_goes_first_when_time_is_scarce() -> None:
    policy = make_policy(peers(2), per_day=1, per_week=1)
    contacts = {
        "p0@corp.example": NOW - timedelta(weeks=9),
        "p1@corp.example": NOW - timedelta(weeks=14),  # more overdue
    }
    # horizon 14d but only one meeting per ISO week: the most overdue gets the first week
    result = plan(policy, now=NOW, busy=free_for(policy), last_contacts=contacts)
    first = min(result.proposals, key=lambda p: p.start)
    assert first.stakeholder == "p1@corp.example"


def test_tier_order_breaks_ties() -> None:
    policy = make_policy(
        [
            "{email: a@corp.example, name: A, tier: peer}",
            "{email: b@corp.example, name: B, tier: mentor}",
        ]
    )
    due, _ = assess(policy, now=NOW, last_contacts={})
    assert [d.stakeholder.email for d in due] == ["b@corp.example", "a@corp.example"]


def test_senior_defaults_to_propose_mode() -> None:
    policy = make_policy(["{email: a@corp.example, name: A, tier: peer, senior: true}"])
    (p,) = plan(policy, now=NOW, busy=free_for(policy), last_contacts={}).proposals
    assert p.mode == "propose"


def test_backoff_skips_until_it_ends() -> None:
    policy = make_policy(peers(1))
    until = NOW + timedelta(days=10)
    result = plan(
        policy,
        now=NOW,
        busy=free_for(policy),
        last_contacts={},
        backoff_until={"p0@corp.example": until},
    )
    assert result.skipped[0].code == SkipCode.BACKOFF


def test_no_overlap_in_working_hours_is_explained() -> None:
    policy = make_policy(["{email: k@corp.example, name: Kim, tier: peer, timezone: Asia/Tokyo}"])
    result = plan(policy, now=NOW, busy=free_for(policy), last_contacts={})
    (skip,) = result.skipped
    assert skip.code == SkipCode.NO_COMMON_SLOT
    assert "never overlap" in skip.reason


def test_provider_working_hours_used_when_policy_sets_none() -> None:
    policy = make_policy(["{email: n@corp.example, name: Nat, tier: peer}"])
    # 09:00-10:00 in New York is 14:00-15:00 in London: inside the owner's day
    nine_to_ten = TimeRange(time(9, 0), time(10, 0))
    hours = WeeklyHours({d: (nine_to_ten,) for d in range(5)})
    busy = BusyResult(
        blocks={"alex@corp.example": [], "n@corp.example": []},
        working_hours={"n@corp.example": ("America/New_York", hours)},
    )
    (p,) = plan(policy, now=NOW, busy=busy, last_contacts={}).proposals
    local = p.start.astimezone(ZoneInfo("America/New_York"))
    assert local.hour == 9


def test_same_inputs_same_plan() -> None:
    policy = make_policy(peers(4), per_day=2)
    busy = free_for(policy, {"p1@corp.example": [block(0, 9, 12)]})
    assert plan(policy, now=NOW, busy=busy, last_contacts={}) == plan(
        policy, now=NOW, busy=busy, last_contacts={}
    )


def test_json_shape() -> None:
    policy = make_policy(peers(1))
    out = plan(policy, now=NOW, busy=free_for(policy), last_contacts={}).as_json()
    (p,) = out["proposals"]
    assert set(p) == {
        "stakeholder",
        "start",
        "end",
        "kind",
        "mode",
        "reason",
        "alternatives",
        "owner_note",
    }
    assert p["start"].endswith("Z")
    assert p["end"].endswith("Z")
    assert datetime.fromisoformat(p["start"].replace("Z", "+00:00")).tzinfo is not None
    assert Plan().as_json() == {
        "proposals": [],
        "skipped": [],
        "group_proposals": [],
        "group_skipped": [],
    }


busy_blocks = st.lists(
    st.tuples(st.integers(0, 13), st.integers(0, 47), st.integers(1, 8)), max_size=30
).map(
    lambda items: [
        BusyBlock(
            start=NOW + timedelta(days=d, minutes=30 * h),
            end=NOW + timedelta(days=d, minutes=30 * (h + n)),
        )
        for d, h, n in items
    ]
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    owner=busy_blocks,
    others=st.lists(busy_blocks, min_size=3, max_size=3),
    per_day=st.integers(1, 2),
    per_week=st.integers(1, 4),
)
def test_plan_properties(
    owner: list[BusyBlock], others: list[list[BusyBlock]], per_day: int, per_week: int
) -> None:
    policy = make_policy(peers(3), per_day=per_day, per_week=per_week)
    blocks = {"alex@corp.example": owner} | {f"p{i}@corp.example": b for i, b in enumerate(others)}
    result = plan(policy, now=NOW, busy=BusyResult(blocks=blocks), last_contacts={})
    zone = ZoneInfo("Europe/London")
    owner_busy = apply_busy_rules(owner, policy.availability.busy)
    days: dict[object, int] = {}
    weeks: dict[object, int] = {}
    for p in result.proposals:
        iv = Interval(p.start, p.end)
        assert not overlaps_any(iv, owner_busy)
        assert not overlaps_any(
            iv, apply_busy_rules(blocks[p.stakeholder], policy.availability.busy)
        )
        day = p.start.astimezone(zone).date()
        days[day] = days.get(day, 0) + 1
        weeks[day.isocalendar()[:2]] = weeks.get(day.isocalendar()[:2], 0) + 1
    assert all(v <= per_day for v in days.values())
    assert all(v <= per_week for v in weeks.values())
    ivs = sorted(Interval(p.start, p.end) for p in result.proposals)
    assert all(not a.overlaps(b) for a, b in pairwise(ivs))
    assert len({p.stakeholder for p in result.proposals}) == len(result.proposals)
    assert len(result.proposals) + len(result.skipped) == 3


@pytest.mark.parametrize("email", ["P0@CORP.EXAMPLE", "p0@corp.example"])
def test_contacts_are_matched_case_insensitively(email: str) -> None:
    policy = make_policy(peers(1))
    due, skipped = assess(policy, now=NOW, last_contacts={email.lower(): NOW - timedelta(days=1)})
    assert due == []
    assert skipped[0].code == SkipCode.NOT_DUE


# -- one coffee at a time for the people being asked, across owners -------------------------


def test_a_stakeholder_at_the_weekly_cap_across_owners_is_asked_in_a_later_week() -> None:
    policy = make_policy(peers(1))
    # Given p0 already has two goodwill coffees with other owners this week (Mon 30 Nov)
    others = [NOW + timedelta(days=1, hours=3), NOW + timedelta(days=2, hours=3)]
    load = StakeholderLoad(weekly_cap=2, meetings={"p0@corp.example": others})
    result = plan(policy, now=NOW, busy=free_for(policy), last_contacts={}, load=load)
    # Then the coffee goes into next week, not this one
    (proposal,) = result.proposals
    assert proposal.start.isocalendar()[:2] == (2026, 50)
    # And without the load it would have been this week
    (unloaded,) = plan(policy, now=NOW, busy=free_for(policy), last_contacts={}).proposals
    assert unloaded.start.isocalendar()[:2] == (2026, 49)


def test_a_stakeholder_full_in_every_week_of_the_horizon_is_skipped_as_busy() -> None:
    policy = make_policy(peers(1))
    weeks = [NOW + timedelta(days=d, hours=2) for d in (0, 1, 7, 8, 14, 15)]
    load = StakeholderLoad(weekly_cap=2, meetings={"p0@corp.example": weeks})
    result = plan(policy, now=NOW, busy=free_for(policy), last_contacts={}, load=load)
    assert result.proposals == ()
    (skip,) = result.skipped
    assert skip.code == SkipCode.STAKEHOLDER_BUSY
    assert skip.code.value == "stakeholder_busy"
    assert "@" not in skip.reason  # it names no other owner


def test_a_senior_gets_at_most_one_new_goodwill_invite_a_day_across_owners() -> None:
    policy = make_policy(
        [
            "{email: sam@corp.example, name: Sam Lee, tier: peer, senior: true}",
            "{email: kim@corp.example, name: Kim Ito, tier: peer}",
        ],
        per_day=3,
    )
    invited = {"sam@corp.example", "kim@corp.example"}
    load = StakeholderLoad(weekly_cap=2, invited_today=invited)
    result = plan(policy, now=NOW, busy=free_for(policy), last_contacts={}, load=load)
    # The senior who was invited today by another owner waits; the peer does not
    assert [p.stakeholder for p in result.proposals] == ["kim@corp.example"]
    (skip,) = result.skipped
    assert (skip.stakeholder, skip.code) == ("sam@corp.example", SkipCode.STAKEHOLDER_BUSY)
    assert "@" not in skip.reason


def test_each_proposal_keeps_alternatives_under_the_same_rules_and_caps() -> None:
    policy = make_policy(peers(3))
    result = plan(policy, now=NOW, busy=free_for(policy), last_contacts={})
    zone = ZoneInfo(policy.owner.timezone)
    taken = [(p.start, p.end) for p in result.proposals]
    days = {start.astimezone(zone).date() for start, _ in taken}
    av = policy.availability
    for p in result.proposals:
        assert 1 <= len(p.alternatives) <= 3
        for start, end in p.alternatives:
            assert end - start == policy.meeting.duration
            assert start >= NOW + av.min_notice
            assert not any(start < e and s < end for s, e in taken)  # no proposal's slot
            if av.max_per_day == 1:  # another proposal's day is full
                own = p.start.astimezone(zone).date()
                assert start.astimezone(zone).date() not in days - {own}
    (first, *_) = result.as_json()["proposals"]
    alternatives = first["alternatives"]
    assert isinstance(alternatives, list)
    assert all(a.endswith("Z") and b.endswith("Z") for a, b in alternatives)


def test_a_paused_owner_is_proposed_nothing_and_told_why() -> None:
    policy = make_policy(peers(2))
    until = NOW + timedelta(days=4, hours=16)  # the start of Saturday in UTC
    result = plan(
        policy, now=NOW, busy=free_for(policy), last_contacts={}, owner_paused_until=until
    )
    assert result.proposals == ()
    assert {s.code for s in result.skipped} == {SkipCode.PAUSED}
    assert all(
        s.reason.startswith("paused until the end of Fri 4 Dec 2026") for s in result.skipped
    )
    later = plan(
        policy, now=until, busy=free_for(policy), last_contacts={}, owner_paused_until=until
    )
    assert later.proposals
