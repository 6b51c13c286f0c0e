"""Relationship insights in the report: power sources, outside the department, mentors, and
``at_most`` (due, then late), in the report model, its JSON and its text."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from scheduler.app.records import Meeting
from scheduler.core.policy import Policy, load_policy_text
from scheduler.core.policy.insights import POWER_SOURCES, known_sources, power_source
from scheduler.core.report import UserReport, build_report, report_json
from scheduler.core.states import MeetingState
from scheduler.entrypoints.rendering import render_text

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
S = MeetingState

POLICY = """
owner: {email: alex@corp.example, name: Alex Doe, timezone: Europe/London, department: Sales}
power_sources: [sponsorship]
tiers:
  mentor: {every: 4w, at_most: 6w, meeting: {kind: lunch, duration: 60m}}
  peer: {every: 8w}
stakeholders:
  - {email: sam@corp.example, name: Sam Lee, tier: peer, senior: true, department: Finance,
     power: [Formal position, sponsorship]}
  - {email: kim@corp.example, name: Kim Ito, tier: peer, department: sales,
     power: [technical_skill, expertise]}
  - {email: raj@corp.example, name: Raj Patel, tier: peer, power: [network]}
  - {email: lee@corp.example, name: Lee Chan, tier: mentor, senior: true, department: Legal}
  - {email: bo@corp.example, name: Bo Berg, tier: peer, department: Legal}
