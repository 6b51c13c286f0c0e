"""Power tags, notes and the owner's insights stay private: a policy full of them is planned,
booked and reported, and the invites, the plan output, the logs and the metrics are grepped."""

from __future__ import annotations

import json
import logging

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from scheduler.app import planning
from scheduler.app.booking import BookOutcome
from scheduler.core.invites import invite_text
from scheduler.entrypoints.cli import render_plan
from scheduler.entrypoints.metrics import Metrics
from tests.usecase.world import ALEX, World

#: Every tag and note below is a distinctive word, so a grep finds it wherever it leaks.
POLICY = """\
owner: {email: alex@corp.example, name: Alex Doe, timezone: Europe/London,
        department: Zqowndept}
calendar: {provider: ics}
power_sources: [Zqsponsorship]
meeting: {kind: coffee, duration: 30m, location: "Level 2 café"}
availability:
  working_hours: {mon-fri: "09:00-17:00"}
  min_notice: 1d
  max_per_day: 2
  max_per_week: 5
insights: {mentor_meetings: 2, mentor_months: 3}
tiers:
  zqmentortier: {every: 4w, at_most: 6w, mode: auto,
                 meeting: {kind: lunch, duration: 60m, location: Staff canteen}}
  zqpeertier: {every: 8w, mode: auto}
stakeholders:
  - {email: sam@corp.example, name: Sam Lee, tier: zqmentortier, senior: true, mode: auto,
     department: Finance, power: [Zqsponsorship, Formal-Position], notes: "ZQNOTE-sam sponsor"}
  - {email: kim@corp.example, name: Kim Ito, tier: zqpeertier, department: Engineering,
     power: [Technical skill, expertise], notes: "ZQNOTE-kim"}
  - {email: jo@corp.example, name: Jo Park, tier: zqpeertier,
     power: [network, knowledge], notes: "ZQNOTE-jo"}
allowed_domains: [corp.example]
"""

#: What must never leave the owner's own report: tags (as written and as sources), notes.
PRIVATE = [
    "zqsponsorship",
    "formal-position",
    "formal_position",
    "formal position",
    "technical skill",
    "technical_skill",
    "expertise",
    "network",
    "knowledge",
    "zqnote",
    "mentor to",
    "your mentor",
]
#: Also never in what a stakeholder receives.
INVITE_PRIVATE = [*PRIVATE, "zqmentortier", "zqpeertier", "zqowndept", "senior"]


def _leaks(text: str, words: list[str]) -> list[str]:
    low = text.lower()
    return [w for w in words if w in low]


def test_tags_and_notes_never_reach_invites_plan_output_logs_or_metrics(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    registry = CollectorRegistry()
    world.p.metrics = Metrics(registry)
    world.write_policy(ALEX, POLICY)
    with caplog.at_level(logging.DEBUG):
        run = world.plan()
        assert run.plan is not None, run.error
        results = world.book_all()
    assert results
    assert all(r.outcome == BookOutcome.BOOKED for r in results), results
    policy = world.policy()

    events = world.calendar.events()
    assert {e.attendee for e in events} == {s.email for s in policy.stakeholders}
    invites = ["\n".join([e.title, e.description, e.location or "", e.video or ""]) for e in events]
    invites += ["\n".join(invite_text(policy, s, policy.person_of(s))) for s in policy.stakeholders]
    for text in invites:
        assert _leaks(text, INVITE_PRIVATE) == [], text

    plan_text = render_plan(policy, run.plan, world.clock.now())
    assert "lunch" in plan_text
    assert "coffee" in plan_text
    plan_json = json.dumps(run.plan.as_json())
    for text in (plan_text, plan_json):
        assert _leaks(text, PRIVATE) == [], text

    metrics_text = generate_latest(registry).decode()
    assert "goodwill_bookings_total 3.0" in metrics_text  # the metrics did see the bookings
    assert _leaks(metrics_text, [*PRIVATE, "zqmentortier", "zqowndept"]) == []

    # A bad tag makes the file unusable: that is logged, without the tags or the notes.
    world.write_policy(ALEX, POLICY.replace("power: [Zqsponsorship,", "power: [Zqbadtag,"))
    with caplog.at_level(logging.DEBUG):
        world.register()
    assert any("not usable" in r.getMessage() for r in caplog.records), caplog.text
    log_text = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    # The message names the six sources (generic words), never a tag as written or a note.
    as_written = ["zqsponsorship", "formal-position", "technical skill", "expertise", "network"]
    assert _leaks(log_text, [*as_written, "zqnote", "zqbadtag", "your mentor"]) == []


def test_the_owners_own_report_does_carry_the_insights(world: World) -> None:
    """The counterpart: the words grepped above are really in the data (the grep can fail)."""
    world.write_policy(ALEX, POLICY)
    planning.register_policies(world.p)
    policy = world.policy()
    sam = policy.stakeholder("sam@corp.example")
    assert sam is not None
    assert "Zqsponsorship" in sam.power
    assert policy.meeting_of(sam).kind == "lunch"
    assert policy.owner.department == "Zqowndept"
