"""One bad policy file stops only its own user; a removed policy file stops that user.

Everything runs for real, in process: the store (SQLite and PostgreSQL), the writable ICS
calendar directory (events are counted in its files), dramatiq's StubBroker with a worker, and
the tick's ``run_once`` under a fixed clock. A file that crashes the loader is either real
content (a YAML list nested 20,000 deep, which raises RecursionError in a loader without depth
limits) or, so the test does not depend on what the loader's limits catch, a PolicyBook whose
``load`` raises RuntimeError for one path.
"""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import icalendar
import pytest
from prometheus_client import CollectorRegistry
from pydantic import ValidationError

from connectors.registry import BackendRegistry
from scheduler.app.policies import PolicyBook, PolicyFile
from scheduler.core.clock import FixedClock
from scheduler.core.policy import Policy
from scheduler.core.ports import CalendarBackend
from scheduler.core.states import MeetingState
from scheduler.entrypoints import cli
from scheduler.entrypoints.bootstrap import App, bootstrap
from scheduler.entrypoints.metrics import Metrics
from scheduler.entrypoints.runtime import Runtime, build_runtime
from scheduler.settings import Settings
from scheduler.store import Meeting
from tests.calendars import empty_calendar as _empty_calendar
from workers.tick import Tick, TickResult

NOW = datetime(2027, 3, 1, 8, 0, tzinfo=UTC)  # a Monday
DOMAIN = "corp.example"
GRACE = timedelta(hours=6)
S = MeetingState

#: Who owns a policy file, and whom they meet (auto-booked peers; "sam" is senior: propose).
OWNERS: dict[str, tuple[str, ...]] = {
    "alex": ("kim", "jo", "sam"),
    "bea": ("lee", "max"),
    "cy": ("ned", "oli"),
}


def policy_text(owner: str, peers: Sequence[str]) -> str:
    people = "\n".join(
        f"  - {{email: {p}@{DOMAIN}, name: {p.title()} Lee, tier: "
        f"{'mentor, senior: true' if p == 'sam' else 'peer'}}}"
        for p in peers
    )
    return f"""\
owner: {{email: {owner}@{DOMAIN}, name: {owner.title()} Doe, timezone: Europe/London}}
calendar: {{provider: ics}}
meeting: {{kind: coffee, duration: 30m}}
availability:
  working_hours: {{mon-fri: "09:00-17:00"}}
  windows: ["10:00-11:30", "14:00-16:30"]
  min_notice: 2d
  horizon: 14d
  max_per_day: 1
  max_per_week: 3
tiers:
  mentor: {{every: 4w, mode: propose}}
  peer: {{every: 8w, mode: auto}}
stakeholders:
{people}
allowed_domains: [{DOMAIN}]
"""


#: 20,000 nested lists: RecursionError in a loader that does not limit depth.
DEEP = f"owner: {{email: deep@{DOMAIN}, name: Deep, timezone: UTC}}\nstakeholders: " + (
    "[" * 20_000 + "]" * 20_000 + "\n"
)


class CrashingBook(PolicyBook):
    """A PolicyBook whose ``load`` raises RuntimeError for the file names in ``crash``."""

    def __init__(self, directory: Path, crash: set[str]) -> None:
        super().__init__(directory)
        self.crash = crash

    def load(self, path: str | Path) -> PolicyFile:
        if Path(path).name in self.crash:
            raise RuntimeError(f"injected loader crash for {Path(path).name}")
        return super().load(path)


class CrashingRegistry(BackendRegistry):
    """The real connector registry, except that building one owner's connectors raises."""

    def __init__(self, settings: Settings, crash_for: set[str]) -> None:
        super().__init__(settings)
        self.crash_for = crash_for

    def __call__(self, policy: Policy) -> CalendarBackend:
        if policy.owner.email in self.crash_for:
            raise RuntimeError("injected planning crash")
        return super().__call__(policy)


