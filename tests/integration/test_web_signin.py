"""Sign-in to the owner's page over a real uvicorn server (tests/web_support.py) with httpx:
e-mailed links (signed, expiring, single use), Google and Microsoft OpenID Connect through the
emulators, CSRF, sign-out, and a secret-key change."""

from __future__ import annotations

import re
import ssl
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from scheduler.core.clock import FixedClock
from scheduler.entrypoints.bootstrap import App, bootstrap
from scheduler.entrypoints.web.deps import WebDeps
from scheduler.entrypoints.web.session import COOKIE_NAME, current_email, session_middleware
from scheduler.entrypoints.web.signin import LinkTokens, OidcClients, signin_routes
from scheduler.entrypoints.web.templating import make_templates
from scheduler.settings import (
    GoogleSettings,
    MicrosoftSettings,
    Settings,
    SmtpSettings,
    WebSettings,
    new_secret_key,
)
from tests.emulators.google_emulator import GoogleEmulator
from tests.emulators.graph_emulator import GraphEmulator
from tests.emulators.oidc_tokens import Spoil
from tests.web_support import WebServer, web_server

__all__ = ["web_server"]  # the fixture, imported for pytest

OWNER = "ann@corp.example"
STRANGER = "eve@corp.example"
GONE = "gil@corp.example"  # a user whose policy file was removed
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_TOKEN = re.compile(r'name="token" value="([^"]+)"')


@dataclass
class RecordingMailer:
    """An in-memory Mailer (our own port): keeps what was sent."""

    sent: list[EmailMessage] = field(default_factory=list)
    arrived: threading.Event = field(default_factory=threading.Event)

    def send(self, message: EmailMessage) -> None:
        self.sent.append(message)
        self.arrived.set()


@dataclass
class Site:
    """A running sign-in app and what it is made of."""

    server: WebServer
    app: App
    clock: FixedClock
    links: LinkTokens
    mailer: RecordingMailer
    secret: str

    @property
    def base_url(self) -> str:
        return self.server.base_url

    def client(self, **kwargs: Any) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=20, trust_env=False, **kwargs)


def _whoami(request: Request) -> PlainTextResponse:
    return PlainTextResponse(current_email(request) or "anonymous")


def build_site(
    server: WebServer,
    tmp_path: Path,
    *,
    secret: str | None = None,
    google: GoogleEmulator | None = None,
    graph: GraphEmulator | None = None,
    clock: FixedClock | None = None,
    sender: str | None = "goodwill@corp.example",
    mailer: Any = None,
) -> Site:
    secret = secret or new_secret_key()
    clock = clock or FixedClock(NOW)
    settings = Settings(
        _env_file=None,
        data_dir=tmp_path / "data",
        policy_dir=tmp_path / "policies",
        secret_key=secret,
        smtp=SmtpSettings(sender=sender),
        web=WebSettings(base_url=server.base_url),
        google=GoogleSettings(
            client_id=google.oidc_client_id if google else None,
            client_secret=google.oidc_client_secret if google else None,
            discovery_url=google.discovery_url if google else "https://unused.invalid/",
        ),
        microsoft=graph.settings() if graph else MicrosoftSettings(),
    )
    app = bootstrap(settings, clock=clock, auto_migrate=True)
    for email in (OWNER, GONE):
        app.store.upsert_user(email, f"{email}.yaml", "h1", now=NOW)
    gone = app.store.get_user_by_email(GONE)
    assert gone is not None
    app.store.mark_policy_missing(gone.id, now=NOW)
    links = LinkTokens(secret, server.base_url, app.store, clock)
    mailer = mailer or RecordingMailer()
    deps = WebDeps(
        app=app,
        templates=make_templates(),
        base_url=server.base_url,
        links=links,
        oidc=OidcClients(settings),
        mailer=mailer,
    )
    web = Starlette(
        routes=[*signin_routes(), Route("/", _whoami), Route("/me", _whoami)],
        middleware=[session_middleware(secret, server.base_url)],
    )
    web.state.deps = deps
    server.start(web)
    return Site(server, app, clock, links, mailer, secret)


