"""Write the sample organisation's calendars to ``examples/calendars/`` (deterministic).

Run ``python examples/make_calendars.py`` after changing this script; the ``.ics`` files are
committed so the demo and the tests need no generation step. The same seed always writes the
same bytes (``tests/unit/test_ics_corpus.py`` checks that).

What is in there, all in corp.example:

* Recurring weekly meetings (RRULE without UNTIL, first week 2026-09-07, so any future week has
  them): team standups, 1:1s, team syncs, focus blocks (some TRANSP:TRANSPARENT), lunch, and
  per-person project meetings filling each week to roughly 15–25 busy hours.
* EXDATEs (Thanksgiving, Christmas) and RECURRENCE-ID overrides (moved instances).
* Invites answered TENTATIVE, left NEEDS-ACTION, and DECLINED; a STATUS:CANCELLED meeting.
* All-day events: a transparent public holiday and an out-of-office week
  (``X-MICROSOFT-CDO-BUSYSTATUS:OOF``).
* Past one-off meetings of Alex with some stakeholders (organic contact): Kim 2026-09-15,
  Sam 2026-10-20, Maria 2026-11-03; Jon declined his (2026-10-08) and Chloe's was cancelled
  (2026-11-10), so those two do not count.
* Tom's file is a Google-style export: ``X-WR-TIMEZONE:America/Chicago`` with floating times.
* dana@corp.example deliberately has no file.
"""

from __future__ import annotations

import random
import sys
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import icalendar

__all__ = ["PEOPLE", "build_calendars", "main"]

DOMAIN = "corp.example"
SEED = 20260907
FIRST_MONDAY = date(2026, 9, 7)
STAMP = datetime(2026, 9, 1, tzinfo=UTC)
#: VTIMEZONE definitions cover these dates (icalendar's own default ends in 2038 too).
TZ_FIRST, TZ_LAST = date(2026, 1, 1), date(2038, 1, 1)
PRODID = "-//goodwill//sample organisation//EN"
#: Tom's calendar is written as Google exports it (X-WR-TIMEZONE, floating times).
GOOGLE_STYLE = "tom"

PEOPLE: dict[str, tuple[str, str]] = {
    "alex": ("Alex Doe", "Europe/London"),
    "priya": ("Priya Shah", "Europe/London"),
    "sam": ("Sam Lee", "America/New_York"),
    "kim": ("Kim Ito", "Asia/Tokyo"),
    "maria": ("Maria Garcia", "Europe/Madrid"),
    "jon": ("Jon Berg", "Europe/Oslo"),
    "lena": ("Lena Novak", "Europe/Berlin"),
    "omar": ("Omar Haddad", "Europe/London"),
    "chloe": ("Chloe Martin", "Europe/Paris"),
    "raj": ("Raj Patel", "Asia/Kolkata"),
    "tom": ("Tom Becker", "America/Chicago"),
}

WEEKDAYS = ("MO", "TU", "WE", "TH", "FR")


def email(slug: str) -> str:
    return f"{slug}@{DOMAIN}"


def zone(slug: str) -> ZoneInfo:
    return ZoneInfo(PEOPLE[slug][1])


@dataclass
class Meeting:
    """One VEVENT series (or one-off) and who has it on their calendar.

    ``organizer`` None means a personal entry (no ORGANIZER/ATTENDEE, only on ``owner``'s file).
    """

    uid: str
    summary: str
    start: datetime | date
    end: datetime | date
    owner: str
    organizer: str | None = None
    attendees: dict[str, str] = field(default_factory=dict)  # slug -> PARTSTAT
    byday: tuple[str, ...] = ()
    interval: int = 1
    exdates: list[datetime] = field(default_factory=list)
    moves: list[tuple[datetime, datetime, datetime]] = field(default_factory=list)
    transparent: bool = False
    status: str | None = None
    busystatus: str | None = None
    location: str | None = None

    @property
    def participants(self) -> list[str]:
        return [self.owner] if self.organizer is None else [self.organizer, *self.attendees]


