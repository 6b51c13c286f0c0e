"""What the last registration round saw in the policy directory, so the next one reads only changes.

Per file: its stat (size, mtime, inode, ctime), the SHA-256 of its content, whose policy it holds
and the problem it had. A round lists the directory (one ``stat`` per file), reads and hashes only
files whose stat changed, and parses only those whose hash changed; a round in which nothing
changed reads, parses and writes nothing (see :func:`scheduler.app.registration.register_policies`).

A file modified within :data:`RACY_NS` of the round that saw it is hashed again the next round:
two writes of the same size inside the file system's timestamp granularity leave the same stat
("racy" entries, as git calls them). The memory is per process and per (store, policy book): a
new one of either starts over with a full round, as does every :attr:`PolicyScan.full_every`-th
round (which also looks at every registered user once, for files outside the directory).
"""

from __future__ import annotations

import os
import stat as stat_mode
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from scheduler.core.errors import PolicyIssue

__all__ = ["RACY_NS", "ChangeFeed", "FileStat", "PolicyScan", "Seen", "list_policy_files"]

#: A file modified this recently (ns) when it was listed is hashed again in the next round.
RACY_NS = 2_000_000_000
_SUFFIXES = (".yaml", ".yml", ".toml")


#: A file's ``(size, mtime_ns, inode, ctime_ns)``: a plain tuple, cheap to build and compare.
FileStat = tuple[int, int, int, int]


@dataclass(frozen=True, slots=True)
class Seen:
    """One file as the last round left it.

    ``stat`` None: hash it again next round (modified too recently to trust the stat);
    ``digest`` empty: load it again next round whatever its hash (registering it failed).
    """

    stat: FileStat | None
    digest: str
    #: Lower-cased owner e-mail of the policy in force (maybe the last good one); None: the
    #: file holds no usable policy, so whose it is cannot be told.
    owner: str | None
    #: The problem counted every round while the file stays as it is (None: none).
    reason: str | None = None
    issues: tuple[PolicyIssue, ...] = ()


class ChangeFeed(Protocol):
    """What changed in the policy directory between two rounds (a file watcher:
    :class:`scheduler.entrypoints.policy_watch.DirectoryWatch`)."""

    def drain(self) -> set[str] | None:
        """Paths changed (created, modified, deleted, moved, their attributes) since the last
        drain, each as ``str(directory / name)`` for a file directly in the directory (the form
        of :func:`list_policy_files`' keys), any other path as it was reported; None when the
        changes cannot be told (not started, failed, events maybe lost): the round lists the
        whole directory then."""
        ...


