"""iMIP (RFC 6047) end to end: our invites through a real SMTP server, read back as a receiver
would, fed to a real iMIP consumer (Xandikos ``import-imip``), and replies applied on Radicale.
"""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from email import message_from_bytes, policy
from email.message import EmailMessage, Message
from pathlib import Path
from uuid import uuid4
from zoneinfo import ZoneInfo

import icalendar
import pytest
from pydantic import SecretStr

from connectors.caldav import CalDAVCalendar
from connectors.imip import (
    ImipSender,
    apply_reply,
    build_cancel,
    build_request,
    parse_reply,
)
from scheduler.core.errors import (
    AuthorizationRevoked,
    CalendarDataError,
    InvalidRequest,
    ProviderUnavailable,
)
from scheduler.core.model import AttendeeStatus, EventDraft, Person
from scheduler.settings import SmtpSettings
from tests.integration.caldav_servers import (  # noqa: F401  (fixtures)
    RadicaleServer,
    SmtpSink,
    free_port,
    radicale_fixture,
    smtp_sink_fixture,
    unique_user,
)

ORGANIZER = Person("olga@corp.example", "Olga Org", "Europe/London")
ATTENDEE = Person("al@corp.example", "Al Att", "America/New_York")
# 2027-03-30 is after the UK's DST change (BST, UTC+1): 13:00Z shows as 14:00 London.
START = datetime(2027, 3, 30, 13, 0, tzinfo=UTC)


def _draft(
    key: str | None = None, organizer: Person = ORGANIZER, attendee: Person = ATTENDEE
) -> EventDraft:
    return EventDraft(
        idempotency_key=key or f"imip-{uuid4().hex[:10]}",
        organizer=organizer,
        attendee=attendee,
        start=START,
        end=START + timedelta(minutes=30),
        title="Coffee: Olga / Al",
        description="Catch up.",
        location="Level 2 café",
    )


def _sender(sink: SmtpSink) -> ImipSender:
    return ImipSender(SmtpSettings(host="127.0.0.1", port=sink.port), timeout_s=5)


def _calendar_part(raw: bytes) -> tuple[Message, bytes]:
    mail = message_from_bytes(raw, policy=policy.default)
    parts = [p for p in mail.walk() if p.get_content_type() == "text/calendar"]
    assert len(parts) == 1
    payload = parts[0].get_payload(decode=True)
    assert isinstance(payload, bytes)
    return parts[0], payload


def _received(sink: SmtpSink, address: str, count: int = 1) -> list[bytes]:
    got = sink.wait_for(lambda m: address in m.rcpt_tos and len(sink.to(address)) >= count)
    return [m.data for m in got]


def test_request_arrives_as_valid_imip(smtp_sink: SmtpSink) -> None:
    attendee = Person(f"{unique_user('a')}@corp.example", "Al Att", "America/New_York")
    draft = _draft(attendee=attendee)
    _sender(smtp_sink).send(build_request(draft))
    [raw] = _received(smtp_sink, attendee.email)

    # The whole message crossed SMTP with CRLF line endings only.
    assert b"\n" not in raw.replace(b"\r\n", b"")
    part, ics = _calendar_part(raw)
    # RFC 6047 §2.4: the MIME method parameter equals the VCALENDAR METHOD.
    assert part.get_param("method") == "REQUEST"
    assert part.get_content_charset() == "utf-8"
    # CRLF line endings inside the calendar part itself (RFC 5545 §3.1).
    assert ics.count(b"\r\n") == ics.count(b"\n") > 10
    cal = icalendar.Calendar.from_ical(ics)
    assert str(cal["METHOD"]) == "REQUEST"
    [event] = cal.walk("VEVENT")
    assert str(event["UID"]) == f"{draft.idempotency_key}@goodwill"
    assert int(event["SEQUENCE"]) == 0
    assert "DTSTAMP" in event
    assert str(event["ORGANIZER"]) == "mailto:olga@corp.example"
    who = event["ATTENDEE"]
    assert str(who) == f"mailto:{attendee.email}"
    assert (who.params["RSVP"], who.params["PARTSTAT"]) == ("TRUE", "NEEDS-ACTION")
    # Times in the organizer's zone with its VTIMEZONE, meaning the same instants.
    assert event["DTSTART"].params["TZID"] == "Europe/London"
    assert event["DTEND"].params["TZID"] == "Europe/London"
    assert b"DTSTART;TZID=Europe/London:20270330T140000" in ics
    assert [str(tz["TZID"]) for tz in cal.walk("VTIMEZONE")] == ["Europe/London"]
    assert event.decoded("DTSTART") == START
    assert event.decoded("DTEND") == START + timedelta(minutes=30)
    # The VTIMEZONE alone (not the IANA name) gives the right offset: BST on that day.
    vtz = cal.walk("VTIMEZONE")[0].to_tz()
    local = datetime(2027, 3, 30, 14, 0, tzinfo=vtz)
    assert local.astimezone(UTC) == START
    mail = message_from_bytes(raw, policy=policy.default)
    assert "olga@corp.example" in str(mail["From"])
    assert attendee.email in str(mail["To"])
    assert mail.get_content_type() == "multipart/alternative"