class Week:
    """Which local half-hours of a Mon–Fri week are taken, to place meetings without clashes."""

    def __init__(self) -> None:
        self.taken: set[tuple[int, int]] = set()
        self.opaque_minutes = 0

    @staticmethod
    def _slots(day: int, start: time, minutes: int) -> list[tuple[int, int]]:
        first = (start.hour * 60 + start.minute) // 30
        return [(day, first + i) for i in range((minutes + 29) // 30)]

    def free(self, day: int, start: time, minutes: int) -> bool:
        return not any(s in self.taken for s in self._slots(day, start, minutes))

    def take(self, day: int, start: time, minutes: int, *, opaque: bool = True) -> None:
        self.taken.update(self._slots(day, start, minutes))
        if opaque:
            self.opaque_minutes += minutes


class Organisation:
    def __init__(self) -> None:
        self.rng = random.Random(SEED)
        self.meetings: list[Meeting] = []
        self.weeks = {slug: Week() for slug in PEOPLE}
        self.counter = 0

    def uid(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}-{self.counter:03d}@{DOMAIN}"

    def local(self, slug: str, day: date, at: time) -> datetime:
        return datetime.combine(day, at, tzinfo=zone(slug))

    def weekly(
        self,
        summary: str,
        organizer: str | None,
        owner: str,
        days: tuple[int, ...],
        at: time,
        minutes: int,
        *,
        attendees: dict[str, str] | None = None,
        interval: int = 1,
        transparent: bool = False,
        location: str | None = None,
    ) -> Meeting:
        """A weekly series from the first week, in the organizer's (or owner's) zone."""
        host = organizer or owner
        first = FIRST_MONDAY + timedelta(days=days[0])
        start = self.local(host, first, at)
        meeting = Meeting(
            uid=self.uid("weekly"),
            summary=summary,
            start=start,
            end=start + timedelta(minutes=minutes),
            owner=owner,
            organizer=organizer,
            attendees=dict(attendees or {}),
            byday=tuple(WEEKDAYS[d] for d in days),
            interval=interval,
            transparent=transparent,
            location=location,
        )
        self.meetings.append(meeting)
        for slug in meeting.participants:
            declined = meeting.attendees.get(slug) == "DECLINED"
            local_start = start.astimezone(zone(slug))
            shift = (local_start.date() - start.date()).days
            for d in days:
                # Weight biweekly series by half so the weekly estimate stays honest.
                self.weeks[slug].take(
                    (d + shift) % 7,
                    local_start.time(),
                    minutes // interval,
                    opaque=not (transparent or declined),
                )
        return meeting

    def one_off(
        self,
        summary: str,
        organizer: str | None,
        owner: str,
        day: date,
        at: time,
        minutes: int,
        *,
        attendees: dict[str, str] | None = None,
        status: str | None = None,
        location: str | None = None,
    ) -> Meeting:
        start = self.local(organizer or owner, day, at)
        meeting = Meeting(
            uid=self.uid("meeting"),
            summary=summary,
            start=start,
            end=start + timedelta(minutes=minutes),
            owner=owner,
            organizer=organizer,
            attendees=dict(attendees or {}),
            status=status,
            location=location,
        )
        self.meetings.append(meeting)
        return meeting

    def all_day(
        self,
        summary: str,
        owner: str,
        first: date,
        last: date,
        *,
        transparent: bool,
        busystatus: str | None = None,
    ) -> Meeting:
        meeting = Meeting(
            uid=self.uid("allday"),
            summary=summary,
            start=first,
            end=last + timedelta(days=1),
            owner=owner,
            transparent=transparent,
            busystatus=busystatus,
        )
        self.meetings.append(meeting)
        return meeting


def plan() -> Organisation:
    """Decide every meeting of the organisation (pure; randomness from the fixed seed)."""
    org = Organisation()
    accepted = "ACCEPTED"
    mon_fri = (0, 1, 2, 3, 4)

    # Teams and their rituals (organizer's zone).
    standup = org.weekly(
        "Platform standup",
        "alex",
        "alex",
        mon_fri,
        time(9, 30),
        15,
        attendees={"priya": accepted, "omar": accepted},
    )
    standup.exdates.append(org.local("alex", date(2026, 12, 25), time(9, 30)))
    moved_from = org.local("alex", date(2026, 12, 2), time(9, 30))
    moved_to = org.local("alex", date(2026, 12, 2), time(10, 30))
    standup.moves.append((moved_from, moved_to, moved_to + timedelta(minutes=15)))

    finance = org.weekly(
        "Finance standup", "sam", "sam", mon_fri, time(9, 0), 15, attendees={"tom": accepted}
    )
    finance.exdates.append(org.local("sam", date(2026, 11, 26), time(9, 0)))  # Thanksgiving
    org.weekly(
        "EMEA pipeline review",
        "chloe",
        "chloe",
        (0, 2),
        time(10, 0),
        60,
        attendees={"maria": accepted, "jon": accepted, "lena": accepted},
    )
    org.weekly(
        "APAC sync",
        "kim",
        "kim",
        (1,),
        time(14, 0),
        60,
        attendees={"raj": "TENTATIVE"},  # Raj never confirmed the series
    )
    org.weekly(
        "Platform team sync",
        "alex",
        "alex",
        (2,),
        time(14, 0),
        60,
        attendees={"priya": accepted, "omar": accepted},
        location="Room Thames",
    )

    # 1:1s.
    one_on_one = org.weekly(
        "Alex / Priya 1:1", "alex", "alex", (3,), time(11, 0), 30, attendees={"priya": accepted}
    )
    from_ = org.local("alex", date(2026, 12, 10), time(11, 0))
    to = org.local("alex", date(2026, 12, 10), time(15, 0))
    one_on_one.moves.append((from_, to, to + timedelta(minutes=30)))
    org.weekly(
        "Alex / Omar 1:1",
        "alex",
        "alex",
        (1,),
        time(15, 0),
        30,
        attendees={"omar": accepted},
        interval=2,
    )
    org.weekly("Sam / Tom 1:1", "sam", "sam", (2,), time(10, 0), 30, attendees={"tom": accepted})
    org.weekly(
        "Chloe / Maria 1:1", "chloe", "chloe", (4,), time(9, 30), 30, attendees={"maria": accepted}
    )
    org.weekly("Lena / Jon 1:1", "lena", "lena", (0,), time(14, 0), 30, attendees={"jon": accepted})

    # Personal blocks: lunch and focus time (some transparent, as people mark them). Priya
    # books lunches with people (her policy is kind: lunch), so her own lunch hour shows free;
    # so does Alex's (a lunch group in the policy), but it still counts as busy time below so
    # the rest of the organisation is drawn exactly as before.
    for i, slug in enumerate(PEOPLE):
        lunch_at = time(12, 30) if i % 3 else time(12, 0)
        free_lunch = i % 4 == 3 or slug in ("priya", "alex")
        org.weekly("Lunch", None, slug, mon_fri, lunch_at, 45, transparent=free_lunch)
        if slug == "alex":
            org.weeks[slug].opaque_minutes += 45 * len(mon_fri)
        focus_day = org.rng.choice(((1, 3), (0, 2), (2, 4)))
        for day in focus_day:
            at = time(org.rng.choice((13, 14, 15)), 30)
            if org.weeks[slug].free(day, at, 120):
                org.weekly("Focus time", None, slug, (day,), at, 120, transparent=(i % 2 == 1))

    # Project meetings until each week holds ~18 opaque hours.
    topics = ("Roadmap", "Hiring loop", "Incident review", "Design crit", "Customer call prep")
    for slug in PEOPLE:
        week = org.weeks[slug]
        attempts = 0
        while week.opaque_minutes < 18 * 60 and attempts < 200:
            attempts += 1
            day = org.rng.randrange(5)
            at = time(org.rng.randrange(9, 17), org.rng.choice((0, 30)))
            minutes = org.rng.choice((30, 60, 60, 90))
            if at.hour * 60 + at.minute + minutes > 17 * 60 + 30 or not week.free(day, at, minutes):
                continue
            topic = org.rng.choice(topics)
            org.weekly(f"{topic} ({PEOPLE[slug][0].split()[0]})", None, slug, (day,), at, minutes)

    # All-day entries.
    org.all_day(
        "Inmaculada Concepción (holiday)",
        "maria",
        date(2026, 12, 8),
        date(2026, 12, 8),
        transparent=True,
    )
    org.all_day("Thanksgiving", "sam", date(2026, 11, 26), date(2026, 11, 26), transparent=True)
    org.all_day(
        "Out of office",
        "lena",
        date(2026, 12, 14),
        date(2026, 12, 18),
        transparent=False,
        busystatus="OOF",
    )

    # One-offs in Nov–Dec 2026: invites answered, unanswered, tentative, declined, cancelled.
    org.one_off(
        "Q1 planning",
        "alex",
        "alex",
        date(2026, 12, 1),
        time(13, 0),
        60,
        attendees={"priya": accepted, "omar": "TENTATIVE", "jon": "DECLINED"},
    )
    org.one_off(
        "Budget pre-read",
        "sam",
        "sam",
        date(2026, 12, 3),
        time(11, 0),
        60,
        attendees={"tom": "NEEDS-ACTION", "maria": accepted},
    )
    org.one_off(
        "Vendor demo",
        "omar",
        "omar",
        date(2026, 12, 3),
        time(10, 0),
        60,
        status="CANCELLED",
        attendees={"priya": accepted},
    )
    org.one_off(
        "Data platform RFC review",
        "jon",
        "jon",
        date(2026, 12, 9),
        time(15, 0),
        60,
        attendees={"lena": "NEEDS-ACTION", "raj": accepted},
    )
    org.one_off(
        "Legal sign-off",
        "chloe",
        "chloe",
        date(2026, 11, 30),
        time(16, 0),
        30,
        attendees={"maria": accepted},
    )
    org.one_off(
        "Offsite logistics",
        "kim",
        "kim",
        date(2026, 12, 4),
        time(10, 0),
        60,
        attendees={"raj": "NEEDS-ACTION"},
    )
    org.one_off("Dentist", None, "tom", date(2026, 12, 2), time(8, 0), 60)
    org.one_off(
        "Year-end review",
        "lena",
        "lena",
        date(2026, 12, 11),
        time(11, 0),
        90,
        attendees={"jon": accepted, "chloe": "TENTATIVE"},
    )

    # Past meetings of Alex with stakeholders (organic contact).
    org.one_off(
        "Intro: Kim / Alex",
        "alex",
        "alex",
        date(2026, 9, 15),
        time(8, 30),
        30,
        attendees={"kim": accepted},
    )
    org.one_off(
        "Forecast walkthrough",
        "sam",
        "sam",
        date(2026, 10, 20),
        time(10, 0),
        45,
        attendees={"alex": accepted},
    )
    org.one_off(
        "Budget review",
        "alex",
        "alex",
        date(2026, 11, 3),
        time(11, 0),
        60,
        attendees={"maria": accepted},
    )
    org.one_off(
        "Roadmap Q&A",
        "alex",
        "alex",
        date(2026, 10, 8),
        time(14, 0),
        30,
        attendees={"jon": "DECLINED"},
    )
    org.one_off(
        "Coffee",
        "alex",
        "alex",
        date(2026, 11, 10),
        time(16, 0),
        30,
        status="CANCELLED",
        attendees={"chloe": accepted},
    )
    # Alex's lunch shows free (above): a weekly review on Fridays, a no-meeting day for
    # goodwill, keeps Alex's busy week in the 15-25 hours of the others. Last, so every other
    # meeting keeps its UID.
    if org.weeks["alex"].free(4, time(14, 0), 60):
        org.weekly("Weekly review (Alex)", None, "alex", (4,), time(14, 0), 60)
    return org


def _address(slug: str, partstat: str | None = None) -> icalendar.vCalAddress:
    address = icalendar.vCalAddress(f"mailto:{email(slug)}")
    address.params["CN"] = PEOPLE[slug][0]
    if partstat is not None:
        address.params["ROLE"] = "REQ-PARTICIPANT"
        address.params["PARTSTAT"] = partstat
        if partstat == "NEEDS-ACTION":
            address.params["RSVP"] = "TRUE"
    return address


def _as_written(value: datetime | date, slug: str) -> datetime | date:
    """Google-style files hold floating wall-clock times of the calendar's zone."""
    if slug == GOOGLE_STYLE and isinstance(value, datetime):
        return value.astimezone(zone(slug)).replace(tzinfo=None)
    return value


def _vevent(meeting: Meeting, slug: str) -> list[icalendar.Event]:
    event = icalendar.Event()
    event.add("UID", meeting.uid)
    event.add("DTSTAMP", STAMP)
    event.add("SEQUENCE", 0)
    event.add("DTSTART", _as_written(meeting.start, slug))
    event.add("DTEND", _as_written(meeting.end, slug))
    event.add("SUMMARY", meeting.summary)
    if meeting.location:
        event.add("LOCATION", meeting.location)
    if meeting.byday:
        rule: dict[str, object] = {"FREQ": "WEEKLY", "BYDAY": list(meeting.byday)}
        if meeting.interval != 1:
            rule["INTERVAL"] = meeting.interval
        event.add("RRULE", rule)
    for exdate in meeting.exdates:
        event.add("EXDATE", _as_written(exdate, slug))
    event.add("TRANSP", "TRANSPARENT" if meeting.transparent else "OPAQUE")
    if meeting.busystatus:
        event.add("X-MICROSOFT-CDO-BUSYSTATUS", meeting.busystatus)
    event.add("STATUS", meeting.status or "CONFIRMED")
    if meeting.organizer is not None:
        event.add("ORGANIZER", _address(meeting.organizer))
        for attendee, partstat in meeting.attendees.items():
            event.add("ATTENDEE", _address(attendee, partstat))
    events = [event]
    for recurrence_id, start, end in meeting.moves:
        moved = event.copy()
        for name in ("RRULE", "EXDATE", "DTSTART", "DTEND"):
            moved.pop(name, None)
        moved.add("RECURRENCE-ID", _as_written(recurrence_id, slug))
        moved.add("DTSTART", _as_written(start, slug))
        moved.add("DTEND", _as_written(end, slug))
        moved["SEQUENCE"] = 1
        events.append(moved)
    return events


def build_calendars() -> dict[str, bytes]:
    """Every person's file content, keyed by file name (``alex@corp.example.ics``)."""
    org = plan()
    files: dict[str, bytes] = {}
    for slug, (_name, tzid) in PEOPLE.items():
        calendar = icalendar.Calendar()
        calendar.add("PRODID", PRODID)
        calendar.add("VERSION", "2.0")
        calendar.add("CALSCALE", "GREGORIAN")
        if slug == GOOGLE_STYLE:
            calendar.add("METHOD", "PUBLISH")
            calendar.add("X-WR-CALNAME", email(slug))
            calendar.add("X-WR-TIMEZONE", tzid)
        for meeting in org.meetings:
            if slug in meeting.participants:
                for event in _vevent(meeting, slug):
                    calendar.add_component(event)
        # Own zone first, then the organizers' zones, sorted: icalendar's add_missing_timezones()
        # walks a set, whose order changes between runs. Floating (Google-style) files still
        # ship their zone's VTIMEZONE, as Google's exports do.
        tzids = [tzid, *sorted(calendar.get_missing_tzids() - {tzid})]
        calendar.subcomponents[0:0] = [
            icalendar.Timezone.from_tzid(t, first_date=TZ_FIRST, last_date=TZ_LAST) for t in tzids
        ]
        files[f"{email(slug)}.ics"] = calendar.to_ical()
    return files


def main(argv: list[str] | None = None) -> int:
    """Write the files into ``examples/calendars`` (or the directory given as argument)."""
    args = sys.argv[1:] if argv is None else argv
    target = Path(args[0]) if args else Path(__file__).resolve().parent / "calendars"
    target.mkdir(parents=True, exist_ok=True)
    for name, data in build_calendars().items():
        (target / name).write_bytes(data)
        print(f"wrote {target / name} ({len(data)} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
