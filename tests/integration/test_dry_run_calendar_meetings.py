"""`goodwill plan --calendars` without a database: a future event goodwill booked (it carries
``X-GOODWILL-KEY``) between the owner and a stakeholder is that pair's open meeting, as the
store's open meetings are with a database: the stakeholder is skipped ``open_meeting``."""

from __future__ import annotations

import io
import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from connectors.ics import IcsDirectory
from scheduler.core.model import AttendeeStatus, EventDraft, Person
from scheduler.entrypoints.cli import main

ROOT = Path(__file__).resolve().parents[2]
POLICY = ROOT / "examples" / "policies" / "alex.yaml"
NOW = "2026-12-01T09:00:00Z"
ALEX = Person("alex@corp.example", "Alex Doe", "Europe/London")
#: Lena: due (never met) and in none of Alex's groups, so only her own meetings decide her week.
LENA = Person("lena@corp.example", "Lena Novak", "Europe/Berlin")
START = datetime(2026, 12, 10, 11, 0, tzinfo=UTC)
END = datetime(2026, 12, 10, 11, 30, tzinfo=UTC)


@pytest.fixture
def calendars(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("GOODWILL_DATABASE_URL", raising=False)
    monkeypatch.setenv("GOODWILL_DATA_DIR", str(tmp_path / "data"))  # empty: no database
    target = tmp_path / "calendars"
    shutil.copytree(ROOT / "examples" / "calendars", target)
    return target


def _plan(calendars: Path) -> dict[str, Any]:
    out, err = io.StringIO(), io.StringIO()
    code = main(
        ["plan", "--policy", str(POLICY), "--calendars", str(calendars), "--now", NOW, "--json"],
        out=out,
        err=err,
    )
    assert code == 0, err.getvalue()
    result: dict[str, Any] = json.loads(out.getvalue())
    return result


def _outcomes(result: dict[str, Any]) -> dict[str, str]:
    """Per stakeholder: "proposed" or their skip code."""
    outcome = {p["stakeholder"]: "proposed" for p in result["proposals"]}
    outcome.update({s["stakeholder"]: s["code"] for s in result["skipped"]})
    return outcome


def _book(calendars: Path, *others: Person) -> str:
    draft = EventDraft(
        idempotency_key="gw" + "c" * 30,
        organizer=ALEX,
        attendee=LENA,
        start=START,
        end=END,
        title="Coffee: Alex / Lena",
        extra_attendees=others,
    )
    return IcsDirectory(calendars).create_event(draft).provider_event_id


def _plain_busy(calendars: Path) -> None:
    """The same time busy on both calendars, as an event goodwill did not book."""
    directory = IcsDirectory(calendars)
    for person in (ALEX, LENA):
        directory.add_event(person, START, END, summary="Coffee")


def test_a_booked_goodwill_coffee_is_the_pairs_open_meeting(calendars: Path) -> None:
    plain = tmp_copy(calendars)
    _plain_busy(plain)
    before = _outcomes(_plan(plain))
    assert before["lena@corp.example"] == "proposed"  # never met: due

    _book(calendars)
    after = _outcomes(_plan(calendars))

    assert after["lena@corp.example"] == "open_meeting"
    assert {e: o for e, o in after.items() if e != "lena@corp.example"} == {
        e: o for e, o in before.items() if e != "lena@corp.example"
    }


def test_a_declined_or_cancelled_coffee_is_no_open_meeting(calendars: Path) -> None:
    uid = _book(calendars)
    IcsDirectory(calendars).respond(LENA.email, uid, AttendeeStatus.DECLINED)
    assert _outcomes(_plan(calendars))["lena@corp.example"] == "proposed"

    IcsDirectory(calendars).cancel_event(ALEX, uid)
    assert _outcomes(_plan(calendars))["lena@corp.example"] == "proposed"


def test_a_group_meeting_is_nobodys_open_one_to_one(calendars: Path) -> None:
    _book(calendars, Person("jon@corp.example", "Jon Berg", "Europe/London"))
    assert _outcomes(_plan(calendars))["lena@corp.example"] == "proposed"


def test_a_past_goodwill_coffee_is_no_open_meeting(calendars: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    _book(calendars)
    later = "2026-12-10T12:00:00Z"  # the coffee is over
    code = main(
        ["plan", "--policy", str(POLICY), "--calendars", str(calendars), "--now", later, "--json"],
        out=out,
        err=err,
    )
    assert code == 0, err.getvalue()
    skipped = {s["stakeholder"]: s["code"] for s in json.loads(out.getvalue())["skipped"]}
    assert skipped.get("lena@corp.example") != "open_meeting"


def tmp_copy(calendars: Path) -> Path:
    target = calendars.parent / "plain"
    shutil.copytree(calendars, target)
    return target
