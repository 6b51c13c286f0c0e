"""Policy files as the pipeline sees them: read, validated, hashed, and the last good version kept.

:func:`load_policy` reads one file and raises :class:`~scheduler.core.errors.PolicyError` carrying
*every* problem found; :func:`validate_policy_files` checks many and returns the issues. Parsing
and validation are pure and live in :mod:`scheduler.core.policy`; this module does the reading.

A file that stops validating is reported (with every issue) and the last version that loaded
keeps being used, so a typo never stops a user's meetings; one bad file never stops the others.

Policy files are untrusted input: at most ``max_bytes + 1`` bytes of a file are read, the
:class:`~scheduler.core.policy.limits.PolicyLimits` (built from ``GOODWILL_LIMITS__POLICY_*`` by
:func:`policy_limits`) bound the rest, and loading one file never raises anything but
:class:`~scheduler.core.errors.PolicyError`: an unexpected exception becomes an issue too.
"""

from __future__ import annotations

import hashlib
import pickle
import threading
import zlib
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from scheduler.core.errors import PolicyError, PolicyIssue
from scheduler.core.policy import (
    DocPath,
    LineIndex,
    LoadResult,
    Policy,
    PolicyFormat,
    line_index,
    validate_policy_text,
)
from scheduler.core.policy.limits import PolicyLimits
from scheduler.limits import Limits

__all__ = [
    "POLICY_SUFFIXES",
    "PolicyBook",
    "PolicyFile",
    "PolicyLimits",
    "check_policy_files",
    "load_policy",
    "policy_limits",
    "validate_policy_files",
]

POLICY_SUFFIXES = (".yaml", ".yml", ".toml")


def _format_of(path: Path) -> PolicyFormat | None:
    suffix = path.suffix.lower()
    return "yaml" if suffix in (".yaml", ".yml") else "toml" if suffix == ".toml" else None


def policy_limits(limits: Limits) -> PolicyLimits:
    """The core's :class:`PolicyLimits` from the ``GOODWILL_LIMITS__POLICY_*`` settings."""
    return PolicyLimits(
        max_bytes=limits.policy_max_bytes,
        max_depth=limits.policy_max_depth,
        max_values=limits.policy_max_values,
        max_stakeholders=limits.policy_max_stakeholders,
        max_string=limits.policy_max_string,
        min_every=timedelta(days=limits.policy_min_every_days),
        max_every=timedelta(days=limits.policy_max_every_days),
        max_horizon=timedelta(days=limits.policy_max_horizon_days),
    )


_DEFAULT_LIMITS = PolicyLimits()


def _read(path: Path, limits: PolicyLimits) -> bytes:
    """At most ``max_bytes + 1`` bytes: enough to tell a file is too big, never more."""
    with path.open("rb") as handle:
        return handle.read(limits.max_bytes + 1)


def _crashed(source: str, exc: Exception) -> PolicyIssue:
    message = (
        f"the file could not be read: {type(exc).__name__}; check it with goodwill validate "
        f"and report this if it persists"
    )
    return PolicyIssue(source, 1, "", message)


#: Loaded policies (and refusals) kept per process, by content: see :class:`_Loaded`.
LOADED_CACHE_SIZE = 1024
#: Policies that leave those are kept packed (pickled and compressed: ~2 KiB against ~46 KiB
#: parsed, for a policy of 20 stakeholders), up to this many bytes, so that a process seeing
#: more owners than :data:`LOADED_CACHE_SIZE` (a worker at N = 10,000) unpacks one in ~0.2 ms
#: instead of parsing its file again (~3 ms). Only this process's own objects are unpickled.
#: A parsed entry that was unpacked keeps its packed copy beside it, outside this bound (at most
#: :data:`LOADED_CACHE_SIZE` copies, ~2 MiB).
PACKED_CACHE_BYTES = 64 * 2**20


class _LinesOf:
    """A policy text's line index, computed on the first look-up."""

    def __init__(self, raw: bytes, fmt: PolicyFormat, limits: PolicyLimits) -> None:
        self._raw: bytes | None = raw
        self._fmt: PolicyFormat = fmt
        self._limits = limits
        self._index: LineIndex | None = None

    def line_of(self, path: DocPath) -> int:
        if self._index is None:
            assert self._raw is not None
            text = self._raw.decode("utf-8-sig", "replace")
            self._index = line_index(text, self._fmt, self._limits)
            self._raw = None
        return self._index.line_of(path)


_Kept = tuple["Policy | None", list[PolicyIssue]]