@pytest.fixture
def site(web_server: WebServer, tmp_path: Path) -> Site:
    return build_site(web_server, tmp_path)


def csrf_of(page: httpx.Response) -> str:
    found = _CSRF.search(page.text)
    assert found, page.text
    return found.group(1)


def use_link(client: httpx.Client, link: str) -> httpx.Response:
    """Open ``link`` (the confirmation page) and press its Sign in button."""
    page = client.get(link)
    if page.status_code != 200:
        return page
    token = _TOKEN.search(page.text)
    assert token
    return client.post("/signin/link", data={"csrf_token": csrf_of(page), "token": token.group(1)})


def whoami(client: httpx.Client) -> str:
    return client.get("/").text


# -- e-mailed links -------------------------------------------------------------------------------


def test_a_link_signs_in_once_and_a_forwarded_copy_is_refused(site: Site) -> None:
    link = site.links.sign_in(OWNER, "/me")
    assert link.startswith(f"{site.base_url}/signin/link?token=")
    with site.client() as ann, site.client() as forwarded:
        first = ann.get(link)
        assert first.status_code == 200
        assert "Sign in as ann@corp.example" in first.text
        assert ann.get(link).status_code == 200  # a GET (mail scanner, preview) uses nothing
        signed = use_link(ann, link)
        assert (signed.status_code, signed.headers["location"]) == (303, "/me")
        assert whoami(ann) == OWNER
        cookie = ann.cookies.get(COOKIE_NAME)
        assert cookie is not None
        assert OWNER not in cookie
        again = use_link(forwarded, link)
        assert again.status_code == 410
        assert "used already" in again.text
        assert whoami(forwarded) == "anonymous"


def test_a_link_opened_in_two_browsers_signs_in_only_one(site: Site) -> None:
    link = site.links.sign_in(OWNER)
    with site.client() as one, site.client() as two:
        forms = []
        for client in (one, two):  # both confirmation pages open before either is sent
            page = client.get(link)
            forms.append({"csrf_token": csrf_of(page), "token": _token(link)})
        assert one.post("/signin/link", data=forms[0]).status_code == 303
        assert two.post("/signin/link", data=forms[1]).status_code == 410
        assert (whoami(one), whoami(two)) == (OWNER, "anonymous")


def test_an_expired_link_is_refused(site: Site) -> None:
    link = site.links.sign_in(OWNER)
    site.clock.advance(timedelta(minutes=14, seconds=59))
    assert site.links.peek(_token(link), "signin") is not None
    site.clock.advance(timedelta(seconds=1))
    with site.client() as client:
        page = client.get(link)
        assert page.status_code == 410
        assert "expired" in page.text
        assert 'href="/signin"' in page.text  # offers a new one
        # The POST is refused too (a confirmation page opened just before the deadline).
        home = client.get("/signin")
        refused = client.post(
            "/signin/link", data={"csrf_token": csrf_of(home), "token": _token(link)}
        )
        assert refused.status_code == 410
        assert whoami(client) == "anonymous"


def test_a_tampered_or_foreign_token_is_refused(site: Site) -> None:
    token = _token(site.links.sign_in(OWNER))
    with site.client() as client:
        for bad in (token[:-2] + ("A" if token[-2] != "A" else "B") + token[-1], "x", "", "a.b.c"):
            page = client.get("/signin/link", params={"token": bad})
            assert page.status_code == 400, bad
    # An action link is not a sign-in link, even with a valid signature.
    action = site.links.action(OWNER, 7, "approve")
    assert site.links.peek(action.split("token=")[1], "signin") is None
    claim = site.links.peek(action.split("token=")[1], "action")
    assert claim is not None
    assert (claim.meeting_id, claim.action) == (7, "approve")


def _token(link: str) -> str:
    return parse_qs(urlsplit(link).query)["token"][0]


