"""Bounds on time (issue 11): ``plan --now`` and the tick's lease, skew and health settings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from scheduler.settings import Settings

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
RANGE = "--now must be between 2000-01-01T00:00:00Z and 2100-01-01T00:00:00Z"


def plan(now: str) -> subprocess.CompletedProcess[str]:
    # A child process with a deadline: before the bound, 9999-12-30 planned for minutes.
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "scheduler",
            "plan",
            "--policy",
            str(EXAMPLES / "policies" / "alex.yaml"),
            "--calendars",
            str(EXAMPLES / "calendars"),
            "--now",
            now,
        ],
        capture_output=True,
        text=True,
        check=False,
        timeout=50,
    )


@pytest.mark.parametrize(
    "now",
    [
        "0001-01-01T00:00:00Z",
        "0001-01-01T00:00:00+05:00",
        "1999-12-31T23:59:59Z",
        "2100-01-01T00:00:00Z",
        "9999-12-30T00:00:00Z",
        "9999-12-31T23:59:59-05:00",
    ],
)
def test_now_outside_the_supported_range_is_a_usage_error(now: str) -> None:
    proc = plan(now)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == f"goodwill: {RANGE}, got {now}"


@pytest.mark.parametrize("now", ["2000-01-01T00:00:00Z", "2099-12-31T12:00:00+01:00"])
def test_now_at_the_edges_of_the_range_plans(now: str) -> None:
    proc = plan(now)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "Dry run" in proc.stdout


def test_tick_settings_have_sane_defaults() -> None:
    s = Settings(_env_file=None)
    assert s.effective_tick_max_lease_s == 60.0
    assert Settings(_env_file=None, tick_interval_s=600).effective_tick_max_lease_s == 1202.0
    assert Settings(_env_file=None, tick_max_lease_s=30).effective_tick_max_lease_s == 30.0
    assert (s.max_clock_skew_s, s.tick_stale_rounds, s.tick_max_failed_rounds) == (2.0, 6, 3)
    assert (s.sync_every_s, s.sync_max_every_s) == (900.0, 7200.0)


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("GOODWILL_TICK_INTERVAL_S", "0"),
        ("GOODWILL_TICK_INTERVAL_S", "nan"),
        ("GOODWILL_TICK_INTERVAL_S", "-5"),
        ("GOODWILL_MAX_CLOCK_SKEW_S", "0"),
        ("GOODWILL_MAX_CLOCK_SKEW_S", "inf"),
        ("GOODWILL_MAX_CLOCK_SKEW_S", "100000"),
        ("GOODWILL_TICK_MAX_LEASE_S", "-1"),
        ("GOODWILL_TICK_MAX_LEASE_S", "5"),  # shorter than the interval plus the skew
        ("GOODWILL_TICK_MAX_LEASE_S", "1e9"),
        ("GOODWILL_TICK_STALE_ROUNDS", "1"),
        ("GOODWILL_TICK_STALE_ROUNDS", "many"),
        ("GOODWILL_TICK_MAX_FAILED_ROUNDS", "0"),
        ("GOODWILL_TICK_MAX_FAILED_ROUNDS", "100000"),
        ("GOODWILL_SYNC_EVERY_S", "0"),
        ("GOODWILL_SYNC_MAX_EVERY_S", "200000"),
        ("GOODWILL_SYNC_MAX_EVERY_S", "60"),  # below GOODWILL_SYNC_EVERY_S (900)
    ],
)
def test_nonsense_tick_settings_are_refused_naming_the_variable(
    variable: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError) as info:
        Settings(_env_file=None)
    (error,) = info.value.errors()
    name = "GOODWILL_" + "__".join(str(p) for p in error["loc"]).upper()
    assert name == variable


def test_refused_tick_setting_at_start_up_exits_2_naming_it(tmp_path: Path) -> None:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("GOODWILL_")}
    env.update(GOODWILL_DATA_DIR=str(tmp_path), GOODWILL_MAX_CLOCK_SKEW_S="-3")
    proc = subprocess.run(
        [sys.executable, "-m", "scheduler", "migrate"],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=50,
    )
    assert proc.returncode == 2
    assert "GOODWILL_MAX_CLOCK_SKEW_S" in proc.stderr
    assert "Traceback" not in proc.stderr
