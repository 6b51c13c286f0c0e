"""The Google emulator for ``bench.pipeline``, in its own process, with realistic calendars.

``python -m bench.pipeline_emulator SPEC.json`` builds the calendars described in the spec (see
:func:`write_spec`), starts :class:`IndexedEmulator` on a free loopback port, prints one JSON line
``{"base_url": ..., "events": N}`` and serves until its stdin closes. Commands on stdin (one JSON
line back each), through :class:`bench.soak.emulator.RemoteEmulator`:

- ``counts``: the API calls so far by kind (``freebusy``, ``list``, ``insert``, ``get``,
  ``patch``, ``delete``, ``token``, ``other``);
- ``stats``: as in :mod:`bench.soak.emulator`.

Calendars: every person works their hours (London/Berlin/New York mix from
:mod:`bench.soak.world`) with about 40 events a week: a daily stand-up and seven other meetings of
30-60 minutes a working day, now and then focus time marked free. Policy owners' calendars hold 26
weeks of history (the only calendars goodwill reads over the past: ``events.list`` for the contact
history) plus three weeks ahead; everyone else's calendar holds the three weeks ahead that
``freeBusy`` reads. Past meetings with a stakeholder are at least ``fresh_weeks`` old, so every
stakeholder is still due (their cadence is 4 or 6 weeks).

The emulator is :class:`tests.emulators.google_emulator.GoogleEmulator` with one change: who is
invited to which event is indexed, so a ``freeBusy`` or ``events.list`` costs the events of the
calendars asked about, not every event in the organisation (the stock emulator scans them all,
fine for a test, quadratic for 1,000 users). Seeded events are built directly (no schema check
per event: they are written here, in a known-good shape).
"""

from __future__ import annotations

import json
import random
import sys
import threading
from collections import Counter, defaultdict
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import IO, Any
from zoneinfo import ZoneInfo

from bench.soak.emulator import _reply_stats
from bench.soak.world import Person, World
from tests.emulators.google_emulator import GoogleEmulator, _Calendar, _is_attendee

__all__ = ["IndexedEmulator", "main", "write_spec"]

HISTORY_WEEKS = 26
AHEAD_DAYS = 21
#: Meetings per working day besides the stand-up (5 x (1 + 7) = 40 a week).
OTHERS_PER_DAY = 7


def write_spec(world: World, path: Path, *, start: datetime, seed: int, fresh_weeks: int) -> None:
    """What the emulator process builds: every person, owners with their stakeholders."""
    stakeholders = {u.person.email: [s.email for s in u.stakeholders] for u in world.users}
    people = [
        [p.email, p.name, p.timezone, p.hours, stakeholders.get(p.email)] for p in world.people()
    ]
    spec = {
        "start": start.isoformat(),
        "seed": seed,
        "fresh_weeks": fresh_weeks,
        "people": people,
    }
    path.write_text(json.dumps(spec), encoding="utf-8")


class IndexedEmulator(GoogleEmulator):
    """The stock emulator plus an index of invitations by attendee (see the module doc)."""

    def __init__(self, *, page_size: int = 2500) -> None:
        super().__init__(page_size=page_size)
        self._invited: defaultdict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
        self._next_id = 0

    def _index(self, calendar: _Calendar, event: dict[str, Any]) -> None:
        for attendee in event.get("attendees", []):
            email = str(attendee.get("email", "")).lower()
            if email and email != calendar.email:
                self._invited[email][str(event["id"])] = event

    def _store(
        self, calendar: _Calendar, body: dict[str, Any], *, conference: bool
    ) -> dict[str, Any]:
        event = super()._store(calendar, body, conference=conference)
        self._index(calendar, event)
        return event

    def _modify(
        self, calendar: _Calendar, event_id: str, body: Any, *, replace: bool
    ) -> dict[str, Any]:
        out = super()._modify(calendar, event_id, body, replace=replace)
        with self._lock:
            self._index(calendar, calendar.events[event_id])
        return out

    def _view(self, calendar: _Calendar) -> Iterator[dict[str, Any]]:
        yield from calendar.events.values()
        for event_id, event in list(self._invited.get(calendar.email, {}).items()):
            if event_id not in calendar.events and _is_attendee(event, calendar.email):
                yield event

    # -- bulk seeding -------------------------------------------------------------------------

    def seed_fast(
        self,
        calendar: _Calendar,
        summary: str,
        start: datetime,
        minutes: int,
        *,
        attendees: list[str] | None = None,
        transparent: bool = False,
        shared: dict[str, Any],
    ) -> None:
        self._next_id += 1
        event_id = f"seed{self._next_id:x}"
        end = start + timedelta(minutes=minutes)
        event: dict[str, Any] = {
            "id": event_id,
            "kind": "calendar#event",
            "etag": f'"{self._next_id}"',
            "status": "confirmed",
            "summary": summary,
            "start": {"dateTime": _z(start), "timeZone": calendar.timezone},
            "end": {"dateTime": _z(end), "timeZone": calendar.timezone},
            "created": shared["stamp"],
            "updated": shared["stamp"],
            "iCalUID": f"{event_id}@google.com",
            "creator": shared["me"],
            "organizer": shared["me"],
            "sequence": 0,
            "eventType": "default",
            "reminders": shared["reminders"],
        }
        if transparent:
            event["transparency"] = "transparent"
        if attendees:
            event["attendees"] = [
                {"email": calendar.email, "organizer": True, "responseStatus": "accepted"}
            ] + [{"email": a, "responseStatus": "accepted"} for a in attendees]
        calendar.events[event_id] = event
        self._index(calendar, event)


