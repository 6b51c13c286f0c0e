"""Policy registration: scan the policy directory, register new and edited owners, report bad
files (each in isolation), follow removed files, and cancel a removed owner's open meetings.

The planning round (:mod:`scheduler.app.planning`) reads each owner's file through
:func:`load_isolated` and reports problems the same way; ``planning`` re-exports
:func:`register_policies`, :func:`cancel_removed_owner_meetings` and :data:`OWNER_REMOVED`.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from scheduler.app.pipeline import Pipeline, revoke
from scheduler.app.policies import PolicyFile
from scheduler.app.problems import KnownCrash
from scheduler.app.records import Meeting, User
from scheduler.core.errors import (
    AuthorizationRevoked,
    ConfigurationError,
    ConnectorError,
    PolicyIssue,
    ResourceGone,
)
from scheduler.core.policy import Policy
from scheduler.core.states import MeetingState

__all__ = [
    "OWNER_REMOVED",
    "PLAN_CRASHED",
    "cancel_removed_owner_meetings",
    "count_policy_error",
    "load_isolated",
    "register_policies",
    "report_policy_problem",
]

log = logging.getLogger("goodwill.booking")

_S = MeetingState


def register_policies(p: Pipeline) -> list[PolicyIssue]:
    """Scan the policy directory: register new users, bring edited ones forward, report bad files.

    Each file is handled on its own: *any* exception while loading or registering one (a file
    that crashes the loader, a value the database refuses) is recorded for that file's user,
    counted in ``goodwill_policy_errors_total`` and logged once per change of the file, and the
    other files are registered as usual. A registered user whose file is gone is marked
    (``policy_missing_since``): they are no longer planned, and their open future meetings are
    cancelled once :attr:`Pipeline.policy_removed_grace` has passed unless the file comes back.

    Returns every issue found (bad files are reported, never fatal for the other users).
    """
    now = p.clock.now()
    issues: list[PolicyIssue] = []
    users = p.store.all_users()
    scan = _Scan(users)
    directory = p.policies.directory
    try:
        files = p.policies.files()
    except OSError as exc:  # the directory itself cannot be listed: nobody counts as removed
        reason = exc.strerror or type(exc).__name__
        _directory_problem(
            p, users, f"cannot list the policy directory {directory} ({reason})", "unreadable"
        )
        return issues
    for path in files:
        try:
            _register_file(p, path, scan, issues, now)
        except Exception as exc:  # one file never stops the others
            _register_failed(p, str(path), scan, exc, issues, now)
    if directory is None:
        return issues
    if not directory.is_dir():  # a missing mount must not read as "every file removed"
        _directory_problem(p, users, f"the policy directory {directory} does not exist", "missing")
        return issues
    _follow_removals(p, scan, now)
    return issues


def _directory_problem(p: Pipeline, users: Sequence[User], what: str, key: str) -> None:
    """The directory cannot be read: an error once users depend on it (a fresh install has
    none yet, and says so at start-up)."""
    if not users:
        return
    count_policy_error(p, "unreadable")
    if p.problems.first(str(p.policies.directory), "", key):
        log.error(
            "%s: no policy file is read and no user is treated as removed until it can be; "
            "check GOODWILL_POLICY_DIR, the mount and its permissions",
            what,
        )


#: Exceptions that mean the file is beyond what the loader can take (nesting, huge numbers).
_TOO_LARGE_ERRORS = (RecursionError, MemoryError, OverflowError)
#: The loader's size limits: an issue that names one of these settings is "too large"
#: (scheduler/core/policy/limits.py names the setting to raise in each such message).
_SIZE_LIMIT_SETTINGS = tuple(
    f"GOODWILL_LIMITS__POLICY_MAX_{name}"
    for name in ("BYTES", "DEPTH", "VALUES", "STRING", "STAKEHOLDERS")
)
#: Prefix of the ``policy_error`` recorded when a planning round crashed (not the file itself).
PLAN_CRASHED = "planning crashed"
#: The detail of a meeting cancelled because its owner's policy file was removed.
OWNER_REMOVED = "owner removed"


@dataclass
class _Scan:
    """What one scan of the policy directory found, to tell which users' files are gone."""

    users: list[User]
    #: Owner e-mails of files that hold a policy (the current or the last good version).
    owners: set[str] = field(default_factory=set)
    #: Files with no usable policy: whose they are cannot be told, so their users stay.
    unowned: set[str] = field(default_factory=set)
    #: Every policy file found.
    listed: set[str] = field(default_factory=set)

    def user_at(self, path: str) -> User | None:
        return next((u for u in self.users if u.policy_path == path), None)

    def user_by_email(self, email: str) -> User | None:
        email = email.strip().lower()
        return next((u for u in self.users if u.email == email), None)

    def present(self, user: User) -> bool:
        if user.email in self.owners or user.policy_path in self.unowned:
            return True
        # A file outside the directory (written by a process with another working directory
        # or GOODWILL_POLICY_DIR) still counts while it exists.
        return user.policy_path not in self.listed and Path(user.policy_path).exists()


