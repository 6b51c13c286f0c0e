"""A group meeting through the whole pipeline on CalDAV (a real Radicale, iMIP by SMTP to a
sink; SQLite and PostgreSQL): planned from the store, approved, booked as exactly ONE event
(one UID) with every attendee, a retry after a lost create makes no second event, each
attendee's iMIP REPLY (through the mail path: parsed, vouched, applied) updates that attendee,
and the owner is told when declines take the meeting below its quorum."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

import icalendar
import pytest

from connectors.caldav import CalDAVCalendar
from connectors.imip import parse_reply
from scheduler.app import booking, decisions, planning, replies
from scheduler.app.booking import BookOutcome
from scheduler.app.pipeline import Pipeline
from scheduler.app.policies import PolicyBook
from scheduler.app.records import Meeting
from scheduler.app.responses import ReplyOutcome
from scheduler.core.clock import FixedClock
from scheduler.core.errors import ProviderUnavailable
from scheduler.core.model import CreatedEvent, EventDraft
from scheduler.core.policy import Policy
from scheduler.core.ports import CalendarBackend
from scheduler.core.states import MeetingState
from scheduler.store import Store, make_engine, migrate
from tests.contract.envs.caldav import CalDAVContractEnv

S = MeetingState
NOW = datetime(2027, 3, 1, 8, 0, tzinfo=UTC)  # a Monday

POLICY = """\
owner: {{email: {owner}, name: Olga Org, timezone: UTC}}
calendar: {{provider: caldav}}
availability: {{working_hours: {{mon-fri: "08:00-18:00"}}, min_notice: 1d, horizon: 14d}}
tiers: {{peer: {{every: 8w, mode: propose}}}}
stakeholders: []
stakeholder_defaults: {{timezone: UTC}}
groups:
  - {{name: platform, members: [{members}], kind: coffee, duration: 60m, size: "3..3",
     quorum: 0.6, location: Room 4}}
allowed_domains: [corp.example]
"""


class _LosingWriter:
    """The real CalDAV writer, except that the next create's reply is lost on the wire
    (``applied``: after the server stored the event; else before the request went out)."""

    def __init__(self, real: CalDAVCalendar) -> None:
        self.real = real
        self.lose: bool | None = None

    def create_event(self, draft: EventDraft) -> CreatedEvent:
        lose, self.lose = self.lose, None
        if lose is False:
            raise ProviderUnavailable("connection dropped", provider="caldav")
        created = self.real.create_event(draft)
        if lose:
            raise ProviderUnavailable("reply lost", provider="caldav")
        return created

    def find_by_key(self, organizer: object, key: str) -> CreatedEvent | None:
        return self.real.find_by_key(organizer, key)  # type: ignore[arg-type]

    def cancel_by_key(self, organizer: object, key: str) -> None:
        self.real.cancel_by_key(organizer, key)  # type: ignore[arg-type]


@dataclass
class Org:
    p: Pipeline
    store: Store
    clock: FixedClock
    env: CalDAVContractEnv
    writer: _LosingWriter
    #: Whether the backend hands the booking the losing writer (else the real one).
    switch: dict[str, bool]

    @property
    def owner(self) -> str:
        return self.env.organizer.email

    @property
    def members(self) -> tuple[str, ...]:
        return tuple(p.email for p in (self.env.attendee, *self.env.extra_attendees))

    def user_id(self) -> int:
        user = self.store.get_user_by_email(self.owner)
        assert user is not None
        return user.id

    def group(self) -> Meeting:
        (m,) = [
            m
            for m in self.store.meetings_between(self.user_id(), NOW, NOW + timedelta(days=30))
            if m.group_name == "platform"
        ]
        return m


@pytest.fixture
def org(db_url: str, tmp_path: Path) -> Iterator[Org]:
    env = CalDAVContractEnv(tmp_path)
    engine = make_engine(db_url)
    migrate(engine)
    policies = tmp_path / "policies"
    policies.mkdir()
    members = [p.email for p in (env.attendee, *env.extra_attendees)]
    (policies / "owner.yaml").write_text(
        POLICY.format(owner=env.organizer.email, members=", ".join(members))
    )
    real = env.writer
    writer = _LosingWriter(real)
    switch = {"on": False}

    def backend(policy: Policy) -> CalendarBackend:
        w = writer if switch["on"] else real
        return CalendarBackend("caldav", real, None, w, real)  # type: ignore[arg-type]

    clock = FixedClock(NOW)
    store = Store(engine)
    p = Pipeline(store=store, clock=clock, backends=backend, policies=PolicyBook(policies))
    planning.register_policies(p)
    try:
        yield Org(p, store, clock, env, writer, switch)
    finally:
        env.close()
        engine.dispose()


def _approved(org: Org) -> Meeting:
    run = planning.plan_user(org.p, org.user_id())
    assert run.error is None, run.error
    assert run.plan is not None
    assert [g.group for g in run.plan.group_proposals] == ["platform"], run.plan.group_skipped
    m = org.group()
    assert m.state is S.PROPOSED
    assert set(m.attendees) == set(org.members)
    assert decisions.approve(org.p, m.id)
    return m


def _book(org: Org, m: Meeting, *, lose: bool | None = None) -> Meeting:
    org.switch["on"] = True
    try:
        if lose is not None:
            org.writer.lose = lose
            assert booking.book_meeting(org.p, m.id).outcome is BookOutcome.RETRY
            org.clock.advance(timedelta(hours=1))
        result = booking.book_meeting(org.p, m.id)
        assert result.outcome is BookOutcome.BOOKED, result.detail
    finally:
        org.switch["on"] = False
    booked = org.store.get_meeting(m.id)
    assert booked is not None
    return booked


def _organizer_events(org: Org) -> list[icalendar.Component]:
    return [
        e
        for e in org.env._stored_events(org.owner)
        if str(e.get("STATUS", "")).upper() != "CANCELLED"
    ]


def _attendees_of(event: icalendar.Component) -> set[str]:
    found = event.get("ATTENDEE", [])
    found = found if isinstance(found, list) else [found]
    return {str(a).lower().removeprefix("mailto:") for a in found}


@pytest.mark.parametrize(
    "lose", [None, False, True], ids=["first-time", "create-lost", "reply-lost"]
)
def test_a_group_meeting_is_one_caldav_event_with_every_attendee(
    org: Org, lose: bool | None
) -> None:
    m = _book(org, _approved(org), lose=lose)
    assert m.state is S.BOOKED
    [event] = _organizer_events(org)
    assert org.env.count_creates(org.owner) == 1  # never a second one, cancelled or not
    assert str(event.get("UID")) == m.provider_event_id
    assert _attendees_of(event) >= set(org.members)
    # One invitation (SEQUENCE 0) per attendee, whatever was retried.
    invited = org.env.invitations(m.provider_event_id or "")
    assert sorted(invited) == sorted(org.members)


def _mailed_reply(org: Org, m: Meeting, sender: str, attendee: str, partstat: str) -> bytes:
    """What the attendee's client mails back: an iMIP REPLY."""
    cal = icalendar.Calendar()
    cal.add("prodid", "-//attendee client//EN")
    cal.add("version", "2.0")
    cal.add("method", "REPLY")
    event = icalendar.Event()
    event.add("uid", m.provider_event_id)
    event.add("dtstamp", NOW)
    event.add("sequence", 0)
    event.add("organizer", f"mailto:{org.owner}")
    who = icalendar.vCalAddress(f"mailto:{attendee}")
    who.params["PARTSTAT"] = partstat
    event.add("attendee", who)
    cal.add_component(event)
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = sender, org.owner, f"{partstat}: coffee"
    mail["Message-ID"] = f"<{attendee}-{partstat}-{sender}@client.example>"
    mail.set_content(partstat.lower())
    mail.add_attachment(
        cal.to_ical(), maintype="text", subtype="calendar", params={"method": "REPLY"}
    )
    return mail.as_bytes(policy=SMTP)


