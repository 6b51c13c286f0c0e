"""The tick sends the owner's digest through a real SMTP server (aiosmtpd), with signed links;
``goodwill digest --user`` sends one now; an SMTP server that is down never stops the tick."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import pytest

from scheduler.app import planning
from scheduler.app.records import OwnerMailKind
from scheduler.core.clock import FixedClock
from scheduler.entrypoints.bootstrap import App, bootstrap
from scheduler.entrypoints.cli import main
from scheduler.entrypoints.runtime import owner_mail_round
from scheduler.settings import Settings, new_secret_key
from tests.integration.caldav_servers import SmtpSink, free_port
from tests.integration.caldav_servers import smtp_sink_fixture as smtp_sink_fixture
from workers.actors import Actors
from workers.tick import Tick

ALEX = "alex@corp.example"
NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)  # a Tuesday
#: Monday 7 Dec, 08:30 in New York (EST).
DUE = datetime(2026, 12, 7, 13, 30, tzinfo=UTC)
POLICY = """\
owner: {email: alex@corp.example, name: Alex Doe, timezone: America/New_York}
calendar: {provider: ics}
tiers: {mentor: {every: 4w, mode: propose}}
stakeholders:
  - {email: sam@corp.example, name: Sam Lee, tier: mentor}
notify: {digest: "mon 08:30"}
allowed_domains: [corp.example]
"""


@dataclass
class _Queue:
    sent: list[Any] = field(default_factory=list)

    def send(self, *args: Any) -> None:
        self.sent.append(args)


def _actors() -> Actors:
    return Actors(plan_user=_Queue(), book_meeting=_Queue(), sync_responses=_Queue())


@dataclass
class Env:
    app: App
    clock: FixedClock


def _env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, smtp_port: int) -> Env:
    policies = tmp_path / "policies"
    policies.mkdir(exist_ok=True)
    (policies / "alex.yaml").write_text(POLICY)
    (tmp_path / "calendars").mkdir(exist_ok=True)
    for key, value in {
        "GOODWILL_DATA_DIR": str(tmp_path / "data"),
        "GOODWILL_POLICY_DIR": str(policies),
        "GOODWILL_CALENDARS_DIR": str(tmp_path / "calendars"),
        "GOODWILL_SMTP__HOST": "127.0.0.1",
        "GOODWILL_SMTP__PORT": str(smtp_port),
        "GOODWILL_SMTP__SENDER": "goodwill@corp.example",
        "GOODWILL_SECRET_KEY": new_secret_key(),
        "GOODWILL_WEB__BASE_URL": "https://goodwill.corp.example",
    }.items():
        monkeypatch.setenv(key, value)
    clock = FixedClock(NOW)
    app = bootstrap(Settings(), clock=clock, auto_migrate=True)
    planning.register_policies(app.pipeline)
    return Env(app, clock)


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, smtp_sink: SmtpSink) -> Iterator[Env]:
    made = _env(tmp_path, monkeypatch, smtp_sink.port)
    yield made
    made.app.engine.dispose()


def _to_alex(m: Any) -> bool:
    return ALEX in m.rcpt_tos


def test_the_tick_sends_the_due_digest_through_smtp(env: Env, smtp_sink: SmtpSink) -> None:
    user = env.app.store.get_user_by_email(ALEX)
    assert user is not None
    assert user.next_digest_at == DUE
    tick = Tick(env.app.pipeline, _actors(), owner_mail=owner_mail_round(env.app.settings, env.app))
    before = len([m for m in smtp_sink.messages if _to_alex(m)])
    tick.run_once()  # not due yet
    env.clock.advance(DUE - NOW + timedelta(seconds=5))
    tick.run_once()
    # SMTP is synchronous: the sink has the message once the tick's send returned.
    (received,) = [m for m in smtp_sink.messages if _to_alex(m)][before:]
    message = message_from_bytes(received.data, policy=default_policy)
    assert isinstance(message, EmailMessage)
    assert message["Subject"] == "goodwill: your digest (nothing waits for you)"
    html = message.get_body(preferencelist=("html",))
    assert html is not None
    assert 'href="https://goodwill.corp.example/"' in str(html.get_content())  # the page itself
    assert "/signin/link" not in str(html.get_content())  # no 15-minute link in a digest
    user = env.app.store.get_user_by_email(ALEX)
    assert user is not None
    assert user.next_digest_at == DUE + timedelta(weeks=1)
    tick.run_once()
    assert len([m for m in smtp_sink.messages if _to_alex(m)]) == before + 1


def test_an_smtp_server_that_is_down_never_stops_the_tick(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = _env(tmp_path, monkeypatch, free_port())  # nothing listens there
    try:
        tick = Tick(
            env.app.pipeline, _actors(), owner_mail=owner_mail_round(env.app.settings, env.app)
        )
        env.clock.advance(DUE - NOW + timedelta(seconds=5))
        result = tick.run_round()
        assert result is not None
        assert result.won
        assert tick.failed_rounds == 0
        user = env.app.store.get_user_by_email(ALEX)
        assert user is not None
        assert user.next_digest_at == DUE  # still due: retried later
        assert env.app.store.last_owner_mail(user.id, OwnerMailKind.DIGEST) is None
    finally:
        env.app.engine.dispose()


def test_goodwill_digest_user_sends_one_now(env: Env, smtp_sink: SmtpSink) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert main(["digest", "--user", ALEX], out=out, err=err) == 0, err.getvalue()
    assert out.getvalue().startswith(f"digest sent to {ALEX}: goodwill: ")
    assert smtp_sink.wait_for(lambda m: _to_alex(m))
    out, err = io.StringIO(), io.StringIO()
    assert main(["digest", "--user", "nobody@corp.example"], out=out, err=err) == 2
    assert "no user nobody@corp.example" in err.getvalue()
    user = env.app.store.get_user_by_email(ALEX)
    assert user is not None
    assert user.next_digest_at == DUE  # the schedule is left as it is


def test_goodwill_digest_exits_1_when_the_send_fails(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = _env(tmp_path, monkeypatch, free_port())
    try:
        out, err = io.StringIO(), io.StringIO()
        assert main(["digest"], out=out, err=err) == 1
        assert f"the digest to {ALEX} failed: ProviderUnavailable" in err.getvalue()
    finally:
        env.app.engine.dispose()
