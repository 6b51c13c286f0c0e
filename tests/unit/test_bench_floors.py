"""``bench.floors`` takes its call mix from a ``bench.pipeline --json`` run (issue 13)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.floors import Mix


def _run(tmp_path: Path) -> Path:
    size = {
        "users": 1000, "planned": 1000, "plan_rounds": 1317, "sql_all_per_plan": 23.98,
        "messages_per_plan": 2.96,
        "api": {"token": 1778, "list": 4454, "freebusy": 3781, "insert": 6354, "get": 78},
    }  # fmt: skip
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"sizes": [size, {**size, "users": 10}]}), encoding="utf-8")
    return path


def test_the_mix_is_the_pipelines_calls_per_user_plan(tmp_path: Path) -> None:
    mix = Mix.from_pipeline(_run(tmp_path), None)
    assert mix.planning_rounds == 1.317
    assert mix.bookings == 6.354
    # each round reads the owner (events.list) and its stakeholders (freeBusy) once; the rest
    # are the other reads, priced apart
    assert mix.other_lists == pytest.approx((4454 - 1317) / 1000)
    assert mix.other_freebusy == pytest.approx((3781 - 1317) / 1000)
    assert mix.gets == 0.078
    assert mix.token_grants == 1.778
    assert mix.sql_round_trips == 23.98
    assert mix.messages == 2.96
    assert mix.sql_statements == pytest.approx(23.98 - 2 * mix.sql_transactions)


def test_a_size_not_in_the_run_is_refused(tmp_path: Path) -> None:
    assert Mix.from_pipeline(_run(tmp_path), 10).planning_rounds == 1.317
    with pytest.raises(SystemExit, match="no size with 500 users"):
        Mix.from_pipeline(_run(tmp_path), 500)
