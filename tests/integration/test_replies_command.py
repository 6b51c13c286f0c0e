"""`goodwill replies` against hostile and broken mail, end to end through the CLI.

The owner's calendar is the writable ICS directory (a real file-backed provider that records
e-mailed answers); the store is SQLite; the CLI is run in process. Each test books a real meeting
first, then feeds mail to ``goodwill replies`` and looks at the meeting, the calendar files, the
Maildir and the command's output.
"""

from __future__ import annotations

import io
import json
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

import icalendar
import pytest

from scheduler.app import booking, planning
from scheduler.core.clock import FixedClock
from scheduler.core.states import MeetingState
from scheduler.entrypoints.bootstrap import App, bootstrap
from scheduler.entrypoints.cli import main
from scheduler.settings import Settings
from tests.calendars import empty_calendar as _empty_calendar

_today = datetime.now(UTC).replace(hour=8, minute=0, second=0, microsecond=0)
#: The next Monday 08:00 UTC: every meeting booked here lies in the real future, so the CLI
#: (which runs on the system clock) follows it instead of completing it.
NOW = _today + timedelta(days=7 - _today.weekday())

ANN, BO, CY = "ann@corp.example", "bo@corp.example", "cy@corp.example"

POLICY = """\
owner: {{email: {owner}, name: {name}, timezone: Europe/London}}
calendar: {{provider: ics}}
availability: {{min_notice: 1d, working_hours: {{mon-fri: "09:00-17:00"}}}}
tiers: {{peer: {{every: 8w, mode: auto}}}}
stakeholders:
  - {{email: bo@corp.example, name: Bo Diaz, tier: peer{aliases}}}
allowed_domains: [corp.example, home.example]
"""


@dataclass
class Env:
    app: App
    tmp: Path
    calendars: Path
    policies: Path

    def meeting_with_bo(self, owner: str = ANN) -> int:
        user = self.app.store.get_user_by_email(owner)
        assert user is not None
        [m] = [
            m
            for m in self.app.store.open_meetings(user.id)
            if m.stakeholder_email == BO and m.state == MeetingState.BOOKED
        ]
        return m.id

    def uid(self, meeting_id: int) -> str:
        m = self.app.store.get_meeting(meeting_id)
        assert m is not None
        assert m.provider_event_id
        return m.provider_event_id

    def state(self, meeting_id: int) -> MeetingState:
        m = self.app.store.get_meeting(meeting_id)
        assert m is not None
        return m.state

    def partstat_on(self, owner: str, uid: str) -> str:
        cal = icalendar.Calendar.from_ical((self.calendars / f"{owner}.ics").read_bytes())
        [event] = [e for e in cal.walk("VEVENT") if str(e["UID"]) == uid]
        attendee = event["ATTENDEE"]
        return str(attendee.params.get("PARTSTAT", ""))

    def maildir(self, name: str = "mail") -> Path:
        root = self.tmp / name
        for sub in ("new", "cur", "tmp"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        return root


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Env]:
    calendars = tmp_path / "calendars"
    calendars.mkdir()
    for who in (ANN, BO, CY):
        _empty_calendar(calendars / f"{who}.ics")
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "ann.yaml").write_text(POLICY.format(owner=ANN, name="Ann Ng", aliases=""))
    (policies / "cy.yaml").write_text(POLICY.format(owner=CY, name="Cy Ode", aliases=""))
    for key, value in {
        "GOODWILL_DATA_DIR": str(tmp_path / "data"),
        "GOODWILL_POLICY_DIR": str(policies),
        "GOODWILL_CALENDARS_DIR": str(calendars),
    }.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("GOODWILL_SECRET_KEY", raising=False)
    monkeypatch.delenv("GOODWILL_LIMITS__MAIL_MAX_BYTES", raising=False)
    app = bootstrap(Settings(), clock=FixedClock(NOW), auto_migrate=True)
    planning.register_policies(app.pipeline)
    for owner in (ANN, CY):
        user = app.store.get_user_by_email(owner)
        assert user is not None
        run = planning.plan_user(app.pipeline, user.id)  # then book: Bo's time is taken
        assert run.error is None, run.error
        for meeting_id in app.store.approved_needing_send(NOW, 10):
            assert booking.book_meeting(app.pipeline, meeting_id).outcome.value == "booked"
    yield Env(app, tmp_path, calendars, policies)
    app.engine.dispose()