"""


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy_text(POLICY, source="alex.yaml", fmt="yaml")


def meeting(
    email: str, days_ago: float, state: MeetingState = S.COMPLETED, mid: int = 1
) -> Meeting:
    start = NOW - timedelta(days=days_ago)
    return Meeting(
        id=mid, user_id=1, stakeholder_email=email, kind="coffee", start=start,
        end=start + timedelta(minutes=30), state=state, mode="auto", idempotency_key=f"k{mid}",
        provider="google", provider_event_id=None, attempts=0, next_attempt_at=None,
        lease_until=None, last_error=None, reason="", created_at=NOW, updated_at=NOW,
    )  # fmt: skip


def build(policy: Policy, meetings: list[Meeting], **contacts: datetime) -> UserReport:
    return build_report(
        policy,
        now=NOW,
        last_contacts={f"{k}@corp.example": v for k, v in contacts.items()},
        meetings=meetings,
        statuses={},
        revoked=[],
        user_email="alex@corp.example",
    )


# -- power sources -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tag", "source"),
    [
        ("resource", "resource"),
        ("Resources", "resource"),
        ("technical skill", "technical_skill"),
        ("Technical-Skill", "technical_skill"),
        ("technical_skill", "technical_skill"),
        ("expertise", "technical_skill"),
        ("knowledge", "knowledge"),
        ("performance", "performance"),
        ("formal position", "formal_position"),
        ("position", "formal_position"),
        ("access", "access"),
        ("network", "access"),
        ("charisma", None),
    ],
)
def test_tags_name_one_of_the_six_sources_in_any_usual_spelling(tag: str, source: str) -> None:
    assert power_source(tag) == source


def test_the_policy_adds_sources_of_its_own() -> None:
    assert power_source("Sponsorship") is None
    assert power_source("Sponsorship", ["sponsorship"]) == "sponsorship"
    assert known_sources(["Sponsorship", "resource"]) == (*POWER_SOURCES, "sponsorship")


def test_the_report_warns_for_each_source_nobody_covers(policy: Policy) -> None:
    insights = build(policy, []).insights
    assert insights is not None
    covered = {c.source: c.stakeholders for c in insights.power}
    assert covered["formal_position"] == ("sam@corp.example",)
    assert covered["technical_skill"] == ("kim@corp.example",)  # two tags, one person
    assert covered["access"] == ("raj@corp.example",)
    assert covered["sponsorship"] == ("sam@corp.example",)
    assert insights.warnings == (
        "nobody in your list covers: resource",
        "nobody in your list covers: knowledge",
        "nobody in your list covers: performance",
    )
    report = build(policy, [])
    assert report_json(report)["insights"]["warnings"] == list(insights.warnings)
    text = render_text([report])
    assert "  nobody in your list covers: resource\n" in text
    assert "Insights (private to you)" in text


def test_without_any_tag_there_are_no_warnings_but_a_hint() -> None:
    policy = load_policy_text(
        "owner: {email: a@corp.example, name: A, timezone: UTC}\ntiers: {peer: {every: 8w}}\n"
        "stakeholders: [{email: b@corp.example, name: B, tier: peer}]\n",
        source="a.yaml",
        fmt="yaml",
    )
    report = build(policy, [])
    assert report.insights is not None
    assert report.insights.warnings == ()
    text = render_text([report])
    assert "nobody in your list covers" not in text
    assert "tag stakeholders with power: [...]" in text
    assert "add owner.department to your policy" in text
    assert report_json(report)["insights"]["outside_department"]["share"] is None


# -- outside the department --------------------------------------------------------------------


def test_share_of_meetings_outside_your_department_over_90_days(policy: Policy) -> None:
    meetings = [
        meeting("sam@corp.example", 10, mid=1),  # Finance: outside
        meeting("bo@corp.example", 89, mid=2),  # Legal: outside
        meeting("kim@corp.example", 20, mid=3),  # "sales" is Sales: inside
        meeting("raj@corp.example", 5, mid=4),  # no department: unknown
        meeting("kim@corp.example", 95, mid=5),  # too long ago
        meeting("bo@corp.example", 3, S.DECLINED, mid=6),  # not held
        meeting("gone@corp.example", 3, mid=7),  # no longer in the policy
    ]
    report = build(policy, meetings)
    assert report.insights is not None
    o = report.insights.outside
    assert (o.department, o.days, o.meetings, o.outside, o.unknown) == ("Sales", 90, 4, 2, 1)
    assert o.share == pytest.approx(2 / 3, abs=0.001)
    assert report_json(report)["insights"]["outside_department"] == {
        "department": "Sales", "days": 90, "meetings": 4, "outside": 2, "unknown": 1,
        "share": 0.667,
    }  # fmt: skip
    assert "outside Sales: 67% of meetings in the last 90 d (2 of 3)" in render_text([report])


# -- mentor suggestions ------------------------------------------------------------------------


def test_four_meetings_in_six_months_with_a_senior_suggest_a_mentor(policy: Policy) -> None:
    four = [meeting("sam@corp.example", d, mid=i) for i, d in enumerate([10, 40, 90, 170])]
    report = build(policy, four)
    assert report.insights is not None
    (suggestion,) = report.insights.mentors
    assert (suggestion.email, suggestion.completed, suggestion.months) == ("sam@corp.example", 4, 6)
    assert "consider asking Sam Lee (sam@corp.example) to be your mentor" in render_text([report])
    assert report_json(report)["insights"]["mentor_suggestions"][0]["completed"] == 4
    # The policy is unchanged: a suggestion, never a move.
    assert policy.stakeholder("sam@corp.example").tier == "peer"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("email", "days"),
    [
        ("sam@corp.example", [10, 40, 90]),  # three only
        ("sam@corp.example", [10, 40, 90, 200]),  # the fourth is over six months ago
        ("bo@corp.example", [10, 40, 90, 120]),  # not senior
        ("lee@corp.example", [10, 40, 90, 120]),  # already in a mentor tier
    ],
)
def test_no_mentor_suggestion_short_of_the_rule(
    policy: Policy, email: str, days: list[int]
) -> None:
    report = build(policy, [meeting(email, d, mid=i) for i, d in enumerate(days)])
    assert report.insights is not None
    assert report.insights.mentors == ()


def test_the_mentor_rule_is_a_policy_setting() -> None:
    text = POLICY + "insights: {mentor_meetings: 2, mentor_months: 1}\n"
    policy = load_policy_text(text, source="alex.yaml", fmt="yaml")
    report = build(policy, [meeting("sam@corp.example", d, mid=i) for i, d in enumerate([3, 25])])
    assert report.insights is not None
    assert [m.email for m in report.insights.mentors] == ["sam@corp.example"]
    report = build(policy, [meeting("sam@corp.example", d, mid=i) for i, d in enumerate([3, 35])])
    assert report.insights is not None
    assert report.insights.mentors == ()


# -- at_most: due, then late -------------------------------------------------------------------


def test_between_every_and_at_most_someone_is_due_not_late(policy: Policy) -> None:
    report = build(
        policy,
        [],
        lee=NOW - timedelta(weeks=5),  # mentor every 4w, at_most 6w: due, not late
        sam=NOW - timedelta(weeks=9),  # peer every 8w, no at_most: late 7 days
    )
    overdue = {x.email for x in report.overdue}
    due_soon = {x.email: x for x in report.due_soon}
    assert "lee@corp.example" not in overdue
    assert "lee@corp.example" in due_soon
    assert "sam@corp.example" in overdue
    lee = due_soon["lee@corp.example"]
    assert lee.kind == "lunch"
    assert lee.days_overdue == 7
    assert lee.days_late(NOW) == -7
    line = next(x for x in report_json(report)["due_soon"] if x["email"] == "lee@corp.example")
    assert line["late_at"] == (NOW + timedelta(weeks=1)).isoformat()
    assert (line["days_late"], line["kind"]) == (-7, "lunch")
    text = render_text([report])
    assert "due, late in 7 d" in text
    assert "7 d late" in text  # Sam


def test_past_at_most_someone_is_late_counted_from_at_most(policy: Policy) -> None:
    report = build(policy, [], lee=NOW - timedelta(weeks=7))
    (lee,) = [x for x in report.overdue if x.email == "lee@corp.example"]
    assert lee.days_late(NOW) == 7
    assert lee.days_overdue == 21
    assert "lee@corp.example" not in {x.email for x in report.due_soon}
    mentor = next(c for c in report.coverage_by_tier if c.group == "mentor")
    assert mentor.met == 0
    # Five weeks ago is within at_most: covered.
    report = build(policy, [], lee=NOW - timedelta(weeks=5))
    mentor = next(c for c in report.coverage_by_tier if c.group == "mentor")
    assert mentor.met == 1
