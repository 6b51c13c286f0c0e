"""Counting at the calendar: what the soak's table says, read back from the emulator.

Events are read with the real Google client library (``events.list`` on each owner's primary
calendar, as that owner through the service account), never from goodwill's database. A
goodwill event is one its organizer sees with the private property ``goodwill=1``. The
database is read only to match events to meetings and to find meetings left half-way.

Columns (the targets are 0 for all but the first):

- meetings booked: live goodwill events;
- events per meeting (max): live events carrying one meeting's idempotency key (1 is right);
- people double-booked: people with two live goodwill events that overlap in time, as organizer
  or attendee;
- pairs booked twice: two people with more than one live goodwill event between them, whoever
  organised each;
- lost: booked meetings with no live event, plus live events no booked meeting accounts for
  (no meeting with that key, the meeting not booked, or booked at another time);
- stuck: meetings still ``approved`` or ``booking`` after the settle.
"""

from __future__ import annotations

import itertools
import json
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from connectors.google_events import event_bounds, google_event_id, rfc3339
from scheduler.core.states import MeetingState
from scheduler.store import Meeting, Store
from tests.integration.reliability_support import GoogleEndpoints

__all__ = [
    "LiveEvent",
    "Tally",
    "diagnose",
    "read_goodwill_events",
    "recovery_paths",
    "render_table",
    "tally",
]

_S = MeetingState
#: States in which a meeting has its event on the calendars.
ON_CALENDAR = frozenset({_S.BOOKED, _S.ACCEPTED, _S.TENTATIVE, _S.COMPLETED})
STUCK = frozenset({_S.APPROVED, _S.BOOKING})
COLUMNS = (
    "meetings booked",
    "events per meeting (max)",
    "people double-booked",
    "pairs booked twice",
    "lost",
    "stuck",
)


@dataclass(frozen=True)
class LiveEvent:
    event_id: str
    key: str
    organizer: str
    attendees: frozenset[str]
    start: datetime
    end: datetime
    created: str

    @property
    def people(self) -> frozenset[str]:
        return self.attendees | {self.organizer}

    def describe(self) -> str:
        who = ", ".join(sorted(self.attendees))
        return (
            f"event {self.event_id[:12]}… {self.organizer} -> {who} "
            f"{self.start:%a %d %b %H:%M}-{self.end:%H:%M}Z (created {self.created})"
        )


# -- reading the calendars ------------------------------------------------------------------


def read_goodwill_events(
    endpoints: GoogleEndpoints,
    service_account: Path,
    owners: Sequence[str],
    *,
    time_min: datetime,
    time_max: datetime,
) -> list[LiveEvent]:
    """Every live goodwill event organised on the owners' calendars in [time_min, time_max)."""
    import google_auth_httplib2
    import httplib2
    from googleapiclient.discovery import build

    from connectors.google import service_account_credentials

    info = json.loads(service_account.read_text())
    out: list[LiveEvent] = []
    for owner in owners:
        creds = service_account_credentials(info, owner, endpoints.token_uri)
        http = google_auth_httplib2.AuthorizedHttp(creds, http=httplib2.Http(timeout=30))
        service = build(
            "calendar",
            "v3",
            http=http,
            static_discovery=True,
            cache_discovery=False,
            client_options={"api_endpoint": endpoints.api_endpoint},
        )
        for item in _pages(service, time_min, time_max):
            event = _goodwill_event(item)
            if event is not None:
                out.append(event)
    return out


def _pages(service: Any, time_min: datetime, time_max: datetime) -> Iterator[dict[str, Any]]:
    token: str | None = None
    while True:
        params: dict[str, Any] = {
            "calendarId": "primary",
            "timeMin": rfc3339(time_min),
            "timeMax": rfc3339(time_max),
            "singleEvents": True,
            "showDeleted": False,
            "maxResults": 250,
        }
        if token:
            params["pageToken"] = token
        request = service.events().list(**params)
        page = _with_retries(request.execute)
        yield from page.get("items") or []
        token = page.get("nextPageToken")
        if not token:
            return


def _with_retries(call: Any, attempts: int = 4) -> dict[str, Any]:
    for attempt in range(attempts):
        try:
            result: dict[str, Any] = call()
            return result
        except Exception:
            if attempt == attempts - 1:
                raise
            time.sleep(1.0 + attempt)
    raise AssertionError("unreachable")


