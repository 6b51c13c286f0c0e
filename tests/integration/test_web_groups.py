"""The owner's page with a lunch group, an introduction and the report's insights: over HTTP
against a real uvicorn, the ICS calendar directory and SQLite/PostgreSQL.

Alex has a lunch group (maria, jon, chloe; presenter rotates), Nina to meet through Maria
(``introductions: {mode: meeting}``, so Maria's one-to-one carries the private note AND a
three-person introduction is proposed). Bea, another owner, has Maria in her own list: her page,
the invites and ICS files everyone receives, /metrics and the logs never show Alex's tiers,
power tags, notes or the owner note.
"""

from __future__ import annotations

import html
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from scheduler.app import owner
from scheduler.app.owner import OwnerView, ProposalView
from scheduler.core.model import AttendeeStatus
from scheduler.core.states import MeetingState
from scheduler.entrypoints.web.common import slot_label, when_label
from tests.integration.web_page_support import ALEX, BEA, Org, make_org

ALEX_GROUPS = """\
owner: {email: alex@corp.example, name: Alex Doe, timezone: Europe/London, department: Design}
calendar: {provider: ics}
meeting: {kind: coffee, duration: 30m, location: "Level 2 café"}
availability:
  working_hours: {mon-fri: "09:00-17:00"}
  min_notice: 1d
  horizon: 14d
  buffer: 10m
  max_per_day: 3
  max_per_week: 10
# the lunch and a coffee with Maria (who carries the introduction note) may share a week
etiquette: {max_per_stakeholder_per_week: 2}
tiers:
  zebramentor: {every: 4w, mode: propose}
  quokkapeer: {every: 8w, mode: propose}
stakeholders:
  - {email: maria@corp.example, name: Maria Garcia, tier: quokkapeer, timezone: Europe/Madrid,
     department: Design, notes: "SECRET-NOTE-MARIA", power: [knowledge]}
  - {email: jon@corp.example, name: Jon Berg, tier: quokkapeer, timezone: Europe/Oslo,
     department: Data, notes: "SECRET-NOTE-JON"}
  - {email: chloe@corp.example, name: Chloe Martin, tier: zebramentor, timezone: Europe/Paris,
     department: Legal}
  - {email: nina@corp.example, name: Nina Park, tier: quokkapeer, department: Research,
     status: to_meet, via: maria@corp.example}
groups:
  - name: design-data-lunch
    members: [maria@corp.example, jon@corp.example, chloe@corp.example]
    every: 4w
    kind: lunch
    duration: 60m
    size: "2..3"
    quorum: 0.6
    presenter: rotate
introductions: {mode: meeting}
allowed_domains: [corp.example]
"""

BEA_WITH_MARIA = """\
owner: {email: bea@corp.example, name: Bea Ray, timezone: Europe/Berlin}
calendar: {provider: ics}
meeting: {kind: coffee, duration: 30m}
availability:
  working_hours: {mon-fri: "09:00-17:00"}
  min_notice: 1d
  horizon: 14d
tiers:
  plainpeer: {every: 8w, mode: propose}
stakeholders:
  - {email: maria@corp.example, name: Maria Garcia, tier: plainpeer}
allowed_domains: [corp.example]
"""

NOTE = "ask Maria to introduce you to Nina Park (nina@corp.example)"
#: What nobody but Alex may see: tiers, power tags, notes and the owner note.
PRIVATE = (
    "zebramentor", "quokkapeer", "SECRET-NOTE", "knowledge", "introduce you", "Note for you only",
)  # fmt: skip
PEOPLE = ("maria", "jon", "chloe", "nina")


@pytest.fixture
def org(tmp_path: Path, db_url: str, caplog: pytest.LogCaptureFixture) -> Iterator[Org]:
    caplog.set_level(logging.DEBUG, logger="goodwill")
    yield from make_org(
        tmp_path, db_url, policies={"alex": ALEX_GROUPS, "bea": BEA_WITH_MARIA}, people=PEOPLE
    )


def _view(org: Org) -> OwnerView:
    view = owner.owner_view(org.p, org.user_id(ALEX))
    assert view is not None
    return view


def _one(view: OwnerView, group: str | None, first: str | None = None) -> ProposalView:
    (p,) = [
        p
        for p in view.proposals
        if p.group_name == group and (first is None or p.meeting.stakeholder_email == first)
    ]
    return p