@dataclass
class Org:
    app: App
    runtime: Runtime
    tick: Tick
    clock: FixedClock
    settings: Settings
    calendars: Path
    policies: Path
    registry: CollectorRegistry
    others: list[tuple[App, Runtime]] = field(default_factory=list)

    def round(
        self, advance: timedelta = timedelta(seconds=30), tick: Tick | None = None
    ) -> TickResult:
        """One tick round (after moving the clock past the tick lease), then drain the worker."""
        self.clock.advance(advance)
        result = (tick or self.tick).run_once()
        assert result.won
        for _, runtime in [(self.app, self.runtime), *self.others]:
            runtime.drain(timeout_s=60)
        return result

    def user_id(self, owner: str) -> int:
        user = self.app.store.get_user_by_email(f"{owner}@{DOMAIN}")
        assert user is not None, f"{owner} is not registered"
        return user.id

    def meetings(self, owner: str) -> list[Meeting]:
        far = timedelta(days=400)
        return self.app.store.meetings_between(self.user_id(owner), NOW - far, NOW + far)

    def events_at(self, who: str) -> list[icalendar.cal.Component]:
        """Goodwill events on ``who``'s calendar file that are not cancelled."""
        cal = icalendar.Calendar.from_ical((self.calendars / f"{who}@{DOMAIN}.ics").read_bytes())
        return [
            e
            for e in cal.walk("VEVENT")
            if "X-GOODWILL-KEY" in e and str(e.get("STATUS", "")).upper() != "CANCELLED"
        ]

    def errors(self, reason: str) -> float:
        value = self.registry.get_sample_value("goodwill_policy_errors_total", {"reason": reason})
        return value or 0.0

    def fresh_process(self) -> Tick:
        """A second goodwill process on the same database and files: nothing in memory."""
        app = bootstrap(self.settings, clock=self.clock)
        runtime = build_runtime(self.settings, with_tick=False, app=app)
        runtime.start()
        self.others.append((app, runtime))
        return Tick(app.pipeline, runtime.actors, interval_s=10, holder="fresh")


@pytest.fixture
def make_org(tmp_path: Path, db_url: str) -> Iterator[Callable[..., Org]]:
    made: list[Org] = []

    def make(
        *,
        extra_files: dict[str, str] | None = None,
        crash_loading: set[str] | None = None,
        crash_planning: set[str] | None = None,
    ) -> Org:
        calendars = tmp_path / "calendars"
        policies = tmp_path / "policies"
        calendars.mkdir()
        policies.mkdir()
        for owner, peers in OWNERS.items():
            (policies / f"{owner}.yaml").write_text(policy_text(owner, peers))
            for who in (owner, *peers):
                _empty_calendar(calendars / f"{who}@{DOMAIN}.ics")
        for name, text in (extra_files or {}).items():
            (policies / name).write_text(text)
        clock = FixedClock(NOW)
        settings = Settings(
            _env_file=None,
            data_dir=tmp_path / "data",
            database_url=db_url,
            policy_dir=policies,
            calendars_dir=calendars,
            plan_every_s=3600.0,
            policy_removed_grace_s=GRACE.total_seconds(),
        )
        backends = CrashingRegistry(settings, crash_planning) if crash_planning else None
        app = bootstrap(settings, clock=clock, auto_migrate=True, backends=backends)
        if crash_loading:
            app.pipeline.policies = CrashingBook(policies, crash_loading)
        registry = CollectorRegistry()
        app.pipeline.metrics = Metrics(registry)
        runtime = build_runtime(settings, with_tick=False, app=app)
        runtime.start()
        tick = Tick(app.pipeline, runtime.actors, interval_s=10, holder="main")
        org = Org(app, runtime, tick, clock, settings, calendars, policies, registry)
        made.append(org)
        return org

    yield make
    for org in made:
        for app, runtime in [(org.app, org.runtime), *org.others]:
            runtime.stop()
            app.engine.dispose()


def _booked_everyone(org: Org, owners: Sequence[str]) -> None:
    """Every auto peer of ``owners`` is booked once, at the calendar (two tick rounds)."""
    for owner in owners:
        auto = {f"{p}@{DOMAIN}" for p in OWNERS[owner] if p != "sam"}
        booked = {m.stakeholder_email for m in org.meetings(owner) if m.state == S.BOOKED}
        assert booked == auto, (
            owner,
            [(m.stakeholder_email, m.state) for m in org.meetings(owner)],
        )
        assert len(org.events_at(owner)) == len(auto)


# -- 1. isolation -------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["nested-20000-deep", "loader-raises-RuntimeError"])
def test_a_file_that_crashes_the_loader_stops_only_its_own_user(
    make_org: Callable[..., Org], kind: str, caplog: pytest.LogCaptureFixture
) -> None:
    bad = "bad.yaml"
    if kind == "nested-20000-deep":
        org = make_org(extra_files={bad: DEEP})
    else:
        org = make_org(extra_files={bad: policy_text("ghost", ["kim"])}, crash_loading={bad})
    caplog.set_level(logging.WARNING)

    first = org.round()  # registers and plans: the round itself completes
    second = org.round()  # books what the first round approved

    owners = list(OWNERS)
    assert sorted(first.plan_sent) == sorted(org.user_id(o) for o in owners)
    assert second.book_sent
    _booked_everyone(org, owners)
    assert org.app.store.get_user_by_email(f"ghost@{DOMAIN}") is None
    assert org.app.store.get_user_by_email(f"deep@{DOMAIN}") is None
    # Counted on every round that met it; logged once for this content of the file.
    reason = "too_large" if kind == "nested-20000-deep" else "crashed"
    assert org.errors(reason) == 2
    logged = [r for r in caplog.records if bad in r.getMessage()]
    assert len(logged) == 1, [r.getMessage() for r in logged]
    assert "goodwill validate" in logged[0].getMessage()


