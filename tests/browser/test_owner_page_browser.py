"""The owner's page in a real browser (Debian's Chromium through Playwright), as an owner uses it:
sign in by e-mailed link or SSO, press the buttons, and see the calendar side change.

The organisation and its page come from tests/integration/web_page_support.py (SQLite here; the
httpx tests cover PostgreSQL). Locators are accessible ones only (roles, names, labels). Every
request beyond 127.0.0.1 is aborted, and a test fails if the page tried one (conftest.py).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from scheduler.core.states import MeetingState
from scheduler.entrypoints.web.common import when_label
from scheduler.settings import new_secret_key
from tests.browser.browser_support import Guarded
from tests.integration.web_page_support import ALEX, BEA, NOW, Org, later, local, make_org

NewContext = Callable[..., Guarded]


def _org(tmp_path: Path, **emulators: Any) -> Iterator[Org]:
    yield from make_org(tmp_path, f"sqlite:///{(tmp_path / 'goodwill.db').as_posix()}", **emulators)


@pytest.fixture
def org(tmp_path: Path) -> Iterator[Org]:
    yield from _org(tmp_path)


def _expect() -> Any:
    from playwright.sync_api import expect

    return expect


def sign_in(org: Org, page: Any, email: str = ALEX) -> None:
    """Open an e-mailed sign-in link and press its button, as the owner does."""
    page.goto(org.links.sign_in(email))
    page.get_by_role("button", name="Sign in").click()
    _expect()(page.get_by_role("heading", level=1)).to_have_text(re.compile(r"'s coffees$"))


def _proposal_id(org: Org, email: str) -> int:
    (m,) = [m for m in org.proposals() if m.stakeholder_email == email]
    return m.id


def _card(page: Any, name: str) -> Any:
    """The proposal's article, found by its heading ("Coffee with Sam Lee")."""
    return page.get_by_role("article", name=f"Coffee with {name}")


def _status(page: Any) -> Any:
    return page.get_by_role("status")


# -- signing in ---------------------------------------------------------------------------------


def test_sign_in_by_email_link(org: Org, page: Any) -> None:
    page.goto(org.url + "/")
    _expect()(page).to_have_url(org.url + "/signin")
    page.goto(org.links.sign_in(ALEX))
    _expect()(page.get_by_role("heading", level=1)).to_have_text(f"Sign in as {ALEX}")
    page.get_by_role("button", name="Sign in").click()
    _expect()(page.get_by_role("heading", level=1)).to_have_text("Alex Doe's coffees")
    _expect()(page.get_by_role("heading", name="Waiting for your approval (2)")).to_be_visible()
    _expect()(page.get_by_text(ALEX, exact=True)).to_be_visible()  # signed in as, in the header
    page.get_by_role("button", name="Sign out").click()
    _expect()(page).to_have_url(org.url + "/signin")
    page.goto(org.url + "/")
    _expect()(page).to_have_url(org.url + "/signin")


@pytest.mark.parametrize("provider", ["Google", "Microsoft"])
def test_sign_in_by_sso_through_the_emulator(
    tmp_path: Path, new_context: NewContext, provider: str
) -> None:
    from tests.emulators.google_emulator import GoogleEmulator
    from tests.emulators.graph_emulator import GraphEmulator

    with GoogleEmulator() as google, GraphEmulator(tmp_path / "graph") as graph:
        emulator = google if provider == "Google" else graph
        emulator.sign_in_as(ALEX)
        for org in _org(tmp_path, google=google, graph=graph):
            # The Microsoft emulator serves https with a test CA the browser does not know.
            page = new_context(ignore_https_errors=True).new_page()
            page.goto(org.url + "/signin")
            page.get_by_role("link", name=f"Sign in with {provider}").click()
            _expect()(page.get_by_role("heading", level=1)).to_have_text("Alex Doe's coffees")
            _expect()(page).to_have_url(org.url + "/")


# -- acting on proposals and meetings -----------------------------------------------------------


def test_approve_then_the_calendar_holds_exactly_one_event(org: Org, page: Any) -> None:
    sign_in(org, page)
    mid = _proposal_id(org, "sam@corp.example")
    _card(page, "Sam Lee").get_by_role("button", name="Approve").click()
    _expect()(_status(page)).to_contain_text("Approved: the invite to Sam Lee for")
    assert org.meeting(mid).state == MeetingState.APPROVED
    _expect()(_card(page, "Sam Lee")).to_have_count(0)
    org.book_all()
    assert len(org.events()) == 1
    assert len(org.outbox("REQUEST")) == 1
    page.reload()
    _expect()(page.get_by_role("heading", name="Booked (1)")).to_be_visible()
    row = page.get_by_role("row").filter(has_text="Sam Lee")
    _expect()(row.get_by_role("button", name="Cancel")).to_be_visible()


