"""`goodwill link --user EMAIL`: one line, a sign-in link under GOODWILL_WEB__BASE_URL that the
page accepts; exit 2 for an unknown user or without GOODWILL_SECRET_KEY."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from scheduler.core.clock import SystemClock
from scheduler.entrypoints.bootstrap import bootstrap
from scheduler.entrypoints.cli import main
from scheduler.entrypoints.web.signin_links import LinkTokens
from scheduler.settings import Settings, new_secret_key

BASE = "https://goodwill.corp.example"
SECRET = new_secret_key()


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    for name, value in {
        "GOODWILL_DATA_DIR": str(tmp_path / "data"),
        "GOODWILL_POLICY_DIR": str(tmp_path / "policies"),
        "GOODWILL_SECRET_KEY": SECRET,
        "GOODWILL_WEB__BASE_URL": BASE + "/",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("GOODWILL_DATABASE_URL", raising=False)
    settings = Settings(_env_file=None)
    app = bootstrap(settings, auto_migrate=True)
    app.store.upsert_user("ann@corp.example", "ann.yaml", "h", now=SystemClock().now())
    return settings


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(["link", *argv], out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_link_prints_one_working_sign_in_link(env: Settings) -> None:
    code, out, err = run("--user", "Ann@Corp.example")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith(f"{BASE}/signin/link?token=")
    app = bootstrap(env)
    links = LinkTokens(SECRET, BASE, app.store, app.clock)
    claim = links.peek(lines[0].split("token=")[1], "signin")
    assert claim is not None
    assert claim.email == "ann@corp.example"


def test_link_for_an_unknown_user_exits_2(env: Settings) -> None:
    code, out, err = run("--user", "eve@corp.example")
    assert (code, out) == (2, "")
    assert err.count("\n") == 1
    assert "eve@corp.example" in err
    assert "no user" in err


def test_link_without_a_secret_key_exits_2(env: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GOODWILL_SECRET_KEY")
    code, out, err = run("--user", "ann@corp.example")
    assert (code, out) == (2, "")
    assert err.count("\n") == 1
    assert "GOODWILL_SECRET_KEY" in err


def test_link_needs_user(env: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["link"])
    assert exit_.value.code == 2