def _invite_blocks(page: str) -> list[str]:
    return re.findall(r'<div class="invite-text">(.*?)</div>', page, flags=re.S)


def test_a_group_proposal_shows_the_group_its_people_and_the_invite_as_sent(org: Org) -> None:
    page = org.signed_in(ALEX).get("/")
    assert page.status_code == 200
    text = html.unescape(page.text)
    lunch = _one(_view(org), "design-data-lunch")
    m = lunch.meeting
    assert lunch.headline == "Lunch: design-data-lunch"
    assert lunch.headline in text
    assert len(lunch.attendees) >= 2
    assert lunch.quorum is not None
    assert lunch.presenter_name is not None
    assert lunch.attendees[0].presenter
    assert lunch.attendees[0].name == lunch.presenter_name
    for a in lunch.attendees:  # every attendee, on their own clock
        assert a.name in text
        assert f"{slot_label(m.start, m.end, a.zone)} their time ({a.zone})" in text
    assert f"Presenter: {lunch.presenter_name}" in text
    assert f"Quorum: {lunch.quorum} of {len(lunch.attendees)}" in text
    assert f'<pre class="invite">{lunch.invite_body}</pre>' in text  # exactly as it is sent
    assert f"Presenting this time: {lunch.presenter_name}." in lunch.invite_body
    assert lunch.invite_title == "Lunch: design-data-lunch"
    assert f"/proposals/{m.id}/approve" in page.text
    assert f"/proposals/{m.id}/decline" in page.text
    assert lunch.alternatives == ()  # a group has none: the page offers none


def _and(names: list[str]) -> str:
    return ", ".join(names[:-1]) + " and " + names[-1]


def test_a_digest_link_to_a_group_names_the_group_its_kind_and_everyone(org: Org) -> None:
    view = _view(org)
    lunch, intro = _one(view, "design-data-lunch"), _one(view, "introduction")
    questions = {}
    for p in (lunch, intro):
        link = org.links.action(ALEX, p.meeting.id, "approve").split("/action", 1)[1]
        page = org.client().get("/action" + link)
        assert page.status_code == 200
        questions[p.group_name] = html.unescape(page.text)
    when = when_label(lunch.meeting.start, "Europe/London")
    names = _and([a.name for a in lunch.attendees])
    assert len(lunch.attendees) >= 2
    assert f"Approve the lunch design-data-lunch with {names} on {when}?" in questions[
        "design-data-lunch"
    ]
    when = when_label(intro.meeting.start, "Europe/London")
    assert (
        "Approve the introduction (Maria Garcia introduces you to Nina Park) with "
        f"{_and([a.name for a in intro.attendees])} on {when}?"
    ) in questions["introduction"]


def test_the_introduction_and_the_owner_note_are_for_alex_only(org: Org) -> None:
    text = html.unescape(org.signed_in(ALEX).get("/").text)
    view = _view(org)
    intro = _one(view, "introduction")
    assert intro.headline == "Introduction: Maria Garcia introduces you to Nina Park"
    assert intro.headline in text
    maria = _one(view, None, "maria@corp.example")
    assert maria.owner_note == NOTE  # persisted with the meeting by the planning round
    assert f"Note for you only: {NOTE}" in re.sub(r"<[^>]+>", "", text)
    blocks = _invite_blocks(text)
    assert len(blocks) == len(view.proposals)
    for block in blocks:  # the invite text as it will be sent never holds the note
        assert "introduce you" not in block
        assert "Note for you only" not in block
    for p in view.proposals:
        assert "introduce you" not in p.invite_title + p.invite_body


def test_approving_books_one_event_per_meeting_and_no_invite_holds_anything_private(
    org: Org, caplog: pytest.LogCaptureFixture
) -> None:
    c = org.signed_in(ALEX)
    view = _view(org)
    lunch = _one(view, "design-data-lunch")
    maria = _one(view, None, "maria@corp.example")
    for p in (lunch, maria):
        assert org.post(c, f"/proposals/{p.meeting.id}/approve").status_code == 303
    org.book_all()
    for p in (lunch, maria):
        assert org.meeting(p.meeting.id).state == MeetingState.BOOKED
    # every file a stakeholder receives: the outbox (iTIP) and their own calendar
    received = [f.read_text() for f in (org.calendars / "outbox").glob("*.ics")]
    received += [(org.calendars / f"{who}@corp.example.ics").read_text() for who in PEOPLE]
    assert any("design-data-lunch" in r for r in received)
    for r in received:
        for secret in (*PRIVATE, "Nina Park", "nina@corp.example"):
            assert secret not in r, secret
    for secret in (*PRIVATE, NOTE):
        assert secret not in caplog.text


