"""Commands are safe for a new user who tries them: nothing is deleted, created or left hanging
that the user did not ask for, and every refusal says what to do instead (issue 11)."""

from __future__ import annotations

import base64
import io
import os
import re
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors.registry import BackendRegistry
from scheduler.core.errors import RateLimited
from scheduler.core.model import CreatedEvent, EventDraft
from scheduler.core.policy import Policy
from scheduler.core.ports import CalendarBackend
from scheduler.entrypoints.cli import main
from scheduler.store import make_engine
from tests.calendars import empty_calendar as _empty_calendar

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"


def _run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = main(list(argv), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask_022() -> Iterator[None]:
    """The usual umask, so "0644 by default" is what the code has to beat."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


# -- goodwill demo ----------------------------------------------------------------------------


def test_demo_refuses_a_directory_it_did_not_create(tmp_path: Path) -> None:
    mine = tmp_path / "thesis"
    mine.mkdir()
    (mine / "chapter1.tex").write_text("three years of work")
    code, _, err = _run("demo", "--examples", str(EXAMPLES), "--data-dir", str(mine))
    assert code == 2
    assert str(mine) in err
    assert ".goodwill-demo" in err  # why: no marker
    assert "--data-dir" in err  # what to do
    assert "Traceback" not in err
    assert (mine / "chapter1.tex").read_text() == "three years of work"


def test_demo_refuses_a_file_as_its_data_directory(tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("keep me")
    code, _, err = _run("demo", "--examples", str(EXAMPLES), "--data-dir", str(notes))
    assert code == 2
    assert str(notes) in err
    assert notes.read_text() == "keep me"


def test_demo_runs_twice_in_its_default_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, umask_022: None
) -> None:
    # `make demo` twice in a row, from a fresh checkout (no .goodwill/ yet).
    monkeypatch.chdir(tmp_path)
    for _ in range(2):
        code, out, err = _run("demo", "--examples", str(EXAMPLES))
        assert code == 0, err
        assert "booked" in out
    demo = tmp_path / ".goodwill" / "demo"
    assert (demo / ".goodwill-demo").is_file()
    assert _mode(demo) == 0o700
    assert _mode(demo / "goodwill.db") == 0o600


def test_demo_reuses_a_default_directory_made_before_the_marker_existed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A checkout that ran `make demo` with an older goodwill has .goodwill/demo without a marker.
    monkeypatch.chdir(tmp_path)
    old = tmp_path / ".goodwill" / "demo"
    (old / "calendars" / "outbox").mkdir(parents=True)
    (old / "goodwill.db").write_bytes(b"")
    code, _, err = _run("demo", "--examples", str(EXAMPLES))
    assert code == 0, err
    assert (old / ".goodwill-demo").is_file()


def test_demo_with_missing_examples_is_a_clear_usage_error(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    code, _, err = _run("demo", "--examples", "/nonexistent", "--data-dir", str(data))
    assert code == 2
    assert "/nonexistent" in err
    assert "--examples" in err
    assert "Traceback" not in err
    assert not data.exists()


# -- goodwill worker / tick on the embedded broker ---------------------------------------------


@pytest.mark.parametrize("command", ["worker", "tick"])
def test_worker_and_tick_refuse_the_embedded_broker(tmp_path: Path, command: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOODWILL_")}
    env["GOODWILL_DATA_DIR"] = str(tmp_path / "data")
    env["GOODWILL_POLICY_DIR"] = str(tmp_path / "policies")
    try:
        done = subprocess.run(
            [sys.executable, "-m", "scheduler", command],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=30,
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"goodwill {command} kept running on the embedded broker")
    assert done.returncode == 2, done.stderr
    assert "GOODWILL_BROKER_URL" in done.stderr
    assert "redis://" in done.stderr
    assert "amqp://" in done.stderr
    assert "goodwill serve" in done.stderr
    assert "Traceback" not in done.stderr


# -- goodwill serve --once with a booking retry pending ---------------------------------------

POLICY = """\
owner: {email: alex@corp.example, name: Alex Doe, timezone: Europe/London}
calendar: {provider: ics}
availability:
  working_hours: {mon-fri: "09:00-17:00"}
  min_notice: 1d
  horizon: 21d
tiers:
  peer: {every: 8w, mode: auto}
stakeholders:
  - {email: kim@corp.example, name: Kim Ito, tier: peer}
allowed_domains: [corp.example]
"""


class RateLimitedOnce:
    """The calendar answers the first create with 429 and a Retry-After, then works."""

    def __init__(self, inner: object, retry_after_s: float) -> None:
        self.inner = inner
        self.retry_after_s = retry_after_s
        self.creates = 0

    def create_event(self, draft: EventDraft) -> CreatedEvent:
        self.creates += 1
        if self.creates == 1:
            raise RateLimited(
                "429 slow down", retry_after_s=self.retry_after_s, provider="ics", status=429
            )
        return self.inner.create_event(draft)  # type: ignore[attr-defined, no-any-return]

    def __getattr__(self, name: str) -> object:  # every other writer call goes through
        return getattr(self.inner, name)


def test_serve_once_leaves_a_pending_retry_to_the_next_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calendars = tmp_path / "calendars"
    calendars.mkdir()
    for who in ("alex", "kim"):
        _empty_calendar(calendars / f"{who}@corp.example.ics")
    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "alex.yaml").write_text(POLICY)
    monkeypatch.setenv("GOODWILL_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("GOODWILL_POLICY_DIR", str(tmp_path / "policies"))
    monkeypatch.setenv("GOODWILL_CALENDARS_DIR", str(calendars))
    monkeypatch.setenv("GOODWILL_LOG_FORMAT", "text")
    # Retry-After under the actor's 60 s "short retry" bound: it raises dramatiq.Retry.
    writers: list[RateLimitedOnce] = []
    real_call = BackendRegistry.__call__

    def wrapped(self: BackendRegistry, policy: Policy) -> CalendarBackend:
        b = real_call(self, policy)
        if not writers:
            writers.append(RateLimitedOnce(b.writer, retry_after_s=40))
        return CalendarBackend(b.provider, b.source, b.history, writers[0], b.responses)  # type: ignore[arg-type]

    monkeypatch.setattr(BackendRegistry, "__call__", wrapped)
    started = time.monotonic()
    code, out, err = _run("serve", "--once")
    elapsed = time.monotonic() - started
    assert code == 0, err
    assert writers
    assert writers[0].creates == 1
    assert re.search(
        r"^1 booking will be retried at \d\d:\d\d.*\(run serve again, or serve without --once\)$",
        out,
        re.MULTILINE,
    ), out
    assert "1 approved" in out
    assert elapsed < 30, f"serve --once waited {elapsed:.0f} s for a retry that is not due"


# -- read-only commands and file modes ---------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [
        ["proposals"],
        ["proposals", "--json"],
        ["report"],
        ["report", "--json"],
        ["approve", "5"],
        ["decline", "5"],
    ],
    ids=" ".join,
)
def test_read_only_commands_create_no_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, argv: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, err = _run(*argv)
    assert code == 2
    assert "no database yet at" in err
    assert ".goodwill/goodwill.db" in err
    assert "goodwill serve" in err
    assert "goodwill migrate" in err
    assert out == ""
    assert list(tmp_path.iterdir()) == []


def test_migrate_creates_a_private_data_directory_and_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, umask_022: None
) -> None:
    monkeypatch.chdir(tmp_path)
    code, _, err = _run("migrate")
    assert code == 0, err
    assert _mode(tmp_path / ".goodwill") == 0o700
    assert _mode(tmp_path / ".goodwill" / "goodwill.db") == 0o600
    # Afterwards the read-only commands work on it.
    code, out, err = _run("proposals", "--json")
    assert code == 0, err
    assert out.strip() == "[]"


def test_sqlite_wal_and_shm_files_are_private(tmp_path: Path, umask_022: None) -> None:
    db = tmp_path / "state" / "goodwill.db"
    engine = make_engine(f"sqlite:///{db}")
    try:
        with engine.connect() as conn:
            conn.exec_driver_sql("CREATE TABLE t (x INTEGER)")
            conn.exec_driver_sql("INSERT INTO t VALUES (1)")
            conn.commit()
            wal, shm = Path(f"{db}-wal"), Path(f"{db}-shm")
            assert wal.exists()
            assert shm.exists()
            assert _mode(db) == 0o600
            assert _mode(wal) == 0o600
            assert _mode(shm) == 0o600
            assert _mode(db.parent) == 0o700
    finally:
        engine.dispose()


# -- GOODWILL_SECRET_KEY -----------------------------------------------------------------------


def test_secret_prints_a_new_strong_key_on_one_line() -> None:
    keys = []
    for _ in range(2):
        code, out, err = _run("secret")
        assert code == 0, err
        assert out.endswith("\n")
        assert out.count("\n") == 1
        key = out.strip()
        assert len(key) == 44
        assert len(base64.urlsafe_b64decode(key)) == 32
        keys.append(key)
    assert keys[0] != keys[1]


@pytest.mark.parametrize(
    "argv",
    [["report"], ["migrate"], ["serve", "--once"], ["demo", "--examples", str(EXAMPLES)]],
    ids=lambda argv: argv[0],
)
def test_a_weak_secret_key_is_refused_at_start_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, argv: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GOODWILL_SECRET_KEY", "hunter2")
    code, out, err = _run(*argv)
    assert code == 2
    assert "GOODWILL_SECRET_KEY" in err
    assert "goodwill secret" in err
    assert "hunter2" not in err + out  # never echo a secret
    assert "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_a_generated_secret_key_is_accepted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    _, key, _ = _run("secret")
    monkeypatch.setenv("GOODWILL_SECRET_KEY", key.strip())
    code, _, err = _run("migrate")
    assert code == 0, err
