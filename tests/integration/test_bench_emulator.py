"""bench.pipeline_emulator: seeded calendars generated on demand are the ones built up front.

The fingerprint was computed with the emulator that built and stored every seeded event (before
2026-12-01); the figures in docs/benchmarks.md were measured on those calendars.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bench.pipeline_emulator import IndexedEmulator, SeededCalendars, write_spec
from bench.soak.world import build_world
from tests.emulators.google_emulator import _bounds

START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
#: sha256 of every calendar's full view (own events and invitations), by the stored emulator.
FINGERPRINT = "8a04dfa2a227f3dba35756339972ad6c767637571db50ca494b17dc344b949e4"


def _emulator(tmp_path: Path, *, cache_events: int = 100_000) -> IndexedEmulator:
    world = build_world(
        users=12, stakeholders=20, hubs=4, seed=20261201, start=START, seed_calendars=False
    )
    write_spec(world, tmp_path / "spec.json", start=START, seed=20261201, fresh_weeks=8)
    spec = json.loads((tmp_path / "spec.json").read_text())
    return IndexedEmulator(SeededCalendars(spec, cache_events=cache_events))


def test_the_generated_calendars_are_the_ones_built_up_front(tmp_path: Path) -> None:
    emu = _emulator(tmp_path, cache_events=2_000)  # evictions on the way
    digest = hashlib.sha256()
    for email in sorted(emu._calendars):
        for event in sorted(emu._view(emu._calendars[email]), key=lambda e: e["id"]):
            digest.update(json.dumps([email, event], sort_keys=True).encode())
    assert digest.hexdigest() == FINGERPRINT
    assert emu.stored_count() == 0  # nothing seeded is stored
    assert emu.seeded.cache_size()[1] <= 2_000 + 1_200  # one calendar over the bound at most


def test_a_window_sees_what_the_whole_calendar_holds_in_it(tmp_path: Path) -> None:
    emu = _emulator(tmp_path)
    windows = [
        (START + timedelta(hours=1), START + timedelta(days=15)),
        (START - timedelta(weeks=30), START + timedelta(days=15)),
        (START - timedelta(weeks=9), START - timedelta(weeks=7)),  # the last invitations
    ]
    invitations = 0
    for email, calendar in emu._calendars.items():
        everything = list(emu._view(calendar))
        invitations += sum(e["organizer"]["email"] != email for e in everything)
        for lo, hi in windows:
            query = {
                "timeMin": [lo.isoformat()],
                "timeMax": [hi.isoformat()],
                "maxResults": ["2500"],
            }
            listed = [e["id"] for e in emu._list(calendar, query)["items"]]
            inside = [
                (start, e["id"])
                for e in everything
                if e.get("status") != "cancelled"
                for start, end in [_bounds(e, calendar.timezone)]
                if end > lo and start < hi
            ]
            assert listed == [i for _, i in sorted(inside)], (email, lo)
    assert invitations > 0  # owners who list each other see each other's past meetings