@dataclass(frozen=True, slots=True)
class _Loaded:
    """One policy file read in isolation: ``file`` is None when loading it crashed."""

    path: str
    digest: str
    file: PolicyFile | None
    crash: KnownCrash | None = None


def _digest(path: str | Path) -> str:
    try:
        return hashlib.sha256(Path(path).read_bytes()).hexdigest()
    except OSError:
        return ""


def load_isolated(p: Pipeline, path: str | Path) -> _Loaded:
    """Load one policy file; an exception other than a policy error becomes a remembered crash.

    Content that crashed the loader before is not parsed again until it changes.
    """
    key, digest = str(path), _digest(path)
    known = p.problems.known_crash(key, digest) if digest else None
    if known is not None:
        return _Loaded(key, digest, None, known)
    try:
        return _Loaded(key, digest, p.policies.load(path))
    except Exception as exc:  # isolation: whatever the loader raises stays with this file
        crash = _crash_of(key, exc)
        if digest:
            p.problems.crashed(key, digest, crash)
        return _Loaded(key, digest, None, crash)


def _crash_of(path: str, exc: Exception) -> KnownCrash:
    error = type(exc).__name__
    if isinstance(exc, _TOO_LARGE_ERRORS):
        message = (
            f"the file could not be loaded ({error}): it is nested too deeply or holds a value "
            f"too large; simplify it, then check it with: goodwill validate {path}"
        )
        return KnownCrash("too_large", error, message)
    detail = str(exc).replace("\n", " ")[:200]
    message = (
        f"loading the file failed unexpectedly ({error}: {detail}); the other users are not "
        f"affected; check it with: goodwill validate {path}, and report it if it persists"
    )
    return KnownCrash("crashed", error, message)


def _reason_of(pf: PolicyFile) -> str:
    if not pf.content_hash:  # PolicyBook could not read the file at all
        return "unreadable"
    text = " ".join(i.message for i in pf.issues)
    return "too_large" if any(name in text for name in _SIZE_LIMIT_SETTINGS) else "invalid"


def count_policy_error(p: Pipeline, reason: str) -> None:
    if p.metrics is not None:
        p.metrics.policy_error(reason)


def report_policy_problem(
    p: Pipeline,
    path: str,
    digest: str,
    reason: str,
    message: str,
    user_id: int | None,
    now: datetime,
    *,
    consequence: str,
) -> None:
    """Count every time; log and audit once per change of the file (path + content hash)."""
    count_policy_error(p, reason)
    if not p.problems.first(path, digest, reason):
        return
    hint = "" if "goodwill validate" in message else f"; check it with: goodwill validate {path}"
    log.warning(
        "policy file %s is not usable [%s]: %s (%s)%s", path, reason, consequence, message, hint
    )
    p.store.record_event(
        now=now,
        actor="planner",
        user_id=user_id,
        detail=f"policy file {path} not usable [{reason}]: {consequence}: {message}"[:1000],
    )


