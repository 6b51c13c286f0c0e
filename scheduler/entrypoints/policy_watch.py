"""Which policy files changed since the last tick round, from the kernel (inotify) via watchfiles.

:class:`DirectoryWatch` is the file-system side of the tick's policy change feed
(``scheduler.app.policy_scan.ChangeFeed``): instead of one ``stat`` per policy file every round,
the tick asks :meth:`DirectoryWatch.drain` which paths changed and looks only at those. Whenever
the answer cannot be trusted it says so (None) and the tick lists the whole directory, as it
does without a watch:

- before :meth:`~DirectoryWatch.start`, on the first drain after it (there is no earlier drain to
  count from), and after :meth:`~DirectoryWatch.close`;
- when watching could not start (watchfiles missing, the directory missing or unreadable,
  inotify limits, no inotify so watchfiles would fall back to polling every file), or stopped
  (an error from the watcher, the directory itself removed or renamed): for good, logged once;
- while an entry of the directory is a symbolic link: inotify on the directory does not see a
  change to a link's target (a Kubernetes ConfigMap volume is made of such links, and updates
  them by swapping a ``..data`` link);
- once after a batch of events was dropped.

Events are kept in a set until drained, so nothing is lost between rounds; a change made just
before a drain may be reported by the next one instead (within ``debounce_ms`` plus a 50 ms
step). Changes the kernel itself drops (an inotify queue overflow, over
``fs.inotify.max_queued_events``) are not reported by watchfiles and so cannot be told here.
``GOODWILL_POLICY_WATCH=false`` turns the watch off (``watch_policies``), for network file
systems that deliver no inotify events.
"""

from __future__ import annotations

import logging
import os
import stat
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from watchfiles._rust_notify import RustNotify

__all__ = ["DirectoryWatch", "watch_policies"]

log = logging.getLogger("goodwill.policy_watch")

#: How often the watcher thread wakes to collect events and check for close(), in ms.
_STEP_MS = 50
#: How long close() waits for the watcher thread (it wakes every _STEP_MS).
_JOIN_TIMEOUT_S = 5.0

_State = Literal["idle", "watching", "failed", "closed"]


