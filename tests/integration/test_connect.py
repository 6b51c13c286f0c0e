"""`goodwill connect` signs a user in and keeps the grant encrypted; planning then uses it."""

from __future__ import annotations

import io
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import text

from scheduler.app import planning
from scheduler.core.clock import FixedClock
from scheduler.entrypoints.bootstrap import bootstrap
from scheduler.entrypoints.cli import main
from scheduler.settings import Settings
from tests.emulators.graph_emulator import GraphEmulator

SECRET = "Lbt681w2vK_knOcxG1OOfAugXaEDj_CFdTKh6ceELtk="  # made with `goodwill secret`


@pytest.fixture
def emu(tmp_path: Path) -> Iterator[GraphEmulator]:
    emulator = GraphEmulator(tmp_path / "emu")
    emulator.add_mailbox("ann@corp.example", zone="GMT Standard Time")
    emulator.add_mailbox("bo@corp.example", zone="Eastern Standard Time")
    try:
        yield emulator
    finally:
        emulator.close()
    assert emulator.schema_violations == []


def _env(monkeypatch: pytest.MonkeyPatch, emu: GraphEmulator, tmp_path: Path) -> None:
    s = emu.settings(client_secret=None)
    monkeypatch.setenv("GOODWILL_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("GOODWILL_POLICY_DIR", str(tmp_path / "policies"))
    monkeypatch.setenv("GOODWILL_SECRET_KEY", SECRET)
    monkeypatch.setenv("GOODWILL_MICROSOFT__AUTHORITY_HOST", s.authority_host)
    monkeypatch.setenv("GOODWILL_MICROSOFT__TENANT", s.tenant)
    monkeypatch.setenv("GOODWILL_MICROSOFT__GRAPH_BASE_URL", s.graph_base_url)
    monkeypatch.setenv("GOODWILL_MICROSOFT__CLIENT_ID", str(s.client_id))
    monkeypatch.setenv("GOODWILL_MICROSOFT__CA_BUNDLE", str(s.ca_bundle))
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "ann.yaml").write_text(
        "owner: {email: ann@corp.example, name: Ann Ng, timezone: Europe/London}\n"
        "calendar: {provider: microsoft}\n"
        "availability: {min_notice: 0m}\n"
        "tiers: {peer: {every: 8w, mode: auto}}\n"
        "stakeholders:\n"
        "  - {email: bo@corp.example, name: Bo Diaz, tier: peer, timezone: America/New_York}\n"
        "allowed_domains: [corp.example]\n"
    )


def test_connect_microsoft_device_flow_stores_the_grant_encrypted_and_planning_uses_it(
    emu: GraphEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _env(monkeypatch, emu, tmp_path)
    out, err = io.StringIO(), io.StringIO()
    # Given the user completes the device-code sign-in
    assert main(["connect", "microsoft", "--user", "ann@corp.example"], out=out, err=err) == 0
    assert "enter the code" in out.getvalue()
    assert "connected for ann@corp.example" in out.getvalue()
    # Then the msal cache is in the database, encrypted: no token text, no e-mail in the blob
    app = bootstrap(Settings(), clock=FixedClock(datetime(2027, 3, 1, 8, tzinfo=UTC)))
    with app.engine.connect() as conn:
        (blob,) = conn.execute(text("SELECT ciphertext FROM credentials")).one()
    assert b"refresh" not in bytes(blob)
    assert b"ann@corp.example" not in bytes(blob)
    assert app.store.load_credential("ann@corp.example", "microsoft")
    # And planning reads Graph with that grant (one getSchedule, no new sign-in)
    token_calls = len(emu.token_requests)
    planning.register_policies(app.pipeline)
    user = app.store.get_user_by_email("ann@corp.example")
    assert user is not None
    run = planning.plan_user(app.pipeline, user.id)
    assert run.error is None, run.error
    assert len(run.meeting_ids) == 1
    assert emu.count("POST", "getSchedule") == 1
    assert all(r["grant_type"] != "device_code" for r in emu.token_requests[token_calls:])


def test_connect_refuses_without_a_secret_key(
    emu: GraphEmulator, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _env(monkeypatch, emu, tmp_path)
    monkeypatch.delenv("GOODWILL_SECRET_KEY")
    out, err = io.StringIO(), io.StringIO()
    assert main(["connect", "microsoft", "--user", "ann@corp.example"], out=out, err=err) == 2
    assert "GOODWILL_SECRET_KEY" in err.getvalue()
    assert emu.token_requests == []
