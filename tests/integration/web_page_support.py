"""An organisation of two owners on the ICS calendar directory, the owner's page served by a real
uvicorn on 127.0.0.1, and httpx clients signed in through e-mailed sign-in links.

Shared by the httpx tests (tests/integration/test_web_page.py), the browser tests
(tests/browser/) and the screenshot script. The page is the one ``goodwill serve`` builds
(:func:`build_web_server`), served from a socket bound first, so ``GOODWILL_WEB__BASE_URL`` (the
links, the OpenID redirect URIs) names the port it really listens on."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import icalendar
import sqlalchemy as sa
from pydantic import SecretStr

from scheduler.app import booking, planning
from scheduler.app.records import Meeting
from scheduler.core.clock import FixedClock
from scheduler.core.states import MeetingState
from scheduler.entrypoints.bootstrap import App, bootstrap
from scheduler.entrypoints.web.server import build_web_server
from scheduler.settings import (
    GoogleSettings,
    MicrosoftSettings,
    OpsSettings,
    Settings,
    WebSettings,
)
from tests.calendars import empty_calendar
from tests.web_support import WebServer

NOW = datetime(2027, 3, 1, 8, 0, tzinfo=UTC)  # a Monday; London is on UTC until 28 March
SECRET = "PsYhqVhNEhZTWHOp5uBfu3o8QEzq3BJkq1xSIrLv8Bg="
ALEX, BEA = "alex@corp.example", "bea@corp.example"

ALEX_POLICY = """\
owner: {email: alex@corp.example, name: Alex Doe, timezone: Europe/London}
calendar: {provider: ics}
meeting: {kind: coffee, duration: 30m, location: "Level 2 café"}
availability:
  working_hours: {mon-fri: "09:00-17:00"}
  windows: ["10:00-11:30", "14:00-16:30"]
  min_notice: 1d
  horizon: 14d
  buffer: 10m
  max_per_day: 1
  max_per_week: 3
tiers:
  zebramentor: {every: 4w, mode: propose}
  quokkapeer: {every: 8w, mode: propose}
stakeholders:
  - {email: sam@corp.example, name: Sam Lee, tier: zebramentor, timezone: America/New_York,
     senior: true, notes: "SECRET-NOTE-SAM wants a sponsor", power: [position]}
  - {email: kim@corp.example, name: Kim Ito, tier: quokkapeer, department: Finance,
     notes: "SECRET-NOTE-KIM", power: [expertise]}
allowed_domains: [corp.example]
"""

BEA_POLICY = """\
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
  - {email: lou@corp.example, name: Lou Fox, tier: plainpeer}
allowed_domains: [corp.example]
"""

#: What must never appear on a page other than Alex's own: Alex's tiers, power tags and notes.
ALEX_PRIVATE = ("zebramentor", "quokkapeer", "SECRET-NOTE", "sponsor", "position", "expertise")

_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found is not None, "no CSRF field on the page"
    return found.group(1)


@dataclass
class Org:
    app: App
    clock: FixedClock
    calendars: Path
    server: WebServer
    server_app: Any
    clients: list[httpx.Client] = field(default_factory=list)

    @property
    def p(self) -> Any:
        return self.app.pipeline

    @property
    def url(self) -> str:
        """Where the page listens (and what its links name), ``http://127.0.0.1:PORT``."""
        return self.server.base_url

    @property
    def links(self) -> Any:
        return self.server_app.state.deps.links

    def restart(self, secret_key: str) -> None:
        """Stop the page and serve it again on a new port, signed with ``secret_key`` (the
        same database, calendars and clock): what changing GOODWILL_SECRET_KEY does."""
        self.server.stop()
        server = WebServer()
        settings = self.app.settings.model_copy(
            update={
                "secret_key": SecretStr(secret_key),
                "web": self.app.settings.web.model_copy(update={"base_url": server.base_url}),
            }
        )
        self.app = type(self.app)(
            settings, self.app.engine, self.app.store, self.app.pipeline, self.app.clock
        )
        self.server_app = _page_app(self.app)
        self.server = server.start(self.server_app)

    def user_id(self, email: str) -> int:
        user = self.app.store.get_user_by_email(email)
        assert user is not None
        return user.id

    def meeting(self, meeting_id: int) -> Meeting:
        m = self.app.store.get_meeting(meeting_id)
        assert m is not None
        return m

    def proposals(self, email: str = ALEX) -> list[Meeting]:
        return [
            m
            for m in self.app.store.open_meetings(self.user_id(email))
            if m.state == MeetingState.PROPOSED
        ]

    def book_all(self) -> list[booking.BookResult]:
        """What the runtime does next: book every approved meeting."""
        ids = self.app.store.approved_needing_send(self.clock.now(), 100)
        return [booking.book_meeting(self.p, i) for i in ids]

    def events(self, email: str = ALEX, *, cancelled: bool = False) -> list[Any]:
        cal = icalendar.Calendar.from_ical((self.calendars / f"{email}.ics").read_bytes())
        return [
            e
            for e in cal.walk("VEVENT")
            if "X-GOODWILL-KEY" in e
            and (str(e.get("STATUS", "")).upper() == "CANCELLED") == cancelled
        ]

    def outbox(self, method: str) -> list[Path]:
        return [
            f
            for f in (self.calendars / "outbox").glob("*.ics")
            if f"METHOD:{method}" in f.read_text()
        ]

    def client(self) -> httpx.Client:
        c = httpx.Client(base_url=self.url, follow_redirects=False, timeout=30)
        self.clients.append(c)
        return c

    def signed_in(self, email: str) -> httpx.Client:
        """A client signed in the way an owner does: the e-mailed link, its page, its button."""
        c = self.client()
        page = c.get(local(self.links.sign_in(email)))
        assert page.status_code == 200, page.text
        token = re.search(r'name="token" value="([^"]+)"', page.text)
        assert token is not None
        done = c.post(
            "/signin/link", data={"token": token.group(1), "csrf_token": csrf_of(page.text)}
        )
        assert done.status_code == 303, done.text
        return c

    def post(self, c: httpx.Client, path: str, **fields: str) -> httpx.Response:
        """POST a form of the page the way its button does (with the session's CSRF token)."""
        token = csrf_of(c.get("/").text)
        return c.post(path, data={"csrf_token": token, **fields})

    def snapshot(self) -> dict[str, list[tuple[Any, ...]]]:
        """Every row of every table: what a GET must leave exactly as it was."""
        meta = sa.MetaData()
        meta.reflect(self.app.engine)
        with self.app.engine.connect() as conn:
            return {
                t.name: sorted((tuple(r) for r in conn.execute(sa.select(t))), key=repr)
                for t in meta.sorted_tables
            }


