"""`goodwill connect google`: the installed-app flow (loopback redirect + PKCE) through
google-auth-oauthlib against the emulator, then planning with the stored refresh token."""

from __future__ import annotations

import threading
import webbrowser
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text

from connectors.connect import connect_google
from connectors.registry import StoreTokenStore
from scheduler.app import planning
from scheduler.core.clock import FixedClock
from scheduler.core.errors import AuthorizationRevoked
from scheduler.entrypoints.bootstrap import App, bootstrap
from scheduler.settings import GoogleSettings, Settings
from tests.emulators.google_emulator import GoogleEmulator

NOW = datetime(2027, 3, 1, 8, 0, tzinfo=UTC)


class FollowingBrowser(webbrowser.BaseBrowser):
    """A browser that opens the consent URL and follows the redirect back to the flow."""

    def __init__(self) -> None:
        super().__init__("goodwill-test")
        self.opened: list[str] = []

    def open(self, url: str, new: int = 0, autoraise: bool = True) -> bool:
        self.opened.append(url)

        def go() -> None:
            with httpx.Client(follow_redirects=True, timeout=10, trust_env=False) as client:
                client.get(url)

        threading.Thread(target=go, daemon=True).start()
        return True


@pytest.fixture
def emu() -> Iterator[GoogleEmulator]:
    with GoogleEmulator() as emulator:
        emulator.add_calendar("ann@corp.example", "Europe/London")
        emulator.add_calendar("bo@corp.example", "America/New_York")
        yield emulator
        assert emulator.schema_violations == []


@pytest.fixture
def app(tmp_path: Path, emu: GoogleEmulator, monkeypatch: pytest.MonkeyPatch) -> Iterator[App]:
    # oauthlib refuses a plain-http token endpoint; the emulator is http on loopback.
    monkeypatch.setenv("OAUTHLIB_INSECURE_TRANSPORT", "1")
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "ann.yaml").write_text(
        "owner: {email: ann@corp.example, name: Ann Ng, timezone: Europe/London}\n"
        "calendar: {provider: google}\n"
        "availability: {min_notice: 0m}\n"
        "tiers: {peer: {every: 8w, mode: auto}}\n"
        "stakeholders:\n"
        "  - {email: bo@corp.example, name: Bo Diaz, tier: peer, timezone: America/New_York}\n"
        "allowed_domains: [corp.example]\n"
    )
    settings = Settings(
        _env_file=None,
        data_dir=tmp_path / "data",
        policy_dir=policies,
        secret_key="PsYhqVhNEhZTWHOp5uBfu3o8QEzq3BJkq1xSIrLv8Bg=",  # goodwill secret
        google=GoogleSettings(
            token_uri=emu.token_uri,
            auth_uri=emu.auth_uri,
            api_endpoint=emu.api_endpoint,
            client_id="desktop-client.apps.example",
            client_secret="desktop-secret",
            timeout_s=5,
        ),
    )
    made = bootstrap(settings, clock=FixedClock(NOW), auto_migrate=True)
    yield made
    made.engine.dispose()


def test_connect_google_stores_an_encrypted_refresh_token_used_for_planning(
    app: App, emu: GoogleEmulator
) -> None:
    store = StoreTokenStore(app.store, app.clock.now)
    browser = FollowingBrowser()
    webbrowser.register("goodwill-test", None, browser)
    said: list[str] = []
    # Given Ann consents in her browser
    connect_google(
        app.settings.google, store, "ann@corp.example", say=said.append, browser="goodwill-test"
    )
    (url,) = browser.opened
    assert "code_challenge_method=S256" in url
    assert "access_type=offline" in url
    assert "login_hint=ann%40corp.example" in url
    grants = [r for r in emu.token_requests if r["grant_type"] == "authorization_code"]
    assert [g["code_ok"] for g in grants] == [True]
    # Then the refresh token is in the database, encrypted
    with app.engine.connect() as conn:
        (blob,) = conn.execute(text("SELECT ciphertext FROM credentials")).one()
    assert b"1//" not in bytes(blob)
    assert b"refresh_token" not in bytes(blob)
    # And planning reads Google with it: one freeBusy, no new consent
    planning.register_policies(app.pipeline)
    user = app.store.get_user_by_email("ann@corp.example")
    assert user is not None
    run = planning.plan_user(app.pipeline, user.id)
    assert run.error is None, run.error
    assert len(run.meeting_ids) == 1
    assert emu.count("POST", "/freeBusy") == 1
    refreshes = [r for r in emu.token_requests if r["grant_type"] == "refresh_token"]
    assert len(refreshes) == 1


def test_a_refused_consent_is_reported_not_stored(app: App, emu: GoogleEmulator) -> None:
    emu.consenting_user = ""  # nobody signs in: the code is worthless
    store = StoreTokenStore(app.store, app.clock.now)
    webbrowser.register("goodwill-test", None, FollowingBrowser())
    with pytest.raises(AuthorizationRevoked):
        connect_google(
            app.settings.google, store, "ann@corp.example", say=lambda _: None,
            browser="goodwill-test", timeout_s=10,
        )  # fmt: skip
    assert app.store.load_credential("ann@corp.example", "google") is None


def test_planning_a_user_with_no_grant_says_how_to_connect(
    tmp_path: Path, emu: GoogleEmulator
) -> None:
    policies = tmp_path / "p"
    policies.mkdir()
    (policies / "ann.yaml").write_text(
        "owner: {email: ann@corp.example, name: Ann Ng, timezone: Europe/London}\n"
        "calendar: {provider: google}\n"
        "tiers: {peer: {every: 8w}}\n"
        "stakeholders: [{email: bo@corp.example, name: Bo Diaz, tier: peer}]\n"
    )
    settings = Settings(
        _env_file=None,
        data_dir=tmp_path / "d",
        policy_dir=policies,
        google=GoogleSettings(token_uri=emu.token_uri, api_endpoint=emu.api_endpoint),
    )
    app = bootstrap(settings, clock=FixedClock(NOW), auto_migrate=True)
    planning.register_policies(app.pipeline)
    user = app.store.get_user_by_email("ann@corp.example")
    assert user is not None
    run = planning.plan_user(app.pipeline, user.id)
    assert run.error == "not configured"
    (event,) = [
        e for e in app.store.user_events(user.id, since=NOW) if "not configured" in e.detail
    ]
    assert "goodwill connect google --user ann@corp.example" in event.detail
    assert app.store.get_user(user.id).next_plan_at == NOW + timedelta(hours=1)
    assert emu.calls == []  # nothing was sent to the provider
