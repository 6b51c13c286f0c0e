"""The ``groups:`` and ``introductions:`` policy sections, and ``status: to_meet`` / ``via``:
every rejection names its line and field, YAML and TOML."""

from __future__ import annotations

from datetime import timedelta

import pytest

from scheduler.core.errors import PolicyError, PolicyIssue
from scheduler.core.policy import load_policy_text, policy_to_data
from scheduler.core.policy.groups import SizeRange

HEAD = """\
owner: {email: alex@corp.example, name: Alex Doe, timezone: Europe/London}
allowed_domains: [corp.example]
tiers:
  peer: {every: 8w}
stakeholders:
  - {email: a@corp.example, name: Ann A, tier: peer, department: Design}
  - {email: b@corp.example, name: Bo B, tier: peer, department: Data}
  - {email: c@corp.example, name: Cy C, tier: peer}
"""


def issues(text: str, fmt: str = "yaml") -> list[PolicyIssue]:
    with pytest.raises(PolicyError) as info:
        load_policy_text(text, source="p.yaml", fmt=fmt)  # type: ignore[arg-type]
    return info.value.issues


def one(found: list[PolicyIssue], line: int, field: str, fragment: str) -> None:
    hits = [i for i in found if i.line == line and i.field == field and fragment in i.message]
    assert hits, f"no issue {line} {field} {fragment!r} in {[str(i) for i in found]}"


def test_a_valid_group_loads_with_its_defaults_and_round_trips() -> None:
    text = HEAD + (
        "groups:\n"
        "  - name: lunch\n"
        "    members: [a@corp.example, B@corp.example, guest@corp.example]\n"
        "    size: '2..3'\n"
        "    avoid_together: [[a@corp.example, b@corp.example]]\n"
        "introductions: {mode: meeting}\n"
    )
    policy = load_policy_text(text, source="p.yaml", fmt="yaml")
    (group,) = policy.groups
    assert group.members == ("a@corp.example", "b@corp.example", "guest@corp.example")
    assert group.size == SizeRange(2, 3)
    assert (group.kind, group.duration, group.every) == (
        "lunch",
        timedelta(hours=1),
        timedelta(weeks=4),
    )
    assert (group.quorum, group.presenter, group.mix_departments) == (0.6, "rotate", 1)
    assert group.keeps_apart("b@corp.example", "a@corp.example")
    assert not group.keeps_apart("a@corp.example", "guest@corp.example")
    assert policy.introductions.mode == "meeting"
    data = policy_to_data(policy)
    assert data["groups"][0]["size"] == "2..3"
    assert data["groups"][0]["every"] == "4w"


@pytest.mark.parametrize(
    ("members", "line", "field", "fragment"),
    [
        ("[a@corp.example, x@other.example]", 10, "groups[0].members[1]", "unknown member"),
        ("[a@corp.example, a@corp.example]", 10, "groups[0].members[1]", "listed twice"),
        ("[a@corp.example, alex@corp.example]", 10, "groups[0].members[1]", "your own address"),
    ],
)
def test_bad_members_are_named_on_their_line(
    members: str, line: int, field: str, fragment: str
) -> None:
    text = HEAD + f"groups:\n  - name: lunch\n    members: {members}\n    size: 1\n"
    one(issues(text), line + 1, field, fragment)


def test_an_unknown_member_is_reported_even_when_the_group_has_other_problems() -> None:
    text = HEAD + (
        "groups:\n"
        "  - name: lunch\n"
        "    members:\n"
        "      - a@corp.example\n"
        "      - x@other.example\n"
        "    quorum: 0\n"
    )
    found = issues(text)
    one(found, 13, "groups[0].members[1]", "unknown member: x@other.example")
    one(found, 14, "groups[0].quorum", "above 0 and at most 1")


