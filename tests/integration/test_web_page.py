"""The owner's page over HTTP: a real uvicorn on 127.0.0.1, httpx, SQLite and PostgreSQL, the
ICS calendar directory (events and iTIP messages are counted in its files).

Owners sign in through the e-mailed sign-in link and its confirmation button.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from scheduler.app import owner
from scheduler.app.records import ContactSource
from scheduler.core.errors import ConfigurationError
from scheduler.core.states import MeetingState
from scheduler.entrypoints.web.app import create_web_app
from scheduler.entrypoints.web.common import when_label
from tests.integration.web_page_support import (
    ALEX,
    ALEX_POLICY,
    ALEX_PRIVATE,
    BEA,
    BEA_POLICY,
    NOW,
    Org,
    csrf_of,
    later,
    local,
    make_org,
)


@pytest.fixture
def org(tmp_path: Path, db_url: str) -> Iterator[Org]:
    yield from make_org(tmp_path, db_url)


def _sam(org: Org) -> int:
    (m,) = [m for m in org.proposals() if m.stakeholder_email == "sam@corp.example"]
    return m.id


def _scrub(text: str) -> str:
    """A page without its session's CSRF token (it differs per session)."""
    return re.sub(r'value="[^"]{20,}"', 'value=""', text)


def test_page_lists_proposals_with_both_zones_and_the_invite(org: Org) -> None:
    c = org.signed_in(ALEX)
    page = c.get("/")
    assert page.status_code == 200
    view = owner.owner_view(org.p, org.user_id(ALEX))
    assert view is not None
    assert len(view.proposals) == 2
    text = html.unescape(page.text)
    for p in view.proposals:
        m = p.meeting
        assert f'<pre class="invite">{p.invite_body}</pre>' in text  # exactly as sent
        assert p.invite_title in text
        assert p.reason in text
        assert f"/proposals/{m.id}/approve" in page.text
        for a in p.alternatives:
            assert f"Pick {when_label(a.start, 'Europe/London')}</button>" in page.text
    sam = next(p for p in view.proposals if p.stakeholder_name == "Sam Lee")
    # the owner's zone and the stakeholder's, for the same slot
    assert f"{sam.meeting.start:%H:%M}" in page.text  # London is on UTC in March
    ny = sam.meeting.start.astimezone(ZoneInfo("America/New_York"))
    assert f"{ny:%H:%M}" in page.text
    assert "EST" in page.text
    assert "GMT" in page.text
    assert "Your policy file is valid." in page.text
    assert "Overdue (2)" in page.text


NINA_POLICY = ALEX_POLICY.replace(
    "allowed_domains:",
    "  - {email: nina@corp.example, name: Nina Park, tier: quokkapeer, department: Research,\n"
    "     status: to_meet, via: sam@corp.example}\nallowed_domains:",
)


def test_someone_to_meet_is_not_overdue_but_waits_for_the_introduction(
    tmp_path: Path, db_url: str
) -> None:
    org_it = make_org(
        tmp_path, db_url, policies={"alex": NINA_POLICY, "bea": BEA_POLICY}, people=("nina",)
    )
    org = next(org_it)
    try:
        c = org.signed_in(ALEX)
        sam = org.meeting(_sam(org))
        assert "Nina Park" in sam.owner_note  # the planner put the note on Sam's proposal
        page = html.unescape(c.get("/").text)
        overdue = page.split("<h3>Overdue (2)</h3>")[1].split("<h3>Due soon")[0]
        assert "Nina Park" not in overdue
        assert "To meet through an introduction (1)</h3>" in page
        section = page.split("To meet through an introduction (1)</h3>")[1].split("<h3>By tier")[0]
        assert "<td>Nina Park</td><td>Sam Lee</td>" in section
        when = when_label(sam.start, "Europe/London")
        assert "ask Sam to introduce you to Nina Park" in section
        assert f"— at your coffee with Sam Lee on {when} (proposed)" in section
        assert "Not counting the 1 to meet through an introduction." in page
        assert "<td>Research</td>" not in page.split("<h3>By department</h3>")[1]

        org.post(c, f"/proposals/{sam.id}/approve")
        org.book_all()
        page = html.unescape(c.get("/").text)
        assert f"— at your coffee with Sam Lee on {when} (booked)" in page

        # Met (the introduction happened): an ordinary stakeholder, overdue and counted.
        org.app.store.record_contact(
            org.user_id(ALEX), "nina@corp.example", NOW - timedelta(weeks=9), ContactSource.GOODWILL
        )
        page = html.unescape(c.get("/").text)
        assert "To meet through an introduction" not in page
        assert "Not counting" not in page
        overdue = page.split("<h3>Overdue (3)</h3>")[1].split("<h3>Due soon")[0]
        assert "<td>Nina Park</td>" in overdue
        assert "<td>Research</td>" in page.split("<h3>By department</h3>")[1]
    finally:
        org_it.close()


