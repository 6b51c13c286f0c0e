"""``goodwill demo``: the sample organisation through one full cycle on embedded defaults.

SQLite in a data directory, the in-process broker, and the sample calendars copied into a
writable directory that acts as everyone's calendar: booked events are written into both
people's ``.ics`` files and an iTIP REQUEST lands in ``outbox/``. Offline, a few seconds.

Each run starts from an empty data directory. The demo deletes only a directory it created
itself (it holds the :data:`MARKER` file), or an empty one; anything else is refused.
"""

from __future__ import annotations

import re
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import TextIO
from zoneinfo import ZoneInfo

from scheduler.core.errors import ConfigurationError
from scheduler.core.states import MeetingState
from scheduler.entrypoints.rendering import format_table
from scheduler.entrypoints.runtime import build_runtime
from scheduler.settings import Settings
from scheduler.store import Meeting

__all__ = ["MARKER", "run_demo"]

#: Written into every data directory the demo creates; only such a directory is ever deleted.
MARKER = ".goodwill-demo"
#: What the default directory held before the marker existed (an older ``make demo``).
_LEGACY_NAMES = frozenset({"calendars", "goodwill.db", "goodwill.db-wal", "goodwill.db-shm"})

_SKIP = re.compile(r"^skipped (?P<email>\S+) \[(?P<code>[a-z_]+)\]: (?P<reason>.*)$")