def _goodwill_event(item: dict[str, Any]) -> LiveEvent | None:
    private = (item.get("extendedProperties") or {}).get("private") or {}
    organizer = item.get("organizer") or {}
    if private.get("goodwill") != "1" or not organizer.get("self"):
        return None
    if item.get("status") == "cancelled":
        return None
    start, end, _ = event_bounds(item, "UTC")
    return LiveEvent(
        event_id=str(item["id"]),
        key=str(private.get("goodwillKey", "")),
        organizer=str(organizer.get("email", "")).lower(),
        attendees=frozenset(
            str(a.get("email", "")).lower()
            for a in item.get("attendees", [])
            if str(a.get("email", "")).lower() != str(organizer.get("email", "")).lower()
        ),
        start=start,
        end=end,
        created=str(item.get("created", "?")),
    )


# -- the tally ------------------------------------------------------------------------------


@dataclass
class Tally:
    run: str
    events: list[LiveEvent]
    meetings: list[Meeting]
    #: person -> the overlapping pairs of their events
    double_booked: dict[str, list[tuple[LiveEvent, LiveEvent]]] = field(default_factory=dict)
    pairs_twice: dict[frozenset[str], list[LiveEvent]] = field(default_factory=dict)
    per_meeting: Counter[str] = field(default_factory=Counter)
    missing: list[Meeting] = field(default_factory=list)
    strays: list[tuple[LiveEvent, str]] = field(default_factory=list)
    stuck: list[Meeting] = field(default_factory=list)

    @property
    def booked(self) -> int:
        return len(self.events)

    @property
    def max_per_meeting(self) -> int:
        return max(self.per_meeting.values(), default=0)

    @property
    def lost(self) -> int:
        return len(self.missing) + len(self.strays)

    def row(self) -> tuple[int, ...]:
        return (
            self.booked,
            self.max_per_meeting,
            len(self.double_booked),
            len(self.pairs_twice),
            self.lost,
            len(self.stuck),
        )

    @property
    def ok(self) -> bool:
        return (
            self.booked > 0
            and self.max_per_meeting <= 1
            and not self.double_booked
            and not self.pairs_twice
            and self.lost == 0
            and not self.stuck
        )

    def states(self) -> Counter[str]:
        return Counter(m.state.value for m in self.meetings)

    def endings(self) -> Counter[str]:
        """Why meetings ended unbooked (the last error, or the state), for the summary."""
        out: Counter[str] = Counter()
        for m in self.meetings:
            if m.state in (_S.FAILED, _S.EXPIRED):
                out[f"{m.state.value}: {(m.last_error or '-').split(':')[0][:40]}"] += 1
        return out


def tally(
    run: str, events: list[LiveEvent], meetings: list[Meeting], owner_of: dict[int, str]
) -> Tally:
    t = Tally(run, events, meetings)
    t.per_meeting = Counter(e.key for e in events)
    by_person: dict[str, list[LiveEvent]] = defaultdict(list)
    by_pair: dict[frozenset[str], list[LiveEvent]] = defaultdict(list)
    for e in events:
        for person in e.people:
            by_person[person].append(e)
        for other in e.attendees:
            by_pair[frozenset({e.organizer, other})].append(e)
    for person, mine in sorted(by_person.items()):
        clashes = [
            (a, b)
            for a, b in itertools.combinations(sorted(mine, key=lambda e: e.start), 2)
            if a.start < b.end and b.start < a.end
        ]
        if clashes:
            t.double_booked[person] = clashes
    t.pairs_twice = {pair: evs for pair, evs in by_pair.items() if len(evs) > 1}
    by_key = {m.idempotency_key: m for m in meetings}
    live_keys = {e.key for e in events}
    for m in meetings:
        if m.state in ON_CALENDAR and m.idempotency_key not in live_keys:
            t.missing.append(m)
        if m.state in STUCK:
            t.stuck.append(m)
    for e in events:
        found = by_key.get(e.key)
        if found is None:
            t.strays.append((e, "no meeting has its key"))
        elif found.state not in ON_CALENDAR:
            t.strays.append((e, f"its meeting {found.id} is {found.state.value}"))
        elif found.start.astimezone(UTC) != e.start or owner_of.get(found.user_id) != e.organizer:
            t.strays.append((e, f"its meeting {found.id} is at another time or owner"))
        elif e.event_id != google_event_id(found.idempotency_key):
            t.strays.append((e, f"its id is not the one meeting {found.id}'s key gives"))
    return t


def render_table(tallies: Iterable[Tally]) -> str:
    """The soak's table as Markdown (one row per run)."""
    rows = [["run", *COLUMNS]]
    rows += [[t.run, *(str(v) for v in t.row())] for t in tallies]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for n, r in enumerate(rows):
        pairs = enumerate(zip(r, widths, strict=True))
        cells = [c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in pairs]
        lines.append("| " + " | ".join(cells) + " |")
        if n == 0:
            lines.append(
                "|"
                + "|".join("-" * (w + 1) + (":" if i else "-") for i, w in enumerate(widths))
                + "|"
            )
    return "\n".join(lines)