def test_decline(org: Org, page: Any) -> None:
    sign_in(org, page)
    mid = _proposal_id(org, "sam@corp.example")
    _card(page, "Sam Lee").get_by_role("button", name="Decline").click()
    _expect()(_status(page)).to_contain_text("Declined: Sam Lee")
    assert org.meeting(mid).state == MeetingState.CANCELLED
    assert org.events() == []


def test_pick_an_alternative(org: Org, page: Any) -> None:
    sign_in(org, page)
    mid = _proposal_id(org, "sam@corp.example")
    start, end = org.meeting(mid).alternatives[0]
    pick = f"Pick {when_label(start, 'Europe/London')}"
    _card(page, "Sam Lee").get_by_role("button", name=pick).click()
    _expect()(_status(page)).to_be_visible()
    after = org.meeting(mid)
    assert after.state == MeetingState.APPROVED
    assert (after.start, after.end) == (start, end)


def test_snooze(org: Org, page: Any) -> None:
    sign_in(org, page)
    kim = _proposal_id(org, "kim@corp.example")
    card = _card(page, "Kim Ito")
    card.get_by_label("Propose nothing to Kim Ito for").select_option(label="8 weeks")
    card.get_by_role("button", name="Snooze").click()
    _expect()(_status(page)).to_contain_text("Kim Ito is snoozed")
    status = org.app.store.get_stakeholder_status(org.user_id(ALEX), "kim@corp.example")
    assert status.paused_until is not None
    assert (status.paused_until - NOW).days == 8 * 7
    assert org.meeting(kim).state == MeetingState.CANCELLED


def test_cancel_a_booked_meeting(org: Org, page: Any) -> None:
    sign_in(org, page)
    mid = _proposal_id(org, "sam@corp.example")
    _card(page, "Sam Lee").get_by_role("button", name="Approve").click()
    _expect()(_status(page)).to_be_visible()
    org.book_all()
    page.reload()
    page.get_by_role("row").filter(has_text="Sam Lee").get_by_role("button", name="Cancel").click()
    _expect()(_status(page)).to_be_visible()
    _expect()(page.get_by_role("heading", name="Booked (0)")).to_be_visible()
    assert org.meeting(mid).state == MeetingState.CANCELLED
    assert org.events() == []
    assert len(org.events(cancelled=True)) == 1
    assert len(org.outbox("CANCEL")) == 1


def test_pause_and_resume(org: Org, page: Any) -> None:
    sign_in(org, page)
    page.get_by_label("Pause until").fill(later(10))
    page.get_by_role("button", name="Pause").click()
    pause = page.get_by_role("region", name="Pause")
    _expect()(pause).to_contain_text("Paused until Thu 11 Mar 2027")
    user = org.app.store.get_user_by_email(ALEX)
    assert user is not None
    assert user.paused_at(NOW)
    pause.get_by_role("button", name="Resume").click()
    _expect()(page.get_by_label("Pause until")).to_be_visible()
    user = org.app.store.get_user_by_email(ALEX)
    assert user is not None
    assert user.paused_until is None


# -- links, keys, races, other owners, keyboard -------------------------------------------------


def test_a_forwarded_link_cannot_act_after_its_first_use(org: Org, new_context: NewContext) -> None:
    mid = _proposal_id(org, "sam@corp.example")
    action = org.links.action(ALEX, mid, "approve")
    signin = org.links.sign_in(ALEX)
    owner, laptop, forwarded = (new_context().new_page() for _ in range(3))
    owner.goto(action)
    owner.get_by_role("button", name="Approve").click()
    _expect()(owner.get_by_role("heading", level=1)).to_contain_text(
        "Approved: the invite to Sam Lee"
    )
    assert org.meeting(mid).state == MeetingState.APPROVED
    # The action link did that one thing and signed nobody in: its page link asks to sign in.
    owner.get_by_role("link", name="Open your goodwill page").click()
    _expect()(owner).to_have_url(org.url + "/signin")
    laptop.goto(signin)
    laptop.get_by_role("button", name="Sign in").click()
    _expect()(laptop.get_by_role("heading", level=1)).to_have_text("Alex Doe's coffees")
    # The same two links, opened by whoever they were forwarded to:
    answer = forwarded.goto(action)
    assert answer is not None
    assert answer.status == 410
    _expect()(forwarded.get_by_role("heading", level=1)).to_have_text("This link no longer works")
    _expect()(forwarded.get_by_role("button", name="Approve")).to_have_count(0)
    answer = forwarded.goto(signin)
    assert answer is not None
    assert answer.status == 410
    _expect()(forwarded.get_by_role("heading", level=1)).to_have_text(
        "This sign-in link was used already"
    )
    _expect()(forwarded.get_by_role("button", name="Sign in")).to_have_count(0)
    forwarded.goto(org.url + "/")
    _expect()(forwarded).to_have_url(org.url + "/signin")


