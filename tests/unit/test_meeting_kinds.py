"""A meeting kind per tier and per stakeholder (merging, planning) and ``at_most`` in cadence."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest

from scheduler.core.cadence import assess, late_at, next_due
from scheduler.core.invites import invite_text
from scheduler.core.model import BusyResult
from scheduler.core.planner import plan
from scheduler.core.policy import Policy, load_policy_text, policy_to_data

NOW = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)  # a Monday

POLICY = """
owner: {email: alex@corp.example, name: Alex Doe, timezone: Europe/London}
meeting: {kind: coffee, duration: 30m, location: Level 2 café, video: meet}
availability:
  working_hours: {mon-fri: "09:00-17:00"}
  lunch_window: "12:00-14:00"
  min_notice: 0m
  buffer: 0m
  max_per_day: 4
  max_per_week: 20
tiers:
  mentor: {every: 4w, at_most: 6w, mode: auto,
           meeting: {kind: lunch, duration: 60m, location: Staff canteen}}
  peer: {every: 8w, mode: auto}
stakeholders:
  - {email: sam@corp.example, name: Sam Lee, tier: mentor, timezone: Europe/Paris,
     working_hours: {mon-fri: "08:00-18:00"}}
  - {email: kim@corp.example, name: Kim Ito, tier: mentor, meeting: {video: none}}
  - {email: jo@corp.example, name: Jo Park, tier: mentor,
     meeting: {kind: coffee, title: "Catch-up {owner.first_name} & {stakeholder.first_name}"}}
  - {email: raj@corp.example, name: Raj Patel, tier: peer}
  - {email: ana@corp.example, name: Ana Ruiz, tier: peer, meeting: {duration: 45m}}