def test_a_secret_key_change_ends_links_and_sessions(tmp_path: Path) -> None:
    with WebServer() as first_server:
        first = build_site(first_server, tmp_path)
        old_link = first.links.sign_in(OWNER)
        with first.client() as ann:
            assert use_link(ann, first.links.sign_in(OWNER)).status_code == 303
            assert whoami(ann) == OWNER
            old_cookie = ann.cookies.get(COOKIE_NAME)
        first.server.stop()
        with WebServer() as second_server:
            second = build_site(second_server, tmp_path, secret=new_secret_key())
            with second.client() as ann:
                ann.cookies.set(COOKIE_NAME, str(old_cookie))
                assert whoami(ann) == "anonymous"
                moved = old_link.replace(first.base_url, second.base_url)
                page = ann.get(moved)
                assert page.status_code == 400
                assert use_link(ann, moved).status_code == 400
                assert whoami(ann) == "anonymous"
            # The same secret still accepts the same cookie (the test can fail).
            with WebServer() as third_server:
                third = build_site(third_server, tmp_path, secret=first.secret)
                with third.client() as ann:
                    ann.cookies.set(COOKIE_NAME, str(old_cookie))
                    assert whoami(ann) == OWNER


@pytest.mark.parametrize(
    "next_path",
    ["//evil.example/x", "https://evil.example/", "/\\evil.example", "evil", "/\t/evil.example"],
)
def test_a_link_never_redirects_off_site(site: Site, next_path: str) -> None:
    with site.client() as client:
        signed = use_link(client, site.links.sign_in(OWNER, next_path))
        assert (signed.status_code, signed.headers["location"]) == (303, "/")


def test_a_local_next_path_is_kept(site: Site) -> None:
    with site.client() as client:
        signed = use_link(client, site.links.sign_in(OWNER, "/meetings/4?x=1"))
        assert signed.headers["location"] == "/meetings/4?x=1"


def test_the_email_form_sends_a_link_only_to_a_policy_owner(site: Site) -> None:
    with site.client() as client:
        page = client.get("/signin")
        assert page.status_code == 200
        assert 'for="signin-email"' in page.text
        assert "E-mail me a sign-in link" in page.text
        token = csrf_of(page)
        answers = {}
        for email in (STRANGER, GONE, OWNER.upper()):
            answer = client.post(
                "/signin/email", data={"csrf_token": token, "email": email, "next": "/me"}
            )
            assert answer.status_code == 200
            answers[email] = answer.text.replace(email.lower(), "ADDRESS")
        assert len(set(answers.values())) == 1  # the same page whoever asked
    assert site.mailer.arrived.wait(20)
    (message,) = site.mailer.sent  # background tasks ran in order: the owner's came last
    assert (message["To"], message["From"]) == (OWNER, "goodwill@corp.example")
    body = message.get_content()
    link = next(line for line in body.splitlines() if line.startswith(site.base_url))
    with site.client() as reader:
        signed = use_link(reader, link)
        assert (signed.status_code, signed.headers["location"]) == (303, "/me")
        assert whoami(reader) == OWNER


def test_without_a_sender_no_email_form_is_offered_and_none_is_sent(
    web_server: WebServer, tmp_path: Path
) -> None:
    site = build_site(web_server, tmp_path, sender=None)
    with site.client() as client:
        page = client.get("/signin")
        assert page.status_code == 200
        assert "E-mail me a sign-in link" not in page.text
        assert 'action="/signin/email"' not in page.text
        assert "goodwill link --user" in page.text  # what to do instead
        token = csrf_of(client.get(site.links.sign_in(OWNER)))  # a page that has a form
        answer = client.post("/signin/email", data={"csrf_token": token, "email": OWNER})
        assert answer.status_code == 404
    assert site.mailer.sent == []


@dataclass
class RefusingMailer:
    """A Mailer whose server refuses the recipient, naming it (as SMTP servers do)."""

    tried: threading.Event = field(default_factory=threading.Event)
    sent: list[EmailMessage] = field(default_factory=list)

    def send(self, message: EmailMessage) -> None:
        self.tried.set()
        raise ConnectionRefusedError(f"550 5.1.1 <{message['To']}> mailbox unavailable")


