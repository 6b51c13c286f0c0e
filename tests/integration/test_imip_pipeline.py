"""CalDAV without server scheduling, end to end: goodwill books on Radicale, the invite goes out
as an iMIP e-mail (aiosmtpd), the attendee's REPLY e-mail comes back through
`goodwill replies`, and the meeting follows it."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

import icalendar
import pytest

from scheduler.app import booking, planning
from scheduler.core.clock import FixedClock
from scheduler.core.states import MeetingState
from scheduler.entrypoints.bootstrap import bootstrap
from scheduler.entrypoints.cli import main
from scheduler.settings import Settings
from tests.integration.caldav_servers import RadicaleServer, SmtpSink, free_port, running_radicale

NOW = datetime(2027, 3, 1, 8, 0, tzinfo=UTC)


@pytest.fixture
def radicale(tmp_path: Path) -> Iterator[RadicaleServer]:
    with running_radicale(tmp_path / "radicale") as server:
        for user in ("ann", "bo"):
            server.make_calendar(f"{user}/calendar/")
        yield server


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    s = SmtpSink(port=free_port()).start()
    try:
        yield s
    finally:
        s.stop()


def _env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, radicale: RadicaleServer, sink: SmtpSink
) -> None:
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "ann.yaml").write_text(
        "owner: {email: ann@corp.example, name: Ann Ng, timezone: Europe/London}\n"
        "calendar: {provider: caldav}\n"
        "tiers: {peer: {every: 8w, mode: auto}}\n"
        "stakeholders:\n"
        "  - {email: bo@corp.example, name: Bo Diaz, tier: peer}\n"
        "allowed_domains: [corp.example]\n"
    )
    values = {
        "GOODWILL_DATA_DIR": str(tmp_path / "data"),
        "GOODWILL_POLICY_DIR": str(policies),
        "GOODWILL_CALDAV__URL": radicale.url,
        "GOODWILL_CALDAV__USERNAME": "service",
        "GOODWILL_CALDAV__PASSWORD": "secret",
        "GOODWILL_CALDAV__SERVER": "radicale",
        "GOODWILL_SMTP__HOST": "127.0.0.1",
        "GOODWILL_SMTP__PORT": str(sink.port),
        "GOODWILL_SMTP__SENDER": "ann@corp.example",
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)


def _reply_to(invite: bytes, partstat: str) -> bytes:
    """What the attendee's mail client sends back: METHOD:REPLY with their PARTSTAT."""
    msg = message_from_bytes(invite, policy=SMTP)
    part = next(p for p in msg.walk() if p.get_content_type() == "text/calendar")
    request = icalendar.Calendar.from_ical(part.get_payload(decode=True))
    original = next(iter(request.walk("VEVENT")))
    cal = icalendar.Calendar()
    cal.add("prodid", "-//attendee mail client//EN")
    cal.add("version", "2.0")
    cal.add("method", "REPLY")
    event = icalendar.Event()
    for key in ("UID", "SEQUENCE", "DTSTART", "DTEND", "ORGANIZER"):
        event[key] = original[key]
    event.add("dtstamp", NOW)
    who = icalendar.vCalAddress("mailto:bo@corp.example")
    who.params["PARTSTAT"] = partstat
    event.add("attendee", who)
    cal.add_component(event)
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = "bo@corp.example", "ann@corp.example", "Accepted"
    mail.set_content("Accepted")
    mail.add_attachment(
        cal.to_ical(), maintype="text", subtype="calendar", params={"method": "REPLY"}
    )
    return mail.as_bytes(policy=SMTP)


def test_invite_by_email_and_reply_by_email(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, radicale: RadicaleServer, sink: SmtpSink
) -> None:
    _env(monkeypatch, tmp_path, radicale, sink)
    app = bootstrap(Settings(), clock=FixedClock(NOW), auto_migrate=True)
    planning.register_policies(app.pipeline)
    user = app.store.get_user_by_email("ann@corp.example")
    assert user is not None
    run = planning.plan_user(app.pipeline, user.id)
    assert run.error is None
    (meeting_id,) = run.meeting_ids
    assert booking.book_meeting(app.pipeline, meeting_id).outcome.value == "booked"
    # the server does not schedule, so the invite went out by e-mail, once
    (invite,) = sink.wait_for(lambda m: "bo@corp.example" in m.rcpt_tos)
    assert "bo@corp.example" in invite.rcpt_tos
    # the attendee accepts in their mail client; the reply arrives in a Maildir
    maildir = tmp_path / "replies"
    (maildir / "new").mkdir(parents=True)
    (maildir / "cur").mkdir()
    (maildir / "new" / "1.eml").write_bytes(_reply_to(invite.data, "ACCEPTED"))
    (maildir / "new" / "junk.eml").write_bytes(b"Subject: hello\r\n\r\nnot a reply\r\n")
    out, err = io.StringIO(), io.StringIO()
    code = main(["replies", str(maildir)], out=out, err=err)
    assert code == 2  # one file was not a REPLY, and says so
    assert "junk.eml: not an iMIP REPLY" in err.getvalue()
    assert f"meeting {meeting_id} accepted (applied)" in out.getvalue()
    assert app.store.get_meeting(meeting_id).state == MeetingState.ACCEPTED
    # and the organizer's copy on the server carries the answer
    event = app.pipeline.backends(app.pipeline.policies.load(user.policy_path).policy)
    state = event.responses.event_state(
        app.pipeline.policies.load(user.policy_path).policy.owner.person,
        app.store.get_meeting(meeting_id).provider_event_id,
        "bo@corp.example",
    )
    assert state.response.value == "accepted"