def _stat_of(path: str) -> FileStat | None:
    """One path's stat as :func:`list_policy_files` records it; None: not a regular file now."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    if not stat_mode.S_ISREG(st.st_mode):
        return None
    return (st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)


def list_policy_files(directory: Path) -> dict[str, FileStat]:
    """The directory's policy files (``*.yaml``, ``*.yml``, ``*.toml``; symlinks followed) by
    path (as ``str(directory / name)``), with their stat: one ``stat`` call per file, in
    directory order. Raises OSError (the directory)."""
    found: dict[str, FileStat] = {}
    prefix = str(directory)
    prefix = prefix if prefix.endswith(os.sep) else prefix + os.sep
    with os.scandir(directory) as entries:
        for entry in entries:
            if not entry.name.lower().endswith(_SUFFIXES):
                continue
            try:
                st = entry.stat()
            except OSError:  # gone between listing and stat, or a dangling link
                continue
            if stat_mode.S_ISREG(st.st_mode):
                found[prefix + entry.name] = (st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)
    return found


@dataclass
class PolicyScan:
    """This process's memory of the policy directory (one per :class:`Pipeline`)."""

    #: Every this many rounds, every registered user is compared with the files (O(users)).
    full_every: int = 360
    #: With a :class:`ChangeFeed`, the directory is still listed every this many rounds (a
    #: safety net for lost events); between, a round stats only the files that changed.
    list_every: int = 30
    seen: dict[str, Seen] = field(default_factory=dict)
    rounds: int = 0
    #: The file watcher, when the process has one (the tick); None: list every round.
    feed: ChangeFeed | None = None
    #: The directory as the last round saw it (kept up to date from the feed between listings).
    listing: dict[str, FileStat] = field(default_factory=dict)
    #: ... and at least every this many seconds (a tick with a long interval).
    list_every_s: float = 300.0
    _for: tuple[int, int] | None = None
    _since_listed: int = 0
    _listed_at: float = 0.0
    #: The directory's (st_dev, st_ino) at the last listing: another one (a symbolic link
    #: retargeted, a volume mounted over it) is not what the feed watches.
    _identity: tuple[int, int] | None = None
    #: A round took changes from the feed and has not finished registering them: the next
    #: round lists the directory (a failed round must not lose what the feed said).
    _unsettled: bool = False

    def begin(self, store: object, book: object) -> bool:
        """Start a round; True when it is a full one (first, periodic, or a new store/book)."""
        key = (id(store), id(book))
        if key != self._for:
            self._for, self.seen, self.rounds = key, {}, 0
        full = self.rounds % self.full_every == 0
        self.rounds += 1
        return full

    def next_listing(
        self, directory: Path, full: bool
    ) -> tuple[dict[str, FileStat], set[str] | None]:
        """This round's view of the directory, and the paths to look at (None: every file).

        With a feed that can tell what changed, only those files (and those whose stat was too
        recent to trust) are stat'ed: O(changes). The directory is listed instead on a full
        round, every :attr:`list_every` rounds, when the feed cannot tell, and when a change is
        not a policy file directly in the directory (a ConfigMap's ``..data`` swap, an editor's
        temporary file). Raises OSError as :func:`list_policy_files` does (the directory)."""
        changes = self.feed.drain() if self.feed is not None else None
        prefix = str(directory)
        prefix = prefix if prefix.endswith(os.sep) else prefix + os.sep
        self._since_listed += 1
        unsettled, self._unsettled = self._unsettled, True  # until settled() is called
        identity = _identity(directory)  # a missing mount raises here, as a listing would
        if (
            full
            or unsettled
            or changes is None
            or self._since_listed >= self.list_every
            or time.monotonic() - self._listed_at >= self.list_every_s
            or not all(_policy_file_in(path, prefix) for path in changes)
            or identity != self._identity
        ):
            self._identity = identity
            self.listing = list_policy_files(directory)
            self._since_listed, self._listed_at = 0, time.monotonic()
            return self.listing, None
        look = changes | {path for path, seen in self.seen.items() if seen.stat is None}
        for path in look:
            now_stat = _stat_of(path)
            if now_stat is None:
                self.listing.pop(path, None)
            else:
                self.listing[path] = now_stat
        return self.listing, look

    def settled(self) -> None:
        """The round that took the last view finished: the changes it had are registered."""
        self._unsettled = False

    def changed(self, path: str, now_stat: FileStat) -> bool:
        """Whether ``path`` must be read and hashed this round."""
        seen = self.seen.get(path)
        return seen is None or seen.stat is None or seen.stat != now_stat

    @staticmethod
    def trusted(now_stat: FileStat, wall_ns: int | None = None) -> FileStat | None:
        """The stat to remember: None when the file was modified too recently to trust it."""
        wall = time.time_ns() if wall_ns is None else wall_ns
        return None if wall - now_stat[1] < RACY_NS else now_stat

    def owners(self) -> set[str]:
        return {s.owner for s in self.seen.values() if s.owner is not None}

    def unowned(self) -> set[str]:
        return {path for path, s in self.seen.items() if s.owner is None}


def _identity(directory: Path) -> tuple[int, int]:
    """The directory's (st_dev, st_ino). Raises OSError (FileNotFoundError: missing)."""
    st = os.stat(directory)
    return (st.st_dev, st.st_ino)


def _policy_file_in(path: str, prefix: str) -> bool:
    """Whether ``path`` names a policy file directly in the directory ``prefix`` (ends in /)."""
    name = path[len(prefix) :] if path.startswith(prefix) else ""
    return bool(name) and os.sep not in name and name.lower().endswith(_SUFFIXES)