def test_a_new_secret_key_ends_old_links_and_sessions(org: Org, page: Any) -> None:
    sign_in(org, page)
    unused = org.links.sign_in(ALEX)
    org.restart(new_secret_key())
    # Same host: the browser still sends the old session cookie; the new key refuses it.
    page.goto(org.url + "/")
    _expect()(page).to_have_url(org.url + "/signin")
    answer = page.goto(org.url + local(unused))
    assert answer is not None
    assert answer.status == 400
    _expect()(page.get_by_role("button", name="Sign in")).to_have_count(0)
    sign_in(org, page)  # a link signed with the new key works (so the test can fail)


def test_two_tabs_approving_the_same_proposal_book_it_once(org: Org, page: Any) -> None:
    sign_in(org, page)
    mid = _proposal_id(org, "sam@corp.example")
    second = page.context.new_page()
    second.goto(org.url + "/")
    page.goto(org.url + "/")
    _card(page, "Sam Lee").get_by_role("button", name="Approve").click()
    _expect()(_status(page)).to_contain_text("Approved")
    with second.expect_response(lambda r: r.url.endswith(f"/proposals/{mid}/approve")) as got:
        _card(second, "Sam Lee").get_by_role("button", name="Approve").click()
    assert got.value.status == 409
    _expect()(second.get_by_role("heading", level=1)).to_have_text("That cannot be done now")
    _expect()(second.get_by_role("main")).to_contain_text("approved")
    org.book_all()
    assert len(org.events()) == 1
    assert len(org.outbox("REQUEST")) == 1


def test_another_owners_meeting_is_not_found(org: Org, page: Any) -> None:
    alex_meeting = _proposal_id(org, "sam@corp.example")
    sign_in(org, page, BEA)
    # A form of the page's own kind (with Bea's CSRF token), aimed at Alex's meeting.
    page.evaluate(
        """(action) => {
            const form = document.createElement("form");
            form.method = "post";
            form.action = action;
            const token = document.querySelector("input[name=csrf_token]").cloneNode();
            form.appendChild(token);
            const button = document.createElement("button");
            button.textContent = "Approve theirs";
            form.appendChild(button);
            document.querySelector("main").appendChild(form);
        }""",
        f"/proposals/{alex_meeting}/approve",
    )
    with page.expect_response(lambda r: "/approve" in r.url) as got:
        page.get_by_role("button", name="Approve theirs").click()
    assert got.value.status == 404
    _expect()(page.get_by_role("heading", level=1)).to_have_text("Not found")
    _expect()(page.get_by_role("main")).not_to_contain_text("Sam")
    assert org.meeting(alex_meeting).state == MeetingState.PROPOSED
    answer = page.goto(f"{org.url}/proposals/{alex_meeting}/approve")  # a GET changes nothing
    assert answer is not None
    assert answer.status in (404, 405)
    assert org.meeting(alex_meeting).state == MeetingState.PROPOSED


def test_keyboard_alone_approves(org: Org, page: Any) -> None:
    sign_in(org, page)
    heading = page.get_by_role("article").first.get_by_role("heading", level=3).inner_text()
    name = heading.removeprefix("Coffee with ")
    email = {"Sam Lee": "sam@corp.example", "Kim Ito": "kim@corp.example"}[name]
    mid = _proposal_id(org, email)
    focused = ""
    for _ in range(12):  # the brand link, Sign out, the invite's summary, then Approve
        page.keyboard.press("Tab")
        focused = page.evaluate("document.activeElement.textContent.trim()")
        if focused == "Approve":
            break
    assert focused == "Approve"
    page.keyboard.press("Enter")
    _expect()(_status(page)).to_contain_text(f"Approved: the invite to {name}")
    assert org.meeting(mid).state == MeetingState.APPROVED
