"""Google connector on the wire: the real google-api-python-client and google-auth vs the emulator.

Every test ends by asserting the emulator saw no request body that breaks the calendar v3 schema.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth.credentials import Credentials
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError

from connectors.google import (
    FREEBUSY_MAX_SPAN,
    SCOPES,
    GoogleCalendar,
    google_event_id,
    service_account_credentials,
    user_credentials,
)
from scheduler.core.clock import FixedClock
from scheduler.core.errors import (
    AuthorizationRevoked,
    CalendarUnavailable,
    InvalidRequest,
    ProviderUnavailable,
    RateLimited,
    ResourceGone,
)
from scheduler.core.intervals import Interval
from scheduler.core.model import (
    AttendeeStatus,
    BusyQuery,
    EventDraft,
    EventStatus,
    Person,
    ShowAs,
)
from scheduler.settings import GoogleSettings
from tests.emulators.google_emulator import GoogleEmulator
from tests.emulators.google_schema import CalendarSchema

OWNER = Person("alex@corp.example", "Alex Doe", "Europe/London")
SAM = Person("sam@corp.example", "Sam Lee", "America/New_York")
MONDAY = datetime(2027, 3, 1, tzinfo=UTC)


def _z(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _timed(start: datetime, minutes: int = 60, **extra: Any) -> dict[str, Any]:
    return {
        "summary": "x",
        "start": {"dateTime": _z(start)},
        "end": {"dateTime": _z(start + timedelta(minutes=minutes))},
        **extra,
    }


def _people(count: int) -> list[Person]:
    return [Person(f"p{i:03d}@corp.example", f"P {i}", "Europe/London") for i in range(count)]


@pytest.fixture
def emulator() -> Iterator[GoogleEmulator]:
    emu = GoogleEmulator(page_size=3).start()
    for person in (OWNER, SAM):
        emu.add_calendar(person.email, person.timezone)
        emu.add_refresh_token(f"1//rt-{person.email}", person.email)
    try:
        yield emu
    finally:
        emu.stop()
    assert emu.schema_violations == []


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def make_google(emulator: GoogleEmulator, sleeps: list[float]) -> Callable[..., GoogleCalendar]:
    def make(
        credentials_for: Callable[[str], Credentials] | None = None, timeout_s: float = 5.0
    ) -> GoogleCalendar:
        settings = GoogleSettings(
            token_uri=emulator.token_uri, api_endpoint=emulator.api_endpoint, timeout_s=timeout_s
        )

        def by_refresh_token(email: str) -> Credentials:
            return user_credentials(f"1//rt-{email}", "cid", "csecret", emulator.token_uri)

        return GoogleCalendar(settings, credentials_for or by_refresh_token, sleep=sleeps.append)

    return make


@pytest.fixture
def google(make_google: Callable[..., GoogleCalendar]) -> GoogleCalendar:
    return make_google()


def _draft(key: str = "meeting-1", *, video: str | None = None, hour: int = 14) -> EventDraft:
    start = MONDAY.replace(hour=hour)
    return EventDraft(
        idempotency_key=key,
        organizer=OWNER,
        attendee=SAM,
        start=start,
        end=start + timedelta(minutes=30),
        title="Coffee: Alex / Sam",
        description="Catch up.",
        location="Level 2 café",
        video=video,
    )


# -- busy: freeBusy batching and chunking ---------------------------------------------------------


@pytest.mark.parametrize(("stakeholders", "calls"), [(1, 1), (50, 1), (51, 2), (100, 2), (101, 3)])
def test_freebusy_batches_at_most_50_calendars_per_query(
    emulator: GoogleEmulator, google: GoogleCalendar, stakeholders: int, calls: int
) -> None:
    people = _people(stakeholders)
    for person in people:
        emulator.add_calendar(person.email)
    last = people[-1]
    emulator.seed(last.email, _timed(MONDAY.replace(hour=10)))
    window = Interval(MONDAY, MONDAY + timedelta(days=14))

    result = google.busy(BusyQuery(window=window, people=(OWNER, *people)))

    requests = emulator.requests_to("POST", "/freeBusy")
    assert len(requests) == calls
    sizes = [len(r.body["items"]) for r in requests]
    assert max(sizes) <= 50
    assert sum(sizes) == stakeholders
    # The owner is read through events.list, never through freeBusy.
    assert all(OWNER.email not in {i["id"] for i in r.body["items"]} for r in requests)
    assert [(b.start, b.end) for b in result.blocks[last.email]] == [
        (MONDAY.replace(hour=10), MONDAY.replace(hour=11))
    ]
    assert result.unavailable == {}
    assert set(result.blocks) == {OWNER.email, *(p.email for p in people)}


def test_ninety_day_window_is_chunked_and_blocks_are_merged(
    emulator: GoogleEmulator, google: GoogleCalendar
) -> None:
    window = Interval(MONDAY, MONDAY + timedelta(days=90))
    boundary = MONDAY + FREEBUSY_MAX_SPAN
    # A two-hour event across the chunk edge, and one near the end of the window.
    emulator.seed(SAM.email, _timed(boundary - timedelta(hours=1), minutes=120))
    emulator.seed(SAM.email, _timed(MONDAY + timedelta(days=85), minutes=30))

    result = google.busy(BusyQuery(window=window, people=(OWNER, SAM)))

    requests = emulator.requests_to("POST", "/freeBusy")
    assert len(requests) == 2
    spans = [
        datetime.fromisoformat(r.body["timeMax"]) - datetime.fromisoformat(r.body["timeMin"])
        for r in requests
    ]
    assert all(span <= timedelta(days=60) for span in spans)
    assert sum(spans, timedelta()) == timedelta(days=90)
    assert [(b.start, b.end) for b in result.blocks[SAM.email]] == [
        (boundary - timedelta(hours=1), boundary + timedelta(hours=1)),
        (MONDAY + timedelta(days=85), MONDAY + timedelta(days=85, minutes=30)),
    ]


def test_unreadable_calendars_are_unavailable_with_a_reason(
    emulator: GoogleEmulator, google: GoogleCalendar
) -> None:
    ghost = Person("ghost@corp.example", "Ghost", "UTC")
    secret = Person("secret@corp.example", "Secret", "UTC")
    emulator.add_calendar(secret.email)
    emulator.forbid(secret.email)
    emulator.seed(SAM.email, _timed(MONDAY.replace(hour=9)))

    result = google.busy(
        BusyQuery(
            window=Interval(MONDAY, MONDAY + timedelta(days=1)), people=(OWNER, SAM, ghost, secret)
        )
    )

    assert "notFound" in result.unavailable[ghost.email]
    assert "forbidden" in result.unavailable[secret.email]
    assert ghost.email not in result.blocks
    assert secret.email not in result.blocks
    assert len(result.blocks[SAM.email]) == 1


def test_freebusy_reflects_invites_and_declines(
    emulator: GoogleEmulator, google: GoogleCalendar
) -> None:
    window = Interval(MONDAY, MONDAY + timedelta(days=1))
    created = google.create_event(_draft(hour=14))
    assert len(google.busy(BusyQuery(window=window, people=(OWNER, SAM))).blocks[SAM.email]) == 1
    emulator.respond(OWNER.email, created.provider_event_id, SAM.email, "declined")
    assert google.busy(BusyQuery(window=window, people=(OWNER, SAM))).blocks[SAM.email] == []


def test_partial_responses_carry_everything_the_connector_reads(
    emulator: GoogleEmulator, google: GoogleCalendar, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 13: events are listed and read with ``fields`` (a partial response): what comes
    back is exactly what the whole resources give (busy blocks, contacts, answers)."""
    import connectors.google as google_module

    def at(hour: int, day: int = 0) -> datetime:
        return MONDAY.replace(hour=hour) + timedelta(days=day)

    invite = {"organizer": {"email": SAM.email}}
    emulator.seed(OWNER.email, _timed(at(8)))
    emulator.seed(OWNER.email, _timed(at(9), transparency="transparent"))
    emulator.seed(OWNER.email, _timed(at(10), eventType="outOfOffice"))
    emulator.seed(OWNER.email, _timed(at(11), status="tentative"))
    emulator.seed(
        OWNER.email,
        {"summary": "day", "start": {"date": "2027-03-01"}, "end": {"date": "2027-03-02"}},
    )
    for hour, answer in ((12, "needsAction"), (13, "declined"), (15, "tentative")):
        emulator.seed(
            SAM.email,
            _timed(
                at(hour), **invite, attendees=[{"email": OWNER.email, "responseStatus": answer}]
            ),
        )
    emulator.seed(
        OWNER.email,
        _timed(at(9, day=-7), attendees=[{"email": SAM.email, "responseStatus": "accepted"}]),
    )
    created = google.create_event(_draft(hour=16))
    emulator.respond(OWNER.email, created.provider_event_id, SAM.email, "tentative")
    window = Interval(MONDAY - timedelta(days=8), MONDAY + timedelta(days=1))

    def read() -> tuple[Any, ...]:
        busy = google.busy(BusyQuery(window=window, people=(OWNER, SAM)))
        contacts = google.last_contacts(OWNER, [SAM.email], window.start, MONDAY)
        state = google.event_state(OWNER, created.provider_event_id, SAM.email)
        return busy, contacts, state

    before = len(emulator.requests)
    partial = read()
    reads = [r for r in emulator.requests[before:] if r.method == "GET"]
    assert len(reads) >= 2
    assert all(r.query.get("fields") for r in reads)  # every list and get: a partial response
    monkeypatch.setattr(google_module, "_LIST_FIELDS", "*")
    monkeypatch.setattr(google_module, "_EVENT_FIELDS", "*")
    assert read() == partial
    busy, contacts, _ = partial
    assert len(busy.blocks[OWNER.email]) == 10
    assert contacts == {SAM.email: at(10, day=-7)}


