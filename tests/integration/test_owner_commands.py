"""The owner's commands through the CLI (issue 12): ``goodwill cancel``, ``cancel --all``,
``pause``, ``resume`` and ``approve/decline --user``, on SQLite and PostgreSQL, against the
Google emulator: a cancel is exactly one ``events.delete`` (Google's cancel, which notifies the
attendee), and a paused owner gets no proposals and no bookings."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from scheduler.app import booking, planning
from scheduler.app.pipeline import idempotency_key
from scheduler.app.records import NewMeeting
from scheduler.core.states import MeetingState
from scheduler.entrypoints.bootstrap import App, bootstrap
from scheduler.entrypoints.cli import main
from scheduler.settings import GoogleSettings, Settings
from tests.emulators.google_emulator import GoogleEmulator
from tests.integration.reliability_support import service_account_file, write_policy

S = MeetingState
ALEX, BEA, KIM, JO = (
    "alex@corp.example",
    "bea@corp.example",
    "kim@corp.example",
    "jo@corp.example",
)


@dataclass
class Setup:
    app: App
    emu: GoogleEmulator

    def user_id(self, email: str = ALEX) -> int:
        user = self.app.store.get_user_by_email(email)
        assert user is not None
        return user.id

    def state(self, meeting_id: int) -> MeetingState:
        m = self.app.store.get_meeting(meeting_id)
        assert m is not None
        return m.state

    def deletes(self) -> int:
        return sum(1 for method, _ in self.emu.calls if method == "DELETE")

    def inserts(self) -> int:
        return self.emu.count("POST", "/events")

    def plan_and_book(self, email: str = ALEX) -> list[int]:
        run = planning.plan_user(self.app.pipeline, self.user_id(email))
        for meeting_id in self.app.store.approved_needing_send(datetime.now(UTC), 50):
            booking.book_meeting(self.app.pipeline, meeting_id)
        return list(run.meeting_ids)

    def proposal(self, email: str, other: str, start: datetime) -> int:
        user_id = self.user_id(email)
        new = NewMeeting(
            stakeholder_email=other,
            kind="coffee",
            start=start,
            end=start + timedelta(minutes=30),
            mode="propose",
            idempotency_key=idempotency_key(
                user_id, other, start, secret=self.app.pipeline.key_secret
            ),
            provider="google",
        )
        (meeting_id,) = self.app.store.add_meetings(user_id, [new], now=datetime.now(UTC))
        return meeting_id


@pytest.fixture
def setup(tmp_path: Path, db_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Setup]:
    policies = tmp_path / "policies"
    policies.mkdir()
    account = service_account_file(tmp_path / "sa.json")
    with GoogleEmulator() as emu:
        for email in (ALEX, BEA, KIM, JO):
            emu.add_calendar(email, "UTC")
        write_policy(policies, ALEX, [KIM, JO])
        write_policy(policies, BEA, [JO])
        env = {
            "GOODWILL_DATA_DIR": str(tmp_path / "data"),
            "GOODWILL_DATABASE_URL": db_url,
            "GOODWILL_POLICY_DIR": str(policies),
            "GOODWILL_GOOGLE__SERVICE_ACCOUNT_FILE": str(account),
            "GOODWILL_GOOGLE__TOKEN_URI": emu.token_uri,
            "GOODWILL_GOOGLE__API_ENDPOINT": emu.api_endpoint,
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        settings = Settings(
            _env_file=None,
            data_dir=tmp_path / "data",
            database_url=db_url,
            policy_dir=policies,
            google=GoogleSettings(
                service_account_file=account,
                token_uri=emu.token_uri,
                api_endpoint=emu.api_endpoint,
                timeout_s=10,
            ),
        )
        app = bootstrap(settings, auto_migrate=True)
        planning.register_policies(app.pipeline)
        try:
            yield Setup(app, emu)
        finally:
            app.engine.dispose()


def _run(argv: list[str], stdin: str = "") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    import sys

    saved = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        code = main(argv, out=out, err=err)
    finally:
        sys.stdin = saved
    return code, out.getvalue(), err.getvalue()


def test_cancel_deletes_the_google_event_once_and_refuses_another_owners(setup: Setup) -> None:
    ids = setup.plan_and_book()
    assert len(ids) == 2
    assert all(setup.state(i) is S.BOOKED for i in ids)
    first = ids[0]
    code, _, err = _run(["cancel", str(first), "--user", BEA])
    assert (code, err.strip()) == (2, f"goodwill: meeting {first} is not one of {BEA}'s")
    assert setup.deletes() == 0
    code, out, err = _run(["cancel", str(first), "--user", ALEX])
    assert code == 0, err
    assert out.startswith("Cancelled:")
    assert setup.deletes() == 1
    assert setup.state(first) is S.CANCELLED
    assert [e["status"] for e in setup.emu.events(ALEX, include_cancelled=True)].count(
        "cancelled"
    ) == 1
    # A second cancel is refused by the meeting's state and sends nothing
    code, _, err = _run(["cancel", str(first)])
    assert (code, err.strip()) == (1, "goodwill: This meeting is already cancelled.")
    assert setup.deletes() == 1
    code, _, err = _run(["cancel", "99999"])
    assert code == 2
    assert "no meeting 99999" in err


def test_cancel_all_asks_first_and_anything_but_yes_cancels_nothing(setup: Setup) -> None:
    ids = setup.plan_and_book()
    code, out, _ = _run(["cancel", "--all", "--user", ALEX], stdin="n\n")
    assert code == 1
    assert f"Cancel {len(ids)} meetings? [y/N]" in out
    assert all(str(i) in out for i in ids)
    assert setup.deletes() == 0
    code, out, err = _run(["cancel", "--all", "--user", ALEX], stdin="yes\n")
    assert code == 0, err
    assert setup.deletes() == len(ids)
    assert all(setup.state(i) is S.CANCELLED for i in ids)
    code, out, _ = _run(["cancel", "--all", "--user", ALEX, "--yes"])
    assert (code, out.strip()) == (0, f"nothing to cancel for {ALEX}")
    assert _run(["cancel", "--all"])[0] == 2  # --all needs --user


def test_pause_stops_proposals_and_bookings_until_resume(setup: Setup) -> None:
    until = (datetime.now(UTC) + timedelta(days=3)).date()
    code, out, err = _run(["pause", "--user", ALEX, "--until", until.isoformat()])
    assert code == 0, err
    assert "Paused until the end of" in out
    assert setup.plan_and_book() == []
    assert setup.inserts() == 0
    # An approved meeting waits too
    start = (datetime.now(UTC) + timedelta(days=5)).replace(hour=10, minute=0, microsecond=0)
    waiting = setup.proposal(ALEX, KIM, start)
    assert _run(["approve", str(waiting), "--user", ALEX])[0] == 0
    assert setup.app.store.approved_needing_send(datetime.now(UTC), 50) == []
    code, out, err = _run(["resume", "--user", ALEX])
    assert code == 0, err
    assert setup.app.store.approved_needing_send(datetime.now(UTC), 50) == [waiting]


def test_pause_with_cancel_booked_cancels_what_is_ahead(setup: Setup) -> None:
    ids = setup.plan_and_book()
    until = (datetime.now(UTC) + timedelta(days=1)).date()
    code, out, err = _run(
        ["pause", "--user", ALEX, "--until", until.isoformat(), "--cancel-booked"]
    )
    assert code == 0, err
    assert f"{len(ids)} booked meeting{'s' if len(ids) != 1 else ''} cancelled" in out
    assert setup.deletes() == len(ids)


def test_pause_refuses_a_bad_or_past_date(setup: Setup, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:  # argparse: usage errors exit 2
        _run(["pause", "--user", ALEX, "--until", "2026-13-01"])
    assert exited.value.code == 2
    assert "YYYY-MM-DD" in capsys.readouterr().err
    code, _, err = _run(["pause", "--user", ALEX, "--until", "2000-01-01"])
    assert code == 2
    assert "over already" in err
    assert setup.app.store.get_user_by_email(ALEX).paused_until is None  # type: ignore[union-attr]


def test_approve_and_decline_with_user_refuse_another_owners_meeting(setup: Setup) -> None:
    start = (datetime.now(UTC) + timedelta(days=4)).replace(hour=11, minute=0, microsecond=0)
    while start.weekday() >= 5:
        start += timedelta(days=1)
    mine = setup.proposal(ALEX, KIM, start)
    for cmd in ("approve", "decline"):
        code, _, err = _run([cmd, str(mine), "--user", BEA])
        assert (code, err.strip()) == (2, f"goodwill: meeting {mine} is not one of {BEA}'s")
    assert setup.state(mine) is S.PROPOSED
    code, out, err = _run(["approve", str(mine), "--user", ALEX])  # re-checked on Google
    assert code == 0, err
    assert out.startswith("Approved:")
    assert setup.state(mine) is S.APPROVED
    code, _, err = _run(["approve", str(mine), "--user", ALEX])
    assert (code, err.strip()) == (1, "goodwill: This proposal was already approved.")


def test_proposals_lists_a_group_with_its_name_and_every_attendee(setup: Setup) -> None:
    user_id = setup.user_id(ALEX)
    start = (datetime.now(UTC) + timedelta(days=5)).replace(hour=12, minute=0, microsecond=0)
    people = (KIM, JO, BEA)
    lunch = NewMeeting(
        stakeholder_email=KIM,
        kind="lunch",
        start=start,
        end=start + timedelta(hours=1),
        mode="propose",
        idempotency_key=idempotency_key(
            user_id, "group:team-lunch", start, secret=setup.app.pipeline.key_secret
        ),
        provider="google",
        attendees=people,
        group_name="team-lunch",
        presenter=KIM,
    )
    (mid,) = setup.app.store.add_meetings(user_id, [lunch], now=datetime.now(UTC))
    stored = setup.app.store.get_meeting(mid)
    assert stored is not None
    people = stored.attendees  # presenter first, as stored
    assert sorted(people) == sorted((KIM, JO, BEA))
    code, out, err = _run(["proposals", "--user", ALEX])
    assert code == 0, err
    (line,) = [row for row in out.splitlines() if row.strip().startswith(str(mid))]
    assert f"{ALEX} → lunch team-lunch: {', '.join(people)}" in line
    code, out, err = _run(["proposals", "--user", ALEX, "--json"])
    import json

    (row,) = [r for r in json.loads(out) if r["id"] == mid]
    assert (row["group"], row["attendees"]) == ("team-lunch", list(people))
