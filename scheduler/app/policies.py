"""Policy files as the pipeline sees them: read, validated, hashed, and the last good version kept.

:func:`load_policy` reads one file and raises :class:`~scheduler.core.errors.PolicyError` carrying
*every* problem found; :func:`validate_policy_files` checks many and returns the issues. Parsing
and validation are pure and live in :mod:`scheduler.core.policy`; this module does the reading.

A file that stops validating is reported (with every issue) and the last version that loaded
keeps being used, so a typo never stops a user's meetings; one bad file never stops the others.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from scheduler.core.errors import PolicyError, PolicyIssue
from scheduler.core.policy import LoadResult, Policy, PolicyFormat, validate_policy_text

__all__ = [
    "POLICY_SUFFIXES",
    "PolicyBook",
    "PolicyFile",
    "load_policy",
    "validate_policy_files",
]

POLICY_SUFFIXES = (".yaml", ".yml", ".toml")


def _format_of(path: Path) -> PolicyFormat | None:
    suffix = path.suffix.lower()
    return "yaml" if suffix in (".yaml", ".yml") else "toml" if suffix == ".toml" else None


def _load_file(path: Path) -> LoadResult:
    source = str(path)
    fmt = _format_of(path)
    if fmt is None:
        message = f"unsupported file type '{path.suffix}'; name the file *.yaml, *.yml or *.toml"
        return LoadResult(None, [PolicyIssue(source, 1, "", message)])
    try:
        raw = path.read_bytes()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        message = f"cannot read the file ({reason}); check the path and its permissions"
        return LoadResult(None, [PolicyIssue(source, 1, "", message)])
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        message = "the file is not UTF-8 text; save it as UTF-8"
        return LoadResult(None, [PolicyIssue(source, line, "", message)])
    return validate_policy_text(text, source, fmt, hashlib.sha256(raw).hexdigest())


def load_policy(path: Path) -> Policy:
    """Read and validate one policy file (``.yaml``, ``.yml`` or ``.toml``).

    Raises:
        PolicyError: listing every problem found, each with file, line, field and a fix.
    """
    loaded = _load_file(Path(path))
    if loaded.policy is None:
        raise PolicyError(loaded.issues)
    return loaded.policy


def validate_policy_files(paths: Iterable[Path]) -> list[PolicyIssue]:
    """Check policy files (a directory stands for its ``*.yaml``/``*.yml``/``*.toml``).

    Never raises for bad input: unreadable files are issues too. Besides each file's own issues
    it reports an owner who has more than one policy file.
    """
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files += sorted(p for p in path.iterdir() if _format_of(p) is not None)
        else:
            files.append(path)
    issues: list[PolicyIssue] = []
    owners: dict[str, str] = {}
    for path in files:
        loaded = _load_file(path)
        issues += loaded.issues
        if loaded.policy is None:
            continue
        email = loaded.policy.owner.email
        if email in owners:
            message = f"{email} already has a policy in {owners[email]}; keep one file per owner"
            line = loaded.lines.line_of(("owner", "email"))
            issues.append(PolicyIssue(str(path), line, "owner.email", message))
        else:
            owners[email] = str(path)
    return issues


@dataclass(frozen=True, slots=True)
class PolicyFile:
    """One policy file's current state: ``policy`` is the version in force (maybe an older one)."""

    path: str
    content_hash: str
    policy: Policy | None
    issues: tuple[PolicyIssue, ...] = ()

    @property
    def stale(self) -> bool:
        """True when the file on disk is invalid and an older good version is in force."""
        return bool(self.issues) and self.policy is not None


class PolicyBook:
    """Caches policies by path and content hash; thread-safe enough for read-mostly use."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = directory
        self._good: dict[str, Policy] = {}
        self._hash: dict[str, str] = {}
        self._issues: dict[str, tuple[PolicyIssue, ...]] = {}

    def files(self) -> list[Path]:
        """Policy files in the directory, sorted (none when no directory is configured)."""
        if self.directory is None or not self.directory.is_dir():
            return []
        return sorted(
            p
            for p in self.directory.iterdir()
            if p.is_file() and p.suffix.lower() in POLICY_SUFFIXES
        )

    def load(self, path: str | Path) -> PolicyFile:
        """Read ``path`` now; on failure fall back to the last good version of the same path."""
        key = str(path)
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            issue = PolicyIssue(key, 1, "", f"cannot read the file: {exc.strerror or exc}")
            return PolicyFile(key, "", self._good.get(key), (issue,))
        digest = hashlib.sha256(data).hexdigest()
        if self._hash.get(key) == digest:
            return PolicyFile(key, digest, self._good.get(key), self._issues.get(key, ()))
        try:
            policy = load_policy(Path(path))
        except PolicyError as exc:
            issues = tuple(exc.issues)
            self._hash[key] = digest
            self._issues[key] = issues
            return PolicyFile(key, digest, self._good.get(key), issues)
        self._good[key] = policy
        self._hash[key] = digest
        self._issues[key] = ()
        return PolicyFile(key, digest, policy, ())

    def scan(self) -> list[PolicyFile]:
        """Load every file in the directory."""
        return [self.load(p) for p in self.files()]
