"""Service-side commands of the CLI (they need the database and, for some, the broker).

Kept apart from ``scheduler.entrypoints.cli`` so ``goodwill validate``/``plan`` import nothing
heavy.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from scheduler.core.errors import ConfigurationError
from scheduler.core.states import MeetingState
from scheduler.settings import Settings

if TYPE_CHECKING:
    from scheduler.app.records import Meeting

__all__ = ["run"]


def _examples_dir(given: Path | None) -> Path:
    if given is not None:
        missing = [sub for sub in ("policies", "calendars") if not (given / sub).is_dir()]
        if missing:
            what = "no such directory" if not given.is_dir() else f"it has no {missing[0]}/"
            raise ConfigurationError(
                f"--examples {given}: {what}; pass the examples/ directory of a goodwill "
                "checkout (it holds policies/ and calendars/), or leave --examples out"
            )
        return given
    for candidate in (Path.cwd() / "examples", Path(__file__).resolve().parents[2] / "examples"):
        if (candidate / "policies").is_dir() and (candidate / "calendars").is_dir():
            return candidate
    raise ConfigurationError("cannot find the examples/ directory: pass --examples DIR")


def run(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    cmd = args.command
    if cmd == "demo":
        from scheduler.entrypoints.demo import run_demo, serve_demo

        if getattr(args, "serve", False):
            return serve_demo(_examples_dir(args.examples), args.data_dir, out=out)
        again = ".venv/bin/goodwill demo --serve"
        if args.examples is not None:
            again += f" --examples {args.examples}"
        if args.data_dir != Path(".goodwill/demo"):
            again += f" --data-dir {args.data_dir}"
        return run_demo(_examples_dir(args.examples), args.data_dir, out=out, serve_command=again)
    settings = Settings()
    if cmd == "migrate":
        from scheduler.store import make_engine, migrate

        url = settings.effective_database_url
        if url.startswith("sqlite:///"):
            settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # private state
        migrate(make_engine(url))
        print("database schema is at the latest version", file=out)
        return 0
    if cmd in ("worker", "tick") and settings.broker_url == "embedded":
        raise ConfigurationError(
            f"goodwill {cmd} needs a broker shared with the other processes, but "
            "GOODWILL_BROKER_URL is 'embedded' (the default: an in-process queue no other "
            "process can read). Set GOODWILL_BROKER_URL to a Redis (redis://…) or RabbitMQ "
            "(amqp://…) URL, or run `goodwill serve` for one process"
        )
    if cmd == "web":
        return _run_web(settings)
    if cmd in ("serve", "worker", "tick"):
        return _run_service(cmd, settings, once=getattr(args, "once", False), out=out)
    if cmd in _NEEDS_DATABASE:
        _require_database(settings)
    from scheduler.entrypoints.bootstrap import bootstrap

    app = bootstrap(settings, auto_migrate=settings.broker_url == "embedded")
    if cmd == "report":
        return _report(app, args.user, args.json, out)
    if cmd == "replies":
        return _replies(app, args, out, err)
    if cmd == "connect":
        return _connect(app, args, out)
    if cmd == "digest":
        from scheduler.entrypoints.digest_command import run_digest

        return run_digest(app, args.user, out, err)
    if cmd == "proposals":
        from scheduler.entrypoints.owner_commands import local_time

        users = [u for u in _users(app, args.user) if u is not None]
        rows = []
        for user in users:
            for m in app.store.open_meetings(user.id):
                if m.state == MeetingState.PROPOSED:
                    rows.append((m, user.email))
        if args.json:
            json.dump(
                [
                    {
                        "id": m.id,
                        "user": email,
                        "stakeholder": m.stakeholder_email,
                        "start": m.start.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                        "end": m.end.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                        "kind": m.kind,
                        "reason": m.reason,
                        "group": m.group_name,  # None for a one-to-one
                        "attendees": list(m.attendees) or [m.stakeholder_email],
                    }
                    for m, email in rows
                ],
                out,
                indent=2,
            )
            out.write("\n")
        elif not rows:
            print("no proposals waiting for approval", file=out)
        else:
            for m, email in rows:
                print(
                    f"{m.id:>5}  {local_time(app, email, m.start)}  {email} → {_with(m)}  "
                    f"{m.reason}",
                    file=out,
                )
        return 0
    if cmd in _OWNER_COMMANDS or (cmd in ("approve", "decline") and args.user):
        from scheduler.entrypoints.owner_commands import run_owner_command

        return run_owner_command(app, args, out, err)
    if cmd in ("approve", "decline"):
        from scheduler.app import decisions

        act = decisions.approve if cmd == "approve" else decisions.decline
        if act(app.pipeline, args.meeting_id, actor="cli"):
            print(f"meeting {args.meeting_id} {cmd}d", file=out)
            return 0
        found = app.store.get_meeting(args.meeting_id)
        state = found.state.value if found else "unknown"
        trail = app.store.audit_trail(args.meeting_id) if found else []
        why = f": {trail[-1].detail}" if trail and trail[-1].to_state == state else ""
        print(
            f"goodwill: meeting {args.meeting_id} cannot be {cmd}d (it is {state}{why})", file=err
        )
        return 2
    raise ConfigurationError(f"unknown command {cmd}")


#: Commands that only read or change rows that must already exist: they never create a database.
_NEEDS_DATABASE = (
    "report", "proposals", "approve", "decline", "replies", "cancel", "pause", "resume",
    "digest",
)  # fmt: skip
#: The owner's commands (scheduler/entrypoints/owner_commands.py).
_OWNER_COMMANDS = ("cancel", "pause", "resume")


def _require_database(settings: Settings) -> None:
    """Refuse before anything is created when the SQLite database file does not exist yet."""
    from scheduler.store.engine import sqlite_file

    path = sqlite_file(settings.effective_database_url)
    if path is not None and not path.exists():
        raise ConfigurationError(
            f"no database yet at {path}: run goodwill serve or goodwill migrate first "
            "(or set GOODWILL_DATA_DIR / GOODWILL_DATABASE_URL to the one you use)"
        )


def _with(m: Meeting) -> str:
    """Who a proposal is with: the stakeholder, or ``lunch team-lunch: a@x, b@x`` (a group:
    its kind, name and every attendee)."""
    if not m.is_group:
        return m.stakeholder_email
    return f"{m.kind} {m.group_name}: {', '.join(m.attendees)}"


def _report(app: object, email: str | None, as_json: bool, out: TextIO) -> int:
    from scheduler.app.owner_view import user_report
    from scheduler.core.report import as_json as report_json
    from scheduler.core.report import owner_removed
    from scheduler.entrypoints.bootstrap import App
    from scheduler.entrypoints.rendering import render_text

    assert isinstance(app, App)
    now = app.clock.now()
    revoked = app.store.revoked_credentials()
    reports = []
    for user in _users(app, email):
        if user is None or user.policy_missing_since is not None:
            continue  # a removed owner is listed below, under "owner removed"
        try:
            policy = app.pipeline.policies.load(user.policy_path).policy
        except Exception:  # a file the loader cannot take: reported by register_policies
            policy = None
        if policy is None:
            continue
        reports.append(user_report(app.pipeline, user, policy, now=now, revoked=revoked))
    wanted = email.strip().lower() if email else None
    removed = [
        owner_removed(
            user.email,
            user.policy_path,
            since=user.policy_missing_since,
            grace=app.pipeline.policy_removed_grace,
            now=now,
            meetings=app.store.open_meetings(user.id),
        )
        for user in app.store.all_users()
        if user.policy_missing_since is not None and wanted in (None, user.email)
    ]
    if as_json:
        json.dump(report_json(reports, removed), out, indent=2)
        out.write("\n")
    else:
        out.write(render_text(reports, removed, now=now))
        for user in app.store.users_with_policy_errors():
            if user.policy_missing_since is None and wanted in (None, user.email):
                print(f"\n! {user.policy_path} is invalid, the last good version is in use: "
                      f"{user.policy_error}\n  fix it, then check: goodwill validate "
                      f"{user.policy_path}", file=out)  # fmt: skip
    return 0


def _replies(app: object, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from scheduler.entrypoints.mail_replies import run_replies

    if not args.paths and args.accept is None:
        raise ConfigurationError(
            "goodwill replies needs REPLY mail to read (PATH…: files, directories or Maildir "
            "folders) or a held reply to apply (--accept ID, listed by goodwill report)"
        )
    return run_replies(app, args.paths, args.accept, out, err)


def _connect(app: object, args: argparse.Namespace, out: TextIO) -> int:
    from connectors.connect import connect_google, connect_microsoft
    from connectors.registry import StoreTokenStore
    from scheduler.entrypoints.bootstrap import App

    assert isinstance(app, App)
    if app.settings.secret_key is None:
        raise ConfigurationError(
            "set GOODWILL_SECRET_KEY first: grants are only ever stored encrypted with it"
        )
    store = StoreTokenStore(app.store, app.clock.now)

    def say(text: str) -> None:
        print(text, file=out, flush=True)

    if args.provider == "google":
        connect_google(
            app.settings.google, store, args.user, say=say, open_browser=not args.no_browser
        )
    else:
        connect_microsoft(app.settings.microsoft, store, args.user, say=say)
    print(f"{args.provider} connected for {args.user}; the grant is stored encrypted", file=out)
    return 0


def _users(app: object, email: str | None) -> list:  # type: ignore[type-arg]
    from scheduler.entrypoints.bootstrap import App

    assert isinstance(app, App)
    if email:
        user = app.store.get_user_by_email(email)
        if user is None:
            raise ConfigurationError(f"no user {email!r}: is their policy in GOODWILL_POLICY_DIR?")
        return [user]
    from scheduler.app.planning import register_policies

    issues = register_policies(app.pipeline)
    if not app.pipeline.policies.files():
        print(
            f"goodwill: no policy files in {app.settings.policy_dir} (GOODWILL_POLICY_DIR): "
            "nothing to plan",
            file=sys.stderr,
        )
    for issue in issues:
        print(f"goodwill: {issue}", file=sys.stderr)
    users = []
    for path in app.pipeline.policies.files():
        try:
            policy = app.pipeline.policies.load(path).policy
        except Exception:  # a file the loader cannot take: register_policies reported it
            continue
        if policy is not None:
            users.append(app.store.get_user_by_email(policy.owner.email))
    return users


def _print_pending_retries(store: object, now: datetime, out: TextIO) -> None:
    """``serve --once`` leaves bookings whose retry is not due yet to the next run: say so."""
    from scheduler.store import Store

    assert isinstance(store, Store)
    due = sorted(
        m.next_attempt_at
        for m in store.meetings_by_state(MeetingState.APPROVED)
        if m.next_attempt_at is not None and m.next_attempt_at > now
    )
    if due:
        count = f"{len(due)} booking{'s' if len(due) > 1 else ''} will be retried"
        at = f"{due[0].astimezone():%H:%M:%S %Z}"
        print(
            f"{count} {'from' if len(due) > 1 else 'at'} {at} "
            "(run serve again, or serve without --once)",
            file=out,
        )


def _run_service(cmd: str, settings: Settings, *, once: bool, out: TextIO) -> int:
    import time

    from scheduler.app.policies import PolicyBook
    from scheduler.entrypoints.logs import configure_logging
    from scheduler.entrypoints.runtime import build_runtime, wait_for_signal, warn_about_upkeep

    if not PolicyBook(settings.policy_dir).files():
        print(
            f"goodwill: no policy files in {settings.policy_dir} (GOODWILL_POLICY_DIR): "
            "nothing to plan until one is added",
            file=sys.stderr,
        )

    configure_logging(settings.log_format, settings.log_level)  # type: ignore[arg-type]
    with_web = cmd == "serve" and not once
    if with_web and settings.secret_key is None:
        with_web = False
        print(
            "goodwill serve: the owner's page is off: set GOODWILL_SECRET_KEY (`goodwill secret` "
            "makes one) to serve it on GOODWILL_WEB__HOST:GOODWILL_WEB__PORT",
            file=sys.stderr,
        )
    runtime = build_runtime(
        settings,
        with_tick=cmd in ("serve", "tick") and not once,
        with_worker=cmd in ("serve", "worker"),
        with_ops=not once,
        auto_migrate=cmd == "serve" and settings.broker_url == "embedded",
        with_web=with_web,
    )
    runtime.start()
    if once:
        from workers.tick import Tick

        if cmd == "serve":  # one round, from cron: the same warning as a running tick's
            warn_about_upkeep(runtime.app)

        tick = Tick(runtime.app.pipeline, runtime.actors, interval_s=0.05)
        try:
            for _ in range(8):
                time.sleep(0.06)
                result = tick.run_once()
                runtime.drain()
                if result.won and not (result.plan_sent or result.book_sent or result.sync_sent):
                    break
        finally:
            runtime.stop()
        counts = runtime.app.store.counts_by_state()
        print(", ".join(f"{n} {state}" for state, n in counts.items() if n), file=out)
        _print_pending_retries(runtime.app.store, runtime.app.clock.now(), out)
        return 0
    print(
        f"goodwill {cmd}: running (broker {settings.broker_url.split('@')[-1]}); Ctrl-C to stop",
        file=sys.stderr,
    )
    wait_for_signal(runtime.stop)
    print(f"goodwill {cmd}: stopped at {datetime.now(UTC):%H:%M:%S}", file=sys.stderr)
    return 0


def _run_web(settings: Settings) -> int:
    """``goodwill web``: the owner's page alone (scale mode: workers and tick run elsewhere)."""
    from scheduler.entrypoints.bootstrap import bootstrap
    from scheduler.entrypoints.logs import configure_logging
    from scheduler.entrypoints.runtime import wait_for_signal
    from scheduler.entrypoints.web.app import require_secret_key
    from scheduler.entrypoints.web.server import build_web_server

    require_secret_key(settings)  # before bootstrap migrates or makes the meeting-key file
    configure_logging(settings.log_format, settings.log_level)  # type: ignore[arg-type]
    _require_database(settings)
    app = bootstrap(settings, auto_migrate=settings.broker_url == "embedded")
    server = build_web_server(app)
    server.start()
    print(f"goodwill web: the owner's page is on {server.public_url}; Ctrl-C to stop",
          file=sys.stderr)  # fmt: skip

    def stop() -> None:
        server.stop()
        app.engine.dispose()

    wait_for_signal(stop)
    print(f"goodwill web: stopped at {datetime.now(UTC):%H:%M:%S}", file=sys.stderr)
    return 0