def run_demo(examples: Path, data_dir: Path, *, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    started = time.monotonic()
    calendars = data_dir / "calendars"
    settings = Settings(  # first: a bad GOODWILL_* setting is refused before anything is touched
        _env_file=None,
        data_dir=data_dir,
        broker_url="embedded",
        policy_dir=examples / "policies",
        calendars_dir=calendars,
        tick_interval_s=0.05,
    )
    _fresh_data_dir(data_dir)
    shutil.copytree(examples / "calendars", calendars)
    print("goodwill demo: the sample organisation, one full cycle on embedded defaults", file=out)
    print(f"  database   {settings.effective_database_url}", file=out)
    print("  broker     in-process (dramatiq StubBroker + worker threads)", file=out)
    print(f"  calendars  {calendars}/<email>.ics (writable copies of examples/calendars)", file=out)
    print(f"  policies   {settings.policy_dir}", file=out)
    print("", file=out)
    runtime = build_runtime(settings, with_tick=False, auto_migrate=True)
    runtime.start()
    assert runtime.tick is None
    from workers.tick import Tick

    tick = Tick(runtime.app.pipeline, runtime.actors, interval_s=settings.tick_interval_s)
    try:
        for round_no in range(1, 8):
            time.sleep(settings.tick_interval_s)
            result = tick.run_once()
            sent = len(result.plan_sent) + len(result.book_sent) + len(result.sync_sent)
            if result.plan_sent:
                print(f"  round {round_no}: planning {len(result.plan_sent)} user(s)…", file=out)
            if result.book_sent:
                print(f"  round {round_no}: booking {len(result.book_sent)} meeting(s)…", file=out)
            runtime.drain()
            if result.won and sent == 0:
                break
    finally:
        runtime.stop()
    print("", file=out)
    store = runtime.app.store
    pipeline = runtime.app.pipeline
    users = [
        store.get_user_by_email(pf.policy.owner.email)
        for pf in pipeline.policies.scan()
        if pf.policy
    ]
    since = datetime.fromtimestamp(0, tz=ZoneInfo("UTC"))
    totals = {"booked": 0, "proposed": 0, "skipped": 0}
    for user in users:
        if user is None:
            continue
        pf = pipeline.policies.load(user.policy_path)
        policy = pf.policy
        assert policy is not None
        zone = ZoneInfo(policy.owner.timezone)
        names = {s.email: s.name for s in policy.stakeholders}
        meetings = store.meetings_between(user.id, since, datetime(2100, 1, 1, tzinfo=zone))
        booked = [m for m in meetings if m.state == MeetingState.BOOKED]
        proposed = [m for m in meetings if m.state == MeetingState.PROPOSED]
        other = [m for m in meetings if m.state not in (MeetingState.BOOKED, MeetingState.PROPOSED)]
        skipped = [
            mt.groupdict()
            for e in store.user_events(user.id, since=since)
            if (mt := _SKIP.match(e.detail))
        ]
        totals["booked"] += len(booked)
        totals["proposed"] += len(proposed)
        totals["skipped"] += len(skipped)
        print(
            f"{policy.owner.name} <{policy.owner.email}>  ({Path(user.policy_path).name}, "
            f"times in {policy.owner.timezone})",
            file=out,
        )

        def rows(
            meetings: list[Meeting],
            last: Callable[[Meeting], str],
            zone: ZoneInfo = zone,
            names: dict[str, str] = names,
        ) -> list[tuple[str, ...]]:
            return [
                (_when(m, zone), names.get(m.stakeholder_email, m.stakeholder_email), last(m))
                for m in meetings
            ]

        _section(
            out, "Booked — invite sent", rows(booked, lambda m: f"outbox/{m.provider_event_id}.ics")
        )
        _section(
            out, "Waiting for your approval", rows(proposed, lambda m: f"goodwill approve {m.id}")
        )
        _section(out, "Other", rows(other, lambda m: f"{m.state.value}: {m.last_error or ''}"))
        _section(
            out, "Skipped", [(names.get(s["email"], s["email"]), s["reason"]) for s in skipped]
        )
        print("", file=out)
    outbox = calendars / "outbox"
    invites = sorted(outbox.glob("*.ics")) if outbox.is_dir() else []
    print(
        f"{totals['booked']} booked, {totals['proposed']} waiting for approval, "
        f"{totals['skipped']} skipped; {len(invites)} invite(s) in {outbox} "
        f"({time.monotonic() - started:.1f} s)",
        file=out,
    )
    print("", file=out)
    print("Try it: approve a proposal and book it (same data directory):", file=out)
    print(
        f"  export GOODWILL_DATA_DIR={data_dir} GOODWILL_POLICY_DIR={settings.policy_dir} "
        f"GOODWILL_CALENDARS_DIR={calendars}",
        file=out,
    )
    print(
        "  .venv/bin/goodwill proposals && .venv/bin/goodwill approve ID"
        " && .venv/bin/goodwill serve --once",
        file=out,
    )
    return 0


def _fresh_data_dir(data_dir: Path) -> None:
    """Make ``data_dir`` an empty, private, marked directory, refusing one the demo did not make.

    Raises:
        ConfigurationError: ``data_dir`` is a file or a link, or a non-empty directory without
            the marker.
    """
    if data_dir.is_symlink() or (data_dir.exists() and not data_dir.is_dir()):
        raise ConfigurationError(
            f"--data-dir {data_dir} is not a directory: the demo needs a directory of its own; "
            "pass a new or empty one, e.g. --data-dir .goodwill/demo"
        )
    if data_dir.is_dir():
        names = {entry.name for entry in data_dir.iterdir()}
        legacy = (
            data_dir.resolve() == (Path.cwd() / ".goodwill" / "demo").resolve()
            and "calendars" in names
            and names <= _LEGACY_NAMES
        )
        if names and MARKER not in names and not legacy:
            raise ConfigurationError(
                f"--data-dir {data_dir} is not empty and has no {MARKER} file, so goodwill demo "
                "did not create it; the demo empties its data directory on every run and will "
                "not delete this one. Pass a new or empty directory (e.g. --data-dir "
                ".goodwill/demo), or remove this one yourself if it holds nothing you need"
            )
        if names:
            shutil.rmtree(data_dir)
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    (data_dir / MARKER).write_text(
        "Created by goodwill demo: this directory is deleted and re-created on every demo run.\n"
    )


def _when(m: Meeting, zone: ZoneInfo) -> str:
    start, end = m.start.astimezone(zone), m.end.astimezone(zone)
    return f"{start:%a %d %b %H:%M}-{end:%H:%M}"


def _section(out: TextIO, title: str, rows: Sequence[tuple[str, ...]]) -> None:
    if not rows:
        return
    print(f"  {title} ({len(rows)}):", file=out)
    for line in format_table(rows, indent="    "):
        print(line, file=out)
