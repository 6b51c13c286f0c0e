"""``goodwill replies``: read iMIP REPLY mail one message at a time, and file each one away.

Every message is handled on its own: one that cannot be read, is too large, is forged, or names
an event that is gone is refused with its reason and moved aside, and the next one is read. A
message is never deleted:

- in a Maildir (``new/``, ``cur/``, ``tmp/``), a handled message moves from ``new/`` to ``cur/``
  with the info suffix ``:2,S`` (seen); a refused one gets ``:2,FS`` (flagged, for a person to
  look at). Messages in ``cur/`` that are not yet seen are read too; seen ones are not again;
- a plain file (or a plain directory's files) moves to ``done/`` or ``bad/`` next to it.

A message left where it was is one whose answer could not be applied for a reason that may
pass (the calendar provider is down, the owner's calendar cannot be reached): the next run
reads it again, and the command exits 1.

At most ``GOODWILL_LIMITS__MAIL_MAX_BYTES`` + 1 bytes of a file are read. Logs carry the
outcome, the meeting id and a digest prefix of the message, never an address.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from scheduler.core.errors import CalendarDataError, ConfigurationError, SchedulerError

__all__ = ["MailItem", "collect", "read_limited", "run_replies", "settle"]

_log = logging.getLogger("goodwill.replies")
_INFO = ":2,"


@dataclass(frozen=True, slots=True)
class MailItem:
    """One message to read: a file in a Maildir (``maildir`` is its root) or a plain file."""

    path: Path
    maildir: Path | None = None


def _flags(name: str) -> str:
    return name.partition(_INFO)[2] if _INFO in name else ""


def collect(paths: list[Path]) -> list[MailItem]:
    """The messages under ``paths``, in a stable order (by name within each folder).

    Raises:
        ConfigurationError: a path does not exist.
    """
    items: list[MailItem] = []
    for path in paths:
        if path.is_dir() and (path / "new").is_dir():
            found = [f for f in (path / "new").iterdir() if f.is_file()]
            if (path / "cur").is_dir():
                found += [
                    f for f in (path / "cur").iterdir() if f.is_file() and "S" not in _flags(f.name)
                ]
            items += [MailItem(f, path) for f in sorted(found) if not f.name.startswith(".")]
        elif path.is_dir():
            items += [
                MailItem(f)
                for f in sorted(path.iterdir())
                if f.is_file() and not f.name.startswith(".")
            ]
        elif path.is_file():
            items.append(MailItem(path))
        else:
            raise ConfigurationError(
                f"{path}: no such file or directory; pass REPLY mail files, directories of them, "
                "or Maildir folders (with new/ and cur/)"
            )
    return items


def read_limited(path: Path, limit: int) -> bytes | None:
    """The file's bytes, or None when it is larger than ``limit`` (at most limit + 1 read)."""
    with path.open("rb") as fh:
        data = fh.read(limit + 1)
    return None if len(data) > limit else data


def _free(target: Path) -> Path:
    """``target``, or ``target.1``, ``target.2`` … whichever does not exist (never overwrite)."""
    candidate, n = target, 0
    while candidate.exists():
        n += 1
        candidate = target.with_name(f"{target.name}.{n}")
    return candidate


def settle(item: MailItem, *, refused: bool) -> Path:
    """Move a handled message out of the way (module rules); returns where it went."""
    if item.maildir is not None:
        base, _, old = item.path.name.partition(_INFO)
        flags = "".join(sorted(set(old) | {"S"} | ({"F"} if refused else set())))
        target = _free(item.maildir / "cur" / f"{base}{_INFO}{flags}")
    else:
        folder = item.path.parent / ("bad" if refused else "done")
        folder.mkdir(exist_ok=True)
        target = _free(folder / item.path.name)
    os.rename(item.path, target)
    return target


@dataclass
class _Tally:
    refused: int = 0
    failed: int = 0


def run_replies(
    app: object, paths: list[Path], accept: int | None, out: TextIO, err: TextIO
) -> int:
    """The ``goodwill replies`` command. Exit codes: 0 all handled (applied, held or ignored);
    2 some message was refused (bad input) or ``--accept`` could not apply; 1 some message
    could not be handled now and was left in place (retry later)."""
    from scheduler.entrypoints.bootstrap import App

    assert isinstance(app, App)
    code = 0
    if accept is not None:
        code = _accept(app, accept, out, err)
    if not paths:
        return code
    tally = _Tally()
    for item in collect(paths):
        _one(app, item, tally, out, err)
    if tally.failed:
        return 1
    return 2 if tally.refused or code == 2 else code


