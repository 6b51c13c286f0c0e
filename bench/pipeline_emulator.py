"""The Google emulator for ``bench.pipeline``, in its own process, with realistic calendars.

``python -m bench.pipeline_emulator SPEC.json`` reads the people described in the spec (see
:func:`write_spec`), starts :class:`IndexedEmulator` on a free loopback port, prints one JSON line
``{"base_url": ..., "events": N, "people": P, "startup_s": S}`` (``events``: how many seeded
events the calendars hold in all) and serves until its stdin closes. Commands on stdin (one JSON
line back each), through :class:`bench.soak.emulator.RemoteEmulator`:

- ``counts``: the API calls so far by kind (``freebusy``, ``list``, ``insert``, ``get``,
  ``patch``, ``delete``, ``token``, ``other``);
- ``memory``: this process's RSS (``rss_mib``), the calendars generated so far
  (``generated``), those held in the cache (``cached_calendars``, ``cached_events``) and the
  events stored because goodwill wrote them (``stored``);
- ``stats``: as in :mod:`bench.soak.emulator`.

Calendars: every person works their hours (London/Berlin/New York mix from
:mod:`bench.soak.world`) with about 40 events a week: a daily stand-up and seven other meetings of
30-60 minutes a working day, now and then focus time marked free. Policy owners' calendars hold 26
weeks of history (the only calendars goodwill reads over the past: ``events.list`` for the contact
history) plus three weeks ahead; everyone else's calendar holds the three weeks ahead that
``freeBusy`` reads. One past meeting in five on an owner's calendar has one of their stakeholders
on it, never in the last ``fresh_weeks`` (8), so every stakeholder is still due (their cadence is
4 or 6 weeks).

Seeded calendars are generated on demand, not stored. A person's seeded events are a pure
function of (seed, start, their place in the spec): the draws come from
``random.Random(f"{seed}-{email}")`` day by day, exactly as when they were all built up front,
and the ids (``seed<n in hex>``, one counter over the spec's people in order) follow from how
many working days each earlier person has (8 events each), so they are computed without drawing
anything. When a request asks about a calendar (``freeBusy``, ``events.list``, ``events.get``,
the duplicate-id check of ``events.insert``), that person's events are generated, kept in a small
cache bounded by event count (:data:`CACHE_EVENTS`, least recently used out first) and filtered
to the request's time window. The same seed gives the same events, ids, etags and busy time as
the build-everything emulator this replaced (``docs/benchmarks.md``, N = 1,000 figures), at a
memory cost independent of N. Only what goodwill changes is stored: the events it inserts, and a
seeded event it patches or deletes (copied out of the generator first; goodwill never does this,
it only reads, patches and deletes the events it inserted).

Invitations: an event lives on its organizer's calendar and shows on each attendee's (the stock
emulator scans every calendar of the organisation for them: fine for a test, quadratic at 1,000
users). Events goodwill inserts are indexed by attendee as they are stored. A seeded event invites
at most one person, one of the organizer's stakeholders, so the people who can invite X are the
owners whose policy lists X (a reverse index built from the spec at startup); X's seeded
invitations are the matching events of those owners' generated calendars. All of them start
before ``start - fresh_weeks`` and end at most an hour later, so a request whose window starts
after that (every ``freeBusy`` goodwill sends: it reads from now on) skips them without generating
anything. Only an owner's ``events.list`` over the history reaches them, and an owner is listed by
at most two other owners (a partner, and a user five places before). A hub, listed by every
owner, would cost all owners' calendars for a window reaching into the past; goodwill never asks
that (hubs are not owners, and freeBusy reads the future only).

Not covered (test helpers of the stock emulator, unused here): ``respond``, ``events`` and
``seed`` see the stored events only.
"""

from __future__ import annotations

import bisect
import copy
import json
import random
import sys
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
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
PER_DAY = 1 + OTHERS_PER_DAY
#: The generated calendars kept, by event count (an owner's is ~1,160 events, ~1.3 KiB each).
CACHE_EVENTS = 100_000
#: Longest seeded meeting: a seeded invitation ends at most this long after ``fresh``.
_LONGEST = timedelta(minutes=60)


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


