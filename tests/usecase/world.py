"""The world a use-case test runs in: a store, the fake calendar, a fixed clock, policy files.

Everything the use cases see goes through the pipeline's ports; the test arranges the calendar
and the policy files, runs a use case, advances the clock, and asserts on what the store and the
calendar hold afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from scheduler.app import booking, planning
from scheduler.app.booking import BookResult
from scheduler.app.pipeline import Pipeline
from scheduler.app.planning import PlanRun
from scheduler.app.policies import PolicyBook
from scheduler.app.records import Meeting, NewMeeting, User
from scheduler.core.clock import FixedClock
from scheduler.core.errors import PolicyIssue
from scheduler.core.policy import Policy
from scheduler.core.states import MeetingState
from tests.usecase.fakes import FAKE_PROVIDER, FakeCalendar
from tests.usecase.stores import InspectableStore

__all__ = [
    "ALEX",
    "ALEX_POLICY",
    "JO",
    "KIM",
    "NOW",
    "PRIYA",
    "PRIYA_POLICY",
    "SAM",
    "SAM_POLICY",
    "World",
    "alex_policy",
    "make_pipeline",
    "skip_codes",
]

NOW = datetime(2027, 3, 1, 8, 0, tzinfo=UTC)  # a Monday, 08:00 in London
ALEX, SAM, KIM, JO, PRIYA = (
    "alex@corp.example",
    "sam@corp.example",
    "kim@corp.example",
    "jo@corp.example",
    "priya@corp.example",
)

#: Alex's policy: Sam is senior (propose), Kim and Jo are peers (``peer_mode``).
ALEX_POLICY = """\
owner: {{email: alex@corp.example, name: Alex Doe, timezone: Europe/London}}
calendar: {{provider: ics}}
meeting: {{kind: coffee, duration: 30m, location: "Level 2 café"}}
availability:
  working_hours: {{mon-fri: "09:00-17:00"}}
  windows: ["10:00-11:30", "14:00-16:30"]
  min_notice: 1d
  horizon: 14d
  buffer: 10m
  max_per_day: 1
  max_per_week: 3
tiers:
  mentor: {{every: 4w, mode: propose}}
  peer: {{every: 8w, mode: {peer_mode}}}
etiquette: {{max_unanswered: 2}}
stakeholders:
  - {{email: sam@corp.example, name: Sam Lee, tier: mentor, timezone: America/New_York,
     senior: true}}
  - {{email: kim@corp.example, name: Kim Ito, tier: peer}}
  - {{email: jo@corp.example, name: Jo Park, tier: peer}}
{extra}allowed_domains: [corp.example]
"""

#: Sam uses goodwill too and lists Alex (auto mode).
SAM_POLICY = """\
owner: {email: sam@corp.example, name: Sam Lee, timezone: America/New_York}
availability: {min_notice: 1d}
tiers: {peer: {every: 4w, mode: auto}}
stakeholders:
  - {email: alex@corp.example, name: Alex Doe, tier: peer, timezone: Europe/London}
allowed_domains: [corp.example]
"""

#: Priya uses goodwill and lists Kim (auto mode).
PRIYA_POLICY = """\
owner: {email: priya@corp.example, name: Priya N, timezone: Europe/London}
tiers: {peer: {every: 8w, mode: auto}}
stakeholders:
  - {email: kim@corp.example, name: Kim Ito, tier: peer}
allowed_domains: [corp.example]
"""


def alex_policy(*, peer_mode: str = "auto", without: str | None = None, extra: str = "") -> str:
    """Alex's policy text; ``without`` drops one stakeholder line, ``extra`` adds lines."""
    text = ALEX_POLICY.format(peer_mode=peer_mode, extra=extra)
    if without is not None:
        text = "".join(
            line for line in text.splitlines(keepends=True) if f"email: {without}" not in line
        )
    return text


def make_pipeline(
    store: InspectableStore, calendar: FakeCalendar, clock: FixedClock, policy_dir: Path
) -> Pipeline:
    """The pipeline with the fake calendar behind every policy."""
    return Pipeline(
        store=store, clock=clock, backends=calendar.backend, policies=PolicyBook(policy_dir)
    )


