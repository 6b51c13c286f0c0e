"""Introductions through a person in common: never a cold invite, a private note to the owner,
an introduction meeting on request, and an ordinary stakeholder once met."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from scheduler.core.cadence import SkipCode
from scheduler.core.model import BusyResult
from scheduler.core.planner import plan
from scheduler.core.policy import Policy, load_policy_text

NOW = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)

HEAD = """
owner: {email: alex@corp.example, name: Alex Doe, timezone: Europe/London}
availability: {working_hours: {mon-fri: "09:00-17:00"}, min_notice: 0m, max_per_day: 3,
               max_per_week: 10}
tiers: {peer: {every: 8w}}
allowed_domains: [corp.example]
stakeholders:
  - {email: y@corp.example, name: Yan Y, tier: peer}
  - {email: x@corp.example, name: Xia X, tier: peer, status: to_meet, via: y@corp.example}
"""


def load(extra: str = "") -> Policy:
    return load_policy_text(HEAD + extra, source="t.yaml", fmt="yaml")


def free(policy: Policy) -> BusyResult:
    return BusyResult(
        blocks={e: [] for e in ("alex@corp.example", "y@corp.example", "x@corp.example")}
    )


def test_the_to_meet_person_is_never_invited_and_y_carries_the_owner_note() -> None:
    policy = load()
    result = plan(policy, now=NOW, busy=free(policy), last_contacts={})
    assert [p.stakeholder for p in result.proposals] == ["y@corp.example"]
    (y,) = result.proposals
    assert y.owner_note == "ask Yan to introduce you to Xia X (x@corp.example)"
    assert "introduce" not in y.reason
    skip = next(s for s in result.skipped if s.stakeholder == "x@corp.example")
    assert skip.code is SkipCode.TO_MEET
    assert "waiting for Yan Y to introduce you" in skip.reason
    assert result.group_proposals == ()  # mode: note
    # plan --json is the owner's own output: it carries the private note, and the skip code
    data = result.as_json()
    assert [p["owner_note"] for p in data["proposals"]] == [y.owner_note]
    assert {"stakeholder": "x@corp.example", "code": "to_meet"}.items() <= next(
        s for s in data["skipped"] if s["stakeholder"] == "x@corp.example"
    ).items()


def test_mode_meeting_proposes_a_three_person_introduction() -> None:
    policy = load("introductions: {mode: meeting}\n")
    result = plan(policy, now=NOW, busy=free(policy), last_contacts={})
    (intro,) = result.group_proposals
    assert intro.group == "introduction"
    assert intro.attendees == ("y@corp.example", "x@corp.example")
    assert intro.presenter is None
    assert intro.mode == "propose"
    assert intro.quorum == 2
    (y,) = result.proposals
    assert y.end <= intro.start or intro.end <= y.start
    assert result.as_json()["group_proposals"][0]["group"] == "introduction"


def test_once_met_x_is_an_ordinary_stakeholder_and_no_note_remains() -> None:
    policy = load("introductions: {mode: meeting}\n")
    met = {"x@corp.example": NOW - timedelta(days=100)}
    result = plan(policy, now=NOW, busy=free(policy), last_contacts=met)
    assert {p.stakeholder for p in result.proposals} == {"x@corp.example", "y@corp.example"}
    assert all(p.owner_note == "" for p in result.proposals)
    assert result.group_proposals == ()


def test_a_chain_waits_for_the_first_introduction() -> None:
    policy = load(
        "  - {email: w@corp.example, name: Wu W, tier: peer, status: to_meet,\n"
        "     via: x@corp.example}\n"
    )
    busy = BusyResult(blocks={**free(policy).blocks, "w@corp.example": []})
    result = plan(policy, now=NOW, busy=busy, last_contacts={})
    assert [p.stakeholder for p in result.proposals] == ["y@corp.example"]
    assert "Wu" not in result.proposals[0].owner_note


@st.composite
def introduction_policies(draw: st.DrawFn) -> tuple[Policy, dict[str, datetime]]:
    n = draw(st.integers(2, 6))
    lines = []
    for i in range(n):
        entry = f"  - {{email: p{i}@corp.example, name: P {i}, tier: peer"
        if i and draw(st.booleans()):
            entry += f", status: to_meet, via: p{draw(st.integers(0, i - 1))}@corp.example"
        lines.append(entry + "}")
    mode = draw(st.sampled_from(["note", "meeting"]))
    members = [f"p{i}@corp.example" for i in range(n)]
    text = (
        "owner: {email: alex@corp.example, name: Alex, timezone: Europe/London}\n"
        "availability: {min_notice: 0m, max_per_day: 4, max_per_week: 20}\n"
        "tiers: {peer: {every: 8w}}\nstakeholders:\n" + "\n".join(lines) + "\n"
        f"introductions: {{mode: {mode}}}\n"
        f"groups:\n  - {{name: g, members: [{', '.join(members)}], size: '1..{n}', kind: coffee}}\n"
    )
    met = draw(st.sets(st.sampled_from(members)))
    return load_policy_text(text, source="p", fmt="yaml"), {
        m: NOW - timedelta(days=90) for m in met
    }


@given(introduction_policies())
def test_no_invite_reaches_a_to_meet_person_without_the_person_in_common(
    case: tuple[Policy, dict[str, datetime]],
) -> None:
    policy, met = case
    busy = BusyResult(
        blocks={e: [] for e in ["alex@corp.example", *(s.email for s in policy.stakeholders)]}
    )
    result = plan(policy, now=NOW, busy=busy, last_contacts=met)
    unmet = {
        s.email: s.via for s in policy.stakeholders if s.status == "to_meet" and s.email not in met
    }
    assert not {p.stakeholder for p in result.proposals} & set(unmet)
    for g in result.group_proposals:
        for x in set(g.attendees) & set(unmet):
            assert unmet[x] in g.attendees
            assert g.group == "introduction"