def test_not_signed_in_goes_to_signin(org: Org) -> None:
    c = org.client()
    for method, path in (("GET", "/"), ("POST", f"/proposals/{_sam(org)}/approve")):
        got = c.request(method, path)
        assert got.status_code == 303
        assert got.headers["location"] == "/signin"
    assert all(m.state == MeetingState.PROPOSED for m in org.proposals())


def test_approve_then_the_runtime_books_exactly_one_event(org: Org) -> None:
    c = org.signed_in(ALEX)
    mid = _sam(org)
    done = org.post(c, f"/proposals/{mid}/approve")
    assert done.status_code == 303
    assert done.headers["location"] == "/"
    assert org.meeting(mid).state == MeetingState.APPROVED
    page = c.get("/")
    assert "Approved: the invite to Sam Lee" in page.text  # the flash, once
    assert "Approved: the invite" not in c.get("/").text
    org.book_all()
    assert org.meeting(mid).state == MeetingState.BOOKED
    assert len(org.events()) == 1
    assert len(org.outbox("REQUEST")) == 1
    # booked now: listed with its state and a Cancel button
    page = c.get("/")
    row = page.text.split(f'id="m{mid}"', 1)[1].split("</tr>", 1)[0]
    assert "invited" in row
    assert f"/meetings/{mid}/cancel" in row
    assert ">Cancel</button>" in row


def test_approving_twice_is_a_plain_409(org: Org) -> None:
    c = org.signed_in(ALEX)
    mid = _sam(org)
    assert org.post(c, f"/proposals/{mid}/approve").status_code == 303
    again = org.post(c, f"/proposals/{mid}/approve")
    assert again.status_code == 409
    assert "approved" in again.text.lower()
    assert 'href="/"' in again.text
    assert org.meeting(mid).state == MeetingState.APPROVED


def test_decline(org: Org) -> None:
    c = org.signed_in(ALEX)
    mid = _sam(org)
    got = org.post(c, f"/proposals/{mid}/decline")
    assert got.status_code == 303
    assert org.meeting(mid).state == MeetingState.CANCELLED
    assert "Declined: Sam Lee" in c.get("/").text
    assert org.events() == []


def test_alternative_moves_and_approves(org: Org) -> None:
    c = org.signed_in(ALEX)
    mid = _sam(org)
    before = org.meeting(mid)
    start, end = before.alternatives[1]
    got = org.post(c, f"/proposals/{mid}/alternative", index="1")
    assert got.status_code == 303, got.text
    after = org.meeting(mid)
    assert after.state == MeetingState.APPROVED
    assert (after.start, after.end) == (start, end)
    bad = org.post(c, f"/proposals/{_kim(org)}/alternative", index="x")
    assert bad.status_code == 400
    assert "index" in bad.text


def test_an_alternative_that_does_not_exist_is_a_400_naming_the_choices(org: Org) -> None:
    c = org.signed_in(ALEX)
    kim = _kim(org)
    n = len(org.meeting(kim).alternatives)
    assert 1 <= n < 9
    before = org.snapshot()
    bad = org.post(c, f"/proposals/{kim}/alternative", index="9")
    assert bad.status_code == 400
    text = html.unescape(bad.text)
    assert f"must be one of {', '.join(str(i) for i in range(n))}, got '9'" in text
    assert org.snapshot() == before


def _kim(org: Org) -> int:
    (m,) = [m for m in org.proposals() if m.stakeholder_email == "kim@corp.example"]
    return m.id