@pytest.mark.parametrize("quorum", ["0", "1.2", "-0.5"])
def test_quorum_outside_zero_to_one_is_an_error(quorum: str) -> None:
    text = HEAD + (
        f"groups:\n  - name: lunch\n    members: [a@corp.example, b@corp.example]\n"
        f"    quorum: {quorum}\n"
    )
    one(issues(text), 12, "groups[0].quorum", "at most 1 (like 0.6)")


def test_quorum_of_one_is_allowed() -> None:
    text = HEAD + "groups:\n  - {name: x, members: [a@corp.example, b@corp.example], quorum: 1}\n"
    assert load_policy_text(text, source="p", fmt="yaml").groups[0].quorum == 1.0


def test_a_size_the_members_cannot_fill_is_an_error() -> None:
    text = HEAD + (
        "groups:\n  - name: lunch\n    members: [a@corp.example, b@corp.example]\n"
        "    size: '3..6'\n"
    )
    one(issues(text), 12, "groups[0].size", "needs at least 3 members but the group has 2")


@pytest.mark.parametrize("size", ["'6..3'", "'0..2'", "'a..b'", "99", "true"])
def test_a_malformed_size_is_an_error(size: str) -> None:
    text = HEAD + f"groups:\n  - {{name: x, members: [a@corp.example], size: {size}}}\n"
    one(issues(text), 10, "groups[0].size", "expected a size like")


def test_an_avoid_together_pair_must_be_two_members() -> None:
    text = HEAD + (
        "groups:\n"
        "  - name: lunch\n"
        "    members: [a@corp.example, b@corp.example]\n"
        "    size: 1\n"
        "    avoid_together:\n"
        "      - [a@corp.example, c@corp.example]\n"
        "      - [a@corp.example]\n"
        "      - [b@corp.example, b@corp.example]\n"
    )
    found = issues(text)
    one(found, 14, "groups[0].avoid_together[0][1]", "c@corp.example is not a member")
    one(found, 15, "groups[0].avoid_together[1]", "a pair of two different members")
    one(found, 16, "groups[0].avoid_together[2]", "a pair of two different members")


def test_group_names_are_unique_and_introduction_is_reserved() -> None:
    text = HEAD + (
        "groups:\n"
        "  - {name: lunch, members: [a@corp.example], size: 1}\n"
        "  - {name: Lunch, members: [b@corp.example], size: 1}\n"
    )
    one(issues(text), 11, "groups[1].name", "used by groups[0] too")
    text = HEAD + "groups:\n  - {name: introduction, members: [a@corp.example], size: 1}\n"
    one(issues(text), 10, "groups[0].name", "reserved")


def test_a_lunch_longer_than_the_lunch_window_is_an_error() -> None:
    text = HEAD + (
        "groups:\n  - name: lunch\n    members: [a@corp.example]\n    size: 1\n    duration: 3h\n"
    )
    one(issues(text), 13, "groups[0].duration", "does not fit the lunch window")


def test_toml_groups_report_their_lines_too() -> None:
    text = """\
allowed_domains = ["corp.example"]

[owner]
email = "alex@corp.example"
name = "Alex"
timezone = "Europe/London"

[tiers.peer]
every = "8w"

[[stakeholders]]
email = "a@corp.example"
name = "A"
tier = "peer"

[[groups]]
name = "lunch"
members = ["a@corp.example", "x@other.example"]
quorum = 2
"""
    found = issues(text, "toml")
    one(found, 18, "groups[0].members[1]", "unknown member")
    one(found, 19, "groups[0].quorum", "at most 1")


# -- introductions: status: to_meet, via -----------------------------------------------------


def test_to_meet_via_a_stakeholder_loads() -> None:
    text = (
        HEAD
        + "  - {email: x@corp.example, name: Xi X, tier: peer, status: to_meet,\n"
        + "     via: A@corp.example}\n"
    )
    policy = load_policy_text(text, source="p", fmt="yaml")
    x = policy.stakeholder("x@corp.example")
    assert x is not None
    assert (x.status, x.via) == ("to_meet", "a@corp.example")


