"""Real clients' REPLY mail keeps being applied (or is held for the owner, never dropped).

For each fixture in ``data/imip_replies`` (sources in its ``SOURCES.md``): goodwill books a
meeting on a real Radicale server, the invite goes out through a real SMTP sink (aiosmtpd), the
fixture is filled with that meeting's UID, SEQUENCE and addresses, dropped into a Maildir, and
``goodwill replies`` reads it. The outcome is checked on the meeting and on the organizer's
copy at the server.
"""

from __future__ import annotations

import base64
import io
import quopri
import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.policy import SMTP
from pathlib import Path

import icalendar
import pytest

from scheduler.app import booking, planning
from scheduler.core.clock import FixedClock
from scheduler.core.model import AttendeeStatus
from scheduler.core.states import MeetingState
from scheduler.entrypoints.bootstrap import App, bootstrap
from scheduler.entrypoints.cli import main
from scheduler.settings import Settings
from tests.integration.caldav_servers import (  # noqa: F401  (fixtures)
    RadicaleServer,
    SmtpSink,
    radicale_fixture,
    smtp_sink_fixture,
    unique_user,
)

DATA = Path(__file__).parent / "data" / "imip_replies"
_today = datetime.now(UTC).replace(hour=8, minute=0, second=0, microsecond=0)
NOW = _today + timedelta(days=7 - _today.weekday())  # next Monday: the meeting lies ahead

POLICY = """\
owner: {{email: {owner}, name: Ann Ng, timezone: Europe/London}}
calendar: {{provider: caldav}}
availability: {{min_notice: 1d}}
tiers: {{peer: {{every: 8w, mode: auto}}}}
stakeholders:
  - {{email: {bo}, name: Bo Diaz, tier: peer{aliases}}}
allowed_domains: [corp.example, gmail.example]
"""


@dataclass
class Booked:
    app: App
    tmp: Path
    owner: str
    bo: str
    meeting_id: int
    uid: str
    sequence: int
    start: datetime
    end: datetime

    def state(self) -> MeetingState:
        m = self.app.store.get_meeting(self.meeting_id)
        assert m is not None
        return m.state

    def at_server(self) -> AttendeeStatus:
        user = self.app.store.get_user_by_email(self.owner)
        assert user is not None
        policy = self.app.pipeline.policies.load(user.policy_path).policy
        assert policy is not None
        responses = self.app.pipeline.backends(policy).responses
        assert responses is not None
        return responses.event_state(policy.owner.person, self.uid, self.bo).response


def _book(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    radicale: RadicaleServer,
    sink: SmtpSink,
    aliases: str = "",
) -> Booked:
    own, bo_user = unique_user("own"), unique_user("bo")
    owner, bo = f"{own}@corp.example", f"{bo_user}@corp.example"
    for user in (own, bo_user):
        radicale.make_calendar(f"{user}/calendar/")
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "ann.yaml").write_text(
        POLICY.format(owner=owner, bo=bo, aliases=aliases.format(bo=bo_user))
    )
    for key, value in {
        "GOODWILL_DATA_DIR": str(tmp_path / "data"),
        "GOODWILL_POLICY_DIR": str(policies),
        "GOODWILL_CALDAV__URL": radicale.url,
        "GOODWILL_CALDAV__USERNAME": "service",
        "GOODWILL_CALDAV__PASSWORD": "secret",
        "GOODWILL_CALDAV__SERVER": "radicale",
        "GOODWILL_SMTP__HOST": "127.0.0.1",
        "GOODWILL_SMTP__PORT": str(sink.port),
        "GOODWILL_SMTP__SENDER": owner,
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("GOODWILL_CALENDARS_DIR", raising=False)
    app = bootstrap(Settings(), clock=FixedClock(NOW), auto_migrate=True)
    planning.register_policies(app.pipeline)
    user = app.store.get_user_by_email(owner)
    assert user is not None
    run = planning.plan_user(app.pipeline, user.id)
    assert run.error is None, run.error
    (meeting_id,) = run.meeting_ids
    assert booking.book_meeting(app.pipeline, meeting_id).outcome.value == "booked"
    (invite,) = sink.wait_for(lambda m: bo in m.rcpt_tos)
    part = next(
        p
        for p in message_from_bytes(invite.data, policy=SMTP).walk()
        if p.get_content_type() == "text/calendar"
    )
    payload = part.get_payload(decode=True)
    assert isinstance(payload, bytes)
    event = next(iter(icalendar.Calendar.from_ical(payload).walk("VEVENT")))
    return Booked(
        app,
        tmp_path,
        owner,
        bo,
        meeting_id,
        str(event["UID"]),
        int(event.get("SEQUENCE", 0)),
        event.decoded("DTSTART").astimezone(UTC),
        event.decoded("DTEND").astimezone(UTC),
    )


@pytest.fixture
def booked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, radicale: RadicaleServer, smtp_sink: SmtpSink
) -> Iterator[Booked]:
    b = _book(tmp_path, monkeypatch, radicale, smtp_sink)
    yield b
    b.app.engine.dispose()


def _qp(ics: str) -> str:
    """Quoted-printable as Apple Mail writes a calendar: CR LF as ``=0D=0A``, soft breaks."""
    out = []
    for line in ics.split("\r\n")[:-1]:
        encoded = quopri.encodestring(line.encode()).decode()  # long lines get "=\n" breaks
        out.append(encoded + "=0D=0A=")
    return "\n".join(out)


def _b64(ics: str) -> str:
    return "\n".join(textwrap.wrap(base64.b64encode(ics.encode()).decode(), 76))