def test_snooze(org: Org) -> None:
    c = org.signed_in(ALEX)
    kim = _kim(org)
    got = org.post(c, "/stakeholders/snooze", email="kim@corp.example", weeks="4")
    assert got.status_code == 303
    status = org.app.store.get_stakeholder_status(org.user_id(ALEX), "kim@corp.example")
    assert status.paused_until == NOW + timedelta(weeks=4)
    assert org.meeting(kim).state == MeetingState.CANCELLED
    assert "Kim Ito is snoozed" in c.get("/").text
    for weeks in ("3", "", "99999999999"):
        bad = org.post(c, "/stakeholders/snooze", email="sam@corp.example", weeks=weeks)
        assert bad.status_code == 400


def test_cancel_cancels_once_at_the_calendar(org: Org) -> None:
    c = org.signed_in(ALEX)
    mid = _sam(org)
    org.post(c, f"/proposals/{mid}/approve")
    org.book_all()
    assert len(org.events()) == 1
    got = org.post(c, f"/meetings/{mid}/cancel")
    assert got.status_code == 303, got.text
    assert org.meeting(mid).state == MeetingState.CANCELLED
    assert org.events() == []
    assert len(org.events(cancelled=True)) == 1
    assert len(org.outbox("CANCEL")) == 1
    again = org.post(c, f"/meetings/{mid}/cancel")
    assert again.status_code == 409
    assert len(org.outbox("CANCEL")) == 1


def test_pause_and_resume(org: Org) -> None:
    c = org.signed_in(ALEX)
    got = org.post(c, "/pause", until=later(10))
    assert got.status_code == 303, got.text
    user = org.app.store.get_user_by_email(ALEX)
    assert user is not None
    assert user.paused_until is not None
    assert user.paused_at(NOW)
    page = c.get("/").text
    assert "Paused until Thu 11 Mar 2027" in page
    assert ">Resume</button>" in page
    assert 'id="pause-until"' not in page
    assert org.post(c, "/resume").status_code == 303
    user = org.app.store.get_user_by_email(ALEX)
    assert user is not None
    assert user.paused_until is None
    assert ">Pause</button>" in c.get("/").text
    for until in ("next week", "2027-02-27", "2030-01-01", "2027-3-9"):
        bad = org.post(c, "/pause", until=until)
        assert bad.status_code == 400, until
        assert "Pause until" in html.unescape(bad.text)


def test_pause_also_cancelling_what_was_booked(org: Org) -> None:
    c = org.signed_in(ALEX)
    mid = _sam(org)
    org.post(c, f"/proposals/{mid}/approve")
    org.book_all()
    got = org.post(c, "/pause", until=later(3), cancel_booked="1")
    assert got.status_code == 303
    assert org.meeting(mid).state == MeetingState.CANCELLED
    assert len(org.outbox("CANCEL")) == 1


def test_another_owners_meeting_is_a_404_that_says_nothing(org: Org) -> None:
    mid = _sam(org)
    c = org.signed_in(BEA)
    before = org.snapshot()
    for path in (f"/proposals/{mid}/approve", f"/proposals/{mid}/decline",
                 f"/meetings/{mid}/cancel"):  # fmt: skip
        theirs = org.post(c, path)
        missing = org.post(c, path.replace(f"/{mid}/", "/999999/"))
        huge = org.post(c, path.replace(f"/{mid}/", "/99999999999999999999/"))
        assert theirs.status_code == missing.status_code == huge.status_code == 404
        assert _scrub(theirs.text) == _scrub(missing.text) == _scrub(huge.text)
        for secret in ("Sam", "sam@", ALEX, "Alex", *ALEX_PRIVATE):
            assert secret not in theirs.text
    alt = org.post(c, f"/proposals/{mid}/alternative", index="0")
    assert alt.status_code == 404
    assert org.snapshot() == before


def test_post_without_csrf_is_refused(org: Org) -> None:
    c = org.signed_in(ALEX)
    mid = _sam(org)
    before = org.snapshot()
    for data in ({}, {"csrf_token": "forged"}):
        got = c.post(f"/proposals/{mid}/approve", data=data)
        assert got.status_code == 403
        assert "reload the page" in html.unescape(got.text)
    other = org.client()  # a session of its own: its token is not Alex's
    token = csrf_of(other.get(local(org.links.action(ALEX, mid, "approve"))).text)
    assert c.post(f"/proposals/{mid}/approve", data={"csrf_token": token}).status_code == 403
    assert org.snapshot() == before


