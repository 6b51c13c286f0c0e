"""The owner's commands: ``goodwill cancel``, ``pause``, ``resume``, and ``approve``/``decline``
with ``--user`` (the use cases of :mod:`scheduler.app.owner`).

Exit codes: 0 done; 1 refused by the meeting's state (the plain message is printed) or a
runtime failure; 2 bad input, or a meeting that is not the user's (or does not exist).
"""

from __future__ import annotations

import argparse
import sys
from datetime import date, datetime
from typing import TYPE_CHECKING, TextIO

from scheduler.app import owner
from scheduler.app.owner import ActionResult, Outcome
from scheduler.app.owner_text import read_policy, zone_of
from scheduler.app.records import User
from scheduler.core.errors import ConfigurationError

if TYPE_CHECKING:  # the store and the SDKs behind App: not for `goodwill plan`'s parser
    from scheduler.entrypoints.bootstrap import App

__all__ = ["OWNER_COMMANDS", "parse_day", "run_owner_command"]

#: The commands this module runs (``approve``/``decline`` only with ``--user``).
OWNER_COMMANDS = ("cancel", "pause", "resume")

_EXIT = {Outcome.DONE: 0, Outcome.CONFLICT: 1, Outcome.SLOT_GONE: 1, Outcome.NOT_FOUND: 2}


def parse_day(text: str) -> date:
    """``--until YYYY-MM-DD`` (argparse type)."""
    try:
        return date.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(
            f"--until expects a date like 2026-12-24 (YYYY-MM-DD), got {text!r}"
        ) from exc


def local_time(app: App, owner_email: str, moment: datetime) -> str:
    """``moment`` on the owner's clock, e.g. ``Tue 01 Dec 14:15 GMT``."""
    user = app.store.get_user_by_email(owner_email)
    policy = read_policy(app.pipeline, user) if user is not None else None
    return f"{moment.astimezone(zone_of(policy)):%a %d %b %H:%M %Z}"


def _user(app: App, email: str) -> User:
    user = app.store.get_user_by_email(email)
    if user is None:
        raise ConfigurationError(f"no user {email!r}: is their policy in GOODWILL_POLICY_DIR?")
    return user


def _say(result: ActionResult, out: TextIO, err: TextIO, app: App, user: User) -> int:
    code = _EXIT[result.outcome]
    if code == 0:
        print(result.message, file=out)
    else:
        print(f"goodwill: {result.message}", file=err)
    for alt in result.alternatives:
        when = local_time(app, user.email, alt.start)
        print(f"  still free: {when} (alternative {alt.index})", file=err)
    return code


def _owned(app: App, args: argparse.Namespace, err: TextIO) -> tuple[User, int] | int:
    """The meeting's owner (``--user``, else whoever owns it), or the exit code for refusing."""
    meeting_id: int = args.meeting_id
    if args.user:
        user = _user(app, args.user)
        if owner.meeting_for_owner(app.pipeline, user.id, meeting_id) is None:
            print(f"goodwill: meeting {meeting_id} is not one of {user.email}'s", file=err)
            return 2
        return user, meeting_id
    m = app.store.get_meeting(meeting_id)
    found = app.store.get_user(m.user_id) if m is not None else None
    if found is None:
        print(f"goodwill: no meeting {meeting_id}", file=err)
        return 2
    return found, meeting_id


def run_owner_command(app: App, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    cmd, p = args.command, app.pipeline
    if cmd == "pause":
        user = _user(app, args.user)
        result = owner.pause(p, user.id, args.until, cancel_booked=args.cancel_booked, actor="cli")
        if result.outcome == Outcome.CONFLICT:  # a day already over: bad input
            print(f"goodwill: --until {args.until}: {result.message}", file=err)
            return 2
        return _say(result, out, err, app, user)
    if cmd == "resume":
        user = _user(app, args.user)
        return _say(owner.resume(p, user.id, actor="cli"), out, err, app, user)
    if cmd == "cancel" and args.all:
        return _cancel_all(app, args, out, err)
    if cmd == "cancel" and args.meeting_id is None:
        print("goodwill: cancel needs a meeting ID, or --all --user EMAIL", file=err)
        return 2
    owned = _owned(app, args, err)
    if isinstance(owned, int):
        return owned
    user, meeting_id = owned
    act = {"cancel": owner.cancel, "approve": owner.approve, "decline": owner.decline}[cmd]
    return _say(act(p, user.id, meeting_id, actor="cli"), out, err, app, user)


def _cancel_all(app: App, args: argparse.Namespace, out: TextIO, err: TextIO) -> int:
    if args.meeting_id is not None or not args.user:
        print("goodwill: cancel --all takes no meeting ID and needs --user EMAIL", file=err)
        return 2
    user = _user(app, args.user)
    meetings = owner.to_cancel(app.pipeline, user.id)
    if not meetings:
        print(f"nothing to cancel for {user.email}", file=out)
        return 0
    for m in meetings:
        when = local_time(app, user.email, m.start)
        print(f"{m.id:>5}  {when}  {m.stakeholder_email}  {m.state.value}", file=out)
    if not args.yes:
        print(f"Cancel {len(meetings)} meetings? [y/N] ", end="", file=out, flush=True)
        answer = sys.stdin.readline().strip().lower()
        if answer not in ("y", "yes"):
            print("nothing was cancelled", file=out)
            return 1
    code = 0
    for m in meetings:  # exactly what was listed (and confirmed)
        result = owner.cancel(app.pipeline, user.id, m.id, actor="cli")
        code = max(code, _say(result, out, err, app, user))
    return code
