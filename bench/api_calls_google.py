"""API calls per booked meeting on Google Calendar, counted on the wire at the emulator.

Run: ``.venv/bin/python -m bench.api_calls_google`` (options: ``--stakeholders``, ``--meetings``,
``--events-per-person``, ``--past-per-week``, ``--page-size``).

Workload: one owner (Europe/London) with 30 due stakeholders, each with a few seeded meetings
over a 14-day horizon; the owner also had ``--past-per-week`` meetings with them over the 26
weeks of history (all older than the 4-week cadence, so everyone is due). One planning round
(``dry_run_plan`` with history, as a round runs it) reads the owner's calendar once
(``read_owner``: the ``events.list`` pages of one window, history and horizon together, serving
both the organic-contact read and the owner's busy time) and everyone else through ``freeBusy``
(≤50 calendars a call); then ``--meetings`` coffees are booked (one ``events.insert`` each).
Finally one booking is retried, as a worker would after a lost reply, to show what idempotency
costs (one 409 insert + one get, no new event).

The real google-api-python-client talks to :class:`tests.emulators.google_emulator.GoogleEmulator`
over loopback; the emulator's call log is the measurement. Exits non-zero if a booked meeting
took other than exactly one insert, if the round listed the owner's calendar other than once
(the pages of one window), or if it made other than ceil(stakeholders / 50) freeBusy calls.
"""

from __future__ import annotations

import argparse
import math
import random
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta

from bench.plan_round import past_meetings, policy_for
from connectors.google import GoogleCalendar, user_credentials
from scheduler.app.planning import dry_run_plan
from scheduler.core.model import EventDraft, Person
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


def run(
    stakeholders: int, meetings: int, events_per_person: int, past_per_week: int, page_size: int
) -> int:
    rng = random.Random(7)
    people = [
        Person(f"s{i:02d}@corp.example", f"Stake Holder{i}", "Europe/London")
        for i in range(stakeholders)
    ]
    with GoogleEmulator(page_size=page_size) as emulator:
        for person in (OWNER, *people):
            emulator.add_calendar(person.email, person.timezone)
        owner_events = 0
        for start in past_meetings(rng, START, past_per_week):
            emulator.seed(
                OWNER.email,
                {
                    "summary": "catch-up",
                    "start": {"dateTime": start.isoformat()},
                    "end": {"dateTime": (start + timedelta(minutes=30)).isoformat()},
                    "attendees": [
                        {"email": rng.choice(people).email, "responseStatus": "accepted"}
                    ],
                },
            )
            owner_events += 1
        owner_events += events_per_person  # the owner's meetings in the horizon, seeded below
        for person in (OWNER, *people):
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

        # Plan: one planning round, as plan_user runs it (history, then busy time for the due).
        mark = len(emulator.calls)
        policy = policy_for(OWNER, "google", people)
        plan = dry_run_plan(policy, source=google, history=google, now=START)
        read_calls = Counter(_label(m, p) for m, p in emulator.calls[mark:])
        windows = {
            (r.query["timeMin"][-1], r.query["timeMax"][-1])
            for r in emulator.requests
            if r.method == "GET" and r.path.endswith("/events")
        }
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
    print(f"{'call':32} {'plan round':>10} {'booking':>8} {'per meeting':>12} {'retry':>6}")
    for row in rows:
        print(
            f"{row:32} {read_calls[row]:>10} {book_calls[row]:>8} "
            f"{total[row] / meetings:>12.2f} {retry_calls[row]:>6}"
        )
    print(
        f"{'total':32} {sum(read_calls.values()):>10} {sum(book_calls.values()):>8} "
        f"{sum(total.values()) / meetings:>12.2f} {sum(retry_calls.values()):>6}"
    )
    pages = math.ceil(owner_events / page_size)
    freebusy = math.ceil(stakeholders / 50)
    print(
        f"plan round: owner read once = {read_calls['events.list (pages)']} events.list pages of "
        f"{len(windows)} window ({owner_events} events, {page_size} a page) + "
        f"{read_calls['freeBusy.query']} freeBusy for {stakeholders} stakeholders "
        f"(expected {pages} + ceil({stakeholders}/50) = {freebusy}); "
        f"proposals: {len(plan.proposals)}"
    )
    print(
        f"coffees on the calendar after the retry: {events_on_calendar}; "
        f"schema violations: {len(violations)}"
    )

    problems = []
    if book_calls["events.insert"] != meetings:
        problems.append(f"{book_calls['events.insert']} inserts for {meetings} meetings")
    if len(windows) != 1 or read_calls["events.list (pages)"] != pages:
        problems.append(
            f"owner read as {read_calls['events.list (pages)']} events.list pages of "
            f"{len(windows)} windows, expected {pages} pages of 1"
        )
    if read_calls["freeBusy.query"] != freebusy:
        problems.append(f"{read_calls['freeBusy.query']} freeBusy calls, expected {freebusy}")
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
    parser.add_argument("--past-per-week", type=int, default=3, help="owner's past meetings")
    parser.add_argument("--page-size", type=int, default=250, help="emulator's events.list page")
    args = parser.parse_args(argv)
    if not 1 <= args.meetings <= args.stakeholders:
        parser.error("--meetings must be between 1 and --stakeholders")
    return run(
        args.stakeholders, args.meetings, args.events_per_person, args.past_per_week, args.page_size
    )


if __name__ == "__main__":
    raise SystemExit(main())