def reply_mail(
    uid: str,
    *,
    attendee: str = BO,
    partstat: str = "DECLINED",
    sequence: int | None = 0,
    sender: str = BO,
    headers: tuple[tuple[str, str], ...] = (),
    sent_by: str | None = None,
) -> bytes:
    """A REPLY as an attendee's mail client sends it (RFC 5546 §3.2.3, RFC 6047)."""
    cal = icalendar.Calendar()
    cal.add("prodid", "-//attendee mail client//EN")
    cal.add("version", "2.0")
    cal.add("method", "REPLY")
    event = icalendar.Event()
    event.add("uid", uid)
    event.add("dtstamp", NOW)
    if sequence is not None:
        event.add("sequence", sequence)
    event.add("organizer", f"mailto:{ANN}")
    who = icalendar.vCalAddress(f"mailto:{attendee}")
    who.params["PARTSTAT"] = partstat
    if sent_by:
        who.params["SENT-BY"] = f"mailto:{sent_by}"
    event.add("attendee", who)
    cal.add_component(event)
    mail = EmailMessage()
    for name, value in headers:
        mail[name] = value
    mail["From"], mail["To"], mail["Subject"] = sender, ANN, f"{partstat.title()}: Coffee"
    mail.set_content(f"{partstat.title()}.")
    mail.add_attachment(
        cal.to_ical(), maintype="text", subtype="calendar", params={"method": "REPLY"}
    )
    return mail.as_bytes(policy=SMTP)


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


# -- forged replies ---------------------------------------------------------------------------


def test_a_reply_from_someone_else_is_held_for_the_owner_not_applied(env: Env) -> None:
    meeting = env.meeting_with_bo()
    uid = env.uid(meeting)
    mail = env.maildir()
    (mail / "new" / "1.eml").write_bytes(reply_mail(uid, sender="mallory@evil.example"))

    code, out, err = run("replies", str(mail))

    assert code == 0, err
    assert env.state(meeting) == MeetingState.BOOKED  # not declined
    assert env.partstat_on(ANN, uid) != "DECLINED"
    user = env.app.store.get_user_by_email(ANN)
    assert user is not None
    assert env.app.store.get_stakeholder_status(user.id, BO).backoff_until is None
    assert "a reply from mallory@evil.example about your meeting with bo@corp.example" in out
    assert "was not applied" in out
    [held] = env.app.store.held_replies(user.id)
    assert f"goodwill replies --accept {held.id}" in out
    # The mail is done with: it moved to cur/ as seen, and a second run does nothing.
    assert list((mail / "new").iterdir()) == []
    assert [p.name for p in (mail / "cur").iterdir()] == ["1.eml:2,S"]
    assert run("replies", str(mail))[1] == ""

    # The owner sees it in the report, text and JSON …
    code, text, _ = run("report", "--user", ANN)
    assert code == 0
    assert "a reply from mallory@evil.example about your meeting with bo@corp.example" in text
    assert f"goodwill replies --accept {held.id}" in text
    code, raw, _ = run("report", "--user", ANN, "--json")
    [entry] = json.loads(raw)["reports"][0]["held_replies"]
    assert (entry["id"], entry["sender"], entry["stakeholder"]) == (
        held.id,
        "mallory@evil.example",
        BO,
    )
    assert entry["answer"] == "declined"
    assert entry["meeting_id"] == meeting

    # … and may apply it after all.
    code, out, err = run("replies", "--accept", str(held.id))
    assert code == 0, err
    assert env.state(meeting) == MeetingState.DECLINED
    assert env.partstat_on(ANN, uid) == "DECLINED"
    assert env.app.store.held_replies(user.id) == []
    code, _, err = run("replies", "--accept", str(held.id))
    assert code == 2
    assert "already applied" in err


def test_a_forged_reply_cannot_touch_another_owners_meeting(env: Env) -> None:
    anns, cys = env.meeting_with_bo(ANN), env.meeting_with_bo(CY)
    # Cy's meeting with Bo has its own UID, keyed with the installation's secret: it cannot be
    # derived from Cy's id, Bo's address and the start time as the old sha256 UIDs could.
    assert env.uid(anns) != env.uid(cys)
    mail = env.maildir()
    (mail / "new" / "1.eml").write_bytes(reply_mail(env.uid(cys), sender="mallory@evil.example"))
    assert run("replies", str(mail))[0] == 0
    assert env.state(cys) == MeetingState.BOOKED