class _Loaded:
    """What loading gave, by the SHA-256 of the bytes (with the file's name, format and limits):
    a file read again unchanged, by any :class:`PolicyBook` or :func:`load_policy` of this
    process, is not parsed again. At most :data:`LOADED_CACHE_SIZE` entries, least recently
    used out; safe across threads."""

    def __init__(self, size: int, packed_bytes: int = PACKED_CACHE_BYTES) -> None:
        self.size = size
        self.packed_bytes = packed_bytes
        self._packed_total = 0
        self.hits = 0
        self.misses = 0
        self._items: OrderedDict[tuple[object, ...], tuple[Policy | None, list[PolicyIssue]]]
        self._items = OrderedDict()
        self._packed: OrderedDict[tuple[object, ...], bytes] = OrderedDict()
        #: The packed copy a parsed entry was unpacked from: it is packed again as it was when
        #: it leaves (a cached policy is never changed), not pickled and compressed anew.
        self._unpacked_from: dict[tuple[object, ...], bytes] = {}
        #: Entries packed (pickled and compressed): the work the copies above save.
        self.packs = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def load(self, source: str, raw: bytes, fmt: PolicyFormat, limits: PolicyLimits) -> LoadResult:
        key = (hashlib.sha256(raw).hexdigest(), source, fmt, limits)
        found = self._get(key)
        if found is not None:
            return LoadResult(found[0], list(found[1]), _LinesOf(raw, fmt, limits))
        try:
            loaded = _parse_bytes(source, raw, fmt, limits)
        except Exception as exc:  # defense in depth: the core should only ever return issues
            return LoadResult(None, [_crashed(source, exc)])  # not kept: it may not recur
        evicted = self._keep(key, (loaded.policy, list(loaded.issues)))
        self._pack(evicted)
        return loaded

    def _get(self, key: tuple[object, ...]) -> _Kept | None:
        """What loading gave, from the parsed entries, else unpacked from the packed ones."""
        with self._lock:
            found = self._items.get(key)
            if found is not None:
                self._items.move_to_end(key)
                self.hits += 1
                return found
            packed = self._packed.pop(key, None)
            if packed is None:
                self.misses += 1
                return None
            self._packed_total -= len(packed)
            self.hits += 1
        kept: _Kept = pickle.loads(zlib.decompress(packed))
        self._pack(self._keep(key, kept, packed))
        return kept

    def _keep(
        self, key: tuple[object, ...], kept: _Kept, packed: bytes | None = None
    ) -> list[tuple[tuple[object, ...], _Kept, bytes | None]]:
        """Keep ``kept`` parsed (``packed``: the copy it was unpacked from); returns the
        entries that left the parsed ones, each with its packed copy when it has one."""
        evicted = []
        with self._lock:
            self._items[key] = kept
            self._items.move_to_end(key)
            if packed is not None:
                self._unpacked_from[key] = packed
            while len(self._items) > self.size:
                old, left = self._items.popitem(last=False)
                evicted.append((old, left, self._unpacked_from.pop(old, None)))
        return evicted

    def _pack(self, evicted: list[tuple[tuple[object, ...], _Kept, bytes | None]]) -> None:
        """Keep what left the parsed entries packed, within :attr:`packed_bytes`."""
        for key, kept, was in evicted:
            packed = was
            if packed is None:
                try:
                    packed = zlib.compress(pickle.dumps(kept, protocol=pickle.HIGHEST_PROTOCOL), 1)
                except Exception:  # not packable: parsed again when asked
                    continue
            with self._lock:
                if was is None:
                    self.packs += 1
                old = self._packed.pop(key, None)
                self._packed_total += len(packed) - (len(old) if old is not None else 0)
                self._packed[key] = packed
                while self._packed and self._packed_total > self.packed_bytes:
                    _, dropped = self._packed.popitem(last=False)
                    self._packed_total -= len(dropped)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._packed.clear()
            self._unpacked_from.clear()
            self._packed_total = 0


#: The process's cache of loaded policies.
LOADED = _Loaded(LOADED_CACHE_SIZE)


def _load_bytes(source: str, raw: bytes, fmt: PolicyFormat, limits: PolicyLimits) -> LoadResult:
    """Validate a file's bytes, through the process's cache by content (:data:`LOADED`)."""
    return LOADED.load(source, raw, fmt, limits)


def _parse_bytes(source: str, raw: bytes, fmt: PolicyFormat, limits: PolicyLimits) -> LoadResult:
    if len(raw) > limits.max_bytes:
        return LoadResult(None, [PolicyIssue(source, 1, "", limits.too_big(len(raw)))])
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        message = "the file is not UTF-8 text; save it as UTF-8"
        return LoadResult(None, [PolicyIssue(source, line, "", message)])
    return validate_policy_text(text, source, fmt, hashlib.sha256(raw).hexdigest(), limits)