class DirectoryWatch:
    """Paths changed in one directory (not its subdirectories), as a ``ChangeFeed``."""

    def __init__(self, directory: Path, *, debounce_ms: int = 50) -> None:
        self._directory = directory
        self._debounce_ms = max(int(debounce_ms), 1)
        prefix = str(directory)
        # The same key form as list_policy_files: str(directory) + os.sep + name.
        self._prefix = prefix if prefix.endswith(os.sep) else prefix + os.sep
        self._watched = os.path.abspath(directory)
        # Paths come back under the watched path as given; the resolved form is kept too.
        self._forms = {self._watched, os.path.realpath(self._watched)}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._state: _State = "idle"
        self._fresh = True  # no drain since watching began
        self._lost = False  # a batch of events was dropped
        self._pending: set[str] = set()
        self._links: set[str] = set()  # names of the directory's entries that are symlinks
        self._links_logged = False
        self._identity: tuple[int, int] | None = None  # (st_dev, st_ino) when watching began

    def start(self) -> None:
        """Begin watching (once); never raises: on failure drain() keeps returning None."""
        with self._lock:
            if self._state != "idle" or self._thread is not None:
                return
        notify = self._open()
        if notify is None:
            return
        try:
            links = self._scan_links()
            self._identity = _identity(self._watched)
        except OSError as exc:
            notify.close()
            self._fail(f"cannot list the directory ({exc.strerror or exc})")
            return
        thread = threading.Thread(
            target=self._run, args=(notify,), name="goodwill-policy-watch", daemon=True
        )
        with self._lock:
            if self._state != "idle":  # closed meanwhile
                notify.close()
                return
            self._links = links
            self._state = "watching"
            self._thread = thread
        if links:
            self._log_links()
        thread.start()

    def close(self) -> None:
        """Stop watching; drain() returns None from now on."""
        self._stop.set()
        with self._lock:
            thread = self._thread
            if self._state in ("idle", "watching"):
                self._state = "closed"
            self._pending.clear()
        if thread is not None and thread is not threading.current_thread():
            thread.join(_JOIN_TIMEOUT_S)

    def drain(self) -> set[str] | None:
        """The paths changed since the last drain (and forgets them), or None: list everything.

        A file directly in the directory comes back as ``str(directory) + os.sep + name``, the
        key ``list_policy_files`` uses (a relative ``directory`` gives relative keys); any other
        path as watchfiles reported it (absolute)."""
        with self._lock:
            if self._state != "watching":
                return None
            changed, self._pending = self._pending, set()
            if self._fresh or self._lost or self._links:
                self._fresh = self._lost = False
                return None
            return changed

    # -- the watcher -------------------------------------------------------------------------

    def _open(self) -> RustNotify | None:
        """A RustNotify watching the directory (inotify set up before this returns), or None."""
        try:
            from watchfiles._rust_notify import RustNotify
        except ImportError as exc:  # the pipeline extra is not installed
            self._fail(f"watchfiles cannot be imported ({exc})")
            return None
        try:
            # paths, debug, force_polling, poll_delay_ms, recursive, ignore_permission_denied
            notify = RustNotify([self._watched], False, False, 300, False, False)
        except FileNotFoundError:
            self._fail("the directory does not exist")
            return None
        except Exception as exc:  # OSError (inotify limits, permissions), watchfiles' errors
            self._fail(f"watching cannot start ({exc})")
            return None
        if repr(notify).startswith("RustNotify(Poll("):  # no inotify: it would stat every file
            notify.close()
            self._fail("the file system gives no change events (watchfiles would poll)")
            return None
        return notify

    def _scan_links(self) -> set[str]:
        """Names of the directory's entries that are symbolic links (no stat where the file
        system gives entry types). Raises OSError."""
        with os.scandir(self._watched) as entries:
            return {entry.name for entry in entries if entry.is_symlink()}

    def _run(self, notify: RustNotify) -> None:
        try:
            while not self._stop.is_set():
                raw = notify.watch(self._debounce_ms, _STEP_MS, 0, self._stop)
                if raw == "stop":
                    break
                if isinstance(raw, str):  # "signal" or "timeout": watchfiles dropped the batch
                    with self._lock:
                        self._lost = True
                    continue
                if not self._record(path for _change, path in raw):
                    break
        except Exception as exc:
            self._fail(f"the watcher failed ({type(exc).__name__}: {exc})")
        finally:
            notify.close()

    def _record(self, paths: Iterable[str]) -> bool:
        """Add reported paths to the pending set; False when the watch is over."""
        keys: set[str] = set()
        links: dict[str, bool] = {}
        gone = False
        for path in paths:
            if path in self._forms:  # an event on the directory itself: removed or renamed,
                gone = gone or not self._same_directory()  # or only its mode or times changed
                continue
            parent, name = os.path.split(path)
            if name and parent in self._forms:
                keys.add(self._prefix + name)
                links[name] = _is_link(path)
            else:
                keys.add(path)
        with self._lock:
            self._pending |= keys
            for name, is_link in links.items():
                if is_link:
                    self._links.add(name)
                else:
                    self._links.discard(name)
            new_link = any(links.values()) and not self._links_logged
        if new_link:
            self._log_links()
        if gone:
            self._fail("the directory was removed or renamed")
        return not gone

    def _same_directory(self) -> bool:
        """Whether the watched path is still the directory watching began on."""
        try:
            return _identity(self._watched) == self._identity
        except OSError:
            return False

    def _fail(self, why: str) -> None:
        with self._lock:
            if self._state == "closed":
                return
            first = self._state != "failed"
            self._state = "failed"
            self._pending.clear()
        self._stop.set()
        if first:
            log.warning(
                "policy directory %s is not watched: %s; the tick lists it every round",
                self._directory, why,
            )  # fmt: skip

    def _log_links(self) -> None:
        self._links_logged = True
        log.info(
            "policy directory %s has symbolic links, whose targets inotify does not watch; the "
            "tick lists the directory every round while they are there", self._directory,
        )  # fmt: skip


def _identity(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return (st.st_dev, st.st_ino)


def _is_link(path: str) -> bool:
    try:
        return stat.S_ISLNK(os.lstat(path).st_mode)
    except OSError:  # gone again
        return False


def watch_policies(directory: Path, *, enabled: bool = True) -> DirectoryWatch | None:
    """A started watch of the policy directory, or None when ``GOODWILL_POLICY_WATCH`` is off
    (``enabled=settings.policy_watch``). A watch that could not start answers None on every
    drain, so the tick lists the directory every round, as without one."""
    if not enabled:
        return None
    watch = DirectoryWatch(directory)
    watch.start()
    return watch