def _receive(org: Org, raw: bytes) -> replies.ReplyDecision:
    """The mail path (``goodwill replies``): parse, then vouch and apply."""
    r = parse_reply(raw)
    return replies.receive_reply(
        org.p,
        replies.IncomingReply(
            uid=r.uid, attendee=r.attendee_email, answer=r.partstat, sequence=r.sequence,
            senders=r.senders, sent_by=r.sent_by, reply_to=r.reply_to,
            authentication=r.authentication, digest=r.digest, proposed=r.proposed,
        ),
    )  # fmt: skip


def _answers(org: Org, m: Meeting) -> dict[str, str]:
    now = org.store.get_meeting(m.id)
    assert now is not None
    return dict(now.attendee_status)


def test_each_attendees_mailed_reply_updates_them_and_declines_below_quorum_tell_the_owner(
    org: Org,
) -> None:
    m = _book(org, _approved(org))
    first, second, third = m.attendees
    accepted = _receive(org, _mailed_reply(org, m, third, third, "ACCEPTED"))
    assert accepted.outcome is ReplyOutcome.APPLIED, accepted.result.detail
    assert _answers(org, m) == {first: "needsAction", second: "needsAction", third: "accepted"}
    [event] = _organizer_events(org)  # the organizer's copy at the server shows it
    partstats = {
        str(a).lower().removeprefix("mailto:"): str(a.params.get("PARTSTAT", ""))
        for a in event.get("ATTENDEE", [])
    }
    assert partstats[third] == "ACCEPTED"
    # One attendee answering for another is held, and changes nothing.
    held = _receive(org, _mailed_reply(org, m, third, first, "DECLINED"))
    assert held.outcome is ReplyOutcome.HELD
    assert _answers(org, m)[first] == "needsAction"
    # Two declines of three (quorum 2): below the quorum, the owner is told; nothing cancelled.
    for who in (first, second):
        decision = _receive(org, _mailed_reply(org, m, who, who, "DECLINED"))
        assert decision.outcome is ReplyOutcome.APPLIED, decision.result.detail
    after = org.store.get_meeting(m.id)
    assert after is not None
    assert dict(after.attendee_status) == {first: "declined", second: "declined", third: "accepted"}
    assert after.state is S.BOOKED
    details = [e.detail for e in org.store.audit_trail(m.id)]
    assert details.count("group below quorum: 2 of 3 declined (needs 2)") == 1
    assert len(_organizer_events(org)) == 1
