"""Moving a booked event, per provider, on the wire: what each move sends and what it costs.

The connector contract (``tests/contract``) holds every provider to the same behaviour (same
event, new time, attendee told once, ResourceGone when gone); these tests pin down the provider
details: request counts, bodies, zones across a DST change, iTIP SEQUENCE and mail dedupe,
ETag races, server-side scheduling (Xandikos) and Graph counter-proposals.

Times: booked Friday 2027-03-26 14:00 London (GMT, UTC+0), moved to Tuesday 2027-03-30 14:00
London (BST, UTC+1) — the UK changes clocks on Sunday 2027-03-28.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any
from uuid import uuid4

import httpx
import icalendar
import pytest
from googleapiclient.errors import HttpError

from connectors.caldav import IMIP_MARK, CalDAVCalendar
from connectors.google import GoogleCalendar, user_credentials
from connectors.google_events import goodwill_key, google_event_id
from connectors.ics import IcsDirectory
from connectors.imip import ImipSender
from connectors.microsoft import AppOnlyTokens, GraphCalendar
from connectors.tokens import MemoryTokenStore
from scheduler.app import booking, conflicts, planning
from scheduler.app.pipeline import policy_for
from scheduler.core.clock import FixedClock
from scheduler.core.errors import InvalidRequest, ProviderUnavailable, ResourceGone
from scheduler.core.intervals import Interval
from scheduler.core.model import AttendeeStatus, BusyQuery, EventDraft, Person
from scheduler.core.states import MeetingState
from scheduler.entrypoints.bootstrap import bootstrap
from scheduler.settings import GoogleSettings, Settings, SmtpSettings
from tests.emulators.google_emulator import GoogleEmulator
from tests.emulators.graph_emulator import GraphEmulator
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

ORG = Person("org@corp.example", "Olive Organizer", "Europe/London")
ATT = Person("att@corp.example", "Arun Attendee", "America/New_York")
BOOKED = datetime(2027, 3, 26, 14, tzinfo=UTC)  # 14:00 GMT
MOVED = datetime(2027, 3, 30, 13, tzinfo=UTC)  # 14:00 BST
HALF_HOUR = timedelta(minutes=30)


def _draft(organizer: Person = ORG, attendee: Person = ATT, key: str | None = None) -> EventDraft:
    return EventDraft(
        idempotency_key=key or f"move-{uuid4().hex[:10]}",
        organizer=organizer,
        attendee=attendee,
        start=BOOKED,
        end=BOOKED + HALF_HOUR,
        title="Coffee: Olive / Arun",
        description="Catch up.",
    )


# -- Google ------------------------------------------------------------------------------------


@pytest.fixture
def gemu() -> Iterator[GoogleEmulator]:
    emu = GoogleEmulator().start()
    for person in (ORG, ATT):
        emu.add_calendar(person.email, person.timezone)
        emu.add_refresh_token(f"1//rt-{person.email}", person.email)
    try:
        yield emu
    finally:
        emu.stop()
    assert emu.schema_violations == []


@pytest.fixture
def google(gemu: GoogleEmulator) -> GoogleCalendar:
    settings = GoogleSettings(token_uri=gemu.token_uri, api_endpoint=gemu.api_endpoint, timeout_s=5)

    def credentials(email: str) -> Any:
        return user_credentials(f"1//rt-{email}", "cid", "csecret", gemu.token_uri)

    return GoogleCalendar(settings, credentials, sleep=lambda _s: None)


def _api_calls(emu: GoogleEmulator, since: int) -> list[tuple[str, str]]:
    return [(m, p.rsplit("/", 2)[-2]) for m, p in emu.calls[since:] if p != "/token"]


def test_google_move_is_one_get_and_one_patch_in_the_organizers_zone(
    gemu: GoogleEmulator, google: GoogleCalendar
) -> None:
    event_id = google.create_event(_draft()).provider_event_id
    before = len(gemu.calls)
    google.move_event(ORG, event_id, MOVED, MOVED + HALF_HOUR)
    assert _api_calls(gemu, before) == [("GET", "events"), ("PATCH", "events")]
    (patch,) = gemu.requests_to("PATCH", f"/events/{event_id}")
    assert patch.query["sendUpdates"] == ["all"]
    # Only the times, shaped as at insert: wall-clock London time (now BST) plus the zone.
    assert patch.body == {
        "start": {"dateTime": "2027-03-30T14:00:00+01:00", "timeZone": "Europe/London"},
        "end": {"dateTime": "2027-03-30T14:30:00+01:00", "timeZone": "Europe/London"},
    }
    (stored,) = gemu.events(ORG.email)
    assert stored["id"] == event_id
    assert stored["sequence"] == 1
    assert goodwill_key(stored) is not None  # the patch kept our private properties
    state = google.event_state(ORG, event_id, ATT.email)
    assert (state.start, state.end) == (MOVED, MOVED + HALF_HOUR)


def test_google_retried_move_reads_and_sends_nothing(
    gemu: GoogleEmulator, google: GoogleCalendar
) -> None:
    event_id = google.create_event(_draft()).provider_event_id
    google.move_event(ORG, event_id, MOVED, MOVED + HALF_HOUR)
    before = len(gemu.calls)
    google.move_event(ORG, event_id, MOVED, MOVED + HALF_HOUR)
    assert _api_calls(gemu, before) == [("GET", "events")]
    assert len(gemu.requests_to("PATCH", f"/events/{event_id}")) == 1


def test_google_move_of_a_deleted_event_never_patches_it(
    gemu: GoogleEmulator, google: GoogleCalendar
) -> None:
    # Google keeps a deleted event's id and would take a patch: the read first says "gone".
    event_id = google.create_event(_draft()).provider_event_id
    google.cancel_event(ORG, event_id)
    with pytest.raises(ResourceGone):
        google.move_event(ORG, event_id, MOVED, MOVED + HALF_HOUR)
    with pytest.raises(ResourceGone):
        google.move_event(ORG, google_event_id("never-booked"), MOVED, MOVED + HALF_HOUR)
    assert gemu.requests_to("PATCH", f"/events/{event_id}") == []


def test_google_move_refuses_an_empty_range_before_any_call(
    gemu: GoogleEmulator, google: GoogleCalendar
) -> None:
    event_id = google.create_event(_draft()).provider_event_id
    before = len(gemu.calls)
    with pytest.raises(InvalidRequest):
        google.move_event(ORG, event_id, MOVED, MOVED)
    assert gemu.calls[before:] == []


def test_google_emulator_refuses_a_patch_that_empties_the_range(
    gemu: GoogleEmulator, google: GoogleCalendar
) -> None:
    event_id = google.create_event(_draft()).provider_event_id
    service = google._service(ORG.email)
    body = {"end": {"dateTime": "2027-03-26T13:00:00Z"}}  # before the start
    with pytest.raises(HttpError) as caught:
        service.execute(service.events.patch(calendarId="primary", eventId=event_id, body=body))
    assert caught.value.resp.status == 400
    (stored,) = gemu.events(ORG.email)
    assert stored["end"]["dateTime"].startswith("2027-03-26T14:30")  # unchanged


def test_google_owner_busy_blocks_carry_our_key_only_on_our_events(
    gemu: GoogleEmulator, google: GoogleCalendar
) -> None:
    draft = _draft()
    google.create_event(draft)
    gemu.seed(
        ORG.email,
        {
            "summary": "own",
            "start": {"dateTime": "2027-03-26T09:00:00Z"},
            "end": {"dateTime": "2027-03-26T10:00:00Z"},
            # Someone else's tool tagging its events: not ours without goodwill=1.
            "extendedProperties": {"private": {"goodwillKey": "not-ours"}},
        },
    )
    window = Interval(BOOKED.replace(hour=0), BOOKED.replace(hour=23))
    result = google.busy(BusyQuery(window, (ORG, ATT)))
    assert sorted((b.start.hour, b.key) for b in result.blocks[ORG.email]) == [
        (9, None),
        (14, draft.idempotency_key),
    ]
    # freeBusy (everyone else) is opaque: no keys, even on the attendee's copy of our invite.
    assert [b.key for b in result.blocks[ATT.email]] == [None]


# -- Microsoft Graph ---------------------------------------------------------------------------


@pytest.fixture
def memu(tmp_path: Path) -> Iterator[GraphEmulator]:
    emulator = GraphEmulator(tmp_path)
    emulator.add_mailbox(ORG.email, zone="GMT Standard Time")
    emulator.add_mailbox(ATT.email, zone="Eastern Standard Time")
    try:
        yield emulator
    finally:
        emulator.close()
    assert emulator.schema_violations == []


@pytest.fixture
def graph(memu: GraphEmulator) -> GraphCalendar:
    settings = memu.settings()
    return GraphCalendar(
        settings, AppOnlyTokens(settings, MemoryTokenStore()), sleep=lambda _s: None
    )


def test_graph_move_is_one_get_and_one_patch_in_the_organizers_zone(
    memu: GraphEmulator, graph: GraphCalendar
) -> None:
    event_id = graph.create_event(_draft()).provider_event_id
    before = len(memu.calls)
    graph.move_event(ORG, event_id, MOVED, MOVED + HALF_HOUR)
    calls = memu.calls[before:]
    assert [c.method for c in calls] == ["GET", "PATCH"]
    assert calls[1].body == {
        "start": {"dateTime": "2027-03-30T14:00:00", "timeZone": "GMT Standard Time"},
        "end": {"dateTime": "2027-03-30T14:30:00", "timeZone": "GMT Standard Time"},
    }
    assert 'IdType="ImmutableId"' in calls[1].prefer
    assert memu.updates_sent == [(event_id, ATT.email)]
    (stored,) = memu.events_of(ORG.email)
    assert stored["id"] == event_id
    state = graph.event_state(ORG, event_id, ATT.email)
    assert (state.start, state.end) == (MOVED, MOVED + HALF_HOUR)
    # The attendee's free/busy follows the same event.
    window = Interval(BOOKED - timedelta(days=1), MOVED + timedelta(days=1))
    blocks = graph.busy(BusyQuery(window, (ORG, ATT))).blocks[ATT.email]
    assert [(b.start, b.end) for b in blocks] == [(MOVED, MOVED + HALF_HOUR)]


def test_graph_retried_move_only_reads(memu: GraphEmulator, graph: GraphCalendar) -> None:
    event_id = graph.create_event(_draft()).provider_event_id
    graph.move_event(ORG, event_id, MOVED, MOVED + HALF_HOUR)
    before = len(memu.calls)
    graph.move_event(ORG, event_id, MOVED, MOVED + HALF_HOUR)
    assert [c.method for c in memu.calls[before:]] == ["GET"]
    assert len(memu.updates_sent) == 1


def test_graph_move_of_a_cancelled_event_never_patches_it(
    memu: GraphEmulator, graph: GraphCalendar
) -> None:
    event_id = graph.create_event(_draft()).provider_event_id
    graph.cancel_event(ORG, event_id)
    with pytest.raises(ResourceGone):
        graph.move_event(ORG, event_id, MOVED, MOVED + HALF_HOUR)
    assert memu.count("PATCH") == 0


def test_graph_failed_patch_is_transient_and_the_retry_moves_once(
    memu: GraphEmulator, graph: GraphCalendar
) -> None:
    event_id = graph.create_event(_draft()).provider_event_id
    memu.fail_next(503, method="PATCH")
    with pytest.raises(ProviderUnavailable):
        graph.move_event(ORG, event_id, MOVED, MOVED + HALF_HOUR)
    graph.move_event(ORG, event_id, MOVED, MOVED + HALF_HOUR)
    assert memu.updates_sent == [(event_id, ATT.email)]


def test_graph_attendee_counter_proposal_is_read(memu: GraphEmulator, graph: GraphCalendar) -> None:
    event_id = graph.create_event(_draft()).provider_event_id
    state = graph.event_state(ORG, event_id, ATT.email)
    assert state.proposed is None
    # The attendee answers "tentative, how about Tuesday?" (proposedNewTime in their own zone)
    memu.propose_new_time(ATT.email, event_id, MOVED, MOVED + HALF_HOUR)
    raw = memu.raw_event(event_id)["attendees"][0]["proposedNewTime"]
    assert raw["start"] == {
        "dateTime": "2027-03-30T09:00:00.0000000",
        "timeZone": "Eastern Standard Time",
    }
    state = graph.event_state(ORG, event_id, ATT.email)
    assert state.response is AttendeeStatus.TENTATIVE
    assert state.proposed == (MOVED, MOVED + HALF_HOUR)
    assert graph.event_states(ORG, [event_id], ATT.email)[event_id].proposed == state.proposed
    # Taking the proposal is a move; the proposal no longer stands on the new version.
    graph.move_event(ORG, event_id, *state.proposed)
    assert graph.event_state(ORG, event_id, ATT.email).proposed is None


# -- CalDAV: Radicale (no server scheduling: we mail iTIP) --------------------------------------


class RadicaleOrg:
    def __init__(self, server: RadicaleServer, sink: SmtpSink) -> None:
        org, att = unique_user("org"), unique_user("att")
        self.server = server
        self.sink = sink
        self.organizer = Person(f"{org}@corp.example", "Olga Org", "Europe/London")
        self.attendee = Person(f"{att}@corp.example", "Al Att", "America/New_York")
        self.org_cal = server.make_calendar(f"{org}/calendar/")
        server.make_calendar(f"{att}/calendar/")
        self.auth = ("service", "secret")

    def connector(self, server: str = "radicale") -> CalDAVCalendar:
        return CalDAVCalendar(
            self.server.url,
            "service",
            "secret",
            server=server,
            calendar_path="/{user}/calendar/",
            imip_sender=ImipSender(SmtpSettings(host="127.0.0.1", port=self.sink.port)),
            timeout_s=10,
        )

    def requests_mailed(self, uid: str) -> list[icalendar.Component]:
        """The VEVENTs of the iTIP REQUESTs mailed to the attendee for ``uid``."""
        out = []
        for received in self.sink.to(self.attendee.email):
            mail = message_from_bytes(received.data, policy=policy.default)
            for part in mail.walk():
                if part.get_content_type() != "text/calendar":
                    continue
                cal = icalendar.Calendar.from_ical(part.get_content())
                if str(cal.get("METHOD")) != "REQUEST":
                    continue
                out += [e for e in cal.walk("VEVENT") if str(e.get("UID")) == uid]
        return out

    def stored(self, uid: str) -> tuple[icalendar.Calendar, str]:
        name = uid.removesuffix("@goodwill")
        response = httpx.get(f"{self.org_cal}{name}.ics", auth=self.auth, timeout=10)
        response.raise_for_status()
        return icalendar.Calendar.from_ical(response.content), response.headers["ETag"]


@pytest.fixture
def rad(radicale: RadicaleServer, smtp_sink: SmtpSink) -> RadicaleOrg:
    return RadicaleOrg(radicale, smtp_sink)


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


def test_radicale_move_puts_the_same_uid_and_mails_the_higher_sequence(rad: RadicaleOrg) -> None:
    with rad.connector() as cal:
        uid = cal.create_event(_draft(rad.organizer, rad.attendee)).provider_event_id
        seen = _counting(cal)
        cal.move_event(rad.organizer, uid, MOVED, MOVED + HALF_HOUR)
        # GET, PUT of the moved copy, PUT of the mark after the mail went out.
        assert seen == ["GET", "PUT", "PUT"]
        state = cal.event_state(rad.organizer, uid, rad.attendee.email)
    assert (state.start, state.end) == (MOVED, MOVED + HALF_HOUR)
    assert state.response is AttendeeStatus.NEEDS_ACTION
    first, update = rad.requests_mailed(uid)
    assert (int(first["SEQUENCE"]), int(update["SEQUENCE"])) == (0, 1)
    assert update.decoded("DTSTART") == MOVED.astimezone(update.decoded("DTSTART").tzinfo)
    assert str(update["DTSTART"].params["TZID"]) == "Europe/London"
    attendee = update["ATTENDEE"]
    assert (attendee.params["PARTSTAT"], attendee.params["RSVP"]) == ("NEEDS-ACTION", "TRUE")
    assert "X-GOODWILL-KEY" not in update
    assert IMIP_MARK not in update
    stored, _ = rad.stored(uid)
    (event,) = stored.walk("VEVENT")
    assert int(event["SEQUENCE"]) == 1
    assert str(event[IMIP_MARK]) == "REQUEST:1"
    assert "X-GOODWILL-KEY" in event
    # The VTIMEZONE now covers the new days (after the change to BST), not the old ones.
    (vtimezone,) = stored.walk("VTIMEZONE")
    assert {c["TZOFFSETTO"].td for c in vtimezone.subcomponents} == {timedelta(hours=1)}


def test_radicale_retried_move_mails_nothing_new(rad: RadicaleOrg) -> None:
    with rad.connector() as cal:
        uid = cal.create_event(_draft(rad.organizer, rad.attendee)).provider_event_id
        cal.move_event(rad.organizer, uid, MOVED, MOVED + HALF_HOUR)
        seen = _counting(cal)
        cal.move_event(rad.organizer, uid, MOVED, MOVED + HALF_HOUR)
        assert seen == ["GET"]
    assert len(rad.requests_mailed(uid)) == 2
    stored, _ = rad.stored(uid)
    assert int(stored.walk("VEVENT")[0]["SEQUENCE"]) == 1


def test_radicale_move_after_a_lost_mail_sends_it_on_retry(rad: RadicaleOrg) -> None:
    """The copy was moved but the mail failed: the same move again mails REQUEST:1 once."""
    with rad.connector() as cal:
        uid = cal.create_event(_draft(rad.organizer, rad.attendee)).provider_event_id
        good = cal._imip
        cal._imip = ImipSender(SmtpSettings(host="127.0.0.1", port=free_port()), timeout_s=2)
        with pytest.raises(ProviderUnavailable):
            cal.move_event(rad.organizer, uid, MOVED, MOVED + HALF_HOUR)
        assert len(rad.requests_mailed(uid)) == 1
        cal._imip = good
        cal.move_event(rad.organizer, uid, MOVED, MOVED + HALF_HOUR)
        cal.move_event(rad.organizer, uid, MOVED, MOVED + HALF_HOUR)
    assert [int(e["SEQUENCE"]) for e in rad.requests_mailed(uid)] == [0, 1]


def test_radicale_move_rereads_when_the_copy_changed_under_it(rad: RadicaleOrg) -> None:
    """412 on If-Match (a reply was applied meanwhile): read again and move that version."""
    with rad.connector() as cal:
        uid = cal.create_event(_draft(rad.organizer, rad.attendee)).provider_event_id
        original = cal._load
        raced: list[str] = []

        def load_then_race(href: str) -> Any:
            stored = original(href)
            if not raced:
                raced.append(href)
                cal.set_attendee_status(
                    rad.organizer, uid, rad.attendee.email, AttendeeStatus.ACCEPTED
                )
            return stored

        cal._load = load_then_race  # type: ignore[method-assign]
        seen = _counting(cal)
        cal.move_event(rad.organizer, uid, MOVED, MOVED + HALF_HOUR)
        cal._load = original  # type: ignore[method-assign]
        # GET, (race: GET + PUT of the reply), PUT -> 412, GET, PUT, PUT of the mark
        assert seen.count("PUT") == 4
        state = cal.event_state(rad.organizer, uid, rad.attendee.email)
    assert (state.start, state.end) == (MOVED, MOVED + HALF_HOUR)
    stored, _ = rad.stored(uid)
    assert int(stored.walk("VEVENT")[0]["SEQUENCE"]) == 1  # moved once, not twice
    assert [int(e["SEQUENCE"]) for e in rad.requests_mailed(uid)] == [0, 1]


def test_radicale_move_of_cancelled_or_unknown_event_is_gone(rad: RadicaleOrg) -> None:
    with rad.connector() as cal:
        uid = cal.create_event(_draft(rad.organizer, rad.attendee)).provider_event_id
        cal.cancel_event(rad.organizer, uid)
        with pytest.raises(ResourceGone):
            cal.move_event(rad.organizer, uid, MOVED, MOVED + HALF_HOUR)
        with pytest.raises(ResourceGone):
            cal.move_event(rad.organizer, "never-booked@goodwill", MOVED, MOVED + HALF_HOUR)
    assert len(rad.requests_mailed(uid)) == 1


def test_caldav_calendar_query_shows_our_key_on_the_owners_calendar(rad: RadicaleOrg) -> None:
    """The owner's own calendar is read by calendar-query on every server, so it carries event
    detail and our key; Radicale's free-busy REPORT, which reads stakeholders, does not."""
    draft = _draft(rad.organizer, rad.attendee)
    window = Interval(BOOKED - timedelta(hours=1), MOVED + timedelta(hours=1))
    with rad.connector("generic") as cal:
        cal.create_event(draft)
        blocks = cal.busy(BusyQuery(window, (rad.organizer,))).blocks[rad.organizer.email]
        assert [(b.start, b.key) for b in blocks] == [(BOOKED, draft.idempotency_key)]
    with rad.connector("radicale") as cal:
        blocks = cal.busy(BusyQuery(window, (rad.organizer,))).blocks[rad.organizer.email]
        assert [(b.start, b.key) for b in blocks] == [(BOOKED, draft.idempotency_key)]
        as_stakeholder = BusyQuery(window, (rad.attendee, rad.organizer))
        blocks = cal.busy(as_stakeholder).blocks[rad.organizer.email]
        assert [(b.start, b.key) for b in blocks] == [(BOOKED, None)]


