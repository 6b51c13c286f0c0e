"""The ``goodwill`` command line.

Exit codes (a public contract): 0 success; 1 a runtime failure (provider down, …);
2 bad input (invalid policy, bad arguments, unreadable calendar directory).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TextIO
from zoneinfo import ZoneInfo

from scheduler.core.errors import ConfigurationError, ConnectorError, PolicyError, SchedulerError
from scheduler.entrypoints.startup import imports_kept

# Cold start (issue 13): this module imports the standard library and the error tree only;
# pydantic, the policy schema, the planner, the store and the SDKs load in the command that uses
# them (`goodwill --help` needs none; tests/unit/test_architecture.py checks what `plan` loads).
if TYPE_CHECKING:
    from pydantic import ValidationError

    from scheduler.app.dry_run import StoredState
    from scheduler.app.policies import PolicyLimits
    from scheduler.core.planner import Plan
    from scheduler.core.policy import Policy
    from scheduler.entrypoints.bootstrap import App

__all__ = ["main"]

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


#: The range ``--now`` accepts, [earliest, latest): far enough either way for any real plan, and
#: far from the ends of ``datetime`` (year 1 overflowed, year 9999 planned for minutes).
NOW_EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
NOW_LATEST = datetime(2100, 1, 1, tzinfo=UTC)


class _NowOutOfRange(Exception):
    """``--now`` parsed, but outside [NOW_EARLIEST, NOW_LATEST): exit 2 with one clear line.

    Not an ArgumentTypeError, so argparse lets it through to :func:`main`.
    """

    def __init__(self, text: str) -> None:
        super().__init__(
            f"--now must be between {NOW_EARLIEST:%Y-%m-%dT%H:%M:%SZ} and "
            f"{NOW_LATEST:%Y-%m-%dT%H:%M:%SZ}, got {text}"
        )


def _parse_now(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"--now expects ISO 8601 like 2026-12-01T09:00:00Z, got {text!r}"
        ) from exc
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(
            f"--now {text!r} has no zone; add Z or an offset, e.g. {text}Z"
        )
    if not NOW_EARLIEST <= moment < NOW_LATEST:  # compared before converting: year 1 overflows
        raise _NowOutOfRange(text)
    return moment.astimezone(UTC)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="goodwill", description="Keep your internal network warm.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    v = sub.add_parser(
        "validate", help="check policy files; exit 0 when all are valid, 2 otherwise"
    )
    v.add_argument("files", nargs="+", type=Path, metavar="FILE")

    p = sub.add_parser(
        "plan", help="dry run: show what would be proposed (nothing is written or sent)"
    )
    p.add_argument("--policy", required=True, type=Path, metavar="FILE")
    p.add_argument(
        "--calendars",
        type=Path,
        metavar="DIR",
        help="read everyone's busy time from DIR/<email>.ics, whatever provider the policy names",
    )
    p.add_argument("--now", type=_parse_now, metavar="ISO8601", help="fix the clock (UTC if Z)")
    p.add_argument("--json", action="store_true", help="print one JSON object")

    d = sub.add_parser("demo", help="run one full cycle over the sample organisation (offline)")
    d.add_argument("--examples", type=Path, default=None, metavar="DIR")
    d.add_argument("--data-dir", type=Path, default=Path(".goodwill/demo"), metavar="DIR")
    d.add_argument(
        "--serve",
        action="store_true",
        help="serve the owner's page and run the service on the last demo's data (Ctrl-C stops)",
    )

    sv = sub.add_parser("serve", help="tick + workers + ops endpoint in one process")
    sv.add_argument("--once", action="store_true", help="run cycles until idle, then exit")
    sub.add_parser("worker", help="a worker process (scale mode: Redis or RabbitMQ broker)")
    sub.add_parser("web", help="the owner's web page alone (scale mode; serve includes it)")
    sub.add_parser("tick", help="the tick alone (scale mode); safe to run on several hosts")
    sub.add_parser("migrate", help="bring the database schema to the latest version")
    sub.add_parser("secret", help="print a new random GOODWILL_SECRET_KEY (32 bytes, base64)")
    from scheduler.entrypoints.link_command import add_parser as add_link_parser

    add_link_parser(sub)

    cn = sub.add_parser("connect", help="sign a user in to Google or Microsoft (stored encrypted)")
    cn.add_argument("provider", choices=["google", "microsoft"])
    cn.add_argument("--user", required=True, metavar="EMAIL")
    cn.add_argument("--no-browser", action="store_true", help="print the sign-in URL only")

    rep = sub.add_parser("report", help="who is overdue, coverage, rates, what needs attention")
    rep.add_argument("--user", metavar="EMAIL")
    rep.add_argument("--json", action="store_true")

    rp = sub.add_parser(
        "replies", help="apply iMIP REPLY e-mails (files, or Maildir folders) to their meetings"
    )
    rp.add_argument("paths", nargs="*", type=Path, metavar="PATH")
    rp.add_argument(
        "--accept",
        type=int,
        metavar="ID",
        help="apply a reply that was held because its sender is not the attendee (see report)",
    )

    pr = sub.add_parser("proposals", help="list proposals waiting for approval")
    pr.add_argument("--user", metavar="EMAIL")
    pr.add_argument("--json", action="store_true")
    for name, text in (("approve", "approve a proposal: it will be booked"),
                       ("decline", "decline a proposal: no invite is sent")):  # fmt: skip
        a = sub.add_parser(name, help=text)
        a.add_argument("meeting_id", type=int, metavar="ID")
        a.add_argument("--user", metavar="EMAIL", help="refuse a meeting that is not EMAIL's")
    dg = sub.add_parser("digest", help="send the owners' digest e-mail now (or one owner's)")
    dg.add_argument("--user", metavar="EMAIL", help="only this owner (even without notify.digest)")
    _owner_parsers(sub)
    return parser


def _owner_parsers(sub: argparse._SubParsersAction[_Parser]) -> None:
    """``goodwill cancel``, ``pause`` and ``resume`` (scheduler/entrypoints/owner_commands.py)."""

    def parse_day(text: str) -> date:  # imports owner_commands (the use cases) only for --until
        from scheduler.entrypoints.owner_commands import parse_day as parse

        return parse(text)

    c = sub.add_parser("cancel", help="cancel a meeting (its invite too), or --all of a user's")
    c.add_argument("meeting_id", type=int, nargs="?", metavar="ID")
    c.add_argument("--user", metavar="EMAIL", help="refuse a meeting that is not EMAIL's")
    c.add_argument("--all", action="store_true", help="every open meeting of --user ahead")
    c.add_argument("--yes", action="store_true", help="with --all: do not ask")
    pa = sub.add_parser("pause", help="propose and book nothing new for a user until a date")
    pa.add_argument("--user", required=True, metavar="EMAIL")
    pa.add_argument("--until", required=True, type=parse_day, metavar="YYYY-MM-DD")
    pa.add_argument(
        "--cancel-booked",
        action="store_true",
        help="also cancel what is booked or approved ahead (proposals stay)",
    )
    r = sub.add_parser("resume", help="end a user's pause: planning and booking start again")
    r.add_argument("--user", required=True, metavar="EMAIL")


#: ``Settings.data_dir``'s default (tests/unit/test_cli_settings.py keeps the two the same).
DEFAULT_DATA_DIR = Path(".goodwill")


def _environment_has_settings() -> bool:
    """Whether any ``GOODWILL_*`` variable is set (pydantic-settings ignores the letter case).

    Settings come from the environment alone (no ``.env`` file), so without one every setting
    is its default: ``plan`` and ``validate`` then skip building :class:`Settings`, whose
    pydantic-settings imports (asyncio, pydantic's dataclasses) are a quarter of a cold dry
    run (issue 13)."""
    return any(name.upper().startswith("GOODWILL_") for name in os.environ)


def _import_settings_if_set() -> None:
    """Import the settings (pydantic-settings) now, inside :func:`imports_kept`, when a
    ``GOODWILL_*`` variable means the command will build them: imported later, with the
    collector running, its scans of everything imported so far cost more than the import."""
    if _environment_has_settings():
        import scheduler.settings  # noqa: F401


def _policy_limits() -> PolicyLimits:
    """The policy limits from GOODWILL_LIMITS__POLICY_* (a bad value exits 2, as any setting)."""
    if not _environment_has_settings():
        from scheduler.core.policy import PolicyLimits

        return PolicyLimits()  # = policy_limits(Settings().limits) (tests/unit/test_policy.py)
    from scheduler.app.policies import policy_limits
    from scheduler.settings import Settings

    return policy_limits(Settings().limits)


def _cmd_validate(files: Sequence[Path], out: TextIO, *, own_process: bool) -> int:
    with imports_kept(own_process):
        from scheduler.app.policies import check_policy_files  # and pydantic

        _import_settings_if_set()

    count, issues = check_policy_files(list(files), _policy_limits())
    if count == 0:
        where = ", ".join(str(f) for f in files)
        print(
            f"no policy files found in {where}; policy files are named *.yaml, *.yml or *.toml",
            file=out,
        )
        return EXIT_USAGE
    for issue in issues:
        print(str(issue), file=out)
    if issues:
        bad = len({i.file for i in issues})
        print(f"{bad} of {count} file(s) invalid, {len(issues)} problem(s)", file=out)
        return EXIT_USAGE
    print(f"{count} file(s) valid", file=out)
    return EXIT_OK


def _cmd_plan(args: argparse.Namespace, out: TextIO, err: TextIO, *, own_process: bool) -> int:
    with imports_kept(own_process):  # what a dry run uses (not the store: no database yet)
        from scheduler.app.dry_run import dry_run_plan
        from scheduler.app.policies import load_policy
        from scheduler.core.clock import SystemClock

        if args.calendars is not None:
            from connectors.ics import IcsDirectory
        _import_settings_if_set()

    policy = load_policy(args.policy, _policy_limits())
    now: datetime = args.now or SystemClock().now()
    if args.calendars is not None and not args.calendars.is_dir():
        print(f"goodwill: --calendars {args.calendars}: no such directory", file=err)
        return EXIT_USAGE
    app, known = _stored_plan_state(policy, now)
    if args.calendars is not None:
        directory = IcsDirectory(args.calendars)
        result = dry_run_plan(policy, source=directory, history=directory, now=now, known=known)
    else:
        from connectors.registry import BackendRegistry
        from scheduler.settings import Settings

        try:
            if app is None:
                raise ConfigurationError("no database yet")
            # The provider named by the policy, with the grant stored by `goodwill connect`.
            backend = app.pipeline.backends(policy)
        except ConfigurationError:
            # No database yet: app-wide grants (service account, app-only) still work, and a
            # dry run must not create one.
            backend = BackendRegistry(Settings())(policy)
        result = dry_run_plan(
            policy, source=backend.source, history=backend.history, now=now, known=known
        )
    if args.json:
        json.dump(result.as_json(), out, indent=2)
        out.write("\n")
    else:
        out.write(render_plan(policy, result, now))
    return EXIT_OK


def _stored_plan_state(policy: Policy, now: datetime) -> tuple[App | None, StoredState | None]:
    """The configured database (None when there is none yet: a dry run creates nothing) and,
    when it holds this policy's owner, what it knows: open meetings, back-offs, pauses."""
    if not _environment_has_settings() and not (DEFAULT_DATA_DIR / "goodwill.db").exists():
        return None, None  # the default database (a SQLite file in the default data dir)
    from scheduler.settings import Settings

    settings = Settings()
    url = settings.effective_database_url
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///") :]).exists():
        return None, None
    from scheduler.app.planning import stored_state
    from scheduler.entrypoints.bootstrap import bootstrap

    try:
        app = bootstrap(settings, read_only=True)  # "Dry run: nothing was written"
    except ConfigurationError:
        return None, None
    user = app.store.get_user_by_email(policy.owner.email)
    if user is None:
        return app, None
    cap = app.pipeline.stakeholder_weekly_cap
    return app, stored_state(app.store, user.id, policy, now, weekly_cap=cap)


def render_plan(policy: Policy, result: Plan, now: datetime) -> str:
    """Human-readable tables of proposals and skips, times in the owner's zone."""
    from scheduler.entrypoints.rendering import format_table

    zone = ZoneInfo(policy.owner.timezone)
    names = {s.email.lower(): s.name for s in policy.stakeholders}
    lines = [
        f"Plan for {policy.owner.name} — {now.astimezone(zone):%a %d %b %Y %H:%M} "
        f"{policy.owner.timezone}, looking {policy.availability.horizon.days} days ahead",
        "",
    ]
    if result.proposals:
        lines.append(f"Proposed ({len(result.proposals)}):")
        rows = [("WHEN", "WITH", "KIND", "MODE", "WHY")]
        for p in result.proposals:
            start, end = p.start.astimezone(zone), p.end.astimezone(zone)
            rows.append(
                (
                    f"{start:%a %d %b %H:%M}-{end:%H:%M}",
                    f"{p.name} ({p.tier})",
                    p.kind,
                    "auto-book" if p.mode == "auto" else "ask first",
                    p.reason,
                )
            )
        lines.extend(format_table(rows))
    else:
        lines.append("Nothing to propose this cycle.")
    if result.skipped:
        lines.append("")
        lines.append(f"Skipped ({len(result.skipped)}):")
        skip_rows: list[tuple[str, ...]] = [("WHO", "WHY")]
        skip_rows.extend(
            (names.get(s.stakeholder, s.stakeholder), s.reason) for s in result.skipped
        )
        lines.extend(format_table(skip_rows))
    lines.extend(_render_groups(result, zone, names))
    lines.append("")
    lines.append("Dry run: nothing was written and no invite was sent.")
    return "\n".join(lines) + "\n"


def _render_groups(result: Plan, zone: ZoneInfo, names: dict[str, str]) -> list[str]:
    """Group meetings, introductions and the owner's private notes, for :func:`render_plan`;
    people by ``names`` (lower-cased e-mail to name), the address where no name is known."""
    from scheduler.entrypoints.rendering import format_table

    lines: list[str] = []
    if result.group_proposals:
        lines += ["", f"Group meetings proposed ({len(result.group_proposals)}, ask first):"]
        rows = [("WHEN", "GROUP", "WHO", "PRESENTER", "WHY")]
        for g in result.group_proposals:
            start, end = g.start.astimezone(zone), g.end.astimezone(zone)
            when = f"{start:%a %d %b %H:%M}-{end:%H:%M}"
            who = ", ".join(names.get(e.lower(), e) for e in g.attendees)
            presenter = names.get(g.presenter.lower(), g.presenter) if g.presenter else "-"
            rows.append((when, g.group, who, presenter, g.reason))
        lines.extend(format_table(rows))
    if result.group_skipped:
        lines += ["", f"Groups skipped ({len(result.group_skipped)}):"]
        skips = [("GROUP", "WHY"), *((g.group, g.reason) for g in result.group_skipped)]
        lines.extend(format_table(skips))
    notes = [(p.name, p.owner_note) for p in result.proposals if p.owner_note]
    if notes:
        lines += ["", "Notes for you only (never in an invite):"]
        lines.extend(f"  with {name}: {note}" for name, note in notes)
    return lines


def _print_settings_errors(exc: ValidationError, err: TextIO) -> None:
    """One line per bad setting, named as the environment variable; never the value itself."""
    for error in exc.errors(include_input=False, include_url=False):
        name = "GOODWILL_" + "__".join(str(part) for part in error["loc"]).upper()
        message = error["msg"]
        if name not in message:
            message = f"{name}: {message}"
        print(f"goodwill: configuration: {message}", file=err)


def _validation_error() -> type[ValidationError]:
    """pydantic's ValidationError, for ``main``'s ``except``: Python evaluates that clause only
    when an exception gets there, so ``goodwill --help`` (and any clean run) never loads pydantic
    for it."""
    from pydantic import ValidationError

    return ValidationError


def main(
    argv: Sequence[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """Entry point of the ``goodwill`` console script.

    ``argv`` None: the process's own command line, which the process ends with (see
    :mod:`scheduler.entrypoints.startup`); a list: a command run inside a caller's process.
    """
    own_process = argv is None
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        args = build_parser().parse_args(argv)
    except _NowOutOfRange as exc:
        print(f"goodwill: {exc}", file=err)
        return EXIT_USAGE
    try:
        if args.command == "validate":
            return _cmd_validate(args.files, out, own_process=own_process)
        if args.command == "plan":
            return _cmd_plan(args, out, err, own_process=own_process)
        if args.command == "link":
            from scheduler.entrypoints.link_command import run_link

            return run_link(args, out)
        if args.command == "secret":
            from scheduler.settings import new_secret_key

            print(new_secret_key(), file=out)
            return EXIT_OK
        from scheduler.entrypoints import commands

        return commands.run(args, out, err)
    except PolicyError as exc:
        for issue in exc.issues:
            print(str(issue), file=err)
        return EXIT_USAGE
    except ConfigurationError as exc:
        print(f"goodwill: configuration: {exc}", file=err)
        return EXIT_USAGE
    except _validation_error() as exc:  # a GOODWILL_* setting is malformed (scheduler/settings.py)
        _print_settings_errors(exc, err)
        return EXIT_USAGE
    except ConnectorError as exc:
        print(f"goodwill: calendar provider failed: {exc}", file=err)
        return EXIT_FAILURE
    except SchedulerError as exc:
        print(f"goodwill: {exc}", file=err)
        return EXIT_FAILURE
    except BrokenPipeError:  # `goodwill report --json | head`: the reader left, not an error
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
