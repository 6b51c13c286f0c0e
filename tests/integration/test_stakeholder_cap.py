"""One coffee at a time for the people being asked, across every owner (issue: bookings).

Tried as a new user would on the sample organisation: a senior stakeholder received 3 proposals
from 3 owners within 6 days, two on the same day, because the per-week cap counted one owner
only. Now a service-wide cap per stakeholder holds (GOODWILL_STAKEHOLDER_WEEKLY_CAP, default 2)
and a senior gets at most one new goodwill invite a day across owners. Real store (SQLite and
PostgreSQL), the ICS directory connector, an injected clock.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from pydantic import ValidationError

from scheduler.app import planning
from scheduler.core.clock import FixedClock
from scheduler.core.states import MeetingState
from scheduler.entrypoints.bootstrap import App, bootstrap
from scheduler.entrypoints.cli import main
from scheduler.settings import Settings
from tests.calendars import empty_calendar as _empty_calendar

NOW = datetime(2027, 3, 1, 8, 0, tzinfo=UTC)  # a Monday
OWNERS = ("ann", "bo", "cy", "di")
SENIOR = "sam@corp.example"

POLICY = """\
owner: {{email: {owner}@corp.example, name: {name} Doe, timezone: Europe/London}}
calendar: {{provider: ics}}
availability:
  working_hours: {{mon-fri: "09:00-17:00"}}
  min_notice: 1d
  horizon: 14d
tiers:
  mentor: {{every: 4w, mode: propose}}
stakeholders:
  - {{email: sam@corp.example, name: Sam Lee, tier: mentor, senior: true,
     timezone: Europe/London, notes: "SECRET-NOTE"}}
allowed_domains: [corp.example]
"""


@pytest.fixture
def app(tmp_path: Path, db_url: str) -> Iterator[App]:
    calendars = tmp_path / "calendars"
    calendars.mkdir()
    policies = tmp_path / "policies"
    policies.mkdir()
    for who in (*OWNERS, "sam"):
        _empty_calendar(calendars / f"{who}@corp.example.ics")
    for owner in OWNERS:
        (policies / f"{owner}.yaml").write_text(POLICY.format(owner=owner, name=owner.title()))
    settings = Settings(
        _env_file=None,
        data_dir=tmp_path / "data",
        database_url=db_url,
        policy_dir=policies,
        calendars_dir=calendars,
    )
    made = bootstrap(settings, clock=FixedClock(NOW), auto_migrate=True)
    planning.register_policies(made.pipeline)
    yield made
    made.engine.dispose()


def _plan(app: App, owner: str) -> planning.PlanRun:
    user = app.store.get_user_by_email(f"{owner}@corp.example")
    assert user is not None
    return planning.plan_user(app.pipeline, user.id)


def _skip_codes(run: planning.PlanRun) -> dict[str, tuple[str, str]]:
    assert run.plan is not None, run.error
    return {s.stakeholder: (s.code.value, s.reason) for s in run.plan.skipped}


def test_a_senior_is_asked_once_a_day_and_twice_a_week_across_owners(app: App) -> None:
    clock = app.pipeline.clock
    assert isinstance(clock, FixedClock)
    # Given Ann's round proposes a coffee with Sam (a senior)
    first = _plan(app, "ann")
    assert first.plan is not None
    assert [p.stakeholder for p in first.plan.proposals] == [SENIOR]
    # And Ann approves it (the invite goes out)
    ann = app.store.get_user_by_email("ann@corp.example")
    assert ann is not None
    (proposed,) = app.store.meetings_between(
        ann.id, NOW, NOW + timedelta(days=30), states=[MeetingState.PROPOSED]
    )
    assert app.store.transition(proposed.id, MeetingState.APPROVED, actor="user:ann", now=NOW)
    # When Bo plans the same day, Sam is not asked again today, and the reason names no owner
    code, reason = _skip_codes(_plan(app, "bo"))[SENIOR]
    assert code == "stakeholder_busy"
    assert "ann" not in reason
    assert "@" not in reason
    # The next day Bo may ask
    clock.advance(timedelta(days=1))
    second = _plan(app, "bo")
    assert second.plan is not None
    assert [p.stakeholder for p in second.plan.proposals] == [SENIOR]
    # And a day later Cy may ask too, but not in a week that already holds two coffees
    clock.advance(timedelta(days=1))
    third = _plan(app, "cy")
    assert third.plan is not None
    starts = [
        m.start
        for owner in OWNERS
        for m in app.store.meetings_between(
            app.store.get_user_by_email(f"{owner}@corp.example").id,  # type: ignore[union-attr]
            NOW - timedelta(days=1),
            NOW + timedelta(days=30),
            states=[MeetingState.PROPOSED, MeetingState.APPROVED],
        )
    ]
    weeks = [s.isocalendar()[:2] for s in starts]
    assert len(starts) >= 2
    assert max(weeks.count(w) for w in weeks) <= 2
    # The skip is written to the owner's audit trail with its code
    bo = app.store.get_user_by_email("bo@corp.example")
    assert bo is not None
    details = [e.detail for e in app.store.user_events(bo.id, since=NOW - timedelta(days=1))]
    assert any("[stakeholder_busy]" in d for d in details), details


def test_the_weekly_cap_setting_must_be_at_least_one(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="GOODWILL_STAKEHOLDER_WEEKLY_CAP"):
        Settings(_env_file=None, stakeholder_weekly_cap=0)
    assert Settings(_env_file=None, stakeholder_weekly_cap=3).stakeholder_weekly_cap == 3


def test_a_weekly_cap_of_zero_stops_the_service_at_start_up_naming_the_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GOODWILL_STAKEHOLDER_WEEKLY_CAP", "0")
    assert main(["migrate"]) == 2
    err = capsys.readouterr().err
    assert "GOODWILL_STAKEHOLDER_WEEKLY_CAP" in err
    assert "Traceback" not in err
    assert not (tmp_path / ".goodwill").exists()


def test_proposals_awaiting_approval_are_no_invite_for_a_senior(app: App) -> None:
    # Given Ann's round proposed a coffee with Sam (a senior) that Ann has not approved
    first = _plan(app, "ann")
    assert first.plan is not None
    assert [p.stakeholder for p in first.plan.proposals] == [SENIOR]
    # When Bo plans the same day, no invite went to Sam yet: Bo may propose too
    second = _plan(app, "bo")
    assert second.plan is not None, second.error
    assert [p.stakeholder for p in second.plan.proposals] == [SENIOR]
    # And with two open meetings in the week the weekly cap's reason speaks of no invite
    reasons = [s.reason for s in (_plan(app, "cy").plan or first.plan).skipped]
    assert all("invite" not in r for r in reasons), reasons