# -- CalDAV: Xandikos (RFC 6638: the server sends the update) ----------------------------------


def test_xandikos_sends_the_update_itself(xandikos: XandikosServer, smtp_sink: SmtpSink) -> None:
    org_user, att_user = unique_user("org"), unique_user("att")
    organizer = Person(f"{org_user}@corp.example", "Olga Org", "Europe/London")
    attendee = Person(f"{att_user}@corp.example", "Al Att", "America/New_York")
    org_cal = xandikos.add_user(org_user, organizer.email)
    xandikos.add_user(att_user, attendee.email)
    ours = ImipSender(SmtpSettings(host="127.0.0.1", port=smtp_sink.port))
    mailed_before = len(smtp_sink.messages)
    with CalDAVCalendar(
        xandikos.url,
        server="xandikos",
        calendars={organizer.email: org_cal},
        headers=xandikos.headers(org_user),
        imip_sender=ours,
    ) as cal:
        uid = cal.create_event(_draft(organizer, attendee)).provider_event_id
        seen = _counting(cal)
        cal.move_event(organizer, uid, MOVED, MOVED + HALF_HOUR)
        assert seen == ["GET", "PUT"]  # no mail of ours, so no mark to write
        state = cal.event_state(organizer, uid, attendee.email)
    assert (state.start, state.end) == (MOVED, MOVED + HALF_HOUR)
    # The server delivered a second REQUEST (SEQUENCE 1) to the attendee's inbox ...
    inbox = [icalendar.Calendar.from_ical(t) for t in xandikos.items(att_user, "inbox")]
    requests = sorted(
        int(e.get("SEQUENCE", 0))
        for c in inbox
        if str(c.get("METHOD")) == "REQUEST"
        for e in c.walk("VEVENT")
        if str(e.get("UID")) == uid
    )
    assert requests == [0, 1]
    # ... and moved their copy; we mailed nothing (the attendee is local to the server).
    copies = [
        icalendar.Calendar.from_ical(t) for t in xandikos.items(att_user, "calendars/calendar")
    ]
    starts = [
        e.decoded("DTSTART") for c in copies for e in c.walk("VEVENT") if str(e["UID"]) == uid
    ]
    assert [s.astimezone(UTC) for s in starts] == [MOVED]
    assert len(smtp_sink.messages) == mailed_before