def fill(name: str, b: Booked, *, sender: str, attendee: str | None = None) -> bytes:
    """Fixture ``name`` answering meeting ``b``, sent by ``sender`` for ``attendee``."""
    attendee = attendee or b.bo
    subs = {
        "@@UID@@": b.uid,
        "@@SEQUENCE@@": str(b.sequence),
        "@@ORGANIZER_HEAD@@": b.owner[:5],
        "@@ORGANIZER_TAIL@@": b.owner[5:],
        "@@ORGANIZER@@": b.owner,
        "@@ATTENDEE_HEAD@@": attendee[:6],
        "@@ATTENDEE_TAIL@@": attendee[6:],
        "@@ATTENDEE_UPPER@@": attendee.upper(),
        "@@ATTENDEE@@": attendee,
        "@@DTSTART@@": f"{b.start:%Y%m%dT%H%M%SZ}",
        "@@DTEND@@": f"{b.end:%Y%m%dT%H%M%SZ}",
        "@@FROM@@": sender,
    }
    ics = (DATA / f"{name}.ics").read_bytes().decode()
    eml = (DATA / f"{name}.eml").read_bytes().decode()
    for key, value in subs.items():
        ics, eml = ics.replace(key, value), eml.replace(key, value)
    eml = eml.replace("@@CALENDAR@@", ics.replace("\r\n", "\n").rstrip("\n"))
    eml = eml.replace("@@CALENDAR_QP@@", _qp(ics)).replace("@@CALENDAR_B64@@", _b64(ics))
    assert "@@" not in eml, "a placeholder was not filled"
    return eml.encode()


def replies(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    return main(["replies", *argv], out=out, err=err), out.getvalue(), err.getvalue()


def _maildir(b: Booked, mail: bytes) -> Path:
    root = b.tmp / "Maildir"
    for sub in ("new", "cur", "tmp"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    (root / "new" / "1700000000.M1P1.mx").write_bytes(mail)
    return root


_ANSWER = {
    AttendeeStatus.ACCEPTED: MeetingState.ACCEPTED,
    AttendeeStatus.TENTATIVE: MeetingState.TENTATIVE,
    AttendeeStatus.DECLINED: MeetingState.DECLINED,
}

APPLIED = [
    pytest.param("apple_ical", AttendeeStatus.ACCEPTED, id="apple-ical-mail"),
    pytest.param("google_calendar", AttendeeStatus.ACCEPTED, id="google-calendar"),
    pytest.param("exchange", AttendeeStatus.ACCEPTED, id="exchange"),
    pytest.param("outlook_google_invite", AttendeeStatus.DECLINED, id="outlook-on-google-invite"),
]


@pytest.mark.parametrize(("name", "answer"), APPLIED)
def test_a_clients_reply_from_the_attendee_is_applied(
    booked: Booked, name: str, answer: AttendeeStatus
) -> None:
    maildir = _maildir(booked, fill(name, booked, sender=booked.bo))
    code, out, err = replies(str(maildir))
    assert code == 0, err
    assert f"meeting {booked.meeting_id} {_ANSWER[answer].value} (applied)" in out
    assert booked.state() is _ANSWER[answer]
    assert booked.at_server() is answer
    assert [p.name for p in (maildir / "cur").iterdir()] == ["1700000000.M1P1.mx:2,S"]


HELD = [
    pytest.param("gmail_primary", "{bo}@gmail.example", AttendeeStatus.ACCEPTED, id="gmail"),
    pytest.param("outlook_com", "{bo}@outlook.example", AttendeeStatus.TENTATIVE, id="outlook-com"),
    pytest.param(
        "nextcloud", "invitations-noreply@cloud.example", AttendeeStatus.ACCEPTED, id="nextcloud"
    ),
]


@pytest.mark.parametrize(("name", "sender", "answer"), HELD)
def test_a_reply_from_another_address_is_held_then_applied_when_the_owner_accepts_it(
    booked: Booked, name: str, sender: str, answer: AttendeeStatus
) -> None:
    mailbox = sender.format(bo=booked.bo.split("@")[0])
    # Nextcloud mails from its system address; the attendee is only in Reply-To.
    mail = fill(name, booked, sender=booked.bo if name == "nextcloud" else mailbox)
    code, out, err = replies(str(_maildir(booked, mail)))
    assert code == 0, err
    assert f"a reply from {mailbox} about your meeting with {booked.bo} was not applied" in out
    assert booked.state() is MeetingState.BOOKED
    assert booked.at_server() is AttendeeStatus.NEEDS_ACTION
    user = booked.app.store.get_user_by_email(booked.owner)
    assert user is not None
    [held] = booked.app.store.held_replies(user.id)
    assert f"goodwill replies --accept {held.id}" in out

    code, out, err = replies("--accept", str(held.id))
    assert code == 0, err
    assert booked.state() is _ANSWER[answer]
    assert booked.at_server() is answer


def test_gmails_primary_address_listed_as_an_alias_is_applied_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, radicale: RadicaleServer, smtp_sink: SmtpSink
) -> None:
    b = _book(tmp_path, monkeypatch, radicale, smtp_sink, aliases=", aliases: [{bo}@gmail.example]")
    try:
        primary = f"{b.bo.split('@')[0]}@gmail.example"
        code, _out, err = replies(str(_maildir(b, fill("gmail_primary", b, sender=primary))))
        assert code == 0, err
        assert b.state() is MeetingState.ACCEPTED
        assert b.at_server() is AttendeeStatus.ACCEPTED
    finally:
        b.app.engine.dispose()