def test_replies_parsed_by_orjson_read_as_the_librarys_own_json_model_reads_them(
    emulator: GoogleEmulator,
    make_google: Callable[..., GoogleCalendar],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 13: the client parses replies with orjson (``connectors.google_json``); busy time,
    contacts, answers and a created event are the same as with the library's ``JsonModel``."""
    from googleapiclient.model import JsonModel

    import connectors.google as google_module
    from connectors.google_json import _OrjsonModel

    for hour in (8, 9, 10):
        emulator.seed(
            OWNER.email,
            _timed(
                MONDAY.replace(hour=hour) - timedelta(days=hour - 7),
                attendees=[{"email": SAM.email, "responseStatus": "accepted"}],
                summary="Kaffee ☕ mit Zoë",
            ),
        )
    window = Interval(MONDAY - timedelta(days=8), MONDAY + timedelta(days=1))

    def read(google: GoogleCalendar, hour: int) -> tuple[Any, ...]:
        created = google.create_event(_draft(hour=hour))
        busy = google.busy(BusyQuery(window=window, people=(OWNER, SAM)))
        contacts = google.last_contacts(OWNER, [SAM.email], window.start, MONDAY)
        state = google.event_state(OWNER, created.provider_event_id, SAM.email)
        return created.created, busy, contacts, state

    fast = make_google()
    assert isinstance(fast._collections().events._model, _OrjsonModel)
    ours = read(fast, 14)
    monkeypatch.setattr(google_module, "json_model", lambda: JsonModel(False))
    plain = make_google()
    assert type(plain._collections().events._model) is JsonModel
    theirs = read(plain, 14)  # the same draft: found as created (409), same answers
    assert (ours[1:], ours[0]) == (theirs[1:], True)
    assert len(ours[1].blocks[OWNER.email]) == 4
    assert ours[2] == {SAM.email: MONDAY.replace(hour=9) - timedelta(days=1)}  # its end


def test_owner_calendar_is_read_with_event_detail_for_busy_rules(
    emulator: GoogleEmulator, google: GoogleCalendar
) -> None:
    def at(hour: int) -> datetime:
        return MONDAY.replace(hour=hour)

    invite = {"organizer": {"email": SAM.email}}
    emulator.seed(OWNER.email, _timed(at(8)))  # plain opaque event, organised by the owner
    emulator.seed(OWNER.email, _timed(at(9), transparency="transparent"))
    emulator.seed(OWNER.email, _timed(at(10), eventType="outOfOffice"))
    emulator.seed(OWNER.email, _timed(at(11), status="tentative"))
    emulator.seed(
        OWNER.email,
        {"summary": "holiday", "start": {"date": "2027-03-01"}, "end": {"date": "2027-03-02"}},
    )
    for hour, answer in ((12, "needsAction"), (13, "declined"), (15, "tentative")):
        emulator.seed(
            SAM.email,
            _timed(
                at(hour), **invite, attendees=[{"email": OWNER.email, "responseStatus": answer}]
            ),
        )
    cancelled = emulator.seed(OWNER.email, _timed(at(16)))
    google.cancel_event(OWNER, cancelled)

    result = google.busy(
        BusyQuery(window=Interval(MONDAY, MONDAY + timedelta(days=1)), people=(OWNER,))
    )

    by_start = {(b.start, b.all_day): b for b in result.blocks[OWNER.email]}
    assert len(by_start) == 8  # the cancelled event is not listed
    assert by_start[at(8), False].show_as is ShowAs.BUSY
    assert by_start[at(8), False].response is AttendeeStatus.ORGANIZER
    assert by_start[at(9), False].show_as is ShowAs.FREE
    assert by_start[at(10), False].show_as is ShowAs.OOF
    assert by_start[at(11), False].status is EventStatus.TENTATIVE
    holiday = by_start[MONDAY, True]  # London is on UTC on 1 March
    assert holiday.end == MONDAY + timedelta(days=1)
    assert by_start[at(12), False].response is AttendeeStatus.NEEDS_ACTION
    assert by_start[at(13), False].response is AttendeeStatus.DECLINED
    assert by_start[at(15), False].response is AttendeeStatus.TENTATIVE
    assert by_start[at(15), False].show_as is ShowAs.TENTATIVE
    # Page size 3 at the emulator: 8 events need 3 pages, all fetched.
    assert emulator.count("GET", "/calendars/primary/events") == 3
    assert emulator.count("POST", "/freeBusy") == 0


def test_all_day_events_use_the_owners_zone(
    emulator: GoogleEmulator, google: GoogleCalendar
) -> None:
    summer = datetime(2027, 7, 5, tzinfo=UTC)
    emulator.seed(
        OWNER.email,
        {"summary": "off", "start": {"date": "2027-07-05"}, "end": {"date": "2027-07-06"}},
    )
    result = google.busy(
        BusyQuery(window=Interval(summer, summer + timedelta(days=1)), people=(OWNER,))
    )
    (block,) = result.blocks[OWNER.email]
    # Midnight in London during BST is 23:00 UTC the day before.
    assert block.all_day
    assert block.start == summer - timedelta(hours=1)
    assert block.end == summer + timedelta(hours=23)


# -- contact history ------------------------------------------------------------------------------


def test_last_contacts_counts_attended_meetings_only(
    emulator: GoogleEmulator, google: GoogleCalendar
) -> None:
    kim, lee, pat, jo = (f"{n}@corp.example" for n in ("kim", "lee", "pat", "jo"))
    emulator.add_calendar(jo)
    day = MONDAY - timedelta(days=30)
    emulator.seed(
        OWNER.email, _timed(day, attendees=[{"email": SAM.email, "responseStatus": "accepted"}])
    )
    emulator.seed(
        OWNER.email,
        _timed(
            day + timedelta(days=3),
            attendees=[{"email": SAM.email, "responseStatus": "needsAction"}],
        ),
    )
    emulator.seed(
        OWNER.email, _timed(day, attendees=[{"email": kim, "responseStatus": "declined"}])
    )
    gone = emulator.seed(OWNER.email, _timed(day, attendees=[{"email": lee}]))
    google.cancel_event(OWNER, gone)
    # jo organised a meeting with the owner and pat; the owner declined it -> no contact with pat.
    emulator.seed(
        jo,
        _timed(
            day + timedelta(days=1),
            organizer={"email": jo},
            attendees=[
                {"email": OWNER.email, "responseStatus": "declined"},
                {"email": pat, "responseStatus": "accepted"},
            ],
        ),
    )
    # jo also invited the owner to one they accepted: jo (organizer) counts.
    emulator.seed(
        jo,
        _timed(
            day + timedelta(days=2),
            organizer={"email": jo},
            attendees=[{"email": OWNER.email, "responseStatus": "accepted"}],
        ),
    )
    # A meeting after `until` does not count yet.
    emulator.seed(OWNER.email, _timed(MONDAY + timedelta(hours=1), attendees=[{"email": kim}]))

    found = google.last_contacts(
        OWNER, [SAM.email.upper(), kim, lee, pat, jo], MONDAY - timedelta(days=60), MONDAY
    )

    assert found == {
        SAM.email.upper(): day + timedelta(days=3, hours=1),
        jo: day + timedelta(days=2, hours=1),
    }


# -- create / cancel ------------------------------------------------------------------------------


def test_google_event_id_is_valid_deterministic_base32hex() -> None:
    first = google_event_id("meeting-42")
    assert re.fullmatch(r"[a-v0-9]{5,1024}", first)
    assert len(first) >= 26
    assert google_event_id("meeting-42") == first
    assert google_event_id("meeting-43") != first
    assert re.fullmatch(r"[a-v0-9]{5,1024}", google_event_id(""))


def test_create_sends_a_schema_valid_invite(
    emulator: GoogleEmulator, google: GoogleCalendar
) -> None:
    draft = _draft("meeting-meet", video="meet")

    created = google.create_event(draft)

    assert created.created is True
    assert created.provider_event_id == google_event_id("meeting-meet")
    (request,) = emulator.requests_to("POST", "/calendars/primary/events")
    assert request.query["sendUpdates"] == ["all"]
    assert request.query["conferenceDataVersion"] == ["1"]
    assert request.query["fields"] == ["id"]  # issue 13: the id is all a create reads back
    body = request.body
    assert re.fullmatch(r"[a-v0-9]{5,1024}", body["id"])
    assert CalendarSchema().check_event_insert(body) == []
    assert body["summary"] == draft.title
    assert body["location"] == "Level 2 café"
    assert body["start"] == {"dateTime": "2027-03-01T14:00:00+00:00", "timeZone": "Europe/London"}
    assert body["attendees"] == [{"email": SAM.email, "displayName": "Sam Lee"}]
    assert body["extendedProperties"]["private"] == {"goodwill": "1", "goodwillKey": "meeting-meet"}
    assert body["reminders"] == {"useDefault": True}
    create_request = body["conferenceData"]["createRequest"]
    assert create_request["conferenceSolutionKey"] == {"type": "hangoutsMeet"}
    assert create_request["requestId"]
    (stored,) = emulator.events(OWNER.email)
    assert stored["conferenceData"]["entryPoints"][0]["uri"].startswith("https://meet.google.com/")
    assert stored["attendees"][0]["responseStatus"] == "needsAction"


def test_create_without_video_sends_no_conference(
    emulator: GoogleEmulator, google: GoogleCalendar
) -> None:
    google.create_event(_draft("plain"))
    (request,) = emulator.requests_to("POST", "/calendars/primary/events")
    assert "conferenceDataVersion" not in request.query
    assert "conferenceData" not in request.body


def test_duplicate_create_returns_the_existing_event(
    emulator: GoogleEmulator, google: GoogleCalendar
) -> None:
    first = google.create_event(_draft())
    second = google.create_event(_draft())

    assert first.created is True
    assert second.created is False
    assert second.provider_event_id == first.provider_event_id
    assert len(emulator.events(OWNER.email)) == 1
    assert emulator.count("POST", "/calendars/primary/events") == 2


def test_lost_reply_then_retry_books_exactly_once(
    emulator: GoogleEmulator, google: GoogleCalendar
) -> None:
    # The insert is applied but the reply is lost (twice: httplib2 resends once by itself).
    emulator.faults.queue("drop_after", times=2, method="POST", path="/events")
    with pytest.raises(ProviderUnavailable):
        google.create_event(_draft())
    retried = google.create_event(_draft())  # what the worker does next

    assert retried.created is False
    assert len(emulator.events(OWNER.email)) == 1


def test_409_then_replication_lag_is_waited_out(
    emulator: GoogleEmulator, google: GoogleCalendar, sleeps: list[float]
) -> None:
    event_id = google.create_event(_draft()).provider_event_id
    emulator.faults.queue("status", status=404, method="GET", path=f"/events/{event_id}")

    again = google.create_event(_draft())

    assert again == again.__class__(event_id, created=False)
    assert sleeps == [0.5]


def test_recreating_a_cancelled_event_restores_it(
    emulator: GoogleEmulator, google: GoogleCalendar
) -> None:
    event_id = google.create_event(_draft()).provider_event_id
    google.cancel_event(OWNER, event_id)
    assert emulator.events(OWNER.email) == []

    again = google.create_event(_draft())

    assert again.created is False
    (restored,) = emulator.events(OWNER.email)
    assert restored["id"] == event_id
    assert restored["status"] == "confirmed"
    (patch,) = emulator.requests_to("PATCH", f"/events/{event_id}")
    assert patch.query["sendUpdates"] == ["all"]


def test_cancel_twice_counts_as_done(emulator: GoogleEmulator, google: GoogleCalendar) -> None:
    event_id = google.create_event(_draft()).provider_event_id

    google.cancel_event(OWNER, event_id)
    google.cancel_event(OWNER, event_id)  # 410 deleted
    google.cancel_event(OWNER, "nosuchevent0")  # 404

    deletes = emulator.requests_to("DELETE", f"/events/{event_id}")
    assert len(deletes) == 2
    assert all(d.query["sendUpdates"] == ["all"] for d in deletes)
    assert emulator.events(OWNER.email, include_cancelled=True)[0]["status"] == "cancelled"
    state = google.event_state(OWNER, event_id, SAM.email)
    assert state.cancelled is True


def test_event_state_follows_the_attendees_answer(
    emulator: GoogleEmulator, google: GoogleCalendar
) -> None:
    event_id = google.create_event(_draft()).provider_event_id
    state = google.event_state(OWNER, event_id, SAM.email)
    assert state.response is AttendeeStatus.NEEDS_ACTION
    assert (state.start, state.end) == (MONDAY.replace(hour=14), MONDAY.replace(hour=14, minute=30))

    for answer, expected in (
        ("accepted", AttendeeStatus.ACCEPTED),
        ("tentative", AttendeeStatus.TENTATIVE),
        ("declined", AttendeeStatus.DECLINED),
    ):
        emulator.respond(OWNER.email, event_id, SAM.email, answer)
        state = google.event_state(OWNER, event_id, SAM.email.upper())
        assert state.response is expected
        assert state.cancelled is False


def test_event_state_of_an_unknown_event_is_gone(google: GoogleCalendar) -> None:
    with pytest.raises(ResourceGone):
        google.event_state(OWNER, "nosuchevent0", SAM.email)


def test_listed_event_states_match_event_state_with_one_list(
    emulator: GoogleEmulator, google: GoogleCalendar
) -> None:
    ids = [
        google.create_event(_draft(f"meeting-{h}", hour=h)).provider_event_id
        for h in (9, 11, 13, 15)
    ]
    answered, cancelled, moved, untouched = ids
    emulator.respond(OWNER.email, answered, SAM.email, "accepted")
    google.cancel_event(OWNER, cancelled)
    later = MONDAY + timedelta(days=30)
    google.move_event(OWNER, moved, later, later + timedelta(minutes=30))
    window = Interval(MONDAY, MONDAY + timedelta(days=1))
    wanted = [(event_id, SAM.email) for event_id in ids] + [("nosuchevent0", SAM.email)]
    lists_before = emulator.count("GET", "/events")
    gets_before = sum(emulator.count("GET", f"/events/{event_id}") for event_id in ids)

    states = google.listed_event_states(OWNER, wanted, window)

    assert emulator.count("GET", "/events") == lists_before + 1
    assert sum(emulator.count("GET", f"/events/{e}") for e in ids) == gets_before
    # cancelled (not listed), moved out of the window, unknown: absent, asked one by one
    assert set(states) == {(answered, SAM.email), (untouched, SAM.email)}
    for key, state in states.items():
        assert state == google.event_state(OWNER, *key)
    assert states[(answered, SAM.email)].response is AttendeeStatus.ACCEPTED
    assert states[(untouched, SAM.email)].response is AttendeeStatus.NEEDS_ACTION


# -- authorization paths --------------------------------------------------------------------------


def _service_account_info(token_uri: str) -> dict[str, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return {
        "type": "service_account",
        "project_id": "goodwill-test",
        "private_key_id": "k1",
        "private_key": pem,
        "client_email": "goodwill@goodwill-test.iam.gserviceaccount.com",
        "client_id": "1234567890",
        "token_uri": "https://oauth2.googleapis.com/token",  # overridden by settings
    }


def test_service_account_acts_as_the_owner(
    emulator: GoogleEmulator, make_google: Callable[..., GoogleCalendar]
) -> None:
    info = _service_account_info("unused")
    google = make_google(lambda email: service_account_credentials(info, email, emulator.token_uri))

    created = google.create_event(_draft())

    (token,) = emulator.token_requests
    assert token["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    assert token["sub"] == OWNER.email
    assert token["claims"]["iss"] == info["client_email"]
    assert set(token["scope"].split()) == set(SCOPES)
    assert [e["id"] for e in emulator.events(OWNER.email)] == [created.provider_event_id]
    assert emulator.requests_to("POST", "/events")[0].user == OWNER.email


def test_user_oauth_refreshes_and_recovers_from_expiry(
    emulator: GoogleEmulator, google: GoogleCalendar
) -> None:
    window = Interval(MONDAY, MONDAY + timedelta(days=1))
    google.busy(BusyQuery(window=window, people=(OWNER, SAM)))
    assert [t["grant_type"] for t in emulator.token_requests] == ["refresh_token"]
    assert emulator.token_requests[0]["refresh_token"] == f"1//rt-{OWNER.email}"

    emulator.expire_tokens()  # every access token now answers 401: google-auth refreshes, replays
    result = google.busy(BusyQuery(window=window, people=(OWNER, SAM)))

    assert len(emulator.token_requests) == 2
    assert result.unavailable == {}


def test_one_client_per_owner_is_reused(emulator: GoogleEmulator, google: GoogleCalendar) -> None:
    window = Interval(MONDAY, MONDAY + timedelta(days=1))
    for _ in range(3):
        google.busy(BusyQuery(window=window, people=(OWNER, SAM)))
    google.busy(BusyQuery(window=window, people=(SAM, OWNER)))
    assert len(emulator.token_requests) == 2  # one grant per owner, not per call


# -- error translation ----------------------------------------------------------------------------


def _busy(google: GoogleCalendar) -> None:
    google.busy(BusyQuery(window=Interval(MONDAY, MONDAY + timedelta(days=1)), people=(OWNER, SAM)))


def test_429_with_retry_after_is_rate_limited(
    emulator: GoogleEmulator, google: GoogleCalendar
) -> None:
    emulator.faults.queue("status", status=429, retry_after=7, path="/freeBusy")
    with pytest.raises(RateLimited) as caught:
        _busy(google)
    assert caught.value.retry_after_s == 7.0
    assert caught.value.status == 429
    assert caught.value.transient is True
    assert emulator.count("POST", "/freeBusy") == 1  # no hidden client retries


@pytest.mark.parametrize(
    ("retry_after", "seconds"),
    [
        ("Mon, 01 Mar 2027 09:00:30 GMT", 30.0),  # an HTTP-date, 30 s after the injected now
        ("Mon, 01 Mar 2027 08:59:00 GMT", 0.0),  # already past: retry at once
    ],
)
def test_429_with_an_http_date_retry_after_counts_from_the_injected_clock(
    emulator: GoogleEmulator, retry_after: str, seconds: float
) -> None:
    # The emulator's own Date header is the wall clock; the injected clock must win.
    settings = GoogleSettings(token_uri=emulator.token_uri, api_endpoint=emulator.api_endpoint)
    google = GoogleCalendar(
        settings,
        lambda email: user_credentials(f"1//rt-{email}", "cid", "csecret", emulator.token_uri),
        sleep=lambda _s: None,
        clock=FixedClock(MONDAY.replace(hour=9)),
    )
    emulator.faults.queue("status", status=429, retry_after=retry_after, path="/freeBusy")
    with pytest.raises(RateLimited) as caught:
        _busy(google)
    assert caught.value.retry_after_s == seconds


@pytest.mark.parametrize(
    ("status", "reason", "expected"),
    [
        (403, "rateLimitExceeded", RateLimited),
        (403, "userRateLimitExceeded", RateLimited),
        (403, "quotaExceeded", RateLimited),
        (403, "forbiddenForServiceAccounts", CalendarUnavailable),
        (400, "badRequest", InvalidRequest),
        (500, "backendError", ProviderUnavailable),
        (503, "backendError", ProviderUnavailable),
    ],
)
def test_http_errors_are_translated(
    emulator: GoogleEmulator,
    google: GoogleCalendar,
    status: int,
    reason: str,
    expected: type[Exception],
) -> None:
    emulator.faults.queue("status", status=status, reason=reason, path="/events")
    with pytest.raises(expected) as caught:
        google.create_event(_draft())
    assert type(caught.value) is expected
    assert getattr(caught.value, "status", None) == status
    assert emulator.events(OWNER.email) == []


def test_rate_limit_without_retry_after_leaves_backoff_to_the_worker(
    emulator: GoogleEmulator, google: GoogleCalendar
) -> None:
    emulator.faults.queue("status", status=403, reason="rateLimitExceeded", path="/freeBusy")
    with pytest.raises(RateLimited) as caught:
        _busy(google)
    assert caught.value.retry_after_s is None


def test_503_is_provider_unavailable(emulator: GoogleEmulator, google: GoogleCalendar) -> None:
    emulator.faults.queue("status", status=503, path="/freeBusy")
    with pytest.raises(ProviderUnavailable) as caught:
        _busy(google)
    assert not isinstance(caught.value, RateLimited)
    assert caught.value.transient is True


def test_dropped_connection_is_provider_unavailable(
    emulator: GoogleEmulator, google: GoogleCalendar
) -> None:
    emulator.faults.queue("drop", times=2, path="/freeBusy")
    with pytest.raises(ProviderUnavailable):
        _busy(google)
    assert emulator.count("POST", "/freeBusy") == 2  # httplib2 resent once on a fresh socket


def test_one_dropped_connection_is_absorbed_by_httplib2(
    emulator: GoogleEmulator, google: GoogleCalendar
) -> None:
    emulator.faults.queue("drop", times=1, method="POST", path="/events")
    assert google.create_event(_draft()).created is True
    assert len(emulator.events(OWNER.email)) == 1


def test_slow_response_times_out_as_provider_unavailable(
    emulator: GoogleEmulator, make_google: Callable[..., GoogleCalendar]
) -> None:
    google = make_google(timeout_s=0.3)
    _busy(google)  # warm: token fetched
    emulator.faults.queue("slow", delay_s=1.0, path="/freeBusy")
    with pytest.raises(ProviderUnavailable):
        _busy(google)


def test_revoked_refresh_token_is_authorization_revoked(
    emulator: GoogleEmulator, google: GoogleCalendar
) -> None:
    emulator.revoke(f"1//rt-{OWNER.email}")
    with pytest.raises(AuthorizationRevoked) as caught:
        _busy(google)
    assert "invalid_grant" in str(caught.value)
    assert OWNER.email not in str(caught.value)
    assert caught.value.transient is False


def test_invalid_grant_during_a_refresh_is_authorization_revoked(
    emulator: GoogleEmulator, google: GoogleCalendar
) -> None:
    _busy(google)
    emulator.expire_tokens()
    emulator.faults.queue("invalid_grant")
    with pytest.raises(AuthorizationRevoked):
        _busy(google)


def test_401_after_refresh_is_authorization_revoked(
    emulator: GoogleEmulator, google: GoogleCalendar
) -> None:
    emulator.faults.queue("unauthorized", times=3, path="/freeBusy")
    with pytest.raises(AuthorizationRevoked) as caught:
        _busy(google)
    assert caught.value.status == 401
    assert emulator.faults.pending() == 0  # google-auth refreshed twice and replayed


def test_one_401_is_refreshed_transparently(
    emulator: GoogleEmulator, google: GoogleCalendar
) -> None:
    emulator.faults.queue("unauthorized", path="/freeBusy")
    _busy(google)
    assert len(emulator.token_requests) == 2


def test_forbidden_own_calendar_makes_the_owner_unavailable(
    emulator: GoogleEmulator, google: GoogleCalendar
) -> None:
    emulator.forbid(OWNER.email)
    result = google.busy(
        BusyQuery(window=Interval(MONDAY, MONDAY + timedelta(days=1)), people=(OWNER, SAM))
    )
    assert OWNER.email in result.unavailable
    assert OWNER.email not in result.blocks
    assert SAM.email in result.blocks  # the others are still read


# -- the schema check itself ----------------------------------------------------------------------


def test_schema_flags_what_the_client_would_send_as_is() -> None:
    schema = CalendarSchema()
    good = _timed(MONDAY, id="abcdefghij0123456789", attendees=[{"email": SAM.email}])
    assert schema.check_event_insert(good) == []

    bad = {
        **good,
        "id": "Not-Base32",
        "summary": 5,
        "bogusField": True,
        "attendees": [{"mail": SAM.email}],
        "transparency": "see-through",
    }
    problems = schema.check_event_insert(bad)
    for fragment in ("id:", "summary: expected string", "bogusField: unknown", "attendees[0].mail"):
        assert any(fragment in p for p in problems), (fragment, problems)
    assert any("transparency" in p for p in problems)
    assert sorted(schema.check_event_insert({"summary": "no times"})) == [
        "end: required",
        "start: required",
    ]
    assert schema.check_freebusy({"items": []}) == ["timeMin: required", "timeMax: required"]


def test_emulator_rejects_and_records_an_invalid_body(emulator: GoogleEmulator) -> None:
    service = build(
        "calendar",
        "v3",
        credentials=user_credentials(f"1//rt-{OWNER.email}", "cid", "cs", emulator.token_uri),
        static_discovery=True,
        cache_discovery=False,
        client_options={"api_endpoint": emulator.api_endpoint},
    )
    body = _timed(MONDAY, summary=5)
    with pytest.raises(HttpError) as caught:
        service.events().insert(calendarId="primary", body=body).execute()
    assert caught.value.status_code == 400
    assert emulator.schema_violations == ["events.insert: summary: expected string, got int"]
    assert emulator.events(OWNER.email) == []
    emulator.schema_violations.clear()  # seen and asserted: keep the fixture's check for the rest


def test_google_calendar_implements_the_ports(google: GoogleCalendar) -> None:
    from scheduler.core.ports import CalendarSource, CalendarWriter, ContactHistory, ResponseReader

    for port in (CalendarSource, CalendarWriter, ContactHistory, ResponseReader):
        assert isinstance(google, port), port.__name__
