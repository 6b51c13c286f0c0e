"""The policy directory as the pipeline sees it: loaded, hashed, and the last good version kept.

A file that stops validating is reported (with every issue) and the last version that loaded
keeps being used, so a typo never stops a user's meetings; one bad file never stops the others.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from scheduler.core.errors import PolicyError, PolicyIssue
from scheduler.core.policy import Policy, load_policy

__all__ = ["POLICY_SUFFIXES", "PolicyBook", "PolicyFile"]

POLICY_SUFFIXES = (".yaml", ".yml", ".toml")


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