# -- ICS directory -----------------------------------------------------------------------------


@pytest.fixture
def ics(tmp_path: Path) -> IcsDirectory:
    root = tmp_path / "calendars"
    root.mkdir()
    for person in (ORG, ATT):
        empty = icalendar.Calendar()
        empty.add("PRODID", "-//goodwill tests//EN")
        empty.add("VERSION", "2.0")
        (root / f"{person.email}.ics").write_bytes(empty.to_ical())
    return IcsDirectory(root)


def _ics_event(directory: IcsDirectory, email: str, uid: str) -> icalendar.Component:
    cal = icalendar.Calendar.from_ical((directory.path / f"{email}.ics").read_bytes())
    (event,) = [e for e in cal.walk("VEVENT") if str(e["UID"]) == uid]
    return event


def test_ics_move_updates_both_copies_and_queues_a_second_request(ics: IcsDirectory) -> None:
    uid = ics.create_event(_draft()).provider_event_id
    ics.respond(ATT.email, uid, AttendeeStatus.ACCEPTED)
    ics.move_event(ORG, uid, MOVED, MOVED + HALF_HOUR)
    outbox = sorted(p.name for p in (ics.path / "outbox").iterdir())
    assert outbox == [f"{uid}.ics", f"{uid}.request-1.ics"]
    (update,) = icalendar.Calendar.from_ical(
        (ics.path / "outbox" / f"{uid}.request-1.ics").read_bytes()
    ).walk("VEVENT")
    assert int(update["SEQUENCE"]) == 1
    for email in (ORG.email, ATT.email):
        event = _ics_event(ics, email, uid)
        assert int(event["SEQUENCE"]) == 1
        assert event.decoded("DTSTART").astimezone(UTC) == MOVED
        assert event["ATTENDEE"].params["PARTSTAT"] == "NEEDS-ACTION"  # asked again
    state = ics.event_state(ORG, uid, ATT.email)
    assert (state.start, state.end, state.response) == (
        MOVED,
        MOVED + HALF_HOUR,
        AttendeeStatus.NEEDS_ACTION,
    )
    # A late answer to the old version (SEQUENCE 0) no longer counts.
    assert not ics.set_attendee_status(ORG, uid, ATT.email, AttendeeStatus.DECLINED, sequence=0)


