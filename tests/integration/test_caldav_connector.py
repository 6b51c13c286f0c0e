"""The CalDAV connector against real servers: Radicale 3.9 and Xandikos (RFC 6638 scheduling).

Servers run in subprocesses on 127.0.0.1 (see ``caldav_servers.py``); each test uses fresh user
names so tests never see each other's events.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar
from uuid import uuid4

import httpx
import icalendar
import pytest

from connectors.caldav import CalDAVCalendar
from connectors.caldav_quirks import QUIRKS, quirks_for
from connectors.imip import ImipSender
from scheduler.core.busy import apply_busy_rules
from scheduler.core.clock import FixedClock
from scheduler.core.errors import (
    AuthorizationRevoked,
    ConfigurationError,
    ProviderUnavailable,
    RateLimited,
    ResourceGone,
)
from scheduler.core.intervals import Interval, normalise
from scheduler.core.model import (
    AttendeeStatus,
    BusyBlock,
    BusyQuery,
    BusyRules,
    EventDraft,
    EventStatus,
    Person,
    ShowAs,
)
from scheduler.settings import SmtpSettings
from tests.integration.caldav_servers import (  # noqa: F401  (fixtures)
    RadicaleServer,
    SmtpSink,
    XandikosServer,
    free_port,
    radicale_fixture,
    smtp_sink_fixture,
    unique_user,
    xandikos_fixture,
)

DAY = datetime(2027, 3, 2, tzinfo=UTC)
WINDOW = Interval(DAY, DAY + timedelta(days=1))


def _vevent(uid: str, start: datetime, end: datetime, *extra: str) -> str:
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//goodwill tests//EN",
        "BEGIN:VEVENT",
        f"UID:{uid}",
        "DTSTAMP:20270101T000000Z",
        f"DTSTART:{start:%Y%m%dT%H%M%SZ}",
        f"DTEND:{end:%Y%m%dT%H%M%SZ}",
        "SUMMARY:seeded",
        *extra,
        "END:VEVENT",
        "END:VCALENDAR",
        "",
    ]
    return "\r\n".join(lines)


def _put(url: str, body: str, *, auth: Any = None, headers: dict[str, str] | None = None) -> None:
    response = httpx.put(
        url,
        content=body.encode(),
        auth=auth,
        headers={"Content-Type": "text/calendar; charset=utf-8", **(headers or {})},
        timeout=10.0,
    )
    assert response.status_code in (201, 204), response.text


def _hrefs(url: str, *, auth: Any = None, headers: dict[str, str] | None = None) -> list[str]:
    body = '<D:propfind xmlns:D="DAV:"><D:prop><D:getetag/></D:prop></D:propfind>'
    response = httpx.request(
        "PROPFIND",
        url,
        content=body,
        auth=auth,
        headers={"Depth": "1", "Content-Type": "application/xml", **(headers or {})},
        timeout=10.0,
    )
    assert response.status_code == 207, response.text
    return [
        part.split("<", 1)[0]
        for part in response.text.split("href>")[1:]
        if part.split("<", 1)[0].endswith(".ics")
    ]


def _at(hour: int, minute: int = 0) -> datetime:
    return DAY.replace(hour=hour, minute=minute)


# -- Radicale ----------------------------------------------------------------------------------


class RadicalePeople:
    """Fresh organizer/attendee calendars on the shared Radicale."""

    def __init__(self, server: RadicaleServer) -> None:
        self.server = server
        org, att = unique_user("org"), unique_user("att")
        self.organizer = Person(f"{org}@corp.example", "Olga Org", "Europe/London")
        self.attendee = Person(f"{att}@corp.example", "Al Att", "America/New_York")
        self.org_cal = server.make_calendar(f"{org}/calendar/")
        self.att_cal = server.make_calendar(f"{att}/calendar/")
        self.auth = ("service", "secret")

    def connector(self, server: str = "radicale", **kwargs: Any) -> CalDAVCalendar:
        return CalDAVCalendar(
            self.server.url,
            "service",
            "secret",
            server=server,
            calendar_path="/{user}/calendar/",
            **kwargs,
        )

    def draft(self, key: str | None = None, hour: int = 14) -> EventDraft:
        return EventDraft(
            idempotency_key=key or f"k-{uuid4().hex[:10]}",
            organizer=self.organizer,
            attendee=self.attendee,
            start=_at(hour),
            end=_at(hour, 30),
            title="Coffee: Olga / Al",
            description="Catch up.",
            location="Level 2 café",
        )


@pytest.fixture
def people(radicale: RadicaleServer) -> RadicalePeople:
    return RadicalePeople(radicale)


def _seed_mixed(people: RadicalePeople, cal: str | None = None) -> None:
    """Busy, overlapping, tentative, transparent, cancelled and weekly events (the attendee's
    calendar unless ``cal`` says whose)."""
    cal = cal or people.att_cal
    auth = people.auth
    _put(cal + "busy.ics", _vevent("busy", _at(9), _at(10)), auth=auth)
    _put(cal + "overlap.ics", _vevent("overlap", _at(9, 30), _at(10, 30)), auth=auth)
    _put(cal + "tent.ics", _vevent("tent", _at(11), _at(12), "STATUS:TENTATIVE"), auth=auth)
    _put(cal + "transp.ics", _vevent("transp", _at(13), _at(14), "TRANSP:TRANSPARENT"), auth=auth)
    _put(cal + "cancel.ics", _vevent("cancel", _at(15), _at(16), "STATUS:CANCELLED"), auth=auth)
    # Weekly at 09:00 Berlin from before the window: the instance on DAY is 08:00Z (CET).
    weekly = "\r\n".join(
        [
            "BEGIN:VCALENDAR",
            "VERSION:2.0",
            "PRODID:-//goodwill tests//EN",
            "BEGIN:VEVENT",
            "UID:weekly",
            "DTSTAMP:20270101T000000Z",
            "DTSTART;TZID=Europe/Berlin:20270105T170000",
            "DTEND;TZID=Europe/Berlin:20270105T173000",
            "RRULE:FREQ=WEEKLY;BYDAY=TU",
            "END:VEVENT",
            "END:VCALENDAR",
            "",
        ]
    )
    _put(cal + "weekly.ics", weekly, auth=auth)


def _busy_intervals(blocks: list[BusyBlock]) -> list[Interval]:
    """What the default busy rules would block: not free, not cancelled."""
    return normalise(
        b.interval
        for b in blocks
        if b.show_as is not ShowAs.FREE and b.status is not EventStatus.CANCELLED
    )


def test_radicale_free_busy_report_maps_fbtypes(people: RadicalePeople) -> None:
    """Stakeholders (everyone after ``people[0]``) come from the free-busy REPORT: FBTYPEs
    mapped, no event detail, no keys. The owner (``people[0]``) is read by calendar-query, so
    their busy rules apply and our own event shows its key (the conflict watch needs that)."""
    _seed_mixed(people)
    _seed_mixed(people, people.org_cal)
    ours = people.draft(hour=14)
    assert quirks_for("radicale").supports_free_busy_report
    with people.connector() as cal:
        cal.create_event(ours)
        result = cal.busy(BusyQuery(WINDOW, (people.organizer, people.attendee)))
    blocks = result.blocks[people.attendee.email]
    assert result.unavailable == {}
    assert all(b.key is None for b in blocks)
    busy = [(b.start, b.end) for b in blocks if b.show_as is ShowAs.BUSY]
    tentative = [(b.start, b.end) for b in blocks if b.show_as is ShowAs.TENTATIVE]
    if quirks_for("radicale").merges_free_busy_overlaps:
        assert (_at(9), _at(10, 30)) in busy
    else:
        assert {(_at(9), _at(10)), (_at(9, 30), _at(10, 30))} <= set(busy)
    assert (_at(16), _at(16, 30)) in busy  # the weekly series, 17:00 Berlin = 16:00Z
    assert tentative == [(_at(11), _at(12))]
    # Transparent and cancelled time is not in a free-busy answer (Radicale's FREE line dropped).
    assert not any(b.interval.overlaps(Interval(_at(13), _at(14))) for b in blocks)
    assert not any(b.interval.overlaps(Interval(_at(15), _at(16))) for b in blocks)
    # The owner's side: the same events with their detail, and our event with its key.
    own = result.blocks[people.organizer.email]
    kinds = {(b.start.hour, b.show_as, b.status, b.key) for b in own}
    assert (13, ShowAs.FREE, EventStatus.CONFIRMED, None) in kinds
    assert (15, ShowAs.BUSY, EventStatus.CANCELLED, None) in kinds
    assert (11, ShowAs.BUSY, EventStatus.TENTATIVE, None) in kinds
    keyed = [(b.start, b.end) for b in own if b.key == ours.idempotency_key]
    assert keyed == [(_at(14), _at(14, 30))]
    assert _busy_intervals(own) == [
        Interval(_at(9), _at(10, 30)),
        Interval(_at(11), _at(12)),
        Interval(_at(14), _at(14, 30)),
        Interval(_at(16), _at(16, 30)),
    ]


def test_free_busy_report_and_calendar_query_agree(people: RadicalePeople) -> None:
    """Differential: the server's free-busy vs our own expansion of the same events (the
    attendee is a stakeholder here, so ``radicale`` reads them by the free-busy REPORT)."""
    _seed_mixed(people)
    query = BusyQuery(WINDOW, (people.organizer, people.attendee))
    with people.connector("radicale") as report, people.connector("generic") as calquery:
        by_report = report.busy(query).blocks[people.attendee.email]
        by_query = calquery.busy(query).blocks[people.attendee.email]
    assert _busy_intervals(by_report) == _busy_intervals(by_query)
    assert _busy_intervals(by_query) == [
        Interval(_at(9), _at(10, 30)),
        Interval(_at(11), _at(12)),
        Interval(_at(16), _at(16, 30)),
    ]
    # The calendar-query path keeps event detail for the busy rules to decide.
    kinds = {(b.start.hour, b.show_as, b.status) for b in by_query}
    assert (13, ShowAs.FREE, EventStatus.CONFIRMED) in kinds
    assert (15, ShowAs.BUSY, EventStatus.CANCELLED) in kinds
    assert (11, ShowAs.BUSY, EventStatus.TENTATIVE) in kinds


def test_unreadable_calendars_are_reported_per_person(people: RadicalePeople) -> None:
    owner_only = people.server.make_calendar(f"private/{unique_user('p')}/", as_user="owner")
    hidden = Person("hidden@corp.example", "Hid Den", "UTC")
    missing = Person(f"{unique_user('ghost')}@corp.example", "Gho St", "UTC")
    _put(people.att_cal + "one.ics", _vevent("one", _at(9), _at(10)), auth=people.auth)
    with people.connector(calendars={hidden.email: owner_only}) as cal:
        result = cal.busy(BusyQuery(WINDOW, (people.attendee, hidden, missing)))
    assert [(b.start, b.end) for b in result.blocks[people.attendee.email]] == [(_at(9), _at(10))]
    assert "403" in result.unavailable[hidden.email]
    assert "404" in result.unavailable[missing.email]
    assert hidden.email not in result.blocks
    assert missing.email not in result.blocks


def test_unconfigured_person_is_unavailable(radicale: RadicaleServer) -> None:
    cal = CalDAVCalendar(radicale.url, "service", "secret", server="radicale", calendars={})
    person = Person("nobody@corp.example", "No Body", "UTC")
    result = cal.busy(BusyQuery(WINDOW, (person,)))
    assert "no CalDAV calendar configured" in result.unavailable[person.email]


def test_wrong_password_is_authorization_revoked(people: RadicalePeople) -> None:
    cal = CalDAVCalendar(
        people.server.url, "service", "wrong", server="radicale", calendar_path="/{user}/calendar/"
    )
    with pytest.raises(AuthorizationRevoked):
        cal.busy(BusyQuery(WINDOW, (people.attendee,)))
    with pytest.raises(AuthorizationRevoked):
        cal.create_event(people.draft())


def test_create_stores_a_complete_organizer_copy(people: RadicalePeople) -> None:
    draft = people.draft("create-1")
    with people.connector() as cal:
        created = cal.create_event(draft)
    assert created.created is True
    assert created.provider_event_id == "create-1@goodwill"
    hrefs = _hrefs(people.org_cal, auth=people.auth)
    assert len(hrefs) == 1
    raw = httpx.get(people.org_cal + "create-1.ics", auth=people.auth, timeout=10).content
    stored = icalendar.Calendar.from_ical(raw)
    event = stored.walk("VEVENT")[0]
    assert str(event["UID"]) == "create-1@goodwill"
    assert int(event["SEQUENCE"]) == 0
    assert "DTSTAMP" in event
    assert str(event["ORGANIZER"]) == f"mailto:{people.organizer.email}"
    attendee = event["ATTENDEE"]
    assert str(attendee) == f"mailto:{people.attendee.email}"
    assert attendee.params["PARTSTAT"] == "NEEDS-ACTION"
    assert attendee.params["RSVP"] == "TRUE"
    assert attendee.params["CN"] == "Al Att"
    assert event["DTSTART"].params["TZID"] == "Europe/London"
    assert [str(tz["TZID"]) for tz in stored.walk("VTIMEZONE")] == ["Europe/London"]
    assert event.decoded("DTSTART") == draft.start
    assert event.decoded("DTEND") == draft.end
    assert str(event["LOCATION"]) == "Level 2 café"


def test_duplicate_create_is_a_no_op(people: RadicalePeople) -> None:
    draft = people.draft("dup-1")
    with people.connector() as cal:
        first = cal.create_event(draft)
        second = cal.create_event(draft)
    assert (first.created, second.created) == (True, False)
    assert first.provider_event_id == second.provider_event_id
    assert len(_hrefs(people.org_cal, auth=people.auth)) == 1


class _LateLooker(CalDAVCalendar):
    """Sees "nothing there" on its first look, as if another worker's PUT landed right after."""

    looked = False

    def _load(self, href: str) -> Any:
        if not self.looked:
            self.looked = True
            return None
        return super()._load(href)


