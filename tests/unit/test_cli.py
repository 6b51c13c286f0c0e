"""The command line as a user runs it: exit codes, JSON shape, errors without tracebacks."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from scheduler.entrypoints.cli import main

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
NOW = "2026-11-30T08:00:00Z"


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_validate_accepts_every_example() -> None:
    files = sorted(str(p) for p in (EXAMPLES / "policies").iterdir())
    code, out, _ = run("validate", *files)
    assert code == 0, out
    assert f"{len(files)} file(s) valid" in out


def test_validate_reports_file_and_line_and_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "owner: {email: a@corp.example, name: A, timezone: Europe/Londn}\n"
        "tiers: {peer: {every: 8w}}\n"
        "stakeholders:\n"
        "  - {email: b@corp.example, name: B, tier: peers}\n"
        "allowed_domains: [corp.example]\n"
    )
    code, out, _ = run("validate", str(bad), str(EXAMPLES / "policies" / "alex.yaml"))
    assert code == 2
    lines = [line for line in out.splitlines() if line.startswith(str(bad))]
    assert any(f"{bad}:1:" in line and "Europe/London" in line for line in lines), out
    assert any(f"{bad}:4:" in line and "peers" in line for line in lines), out
    assert "1 of 2 file(s) invalid" in out


def test_plan_json_on_the_sample_organisation() -> None:
    code, out, err = run(
        "plan",
        "--policy",
        str(EXAMPLES / "policies" / "alex.yaml"),
        "--calendars",
        str(EXAMPLES / "calendars"),
        "--now",
        NOW,
        "--json",
    )
    assert code == 0, err
    data = json.loads(out)
    assert set(data) == {"proposals", "skipped", "group_proposals", "group_skipped"}
    assert data["proposals"], "the sample organisation should yield proposals"
    for p in data["proposals"]:
        assert {"stakeholder", "start", "end", "kind", "mode", "reason"} <= set(p)
        assert p["start"].endswith("Z")
        assert p["end"].endswith("Z")
    skipped = {s["stakeholder"]: s for s in data["skipped"]}
    # dana has no calendar file: skipped as unavailable, never proposed
    assert skipped["dana@corp.example"]["code"] == "calendar_unavailable"
    assert "calendar unavailable" in skipped["dana@corp.example"]["reason"]
    assert "dana@corp.example" not in {p["stakeholder"] for p in data["proposals"]}


def test_plan_is_deterministic_with_now() -> None:
    args = (
        "plan",
        "--policy",
        str(EXAMPLES / "policies" / "alex.yaml"),
        "--calendars",
        str(EXAMPLES / "calendars"),
        "--now",
        NOW,
        "--json",
    )
    assert run(*args)[1] == run(*args)[1]


def test_plan_human_table() -> None:
    code, out, _ = run(
        "plan",
        "--policy",
        str(EXAMPLES / "policies" / "alex.yaml"),
        "--calendars",
        str(EXAMPLES / "calendars"),
        "--now",
        NOW,
    )
    assert code == 0
    assert "Plan for Alex Doe" in out
    assert "Skipped" in out
    assert "Dry run" in out


def test_plan_group_rows_show_names_like_one_to_one_rows() -> None:
    args = ("plan", "--policy", str(EXAMPLES / "policies" / "alex.yaml"), "--calendars",
            str(EXAMPLES / "calendars"), "--now", "2026-12-01T09:00:00Z")  # fmt: skip
    code, out, _ = run(*args)
    assert code == 0
    groups = out.split("Group meetings proposed", 1)[1].split("\n\n", 1)[0]
    (row,) = [line for line in groups.splitlines() if "design-data-lunch" in line]
    assert "Chloe Martin, Jon Berg, Maria Garcia  Chloe Martin  " in row
    assert "@" not in row.split("design-data-lunch", 1)[1].split("every 4w", 1)[0]
    code, data, _ = run(*args, "--json")
    (group,) = json.loads(data)["group_proposals"]
    assert group["presenter"] == "chloe@corp.example"  # the JSON keeps the addresses
    assert "chloe@corp.example" in group["attendees"]


def test_plan_with_invalid_policy_exits_2_without_traceback(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("owner: [not, a, mapping\n")
    code, _, err = run("plan", "--policy", str(bad), "--calendars", str(EXAMPLES / "calendars"))
    assert code == 2
    assert str(bad) in err
    assert "Traceback" not in err


@pytest.mark.parametrize("now", ["2026-11-30T08:00:00", "yesterday"])
def test_bad_now_is_a_usage_error(now: str) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "scheduler", "plan", "--policy", "x.yaml", "--now", now],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert "--now" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_missing_calendars_dir_is_a_usage_error(tmp_path: Path) -> None:
    code, _, err = run(
        "plan",
        "--policy",
        str(EXAMPLES / "policies" / "alex.yaml"),
        "--calendars",
        str(tmp_path / "nope"),
    )
    assert code == 2
    assert "no such directory" in err


def test_plan_without_calendars_or_grant_says_how_to_connect(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOODWILL_DATA_DIR", str(tmp_path / "data"))
    code, _, err = run("plan", "--policy", str(EXAMPLES / "policies" / "alex.yaml"))
    assert code == 2
    assert "goodwill connect google --user alex@corp.example" in err
    assert "GOODWILL_GOOGLE__SERVICE_ACCOUNT_FILE" in err
    assert not (tmp_path / "data").exists()  # a dry run creates nothing


def test_validate_an_empty_directory_says_no_policy_files_and_exits_2(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a policy")
    code, out, err = run("validate", str(tmp_path))
    assert code == 2
    assert out == (
        f"no policy files found in {tmp_path}; policy files are named *.yaml, *.yml or *.toml\n"
    )
    assert err == ""


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("deep.yaml", "owner: " + "[" * 50_000 + "]" * 50_000 + "\n"),
        ("deep.toml", "owner = " + "[" * 50_000 + "]" * 50_000 + "\n"),
        ("every.yaml", "tiers: {peer: {every: 99999999999999999999w}}\n"),
        ("date.yaml", "stakeholders: [{paused_until: 2026-02-30}]\n"),
        ("zone.yaml", "owner: {email: a@corp.example, name: A, timezone: EST}\n"),
    ],
)
def test_validate_never_prints_a_traceback(tmp_path: Path, name: str, text: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    code, out, err = run("validate", str(path))
    assert code == 2
    assert err == ""
    assert "Traceback" not in out
    assert out.startswith(f"{path}:")
    assert "\n1 of 1 file(s) invalid, " in out


def test_validate_applies_the_policy_limit_settings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    alex = EXAMPLES / "policies" / "alex.yaml"
    monkeypatch.setenv("GOODWILL_LIMITS__POLICY_MAX_STAKEHOLDERS", "2")
    code, out, _ = run("validate", str(alex))
    assert code == 2
    assert "11 stakeholders is more than 2" in out
    monkeypatch.setenv("GOODWILL_LIMITS__POLICY_MAX_STAKEHOLDERS", "many")
    code, _, err = run("validate", str(alex))
    assert code == 2
    assert "GOODWILL_LIMITS__POLICY_MAX_STAKEHOLDERS" in err