def _register_file(
    p: Pipeline, path: Path, scan: _Scan, issues: list[PolicyIssue], now: datetime
) -> None:
    loaded = load_isolated(p, path)
    scan.listed.add(loaded.path)
    pf = loaded.file
    if pf is None:
        assert loaded.crash is not None
        scan.unowned.add(loaded.path)
        issue = PolicyIssue(loaded.path, 1, "", loaded.crash.message)
        issues.append(issue)
        user = scan.user_at(loaded.path)
        report_policy_problem(
            p, loaded.path, loaded.digest, loaded.crash.reason, str(issue),
            user.id if user else None, now, consequence="its owner is not planned",
        )  # fmt: skip
        if user is not None:
            p.store.record_policy_error(user.id, str(issue))
        return
    issues.extend(pf.issues)
    message = "; ".join(str(i) for i in pf.issues[:5]) if pf.issues else None
    if pf.policy is None:
        scan.unowned.add(pf.path)
        user = scan.user_at(pf.path)
        report_policy_problem(
            p, pf.path, pf.content_hash, _reason_of(pf), message or "unreadable",
            user.id if user else None, now,
            consequence="it has no good version, its owner is not planned",
        )  # fmt: skip
        if user is not None:
            p.store.record_policy_error(user.id, message)
        return
    scan.owners.add(pf.policy.owner.email.strip().lower())
    before = scan.user_by_email(pf.policy.owner.email)
    user_id = p.store.upsert_user(pf.policy.owner.email, pf.path, pf.content_hash, now=now)
    if message is not None:
        report_policy_problem(
            p, pf.path, pf.content_hash, _reason_of(pf), message, user_id, now,
            consequence="using its last good version",
        )  # fmt: skip
    elif p.problems.resolved(pf.path):
        log.info("policy file %s loads again", pf.path)
    if message is None and before is not None and _keeps_plan_crash(before, pf):
        return  # the same content crashed its last planning round: keep saying so
    p.store.record_policy_error(user_id, message)


def _keeps_plan_crash(user: User, pf: PolicyFile) -> bool:
    error = user.policy_error or ""
    return error.startswith(PLAN_CRASHED) and user.policy_hash == pf.content_hash


def _register_failed(
    p: Pipeline, path: str, scan: _Scan, exc: Exception, issues: list[PolicyIssue], now: datetime
) -> None:
    """Registering one file failed after it loaded (e.g. the database refused a value)."""
    scan.listed.add(path)
    scan.unowned.add(path)
    crash = _crash_of(path, exc)
    issue = PolicyIssue(path, 1, "", crash.message)
    issues.append(issue)
    user = scan.user_at(path)
    log.debug("registering %s failed", path, exc_info=exc)
    report_policy_problem(
        p, path, _digest(path), "crashed", str(issue), user.id if user else None, now,
        consequence="its owner is not registered or updated",
    )  # fmt: skip
    if user is not None:
        p.store.record_policy_error(user.id, str(issue))


def _follow_removals(p: Pipeline, scan: _Scan, now: datetime) -> None:
    """Mark users whose file is gone; clear the mark of those whose file came back."""
    for user in scan.users:
        try:
            present = scan.present(user)
            if not present and user.policy_missing_since is None:
                _mark_removed(p, user, now)
            elif present and user.policy_missing_since is not None:
                _mark_back(p, user, now)
        except Exception:  # one user's bookkeeping never stops the others'
            log.exception("user %s: following the policy file's removal failed", user.id)


def _mark_removed(p: Pipeline, user: User, now: datetime) -> None:
    since = p.store.mark_policy_missing(user.id, now=now) or now
    cancel_at = f"{since + p.policy_removed_grace:%Y-%m-%d %H:%M} UTC"
    log.warning(
        "policy file %s is gone: user %s is no longer planned; their open future meetings are "
        "cancelled at %s unless the file comes back (GOODWILL_POLICY_REMOVED_GRACE_S)",
        user.policy_path, user.id, cancel_at,
    )  # fmt: skip
    p.store.record_event(
        now=now, actor="planner", user_id=user.id,
        detail=f"policy file {user.policy_path} removed: planning stopped; open future meetings "
        f"are cancelled at {cancel_at} unless it comes back",
    )  # fmt: skip


def _mark_back(p: Pipeline, user: User, now: datetime) -> None:
    assert user.policy_missing_since is not None
    if not p.store.clear_policy_missing(user.id, now=now):
        return
    in_time = now < user.policy_missing_since + p.policy_removed_grace
    log.warning("policy file of user %s is back: planning resumes", user.id)
    p.store.record_event(
        now=now, actor="planner", user_id=user.id,
        detail="policy file is back: planning resumes"
        + (", nothing was cancelled" if in_time else ""),
    )  # fmt: skip