@dataclass
class World:
    store: InspectableStore
    calendar: FakeCalendar
    clock: FixedClock
    policy_dir: Path
    p: Pipeline

    # -- arranging -------------------------------------------------------------------------

    def write_policy(self, owner: str, text: str) -> Path:
        path = self.policy_dir / f"{owner.split('@')[0]}.yaml"
        path.write_text(text)
        return path

    def register(self) -> list[PolicyIssue]:
        return planning.register_policies(self.p)

    def policy(self, owner: str = ALEX) -> Policy:
        path = self.policy_dir / f"{owner.split('@')[0]}.yaml"
        loaded = self.p.policies.load(path).policy
        assert loaded is not None
        return loaded

    def add_meeting(
        self,
        owner: str,
        stakeholder: str,
        start: datetime,
        *,
        state: MeetingState = MeetingState.APPROVED,
        key: str | None = None,
        minutes: int = 30,
    ) -> int:
        """Write one meeting as the planner would (for scenarios that need exact slots)."""
        (meeting_id,) = self.store.add_meetings(
            self.user_id(owner),
            [
                NewMeeting(
                    stakeholder_email=stakeholder,
                    kind="coffee",
                    start=start,
                    end=start + timedelta(minutes=minutes),
                    mode="auto" if state == MeetingState.APPROVED else "propose",
                    idempotency_key=key or f"{owner}-{stakeholder}-{start.isoformat()}",
                    provider=FAKE_PROVIDER,
                    state=state,
                )
            ],
            now=self.clock.now(),
        )
        return meeting_id

    # -- acting ----------------------------------------------------------------------------

    def advance(self, by: timedelta) -> None:
        self.clock.advance(by)

    def advance_past(self, moment: datetime, by: timedelta = timedelta(minutes=1)) -> None:
        self.clock.advance(moment - self.clock.now() + by)

    def plan(self, owner: str = ALEX) -> PlanRun:
        """Register the policy files, then plan ``owner``."""
        self.register()
        return planning.plan_user(self.p, self.user_id(owner))

    def book(self, meeting_id: int) -> BookResult:
        return booking.book_meeting(self.p, meeting_id)

    def book_all(self) -> list[BookResult]:
        """What the tick and the workers do: send every due meeting, book each."""
        ids = self.store.approved_needing_send(self.clock.now(), 100)
        return [booking.book_meeting(self.p, i) for i in ids]

    # -- looking ---------------------------------------------------------------------------

    def user(self, email: str = ALEX) -> User:
        user = self.store.get_user_by_email(email)
        assert user is not None, f"{email} is not registered"
        return user

    def user_id(self, email: str = ALEX) -> int:
        return self.user(email).id

    def meeting(self, meeting_id: int) -> Meeting:
        found = self.store.get_meeting(meeting_id)
        assert found is not None
        return found

    def meetings(
        self, owner: str = ALEX, state: MeetingState | None = None, *, with_: str | None = None
    ) -> list[Meeting]:
        """The owner's meetings (all of them), by start; optionally one state or stakeholder."""
        found = self.store.meetings_between(
            self.user_id(owner), NOW - timedelta(days=400), NOW + timedelta(days=400)
        )
        return [
            m
            for m in found
            if (state is None or m.state == state)
            and (with_ is None or m.stakeholder_email == with_)
        ]

    def only(self, owner: str, stakeholder: str, state: MeetingState | None = None) -> Meeting:
        (found,) = self.meetings(owner, state, with_=stakeholder)
        return found

    def events_detail(self, owner: str = ALEX) -> list[str]:
        """The audit details of the owner's non-meeting events (skips, failures), in order."""
        return [
            e.detail
            for e in self.store.user_events(self.user_id(owner), since=NOW - timedelta(days=1))
            if e.meeting_id is None
        ]


def skip_codes(run: PlanRun) -> dict[str, str]:
    assert run.plan is not None, run.error
    return {s.stakeholder: s.code.value for s in run.plan.skipped}