"""


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy_text(POLICY, source="alex.yaml", fmt="yaml")


def _s(policy: Policy, email: str):  # type: ignore[no-untyped-def]
    found = policy.stakeholder(email)
    assert found is not None
    return found


def test_overrides_merge_field_by_field_tier_then_stakeholder(policy: Policy) -> None:
    sam = policy.meeting_of(_s(policy, "sam@corp.example"))
    assert (sam.kind, sam.duration, sam.location, sam.video) == (
        "lunch", timedelta(minutes=60), "Staff canteen", "meet"
    )  # fmt: skip
    assert sam.title.startswith("Lunch:")  # a kind change brings its own default title
    kim = policy.meeting_of(_s(policy, "kim@corp.example"))
    assert (kim.kind, kim.location, kim.video) == ("lunch", "Staff canteen", "none")
    jo = policy.meeting_of(_s(policy, "jo@corp.example"))
    assert (jo.kind, jo.duration, jo.location) == ("coffee", timedelta(minutes=60), "Staff canteen")
    assert jo.title.startswith("Catch-up")
    raj = policy.meeting_of(_s(policy, "raj@corp.example"))
    assert raj == policy.meeting
    ana = policy.meeting_of(_s(policy, "ana@corp.example"))
    assert (ana.kind, ana.duration, ana.location) == (
        "coffee",
        timedelta(minutes=45),
        "Level 2 café",
    )


def test_overrides_survive_a_round_trip_through_plain_data(policy: Policy) -> None:
    again = Policy.model_validate(policy_to_data(policy))
    for s in policy.stakeholders:
        assert again.meeting_of(s) == policy.meeting_of(s), s.email


def test_the_invite_says_lunch_and_the_place_of_the_tier(policy: Policy) -> None:
    sam = _s(policy, "sam@corp.example")
    title, body = invite_text(policy, sam, policy.person_of(sam))
    assert title == "Lunch: Alex / Sam"
    assert "over lunch" in body
    assert "Where: Staff canteen" in body
    raj = _s(policy, "raj@corp.example")
    title, body = invite_text(policy, raj, policy.person_of(raj))
    assert title == "Coffee: Alex / Raj"
    assert "Where: Level 2 café" in body


def test_each_stakeholder_is_planned_with_their_own_length_and_lunch_window(
    policy: Policy,
) -> None:
    busy = BusyResult(blocks={e: [] for e in [policy.owner.email, *policy_emails(policy)]})
    result = plan(policy, now=NOW, busy=busy, last_contacts={})
    by = {p.stakeholder: p for p in result.proposals}
    assert set(by) == set(policy_emails(policy))
    expected = {
        "sam@corp.example": ("lunch", 60),
        "kim@corp.example": ("lunch", 60),
        "jo@corp.example": ("coffee", 60),
        "raj@corp.example": ("coffee", 30),
        "ana@corp.example": ("coffee", 45),
    }
    london, paris = ZoneInfo("Europe/London"), ZoneInfo("Europe/Paris")
    for email, (kind, minutes) in expected.items():
        p = by[email]
        assert p.kind == kind, email
        slots = [(p.start, p.end), *p.alternatives]
        for start, end in slots:
            assert end - start == timedelta(minutes=minutes), email
            if kind == "lunch":
                zones = [london] + ([paris] if email == "sam@corp.example" else [])
                for zone in zones:  # inside the lunch window on both clocks
                    a, b = start.astimezone(zone), end.astimezone(zone)
                    assert time(12) <= a.time(), (email, a)
                    assert b.time() <= time(14), (email, b)
    # Jo's coffee is not held to the lunch window: it goes at the start of the day.
    assert by["jo@corp.example"].start.astimezone(london).time() < time(12)
    # With proposals of different lengths in one round, none overlaps another.
    ordered = sorted(result.proposals, key=lambda p: p.start)
    assert all(a.end <= b.start for a, b in itertools.pairwise(ordered))
    assert {p["kind"] for p in result.as_json()["proposals"]} == {"lunch", "coffee"}


def policy_emails(policy: Policy) -> list[str]:
    return [s.email for s in policy.stakeholders]


def test_a_lunch_for_someone_whose_lunch_hour_never_meets_yours_is_skipped() -> None:
    text = POLICY.replace("timezone: Europe/Paris", "timezone: America/New_York")
    policy = load_policy_text(text, source="alex.yaml", fmt="yaml")
    busy = BusyResult(blocks={e: [] for e in [policy.owner.email, *policy_emails(policy)]})
    result = plan(policy, now=NOW, busy=busy, last_contacts={})
    # 12:00-14:00 in New York is 17:00-19:00 in London: no hour is inside both lunch windows,
    # while a coffee with the same person would have found a slot.
    assert "sam@corp.example" in {s.stakeholder for s in result.skipped}
    assert "sam@corp.example" not in {p.stakeholder for p in result.proposals}


def test_at_most_does_not_move_planning_but_moves_lateness(policy: Policy) -> None:
    sam = _s(policy, "sam@corp.example")
    last = NOW - timedelta(weeks=5)
    assert next_due(policy, sam, last, NOW) == last + timedelta(weeks=4)
    assert late_at(policy, sam, last, NOW) == last + timedelta(weeks=6)
    assert late_at(policy, sam, None, NOW) == NOW
    raj = _s(policy, "raj@corp.example")
    assert late_at(policy, raj, last, NOW) == next_due(policy, raj, last, NOW)
    # Planning starts at `every`: met 5 weeks ago, Sam (every 4w) is due now.
    due, _ = assess(policy, now=NOW, last_contacts={"sam@corp.example": last})
    assert "sam@corp.example" in {d.stakeholder.email for d in due}


def test_a_stakeholders_hours_error_names_the_tiers_length_and_field() -> None:
    from scheduler.core.errors import PolicyError
    from scheduler.core.policy import load_policy_text

    text = (
        "owner: {email: alex@corp.example, name: Alex Doe, timezone: Europe/London}\n"
        "tiers:\n"
        "  x: {every: 8w, meeting: {duration: 2h}}\n"
        "stakeholders:\n"
        '  - {email: b@corp.example, name: Bo, tier: x, working_hours: {mon-fri: "10:00-10:20"}}\n'
    )
    with pytest.raises(PolicyError) as info:
        load_policy_text(text, source="p.yaml", fmt="yaml")
    (issue,) = info.value.issues
    assert (issue.line, issue.field) == (5, "stakeholders[0].working_hours")
    assert "a 2h meeting" in issue.message
    assert "tiers.x.meeting.duration" in issue.message
    # When the tier itself is wrong, the stakeholder is not blamed for a length it does not have
    bad_tier = text.replace("tiers:\n", 'availability: {windows: ["10:00-11:00"]}\ntiers:\n')
    with pytest.raises(PolicyError) as info:
        load_policy_text(bad_tier, source="p.yaml", fmt="yaml")
    assert [i.field for i in info.value.issues] == ["tiers.x.meeting.duration"]