def test_create_race_settled_by_if_none_match(people: RadicalePeople) -> None:
    draft = people.draft("race-1")
    with people.connector() as cal:
        first = cal.create_event(draft)
    with _LateLooker(
        people.server.url, "service", "secret", server="radicale", calendar_path="/{user}/calendar/"
    ) as late:
        second = late.create_event(draft)  # its PUT carries If-None-Match: * and gets 412
        assert late.looked
    assert (first.created, second.created) == (True, False)
    assert len(_hrefs(people.org_cal, auth=people.auth)) == 1


def test_event_state_follows_a_reply_and_cancel(people: RadicalePeople) -> None:
    with people.connector() as cal:
        created = cal.create_event(people.draft(hour=10))
        uid = created.provider_event_id
        state = cal.event_state(people.organizer, uid, people.attendee.email)
        assert (state.response, state.cancelled) == (AttendeeStatus.NEEDS_ACTION, False)
        assert (state.start, state.end) == (_at(10), _at(10, 30))
        assert cal.set_attendee_status(
            people.organizer, uid, people.attendee.email, AttendeeStatus.DECLINED, sequence=0
        )
        assert (
            cal.event_state(people.organizer, uid, people.attendee.email).response
            is AttendeeStatus.DECLINED
        )
        cal.cancel_event(people.organizer, uid)
        cal.cancel_event(people.organizer, uid)  # again: counts as done
        state = cal.event_state(people.organizer, uid, people.attendee.email)
        assert state.cancelled is True
        # A stale reply (SEQUENCE 0 < 1 after the cancel) does not change the copy.
        assert not cal.set_attendee_status(
            people.organizer, uid, people.attendee.email, AttendeeStatus.ACCEPTED, sequence=0
        )
        # A person not on the event has not accepted it.
        other = cal.event_state(people.organizer, uid, "someone@corp.example")
        assert other.response is AttendeeStatus.DECLINED
    raw = httpx.get(people.org_cal + uid.removesuffix("@goodwill") + ".ics", auth=people.auth)
    event = icalendar.Calendar.from_ical(raw.content).walk("VEVENT")[0]
    assert (str(event["STATUS"]), int(event["SEQUENCE"])) == ("CANCELLED", 1)