def _load_file(path: Path, limits: PolicyLimits) -> LoadResult:
    source = str(path)
    fmt = _format_of(path)
    if fmt is None:
        message = f"unsupported file type '{path.suffix}'; name the file *.yaml, *.yml or *.toml"
        return LoadResult(None, [PolicyIssue(source, 1, "", message)])
    try:
        raw = _read(path, limits)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        message = f"cannot read the file ({reason}); check the path and its permissions"
        return LoadResult(None, [PolicyIssue(source, 1, "", message)])
    return _load_bytes(source, raw, fmt, limits)


def load_policy(path: Path, limits: PolicyLimits | None = None) -> Policy:
    """Read and validate one policy file (``.yaml``, ``.yml`` or ``.toml``).

    ``limits`` default to the documented :class:`PolicyLimits`.

    Raises:
        PolicyError: listing every problem found, each with file, line, field and a fix.
    """
    loaded = _load_file(Path(path), limits or _DEFAULT_LIMITS)
    if loaded.policy is None:
        raise PolicyError(loaded.issues)
    return loaded.policy


def check_policy_files(
    paths: Iterable[Path], limits: PolicyLimits | None = None
) -> tuple[int, list[PolicyIssue]]:
    """Like :func:`validate_policy_files`, and also how many files were checked.

    A directory that cannot be listed is an issue of its own (and counts as one file).
    """
    limits = limits or _DEFAULT_LIMITS
    files: list[Path] = []
    issues: list[PolicyIssue] = []
    for path in map(Path, paths):
        try:
            if path.is_dir():
                files += sorted(p for p in path.iterdir() if _format_of(p) is not None)
                continue
        except OSError as exc:
            reason = exc.strerror or str(exc)
            message = f"cannot read the directory ({reason}); check the path and its permissions"
            issues.append(PolicyIssue(str(path), 1, "", message))
            files.append(path)  # counted, but not read as a file
            continue
        files.append(path)
    unreadable = {i.file for i in issues}
    owners: dict[str, str] = {}
    for path in files:
        if str(path) in unreadable:
            continue
        loaded = _load_file(path, limits)
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
    return len(files), issues


def validate_policy_files(
    paths: Iterable[Path], limits: PolicyLimits | None = None
) -> list[PolicyIssue]:
    """Check policy files (a directory stands for its ``*.yaml``/``*.yml``/``*.toml``).

    Never raises for bad input: unreadable files are issues too. Besides each file's own issues
    it reports an owner who has more than one policy file.
    """
    return check_policy_files(paths, limits)[1]


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

    def __init__(self, directory: Path | None = None, limits: PolicyLimits | None = None) -> None:
        self.directory = directory
        self.limits = limits or _DEFAULT_LIMITS
        #: The last good version of each path, as its bytes: parsed again (through the process's
        #: cache by content, :data:`LOADED`) when asked for. A parsed policy is ~10x its file, and
        #: a tick or a worker sees every owner's: kept parsed, they made its memory grow with N.
        self._good: dict[str, tuple[bytes, PolicyFormat]] = {}
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
        """Read ``path`` now; on failure fall back to the last good version of the same path.

        Never raises: whatever goes wrong with this one file is an issue of this file.
        """
        key = str(path)
        try:
            return self._load(key, Path(path))
        except Exception as exc:  # defense in depth: one file never stops the caller
            return PolicyFile(key, "", self._last_good(key), (_crashed(key, exc),))

    def _load(self, key: str, path: Path) -> PolicyFile:
        try:
            data = _read(path, self.limits)
        except OSError as exc:
            issue = PolicyIssue(key, 1, "", f"cannot read the file: {exc.strerror or exc}")
            return PolicyFile(key, "", self._last_good(key), (issue,))
        digest = hashlib.sha256(data).hexdigest()
        if self._hash.get(key) == digest:
            return PolicyFile(key, digest, self._last_good(key), self._issues.get(key, ()))
        fmt = _format_of(path)
        if fmt is None:
            loaded = _load_file(path, self.limits)  # the "unsupported file type" issue
        else:
            loaded = _load_bytes(key, data, fmt, self.limits)
        policy = loaded.policy
        if policy is None:
            issues = tuple(loaded.issues)
            self._hash[key] = digest
            self._issues[key] = issues
            return PolicyFile(key, digest, self._last_good(key), issues)
        if fmt is not None:
            self._good[key] = (data, fmt)
        self._hash[key] = digest
        self._issues[key] = ()
        return PolicyFile(key, digest, policy, ())

    def _last_good(self, key: str) -> Policy | None:
        kept = self._good.get(key)
        if kept is None:
            return None
        return _load_bytes(key, kept[0], kept[1], self.limits).policy

    def scan(self) -> list[PolicyFile]:
        """Load every file in the directory."""
        return [self.load(p) for p in self.files()]
