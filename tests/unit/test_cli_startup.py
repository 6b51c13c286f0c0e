"""The collector in a one-shot command (scheduler/entrypoints/startup.py, issue 13 cold start).

`goodwill plan` and `validate`, run as the process's own command, import with the cyclic
collector paused and then freeze what the imports made; a command run inside another program
(``main(argv)``) leaves that program's collector alone. Timings are in bench/cold_start.py.
"""

from __future__ import annotations

import gc
import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from scheduler.entrypoints import cli
from scheduler.entrypoints.startup import imports_kept

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def collector() -> Iterator[None]:
    """The collector enabled and nothing frozen before the test, and so again after it."""
    was_enabled = gc.isenabled()
    gc.enable()
    gc.unfreeze()
    yield
    gc.unfreeze()
    if not was_enabled:
        gc.disable()


@pytest.mark.usefixtures("collector")
def test_imports_run_with_the_collector_paused_and_what_they_made_is_frozen() -> None:
    # Given an enabled collector, when a block runs under imports_kept(True) …
    with imports_kept(True):
        inside = gc.isenabled()
        made = [[] for _ in range(100)]  # objects the collector tracks
    # … then it ran with the collector paused, which is enabled again after it, and what
    # existed then is in the permanent generation.
    assert inside is False
    assert gc.isenabled()
    assert gc.get_freeze_count() >= len(made)


@pytest.mark.usefixtures("collector")
def test_a_caller_running_the_command_in_its_process_keeps_its_collector() -> None:
    # Given an enabled collector, when the block runs under imports_kept(False) …
    with imports_kept(False):
        inside = gc.isenabled()
    # … then nothing changed.
    assert inside is True
    assert gc.get_freeze_count() == 0


@pytest.mark.usefixtures("collector")
def test_a_collector_the_caller_disabled_stays_disabled() -> None:
    gc.disable()
    with imports_kept(True):
        pass
    assert not gc.isenabled()
    assert gc.get_freeze_count() == 0


@pytest.mark.usefixtures("collector")
def test_main_with_argv_leaves_the_collector_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given a caller's process (these tests), when it runs `plan` through main(argv) …
    monkeypatch.setenv("GOODWILL_DATA_DIR", str(tmp_path))  # no database: a dry run
    policy = REPO_ROOT / "examples" / "policies" / "alex.yaml"
    calendars = REPO_ROOT / "examples" / "calendars"
    args = ["plan", "--policy", str(policy), "--calendars", str(calendars)]
    args += ["--now", "2026-12-01T09:00:00Z"]
    code = cli.main(args, out=io.StringIO())
    # … then its collector is as it was: enabled, nothing frozen.
    assert code == 0
    assert gc.isenabled()
    assert gc.get_freeze_count() == 0


_PROBE = """\
import gc, sys
from scheduler.entrypoints import startup
seen = []
real = startup.imports_kept
def probe(active):
    seen.append(active)
    return real(active)
startup.imports_kept = probe
import scheduler.entrypoints.cli as cli
cli.imports_kept = probe
sys.argv = ["goodwill", *sys.argv[1:]]
code = cli.main()
print(code, seen, gc.isenabled(), gc.get_freeze_count() > 0, file=sys.stderr)
"""


@pytest.mark.parametrize("command", ["plan", "validate"])
def test_the_process_own_command_freezes_its_imports(command: str, tmp_path: Path) -> None:
    # Given a fresh interpreter whose own command line is `goodwill plan` (or `validate`) …
    policy = "examples/policies/alex.yaml"
    args = [command, policy] if command == "validate" else [command, "--policy", policy]
    if command == "plan":
        args += ["--calendars", "examples/calendars", "--now", "2026-12-01T09:00:00Z"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOODWILL_")}
    env["GOODWILL_DATA_DIR"] = str(tmp_path)
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO_ROOT,
        env=env,
    )
    # … then the command imported under imports_kept(True): the collector is enabled after the
    # imports and what they made is frozen.
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "0 [True] True True", proc.stderr