@pytest.mark.parametrize(
    ("partstat", "expected"),
    [
        ("DELEGATED", AttendeeStatus.DECLINED),  # as the ICS reader says: handed on, not coming
        ("tentative", AttendeeStatus.TENTATIVE),
        ("X-SOMETHING", AttendeeStatus.NEEDS_ACTION),
    ],
)
def test_event_state_reads_partstat_like_every_connector(
    people: RadicalePeople, partstat: str, expected: AttendeeStatus
) -> None:
    org, att = people.organizer.email, people.attendee.email
    key = f"d-{uuid4().hex[:10]}"
    answered = (f"ORGANIZER:mailto:{org}", f"ATTENDEE;PARTSTAT={partstat}:mailto:{att}")
    _put(people.org_cal + f"{key}.ics", _vevent(f"{key}@goodwill", _at(10), _at(11), *answered),
         auth=people.auth)  # fmt: skip
    with people.connector() as cal:
        assert cal.event_state(people.organizer, f"{key}@goodwill", att).response is expected


def test_cancel_of_a_missing_event_is_done_and_state_is_gone(people: RadicalePeople) -> None:
    with people.connector() as cal:
        cal.cancel_event(people.organizer, "never-made@goodwill")
        with pytest.raises(ResourceGone):
            cal.event_state(people.organizer, "never-made@goodwill", people.attendee.email)