def test_ics_retried_move_writes_nothing(ics: IcsDirectory) -> None:
    uid = ics.create_event(_draft()).provider_event_id
    ics.move_event(ORG, uid, MOVED, MOVED + HALF_HOUR)
    files = {p: p.read_bytes() for p in ics.path.rglob("*.ics")}
    ics.move_event(ORG, uid, MOVED, MOVED + HALF_HOUR)
    assert {p: p.read_bytes() for p in ics.path.rglob("*.ics")} == files


def test_ics_move_interrupted_before_the_organizers_copy_is_redone_once(
    ics: IcsDirectory, monkeypatch: pytest.MonkeyPatch
) -> None:
    uid = ics.create_event(_draft()).provider_event_id
    real_save = ics._files.save_calendar

    def crash_on_organizer(path: Path, calendar: icalendar.Calendar) -> None:
        if path.name == f"{ORG.email}.ics":
            raise OSError("disk full")
        real_save(path, calendar)

    monkeypatch.setattr(ics._files, "save_calendar", crash_on_organizer)
    with pytest.raises(OSError):
        ics.move_event(ORG, uid, MOVED, MOVED + HALF_HOUR)
    monkeypatch.setattr(ics._files, "save_calendar", real_save)
    assert int(_ics_event(ics, ATT.email, uid)["SEQUENCE"]) == 1  # half done
    ics.move_event(ORG, uid, MOVED, MOVED + HALF_HOUR)
    # Redone with the same SEQUENCE everywhere, one update in the outbox.
    assert [int(_ics_event(ics, e, uid)["SEQUENCE"]) for e in (ORG.email, ATT.email)] == [1, 1]
    assert sorted(p.name for p in (ics.path / "outbox").iterdir()) == [
        f"{uid}.ics",
        f"{uid}.request-1.ics",
    ]


