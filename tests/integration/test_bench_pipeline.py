"""Smoke test of ``bench.pipeline`` (``make bench-pipeline``): a tiny run on SQLite + embedded.

It starts the real ``goodwill serve`` (through the counting probe) against the Google emulator
in its own process, and checks that every figure the table prints was measured, not left at 0.
No timing assertion: only counts that a working pipeline must produce.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.pipeline import KEYS, main, render_calls, render_table

pytestmark = pytest.mark.slow


def test_a_tiny_sqlite_run_measures_every_figure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["--users", "3", "--store", "sqlite", "--json", "--out", str(tmp_path)])
    out = json.loads(capsys.readouterr().out)
    assert rc == 0
    assert list(out) == ["sizes"]
    (size,) = out["sizes"]
    assert set(KEYS) <= set(size)
    assert size["users"] == 3
    assert size["planned"] == 3
    assert size["bookings"] > 0
    assert size["creates_per_booking"] == 1.0  # one events.insert per meeting booked
    for key in ("cpu_ms_per_plan", "sql_per_plan", "sql_per_booking", "messages_per_plan"):
        assert size[key] > 0, key
    assert size["api_calls_per_plan"] > 0
    assert size["api"]["freebusy"] > 0
    assert size["rss_mib"] > 20
    assert size["pg_cpu_ms_per_plan"] is None  # no PostgreSQL in this mode
    table = render_table([size, {**size, "users": 6}])
    assert "| 3 (SQLite) |" in table
    assert "| ×2 |" in table
    calls = size["per_call"]
    assert calls["plan_user"]["calls"] >= 3
    assert calls["plan_user"]["cpu_ms"] > 0
    assert calls["tick"]["calls"] > 0
    assert "| plan_user | " in render_calls([size, {**size, "users": 6}])