def test_cancelled_event_leaves_free_busy(people: RadicalePeople) -> None:
    org = people.organizer.email
    as_owner = BusyQuery(WINDOW, (people.organizer,))
    as_stakeholder = BusyQuery(WINDOW, (people.attendee, people.organizer))
    with people.connector() as cal:
        uid = cal.create_event(people.draft(hour=14)).provider_event_id
        before = cal.busy(as_owner).blocks[org]
        before_fb = cal.busy(as_stakeholder).blocks[org]
        cal.cancel_event(people.organizer, uid)
        after = cal.busy(as_owner).blocks[org]
        after_fb = cal.busy(as_stakeholder).blocks[org]
    assert [(b.start, b.end) for b in before] == [(_at(14), _at(14, 30))]
    assert [(b.start, b.end) for b in before_fb] == [(_at(14), _at(14, 30))]
    # The owner's calendar-query still lists the cancelled copy, as cancelled: no busy time.
    assert [(b.start, b.status) for b in after] == [(_at(14), EventStatus.CANCELLED)]
    assert apply_busy_rules(after, BusyRules()) == []
    # The free-busy REPORT leaves it out altogether (Radicale's FBTYPE=FREE line dropped).
    assert after_fb == []


def test_last_contacts_finds_shared_meetings(people: RadicalePeople) -> None:
    org, att = people.organizer.email, people.attendee.email
    past = DAY - timedelta(days=10)
    shared = (
        f"ORGANIZER:mailto:{org}",
        f"ATTENDEE;PARTSTAT=ACCEPTED:mailto:{att}",
    )
    declined = (f"ORGANIZER:mailto:{org}", f"ATTENDEE;PARTSTAT=DECLINED:mailto:{att}")
    _put(people.org_cal + "m1.ics", _vevent("m1", past, past + timedelta(hours=1), *shared),
         auth=people.auth)  # fmt: skip
    later = past + timedelta(days=3)
    _put(people.org_cal + "m2.ics", _vevent("m2", later, later + timedelta(hours=1), *declined),
         auth=people.auth)  # fmt: skip
    with people.connector() as cal:
        found = cal.last_contacts(
            people.organizer, [att, "x@corp.example"], DAY - timedelta(30), DAY
        )
    assert found == {att: past + timedelta(hours=1)}