def test_a_booked_group_shows_each_answer_and_below_quorum(org: Org) -> None:
    c = org.signed_in(ALEX)
    lunch = _one(_view(org), "design-data-lunch")
    org.post(c, f"/proposals/{lunch.meeting.id}/approve")
    org.book_all()
    m = org.meeting(lunch.meeting.id)
    assert m.state == MeetingState.BOOKED
    now = org.clock.now()
    first, *rest = m.attendees
    org.app.store.set_attendee_status(m.id, first, AttendeeStatus.ACCEPTED, now=now)
    for email in rest:
        org.app.store.set_attendee_status(m.id, email, AttendeeStatus.DECLINED, now=now)
    (up,) = [u for u in _view(org).upcoming if u.meeting.id == m.id]
    assert [a.answer for a in up.attendees] == ["accepted", *["declined"] * len(rest)]
    assert up.below_quorum == ((m.quorum or 1) > 1)
    text = html.unescape(c.get("/").text)
    assert "Lunch: design-data-lunch" in text
    assert f"{up.attendees[0].name} <strong>(presenting)</strong>" in text or "accepted" in text
    assert "declined" in text
    assert ("below quorum" in text) == up.below_quorum
    # one more decline than the quorum allows always reads "below quorum"
    org.app.store.set_attendee_status(m.id, first, AttendeeStatus.DECLINED, now=now)
    assert "below quorum" in c.get("/").text


def test_a_presenter_who_declined_is_not_shown_presenting(org: Org) -> None:
    c = org.signed_in(ALEX)
    lunch = _one(_view(org), "design-data-lunch")
    org.post(c, f"/proposals/{lunch.meeting.id}/approve")
    org.book_all()
    m = org.meeting(lunch.meeting.id)
    assert m.presenter is not None
    text = html.unescape(c.get("/").text)
    (up,) = [u for u in _view(org).upcoming if u.meeting.id == m.id]
    name = up.presenter_name
    assert name is not None
    assert f"{name} <strong>(presenting)</strong>" in text
    now = org.clock.now()
    org.app.store.set_attendee_status(m.id, m.presenter, AttendeeStatus.DECLINED, now=now)
    text = html.unescape(c.get("/").text)
    assert f"{name} <strong>(presenting)</strong>" not in text
    assert (
        f"{name}, the presenter, declined: the lunch stands without a presenter; pick one or "
        "present yourself" in text
    )
    (up,) = [u for u in _view(org).upcoming if u.meeting.id == m.id]
    assert up.presenter_name is None


def test_the_report_shows_the_insights(org: Org) -> None:
    text = html.unescape(org.signed_in(ALEX).get("/").text)
    assert "Insights (private to you)" in text
    assert "Nobody in your list covers: resource" in text
    assert "Sources of power covered: knowledge (1)." in text
    assert "Outside Design: no completed meetings with a known department" in text


def test_bea_and_metrics_see_nothing_of_alexs(org: Org) -> None:
    bea = org.signed_in(BEA).get("/")
    assert bea.status_code == 200
    assert "Bea Ray" in bea.text
    for secret in (*PRIVATE, "design-data-lunch", "Nina Park", "Alex"):
        assert secret not in bea.text, secret
    from scheduler.entrypoints.runtime import build_runtime

    runtime = build_runtime(
        org.app.settings, with_tick=False, with_worker=False, with_ops=True, app=org.app
    )
    runtime.start()
    try:
        assert runtime.ops is not None
        metrics = httpx.get(f"{runtime.ops.url}/metrics", timeout=30).text
    finally:
        runtime.stop()
    for secret in (*PRIVATE, NOTE, "design-data-lunch", "maria@corp.example"):
        assert secret not in metrics