def _z(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class _Who:
    """One person of the spec, and where their seeded ids start."""

    email: str  # as in the spec: it seeds the random draws
    person: Person
    stakeholders: tuple[str, ...] | None
    #: The id counter before this person's first seeded event.
    first_id: int
    count: int


#: One seeded event before it is needed as a body: start, end (UTC), id number, summary, the
#: guest (lower e-mail) or None, whether it is marked free.
_Row = tuple[datetime, datetime, int, str, str | None, bool]


class _Seeded:
    """One person's generated events: compact rows, their bodies built when first asked for."""

    def __init__(self, email: str, zone: str, first_id: int, stamp: str) -> None:
        self.me = {"email": email}
        self.zone = zone
        self.first_id = first_id
        self.stamp = stamp
        self.reminders = {"useDefault": True}
        #: In id order (the ids of one person are consecutive).
        self.rows: list[_Row] = []
        #: Indexes of the rows that invite someone.
        self.invitations: list[int] = []
        self._bodies: dict[int, dict[str, Any]] = {}

    def __len__(self) -> int:
        return len(self.rows)

    def body(self, index: int) -> dict[str, Any]:
        event = self._bodies.get(index)
        if event is None:
            event = self._bodies[index] = self._build(self.rows[index])
        return event

    def by_id(self, n: int) -> dict[str, Any]:
        return self.body(n - self.first_id - 1)

    def _build(self, row: _Row) -> dict[str, Any]:
        begin, end, n, summary, guest, transparent = row
        event_id = f"seed{n:x}"
        event: dict[str, Any] = {
            "id": event_id,
            "kind": "calendar#event",
            "etag": f'"{n}"',
            "status": "confirmed",
            "summary": summary,
            "start": {"dateTime": _z(begin), "timeZone": self.zone},
            "end": {"dateTime": _z(end), "timeZone": self.zone},
            "created": self.stamp,
            "updated": self.stamp,
            "iCalUID": f"{event_id}@google.com",
            "creator": self.me,
            "organizer": self.me,
            "sequence": 0,
            "eventType": "default",
            "reminders": self.reminders,
        }
        if transparent:
            event["transparency"] = "transparent"
        if guest is not None:
            event["attendees"] = [
                {"email": self.me["email"], "organizer": True, "responseStatus": "accepted"},
                {"email": guest, "responseStatus": "accepted"},
            ]
        return event


class SeededCalendars:
    """Every person's seeded events, generated from the spec when asked for (module doc)."""

    def __init__(self, spec: dict[str, Any], *, cache_events: int = CACHE_EVENTS) -> None:
        self.start = datetime.fromisoformat(spec["start"])
        self.seed = int(spec["seed"])
        self.fresh = self.start - timedelta(weeks=int(spec["fresh_weeks"]))
        #: No seeded invitation reaches this instant.
        self.invitations_end = self.fresh + _LONGEST
        self.first_day = self.start.astimezone(UTC).date()
        self.stamp = _z((self.start - timedelta(weeks=HISTORY_WEEKS + 1)).replace(microsecond=0))
        self.people: dict[str, _Who] = {}
        #: Lower e-mail -> the owners whose stakeholders include it (who may invite them).
        self.inviters: dict[str, list[str]] = {}
        self._first_ids: list[int] = []
        self._order: list[str] = []
        workdays: dict[tuple[tuple[tuple[str, str], ...], int], int] = {}
        counter = 0
        for email, name, zone_name, hours, stakeholders in spec["people"]:
            person = Person(email, name, zone_name, hours)
            back = self._back(stakeholders)
            key = (tuple(hours.items()), back)
            if key not in workdays:
                workdays[key] = sum(
                    person.day_hours(self.first_day + timedelta(days=d)) is not None
                    for d in range(-back, AHEAD_DAYS)
                )
            count = PER_DAY * workdays[key]
            listed = None if stakeholders is None else tuple(stakeholders)
            lower = email.lower()
            self.people[lower] = _Who(email, person, listed, counter, count)
            self._first_ids.append(counter)
            self._order.append(lower)
            counter += count
            for guest in listed or ():
                self.inviters.setdefault(guest.lower(), []).append(lower)
        self.total = counter
        self._cache: OrderedDict[str, _Seeded] = OrderedDict()
        self._cached_events = 0
        self._cache_events = cache_events
        self.generated = 0
        self._lock = threading.Lock()

    @staticmethod
    def _back(stakeholders: list[str] | None) -> int:
        return HISTORY_WEEKS * 7 if stakeholders is not None else 1

    def number(self, event_id: str) -> int | None:
        """The id counter of the seeded ``event_id`` (None: not a seeded id)."""
        if not event_id.startswith("seed"):
            return None
        try:
            n = int(event_id[4:], 16)
        except ValueError:
            return None
        if not 0 < n <= self.total or event_id != f"seed{n:x}":
            return None
        return n

    def owner_of(self, event_id: str) -> str | None:
        """Whose calendar the seeded ``event_id`` is on (None: not a seeded id)."""
        n = self.number(event_id)
        if n is None:
            return None
        return self._order[bisect.bisect_left(self._first_ids, n) - 1]

    def of(self, email: str) -> _Seeded:
        """``email``'s seeded events (generated now, or from the cache)."""
        with self._lock:
            got = self._cache.get(email)
            if got is not None:
                self._cache.move_to_end(email)
                return got
        made = self._generate(self.people[email])
        with self._lock:
            if email not in self._cache:
                self._cache[email] = made
                self._cached_events += len(made)
                self.generated += 1
                while self._cached_events > self._cache_events and len(self._cache) > 1:
                    _, old = self._cache.popitem(last=False)
                    self._cached_events -= len(old)
            return self._cache[email]

    def cache_size(self) -> tuple[int, int]:
        with self._lock:
            return len(self._cache), self._cached_events

    # -- generation: the same draws, in the same order, as building everything up front -------

    def _generate(self, who: _Who) -> _Seeded:
        person = who.person
        out = _Seeded(who.email.lower(), person.timezone, who.first_id, self.stamp)
        rng = random.Random(f"{self.seed}-{who.email}")
        zone = ZoneInfo(person.timezone)
        n = who.first_id
        back = HISTORY_WEEKS * 7 if who.stakeholders is not None else 1
        for offset in range(-back, AHEAD_DAYS):
            day = self.first_day + timedelta(days=offset)
            n = self._day(out, person, day, zone, rng, who.stakeholders, n)
        if n != who.first_id + who.count:
            raise AssertionError(f"{who.email}: {n - who.first_id} events, expected {who.count}")
        return out

    def _day(
        self,
        out: _Seeded,
        person: Person,
        day: date,
        zone: ZoneInfo,
        rng: random.Random,
        stakeholders: tuple[str, ...] | None,
        n: int,
    ) -> int:
        hours = person.day_hours(day)
        if hours is None:
            return n
        open_at = datetime.combine(day, hours[0], zone)
        close_at = datetime.combine(day, hours[1], zone)
        n += 1
        _add(out, n, "Standup", open_at + timedelta(minutes=30), 15, None, False)
        quarters = int((close_at - open_at).total_seconds() // 900)
        for _ in range(OTHERS_PER_DAY):
            length = rng.choice((30, 30, 45, 60))
            at = open_at + timedelta(minutes=15 * rng.randrange(max(1, quarters - length // 15)))
            guest: str | None = None
            if stakeholders and at < self.fresh and rng.random() < 0.2:
                guest = rng.choice(stakeholders)
            focus = guest is None and rng.random() < 0.05
            n += 1
            _add(out, n, "Focus time" if focus else "Project sync", at, length, guest, focus)
        return n


def _add(
    out: _Seeded,
    n: int,
    summary: str,
    start: datetime,
    minutes: int,
    guest: str | None,
    transparent: bool,
) -> None:
    # The end is wall-clock arithmetic in the person's zone, as when events were built up front.
    end = (start + timedelta(minutes=minutes)).astimezone(UTC)
    if guest is not None:
        guest = guest.lower()
        if guest != out.me["email"]:
            out.invitations.append(len(out.rows))
    out.rows.append((start.astimezone(UTC), end, n, summary, guest, transparent))


#: What a request asks about: a time window (either end may be open), one event id, or
#: everything (None).
_Scope = tuple[datetime | None, datetime | None] | str | None


def _overlaps(scope: _Scope, start: datetime, end: datetime) -> bool:
    if not isinstance(scope, tuple):
        return True
    lo, hi = scope
    return (lo is None or end > lo) and (hi is None or start < hi)


def _moment(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo is not None else None


class IndexedEmulator(GoogleEmulator):
    """The stock emulator with generated seeded calendars and an invitation index (module doc)."""

    def __init__(self, seeded: SeededCalendars, *, page_size: int = 2500) -> None:
        super().__init__(page_size=page_size)
        self.seeded = seeded
        self._invited: dict[str, dict[str, dict[str, Any]]] = {}
        self._scope = threading.local()
        #: The calls already folded out of :attr:`calls` by kind, and how many were API calls.
        self.counted: Counter[str] = Counter()
        self.api_calls_counted = 0
        for who in seeded.people.values():
            self.add_calendar(who.email, who.person.timezone)

    # -- what a request asks about --------------------------------------------------------------

    @contextmanager
    def _scoped(self, scope: _Scope) -> Iterator[None]:
        before = getattr(self._scope, "value", None)
        self._scope.value = scope
        try:
            yield
        finally:
            self._scope.value = before

    def _list(self, calendar: _Calendar, query: dict[str, list[str]]) -> dict[str, Any]:
        lo = _moment(query.get("timeMin", [None])[-1])
        hi = _moment(query.get("timeMax", [None])[-1])
        with self._scoped((lo, hi)):
            return super()._list(calendar, query)

    def _busy(self, calendar: _Calendar, start: datetime, end: datetime) -> list[dict[str, str]]:
        with self._scoped((start, end)):
            return super()._busy(calendar, start, end)

    def _visible(self, calendar: _Calendar, event_id: str) -> dict[str, Any]:
        with self._scoped(event_id):
            return super()._visible(calendar, event_id)

    def _insert(
        self, calendar: _Calendar, query: dict[str, list[str]], body: Any
    ) -> dict[str, Any]:
        event_id = body.get("id") if isinstance(body, dict) else None
        with self._scoped(str(event_id) if event_id is not None else ""):
            return super()._insert(calendar, query, body)

    # -- the events on a calendar ----------------------------------------------------------------

    def _view(self, calendar: _Calendar) -> Iterator[dict[str, Any]]:
        scope: _Scope = getattr(self._scope, "value", None)
        stored = calendar.events
        yield from stored.values()
        if calendar.email in self.seeded.people:
            for event in self._own_seeded(calendar.email, scope):
                if event["id"] not in stored:
                    yield event
        for event_id, event in list(self._invited.get(calendar.email, {}).items()):
            if event_id not in stored and _is_attendee(event, calendar.email):
                yield event
        yield from self._seeded_invitations(calendar, scope)

    def _own_seeded(self, email: str, scope: _Scope) -> Iterator[dict[str, Any]]:
        if isinstance(scope, str):
            n = self.seeded.number(scope)
            if n is not None and self.seeded.owner_of(scope) == email:
                yield self.seeded.of(email).by_id(n)
            return
        seeded = self.seeded.of(email)
        for index, (start, end, *_) in enumerate(seeded.rows):
            if _overlaps(scope, start, end):
                yield seeded.body(index)

    def _seeded_invitations(self, calendar: _Calendar, scope: _Scope) -> Iterator[dict[str, Any]]:
        inviters = self.seeded.inviters.get(calendar.email)
        if not inviters:
            return
        if isinstance(scope, str):
            organizer = self.seeded.owner_of(scope)
            if organizer is None or organizer not in inviters:
                return
            candidates = [organizer]
        elif isinstance(scope, tuple) and scope[0] is not None:
            if scope[0] >= self.seeded.invitations_end:
                return  # every seeded invitation is over before the window starts
            candidates = inviters
        else:
            candidates = inviters
        for organizer in candidates:
            moved = self._calendars[organizer].events  # seeded events goodwill changed
            seeded = self.seeded.of(organizer)
            for index in seeded.invitations:
                start, end, n, _, guest, _ = seeded.rows[index]
                if guest != calendar.email or not _overlaps(scope, start, end):
                    continue
                if isinstance(scope, str) and f"seed{n:x}" != scope:
                    continue
                event = seeded.body(index)
                if event["id"] not in moved and _is_attendee(event, calendar.email):
                    yield event

    # -- what goodwill changes is stored ---------------------------------------------------------

    def _index(self, calendar: _Calendar, event: dict[str, Any]) -> None:
        for attendee in event.get("attendees", []):
            email = str(attendee.get("email", "")).lower()
            if email and email != calendar.email:
                self._invited.setdefault(email, {})[str(event["id"])] = event

    def _store(
        self, calendar: _Calendar, body: dict[str, Any], *, conference: bool
    ) -> dict[str, Any]:
        event = super()._store(calendar, body, conference=conference)
        self._index(calendar, event)
        return event

    def _take_out(self, calendar: _Calendar, event_id: str) -> None:
        """A seeded event about to change is copied into the stored events first."""
        with self._lock:
            if event_id in calendar.events or self.seeded.owner_of(event_id) != calendar.email:
                return
            n = self.seeded.number(event_id)
            assert n is not None
            event = copy.deepcopy(self.seeded.of(calendar.email).by_id(n))
            calendar.events[event_id] = event
            self._index(calendar, event)

    def _modify(
        self, calendar: _Calendar, event_id: str, body: Any, *, replace: bool
    ) -> dict[str, Any]:
        self._take_out(calendar, event_id)
        out = super()._modify(calendar, event_id, body, replace=replace)
        with self._lock:
            self._index(calendar, calendar.events[event_id])
        return out

    def _delete(self, calendar: _Calendar, event_id: str, query: dict[str, list[str]]) -> None:
        self._take_out(calendar, event_id)
        super()._delete(calendar, event_id, query)

    def stored_count(self) -> int:
        with self._lock:
            return sum(len(c.events) for c in self._calendars.values())


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


def _counts(emulator: IndexedEmulator) -> dict[str, int]:
    with emulator._lock:
        calls = list(emulator.calls)
        counted = Counter(emulator.counted)
    counted.update(_kind(m, p) for m, p in calls)
    return dict(counted)


def _stats(emulator: IndexedEmulator) -> dict[str, Any]:
    reply = _reply_stats(emulator)
    reply["api_calls"] += emulator.api_calls_counted
    return reply


def _rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _memory(emulator: IndexedEmulator) -> dict[str, Any]:
    calendars, events = emulator.seeded.cache_size()
    return {
        "rss_mib": round(_rss_mib(), 1),
        "generated": emulator.seeded.generated,
        "cached_calendars": calendars,
        "cached_events": events,
        "stored": emulator.stored_count(),
    }


def _forget_bodies(emulator: IndexedEmulator, stop: threading.Event) -> None:
    """Keep memory flat over a long run: nothing here reads the recorded requests, bodies or
    mails, and the call log is folded into counts by kind."""
    while not stop.wait(10.0):
        with emulator._lock:
            emulator.requests = []
            emulator.token_requests = []
            emulator.notified = []
            calls, emulator.calls = emulator.calls, []
            emulator.counted.update(_kind(m, p) for m, p in calls)
            emulator.api_calls_counted += sum(1 for _, p in calls if p.startswith("/calendar/v3/"))


def _serve(emulator: IndexedEmulator, commands: IO[str], out: IO[str]) -> None:
    for line in commands:
        words = line.split()
        reply: dict[str, Any]
        if words == ["counts"]:
            reply = _counts(emulator)
        elif words == ["memory"]:
            reply = _memory(emulator)
        elif words == ["stats"]:
            reply = _stats(emulator)
        else:
            reply = {"error": f"unknown command {line.strip()!r}"}
        out.write(json.dumps(reply) + "\n")
        out.flush()


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m bench.pipeline_emulator SPEC.json", file=sys.stderr)
        return 2
    began = time.monotonic()
    spec = json.loads(Path(args[0]).read_text(encoding="utf-8"))
    emulator = IndexedEmulator(SeededCalendars(spec))
    emulator.start()
    stop = threading.Event()
    threading.Thread(target=_forget_bodies, args=(emulator, stop), daemon=True).start()
    hello = {
        "base_url": emulator.base_url,
        "events": emulator.seeded.total,
        "people": len(emulator.seeded.people),
        "startup_s": round(time.monotonic() - began, 2),
    }
    print(json.dumps(hello), flush=True)
    try:
        _serve(emulator, sys.stdin, sys.stdout)
    finally:
        stop.set()
        emulator.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