class _Canned(BaseHTTPRequestHandler):
    status = 500
    headers_out: ClassVar[dict[str, str]] = {}

    def _answer(self) -> None:
        self.send_response(self.status)
        for key, value in self.headers_out.items():
            self.send_header(key, value)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_PUT = do_REPORT = _answer

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def canned() -> Iterator[type[_Canned]]:
    handler = type("Handler", (_Canned,), {})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    handler.url = f"http://127.0.0.1:{server.server_address[1]}/"  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield handler
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("status", "headers", "expected", "retry_after"),
    [
        (429, {"Retry-After": "7"}, RateLimited, 7.0),
        (503, {"Retry-After": "3"}, RateLimited, 3.0),
        # An HTTP-date counts from the injected clock (NOW below), never the wall clock.
        (429, {"Retry-After": "Tue, 02 Mar 2027 09:00:20 GMT"}, RateLimited, 20.0),
        (429, {"Retry-After": "Tue, 02 Mar 2027 08:00:00 GMT"}, RateLimited, 0.0),
        (429, {"Retry-After": "soon"}, RateLimited, None),
        (500, {}, ProviderUnavailable, None),
        (502, {}, ProviderUnavailable, None),
    ],
)
def test_server_trouble_is_transient(
    canned: type[_Canned],
    status: int,
    headers: dict[str, str],
    expected: type[Exception],
    retry_after: float | None,
) -> None:
    canned.status, canned.headers_out = status, headers
    person = Person("a@corp.example", "A B", "UTC")
    url = canned.url  # type: ignore[attr-defined]
    now = FixedClock(DAY.replace(hour=9))
    cal = CalDAVCalendar(url, "u", "p", server="radicale", calendar_path="/{user}/", clock=now)
    with pytest.raises(expected) as caught:
        cal.busy(BusyQuery(WINDOW, (person,)))
    assert caught.value.transient is True  # type: ignore[attr-defined]
    if expected is RateLimited:
        assert caught.value.retry_after_s == retry_after  # type: ignore[attr-defined]
    with pytest.raises(expected):
        cal.event_state(person, "x@goodwill", "b@corp.example")


def test_server_down_is_provider_unavailable() -> None:
    url = f"http://127.0.0.1:{free_port()}/"
    cal = CalDAVCalendar(url, "u", "p", server="radicale", calendar_path="/{user}/", timeout_s=2)
    with pytest.raises(ProviderUnavailable):
        cal.busy(BusyQuery(WINDOW, (Person("a@corp.example", "A", "UTC"),)))