def test_a_registered_users_crashes_are_recorded_for_them_and_the_others_are_planned(
    make_org: Callable[..., Org], caplog: pytest.LogCaptureFixture
) -> None:
    org = make_org(crash_planning={f"bea@{DOMAIN}"})
    caplog.set_level(logging.WARNING)
    org.round()
    org.round()
    _booked_everyone(org, ["alex", "cy"])

    # bea's planning round crashed (the connector factory raised): recorded for her alone.
    bea = org.app.store.get_user(org.user_id("bea"))
    assert bea is not None
    assert bea.policy_error is not None
    assert "planning crashed (RuntimeError" in bea.policy_error
    assert org.meetings("bea") == []
    events = org.app.store.user_events(bea.id, since=NOW)
    assert [e.actor for e in events if "crashed" in e.detail] == ["planner"]
    assert org.errors("crashed") >= 1
    crash_logs = [r for r in caplog.records if "planning user" in r.getMessage()]
    assert len(crash_logs) == 1  # retried after plan_retry_s, logged once

    # Now alex's file starts crashing the loader: alex stops, cy goes on; alex's meetings stay.
    org.app.pipeline.policies = CrashingBook(org.policies, {"alex.yaml"})
    (org.policies / "cy.yaml").write_text(policy_text("cy", ["ned", "oli", "kim"]))
    result = org.round(timedelta(hours=2))  # everyone is due again (plan_every is 1 h)
    assert org.user_id("cy") in result.plan_sent
    alex = org.app.store.get_user(org.user_id("alex"))
    assert alex is not None
    assert alex.policy_error is not None
    assert "injected loader crash" in alex.policy_error
    assert alex.policy_missing_since is None  # a crashing file is not a removed file
    assert any(m.stakeholder_email == f"kim@{DOMAIN}" for m in org.meetings("cy"))
    assert len(org.events_at("alex")) == 2  # nothing of alex's was touched


# -- 2. a removed policy file -------------------------------------------------------------------


