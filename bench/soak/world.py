"""The organisation the soak books for: people, their policy files and their calendars.

Every user lists ``stakeholders`` people: all the shared "hub" stakeholders (everyone wants
time with them, so their slots are contested), a partner for users in mutual pairs (each lists
the other: the pair must get one meeting, not two), now and then another user who does not list
them back, and colleagues from a shared pool. Zones and working hours are a London/Berlin/New
York mix; every calendar already holds some meetings (standups, one-off meetings, focus time
marked free). Policies are in auto mode with an hour's notice, so bookings happen at once.

Users join in waves (:attr:`User.wave`): a first group when the soak starts, then a few at a
time while it runs (their policy files appear then), so bookings keep racing each other all
through the run instead of only in its first minute. Partners in a pair join together.

Deterministic for a given seed and start time.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

__all__ = ["DOMAIN", "Person", "User", "World", "build_world"]

DOMAIN = "corp.example"

#: (zone, working hours as a policy mapping, weight when drawing a zone)
_ZONES: tuple[tuple[str, dict[str, str], float], ...] = (
    ("Europe/London", {"mon-thu": "09:00-17:30", "fri": "09:00-15:00"}, 0.55),
    ("Europe/Berlin", {"mon-fri": "08:30-16:30"}, 0.25),
    ("America/New_York", {"mon-fri": "09:00-17:00"}, 0.20),
)
_FIRST = (
    "Alex", "Bea", "Chen", "Dana", "Eli", "Femi", "Gus", "Hana", "Ivo", "Jun", "Kai", "Lea", "Mo",
    "Nia", "Oto", "Pia", "Quin", "Raj", "Sol", "Tia", "Uma", "Vik", "Wen", "Xia", "Yul", "Zoe",
)  # fmt: skip
_LAST = ("Doe", "Ito", "Lee", "Moss", "Park", "Ruiz", "Shaw", "Tan", "Vega", "Wolf")
_DAYS = {"mon": 0, "tue": 1, "wed": 2, "thu": 3, "fri": 4, "sat": 5, "sun": 6}


@dataclass(frozen=True)
class Person:
    email: str
    name: str
    timezone: str
    #: Working hours as written in a policy: ``{"mon-thu": "09:00-17:30", "fri": ...}``.
    hours: dict[str, str]

    def flow_hours(self) -> str:
        return "{" + ", ".join(f'{k}: "{v}"' for k, v in self.hours.items()) + "}"

    def day_hours(self, day: date) -> tuple[time, time] | None:
        """This person's working hours on ``day`` (local), or None on a day off."""
        for days, span in self.hours.items():
            first, _, last = days.partition("-")
            lo, hi = _DAYS[first], _DAYS[last or first]
            if lo <= day.weekday() <= hi:
                a, b = span.split("-")
                return time.fromisoformat(a), time.fromisoformat(b)
        return None


@dataclass(frozen=True)
class User:
    """A policy owner and the people their policy lists (hubs first)."""

    person: Person
    stakeholders: tuple[Person, ...]
    hub_emails: frozenset[str]
    video: str
    #: When the user's policy file appears: 0 at the start, then 1, 2, ... during the run.
    wave: int = 0

    def policy_text(self) -> str:
        p = self.person
        lines = [
            f"owner: {{email: {p.email}, name: {p.name}, timezone: {p.timezone}}}",
            "calendar: {provider: google}",
            'meeting: {kind: coffee, duration: 30m, location: "Level 2 café", '
            f"video: {self.video}}}",
            "availability:",
            f"  working_hours: {p.flow_hours()}",
            "  min_notice: 1h",
            "  horizon: 14d",
            "  buffer: 10m",
            "  max_per_day: 2",
            "  max_per_week: 6",
            "tiers:",
            "  mentor: {every: 6w, mode: auto}",
            "  peer: {every: 4w, mode: auto}",
            "stakeholders:",
        ]
        for s in self.stakeholders:
            tier = "mentor" if s.email in self.hub_emails else "peer"
            lines.append(
                f"  - {{email: {s.email}, name: {s.name}, tier: {tier}, mode: auto, "
                f"timezone: {s.timezone}, working_hours: {s.flow_hours()}}}"
            )
        lines.append(f"allowed_domains: [{DOMAIN}]")
        return "\n".join(lines) + "\n"


@dataclass
class World:
    users: list[User]
    hubs: list[Person]
    colleagues: list[Person]
    #: Users who list each other, as (lower email, higher email).
    mutual_pairs: list[tuple[str, str]]
    #: Events already on the calendars: (calendar e-mail, Google event body).
    seeded: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    @property
    def owners(self) -> list[str]:
        return [u.person.email for u in self.users]

    def people(self) -> list[Person]:
        return [u.person for u in self.users] + self.hubs + self.colleagues

    @property
    def waves(self) -> int:
        return 1 + max(u.wave for u in self.users)

    def in_wave(self, wave: int) -> list[User]:
        return [u for u in self.users if u.wave == wave]

    def write_policies(self, policy_dir: Path, *, wave: int | None = None) -> None:
        """Write the policy files of one wave's users (None: everyone's)."""
        policy_dir.mkdir(parents=True, exist_ok=True)
        for user in self.users if wave is None else self.in_wave(wave):
            (policy_dir / f"{user.person.email.split('@')[0]}.yaml").write_text(
                user.policy_text(), encoding="utf-8"
            )

    def write_calendars(self, path: Path) -> None:
        """What the emulator process loads: every calendar, and the events already on them."""
        data = {
            "calendars": [[p.email, p.timezone] for p in self.people()],
            "events": [[email, body] for email, body in self.seeded],
        }
        path.write_text(json.dumps(data), encoding="utf-8")