def _free_busy_report(url: str, *, auth: Any = None, headers: Any = None) -> str:
    end = DAY + timedelta(days=1)
    body = (
        '<C:free-busy-query xmlns:C="urn:ietf:params:xml:ns:caldav">'
        f'<C:time-range start="{DAY:%Y%m%dT%H%M%SZ}" end="{end:%Y%m%dT%H%M%SZ}"/>'
        "</C:free-busy-query>"
    )
    response = httpx.request(
        "REPORT",
        url,
        content=body,
        auth=auth,
        headers={"Depth": "1", "Content-Type": "application/xml", **(headers or {})},
        timeout=10.0,
    )
    assert response.status_code == 200, response.text
    return response.text.replace("\r\n ", "")


def _auto_schedule(url: str, *, auth: Any = None, headers: Any = None) -> bool:
    response = httpx.request("OPTIONS", url, auth=auth, headers=headers, timeout=10.0)
    return "calendar-auto-schedule" in response.headers.get("DAV", "")


def test_radicale_quirks_are_what_the_server_does(people: RadicalePeople) -> None:
    quirks = quirks_for("radicale")
    cal, auth = people.att_cal, people.auth
    _put(cal + "a.ics", _vevent("a", _at(9), _at(10)), auth=auth)
    _put(cal + "b.ics", _vevent("b", _at(9, 30), _at(10, 30)), auth=auth)
    _put(cal + "c.ics", _vevent("c", _at(15), _at(16), "STATUS:CANCELLED"), auth=auth)
    answer = _free_busy_report(cal, auth=auth)
    assert ("FBTYPE=FREE" in answer) is quirks.free_busy_includes_free
    assert ("20270302T090000Z/20270302T103000Z" in answer) is quirks.merges_free_busy_overlaps
    assert _auto_schedule(cal, auth=auth) is quirks.schedules_itip
    assert quirks.needs_imip is not quirks.schedules_itip


def test_xandikos_quirks_are_what_the_server_does(xpeople: XandikosPeople) -> None:
    quirks = quirks_for("xandikos")
    cal, headers = xpeople.att_cal, xpeople.server.headers(xpeople.att_user)
    _put(cal + "a.ics", _vevent("a", _at(9), _at(10)), headers=headers)
    _put(cal + "b.ics", _vevent("b", _at(9, 30), _at(10, 30)), headers=headers)
    _put(cal + "c.ics", _vevent("c", _at(15), _at(16), "STATUS:CANCELLED"), headers=headers)
    answer = _free_busy_report(cal, headers=headers)
    assert ("FBTYPE=FREE" in answer) is quirks.free_busy_includes_free
    assert ("20270302T090000Z/20270302T103000Z" in answer) is quirks.merges_free_busy_overlaps
    assert _auto_schedule(cal, headers=headers) is quirks.schedules_itip
    assert quirks.needs_imip is not quirks.schedules_itip
    # Another user's calendar is off limits (and answered with a 500, not a 403).
    other = httpx.request(
        "REPORT", xpeople.org_cal, headers={**headers, "Depth": "1"}, timeout=10.0
    )
    assert (other.status_code < 400) is quirks.cross_user_reads


def test_unknown_server_kind_is_a_configuration_error() -> None:
    assert {"generic", "radicale", "xandikos"} <= set(QUIRKS)
    with pytest.raises(ConfigurationError):
        CalDAVCalendar("http://127.0.0.1:1/", server="exchange-ish")


# -- Xandikos: server-side scheduling (RFC 6638) -----------------------------------------------


class XandikosPeople:
    def __init__(self, server: XandikosServer) -> None:
        self.server = server
        self.org_user, self.att_user = unique_user("org"), unique_user("att")
        self.organizer = Person(f"{self.org_user}@corp.example", "Olga Org", "Europe/London")
        self.attendee = Person(f"{self.att_user}@corp.example", "Al Att", "America/New_York")
        self.org_cal = server.add_user(self.org_user, self.organizer.email)
        self.att_cal = server.add_user(self.att_user, self.attendee.email)

    def connector(self, user: str, cal_url: str, email: str, **kwargs: Any) -> CalDAVCalendar:
        # Xandikos multi-user lets each user read only their own collections
        # (quirks.cross_user_reads), so every person is read with their own identity.
        return CalDAVCalendar(
            self.server.url,
            server="xandikos",
            calendars={email: cal_url},
            headers=self.server.headers(user),
            **kwargs,
        )

    def organizer_connector(self, **kwargs: Any) -> CalDAVCalendar:
        return self.connector(self.org_user, self.org_cal, self.organizer.email, **kwargs)

    def draft(self, attendee: Person | None = None) -> EventDraft:
        return EventDraft(
            idempotency_key=f"x-{uuid4().hex[:10]}",
            organizer=self.organizer,
            attendee=attendee or self.attendee,
            start=_at(10),
            end=_at(10, 30),
            title="Coffee: Olga / Al",
        )

    def answer_as_attendee(self, uid: str, partstat: str) -> None:
        """What the attendee's calendar client does: change only their PARTSTAT in their copy.

        Xandikos refuses (412 attendee-allowed) an attendee PUT that changes anything else, so
        the copy is edited as text, not re-serialised.
        """
        headers = self.server.headers(self.att_user)
        for href in _hrefs(self.att_cal, headers=headers):
            url = str(httpx.URL(self.server.url).join(href))
            got = httpx.get(url, headers=headers, timeout=10)
            text = got.text.replace("\r\n ", "").replace("\n ", "")
            if f"UID:{uid}" not in text:
                continue
            lines = [
                line.replace("PARTSTAT=NEEDS-ACTION", f"PARTSTAT={partstat}")
                if line.startswith("ATTENDEE") and self.attendee.email in line
                else line
                for line in text.splitlines()
            ]
            _put(
                url,
                "\r\n".join(lines) + "\r\n",
                headers={**headers, "If-Match": got.headers["ETag"]},
            )
            return
        raise AssertionError(f"{uid} is not on the attendee's calendar")