#: Audit details that show a recovery path ran: (label, test on the detail text).
_PATHS: tuple[tuple[str, str], ...] = (
    ("lease expired, re-driven", "lease expired"),
    ("create in doubt", "create attempted"),
    ("found by key after a lost reply", "reconciled existing event"),
    ("slot taken", "slot_taken"),
    ("pair taken", "pair_taken"),
)


def recovery_paths(store: Store, meetings: Iterable[Meeting]) -> Counter[str]:
    """How often each recovery path ran, from the meetings' audit trails (``audit_log``).

    "create in doubt" counts announced creates (``create attempted``) not followed at once by
    ``booked``: the reply was lost, the worker died or its claim ran out, or a clash was seen
    after announcing. From then on the meeting holds its slot until a retry finds out.
    """
    out: Counter[str] = Counter()
    for m in meetings:
        trail = store.audit_trail(m.id)
        for n, entry in enumerate(trail):
            for label, needle in _PATHS:
                if needle not in entry.detail:
                    continue
                after = trail[n + 1] if n + 1 < len(trail) else None
                if needle != "create attempted" or after is None or after.to_state != "booked":
                    out[label] += 1
    return out


# -- when something is wrong ----------------------------------------------------------------


def diagnose(t: Tally, store: Store, owner_of: dict[int, str], log_dir: Path) -> str:
    """Every problem in ``t``, with the meetings behind it, their audit trails and log lines."""
    by_key = {m.idempotency_key: m for m in t.meetings}
    out: list[str] = []
    involved: dict[int, Meeting] = {}

    def meeting_of(e: LiveEvent) -> str:
        m = by_key.get(e.key)
        if m is None:
            return f"  {e.describe()}: no meeting"
        involved[m.id] = m
        return f"  {e.describe()}: meeting {m.id} ({m.state.value})"

    for person, clashes in t.double_booked.items():
        out.append(f"DOUBLE-BOOKED {person}:")
        for a, b in clashes:
            out += [meeting_of(a), meeting_of(b), "  --"]
    for pair, evs in t.pairs_twice.items():
        out.append(f"PAIR BOOKED TWICE {' & '.join(sorted(pair))}:")
        out += [meeting_of(e) for e in evs]
    for key, n in t.per_meeting.items():
        if n > 1:
            out.append(f"{n} EVENTS FOR ONE KEY {key}")
    for m in t.missing:
        involved[m.id] = m
        out.append(f"LOST meeting {m.id}: {m.state.value} in the database, no event")
    for e, why in t.strays:
        out.append(f"STRAY {e.describe()}: {why}")
        meeting_of(e)
    for m in t.stuck:
        involved[m.id] = m
        out.append(
            f"STUCK meeting {m.id}: {m.state.value}, attempts {m.attempts}, next attempt "
            f"{m.next_attempt_at}, lease until {m.lease_until}, error {m.last_error!r}"
        )
    logs = _log_lines(log_dir, set(involved))
    for m in sorted(involved.values(), key=lambda m: m.id):
        out.append("")
        out.append(
            f"meeting {m.id}: {owner_of.get(m.user_id, m.user_id)} -> {m.stakeholder_email} "
            f"{m.start.astimezone(UTC):%a %d %b %H:%M}Z, {m.state.value}, attempts {m.attempts}, "
            f"create attempted {m.create_attempted_at}, event id {m.provider_event_id}, "
            f"key {m.idempotency_key}"
        )
        for entry in store.audit_trail(m.id):
            move = f"{entry.from_state}->{entry.to_state}" if entry.to_state else "-"
            at = entry.at.isoformat(timespec="milliseconds")
            out.append(f"  {at} {entry.actor:8} {move:22} {entry.detail}")
        out += [f"  log {line}" for line in logs.get(m.id, [])]
    return "\n".join(out)


def _log_lines(log_dir: Path, ids: set[int]) -> dict[int, list[str]]:
    """Lines of the goodwill process logs that name one of these meetings."""
    if not ids:
        return {}
    out: dict[int, list[str]] = defaultdict(list)
    needles = {i: (f"meeting {i}:", f"meeting {i} ") for i in ids}
    for path in sorted(log_dir.glob("*.log")):
        for line in path.read_text(errors="replace").splitlines():
            for i, (a, b) in needles.items():
                if a in line or b in line:
                    out[i].append(f"[{path.stem}] {line[:300]}")
    return out