def test_a_reply_whose_dkim_failed_for_the_senders_domain_is_refused(env: Env) -> None:
    meeting = env.meeting_with_bo()
    mail = env.maildir()
    headers = (
        (
            "Authentication-Results",
            "mx.corp.example; dkim=fail (signature did not verify) header.d=corp.example "
            "header.s=sel1; spf=pass smtp.mailfrom=corp.example",
        ),
        ("Authentication-Results", "forged.example; dkim=pass header.d=corp.example"),
    )
    (mail / "new" / "1.eml").write_bytes(reply_mail(env.uid(meeting), headers=headers))

    code, _out, err = run("replies", str(mail))

    assert code == 2
    assert "refused" in err
    assert "DKIM" in err
    assert env.state(meeting) == MeetingState.BOOKED
    user = env.app.store.get_user_by_email(ANN)
    assert user is not None
    assert env.app.store.held_replies(user.id) == []
    # Moved out of new/ with the Flagged mark (F) so a person can look at it; never deleted.
    assert [p.name for p in (mail / "cur").iterdir()] == ["1.eml:2,FS"]


def test_a_dmarc_failure_for_another_domain_does_not_refuse(env: Env) -> None:
    meeting = env.meeting_with_bo()
    mail = env.maildir()
    headers = (("Authentication-Results", "mx.corp.example; dmarc=fail header.from=other.example"),)
    (mail / "new" / "1.eml").write_bytes(reply_mail(env.uid(meeting), headers=headers))
    code, _out, err = run("replies", str(mail))
    assert code == 0, err
    assert env.state(meeting) == MeetingState.DECLINED


def test_a_delegate_named_by_sent_by_may_answer(env: Env) -> None:
    meeting = env.meeting_with_bo()
    mail = env.maildir()
    (mail / "new" / "1.eml").write_bytes(
        reply_mail(env.uid(meeting), sender="pa@corp.example", sent_by="PA@corp.example")
    )
    code, _out, err = run("replies", str(mail))
    assert code == 0, err
    assert env.state(meeting) == MeetingState.DECLINED


def test_an_alias_listed_in_the_policy_may_answer(env: Env) -> None:
    (env.policies / "ann.yaml").write_text(
        POLICY.format(owner=ANN, name="Ann Ng", aliases=", aliases: [bo.diaz@home.example]")
    )
    meeting = env.meeting_with_bo()
    mail = env.maildir()
    (mail / "new" / "1.eml").write_bytes(
        reply_mail(env.uid(meeting), sender="Bo Diaz <Bo.Diaz@HOME.example>")
    )
    code, _out, err = run("replies", str(mail))
    assert code == 0, err
    assert env.state(meeting) == MeetingState.DECLINED


# -- one message at a time ---------------------------------------------------------------------


def _remove_event(path: Path, uid: str) -> None:
    cal = icalendar.Calendar.from_ical(path.read_bytes())
    cal.subcomponents = [c for c in cal.subcomponents if str(c.get("UID", "")) != uid]
    path.write_bytes(cal.to_ical())


def test_a_reply_for_a_vanished_event_does_not_stop_the_others(env: Env) -> None:
    gone, kept = env.meeting_with_bo(ANN), env.meeting_with_bo(CY)
    for who in (ANN, BO):
        _remove_event(env.calendars / f"{who}.ics", env.uid(gone))
    mail = env.maildir()
    (mail / "new" / "1-gone.eml").write_bytes(reply_mail(env.uid(gone)))
    (mail / "new" / "2-kept.eml").write_bytes(reply_mail(env.uid(kept), partstat="ACCEPTED"))

    code, _out, err = run("replies", str(mail))

    assert code == 2  # one message was refused, and says why
    assert "1-gone.eml: refused" in err
    assert "no longer exists" in err
    assert env.state(kept) == MeetingState.ACCEPTED
    assert sorted(p.name for p in (mail / "cur").iterdir()) == ["1-gone.eml:2,FS", "2-kept.eml:2,S"]
    assert list((mail / "new").iterdir()) == []
    # The next run starts clean: nothing left to block it.
    assert run("replies", str(mail))[0] == 0