@pytest.fixture
def xpeople(xandikos: XandikosServer) -> XandikosPeople:
    return XandikosPeople(xandikos)


def _methods(items: list[str], uid: str) -> list[str]:
    out = []
    for text in items:
        cal = icalendar.Calendar.from_ical(text)
        if any(str(e.get("UID")) == uid for e in cal.walk("VEVENT")):
            out.append(str(cal.get("METHOD", "")))
    return out


def test_xandikos_delivers_the_invite_and_the_reply(xpeople: XandikosPeople) -> None:
    assert quirks_for("xandikos").schedules_itip
    with xpeople.organizer_connector() as cal:
        draft = xpeople.draft()
        created = cal.create_event(draft)
        again = cal.create_event(draft)
        uid = created.provider_event_id
        assert (created.created, again.created) == (True, False)
        # The server invited the attendee: REQUEST in their inbox, the event on their calendar.
        assert _methods(xpeople.server.items(xpeople.att_user, "inbox"), uid) == ["REQUEST"]
        assert _methods(xpeople.server.items(xpeople.att_user, "calendars/calendar"), uid) == [""]
        state = cal.event_state(xpeople.organizer, uid, xpeople.attendee.email)
        assert state.response is AttendeeStatus.NEEDS_ACTION
        # The attendee accepts in their own calendar; the server sends the REPLY to the organizer
        # and updates the organizer's copy, which is what event_state reads.
        xpeople.answer_as_attendee(uid, "ACCEPTED")
        state = cal.event_state(xpeople.organizer, uid, xpeople.attendee.email)
        assert state.response is AttendeeStatus.ACCEPTED
        assert "REPLY" in _methods(xpeople.server.items(xpeople.org_user, "inbox"), uid)


def test_xandikos_cancel_reaches_the_attendee(xpeople: XandikosPeople) -> None:
    # Only a DELETE makes Xandikos send METHOD:CANCEL (a STATUS:CANCELLED update goes out as
    # another REQUEST), so the quirks say: cancel by deleting.
    assert quirks_for("xandikos").cancel_deletes_resource
    with xpeople.organizer_connector() as cal:
        uid = cal.create_event(xpeople.draft()).provider_event_id
        cal.cancel_event(xpeople.organizer, uid)
        cal.cancel_event(xpeople.organizer, uid)  # again: gone counts as done
        with pytest.raises(ResourceGone):
            cal.event_state(xpeople.organizer, uid, xpeople.attendee.email)
    assert _hrefs(xpeople.org_cal, headers=xpeople.server.headers(xpeople.org_user)) == []
    methods = _methods(xpeople.server.items(xpeople.att_user, "inbox"), uid)
    assert methods.count("REQUEST") == 1
    assert methods.count("CANCEL") == 1


def test_xandikos_mails_external_attendees_itself(
    xpeople: XandikosPeople, smtp_sink: SmtpSink
) -> None:
    """A scheduling server sends iMIP itself; our own sender stays silent (no double invite)."""
    external = Person(f"{unique_user('ext')}@external.example", "Ex Ternal", "UTC")
    ours = ImipSender(SmtpSettings(host="127.0.0.1", port=smtp_sink.port))
    with xpeople.organizer_connector(imip_sender=ours) as cal:
        uid = cal.create_event(xpeople.draft(external)).provider_event_id
    got = smtp_sink.wait_for(lambda m: external.email in m.rcpt_tos)
    assert len(got) == 1
    mail = message_from_bytes(got[0].data, policy=policy.default)
    assert "caldav@xandikos.example" in str(mail["From"])  # Xandikos', not ours
    parts = [p for p in mail.walk() if p.get_content_type() == "text/calendar"]
    assert parts
    assert str(parts[0].get_param("method")).upper() == "REQUEST"
    assert uid in parts[0].get_content()