def test_ics_move_of_cancelled_or_unknown_event_is_gone(ics: IcsDirectory) -> None:
    uid = ics.create_event(_draft()).provider_event_id
    ics.cancel_event(ORG, uid)
    with pytest.raises(ResourceGone):
        ics.move_event(ORG, uid, MOVED, MOVED + HALF_HOUR)
    with pytest.raises(ResourceGone):
        ics.move_event(ORG, "never-booked@goodwill", MOVED, MOVED + HALF_HOUR)
    with pytest.raises(InvalidRequest):
        ics.move_event(ORG, uid, MOVED + HALF_HOUR, MOVED)


# -- End to end: the conflict watch moves the ICS event ----------------------------------------

E2E_POLICY = """\
owner: {email: alex@corp.example, name: Alex Doe, timezone: Europe/London}
calendar: {provider: ics}
meeting: {kind: coffee, duration: 30m}
availability:
  working_hours: {mon-fri: "09:00-17:00"}
  windows: ["10:00-11:30", "14:00-16:30"]
  min_notice: 1d
  horizon: 14d
  buffer: 10m
  max_per_day: 1
  max_per_week: 3
tiers:
  peer: {every: 8w, mode: auto}
stakeholders:
  - {email: kim@corp.example, name: Kim Ito, tier: peer}
allowed_domains: [corp.example]
"""


