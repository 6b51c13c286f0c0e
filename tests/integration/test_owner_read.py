"""One read of the owner's calendar per planning round (issue 10, part 4), on the wire.

A round reads the owner's history (26 weeks back) and their busy time (the horizon). With
:class:`~scheduler.core.ports.OwnerCalendar` both come from one read: Google ``events.list`` pages
of one window, Graph ``calendarView`` pages of one window, and Graph's getSchedule carries only
the stakeholders. The real google-api-python-client and msal + requests talk to the emulators;
the emulators' request logs are the measurement.

Each round is compared with the reads as they were before: the same connector without
``read_owner`` (Google: two listings of the owner), and for Graph the owner inside getSchedule.
The organic contacts and the proposals must be the same.
"""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from connectors.google import GoogleCalendar, user_credentials
from connectors.microsoft import AppOnlyTokens, GraphCalendar
from connectors.tokens import MemoryTokenStore
from scheduler.app.planning import ORGANIC_LOOKBACK, dry_run_plan
from scheduler.core.busy import apply_busy_rules
from scheduler.core.intervals import Interval, subtract
from scheduler.core.model import (
    BusyQuery,
    BusyResult,
    BusyRule,
    BusyRules,
    EventDraft,
    Person,
)
from scheduler.core.planner import Plan
from scheduler.core.policy import Policy, load_policy_text
from scheduler.core.ports import CalendarSource, ContactHistory, OwnerCalendar
from scheduler.settings import GoogleSettings
from tests.emulators.google_emulator import GoogleEmulator
from tests.emulators.graph_emulator import GraphEmulator

NOW = datetime(2027, 3, 1, 8, tzinfo=UTC)  # a Monday; London is on UTC until 28 March
HORIZON = timedelta(days=14)
OWNER = Person("alex@corp.example", "Alex Doe", "Europe/London")
#: The window one round reads of the owner's calendar.
ROUND = Interval(NOW - ORGANIC_LOOKBACK, NOW + HORIZON)
#: A Graph mailbox that asks getSchedule for the owner the way the connector did before.
PROBE = Person("probe@corp.example", "Probe", "UTC")


def _emails(k: int) -> list[str]:
    return [f"s{i:02d}@corp.example" for i in range(k)]


def _policy(provider: str, emails: Sequence[str]) -> Policy:
    people = "".join(
        f"  - {{email: {e}, name: Stake Holder{i}, tier: peer, timezone: Europe/London}}\n"
        for i, e in enumerate(emails)
    )
    text = (
        f"owner: {{email: {OWNER.email}, name: Alex Doe, timezone: Europe/London}}\n"
        f"calendar: {{provider: {provider}}}\n"
        "meeting: {kind: coffee, duration: 30m}\n"
        "availability:\n"
        '  working_hours: {mon-fri: "09:00-17:00"}\n'
        "  min_notice: 1d\n"
        "  horizon: 14d\n"
        "  buffer: 10m\n"
        "  max_per_day: 2\n"
        "  max_per_week: 10\n"
        "tiers:\n"
        "  peer: {every: 4w, mode: propose}\n"
        f"stakeholders:\n{people}"
        "allowed_domains: [corp.example]\n"
    )
    return load_policy_text(text, source="alex.yaml", fmt="yaml")


class _Recorded:
    """A ContactHistory that keeps what the connector found."""

    def __init__(self, inner: ContactHistory) -> None:
        self.inner = inner
        self.found: Mapping[str, datetime] = {}

    def last_contacts(
        self, owner: Person, emails: Sequence[str], since: datetime, until: datetime
    ) -> Mapping[str, datetime]:
        self.found = self.inner.last_contacts(owner, emails, since, until)
        return self.found


class _WithoutOwnerRead:
    """The connector's busy read without ``read_owner``: a round as before this change."""

    def __init__(self, inner: CalendarSource) -> None:
        self.inner = inner

    def busy(self, query: BusyQuery) -> BusyResult:
        return self.inner.busy(query)


class _OwnerInGetSchedule:
    """Graph's busy read before this change: the owner inside getSchedule with the others."""

    def __init__(self, inner: GraphCalendar) -> None:
        self.inner = inner

    def busy(self, query: BusyQuery) -> BusyResult:
        got = self.inner.busy(BusyQuery(query.window, (PROBE, *query.people)))
        return BusyResult(
            blocks={e: b for e, b in got.blocks.items() if e != PROBE.email},
            unavailable=got.unavailable,
            working_hours=got.working_hours,
        )


