"""A meeting kind per tier and per stakeholder, planned and booked through the fake calendar."""

from __future__ import annotations

from datetime import time, timedelta
from zoneinfo import ZoneInfo

from scheduler.app.booking import BookOutcome
from scheduler.core.states import MeetingState
from tests.usecase.fakes import FakeEvent
from tests.usecase.world import ALEX, JO, KIM, SAM, World, alex_policy

LONDON = ZoneInfo("Europe/London")

#: Peers lunch for an hour in the canteen; Jo keeps a coffee, over Teams; Sam (mentor) keeps
#: the default coffee.
POLICY = (
    alex_policy()
    .replace(
        "peer: {every: 8w, mode: auto}",
        "peer: {every: 8w, mode: auto,\n"
        "         meeting: {kind: lunch, duration: 60m, location: Staff canteen}}",
    )
    .replace(
        "  - {email: jo@corp.example, name: Jo Park, tier: peer}",
        "  - {email: jo@corp.example, name: Jo Park, tier: peer,\n"
        "     meeting: {kind: coffee, duration: 30m, video: teams}}",
    )
)


def _event(world: World, attendee: str) -> FakeEvent:
    (event,) = world.calendar.events(attendee=attendee)
    return event


def test_a_tiers_lunch_is_booked_as_an_hour_inside_the_lunch_window(world: World) -> None:
    assert "kind: lunch" in POLICY
    assert "video: teams" in POLICY
    world.write_policy(ALEX, POLICY)
    run = world.plan()
    assert run.plan is not None, run.error
    kinds = {p.stakeholder: p.kind for p in run.plan.proposals}
    assert kinds[KIM] == "lunch"
    assert kinds.get(JO, "coffee") == "coffee"
    assert kinds.get(SAM, "coffee") == "coffee"

    results = world.book_all()
    assert results
    assert all(r.outcome == BookOutcome.BOOKED for r in results), results
    kim = _event(world, KIM)
    assert kim.end - kim.start == timedelta(minutes=60)
    start, end = kim.start.astimezone(LONDON), kim.end.astimezone(LONDON)
    assert start.date() == end.date()
    assert time(11, 30) <= start.time()
    assert end.time() <= time(14, 0)
    assert kim.location == "Staff canteen"
    assert kim.video is None
    assert kim.title.startswith("Lunch: Alex")
    assert "over lunch" in kim.description
    assert world.only(ALEX, KIM, MeetingState.BOOKED).kind == "lunch"


def test_a_stakeholders_own_meeting_wins_over_their_tiers(world: World) -> None:
    world.write_policy(ALEX, POLICY)
    world.plan()
    world.book_all()
    jo = _event(world, JO)
    assert jo.end - jo.start == timedelta(minutes=30)
    assert jo.video == "teams"
    assert jo.location == "Staff canteen"  # Jo does not say: the tier's, field by field
    assert jo.title.startswith("Coffee: Alex")
    assert world.only(ALEX, JO).kind == "coffee"
