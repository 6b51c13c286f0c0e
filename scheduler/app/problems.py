"""What one process remembers about policy files that could not be used.

A bad file is seen on every tick; it is logged, audited and counted once per *change* of the
file (its path and content hash), not once per tick. A file whose loading crashed (an exception
other than a :class:`~scheduler.core.errors.PolicyError`) is not parsed again until its content
changes, so one pathological file cannot cost every round its parsing time.

The memory is per process and lost on restart: a restarted process reports each bad file once
more, which is what an operator reading its log wants.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

__all__ = ["POLICY_ERROR_REASONS", "KnownCrash", "PolicyProblems"]

#: The ``reason`` label of ``goodwill_policy_errors_total``: why a policy file (or one user's
#: round) could not be used. A closed vocabulary: ``invalid`` (the file has errors),
#: ``unreadable`` (it or its directory cannot be read), ``too_large`` (over a loader limit, or
#: nested or sized beyond what the loader can take), ``crashed`` (anything unexpected).
POLICY_ERROR_REASONS = ("invalid", "unreadable", "too_large", "crashed")


@dataclass(frozen=True, slots=True)
class KnownCrash:
    """Loading this content of this file raised ``error`` (an exception class name)."""

    reason: str
    error: str
    message: str


class PolicyProblems:
    """Thread-safe: the tick and the worker threads of one process share it."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[str, set[tuple[str, str]]] = {}
        self._crashes: dict[str, tuple[str, KnownCrash]] = {}

    def first(self, path: str, digest: str, reason: str) -> bool:
        """True the first time this problem (file, content, reason) is seen by this process."""
        with self._lock:
            seen = self._seen.setdefault(path, set())
            if (digest, reason) in seen:
                return False
            seen.add((digest, reason))
            return True

    def resolved(self, path: str) -> bool:
        """The file loads again: forget its problems. True when there were any."""
        with self._lock:
            had = bool(self._seen.pop(path, None))
            return self._crashes.pop(path, None) is not None or had

    def crashed(self, path: str, digest: str, crash: KnownCrash) -> None:
        """Remember that loading this content crashed (until the content changes)."""
        with self._lock:
            self._crashes[path] = (digest, crash)

    def known_crash(self, path: str, digest: str) -> KnownCrash | None:
        """The crash this exact content caused before, or None."""
        with self._lock:
            found = self._crashes.get(path)
            return found[1] if found is not None and found[0] == digest else None
