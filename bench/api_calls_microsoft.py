"""API calls per booked meeting on Microsoft 365 (Graph), counted on the wire at the emulator.

Run: ``.venv/bin/python -m bench.api_calls_microsoft`` (options: ``--stakeholders``,
``--meetings``, ``--events-per-person``, ``--past-per-week``).

Workload: one owner (Europe/London) with 30 due stakeholders, each with a few seeded meetings
over a 14-day horizon; the owner also had ``--past-per-week`` meetings with them over the 26
weeks of history (all older than the 4-week cadence, so everyone is due). One planning round
(``dry_run_plan`` with history, as a round runs it) reads the owner's calendar once
(``read_owner``: the ``calendarView`` pages of one window, history and horizon together, serving
both the organic-contact read and the owner's busy time) and only the stakeholders through
getSchedule (at most 20 schedules per call: 30 take 2, 20 take 1, 40 take 2). Then it books
``--meetings`` coffees (each one look-up by our extended property + one ``POST /events``), then
reads every attendee's answer in one ``$batch``. Finally one booking is retried, as a worker would
after a lost reply: it costs one look-up and no write.

Real msal (client credentials) and requests talk HTTPS to
:class:`tests.emulators.graph_emulator.GraphEmulator` on loopback; the emulator's call log is the
measurement. Exits non-zero if a booked meeting took other than exactly one create, if the round
read the owner's calendar other than once (the calendarView pages of one window), if getSchedule
took other than ceil(stakeholders / 20) calls, or if any request body broke the Graph schema.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import tempfile
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.plan_round import past_meetings, policy_for
from connectors.microsoft import AppOnlyTokens, GraphCalendar
from connectors.tokens import MemoryTokenStore
from scheduler.app.planning import dry_run_plan
from scheduler.core.model import EventDraft, Person
from tests.emulators.graph_emulator import Call, GraphEmulator

OWNER = Person("alex@corp.example", "Alex Doe", "Europe/London")
START = datetime(2027, 3, 1, tzinfo=UTC)
HORIZON = timedelta(days=14)


def _label(call: Call) -> str:
    method, path = call.method, call.path
    if path.endswith("/calendar/getSchedule"):
        return "getSchedule"
    if path.endswith("/calendarView"):
        return "calendarView (pages)"
    if path.endswith("/events") and method == "GET":
        return "events look-up by key"
    if path.endswith("/events") and method == "POST":
        return "events create"
    if path == "/$batch":
        return "$batch (event states)"
    if "/events/" in path and method == "GET":
        return "events get"
    return f"{method} {path}"


def _count(calls: list[Call]) -> Counter[str]:
    return Counter(_label(c) for c in calls)


#: The calendarView page size the connector asks for (``$top``).
VIEW_PAGE = 100


def run(stakeholders: int, meetings: int, events_per_person: int, past_per_week: int) -> int:
    rng = random.Random(7)
    people = [
        Person(f"s{i:02d}@corp.example", f"Stake Holder{i}", "America/New_York")
        for i in range(stakeholders)
    ]
    with (
        tempfile.TemporaryDirectory() as tmp,
        GraphEmulator(Path(tmp)) as emulator,
    ):
        emulator.add_mailbox(OWNER.email, zone="GMT Standard Time")
        for person in people:
            emulator.add_mailbox(person.email, zone="Eastern Standard Time")
        past = past_meetings(rng, START, past_per_week)
        for start in past:
            emulator.seed_event(
                OWNER.email,
                start,
                start + timedelta(minutes=30),
                attendees=[(rng.choice(people).email, "accepted")],
            )
        owner_events = len(past) + events_per_person
        for person in (OWNER, *people):
            for _ in range(events_per_person):
                day = START + timedelta(days=rng.randrange(14), hours=rng.randrange(8, 17))
                emulator.seed_event(person.email, day, day + timedelta(minutes=30))
        settings = emulator.settings()
        graph = GraphCalendar(settings, AppOnlyTokens(settings, MemoryTokenStore()))

        # Plan: one planning round, as plan_user runs it (history, then busy time for the due).
        policy = policy_for(OWNER, "microsoft", people)
        plan = dry_run_plan(policy, source=graph, history=graph, now=START)
        read_calls = _count(emulator.calls)
        windows = {
            (c.query["startDateTime"][0], c.query["endDateTime"][0])
            for c in emulator.calls
            if c.path.endswith("/calendarView")
        }
        scheduled = {
            e
            for c in emulator.calls
            if c.body and "schedules" in c.body
            for e in c.body["schedules"]
        }
        mark = len(emulator.calls)

        # Book: one create per meeting.
        drafts = [
            EventDraft(
                idempotency_key=f"bench-meeting-{i}",
                organizer=OWNER,
                attendee=people[i],
                start=START + timedelta(days=i + 1, hours=10),
                end=START + timedelta(days=i + 1, hours=10, minutes=30),
                title=f"Coffee: Alex / {people[i].first_name}",
            )
            for i in range(meetings)
        ]
        ids = []
        for draft in drafts:
            created = graph.create_event(draft)
            assert created.created
            ids.append(created.provider_event_id)
        book_calls = _count(emulator.calls[mark:])
        mark = len(emulator.calls)

        # Sync responses: every attendee's answer in one $batch (≤20 per batch).
        states = graph.event_states(OWNER, ids, people[0].email)
        sync_calls = _count(emulator.calls[mark:])
        mark = len(emulator.calls)

        # A worker retries a booking whose reply it never saw.
        assert not graph.create_event(drafts[0]).created
        retry_calls = _count(emulator.calls[mark:])
        coffees = [
            e for e in emulator.events_of(OWNER.email) if str(e["subject"]).startswith("Coffee")
        ]
        token_grants = len(emulator.token_requests)
        violations = list(emulator.schema_violations)

    total = read_calls + book_calls + sync_calls
    rows = sorted(set(total) | set(retry_calls))
    print(
        f"API calls per booked meeting - Microsoft Graph, owner + {stakeholders} due "
        f"stakeholders, {meetings} meetings booked"
    )
    header = f"{'call':26} {'plan round':>10} {'booking':>8} {'sync':>5} {'per meeting':>12}"
    print(f"{header} {'retry':>6}")
    for row in rows:
        print(
            f"{row:26} {read_calls[row]:>10} {book_calls[row]:>8} {sync_calls[row]:>5} "
            f"{total[row] / meetings:>12.2f} {retry_calls[row]:>6}"
        )
    print(
        f"{'total':26} {sum(read_calls.values()):>10} {sum(book_calls.values()):>8} "
        f"{sum(sync_calls.values()):>5} {sum(total.values()) / meetings:>12.2f} "
        f"{sum(retry_calls.values()):>6}"
    )
    pages = math.ceil(owner_events / VIEW_PAGE)
    expected_reads = math.ceil(stakeholders / 20)
    print(
        f"plan round: owner read once = {read_calls['calendarView (pages)']} calendarView pages "
        f"of {len(windows)} window ({owner_events} events, {VIEW_PAGE} a page) + "
        f"{read_calls['getSchedule']} getSchedule for {stakeholders} stakeholders (expected "
        f"{pages} + ceil({stakeholders}/20) = {expected_reads}); proposals: {len(plan.proposals)}"
    )
    print(
        f"states read: {len(states)}; coffees on the calendar after the retry: {len(coffees)}; "
        f"token endpoint requests: {token_grants} (later calls hit msal's cache); "
        f"schema violations: {len(violations)}"
    )

    problems = []
    if len(windows) != 1 or read_calls["calendarView (pages)"] != pages:
        problems.append(
            f"owner read as {read_calls['calendarView (pages)']} calendarView pages of "
            f"{len(windows)} windows, expected {pages} pages of 1"
        )
    if OWNER.email in scheduled:
        problems.append("the owner was sent to getSchedule")
    if book_calls["events create"] != meetings:
        problems.append(f"{book_calls['events create']} creates for {meetings} meetings")
    if read_calls["getSchedule"] != expected_reads:
        problems.append(f"{read_calls['getSchedule']} getSchedule calls, expected {expected_reads}")
    if retry_calls["events create"] != 0:
        problems.append("the retried booking POSTed again")
    if len(coffees) != meetings:
        problems.append(f"{len(coffees)} coffees on the calendar, expected {meetings}")
    if violations:
        problems.append(f"schema violations: {violations}")
    for problem in problems:
        print(f"FAIL: {problem}", file=sys.stderr)
    return 1 if problems else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--stakeholders", type=int, default=30)
    parser.add_argument("--meetings", type=int, default=5)
    parser.add_argument("--events-per-person", type=int, default=20)
    parser.add_argument("--past-per-week", type=int, default=3, help="owner's past meetings")
    args = parser.parse_args(argv)
    if not 1 <= args.meetings <= args.stakeholders:
        parser.error("--meetings must be between 1 and --stakeholders")
    return run(args.stakeholders, args.meetings, args.events_per_person, args.past_per_week)


if __name__ == "__main__":
    raise SystemExit(main())
