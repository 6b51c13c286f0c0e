"""The ``goodwill`` command line.

Exit codes (a public contract): 0 success; 1 a runtime failure (provider down, …);
2 bad input (invalid policy, bad arguments, unreadable calendar directory).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO
from zoneinfo import ZoneInfo

from scheduler.app.policies import load_policy, validate_policy_files
from scheduler.core.errors import ConfigurationError, ConnectorError, PolicyError, SchedulerError
from scheduler.core.planner import Plan
from scheduler.core.policy import Policy
from scheduler.entrypoints.rendering import format_table

__all__ = ["main"]

EXIT_OK, EXIT_FAILURE, EXIT_USAGE = 0, 1, 2


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


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

    sv = sub.add_parser("serve", help="tick + workers + ops endpoint in one process")
    sv.add_argument("--once", action="store_true", help="run cycles until idle, then exit")
    sub.add_parser("worker", help="a worker process (scale mode: Redis or RabbitMQ broker)")
    sub.add_parser("tick", help="the tick alone (scale mode); safe to run on several hosts")
    sub.add_parser("migrate", help="bring the database schema to the latest version")

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
    rp.add_argument("paths", nargs="+", type=Path, metavar="PATH")

    pr = sub.add_parser("proposals", help="list proposals waiting for approval")
    pr.add_argument("--user", metavar="EMAIL")
    pr.add_argument("--json", action="store_true")
    for name, text in (("approve", "approve a proposal: it will be booked"),
                       ("decline", "decline a proposal: no invite is sent")):  # fmt: skip
        a = sub.add_parser(name, help=text)
        a.add_argument("meeting_id", type=int, metavar="ID")
    return parser


def _cmd_validate(files: Sequence[Path], out: TextIO) -> int:
    from scheduler.app.policies import POLICY_SUFFIXES

    issues = validate_policy_files(list(files))
    count = sum(
        len([p for p in f.iterdir() if p.suffix.lower() in POLICY_SUFFIXES]) if f.is_dir() else 1
        for f in files
    )
    for issue in issues:
        print(str(issue), file=out)
    if issues:
        bad = len({i.file for i in issues})
        print(f"{bad} of {count} file(s) invalid, {len(issues)} problem(s)", file=out)
        return EXIT_USAGE
    print(f"{count} file(s) valid", file=out)
    return EXIT_OK


def _cmd_plan(args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    from scheduler.app.planning import dry_run_plan
    from scheduler.core.clock import SystemClock

    policy = load_policy(args.policy)
    now: datetime = args.now or SystemClock().now()
    if args.calendars is not None:
        from connectors.ics import IcsDirectory

        if not args.calendars.is_dir():
            print(f"goodwill: --calendars {args.calendars}: no such directory", file=err)
            return EXIT_USAGE
        directory = IcsDirectory(args.calendars)
        result = dry_run_plan(policy, source=directory, history=directory, now=now)
    else:
        from connectors.registry import BackendRegistry
        from scheduler.entrypoints.bootstrap import bootstrap
        from scheduler.settings import Settings

        settings = Settings()
        url = settings.effective_database_url
        db_missing = url.startswith("sqlite:///") and not Path(url[len("sqlite:///") :]).exists()
        try:
            if db_missing:
                raise ConfigurationError("no database yet")
            # The provider named by the policy, with the grant stored by `goodwill connect`.
            backend = bootstrap(settings).pipeline.backends(policy)
        except ConfigurationError:
            # No database yet: app-wide grants (service account, app-only) still work, and a
            # dry run must not create one.
            backend = BackendRegistry(settings)(policy)
        result = dry_run_plan(policy, source=backend.source, history=backend.history, now=now)
    if args.json:
        json.dump(result.as_json(), out, indent=2)
        out.write("\n")
    else:
        out.write(render_plan(policy, result, now))
    return EXIT_OK


def render_plan(policy: Policy, result: Plan, now: datetime) -> str:
    """Human-readable tables of proposals and skips, times in the owner's zone."""
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
    lines.append("")
    lines.append("Dry run: nothing was written and no invite was sent.")
    return "\n".join(lines) + "\n"


def main(
    argv: Sequence[str] | None = None, *, out: TextIO | None = None, err: TextIO | None = None
) -> int:
    """Entry point of the ``goodwill`` console script."""
    out = out or sys.stdout
    err = err or sys.stderr
    args = build_parser().parse_args(argv)
    try:
        if args.command == "validate":
            return _cmd_validate(args.files, out)
        if args.command == "plan":
            return _cmd_plan(args, out, err)
        from scheduler.entrypoints import commands

        return commands.run(args, out, err)
    except PolicyError as exc:
        for issue in exc.issues:
            print(str(issue), file=err)
        return EXIT_USAGE
    except ConfigurationError as exc:
        print(f"goodwill: configuration: {exc}", file=err)
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