def _z(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def build_calendars(emulator: IndexedEmulator, spec: dict[str, Any]) -> int:
    """Create every calendar of ``spec`` and seed its events; returns how many were seeded."""
    start = datetime.fromisoformat(spec["start"])
    seed = int(spec["seed"])
    fresh = start - timedelta(weeks=int(spec["fresh_weeks"]))
    first_day = start.astimezone(UTC).date()
    reminders = {"useDefault": True}
    stamp = _z((start - timedelta(weeks=HISTORY_WEEKS + 1)).replace(microsecond=0))
    count = 0
    for email, name, zone_name, hours, stakeholders in spec["people"]:
        person = Person(email, name, zone_name, hours)
        emulator.add_calendar(email, zone_name)
        calendar = emulator._calendars[email.lower()]
        shared = {"me": {"email": calendar.email}, "reminders": reminders, "stamp": stamp}
        rng = random.Random(f"{seed}-{email}")
        zone = ZoneInfo(zone_name)
        back = HISTORY_WEEKS * 7 if stakeholders is not None else 1
        for offset in range(-back, AHEAD_DAYS):
            day = first_day + timedelta(days=offset)
            count += _seed_day(
                emulator, calendar, person, day, zone, rng, stakeholders, fresh, shared
            )
    return count


def _seed_day(
    emulator: IndexedEmulator,
    calendar: _Calendar,
    person: Person,
    day: date,
    zone: ZoneInfo,
    rng: random.Random,
    stakeholders: list[str] | None,
    fresh: datetime,
    shared: dict[str, Any],
) -> int:
    hours = person.day_hours(day)
    if hours is None:
        return 0
    open_at = datetime.combine(day, hours[0], zone)
    close_at = datetime.combine(day, hours[1], zone)
    emulator.seed_fast(calendar, "Standup", open_at + timedelta(minutes=30), 15, shared=shared)
    quarters = int((close_at - open_at).total_seconds() // 900)
    for _ in range(OTHERS_PER_DAY):
        length = rng.choice((30, 30, 45, 60))
        at = open_at + timedelta(minutes=15 * rng.randrange(max(1, quarters - length // 15)))
        guests: list[str] = []
        if stakeholders and at < fresh and rng.random() < 0.2:
            guests = [rng.choice(stakeholders)]
        focus = not guests and rng.random() < 0.05
        emulator.seed_fast(
            calendar,
            "Focus time" if focus else "Project sync",
            at,
            length,
            attendees=guests,
            transparent=focus,
            shared=shared,
        )
    return 1 + OTHERS_PER_DAY


# -- the child process ------------------------------------------------------------------------


def _kind(method: str, path: str) -> str:
    if path == "/token":
        return "token"
    if not path.startswith("/calendar/v3/"):
        return "other"
    if path.endswith("/freeBusy"):
        return "freebusy"
    if path.endswith("/events"):
        return {"GET": "list", "POST": "insert"}.get(method, "other")
    return {"GET": "get", "PATCH": "patch", "PUT": "patch", "DELETE": "delete"}.get(method, "other")


def _counts(emulator: GoogleEmulator) -> dict[str, int]:
    with emulator._lock:
        calls = list(emulator.calls)
    return dict(Counter(_kind(m, p) for m, p in calls))


def _forget_bodies(emulator: GoogleEmulator, stop: threading.Event) -> None:
    while not stop.wait(10.0):
        with emulator._lock:
            emulator.requests = []
            emulator.token_requests = []


def _serve(emulator: GoogleEmulator, commands: IO[str], out: IO[str]) -> None:
    for line in commands:
        words = line.split()
        reply: dict[str, Any]
        if words == ["counts"]:
            reply = _counts(emulator)
        elif words == ["stats"]:
            reply = _reply_stats(emulator)
        else:
            reply = {"error": f"unknown command {line.strip()!r}"}
        out.write(json.dumps(reply) + "\n")
        out.flush()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m bench.pipeline_emulator SPEC.json", file=sys.stderr)
        return 2
    spec = json.loads(Path(args[0]).read_text(encoding="utf-8"))
    emulator = IndexedEmulator()
    seeded = build_calendars(emulator, spec)
    emulator.start()
    stop = threading.Event()
    threading.Thread(target=_forget_bodies, args=(emulator, stop), daemon=True).start()
    print(json.dumps({"base_url": emulator.base_url, "events": seeded}), flush=True)
    try:
        _serve(emulator, sys.stdin, sys.stdout)
    finally:
        stop.set()
        emulator.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