def test_plain_files_move_to_done_and_bad_next_to_them(env: Env) -> None:
    meeting = env.meeting_with_bo()
    inbox = env.tmp / "inbox"
    inbox.mkdir()
    good, junk = inbox / "reply.eml", inbox / "junk.eml"
    good.write_bytes(reply_mail(env.uid(meeting), partstat="ACCEPTED"))
    junk.write_bytes(b"Subject: hello\r\n\r\nnot a reply\r\n")

    code, _out, err = run("replies", str(good), str(junk))

    assert code == 2
    assert "junk.eml: not an iMIP REPLY" in err
    assert env.state(meeting) == MeetingState.ACCEPTED
    assert (inbox / "done" / "reply.eml").is_file()
    assert (inbox / "bad" / "junk.eml").is_file()
    assert not good.exists()
    assert not junk.exists()


def test_an_oversized_mail_is_refused_without_reading_it_whole(env: Env) -> None:
    mail = env.maildir()
    huge = mail / "new" / "huge.eml"
    with huge.open("wb") as fh:  # 200 MB, sparse: cheap to make, costly to read whole
        fh.write(b"From: bo@corp.example\r\nSubject: x\r\n\r\n")
        fh.truncate(200 * 1024 * 1024)
    tracemalloc.start()
    try:
        code, _out, err = run("replies", str(mail))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert code == 2
    assert "huge.eml: refused" in err
    assert "GOODWILL_LIMITS__MAIL_MAX_BYTES" in err
    assert peak < 40 * 1024 * 1024  # read at most the limit (10 MiB) + 1 byte
    assert [p.name for p in (mail / "cur").iterdir()] == ["huge.eml:2,FS"]


