"""``goodwill demo``: the sample organisation through one full cycle on embedded defaults.

SQLite in a data directory, the in-process broker, and the sample calendars copied into a
writable directory that acts as everyone's calendar: booked events are written into both
people's ``.ics`` files and an iTIP REQUEST lands in ``outbox/``. Offline, a few seconds.

Each run starts from an empty data directory. The demo deletes only a directory it created
itself (it holds the :data:`MARKER` file), or an empty one; anything else is refused.

The owner's page: each run makes a ``GOODWILL_SECRET_KEY`` of its own, kept (never printed) in
:data:`SECRET_FILE` (mode 0600) in the data directory, and ends with a sign-in link for a sample
owner who approves proposals. ``goodwill demo --serve`` (:func:`serve_demo`) then serves the page
and runs the service on that data until Ctrl-C, and prints a fresh link when it starts.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO
from zoneinfo import ZoneInfo

from pydantic import SecretStr

from scheduler.app.decisions import withdraw_covered_proposals
from scheduler.core.errors import ConfigurationError
from scheduler.core.states import MeetingState
from scheduler.entrypoints.logs import configure_logging
from scheduler.entrypoints.rendering import format_table
from scheduler.entrypoints.runtime import build_runtime, wait_for_signal
from scheduler.settings import Settings, WebSettings, new_secret_key, secret_key_problem
from scheduler.store import Meeting, Store

if TYPE_CHECKING:
    from scheduler.entrypoints.bootstrap import App

__all__ = ["MARKER", "SECRET_FILE", "run_demo", "serve_demo"]

#: Written into every data directory the demo creates; only such a directory is ever deleted.
MARKER = ".goodwill-demo"
#: The demo's own GOODWILL_SECRET_KEY (mode 0600), made by each ``goodwill demo`` run.
SECRET_FILE = "secret-key"
#: What the default directory held before the marker existed (an older ``make demo``).
_LEGACY_NAMES = frozenset({"calendars", "goodwill.db", "goodwill.db-wal", "goodwill.db-shm"})

_SKIP = re.compile(
    r"^skipped (?:group )?(?P<email>\S+) \[(?P<code>[a-z_]+)\]: (?P<reason>.*)$"
)


def _settings(examples: Path, data_dir: Path, secret: str, **more: Any) -> Settings:
    """The demo's settings, signed with its own ``secret`` (a GOODWILL_SECRET_KEY in the
    environment is still checked, and refused when weak, but not used)."""
    settings = Settings(
        _env_file=None,
        data_dir=data_dir,
        broker_url="embedded",
        policy_dir=examples / "policies",
        calendars_dir=data_dir / "calendars",
        **{"tick_interval_s": 0.05, **more},
    )
    if secret_key_problem(secret):
        raise ConfigurationError(
            f"{data_dir / SECRET_FILE} does not hold a usable key: run `make demo` (or "
            "`goodwill demo` with the same --data-dir) again to make a new one"
        )
    return settings.model_copy(update={"secret_key": SecretStr(secret)})


def run_demo(
    examples: Path,
    data_dir: Path,
    *,
    out: TextIO | None = None,
    serve_command: str = ".venv/bin/goodwill demo --serve",
) -> int:
    """One cycle over the sample organisation; ``serve_command`` is how the closing lines say to
    serve the owner's page on the same data (the CLI adds the ``--data-dir`` it was given)."""
    out = out or sys.stdout
    started = time.monotonic()
    calendars = data_dir / "calendars"
    secret = new_secret_key()
    # first: a bad GOODWILL_* setting is refused before anything is touched
    settings = _settings(examples, data_dir, secret)
    _fresh_data_dir(data_dir)
    _keep_secret(data_dir, secret)
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
    # Two owners who list each other get one coffee: a proposal whose pair the other side
    # booked meanwhile is withdrawn now (as approving it, or the next round, would), so the
    # summary below reads the run's final state and offers only what can still be approved.
    for user in users:
        if user is not None:
            withdraw_covered_proposals(pipeline, user.id)
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
            return [(_when(m, zone), _with(m, names), last(m)) for m in meetings]

        _section(
            out, "Booked — invite sent", rows(booked, lambda m: f"outbox/{m.provider_event_id}.ics")
        )
        _section(
            out, "Waiting for your approval", rows(proposed, lambda m: f"goodwill approve {m.id}")
        )
        _section(out, "Other", rows(other, lambda m: f"{m.state.value}: {_why(store, m)}"))
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
    _print_page_link(out, runtime.app, settings.web.effective_base_url, serve_command)
    return 0


def _why(store: Store, m: Meeting) -> str:
    """Why a meeting left the proposed/booked states: its last error, else its last audit entry."""
    if m.last_error:
        return m.last_error
    trail = store.audit_trail(m.id)
    return trail[-1].detail if trail else ""