def test_no_get_changes_anything(org: Org) -> None:
    c = org.signed_in(ALEX)
    mid = _sam(org)
    link = local(org.links.action(ALEX, mid, "approve"))
    before = org.snapshot()
    for path in ("/", "/", link, f"/proposals/{mid}/approve", f"/meetings/{mid}/cancel",
                 "/pause", "/resume", "/action", "/nope", "/stakeholders/snooze"):  # fmt: skip
        got = c.get(path)
        assert got.status_code in (200, 404, 405, 410), (path, got.status_code)
        assert org.snapshot() == before, path
    assert org.client().get(link).status_code == 200
    assert org.snapshot() == before


def test_action_link_confirms_then_acts_once(org: Org) -> None:
    mid = _sam(org)
    link = local(org.links.action(ALEX, mid, "approve"))
    c = org.client()  # not signed in: the link is enough
    page = c.get(link)
    assert page.status_code == 200
    when = when_label(org.meeting(mid).start, "Europe/London")
    assert f"Approve the coffee with Sam Lee on {when}?" in page.text
    assert page.text.count("<button") == 1
    assert ">Approve</button>" in page.text
    assert org.meeting(mid).state == MeetingState.PROPOSED
    token = re.search(r'name="token" value="([^"]+)"', page.text)
    assert token is not None
    done = c.post("/action", data={"csrf_token": csrf_of(page.text), "token": token.group(1)})
    assert done.status_code == 200
    assert org.meeting(mid).state == MeetingState.APPROVED
    assert "Approved: the invite to Sam Lee" in done.text  # the result, on its own page
    assert '<a href="/">Open your goodwill page</a>' in done.text
    # The link did that one action and signed nobody in: the page asks to sign in.
    home = c.get("/")
    assert (home.status_code, home.headers["location"]) == (303, "/signin")
    # used: the same link works no more
    assert c.get(link).status_code == 410
    again = c.post("/action", data={"csrf_token": csrf_of(page.text), "token": token.group(1)})
    assert again.status_code == 410


def test_bad_action_links_are_410(org: Org) -> None:
    c = org.client()
    mid = _sam(org)
    bea_link = local(org.links.action(BEA, mid, "approve"))  # Alex's meeting, Bea's link
    for path in ("/action", "/action?token=nonsense", "/action?token=" + "x" * 5000, bea_link,
                 local(org.links.sign_in(ALEX)).replace("/signin/link", "/action")):  # fmt: skip
        got = c.get(path)
        assert got.status_code == 410, path
        assert "Sam" not in got.text
    expired = local(org.links.action(ALEX, mid, "approve"))
    assert c.get(expired).status_code == 200
    org.clock.advance(timedelta(days=7, seconds=1))  # past the link's week
    assert c.get(expired).status_code == 410


def test_another_owners_page_and_alexs_invites_hold_nothing_private(org: Org) -> None:
    bea = org.signed_in(BEA).get("/")
    assert bea.status_code == 200
    assert "Bea Ray" in bea.text
    for secret in (*ALEX_PRIVATE, "Sam Lee", "Kim Ito"):
        assert secret not in bea.text
    view = owner.owner_view(org.p, org.user_id(ALEX))
    assert view is not None
    for p in view.proposals:
        for secret in ("SECRET-NOTE", "sponsor", "zebramentor", "quokkapeer", "position"):
            assert secret not in p.invite_title + p.invite_body


def test_metrics_hold_nothing_private(tmp_path: Path, db_url: str) -> None:
    from scheduler.entrypoints.runtime import build_runtime

    for org in make_org(tmp_path, db_url):
        c = org.signed_in(ALEX)
        org.post(c, f"/proposals/{_sam(org)}/approve")
        runtime = build_runtime(
            org.app.settings, with_tick=False, with_worker=False, with_ops=True, app=org.app
        )
        runtime.start()
        try:
            assert runtime.ops is not None
            metrics = httpx.get(f"{runtime.ops.url}/metrics", timeout=30).text
        finally:
            runtime.stop()
        assert "goodwill" in metrics
        for secret in (*ALEX_PRIVATE, ALEX, "sam@corp.example", "Sam Lee"):
            assert secret not in metrics