def test_the_size_limit_is_a_setting(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    meeting = env.meeting_with_bo()
    monkeypatch.setenv("GOODWILL_LIMITS__MAIL_MAX_BYTES", "200")
    mail = env.maildir()
    (mail / "new" / "1.eml").write_bytes(reply_mail(env.uid(meeting)))
    code, _out, err = run("replies", str(mail))
    assert code == 2
    assert "larger than 200 bytes" in err
    assert env.state(meeting) == MeetingState.BOOKED


def test_thousands_of_nested_mime_parts_are_a_clear_refusal(env: Env) -> None:
    depth = 3000
    head = "From: bo@corp.example\r\nMIME-Version: 1.0\r\n"
    body = "".join(
        f'Content-Type: multipart/mixed; boundary="b{i}"\r\n\r\n--b{i}\r\n' for i in range(depth)
    )
    body += "Content-Type: text/plain\r\n\r\nhi\r\n"
    body += "".join(f"--b{i}--\r\n" for i in reversed(range(depth)))
    mail = env.maildir()
    (mail / "new" / "deep.eml").write_bytes((head + body).encode())

    code, _out, err = run("replies", str(mail))

    assert code == 2
    assert "deep.eml: not an iMIP REPLY" in err
    assert "nested" in err
    assert [p.name for p in (mail / "cur").iterdir()] == ["deep.eml:2,FS"]


def test_a_reply_older_than_the_event_is_ignored(env: Env) -> None:
    meeting = env.meeting_with_bo()
    uid = env.uid(meeting)
    # The organizer's client revised the event (a new time): its SEQUENCE went up to 1.
    path = env.calendars / f"{ANN}.ics"
    cal = icalendar.Calendar.from_ical(path.read_bytes())
    [event] = [e for e in cal.walk("VEVENT") if str(e["UID"]) == uid]
    event.pop("SEQUENCE", None)
    event.add("sequence", 1)
    path.write_bytes(cal.to_ical())
    mail = env.maildir()
    (mail / "new" / "1.eml").write_bytes(reply_mail(uid, sequence=0))

    code, out, err = run("replies", str(mail))

    assert code == 0, err
    assert "ignored: older than the invite" in out
    assert env.state(meeting) == MeetingState.BOOKED
    assert env.partstat_on(ANN, uid) != "DECLINED"


def test_bad_arguments_are_refused_with_the_fix(env: Env) -> None:
    code, _, err = run("replies")
    assert code == 2
    assert "--accept ID" in err
    code, _, err = run("replies", str(env.tmp / "nowhere"))
    assert code == 2
    assert "nowhere: no such file or directory" in err
    code, _, err = run("replies", "--accept", "12345")
    assert code == 2
    assert "no held reply 12345" in err


def test_a_provider_outage_leaves_the_mail_for_the_next_run(
    env: Env, monkeypatch: pytest.MonkeyPatch
) -> None:
    from connectors.ics import IcsDirectory
    from scheduler.core.errors import ProviderUnavailable

    meeting = env.meeting_with_bo()
    mail = env.maildir()
    (mail / "new" / "1.eml").write_bytes(reply_mail(env.uid(meeting), partstat="ACCEPTED"))

    def down(*_: object, **__: object) -> bool:
        raise ProviderUnavailable("503 from the calendar", provider="ics")

    with monkeypatch.context() as patch:
        patch.setattr(IcsDirectory, "set_attendee_status", down)
        code, _, err = run("replies", str(mail))
    assert code == 1
    assert "left in place, retry later" in err
    assert [p.name for p in (mail / "new").iterdir()] == ["1.eml"]
    assert env.state(meeting) == MeetingState.BOOKED
    # The provider is back: the same mail is applied.
    code, _out, err = run("replies", str(mail))
    assert code == 0, err
    assert env.state(meeting) == MeetingState.ACCEPTED


# -- counter-proposals by mail (iMIP COUNTER) -------------------------------------------------


def counter_mail(uid: str, start: datetime, *, sender: str = BO) -> bytes:
    """A COUNTER as an attendee's client sends it (RFC 5546 §3.2.7): the same UID, a new time."""
    cal = icalendar.Calendar()
    cal.add("prodid", "-//attendee mail client//EN")
    cal.add("version", "2.0")
    cal.add("method", "COUNTER")
    event = icalendar.Event()
    event.add("uid", uid)
    event.add("dtstamp", NOW)
    event.add("sequence", 0)
    event.add("dtstart", start)
    event.add("dtend", start + timedelta(minutes=30))
    event.add("organizer", f"mailto:{ANN}")
    who = icalendar.vCalAddress(f"mailto:{BO}")
    who.params["PARTSTAT"] = "TENTATIVE"
    event.add("attendee", who)
    cal.add_component(event)
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = sender, ANN, "New time proposed: Coffee"
    mail.set_content("How about this time instead?")
    mail.add_attachment(
        cal.to_ical(), maintype="text", subtype="calendar", params={"method": "COUNTER"}
    )
    return mail.as_bytes(policy=SMTP)


def _proposals_replacing(env: Env, meeting_id: int) -> list[tuple[MeetingState, datetime]]:
    user = env.app.store.get_user_by_email(ANN)
    assert user is not None
    return [
        (m.state, m.start)
        for m in env.app.store.open_meetings(user.id)
        if m.replaces_id == meeting_id
    ]


def test_a_counter_proposal_by_mail_that_fits_becomes_a_proposal(env: Env) -> None:
    meeting = env.meeting_with_bo()
    booked = env.app.store.get_meeting(meeting)
    assert booked is not None
    # Bo proposes the same time of day, two days later (a weekday inside Ann's hours)
    new = booked.start + timedelta(days=2 if booked.start.weekday() < 3 else -2)
    mail = env.maildir()
    (mail / "new" / "1.eml").write_bytes(counter_mail(env.uid(meeting), new))
    code, out, err = run("replies", str(mail))
    assert code == 0, err
    assert "counter-proposal" in out
    assert _proposals_replacing(env, meeting) == [(MeetingState.PROPOSED, new)]
    assert env.state(meeting) == MeetingState.BOOKED  # the original stands until Ann approves


def test_a_counter_proposal_from_someone_else_is_refused(env: Env) -> None:
    meeting = env.meeting_with_bo()
    booked = env.app.store.get_meeting(meeting)
    assert booked is not None
    mail = env.maildir()
    (mail / "new" / "1.eml").write_bytes(
        counter_mail(env.uid(meeting), booked.start + timedelta(days=1), sender="m@evil.example")
    )
    _, _, err = run("replies", str(mail))
    assert "refused" in err
    assert _proposals_replacing(env, meeting) == []