def make_org(
    tmp_path: Path,
    db_url: str,
    *,
    ops: bool = False,
    google: Any = None,
    graph: Any = None,
    policies: dict[str, str] | None = None,
    people: tuple[str, ...] = (),
) -> Iterator[Org]:
    """Alex and Bea, planned once, their page served. ``google``/``graph``: a
    :class:`~tests.emulators.google_emulator.GoogleEmulator` / ``GraphEmulator`` to offer
    "Sign in with Google/Microsoft" through."""
    calendars = tmp_path / "calendars"
    calendars.mkdir()
    for who in ("alex", "sam", "kim", "bea", "lou", *people):
        empty_calendar(calendars / f"{who}@corp.example.ics")
    policy_dir = tmp_path / "policies"
    policy_dir.mkdir()
    texts = policies if policies is not None else {"alex": ALEX_POLICY, "bea": BEA_POLICY}
    for name, text in texts.items():
        (policy_dir / f"{name}.yaml").write_text(text)
    clock = FixedClock(NOW)
    server = WebServer()  # bound now: the base URL is known before the page is built
    settings = Settings(
        _env_file=None,
        data_dir=tmp_path / "data",
        database_url=db_url,
        policy_dir=policy_dir,
        calendars_dir=calendars,
        secret_key=SECRET,
        web=WebSettings(host="127.0.0.1", port=0, base_url=server.base_url),
        ops=OpsSettings(host="127.0.0.1", port=0),
        google=GoogleSettings(
            client_id=google.oidc_client_id,
            client_secret=google.oidc_client_secret,
            discovery_url=google.discovery_url,
        )
        if google is not None
        else GoogleSettings(),
        microsoft=graph.settings() if graph is not None else MicrosoftSettings(),
    )
    app = bootstrap(settings, clock=clock, auto_migrate=True)
    planning.register_policies(app.pipeline)
    for email in (ALEX, BEA):
        user = app.store.get_user_by_email(email)
        assert user is not None
        run = planning.plan_user(app.pipeline, user.id)
        assert run.error is None
    page = _page_app(app)
    server.start(page)
    org = Org(app, clock, calendars, server, page)
    try:
        yield org
    finally:
        for c in org.clients:
            c.close()
        org.server.stop()
        app.engine.dispose()


def _page_app(app: App) -> Any:
    """The ASGI app ``goodwill serve`` serves for ``app`` (its own socket closed unused)."""
    built = build_web_server(app)
    built.stop()
    return built._server.config.app


def local(link: str) -> str:
    """An e-mailed link's path and query (for a client whose base URL is the page's)."""
    parts = urlsplit(link)
    return f"{parts.path}?{parts.query}"


def later(days: int) -> str:
    return (NOW + timedelta(days=days)).date().isoformat()
