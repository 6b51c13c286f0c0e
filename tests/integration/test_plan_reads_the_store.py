"""The dry run tells the truth: `goodwill plan` respects what the database knows.

Before, `goodwill plan --policy F` ignored the database: it proposed stakeholders already booked,
so `open_meeting` never appeared, and back-offs and pauses were invisible. Now, when a database
is configured and holds the policy's owner, the dry run reads their open meetings, back-offs and
pauses (and still writes nothing). Without a database it stays as it was and creates none.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import text

from scheduler.app import booking, planning
from scheduler.app.booking import BookOutcome
from scheduler.core.clock import FixedClock
from scheduler.entrypoints.bootstrap import App, bootstrap
from scheduler.entrypoints.cli import main
from scheduler.settings import Settings
from tests.calendars import empty_calendar as _empty_calendar

NOW = datetime(2027, 3, 1, 8, 0, tzinfo=UTC)  # a Monday

POLICY = """\
owner: {email: alex@corp.example, name: Alex Doe, timezone: Europe/London}
calendar: {provider: ics}
availability: {working_hours: {mon-fri: "09:00-17:00"}, min_notice: 1d, max_per_day: 3}
tiers: {peer: {every: 8w, mode: auto}}
stakeholders:
  - {email: kim@corp.example, name: Kim Ito, tier: peer}
  - {email: jo@corp.example, name: Jo Park, tier: peer}
  - {email: lee@corp.example, name: Lee Wu, tier: peer}
allowed_domains: [corp.example]
"""


def _inputs(tmp_path: Path) -> tuple[Path, Path]:
    """Empty calendars for Alex and the three stakeholders, and Alex's policy directory."""
    calendars = tmp_path / "calendars"
    calendars.mkdir()
    for who in ("alex", "kim", "jo", "lee"):
        _empty_calendar(calendars / f"{who}@corp.example.ics")
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "alex.yaml").write_text(POLICY)
    return calendars, policies