def build_world(
    *,
    users: int,
    stakeholders: int = 10,
    hubs: int = 6,
    seed: int = 1,
    start: datetime,
    waves: int = 1,
    first_share: float = 0.4,
    seed_calendars: bool = True,
) -> World:
    """``users`` policies of ``stakeholders`` people each (``hubs`` of them shared by all).

    With ``waves`` > 1, ``first_share`` of the users are in wave 0 and the others are spread
    evenly over the later waves. ``seed_calendars=False`` leaves :attr:`World.seeded` empty
    (``bench.pipeline`` generates its own calendars); the users are the same either way.
    """
    if users < 2:
        raise ValueError("the soak needs at least 2 users")
    if stakeholders < hubs + 2:
        raise ValueError(f"--stakeholders must leave room beside the {hubs} hubs (at least +2)")
    rng = random.Random(seed)
    names = _Names(rng)

    def person(local: str) -> Person:
        zone, hours, _ = rng.choices(_ZONES, weights=[z[2] for z in _ZONES])[0]
        return Person(f"{local}@{DOMAIN}", names.next(), zone, dict(hours))

    owners = [person(f"u{i:02d}") for i in range(users)]
    hub_people = [person(f"hub{i}") for i in range(hubs)]
    colleagues = [person(f"c{i:02d}") for i in range(max(12, users, 2 * stakeholders))]
    # ~40% of the users in mutual pairs: u00<->u01, u02<->u03, ...
    paired = 2 * ((users * 2 // 5) // 2)
    partner = {i: i ^ 1 for i in range(paired)}
    pairs = [(owners[i].email, owners[i + 1].email) for i in range(0, paired, 2)]
    wave_of = _waves(users, paired, waves, first_share, rng)
    colleague_emails = {c.email for c in colleagues}
    out: list[User] = []
    for i, owner in enumerate(owners):
        listed: list[Person] = list(hub_people)
        if i in partner:
            listed.append(owners[partner[i]])
        # Every third user also lists a user five further on, who never lists them back.
        j = (i + 5) % users
        lists_back = j % 3 == 0 and (j + 5) % users == i
        if i % 3 == 0 and j not in (i, partner.get(i)) and not lists_back:
            listed.append(owners[j])
        # The pool is the colleagues not listed yet: all of them, as only hubs and users are
        # listed so far (filtering N colleagues for each of N users was quadratic).
        if any(p.email in colleague_emails for p in listed):
            pool = [c for c in colleagues if c not in listed]
        else:
            pool = colleagues
        listed += rng.sample(pool, stakeholders - len(listed))
        out.append(
            User(
                owner,
                tuple(listed),
                frozenset(h.email for h in hub_people),
                video="meet" if i % 2 else "none",
                wave=wave_of[i],
            )
        )
    world = World(out, hub_people, colleagues, pairs)
    if seed_calendars:
        world.seeded = _seed_calendars(world.people(), rng, start)
    return world


def _waves(
    users: int, paired: int, waves: int, first_share: float, rng: random.Random
) -> dict[int, int]:
    """User index -> wave; the users of a mutual pair (2k, 2k+1 < ``paired``) share one."""
    units = [[i, i + 1] for i in range(0, paired, 2)] + [[i] for i in range(paired, users)]
    rng.shuffle(units)
    out: dict[int, int] = {}
    first = round(users * first_share) if waves > 1 else users
    later = 0
    for unit in units:
        if len(out) < first:
            wave = 0
        else:
            wave = 1 + later % (waves - 1)
            later += 1
        out.update({i: wave for i in unit})
    return out


class _Names:
    def __init__(self, rng: random.Random) -> None:
        self._names = [f"{f} {last}" for last in _LAST for f in _FIRST]
        rng.shuffle(self._names)
        self._i = 0

    def next(self) -> str:
        name = self._names[self._i % len(self._names)]
        self._i += 1
        return name


def _seed_calendars(
    people: list[Person], rng: random.Random, start: datetime
) -> list[tuple[str, dict[str, Any]]]:
    """A working week's worth of ordinary meetings on every calendar, over the horizon.

    Half the people have a 15-minute standup every working day; most days bring one or two
    meetings of 30-60 minutes on a quarter hour; some people block focus time marked free
    (transparent: it must not block a booking).
    """
    events: list[tuple[str, dict[str, Any]]] = []
    first = start.astimezone(UTC).date()
    for p in people:
        zone = ZoneInfo(p.timezone)
        standup = rng.random() < 0.5
        for offset in range(16):
            day = first + timedelta(days=offset)
            hours = p.day_hours(day)
            if hours is None:
                continue
            open_at = datetime.combine(day, hours[0], zone)
            close_at = datetime.combine(day, hours[1], zone)
            if standup:
                at = open_at + timedelta(minutes=30)
                events.append((p.email, _event("Standup", at, 15, p.timezone)))
            for _ in range(rng.choice((0, 1, 1, 2))):
                length = rng.choice((30, 45, 60))
                slots = int((close_at - open_at).total_seconds() // 900) - length // 15
                at = open_at + timedelta(minutes=15 * rng.randrange(max(1, slots)))
                events.append((p.email, _event("Project sync", at, length, p.timezone)))
            if rng.random() < 0.15:
                at = open_at + timedelta(hours=1)
                events.append(
                    (p.email, _event("Focus time", at, 120, p.timezone, transparent=True))
                )
    return events


def _event(
    summary: str, start: datetime, minutes: int, zone: str, *, transparent: bool = False
) -> dict[str, Any]:
    end = start + timedelta(minutes=minutes)
    body: dict[str, Any] = {
        "summary": summary,
        "start": {"dateTime": start.isoformat(), "timeZone": zone},
        "end": {"dateTime": end.isoformat(), "timeZone": zone},
    }
    if transparent:
        body["transparency"] = "transparent"
    return body