def test_xandikos_free_busy_of_own_calendar(xpeople: XandikosPeople) -> None:
    """The same calendar read as the owner (calendar-query: detail) and as a stakeholder
    (free-busy REPORT: FBTYPEs). Xandikos lets an account read only its own collections, so
    the stand-in owner is a second, empty calendar of the same account."""
    headers = xpeople.server.headers(xpeople.att_user)
    _put(xpeople.att_cal + "seed.ics", _vevent("seed", _at(9), _at(10)), headers=headers)
    _put(
        xpeople.att_cal + "tent.ics",
        _vevent("tent", _at(11), _at(12), "STATUS:TENTATIVE"),
        headers=headers,
    )
    other_cal = xpeople.att_cal.replace("/calendars/calendar/", "/calendars/other/")
    made = httpx.request("MKCALENDAR", other_cal, headers=headers, timeout=10.0)
    assert made.status_code == 201, made.text
    stand_in = Person(f"{unique_user('own')}@corp.example", "Stan D", "UTC")
    email = xpeople.attendee.email
    with xpeople.connector(xpeople.att_user, xpeople.att_cal, email) as cal:
        own = cal.busy(BusyQuery(WINDOW, (xpeople.attendee,))).blocks[email]
    with CalDAVCalendar(
        xpeople.server.url,
        server="xandikos",
        calendars={email: xpeople.att_cal, stand_in.email: other_cal},
        headers=headers,
    ) as cal:
        result = cal.busy(BusyQuery(WINDOW, (stand_in, xpeople.attendee)))
    assert result.blocks[stand_in.email] == []
    assert [(b.start, b.end, b.show_as) for b in result.blocks[email]] == [
        (_at(9), _at(10), ShowAs.BUSY),
        (_at(11), _at(12), ShowAs.TENTATIVE),
    ]
    assert [(b.start, b.end, b.show_as, b.status) for b in own] == [
        (_at(9), _at(10), ShowAs.BUSY, EventStatus.CONFIRMED),
        (_at(11), _at(12), ShowAs.BUSY, EventStatus.TENTATIVE),
    ]


# -- request counts ------------------------------------------------------------------------------


def _counting(cal: CalDAVCalendar) -> list[str]:
    """Record the HTTP method of every request the connector's DAV client sends."""
    seen: list[str] = []
    client: Any = cal._client
    original = client.request

    def request(url: str, method: str = "GET", body: Any = "", headers: Any = None) -> Any:
        seen.append(method)
        return original(url, method, body, headers)

    client.request = request
    return seen


def test_one_owner_read_serves_the_rounds_history_and_busy(people: RadicalePeople) -> None:
    """A planning round on CalDAV: ``read_owner`` (one calendar-query over history and horizon)
    serves ``last_contacts`` and the owner's part of ``busy``; each stakeholder costs one
    free-busy REPORT. Any later read (a recheck, the conflict watch) goes to the server."""
    org, att = people.organizer, people.attendee
    past = DAY - timedelta(days=10)
    shared = (f"ORGANIZER:mailto:{org.email}", f"ATTENDEE;PARTSTAT=ACCEPTED:mailto:{att.email}")
    _put(people.org_cal + "m1.ics", _vevent("m1", past, past + timedelta(hours=1), *shared),
         auth=people.auth)  # fmt: skip
    _seed_mixed(people, people.org_cal)
    _put(people.att_cal + "a.ics", _vevent("a", _at(9), _at(10)), auth=people.auth)
    history = (DAY - timedelta(days=30), DAY)
    query = BusyQuery(WINDOW, (org, att))
    with people.connector() as direct:
        expected_contacts = direct.last_contacts(org, [att.email], *history)
        expected_busy = direct.busy(query)
    with people.connector() as cal:
        seen = _counting(cal)
        cal.read_owner(org, Interval(history[0], WINDOW.end))
        assert seen == ["REPORT"]
        assert cal.last_contacts(org, [att.email], *history) == expected_contacts
        assert cal.busy(query) == expected_busy
        assert seen == ["REPORT", "REPORT"]  # + the stakeholder's free-busy
        assert cal.busy(query) == expected_busy  # the held read is used up: to the server
        assert seen == ["REPORT"] * 4
    assert expected_contacts == {att.email: past + timedelta(hours=1)}