def test_a_failed_link_mail_logs_the_error_and_reason_without_address_or_token(
    web_server: WebServer, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    site = build_site(web_server, tmp_path, mailer=RefusingMailer())
    with caplog.at_level("WARNING"), site.client() as client:
        page = client.get("/signin")
        answer = client.post("/signin/email", data={"csrf_token": csrf_of(page), "email": OWNER})
        assert answer.status_code == 200
        assert site.mailer.tried.wait(20)
        for _ in range(200):  # the warning follows the send in the same background task
            if any("sign-in link" in r.getMessage() for r in caplog.records):
                break
            threading.Event().wait(0.05)
    (record,) = [r for r in caplog.records if "sign-in link" in r.getMessage()]
    line = record.getMessage()
    assert "ConnectionRefusedError" in line
    assert "mailbox unavailable" in line
    assert OWNER not in line
    assert "token" not in line


def test_the_email_form_bounds_its_input(site: Site) -> None:
    with site.client() as client:
        token = csrf_of(client.get("/signin"))
        long = "a" * 250 + "@corp.example"
        assert (
            client.post("/signin/email", data={"csrf_token": token, "email": long}).status_code
            == 400
        )
        huge = client.post("/signin/email", data={"csrf_token": token, "email": "x" * 20000})
        assert huge.status_code == 413
    assert site.mailer.sent == []


@pytest.mark.parametrize("path", ["/signin/email", "/signin/link", "/signout"])
def test_a_post_without_the_csrf_token_is_refused(site: Site, path: str) -> None:
    link = site.links.sign_in(OWNER)
    with site.client() as client:
        good = csrf_of(client.get(link))
        for form in ({}, {"csrf_token": "forged"}):
            answer = client.post(path, data={**form, "email": OWNER, "token": _token(link)})
            assert answer.status_code == 403
        assert whoami(client) == "anonymous"
        # With the token the same form works (so the test can fail).
        ok = client.post(path, data={"csrf_token": good, "email": OWNER, "token": _token(link)})
        assert ok.status_code in (200, 303)


def test_sign_out_ends_the_session(site: Site) -> None:
    with site.client() as client:
        assert use_link(client, site.links.sign_in(OWNER)).status_code == 303
        assert whoami(client) == OWNER
        page = client.get(site.links.sign_in(OWNER))  # any page with the session's token
        out = client.post("/signout", data={"csrf_token": csrf_of(page)})
        assert (out.status_code, out.headers["location"]) == (303, "/signin")
        assert whoami(client) == "anonymous"


# -- OpenID Connect -----------------------------------------------------------------------------


@pytest.fixture
def google() -> Iterator[GoogleEmulator]:
    with GoogleEmulator() as emulator:
        yield emulator


@pytest.fixture
def graph(tmp_path: Path) -> Iterator[GraphEmulator]:
    with GraphEmulator(tmp_path / "graph") as emulator:
        yield emulator


@dataclass
class Sso:
    site: Site
    provider: str
    sign_in_as: Callable[[str | None], None]
    spoil: Callable[[Spoil], None]
    verify: ssl.SSLContext | bool

    def client(self) -> httpx.Client:
        return self.site.client(verify=self.verify)


@pytest.fixture(params=["google", "microsoft"])
def sso(
    request: pytest.FixtureRequest,
    web_server: WebServer,
    tmp_path: Path,
    google: GoogleEmulator,
    graph: GraphEmulator,
) -> Sso:
    site = build_site(web_server, tmp_path, google=google, graph=graph)
    verify = ssl.create_default_context(cafile=str(graph.ca_bundle))
    if request.param == "google":
        return Sso(site, "google", google.sign_in_as, google.id_tokens.spoil_next, verify)
    return Sso(site, "microsoft", graph.sign_in_as, graph.id_tokens.spoil_next, verify)


def sso_sign_in(sso: Sso, client: httpx.Client, next_path: str = "/") -> httpx.Response:
    """Start at /signin/PROVIDER, follow the emulator's consent, stop at our answer."""
    start = client.get(f"/signin/{sso.provider}", params={"next": next_path})
    assert start.status_code == 302, start.text
    authorize = urlsplit(start.headers["location"])
    query = parse_qs(authorize.query)
    assert query["code_challenge_method"] == ["S256"]
    assert query["nonce"][0]
    assert query["redirect_uri"] == [f"{sso.site.base_url}/signin/{sso.provider}/callback"]
    consent = client.get(start.headers["location"])
    assert consent.status_code == 302, consent.text
    return client.get(consent.headers["location"])


def test_the_signin_page_offers_each_configured_provider(sso: Sso) -> None:
    with sso.client() as client:
        page = client.get("/signin").text
        assert "Sign in with Google" in page
        assert "Sign in with Microsoft" in page


def test_sso_signs_in_a_policy_owner(sso: Sso) -> None:
    sso.sign_in_as(OWNER)
    with sso.client() as client:
        answer = sso_sign_in(sso, client, next_path="/me")
        assert (answer.status_code, answer.headers.get("location")) == (303, "/me")
        assert whoami(client) == OWNER


def test_sso_refuses_a_stranger_and_names_the_address(sso: Sso) -> None:
    for who in (STRANGER, GONE):
        sso.sign_in_as(who)
        with sso.client() as client:
            answer = sso_sign_in(sso, client)
            assert answer.status_code == 403
            assert who in answer.text
            assert "policy" in answer.text
            assert whoami(client) == "anonymous"


@pytest.mark.parametrize(
    "spoil", ["signature", "expired", "audience", "nonce", "issuer", "unknown_key"]
)
def test_sso_refuses_an_id_token_that_does_not_check_out(sso: Sso, spoil: Spoil) -> None:
    sso.sign_in_as(OWNER)
    sso.spoil(spoil)
    with sso.client() as client:
        answer = sso_sign_in(sso, client)
        assert answer.status_code == 400, answer.text
        assert "failed" in answer.text
        assert whoami(client) == "anonymous"
        # The next, unspoiled sign-in works (the refusal was the token's fault).
        assert sso_sign_in(sso, client).status_code == 303
        assert whoami(client) == OWNER


def test_sso_never_redirects_off_site(sso: Sso) -> None:
    sso.sign_in_as(OWNER)
    with sso.client() as client:
        answer = sso_sign_in(sso, client, next_path="//evil.example/")
        assert answer.headers["location"] == "/"


def test_a_callback_without_our_state_is_refused(sso: Sso) -> None:
    with sso.client() as client:
        answer = client.get(f"/signin/{sso.provider}/callback", params={"code": "x", "state": "y"})
        assert answer.status_code == 400
        assert whoami(client) == "anonymous"


def test_google_requires_a_verified_address(
    web_server: WebServer, tmp_path: Path, google: GoogleEmulator
) -> None:
    site = build_site(web_server, tmp_path, google=google)
    google.sign_in_as(OWNER, email_verified=False)
    sso = Sso(site, "google", google.sign_in_as, google.id_tokens.spoil_next, True)
    with site.client() as client:
        page = client.get("/signin").text
        assert "Sign in with Google" in page
        assert "Sign in with Microsoft" not in page
        assert client.get("/signin/microsoft").status_code == 404
        answer = sso_sign_in(sso, client)
        assert answer.status_code == 400
        assert "verified" in answer.text
        assert whoami(client) == "anonymous"


def test_abandoned_sso_starts_do_not_grow_the_cookie(sso: Sso) -> None:
    sso.sign_in_as(OWNER)
    with sso.client() as client:
        sizes = []
        for _ in range(6):
            client.get(f"/signin/{sso.provider}")
            sizes.append(len(client.cookies.get(COOKIE_NAME) or ""))
        assert max(sizes) < 3000
        assert max(sizes) - min(sizes) < 200
        assert sso_sign_in(sso, client).status_code == 303