def _outcome(plan: Plan, history: _Recorded) -> dict[str, Any]:
    return {
        "organic": dict(history.found),
        "proposals": [(p.stakeholder, p.start, p.end) for p in plan.proposals],
        "skipped": sorted((s.stakeholder, s.code.value) for s in plan.skipped),
    }


# -- Google -----------------------------------------------------------------------------------


def _z(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _timed(start: datetime, minutes: int, **extra: Any) -> dict[str, Any]:
    return {
        "summary": "x",
        "start": {"dateTime": _z(start)},
        "end": {"dateTime": _z(start + timedelta(minutes=minutes))},
        **extra,
    }


def _seed_google(emu: GoogleEmulator, emails: Sequence[str]) -> int:
    """Seed a realistic owner and stakeholders; returns the owner's events in :data:`ROUND`."""
    rng = random.Random(11)
    owner_events = 0
    for email in emails:
        emu.add_calendar(email, "Europe/London")
    for week in range(5, 27):  # the past: contacts older than the 4-week cadence, so all are due
        for _ in range(3):
            start = NOW - timedelta(weeks=week, days=-rng.randrange(5), hours=-rng.randrange(1, 9))
            answer = rng.choice(["accepted", "declined", "needsAction"])
            attendees = [{"email": rng.choice(emails), "responseStatus": answer}]
            emu.seed(OWNER.email, _timed(start, 30, attendees=attendees))
            owner_events += 1
    ours = _timed(NOW - timedelta(weeks=6), 30, attendees=[{"email": emails[0]}])
    ours["extendedProperties"] = {"private": {"goodwill": "1", "goodwillKey": "k-old"}}
    emu.seed(OWNER.email, ours)  # our own old invite: not organic contact
    owner_events += 1
    for day in range(14):  # the horizon, with every kind of event the busy rules look at
        start = NOW + timedelta(days=day, hours=rng.randrange(1, 9))
        extra = rng.choice([{}, {}, {"transparency": "transparent"}, {"eventType": "outOfOffice"}])
        emu.seed(OWNER.email, _timed(start, 45, **extra))
        owner_events += 1
    day2 = (NOW + timedelta(days=2)).date()
    emu.seed(
        OWNER.email,
        {"summary": "off", "start": {"date": str(day2)}, "end": {"date": str(day2 + timedelta(1))}},
    )
    owner_events += 1
    for i, answer in enumerate(("needsAction", "declined", "tentative")):
        start = NOW + timedelta(days=3 + i, hours=5)
        invite = {"organizer": {"email": emails[0]}}
        attendees = [{"email": OWNER.email, "responseStatus": answer}]
        emu.seed(emails[0], _timed(start, 60, **invite, attendees=attendees))
        owner_events += 1
    for email in emails:
        for _ in range(10):
            start = NOW + timedelta(days=rng.randrange(14), hours=rng.randrange(1, 9))
            emu.seed(email, _timed(start, 60))
    return owner_events


@pytest.fixture
def gemu() -> Iterator[GoogleEmulator]:
    emu = GoogleEmulator(page_size=20).start()
    emu.add_calendar(OWNER.email, OWNER.timezone)
    emu.add_refresh_token("1//rt-owner", OWNER.email)
    try:
        yield emu
    finally:
        emu.stop()
    assert emu.schema_violations == []


def _google(emu: GoogleEmulator) -> GoogleCalendar:
    settings = GoogleSettings(token_uri=emu.token_uri, api_endpoint=emu.api_endpoint)
    return GoogleCalendar(
        settings, lambda _email: user_credentials("1//rt-owner", "cid", "cs", emu.token_uri)
    )


def _listings(emu: GoogleEmulator, since: int = 0) -> list[tuple[str, str]]:
    """``(timeMin, timeMax)`` of each events.list request after the first ``since`` requests."""
    return [
        (r.query["timeMin"][-1], r.query["timeMax"][-1])
        for r in emu.requests[since:]
        if r.method == "GET" and r.path.endswith("/calendars/primary/events")
    ]


@pytest.mark.parametrize("k", [1, 20, 50, 51])
def test_google_round_lists_the_owner_once_and_plans_the_same(gemu: GoogleEmulator, k: int) -> None:
    emails = _emails(k)
    owner_events = _seed_google(gemu, emails)
    policy = _policy("google", emails)
    google = _google(gemu)
    assert isinstance(google, OwnerCalendar)

    # Before: history and busy list the owner's calendar separately (two windows).
    before_history = _Recorded(google)
    before = dry_run_plan(policy, source=_WithoutOwnerRead(google), history=before_history, now=NOW)
    assert sorted(set(_listings(gemu))) == [(_z(ROUND.start), _z(NOW)), (_z(NOW), _z(ROUND.end))]

    # After: one listing of one window, paged; freeBusy for the stakeholders only.
    mark = len(gemu.requests)
    history = _Recorded(google)
    after = dry_run_plan(policy, source=google, history=history, now=NOW)
    listings = _listings(gemu, mark)
    assert set(listings) == {(_z(ROUND.start), _z(ROUND.end))}
    assert len(listings) == math.ceil(owner_events / gemu.page_size)
    freebusy = [r for r in gemu.requests[mark:] if r.path.endswith("/freeBusy")]
    assert len(freebusy) == math.ceil(k / 50)
    assert OWNER.email not in {i["id"] for r in freebusy for i in r.body["items"]}

    # The same organic contacts and the same plan.
    assert _outcome(after, history) == _outcome(before, before_history)
    assert after.proposals


def test_google_held_read_serves_one_round_then_reads_fresh(gemu: GoogleEmulator) -> None:
    sam = "s00@corp.example"
    gemu.add_calendar(sam, "Europe/London")
    met = NOW - timedelta(weeks=6)
    gemu.seed(
        OWNER.email, _timed(met, 30, attendees=[{"email": sam, "responseStatus": "accepted"}])
    )
    gemu.seed(OWNER.email, _timed(NOW + timedelta(days=1, hours=2), 60))
    google = _google(gemu)
    query = BusyQuery(Interval(NOW, NOW + HORIZON), (OWNER,))

    google.read_owner(OWNER, ROUND)
    mark = len(gemu.requests)
    assert google.last_contacts(OWNER, [sam], ROUND.start, NOW) == {
        sam: met + timedelta(minutes=30)
    }
    assert len(google.busy(query).blocks[OWNER.email]) == 1
    assert _listings(gemu, mark) == []  # both served from the one read
    # A later read (a booking's recheck) sees what changed since: it is not served stale.
    gemu.seed(OWNER.email, _timed(NOW + timedelta(days=2, hours=2), 60))
    assert len(google.busy(query).blocks[OWNER.email]) == 2
    assert _listings(gemu, mark) == [(_z(NOW), _z(NOW + HORIZON))]


def test_google_held_read_is_not_served_to_another_thread_or_outside_its_window(
    gemu: GoogleEmulator,
) -> None:
    gemu.seed(OWNER.email, _timed(NOW + timedelta(days=1, hours=2), 60))
    google = _google(gemu)
    google.read_owner(OWNER, ROUND)
    mark = len(gemu.requests)
    found: list[int] = []
    query = BusyQuery(Interval(NOW, NOW + HORIZON), (OWNER,))
    worker = threading.Thread(target=lambda: found.append(len(google.busy(query).blocks)))
    worker.start()
    worker.join()
    assert found == [1]
    assert len(_listings(gemu, mark)) == 1  # the other thread read for itself
    later = BusyQuery(Interval(NOW, ROUND.end + timedelta(days=1)), (OWNER,))
    google.busy(later)  # wider than the held read: read from the provider
    assert len(_listings(gemu, mark)) == 2
    # A booking's recheck inside the window while the read is held (a round that failed half
    # way, say) is not served it: it reads the provider, and sees an event added since.
    slot = NOW + timedelta(days=3, hours=2)
    gemu.seed(OWNER.email, _timed(slot, 30))
    recheck = BusyQuery(
        Interval(slot - timedelta(minutes=10), slot + timedelta(minutes=40)), (OWNER,)
    )
    assert len(google.busy(recheck).blocks[OWNER.email]) == 1
    assert len(_listings(gemu, mark)) == 3
    google.busy(query)  # the held read still serves this round's busy read
    assert len(_listings(gemu, mark)) == 3


# -- Microsoft Graph ---------------------------------------------------------------------------


def _seed_graph(emu: GraphEmulator, emails: Sequence[str]) -> None:
    rng = random.Random(11)
    for email in emails:
        emu.add_mailbox(email, zone="GMT Standard Time")
    for week in range(5, 27):
        for _ in range(3):
            start = NOW - timedelta(weeks=week, days=-rng.randrange(5), hours=-rng.randrange(1, 9))
            answer = rng.choice(["accepted", "declined", "none"])
            emu.seed_event(
                OWNER.email,
                start,
                start + timedelta(minutes=30),
                attendees=[(rng.choice(emails), answer)],
            )
    for day in range(14):
        start = NOW + timedelta(days=day, hours=rng.randrange(1, 9))
        show = rng.choice(["busy", "busy", "tentative", "free", "oof", "workingElsewhere"])
        emu.seed_event(OWNER.email, start, start + timedelta(minutes=45), show_as=show)
    day2 = NOW.replace(hour=0) + timedelta(days=2)
    emu.seed_event(OWNER.email, day2, day2 + timedelta(days=1), is_all_day=True)
    invites = [("none", False), ("declined", False), ("tentativelyAccepted", False)]
    for i, (answer, cancelled) in enumerate([*invites, ("accepted", True)]):
        start = NOW + timedelta(days=3 + i, hours=5)
        emu.seed_event(
            emails[0],
            start,
            start + timedelta(hours=1),
            attendees=[(OWNER.email, answer)],
            is_cancelled=cancelled,
        )
    for email in emails:
        for _ in range(10):
            start = NOW + timedelta(days=rng.randrange(14), hours=rng.randrange(1, 9))
            emu.seed_event(email, start, start + timedelta(minutes=60))


@pytest.fixture
def memu(tmp_path: Path) -> Iterator[GraphEmulator]:
    emu = GraphEmulator(tmp_path, max_page_size=20)
    emu.add_mailbox(OWNER.email, zone="GMT Standard Time")
    emu.add_mailbox(PROBE.email, zone="UTC")
    try:
        yield emu
    finally:
        emu.close()
    assert emu.schema_violations == []


def _graph(emu: GraphEmulator) -> GraphCalendar:
    settings = emu.settings()
    return GraphCalendar(settings, AppOnlyTokens(settings, MemoryTokenStore()))


def _views(emu: GraphEmulator, since: int = 0) -> list[tuple[str, str]]:
    """``(startDateTime, endDateTime)`` of each owner calendarView page after ``since`` calls."""
    return [
        (c.query["startDateTime"][0], c.query["endDateTime"][0])
        for c in emu.calls[since:]
        if c.method == "GET" and c.path.endswith("/calendarView") and c.mailbox == OWNER.email
    ]


@pytest.mark.parametrize(
    ("k", "get_schedule"),
    [(1, 1), (19, 1), (20, 1), (21, 2), (40, 2), (41, 3)],
    ids=["1", "19", "20-was-2", "21", "40-was-3", "41"],
)
def test_graph_round_reads_the_owner_once_and_leaves_them_out_of_get_schedule(
    memu: GraphEmulator, k: int, get_schedule: int
) -> None:
    emails = _emails(k)
    _seed_graph(memu, emails)
    policy = _policy("microsoft", emails)
    graph = _graph(memu)
    assert isinstance(graph, OwnerCalendar)

    # Before: history from calendarView, busy with the owner inside getSchedule.
    before_history = _Recorded(graph)
    before = dry_run_plan(
        policy, source=_OwnerInGetSchedule(graph), history=before_history, now=NOW
    )
    sent = [c for c in memu.calls if c.path.endswith("/getSchedule")]
    assert len(sent) == math.ceil((k + 1) / 20)  # the owner took one of the 20 places

    # After: calendarView pages of one window, then ceil(k / 20) getSchedule calls.
    mark = len(memu.calls)
    history = _Recorded(graph)
    after = dry_run_plan(policy, source=graph, history=history, now=NOW)
    views = _views(memu, mark)
    assert set(views) == {(ROUND.start.isoformat(), ROUND.end.isoformat())}
    assert len(views) >= 2  # paged (20 a page at the emulator), every page the same window
    sent = [c for c in memu.calls[mark:] if c.path.endswith("/getSchedule")]
    assert len(sent) == get_schedule == math.ceil(k / 20)
    assert all(OWNER.email not in c.body["schedules"] for c in sent)
    assert len(memu.calls) - mark == len(views) + get_schedule  # nothing else

    # The same organic contacts and the same plan.
    assert _outcome(after, history) == _outcome(before, before_history)
    assert after.proposals


def test_graph_held_read_serves_one_round_then_reads_fresh(memu: GraphEmulator) -> None:
    sam = "s00@corp.example"
    memu.add_mailbox(sam, zone="GMT Standard Time")
    met = NOW - timedelta(weeks=6)
    memu.seed_event(OWNER.email, met, met + timedelta(minutes=30), attendees=[(sam, "accepted")])
    soon = NOW + timedelta(days=1, hours=2)
    memu.seed_event(OWNER.email, soon, soon + timedelta(hours=1))
    graph = _graph(memu)
    query = BusyQuery(Interval(NOW, NOW + HORIZON), (OWNER,))

    graph.read_owner(OWNER, ROUND)
    mark = len(memu.calls)
    assert graph.last_contacts(OWNER, [sam], ROUND.start, NOW) == {sam: met + timedelta(minutes=30)}
    assert len(graph.busy(query).blocks[OWNER.email]) == 1
    assert memu.calls[mark:] == []  # both served from the one read, and no getSchedule
    later = soon + timedelta(days=1)
    memu.seed_event(OWNER.email, later, later + timedelta(hours=1))
    assert len(graph.busy(query).blocks[OWNER.email]) == 2  # a recheck reads fresh
    assert _views(memu, mark) == [(NOW.isoformat(), (NOW + HORIZON).isoformat())]
    # Another owner is never served this owner's read.
    other = Person("bo@corp.example", "Bo", "Europe/London")
    memu.add_mailbox(other.email, zone="GMT Standard Time")
    graph.read_owner(OWNER, ROUND)
    mark = len(memu.calls)
    assert graph.busy(BusyQuery(query.window, (other,))).blocks[other.email] == []
    assert [c.mailbox for c in memu.calls[mark:]] == [other.email]


# -- Graph: the owner's busy time from calendarView vs getSchedule -----------------------------

DAY = NOW.replace(hour=0) + timedelta(days=1)  # Tuesday 2 March
SAM = Person("sam@corp.example", "Sam Lee", "Europe/London")


def _seed_every_kind(emu: GraphEmulator, graph: GraphCalendar) -> None:
    """The owner's calendar with every kind of event the busy rules tell apart."""
    emu.add_mailbox(SAM.email, zone="GMT Standard Time")
    for hour, show_as in [
        (8, "busy"),
        (9, "tentative"),
        (10, "oof"),
        (11, "free"),
        (12, "workingElsewhere"),
        (13, "unknown"),
    ]:
        emu.seed_event(OWNER.email, DAY.replace(hour=hour), DAY.replace(hour=hour, minute=45),
                       show_as=show_as)  # fmt: skip
    wednesday, thursday = DAY + timedelta(days=1), DAY + timedelta(days=2)
    emu.seed_event(OWNER.email, wednesday, wednesday + timedelta(days=1), is_all_day=True)
    emu.seed_event(
        OWNER.email, thursday, thursday + timedelta(days=1), is_all_day=True, show_as="free"
    )
    emu.seed_event(  # an out-of-office all-day event follows out_of_office, not all_day
        OWNER.email, DAY + timedelta(days=5), DAY + timedelta(days=6), is_all_day=True,
        show_as="oof",
    )  # fmt: skip
    # Invites from Sam: unanswered, declined, tentatively accepted, accepted, and cancelled.
    for hour, answer, cancelled in [
        (14, "none", False),
        (15, "declined", False),
        (16, "tentativelyAccepted", False),
        (17, "accepted", False),
        (18, "accepted", True),
    ]:
        emu.seed_event(
            SAM.email,
            DAY.replace(hour=hour),
            DAY.replace(hour=hour, minute=30),
            attendees=[(OWNER.email, answer)],
            is_cancelled=cancelled,
        )
    friday = DAY + timedelta(days=3, hours=10)
    graph.create_event(  # one of our own coffees, organised by the owner
        EventDraft("coffee-key", OWNER, SAM, friday, friday + timedelta(minutes=30), "Coffee")
    )


def _owner_busy_both_ways(
    emu: GraphEmulator, graph: GraphCalendar, rules: BusyRules
) -> tuple[list[Interval], list[Interval]]:
    window = Interval(DAY, DAY + timedelta(days=7))
    via_schedule = _OwnerInGetSchedule(graph).busy(BusyQuery(window, (OWNER,)))
    via_view = graph.busy(BusyQuery(window, (OWNER,)))
    return (
        apply_busy_rules(via_schedule.blocks[OWNER.email], rules),
        apply_busy_rules(via_view.blocks[OWNER.email], rules),
    )


@pytest.mark.parametrize(
    "rules",
    [
        BusyRules(),
        BusyRules(tentative=BusyRule.FREE),
        BusyRules(out_of_office=BusyRule.FREE),
        BusyRules(working_elsewhere=BusyRule.BUSY),
        BusyRules(unanswered=BusyRule.FREE),
        BusyRules(unknown=BusyRule.FREE),
        BusyRules(tentative=BusyRule.FREE, unanswered=BusyRule.BUSY, out_of_office=BusyRule.FREE),
    ],
    ids=["default", "tentative-free", "oof-free", "elsewhere-busy", "unanswered-free",
         "unknown-free", "mixed"],
)  # fmt: skip
def test_graph_owner_busy_from_calendar_view_equals_get_schedule(
    memu: GraphEmulator, rules: BusyRules
) -> None:
    graph = _graph(memu)
    _seed_every_kind(memu, graph)
    via_schedule, via_view = _owner_busy_both_ways(memu, graph, rules)
    assert via_view == via_schedule
    assert via_view  # not trivially equal


def test_graph_owner_blocks_carry_the_detail_get_schedule_hides(memu: GraphEmulator) -> None:
    graph = _graph(memu)
    _seed_every_kind(memu, graph)
    window = Interval(DAY, DAY + timedelta(days=7))
    blocks = graph.busy(BusyQuery(window, (OWNER,))).blocks[OWNER.email]
    by_start = {b.start: b for b in blocks}
    assert by_start[DAY + timedelta(days=1)].all_day
    assert by_start[DAY.replace(hour=15)].response.value == "declined"
    assert by_start[DAY.replace(hour=18)].status.value == "cancelled"
    assert by_start[DAY.replace(hour=8)].response.value == "organizer"
    assert by_start[DAY.replace(hour=14)].show_as.value == "tentative"  # unanswered, as Exchange
    assert [b.key for b in blocks if b.key] == ["coffee-key"]


_WED, _THU = DAY + timedelta(days=1), DAY + timedelta(days=2)


def _half_hour(hour: int) -> Interval:
    return Interval(DAY.replace(hour=hour), DAY.replace(hour=hour, minute=30))


@pytest.mark.parametrize(
    ("rules", "only_schedule", "only_view"),
    [
        # getSchedule marks no item all-day: the all_day knob never applied to a Graph owner...
        (BusyRules(all_day=BusyRule.FREE), [Interval(_WED, _THU)], []),
        # ...so an all-day "free" event followed `transparent` instead of `all_day`.
        (BusyRules(transparent=BusyRule.BUSY), [Interval(_THU, _THU + timedelta(days=1))], []),
        # getSchedule leaves declined and cancelled meetings out: those knobs never applied.
        (BusyRules(declined=BusyRule.BUSY), [], [_half_hour(15)]),
        (BusyRules(cancelled=BusyRule.BUSY), [], [_half_hour(18)]),
    ],
    ids=["all-day-free", "transparent-busy", "declined-busy", "cancelled-busy"],
)  # fmt: skip
def test_graph_owner_busy_now_follows_the_knobs_get_schedule_could_not_see(
    memu: GraphEmulator,
    rules: BusyRules,
    only_schedule: list[Interval],
    only_view: list[Interval],
) -> None:
    """Where getSchedule hid an event's detail, the owner's busy time now follows the policy's
    knob, as on Google (under the default knobs the answer is the same: the test above)."""
    graph = _graph(memu)
    _seed_every_kind(memu, graph)
    via_schedule, via_view = _owner_busy_both_ways(memu, graph, rules)
    assert subtract(via_schedule, via_view) == only_schedule
    assert subtract(via_view, via_schedule) == only_view
