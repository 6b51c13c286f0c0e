"""A proposal whose pair the other side already booked is withdrawn, not approved.

Two users who list each other may both be planned in the same round: Alex's proposal for Bea
waits for approval while Bea's auto-mode coffee with Alex is booked. Before, `goodwill approve`
accepted Alex's proposal and the booking was then cancelled as slot_taken with no word to
Alex. Now approving withdraws it, says why, and Alex's report shows Bea's meeting as the next
one with Bea.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from scheduler.app import booking, decisions, planning
from scheduler.app.booking import BookOutcome
from scheduler.app.pipeline import idempotency_key
from scheduler.app.records import NewMeeting
from scheduler.core.clock import FixedClock
from scheduler.core.states import MeetingState
from scheduler.entrypoints.bootstrap import App, bootstrap
from scheduler.entrypoints.cli import main
from scheduler.settings import Settings
from tests.calendars import empty_calendar as _empty_calendar

NOW = datetime(2027, 3, 1, 8, 0, tzinfo=UTC)  # a Monday
ALEX, BEA = "alex@corp.example", "bea@corp.example"

POLICY = """\
owner: {{email: {me}, name: {name} Doe, timezone: UTC}}
calendar: {{provider: ics}}
availability: {{working_hours: {{mon-fri: "09:00-17:00"}}, min_notice: 1h}}
tiers: {{peer: {{every: 8w, mode: {mode}}}}}
stakeholders:
  - {{email: {other}, name: {other_name} Doe, tier: peer, timezone: UTC}}
allowed_domains: [corp.example]
"""


def _settings(tmp_path: Path, db_url: str) -> Settings:
    return Settings(
        _env_file=None,
        data_dir=tmp_path / "data",
        database_url=db_url,
        policy_dir=tmp_path / "policies",
        calendars_dir=tmp_path / "calendars",
    )


@pytest.fixture
def app(tmp_path: Path, db_url: str) -> Iterator[App]:
    (tmp_path / "calendars").mkdir()
    (tmp_path / "policies").mkdir()
    for email in (ALEX, BEA):
        _empty_calendar(tmp_path / "calendars" / f"{email}.ics")
    (tmp_path / "policies" / "alex.yaml").write_text(
        POLICY.format(me=ALEX, name="Alex", other=BEA, other_name="Bea", mode="propose")
    )
    (tmp_path / "policies" / "bea.yaml").write_text(
        POLICY.format(me=BEA, name="Bea", other=ALEX, other_name="Alex", mode="auto")
    )
    made = bootstrap(_settings(tmp_path, db_url), clock=FixedClock(NOW), auto_migrate=True)
    planning.register_policies(made.pipeline)
    yield made
    made.engine.dispose()


def _meeting(app: App, owner: str, other: str, start: datetime, state: MeetingState) -> int:
    user = app.store.get_user_by_email(owner)
    assert user is not None
    new = NewMeeting(
        stakeholder_email=other,
        kind="coffee",
        start=start,
        end=start + timedelta(minutes=30),
        mode="auto" if state == MeetingState.APPROVED else "propose",
        idempotency_key=idempotency_key(user.id, other, start, secret=app.pipeline.key_secret),
        provider="ics",
        state=state,
    )
    (mid,) = app.store.add_meetings(user.id, [new], now=NOW)
    return mid


def _both_planned_in_one_round(app: App) -> tuple[int, int]:
    """Alex's proposal waits; Bea's auto coffee with Alex is booked."""
    alex_side = _meeting(app, ALEX, BEA, NOW + timedelta(days=1, hours=2), MeetingState.PROPOSED)
    bea_side = _meeting(app, BEA, ALEX, NOW + timedelta(days=2, hours=3), MeetingState.APPROVED)
    assert booking.book_meeting(app.pipeline, bea_side).outcome == BookOutcome.BOOKED
    return alex_side, bea_side


def test_approving_a_proposal_the_other_side_covered_withdraws_it(app: App) -> None:
    alex_side, _ = _both_planned_in_one_round(app)
    # When Alex approves, the proposal is withdrawn, not approved
    assert decisions.approve(app.pipeline, alex_side, actor="user:alex") is False
    m = app.store.get_meeting(alex_side)
    assert m is not None
    assert m.state == MeetingState.CANCELLED
    assert app.store.audit_trail(alex_side)[-1].detail == decisions.WITHDRAWN_PAIR
    # And nothing was sent for it: only Bea's event is on the calendars
    assert app.store.approved_needing_send(NOW, 10) == []


def test_the_cli_says_why_and_the_report_shows_the_other_sides_meeting(
    app: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    alex_side, bea_side = _both_planned_in_one_round(app)
    settings = app.settings
    monkeypatch.setenv("GOODWILL_DATABASE_URL", settings.effective_database_url)
    monkeypatch.setenv("GOODWILL_POLICY_DIR", str(settings.policy_dir))
    monkeypatch.setenv("GOODWILL_CALENDARS_DIR", str(settings.calendars_dir))
    monkeypatch.setenv("GOODWILL_DATA_DIR", str(settings.data_dir))
    assert main(["approve", str(alex_side)]) == 2
    err = capsys.readouterr().err
    assert "withdrawn" in err
    assert "booked a meeting with you first" in err
    assert main(["report", "--user", ALEX, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    (mine,) = report["reports"]
    (line,) = [s for s in mine["stakeholders"] if s["email"] == BEA]
    bea_meeting = app.store.get_meeting(bea_side)
    assert bea_meeting is not None
    shown = datetime.fromisoformat(line["next_meeting"].replace("Z", "+00:00"))
    assert shown == bea_meeting.start
    assert line["next_meeting_state"] == "booked"
    # Alex's own rates count only Alex's own invites
    assert mine["rates"]["sent"] == 0