def _report(org: Org, monkeypatch: pytest.MonkeyPatch, *args: str) -> str:
    """``goodwill report`` as an operator runs it: a new process configured from GOODWILL_*."""
    for name, value in {
        "GOODWILL_DATA_DIR": str(org.settings.data_dir),
        "GOODWILL_DATABASE_URL": org.settings.effective_database_url,
        "GOODWILL_POLICY_DIR": str(org.policies),
        "GOODWILL_CALENDARS_DIR": str(org.calendars),
        "GOODWILL_POLICY_REMOVED_GRACE_S": str(GRACE.total_seconds()),
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("GOODWILL_SECRET_KEY", raising=False)
    out, err = io.StringIO(), io.StringIO()
    assert cli.main(["report", *args], out=out, err=err) == 0, err.getvalue()
    return out.getvalue()


def _removed_entry(org: Org, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    data = json.loads(_report(org, monkeypatch, "--json"))
    assert f"alex@{DOMAIN}" not in [r["user"] for r in data["reports"]]
    assert f"bea@{DOMAIN}" in [r["user"] for r in data["reports"]]
    (entry,) = data["owner_removed"]
    assert entry["user"] == f"alex@{DOMAIN}"
    return entry  # type: ignore[no-any-return]


@pytest.mark.parametrize("cancelled_by", ["same-process", "fresh-process"])
def test_a_removed_policy_file_stops_planning_and_cancels_after_the_grace(
    make_org: Callable[..., Org], monkeypatch: pytest.MonkeyPatch, cancelled_by: str
) -> None:
    org = make_org()
    org.round()
    org.round()
    _booked_everyone(org, list(OWNERS))
    alex = org.user_id("alex")
    before = {m.id: m.state for m in org.meetings("alex")}
    assert sorted(before.values()) == [S.BOOKED, S.BOOKED, S.PROPOSED]

    (org.policies / "alex.yaml").unlink()
    removed_at = org.clock.now() + timedelta(hours=2)
    result = org.round(timedelta(hours=2))  # alex is due again (plan_every is 1 h)...
    assert alex not in result.plan_sent  # ...but no longer planned
    assert org.user_id("bea") in result.plan_sent
    assert {m.id: m.state for m in org.meetings("alex")} == before
    user = org.app.store.get_user(alex)
    assert user is not None
    assert user.policy_missing_since == removed_at

    entry = _removed_entry(org, monkeypatch)
    assert entry["since"] == removed_at.isoformat()
    assert entry["cancel_after"] == (removed_at + GRACE).isoformat()
    assert sorted((m["id"], m["state"]) for m in entry["meetings"]) == sorted(
        (i, s.value) for i, s in before.items()
    )
    text = _report(org, monkeypatch)
    assert f"Owner removed: alex@{DOMAIN}" in text
    assert f"kim@{DOMAIN}" in text.split("Owner removed:")[1]

    # Still within the grace: nothing is cancelled.
    org.round(GRACE - timedelta(minutes=30))
    assert {m.id: m.state for m in org.meetings("alex")} == before
    assert len(org.events_at("alex")) == 2

    # The grace is over: the events are cancelled at the calendar and the meetings end.
    tick = org.fresh_process() if cancelled_by == "fresh-process" else None
    result = org.round(timedelta(hours=1), tick=tick)
    assert alex in result.plan_sent
    assert org.events_at("alex") == []
    assert org.events_at("kim") == []
    assert org.events_at("jo") == []
    assert [m.state for m in org.meetings("alex")] == [S.CANCELLED] * 3
    for m in org.meetings("alex"):
        trail = org.app.store.audit_trail(m.id)
        assert trail[-1].detail == "owner removed"
        assert trail[-1].to_state == S.CANCELLED
    assert len(list((org.calendars / "outbox").glob("*.cancel*"))) == 2  # iTIP CANCELs
    assert _removed_entry(org, monkeypatch)["meetings"] == []
    _booked_everyone(org, ["bea", "cy"])  # the others are untouched


def test_a_policy_file_back_within_the_grace_cancels_nothing(
    make_org: Callable[..., Org], monkeypatch: pytest.MonkeyPatch
) -> None:
    org = make_org()
    org.round()
    org.round()
    alex = org.user_id("alex")
    before = {m.id: m.state for m in org.meetings("alex")}
    path = org.policies / "alex.yaml"
    text = path.read_text()

    path.unlink()
    org.round(timedelta(hours=1))
    assert _removed_entry(org, monkeypatch)["meetings"]
    path.write_text(text)  # back, unchanged, within the grace
    result = org.round(timedelta(hours=1))
    user = org.app.store.get_user(alex)
    assert user is not None
    assert user.policy_missing_since is None
    assert alex in result.plan_sent  # planned again at once
    org.round(GRACE + timedelta(hours=1))  # past the original grace
    assert {m.id: m.state for m in org.meetings("alex")} == before
    assert len(org.events_at("alex")) == 2
    data = json.loads(_report(org, monkeypatch, "--json"))
    assert data["owner_removed"] == []
    assert f"alex@{DOMAIN}" in [r["user"] for r in data["reports"]]


def test_a_missing_policy_directory_is_not_every_file_removed(
    make_org: Callable[..., Org], caplog: pytest.LogCaptureFixture
) -> None:
    org = make_org()
    org.round()
    org.round()
    moved = org.policies.with_name("policies-unmounted")
    org.policies.rename(moved)  # a volume that failed to mount
    caplog.set_level(logging.ERROR)
    org.round(GRACE + timedelta(hours=1))
    org.round(timedelta(hours=1))
    assert all(u.policy_missing_since is None for u in org.app.store.all_users())
    assert org.errors("unreadable") == 2
    logged = [r for r in caplog.records if "does not exist" in r.getMessage()]
    assert len(logged) == 1
    assert "GOODWILL_POLICY_DIR" in logged[0].getMessage()
    _booked_everyone(org, list(OWNERS))  # nothing was cancelled


# -- 3. the setting -----------------------------------------------------------------------------


@pytest.mark.parametrize("value", ["0", "-5", "nan"])
def test_a_grace_of_zero_or_less_is_refused_at_start_up_naming_the_variable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, value: str
) -> None:
    monkeypatch.setenv("GOODWILL_POLICY_REMOVED_GRACE_S", value)
    monkeypatch.setenv("GOODWILL_DATA_DIR", str(tmp_path / "data"))
    with pytest.raises(ValidationError, match="GOODWILL_POLICY_REMOVED_GRACE_S"):
        Settings(_env_file=None)
    out, err = io.StringIO(), io.StringIO()
    assert cli.main(["serve", "--once"], out=out, err=err) == 2
    assert "GOODWILL_POLICY_REMOVED_GRACE_S" in err.getvalue()
    assert not (tmp_path / "data").exists()  # refused before anything was created