@pytest.fixture
def world(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[App]:
    calendars, policies = _inputs(tmp_path)
    settings = Settings(
        _env_file=None,
        data_dir=tmp_path / "data",
        database_url=db_url,
        policy_dir=policies,
        calendars_dir=calendars,
    )
    app = bootstrap(settings, clock=FixedClock(NOW), auto_migrate=True)
    monkeypatch.setenv("GOODWILL_DATABASE_URL", db_url)
    monkeypatch.setenv("GOODWILL_DATA_DIR", str(tmp_path / "data"))
    yield app
    app.engine.dispose()


def _dry_run(app: App, capsys: pytest.CaptureFixture[str]) -> dict[str, dict[str, str]]:
    policy = app.settings.policy_dir / "alex.yaml"
    calendars = str(app.settings.calendars_dir)
    now = NOW.isoformat().replace("+00:00", "Z")
    assert (
        main(["plan", "--policy", str(policy), "--calendars", calendars, "--now", now, "--json"])
        == 0
    )
    out = json.loads(capsys.readouterr().out)
    return {
        "proposed": {p["stakeholder"]: p["start"] for p in out["proposals"]},
        "skipped": {s["stakeholder"]: s["code"] for s in out["skipped"]},
    }


def _rows(app: App) -> tuple[int, int]:
    with app.engine.connect() as conn:
        meetings = conn.execute(text("SELECT count(*) FROM meetings")).scalar_one()
        audit = conn.execute(text("SELECT count(*) FROM audit_log")).scalar_one()
    return int(meetings), int(audit)


def test_plan_skips_a_stakeholder_already_booked_and_writes_nothing(
    world: App, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given Alex's service booked a coffee with each stakeholder
    planning.register_policies(world.pipeline)
    user = world.store.get_user_by_email("alex@corp.example")
    assert user is not None
    run = planning.plan_user(world.pipeline, user.id)
    assert len(run.meeting_ids) == 3
    for mid in run.meeting_ids:
        assert booking.book_meeting(world.pipeline, mid).outcome == BookOutcome.BOOKED
    before = _rows(world)
    # When Alex runs the dry run
    result = _dry_run(world, capsys)
    # Then nobody is proposed again: every stakeholder has an open meeting
    assert result["proposed"] == {}
    assert set(result["skipped"].values()) == {"open_meeting"}
    # And the dry run wrote nothing
    assert _rows(world) == before


def test_plan_respects_a_back_off_and_a_pause_from_the_store(
    world: App, capsys: pytest.CaptureFixture[str]
) -> None:
    planning.register_policies(world.pipeline)
    user = world.store.get_user_by_email("alex@corp.example")
    assert user is not None
    kim = world.store.get_stakeholder_status(user.id, "kim@corp.example")
    jo = world.store.get_stakeholder_status(user.id, "jo@corp.example")
    world.store.save_stakeholder_status(
        type(kim)(**{**_fields(kim), "backoff_until": NOW + timedelta(days=20)})
    )
    world.store.save_stakeholder_status(
        type(jo)(**{**_fields(jo), "paused_until": NOW + timedelta(days=60), "paused_reason": "x"})
    )
    result = _dry_run(world, capsys)
    assert result["skipped"]["kim@corp.example"] == "backoff"
    assert result["skipped"]["jo@corp.example"] == "paused"
    assert list(result["proposed"]) == ["lee@corp.example"]


def _fields(status: object) -> dict[str, object]:
    return {name: getattr(status, name) for name in status.__slots__}  # type: ignore[attr-defined]


def test_without_a_database_the_dry_run_is_as_before_and_creates_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    calendars = tmp_path / "calendars"
    calendars.mkdir()
    for who in ("alex", "kim", "jo", "lee"):
        _empty_calendar(calendars / f"{who}@corp.example.ics")
    policy = tmp_path / "alex.yaml"
    policy.write_text(POLICY)
    monkeypatch.chdir(tmp_path)
    now = NOW.isoformat().replace("+00:00", "Z")
    args = ["plan", "--policy", str(policy), "--calendars", str(calendars), "--now", now, "--json"]
    assert main(args) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["proposals"]) == 3
    assert not (tmp_path / ".goodwill").exists()


def test_with_no_goodwill_variable_the_dry_run_reads_the_default_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given no GOODWILL_* variable at all (the CLI then skips building the settings) and a
    # database where the settings' defaults put it: .goodwill/goodwill.db under the cwd …
    for name in [n for n in os.environ if n.upper().startswith("GOODWILL_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    calendars, policies = _inputs(tmp_path)
    settings = Settings(_env_file=None, policy_dir=policies, calendars_dir=calendars)
    assert settings.effective_database_url == "sqlite:///.goodwill/goodwill.db"
    app = bootstrap(settings, clock=FixedClock(NOW), auto_migrate=True)
    try:
        # … which holds a booked coffee with every stakeholder
        planning.register_policies(app.pipeline)
        user = app.store.get_user_by_email("alex@corp.example")
        assert user is not None
        for mid in planning.plan_user(app.pipeline, user.id).meeting_ids:
            assert booking.book_meeting(app.pipeline, mid).outcome == BookOutcome.BOOKED
        # When Alex runs the dry run, then it read that database: nobody is proposed again
        result = _dry_run(app, capsys)
        assert result["proposed"] == {}
        assert set(result["skipped"].values()) == {"open_meeting"}
    finally:
        app.engine.dispose()


def test_the_dry_run_makes_no_data_directory_or_key_file(
    world: App, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Given a database named by GOODWILL_DATABASE_URL and no GOODWILL_DATA_DIR (the default,
    # .goodwill under the cwd, does not exist) …
    planning.register_policies(world.pipeline)
    monkeypatch.delenv("GOODWILL_DATA_DIR")
    cwd = tmp_path / "elsewhere"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    # … when the dry run reads that database …
    result = _dry_run(world, capsys)
    assert len(result["proposed"]) == 3
    # … then it made nothing in the cwd: no data directory, no meeting-key file
    assert list(cwd.iterdir()) == []