def _keep_secret(data_dir: Path, secret: str) -> None:
    """Write the demo's secret key into ``data_dir`` (readable by its owner only)."""
    fd = os.open(data_dir / SECRET_FILE, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")


def _propose_owner(app: App) -> tuple[str, str] | None:
    """(name, e-mail) of the sample owner with the most proposals waiting (the first on a tie)."""
    best: tuple[int, str, str] | None = None
    for pf in app.pipeline.policies.scan():
        user = app.store.get_user_by_email(pf.policy.owner.email) if pf.policy else None
        if user is None or pf.policy is None:
            continue
        waiting = sum(m.state == MeetingState.PROPOSED for m in app.store.open_meetings(user.id))
        if waiting and (best is None or waiting > best[0]):
            best = (waiting, pf.policy.owner.name, user.email)
    return None if best is None else best[1:]


def _sign_in_link(app: App, base_url: str, email: str) -> str:
    from scheduler.entrypoints.web.signin_links import LinkTokens

    settings = app.settings
    assert settings.secret_key is not None
    links = LinkTokens(
        settings.secret_key.get_secret_value(),
        base_url,
        app.store,
        app.clock,
        sign_in_ttl=timedelta(seconds=settings.web.link_ttl_s),
    )
    return links.sign_in(email)


def _print_page_link(out: TextIO, app: App, base_url: str, serve_command: str) -> None:
    owner = _propose_owner(app)
    print("", file=out)
    if owner is None:
        print(f"Owner's page: run `{serve_command}` (it prints a sign-in link)", file=out)
        return
    name, email = owner
    minutes = app.settings.web.link_ttl_s // 60
    print(
        f"Owner's page: run `{serve_command}`, then open this sign-in link for {name}, who has "
        f"proposals to approve (it works once, within {minutes} minutes; --serve prints a fresh "
        "one):",
        file=out,
    )
    print(f"  {_sign_in_link(app, base_url, email)}", file=out)


def serve_demo(
    examples: Path,
    data_dir: Path,
    *,
    out: TextIO | None = None,
    port: int | None = None,
    wait: Callable[[Callable[[], None]], None] = wait_for_signal,
) -> int:
    """``goodwill demo --serve``: the owner's page and the service on the data of the last
    ``goodwill demo`` run, until Ctrl-C (``wait``). ``port`` overrides GOODWILL_WEB__PORT.

    Raises:
        ConfigurationError: ``data_dir`` holds no demo run (run ``goodwill demo`` first).
    """
    out = out or sys.stdout
    key_file = data_dir / SECRET_FILE
    if not (data_dir / MARKER).is_file() or not key_file.is_file():
        raise ConfigurationError(
            f"--data-dir {data_dir} holds no goodwill demo data (no {MARKER} or {SECRET_FILE}): "
            "run `make demo` (or `goodwill demo` with the same --data-dir) first"
        )
    more: dict[str, Any] = {"tick_interval_s": 5.0}
    if port is not None:
        more["web"] = WebSettings(host="127.0.0.1", port=port)
    settings = _settings(examples, data_dir, key_file.read_text().strip(), **more)
    configure_logging(settings.log_format, settings.log_level)  # type: ignore[arg-type]
    runtime = build_runtime(settings, auto_migrate=True, with_web=True)
    runtime.start()
    assert runtime.web is not None
    url = runtime.web.url if port is not None else runtime.web.public_url
    print(f"goodwill demo --serve: the owner's page is on {url}/ (the demo's data in "
          f"{data_dir}); Ctrl-C to stop", file=out)  # fmt: skip
    owner = _propose_owner(runtime.app)
    if owner is not None:
        name, email = owner
        print(f"Sign in as {name} <{email}>: {_sign_in_link(runtime.app, url, email)}", file=out)
    out.flush()
    wait(runtime.stop)
    print(f"goodwill demo --serve: stopped at {datetime.now(UTC):%H:%M:%S}", file=out)
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


def _with(m: Meeting, names: dict[str, str]) -> str:
    """Who a meeting is with: the stakeholder's name, or the group, its attendees and who
    presents; then the owner's private note (an introduction to ask for), if any."""
    if not m.is_group:
        who = names.get(m.stakeholder_email, m.stakeholder_email)
    else:
        people = ", ".join(
            names.get(e, e) + (" (presents)" if e == m.presenter else "") for e in m.attendees
        )
        what = "introduction" if m.group_name == "introduction" else f"group {m.group_name}"
        who = f"{what}: {people}"
    return f"{who} — note for you: {m.owner_note}" if m.owner_note else who


def _when(m: Meeting, zone: ZoneInfo) -> str:
    start, end = m.start.astimezone(zone), m.end.astimezone(zone)
    return f"{start:%a %d %b %H:%M}-{end:%H:%M}"


def _section(out: TextIO, title: str, rows: Sequence[tuple[str, ...]]) -> None:
    if not rows:
        return
    print(f"  {title} ({len(rows)}):", file=out)
    for line in format_table(rows, indent="    "):
        print(line, file=out)