def test_cancel_has_method_cancel_and_a_higher_sequence(smtp_sink: SmtpSink) -> None:
    attendee = Person(f"{unique_user('c')}@corp.example", "Cy Att", "Asia/Tokyo")
    draft = _draft(attendee=attendee)
    sender = _sender(smtp_sink)
    sender.send(build_request(draft))
    sender.send(build_cancel(draft, 1))
    raws = _received(smtp_sink, attendee.email, count=2)
    events = {}
    for raw in raws:
        part, ics = _calendar_part(raw)
        cal = icalendar.Calendar.from_ical(ics)
        assert part.get_param("method") == str(cal["METHOD"])
        events[str(cal["METHOD"])] = cal.walk("VEVENT")[0]
    request, cancel = events["REQUEST"], events["CANCEL"]
    assert str(cancel["UID"]) == str(request["UID"])
    assert int(cancel["SEQUENCE"]) > int(request["SEQUENCE"])
    assert str(cancel["STATUS"]) == "CANCELLED"
    assert str(cancel["ATTENDEE"]) == f"mailto:{attendee.email}"


def test_xandikos_accepts_our_invite_as_a_real_imip_consumer(tmp_path: Path) -> None:
    """Xandikos' import-imip applies a REQUEST into the attendee's calendar; bad input fails."""
    message = build_request(_draft("consumer-1")).as_bytes(policy=policy.SMTP)
    run = subprocess.run(
        [sys.executable, "-m", "xandikos", "import-imip", "-d", str(tmp_path / "store"),
         "--principal", "/al/", "--autocreate"],
        input=message, capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr.decode()
    # It filed the REQUEST in the inbox and auto-applied it to the calendar.
    store = tmp_path / "store" / "al"
    [inbox_item] = [p.read_bytes() for p in (store / "inbox").glob("*.ics")]
    [cal_item] = [p.read_bytes() for p in (store / "calendars" / "calendar").glob("*.ics")]
    assert b"METHOD:REQUEST" in inbox_item
    applied = icalendar.Calendar.from_ical(cal_item).walk("VEVENT")[0]
    assert str(applied["UID"]) == "consumer-1@goodwill"
    assert applied.decoded("DTSTART") == START

    broken = EmailMessage()
    broken["From"], broken["To"], broken["Subject"] = "a@x.example", "b@x.example", "no ics"
    broken.set_content("just text")
    bad = subprocess.run(
        [sys.executable, "-m", "xandikos", "import-imip", "-d", str(tmp_path / "bad"),
         "--principal", "/al/", "--autocreate"],
        input=broken.as_bytes(policy=policy.SMTP), capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    assert bad.returncode != 0


def _reply_mail(uid: str, attendee: str, partstat: str, sequence: int) -> bytes:
    """A REPLY as an attendee's client sends it (RFC 5546 §3.2.3)."""
    cal = icalendar.Calendar()
    cal.add("prodid", "-//Some Client//EN")
    cal.add("version", "2.0")
    cal.add("method", "REPLY")
    event = icalendar.Event()
    event.add("uid", uid)
    event.add("dtstamp", datetime(2027, 3, 1, tzinfo=UTC))
    event.add("sequence", sequence)
    event.add("dtstart", START.astimezone(ZoneInfo("America/New_York")))
    event.add("organizer", "mailto:olga@corp.example")
    who = icalendar.vCalAddress(f"mailto:{attendee.upper()}")
    who.params["PARTSTAT"] = partstat
    event.add("attendee", who)
    cal.add_component(event)
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = attendee, "olga@corp.example", "Accepted"
    mail.set_content(f"{partstat.title()}.")
    mail.add_attachment(
        cal.to_ical(), maintype="text", subtype="calendar", params={"method": "REPLY"}
    )
    return mail.as_bytes(policy=policy.SMTP)


def test_parse_reply_reads_the_answer() -> None:
    reply = parse_reply(_reply_mail("k@goodwill", "Al@Corp.example", "TENTATIVE", 2))
    assert reply.uid == "k@goodwill"
    assert reply.attendee_email == "al@corp.example"
    assert reply.partstat is AttendeeStatus.TENTATIVE
    assert reply.sequence == 2


def test_parse_reply_refuses_what_is_not_a_reply() -> None:
    request = build_request(_draft()).as_bytes(policy=policy.SMTP)
    with pytest.raises(CalendarDataError, match="REPLY"):
        parse_reply(request)
    plain = EmailMessage()
    plain["Subject"] = "hello"
    plain.set_content("no calendar here")
    with pytest.raises(CalendarDataError, match="no text/calendar"):
        parse_reply(plain.as_bytes())


class _RadicaleCalendars:
    def __init__(self, server: RadicaleServer) -> None:
        org, att = unique_user("org"), unique_user("att")
        self.organizer = Person(f"{org}@corp.example", "Olga Org", "Europe/London")
        self.attendee = Person(f"{att}@corp.example", "Al Att", "America/New_York")
        server.make_calendar(f"{org}/calendar/")
        self.server = server

    def connector(self, sender: ImipSender | None) -> CalDAVCalendar:
        return CalDAVCalendar(
            self.server.url,
            "service",
            "secret",
            server="radicale",
            calendar_path="/{user}/calendar/",
            imip_sender=sender,
        )


def test_radicale_booking_mails_invite_once_and_applies_reply(
    radicale: RadicaleServer, smtp_sink: SmtpSink
) -> None:
    cals = _RadicaleCalendars(radicale)
    draft = _draft(organizer=cals.organizer, attendee=cals.attendee)
    with cals.connector(_sender(smtp_sink)) as cal:
        uid = cal.create_event(draft).provider_event_id
        assert cal.create_event(draft).created is False
        [raw] = _received(smtp_sink, cals.attendee.email)
        assert len(smtp_sink.to(cals.attendee.email)) == 1  # the retry sent nothing
        part, ics = _calendar_part(raw)
        assert part.get_param("method") == "REQUEST"
        assert f"UID:{uid}".encode() in ics
        assert b"X-GOODWILL" not in ics  # our bookkeeping stays private

        # The attendee's client answers by e-mail; we apply it to the organizer's copy.
        reply = parse_reply(_reply_mail(uid, cals.attendee.email, "ACCEPTED", 0))
        assert apply_reply(cal, cals.organizer, reply) is True
        state = cal.event_state(cals.organizer, uid, cals.attendee.email)
        assert state.response is AttendeeStatus.ACCEPTED

        cal.cancel_event(cals.organizer, uid)
        cal.cancel_event(cals.organizer, uid)
        raws = _received(smtp_sink, cals.attendee.email, count=2)
        methods = [_calendar_part(r)[0].get_param("method") for r in raws]
        assert methods == ["REQUEST", "CANCEL"]
        # A late acceptance of the old SEQUENCE does not revive the cancelled meeting.
        assert apply_reply(cal, cals.organizer, reply) is False
        assert cal.event_state(cals.organizer, uid, cals.attendee.email).cancelled


def test_invite_is_not_lost_when_smtp_was_down(
    radicale: RadicaleServer, smtp_sink: SmtpSink
) -> None:
    """PUT succeeded, mail failed: the retry finds the event and still sends the invite."""
    cals = _RadicaleCalendars(radicale)
    draft = _draft(organizer=cals.organizer, attendee=cals.attendee)
    dead = ImipSender(SmtpSettings(host="127.0.0.1", port=free_port()), timeout_s=2)
    with cals.connector(dead) as cal, pytest.raises(ProviderUnavailable):
        cal.create_event(draft)
    assert smtp_sink.to(cals.attendee.email) == []
    with cals.connector(_sender(smtp_sink)) as cal:
        again = cal.create_event(draft)
        assert again.created is False
        assert len(_received(smtp_sink, cals.attendee.email)) == 1
        cal.create_event(draft)
    assert len(smtp_sink.to(cals.attendee.email)) == 1


def test_sender_reports_an_unreachable_server() -> None:
    dead = ImipSender(SmtpSettings(host="127.0.0.1", port=free_port()), timeout_s=2)
    with pytest.raises(ProviderUnavailable) as caught:
        dead.send(build_request(_draft()))
    assert caught.value.transient


def test_sender_logs_in_and_reports_a_refused_login() -> None:
    sink = SmtpSink(port=free_port(), login=("goodwill", "s3cret")).start()
    try:
        draft = _draft()
        good = SmtpSettings(
            host="127.0.0.1", port=sink.port, user="goodwill", password=SecretStr("s3cret")
        )
        ImipSender(good, timeout_s=5).send(build_request(draft))
        assert len(sink.to(ATTENDEE.email)) == 1
        bad = good.model_copy(update={"password": SecretStr("wrong")})
        with pytest.raises(AuthorizationRevoked):
            ImipSender(bad, timeout_s=5).send(build_request(draft))
        anonymous = good.model_copy(update={"user": None})
        with pytest.raises(InvalidRequest):  # 530 authentication required: a setup error
            ImipSender(anonymous, timeout_s=5).send(build_request(draft))
        assert len(sink.to(ATTENDEE.email)) == 1
    finally:
        sink.stop()