def test_conflict_watch_moves_the_booked_ics_event(tmp_path: Path) -> None:
    calendars, policies = tmp_path / "calendars", tmp_path / "policies"
    calendars.mkdir()
    policies.mkdir()
    for who in ("alex", "kim"):
        empty = icalendar.Calendar()
        empty.add("PRODID", "-//goodwill tests//EN")
        empty.add("VERSION", "2.0")
        (calendars / f"{who}@corp.example.ics").write_bytes(empty.to_ical())
    (policies / "alex.yaml").write_text(E2E_POLICY)
    clock = FixedClock(datetime(2027, 3, 1, 8, tzinfo=UTC))
    settings = Settings(
        _env_file=None,
        data_dir=tmp_path / "data",
        database_url=f"sqlite:///{(tmp_path / 'goodwill.db').as_posix()}",
        policy_dir=policies,
        calendars_dir=calendars,
    )
    app = bootstrap(settings, clock=clock, auto_migrate=True)
    try:
        p = app.pipeline
        planning.register_policies(p)
        user = app.store.get_user_by_email("alex@corp.example")
        assert user is not None
        planning.plan_user(p, user.id)
        (meeting_id,) = app.store.approved_needing_send(clock.now(), 10)
        booking.book_meeting(p, meeting_id)
        booked = app.store.get_meeting(meeting_id)
        assert booked is not None
        assert booked.state == MeetingState.BOOKED
        policy = policy_for(p, user)
        assert policy is not None
        directory = IcsDirectory(calendars, clock=clock)
        # Our own event alone is no conflict: it carries its key.
        assert conflicts.watch_conflicts(p, user.id, policy, p.backends(policy)) == 0
        # Alex accepts something overlapping the coffee's second half.
        alex = policy.owner.person
        directory.add_event(alex, booked.start + timedelta(minutes=15), booked.end + HALF_HOUR)
        assert conflicts.watch_conflicts(p, user.id, policy, p.backends(policy)) == 1
        moved = app.store.get_meeting(meeting_id)
        assert moved is not None
        assert moved.start != booked.start
        assert moved.provider_event_id == booked.provider_event_id
        uid = booked.provider_event_id
        assert uid is not None
        # The same event moved in both files, and the update waits in the outbox.
        for email in ("alex@corp.example", "kim@corp.example"):
            cal = icalendar.Calendar.from_ical((calendars / f"{email}.ics").read_bytes())
            (event,) = [e for e in cal.walk("VEVENT") if str(e["UID"]) == uid]
            assert event.decoded("DTSTART").astimezone(UTC) == moved.start
            assert int(event["SEQUENCE"]) == 1
        assert (calendars / "outbox" / f"{uid}.request-1.ics").exists()
        # And the next pass finds nothing to do.
        assert conflicts.watch_conflicts(p, user.id, policy, p.backends(policy)) == 0
    finally:
        app.engine.dispose()