def _accept(app: object, held_id: int, out: TextIO, err: TextIO) -> int:
    from scheduler.app.replies import accept_held_reply
    from scheduler.app.responses import ReplyOutcome
    from scheduler.entrypoints.bootstrap import App

    assert isinstance(app, App)
    decision = accept_held_reply(app.pipeline, held_id)
    result = decision.result
    if result.outcome is ReplyOutcome.UNKNOWN:
        print(
            f"goodwill: no held reply {held_id}: `goodwill report` lists the replies waiting",
            file=err,
        )
        return 2
    if result.outcome is ReplyOutcome.APPLIED:
        state = result.state.value if result.state else "-"
        print(f"held reply {held_id} applied: meeting {result.meeting_id} {state}", file=out)
        _log.info("held reply %s applied (meeting %s)", held_id, result.meeting_id)
        return 0
    if result.detail.startswith(f"held reply {held_id} "):  # it was decided before
        print(f"goodwill: {result.detail}", file=err)
    else:
        print(f"goodwill: held reply {held_id} was not applied: {result.detail}", file=err)
    return 2


def _one(app: object, item: MailItem, tally: _Tally, out: TextIO, err: TextIO) -> None:
    from connectors.imip import parse_reply
    from scheduler.app.replies import IncomingReply, receive_reply
    from scheduler.app.responses import ReplyOutcome
    from scheduler.entrypoints.bootstrap import App

    assert isinstance(app, App)
    path = item.path
    limit = app.settings.limits.mail_max_bytes

    def refuse(kind: str, message: str) -> None:
        try:
            dest = settle(item, refused=True)
        except OSError as exc:
            print(f"{message}; it could not be moved aside ({exc.strerror})", file=err)
        else:
            print(f"{message}; moved to {dest}", file=err)
        _log.warning("reply mail refused: %s", kind)
        tally.refused += 1

    try:
        data = read_limited(path, limit)
    except FileNotFoundError:
        return  # taken by a concurrent run
    except OSError as exc:
        print(f"{path}: cannot be read ({exc.strerror}); left in place", file=err)
        tally.failed += 1
        return
    if data is None:
        refuse(
            "too_large",
            f"{path}: refused: larger than {limit} bytes (GOODWILL_LIMITS__MAIL_MAX_BYTES); "
            "an iMIP REPLY is a few kilobytes, raise the limit only if a real one is refused",
        )
        return
    try:
        reply = parse_reply(data)
    except (CalendarDataError, ValueError) as exc:
        refuse("unreadable", f"{path}: not an iMIP REPLY: {exc}")
        return
    incoming = IncomingReply(
        uid=reply.uid,
        attendee=reply.attendee_email,
        answer=reply.partstat,
        sequence=reply.sequence,
        senders=reply.senders,
        sent_by=reply.sent_by,
        reply_to=reply.reply_to,
        authentication=reply.authentication,
        digest=reply.digest,
        proposed=reply.proposed,
    )
    try:
        decision = receive_reply(app.pipeline, incoming)
    except SchedulerError as exc:  # a provider that is down, a grant to renew: retry later
        print(f"{path}: left in place, retry later: {type(exc).__name__}: {exc}", file=err)
        _log.warning("reply mail left in place: %s", type(exc).__name__)
        tally.failed += 1
        return
    result = decision.result
    if result.outcome is ReplyOutcome.REFUSED:
        kind = "authentication" if reply.authentication else "provider"
        refuse(kind, f"{path}: refused: {result.detail.removeprefix('refused: ')}")
        return
    state = result.state.value if result.state else "-"
    if result.outcome is ReplyOutcome.HELD and decision.held is not None:
        held = decision.held
        detail = (
            f"held {held.id}: a reply from {decision.sender} about your meeting with "
            f"{decision.stakeholder} was not applied: {result.detail}; to apply it: "
            f"goodwill replies --accept {held.id}"
        )
    else:
        detail = result.detail
    try:
        settle(item, refused=False)
    except FileNotFoundError:
        pass  # moved by a concurrent run
    print(f"{path.name}: meeting {result.meeting_id or '-'} {state} ({detail})", file=out)
    _log.info(
        "reply mail %s (meeting %s, message %s)",
        result.outcome.value,
        result.meeting_id,
        reply.digest[:12],
    )
