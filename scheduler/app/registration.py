"""Policy registration: scan the policy directory, register new and edited owners, report bad
files (each in isolation), follow removed files.

**By change.** A round lists the directory (one ``stat`` per file) and compares it with what the
last round saw (:class:`~scheduler.app.policy_scan.PolicyScan`, kept on the pipeline): only a
file whose stat changed is read and hashed, only one whose hash changed is loaded, and only the
users of those files (or of files that went away) are read and written, the upserts in batches
of :data:`REGISTER_BATCH` per transaction. A round in which nothing changed parses nothing and
makes no store call; a bad file that stays as it is is still counted every round (and its issues
returned), logged once per change. The first round of a process, and every
``PolicyScan.full_every``-th, also compares every registered user with the files.

The planning round (:mod:`scheduler.app.planning`) reads each owner's file through
:func:`load_isolated` and reports problems the same way; ``planning`` re-exports
:func:`register_policies`, :func:`cancel_removed_owner_meetings` and :data:`OWNER_REMOVED`
(which live in :mod:`scheduler.app.owner_removal`).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path

from scheduler.app.digest import schedule_digest
from scheduler.app.owner_removal import (
    AT_PROVIDER,
    OWNER_REMOVED,
    cancel_at_provider,
    cancel_removed_owner_meetings,
)
from scheduler.app.pipeline import Pipeline
from scheduler.app.policies import PolicyFile
from scheduler.app.policy_scan import FileStat, PolicyScan, Seen
from scheduler.app.ports import UserRegistration
from scheduler.app.problems import KnownCrash
from scheduler.app.records import User
from scheduler.core.errors import PolicyIssue

__all__ = [
    "AT_PROVIDER",
    "OWNER_REMOVED",
    "PLAN_CRASHED",
    "REGISTER_BATCH",
    "cancel_at_provider",
    "cancel_removed_owner_meetings",
    "count_policy_error",
    "load_isolated",
    "register_policies",
    "report_policy_problem",
]

log = logging.getLogger("goodwill.booking")

#: Policy files registered per store transaction.
REGISTER_BATCH = 200


def register_policies(p: Pipeline) -> list[PolicyIssue]:
    """Register new users, bring edited ones forward, report bad files, follow removed ones.

    Each file is handled on its own: *any* exception while loading or registering one (a file
    that crashes the loader, a value the database refuses) is recorded for that file's user,
    counted in ``goodwill_policy_errors_total`` and logged once per change of the file, and the
    other files are registered as usual. A registered user whose file is gone is marked
    (``policy_missing_since``): they are no longer planned, and their open future meetings are
    cancelled once :attr:`Pipeline.policy_removed_grace` has passed unless the file comes back.
    Only what changed since the last round is read, parsed and written (see the module).

    Returns every issue found (bad files are reported, never fatal for the other users).
    """
    now = p.clock.now()
    full = p.scan.begin(p.store, p.policies)
    directory = p.policies.directory
    if directory is None:
        return []
    try:
        listing, look = p.scan.next_listing(directory, full)
    except (FileNotFoundError, NotADirectoryError):  # a missing mount is not "all removed"
        _directory_problem(p, f"the policy directory {directory} does not exist", "missing")
        return []
    except OSError as exc:  # the directory cannot be listed: nobody counts as removed
        reason = exc.strerror or type(exc).__name__
        what = f"cannot list the policy directory {directory} ({reason})"
        _directory_problem(p, what, "unreadable")
        return []
    registering = _Round(p, p.scan, now, full)
    registering.run(listing, look)
    p.scan.settled()
    return registering.issues


def _directory_problem(p: Pipeline, what: str, key: str) -> None:
    """The directory cannot be read: an error once users depend on it (a fresh install has
    none yet, and says so at start-up). The memory of the files stays as it was."""
    if not p.store.all_users():
        return
    count_policy_error(p, "unreadable")
    if p.problems.first(str(p.policies.directory), "", key):
        log.error(
            "%s: no policy file is read and no user is treated as removed until it can be; "
            "check GOODWILL_POLICY_DIR, the mount and its permissions",
            what,
        )


@dataclass
class _Round:
    """One registration round: what changed, the users it concerns, what was written."""

    p: Pipeline
    scan: PolicyScan
    now: datetime
    full: bool
    issues: list[PolicyIssue] = field(default_factory=list)
    #: Paths read this round (changed or gone) and the owners they held before.
    paths: set[str] = field(default_factory=set)
    owners: set[str] = field(default_factory=set)
    by_email: dict[str, User] = field(default_factory=dict)
    at_path: dict[str, User] = field(default_factory=dict)
    users: list[User] = field(default_factory=list)

    def run(self, listing: dict[str, FileStat], look: set[str] | None = None) -> None:
        """``look``: the only paths that may have changed (a watched directory); None: any."""
        changed = self._changed(listing, look)
        # Not every parsed policy at once (10,000 new files: ~46 KiB each, the heap kept that
        # high-water mark): whose files they are first, then loaded again batch by batch.
        loaded = [self._load(path, st) for path, st in changed[:REGISTER_BATCH]]
        emails = {_owner_of(item[2]) for item in loaded}
        emails |= {_owner_of(self._load(path, st)[2]) for path, st in changed[REGISTER_BATCH:]}
        candidates = self.scan.seen if look is None else [p for p in look if p in self.scan.seen]
        for path in [path for path in candidates if path not in listing]:
            gone = self.scan.seen.pop(path)
            self.paths.add(path)
            if gone.owner is not None:
                self.owners.add(gone.owner)
        if not self.full and not self.paths:
            return  # nothing changed: no store call at all
        self._read_users(self.owners | {e for e in emails if e is not None})
        for start in range(0, len(changed), REGISTER_BATCH):
            batch = loaded if start == 0 else [
                self._load(path, st) for path, st in changed[start : start + REGISTER_BATCH]
            ]  # fmt: skip
            ready: list[tuple[PolicyFile, FileStat | None]] = []
            for item in batch:
                try:
                    pf = self._unusable(*item)
                    if pf is not None:
                        ready.append((pf, item[1]))
                except Exception as exc:  # one file never stops the others
                    self._failed(item[0].path, exc)
            self._register(ready)
            loaded, ready = [], []  # this batch's parsed policies can go
        self._follow_removals(listing)

    # -- what changed ------------------------------------------------------------------------

    def _changed(
        self, listing: dict[str, FileStat], look: set[str] | None
    ) -> list[tuple[str, FileStat | None]]:
        """Files to load; the others' problems are counted (and returned) as they stand."""
        out: list[tuple[str, FileStat | None]] = []
        remembered = self.scan.seen
        items: Iterable[tuple[str, FileStat]] = listing.items()
        if look is not None:  # only these may have changed: the others' problems stand
            for path, standing in remembered.items():
                if path not in look and (standing.reason is not None or standing.issues):
                    self._as_before(standing)
            items = [(path, listing[path]) for path in sorted(look) if path in listing]
        for path, st in items:
            seen = remembered.get(path)
            if seen is not None and seen.stat == st:  # unchanged (the loop of a quiet round)
                if seen.reason is not None or seen.issues:
                    self._as_before(seen)
                continue
            trusted = PolicyScan.trusted(st)
            if seen is not None and seen.digest and seen.digest == _digest(path):
                self.scan.seen[path] = replace(seen, stat=trusted)  # touched, same content
                self._as_before(seen)
                continue
            self.paths.add(path)
            if seen is not None and seen.owner is not None:
                self.owners.add(seen.owner)
            out.append((path, trusted))
        return sorted(out)

    def _as_before(self, seen: Seen) -> None:
        self.issues.extend(seen.issues)
        if seen.reason is not None:
            count_policy_error(self.p, seen.reason)

    def _load(
        self, path: str, st: FileStat | None
    ) -> tuple[_Loaded, FileStat | None, PolicyFile | None]:
        loaded = load_isolated(self.p, path)
        return loaded, st, loaded.file

    def _read_users(self, emails: set[str]) -> None:
        p = self.p
        self.users = (
            p.store.all_users() if self.full else p.store.users_matching(emails, self.paths)
        )
        for user in self.users:
            self.by_email.setdefault(user.email, user)
            self.at_path.setdefault(user.policy_path, user)

    def _remember(self, path: str, seen: Seen) -> None:
        self.scan.seen[path] = seen
        self.issues.extend(seen.issues)

    # -- files with no usable policy -------------------------------------------------------

    def _unusable(
        self, loaded: _Loaded, st: FileStat | None, pf: PolicyFile | None
    ) -> PolicyFile | None:
        """Report a file with no usable policy and remember it; one with a policy is returned."""
        p, now = self.p, self.now
        if pf is None:
            assert loaded.crash is not None
            issue = PolicyIssue(loaded.path, 1, "", loaded.crash.message)
            user = self.at_path.get(loaded.path)
            report_policy_problem(
                p, loaded.path, loaded.digest, loaded.crash.reason, str(issue),
                user.id if user else None, now, consequence="its owner is not planned",
            )  # fmt: skip
            self._set_error(user, str(issue))
            seen = Seen(st, loaded.digest, None, loaded.crash.reason, (issue,))
            self._remember(loaded.path, seen)
            return None
        if pf.policy is not None:
            return pf
        message = _message(pf)
        user = self.at_path.get(pf.path)
        reason = _reason_of(pf)
        report_policy_problem(
            p, pf.path, pf.content_hash, reason, message or "unreadable",
            user.id if user else None, now,
            consequence="it has no good version, its owner is not planned",
        )  # fmt: skip
        self._set_error(user, message)
        self._remember(pf.path, Seen(st, pf.content_hash, None, reason, pf.issues))
        return None

    def _set_error(self, user: User | None, message: str | None) -> None:
        if user is not None and user.policy_error != message:
            self.p.store.record_policy_error(user.id, message)

    # -- files with a policy: registered in batches ----------------------------------------

    def _register(self, batch: list[tuple[PolicyFile, FileStat | None]]) -> None:
        prepared = [self._registration(pf) for pf, _ in batch]
        todo = [reg for reg, write, _ in prepared if write]
        ids: list[int | None] = []
        try:
            written = iter(self.p.store.register_users(todo, now=self.now) if todo else [])
            ids = [next(written) if w else (b.id if b else None) for _, w, b in prepared]
        except Exception:  # a value the database refuses fails the batch: find it, one by one
            log.debug("registering a batch of policy files failed; one at a time", exc_info=True)
            pairs = zip(batch, prepared, strict=True)
            ids = [self._register_one(pf, *item) for (pf, _), item in pairs]
        for (pf, st), (_, _, before), user_id in zip(batch, prepared, ids, strict=True):
            if user_id is None:
                continue
            try:
                self._registered(pf, st, before, user_id)
            except Exception as exc:  # one file never stops the others
                self._failed(pf.path, exc)

    def _registration(self, pf: PolicyFile) -> tuple[UserRegistration, bool, User | None]:
        """What to write for one file, whether anything differs, and the user before."""
        policy = pf.policy
        assert policy is not None
        email = policy.owner.email.strip().lower()
        before = self.by_email.get(email)
        error = _message(pf)
        if error is None and before is not None and _keeps_plan_crash(before, pf):
            error = before.policy_error  # the same content crashed its last planning round
        reg = UserRegistration(email, pf.path, pf.content_hash, error)
        same = before is not None and (
            before.policy_path,
            before.policy_hash,
            before.policy_error,
        ) == (pf.path, pf.content_hash, error)
        return reg, not same, before

    def _register_one(
        self, pf: PolicyFile, reg: UserRegistration, write: bool, before: User | None
    ) -> int | None:
        if not write:
            return before.id if before is not None else None
        try:
            (user_id,) = self.p.store.register_users([reg], now=self.now)
        except Exception as exc:
            self._failed(pf.path, exc)
            return None
        return user_id

    def _registered(
        self, pf: PolicyFile, st: FileStat | None, before: User | None, user_id: int
    ) -> None:
        p, now, policy = self.p, self.now, pf.policy
        assert policy is not None
        schedule_digest(p, user_id, before.next_digest_at if before else None, policy, now)
        message = _message(pf)
        reason = None if message is None else _reason_of(pf)
        if message is not None:
            assert reason is not None
            report_policy_problem(
                p, pf.path, pf.content_hash, reason, message, user_id, now,
                consequence="using its last good version",
            )  # fmt: skip
        elif p.problems.resolved(pf.path):
            log.info("policy file %s loads again", pf.path)
        owner = policy.owner.email.strip().lower()
        self._remember(pf.path, Seen(st, pf.content_hash, owner, reason, pf.issues))

    def _failed(self, path: str, exc: Exception) -> None:
        """Registering one file failed after it loaded (e.g. the database refused a value):
        it is tried again next round, and its user (if any) stays."""
        p, now = self.p, self.now
        crash = _crash_of(path, exc)
        issue = PolicyIssue(path, 1, "", crash.message)
        user = self.at_path.get(path)
        log.debug("registering %s failed", path, exc_info=exc)
        report_policy_problem(
            p, path, _digest(path), "crashed", str(issue), user.id if user else None, now,
            consequence="its owner is not registered or updated",
        )  # fmt: skip
        if user is not None:
            p.store.record_policy_error(user.id, str(issue))
        self._remember(path, Seen(None, "", None, "crashed", (issue,)))

    # -- removed files -----------------------------------------------------------------------

    def _follow_removals(self, listing: dict[str, FileStat]) -> None:
        """Mark users whose file is gone; clear the mark of those whose file came back. Looks
        at the users of what changed (every user on a full round)."""
        owners, unowned = self.scan.owners(), self.scan.unowned()
        for user in self.users:
            try:
                present = (
                    user.email in owners
                    or user.policy_path in unowned
                    # A file outside the directory (written by a process with another working
                    # directory or GOODWILL_POLICY_DIR) still counts while it exists.
                    or (user.policy_path not in listing and Path(user.policy_path).exists())
                )
                if not present and user.policy_missing_since is None:
                    _mark_removed(self.p, user, self.now)
                elif present and user.policy_missing_since is not None:
                    _mark_back(self.p, user, self.now)
            except Exception:  # one user's bookkeeping never stops the others'
                log.exception("user %s: following the policy file's removal failed", user.id)


def _owner_of(pf: PolicyFile | None) -> str | None:
    """The lower-cased owner e-mail of a loaded file's policy (None: no usable policy)."""
    return None if pf is None or pf.policy is None else pf.policy.owner.email.strip().lower()


def _message(pf: PolicyFile) -> str | None:
    return "; ".join(str(i) for i in pf.issues[:5]) if pf.issues else None


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


def _keeps_plan_crash(user: User, pf: PolicyFile) -> bool:
    error = user.policy_error or ""
    return error.startswith(PLAN_CRASHED) and user.policy_hash == pf.content_hash


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
