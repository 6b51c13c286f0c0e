"""`plan` and `validate` without building the settings when no GOODWILL_* variable is set.

Settings come from the environment alone, so with none set every setting is its default; the CLI
then uses the defaults it needs (the policy limits, the default database's path) without
importing pydantic-settings (issue 13, cold start). Any GOODWILL_* variable, in any letter case,
brings the settings back.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from scheduler.app.policies import policy_limits
from scheduler.entrypoints import cli
from scheduler.entrypoints.cli import main
from scheduler.settings import Settings

POLICY = """\
owner: {email: alex@corp.example, name: Alex Doe, timezone: Europe/London}
calendar: {provider: ics}
availability: {working_hours: {mon-fri: "09:00-17:00"}}
tiers: {peer: {every: 8w}}
stakeholders:
  - {email: kim@corp.example, name: Kim Ito, tier: peer}
  - {email: jo@corp.example, name: Jo Park, tier: peer}
allowed_domains: [corp.example]
"""


@pytest.fixture
def bare_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in [n for n in os.environ if n.upper().startswith("GOODWILL_")]:
        monkeypatch.delenv(name)


def test_the_settings_come_from_the_environment_alone() -> None:
    # The shortcut is right only while no other source can set a value: no .env file, no
    # secrets directory, no custom sources.
    config = Settings.model_config
    assert config.get("env_file") is None
    assert config.get("secrets_dir") is None
    assert "settings_customise_sources" not in vars(Settings)


def test_the_cli_defaults_are_the_settings_defaults(bare_environment: None) -> None:
    assert not cli._environment_has_settings()
    settings = Settings()
    assert settings.data_dir == cli.DEFAULT_DATA_DIR
    assert settings.effective_database_url == (
        f"sqlite:///{(cli.DEFAULT_DATA_DIR / 'goodwill.db').as_posix()}"
    )
    assert cli._policy_limits() == policy_limits(settings.limits)


@pytest.mark.parametrize(
    "name", ["GOODWILL_LIMITS__POLICY_MAX_STAKEHOLDERS", "goodwill_limits__policy_max_stakeholders"]
)
def test_a_variable_in_any_case_brings_the_settings_back(
    name: str,
    bare_environment: None,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    policy = tmp_path / "alex.yaml"
    policy.write_text(POLICY)
    assert main(["validate", str(policy)]) == 0  # two stakeholders: within the default limit
    capsys.readouterr()
    monkeypatch.setenv(name, "1")
    assert main(["validate", str(policy)]) == 2
    assert "stakeholders" in capsys.readouterr().out
