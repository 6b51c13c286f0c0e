"""API calls per booked meeting on Google Calendar, counted on the wire at the emulator.

Run: ``.venv/bin/python -m bench.api_calls_google`` (options: ``--stakeholders``, ``--meetings``,
``--events-per-person``, ``--page-size``).

Workload: one owner (Europe/London) with 30 due stakeholders, each with a few seeded meetings
over a 14-day horizon. One planning pass reads busy time once (``GoogleCalendar.busy``: the
owner's own calendar through ``events.list``, everyone else through ``freeBusy``), then books
``--meetings`` coffees (one ``events.insert`` each). Finally one booking is retried, as a worker
would after a lost reply, to show what idempotency costs (one 409 insert + one get, no new event).

The real google-api-python-client talks to :class:`tests.emulators.google_emulator.GoogleEmulator`
over loopback; the emulator's call log is the measurement. Exits non-zero if a booked meeting
took other than exactly one insert, or if more than one freeBusy call was made for ≤50 people.
"""

from __future__ import annotations

import argparse
import random
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta

from connectors.google import GoogleCalendar, user_credentials
from scheduler.core.intervals import Interval
from scheduler.core.model import BusyQuery, EventDraft, Person
from scheduler.settings import GoogleSettings
from tests.emulators.google_emulator import GoogleEmulator

OWNER = Person("alex@corp.example", "Alex Doe", "Europe/London")
START = datetime(2027, 3, 1, tzinfo=UTC)
HORIZON = timedelta(days=14)


def _label(method: str, path: str) -> str:
    if path == "/token":
        return "token refresh (POST /token)"
    if path.endswith("/freeBusy"):
        return "freeBusy.query"
    if path.endswith("/events") and method == "GET":
        return "events.list (pages)"
    if path.endswith("/events") and method == "POST":
        return "events.insert"
    if "/events/" in path and method == "GET":
        return "events.get"
    return f"{method} {path}"


def run(stakeholders: int, meetings: int, events_per_person: int, page_size: int) -> int:
    rng = random.Random(7)
    people = [
        Person(f"s{i:02d}@corp.example", f"Stake Holder{i}", "Europe/London")
        for i in range(stakeholders)
    ]
    with GoogleEmulator(page_size=page_size) as emulator:
        for person in (OWNER, *people):
            emulator.add_calendar(person.email, person.timezone)
            for _ in range(events_per_person):
                day = START + timedelta(days=rng.randrange(14), hours=rng.randrange(8, 17))
                emulator.seed(
                    person.email,
                    {
                        "summary": "busy",
                        "start": {"dateTime": day.isoformat()},
                        "end": {"dateTime": (day + timedelta(minutes=30)).isoformat()},
                    },
                )
        emulator.add_refresh_token("1//rt-owner", OWNER.email)
        settings = GoogleSettings(token_uri=emulator.token_uri, api_endpoint=emulator.api_endpoint)
        google = GoogleCalendar(
            settings,
            lambda _email: user_credentials("1//rt-owner", "cid", "cs", emulator.token_uri),
        )

        # Plan: one batched busy read for everyone due.
        result = google.busy(
            BusyQuery(window=Interval(START, START + HORIZON), people=(OWNER, *people))
        )
        read_calls = Counter(_label(m, p) for m, p in emulator.calls)
        mark = len(emulator.calls)

        # Book: one insert per meeting.
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
        for draft in drafts:
            assert google.create_event(draft).created
        book_calls = Counter(_label(m, p) for m, p in emulator.calls[mark:])
        mark = len(emulator.calls)

        # A worker retries a booking whose reply it never saw.
        assert not google.create_event(drafts[0]).created
        retry_calls = Counter(_label(m, p) for m, p in emulator.calls[mark:])
        events_on_calendar = len(
            [e for e in emulator.events(OWNER.email) if e["summary"].startswith("Coffee")]
        )
        violations = list(emulator.schema_violations)

    total = read_calls + book_calls
    rows = sorted(set(total) | set(retry_calls))
    print(
        f"API calls per booked meeting - Google, owner + {stakeholders} due stakeholders, "
        f"{meetings} meetings booked, events.list page size {page_size}"
    )
    print(f"{'call':32} {'plan read':>9} {'booking':>8} {'per meeting':>12} {'retry':>6}")
    for row in rows:
        print(
            f"{row:32} {read_calls[row]:>9} {book_calls[row]:>8} "
            f"{total[row] / meetings:>12.2f} {retry_calls[row]:>6}"
        )
    print(
        f"{'total':32} {sum(read_calls.values()):>9} {sum(book_calls.values()):>8} "
        f"{sum(total.values()) / meetings:>12.2f} {sum(retry_calls.values()):>6}"
    )
    print(
        f"people read: {len(result.blocks)} (unavailable: {len(result.unavailable)}); "
        f"coffees on the calendar after the retry: {events_on_calendar}; "
        f"schema violations: {len(violations)}"
    )

    problems = []
    if book_calls["events.insert"] != meetings:
        problems.append(f"{book_calls['events.insert']} inserts for {meetings} meetings")
    if stakeholders <= 50 and read_calls["freeBusy.query"] != 1:
        problems.append(f"{read_calls['freeBusy.query']} freeBusy calls for ≤50 people")
    if events_on_calendar != meetings:
        problems.append(f"{events_on_calendar} coffees on the calendar, expected {meetings}")
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
    parser.add_argument("--page-size", type=int, default=250, help="emulator's events.list page")
    args = parser.parse_args(argv)
    if not 1 <= args.meetings <= args.stakeholders:
        parser.error("--meetings must be between 1 and --stakeholders")
    return run(args.stakeholders, args.meetings, args.events_per_person, args.page_size)


if __name__ == "__main__":
    raise SystemExit(main())