@pytest.mark.parametrize(
    ("entry", "field", "fragment"),
    [
        ("status: to_meet, via: z@corp.example", "via", "is not a stakeholder of this policy"),
        ("status: to_meet, via: x@corp.example", "via", "own address"),
        ("status: to_meet", "status", "needs via"),
        ("via: a@corp.example", "via", "add status: to_meet or remove via"),
    ],
)
def test_bad_via_is_named_on_its_line(entry: str, field: str, fragment: str) -> None:
    text = HEAD + f"  - {{email: x@corp.example, name: Xi, tier: peer, {entry}}}\n"
    one(issues(text), 9, f"stakeholders[3].{field}", fragment)


def test_via_chains_that_loop_are_errors_and_chains_that_end_are_not() -> None:
    looping = HEAD + (
        "  - {email: x@corp.example, name: X, tier: peer, status: to_meet, via: y@corp.example}\n"
        "  - {email: y@corp.example, name: Y, tier: peer, status: to_meet, via: x@corp.example}\n"
    )
    found = issues(looping)
    one(found, 9, "stakeholders[3].via", "x@corp.example → y@corp.example → x@corp.example")
    one(found, 10, "stakeholders[4].via", "introductions loop")
    ending = HEAD + (
        "  - {email: x@corp.example, name: X, tier: peer, status: to_meet, via: y@corp.example}\n"
        "  - {email: y@corp.example, name: Y, tier: peer, status: to_meet, via: a@corp.example}\n"
    )
    assert len(load_policy_text(ending, source="p", fmt="yaml").stakeholders) == 5


def test_an_unknown_introductions_mode_is_an_error() -> None:
    one(issues(HEAD + "introductions: {mode: email}\n"), 9, "introductions.mode", "expected one of")


# -- every meeting must be placeable; every problem in one run (review findings) -------------


def test_a_group_meeting_longer_than_working_hours_is_an_error() -> None:
    text = HEAD + (
        "groups:\n  - {name: g, members: [a@corp.example], size: 1, kind: coffee, duration: 10h}\n"
    )
    one(issues(text), 10, "groups[0].duration", "longer than every working-hours range")


@pytest.mark.parametrize(
    ("section", "fragment"),
    [
        ("{mode: meeting, kind: lunch, duration: 5h}", "does not fit the lunch window"),
        ("{mode: meeting, kind: coffee, duration: 10h}", "longer than every working-hours range"),
    ],
)
def test_an_introduction_meeting_that_cannot_be_placed_is_an_error(
    section: str, fragment: str
) -> None:
    one(issues(HEAD + f"introductions: {section}\n"), 9, "introductions.duration", fragment)


def test_an_unused_introduction_length_in_note_mode_is_no_error() -> None:
    text = HEAD + "introductions: {mode: note, kind: lunch, duration: 5h}\n"
    assert load_policy_text(text, source="p", fmt="yaml").introductions.mode == "note"


def test_one_bad_field_hides_no_other_problem_of_the_groups() -> None:
    text = HEAD + (
        "groups:\n"
        "  - {name: g, members: [a@corp.example, a@corp.example], size: x, quorum: 1.5}\n"
        "  - {name: G, members: [b@corp.example, b@corp.example], size: 1, duration: 3h}\n"
        "  - {name: h, members: [c@corp.example], size: 1, quorum: 1.5}\n"
    )
    found = issues(text)
    one(found, 10, "groups[0].size", "expected a size")
    one(found, 10, "groups[0].members[1]", "listed twice")
    one(found, 10, "groups[0].quorum", "at most 1")
    one(found, 11, "groups[1].name", "used by groups[0] too")
    one(found, 11, "groups[1].members[1]", "listed twice")
    one(found, 11, "groups[1].duration", "does not fit the lunch window")
    one(found, 12, "groups[2].quorum", "at most 1")
    assert not [i for i in found if i.field == "groups[0].size" and "needs at least" in i.message]