def test_serve_runs_the_page_with_the_runtime(tmp_path: Path, db_url: str) -> None:
    from scheduler.entrypoints.runtime import build_runtime

    for org in make_org(tmp_path, db_url):
        runtime = build_runtime(
            org.app.settings, with_tick=False, with_worker=False, with_web=True, app=org.app
        )
        runtime.start()
        try:
            assert runtime.web is not None
            got = httpx.get(f"{runtime.web.url}/", timeout=30)
            assert got.status_code == 303
            assert got.headers["location"] == "/signin"
            assert got.headers["x-frame-options"] == "DENY"
        finally:
            runtime.stop()
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{runtime.web.url}/", timeout=5)


def test_the_page_needs_a_secret_key(org: Org) -> None:
    settings = org.app.settings.model_copy(update={"secret_key": None})
    app = type(org.app)(settings, org.app.engine, org.app.store, org.app.pipeline, org.app.clock)
    with pytest.raises(ConfigurationError, match="GOODWILL_SECRET_KEY"):
        create_web_app(app, links=org.links)


def test_large_bodies_are_refused(org: Org) -> None:
    c = org.signed_in(ALEX)
    token = csrf_of(c.get("/").text)
    got = c.post("/pause", data={"csrf_token": token, "until": "x" * 100_000})
    assert got.status_code == 413


def _busy(path: Path, start: object, end: object) -> None:
    import icalendar

    cal = icalendar.Calendar.from_ical(path.read_bytes())
    event = icalendar.Event()
    event.add("uid", "busy-1@tests")
    event.add("dtstart", start)
    event.add("dtend", end)
    event.add("summary", "Dentist")
    cal.add_component(event)
    path.write_bytes(cal.to_ical())


def test_a_slot_taken_since_offers_the_next_ones(org: Org) -> None:
    c = org.signed_in(ALEX)
    mid = _sam(org)
    m = org.meeting(mid)
    _busy(org.calendars / "sam@corp.example.ics", m.start, m.end)
    got = org.post(c, f"/proposals/{mid}/approve")
    assert got.status_code == 409
    assert "no longer free" in got.text
    for start, _end in m.alternatives:
        assert f"Pick {when_label(start, 'Europe/London')}</button>" in got.text
    assert org.meeting(mid).state == MeetingState.PROPOSED
    # the offered button works
    token = csrf_of(got.text)
    picked = c.post(f"/proposals/{mid}/alternative", data={"csrf_token": token, "index": "0"})
    assert picked.status_code == 303
    assert org.meeting(mid).start == m.alternatives[0][0]


class _Markup(HTMLParser):
    """Forms, their fields and buttons, and the labels of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, object]] = []
        self.labels: set[str] = set()
        self.ids: set[str] = set()
        self.stray_buttons = 0
        self._form: dict[str, object] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if a.get("id"):
            self.ids.add(str(a["id"]))
        if tag == "form":
            self._form = {"method": a.get("method"), "fields": [], "buttons": 0}
            self.forms.append(self._form)
        elif tag == "label" and a.get("for"):
            self.labels.add(str(a["for"]))
        elif tag in ("input", "select") and self._form is not None:
            self._form["fields"].append(a)  # type: ignore[attr-defined]
        elif tag == "button":
            if self._form is None:
                self.stray_buttons += 1
            else:
                self._form["buttons"] = int(self._form["buttons"]) + 1  # type: ignore[call-overload]

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None


def test_the_markup_is_keyboard_and_screen_reader_friendly(org: Org) -> None:
    c = org.signed_in(ALEX)
    mid = _sam(org)
    org.post(c, f"/proposals/{mid}/approve")
    org.book_all()
    page = c.get("/").text
    parsed = _Markup()
    parsed.feed(page)
    assert parsed.stray_buttons == 0
    assert len(parsed.forms) >= 8
    for form in parsed.forms:
        assert form["method"] == "post"
        assert form["buttons"] == 1
        fields = form["fields"]
        assert isinstance(fields, list)
        assert any(f.get("name") == "csrf_token" for f in fields)
        for f in fields:
            if f.get("type") != "hidden":
                assert f.get("id") in parsed.labels, f
    for name in (">Approve</button>", ">Decline</button>", ">Snooze</button>",
                 ">Cancel</button>", ">Pause</button>", "<h1>", "<h2 "):  # fmt: skip
        assert name in page
    assert '<label for="pause-until">Pause until</label>' in page
    assert '<label for="pause-cancel">Also cancel everything goodwill booked</label>' in page
    assert 'name="viewport"' in page