# -- a removed policy file ----------------------------------------------------------------------

#: Meetings whose event is on the provider's calendar.
_AT_PROVIDER = frozenset({_S.BOOKED, _S.ACCEPTED, _S.TENTATIVE})


def cancel_removed_owner_meetings(p: Pipeline, user: User, now: datetime) -> int:
    """Cancel the open future meetings of an owner whose policy file was removed.

    Proposed and approved meetings are cancelled; booked, accepted and tentative ones are first
    cancelled at the provider through the owner's writer (``cancel_event`` with the meeting's
    event id, or ``cancel_by_key`` when a create was attempted but its id never came back), so
    the stakeholder gets the provider's cancellation. Each meeting ends with detail
    ``owner removed``. The writer is built from the last good policy this process holds, else
    (a fresh process) from the owner's e-mail and the provider stored on the meeting.

    Returns:
        How many are left for a later round: being booked right now, or the provider failed.
    """
    left = 0
    for m in p.store.open_meetings(user.id):
        if m.start <= now:
            continue  # already under way (or past): it completes, or is followed as usual
        if m.state == _S.BOOKING and m.lease_until is not None and m.lease_until > now:
            left += 1  # a worker holds it; it lands in booked or approved, then is cancelled
            continue
        try:
            at_provider = m.state in _AT_PROVIDER or m.create_attempted_at is not None
            if at_provider and not _cancel_at_provider(p, user, m, now):
                left += 1
                continue
            if not p.store.transition(
                m.id, _S.CANCELLED, actor="planner", now=now, expect=m.state,
                detail=OWNER_REMOVED,
            ):  # fmt: skip
                left += 1  # it changed meanwhile: the next round looks again
        except Exception:  # one meeting never stops the others
            log.exception("meeting %s: cancelling for a removed owner failed", m.id)
            left += 1
    return left


def _owner_policy(p: Pipeline, user: User, provider: str) -> Policy:
    """The last good policy held in memory, else a stand-in with what the writer needs."""
    try:
        policy = p.policies.load(user.policy_path).policy
    except Exception:  # the path now holds something the loader cannot take
        policy = None
    if policy is not None and policy.calendar.provider == provider:
        return policy
    name = user.email.split("@", 1)[0]
    return Policy.model_validate(
        {
            "owner": {"email": user.email, "name": name, "timezone": "UTC"},
            "calendar": {"provider": provider},
        }
    )


def _cancel_at_provider(p: Pipeline, user: User, m: Meeting, now: datetime) -> bool:
    """Take the meeting's event back at the provider. False: try again in a later round."""
    try:
        policy = _owner_policy(p, user, m.provider)
        backend = p.backends(policy)
    except (ConfigurationError, ValueError) as exc:
        p.store.record_event(
            now=now, actor="planner", user_id=user.id, meeting_id=m.id,
            detail=f"{OWNER_REMOVED}: cannot reach the calendar to cancel: {exc}"[:1000],
        )  # fmt: skip
        return False
    writer = backend.writer
    if writer is None:
        return True  # a read-only calendar holds no event of ours
    organizer = policy.owner.person
    try:
        if m.provider_event_id:
            with p.provider_call(backend.provider, "cancel_event"):
                writer.cancel_event(organizer, m.provider_event_id)
        else:
            with p.provider_call(backend.provider, "cancel_by_key"):
                writer.cancel_by_key(organizer, m.idempotency_key)
    except AuthorizationRevoked as exc:
        revoke(p, user.email, backend.provider, str(exc), now)
        p.store.record_event(
            now=now, actor="planner", user_id=user.id, meeting_id=m.id,
            detail=f"{OWNER_REMOVED}: credential revoked, the event is cancelled once the "
            "calendar is reconnected",
        )  # fmt: skip
        return False
    except ResourceGone:
        pass  # already gone at the provider: done
    except ConnectorError as exc:
        if exc.transient:
            return False
        p.store.record_event(
            now=now, actor="planner", user_id=user.id, meeting_id=m.id,
            detail=f"{OWNER_REMOVED}: the provider refused the cancel ({type(exc).__name__}); "
            "the event may still be on the calendars: remove it by hand",
        )  # fmt: skip
    return True
