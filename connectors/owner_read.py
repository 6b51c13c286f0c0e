"""The owner's calendar read once per planning round, held for its two consumers.

A planning round reads the owner's calendar twice: the contact history since ``since`` (26
weeks back, or where the last round's read ended less two weeks:
:mod:`scheduler.app.history_window`) and the owner's busy time over the horizon.
:class:`OwnerReads` holds one read of the owner's events over both windows (``read_owner`` in
the Google, Graph and CalDAV connectors, the :class:`~scheduler.core.ports.OwnerCalendar` port)
and hands it out:

- **to the round's two reads, once each**: the ``history`` read that starts where the held
  window starts and the ``busy`` read that ends where it ends (the round reads
  ``[since, now)`` and ``[now, now + horizon)`` of a held ``[since, now + horizon)``),
  both inside it; after both, the read is dropped. Any other read (a booking's recheck, the
  conflict watch: windows of their own) goes to the provider: those exist to see changes.
- **per owner and per thread**: held in a ``threading.local``, keyed by the lower-cased owner
  e-mail, so it is never served to another owner or to another worker thread.
- **for a short time**: a read not used within :data:`HOLD_S` seconds of monotonic time (a
  round that failed half way) is dropped when next looked at, and a new ``hold`` on the thread
  drops expired leftovers, so a leftover is never served to a later round.

Pure bookkeeping: no I/O here; the connectors do the reading and the filtering by window.
What is held is the connector's business: :class:`OwnerReads` holds a list of events (Graph,
CalDAV), :class:`HeldReads` anything (Google holds its events with their times parsed once, so
neither use parses them again).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Literal, TypeVar

from scheduler.core.intervals import Interval

__all__ = ["HOLD_S", "HeldReads", "OwnerReads", "Use"]

#: How long (s, monotonic) a held read may wait for its uses. A round reads its history and its
#: busy time a few store calls apart; anything older is a leftover of a failed round.
HOLD_S = 60.0

#: The two consumers of a held read.
Use = Literal["history", "busy"]
_USES: frozenset[str] = frozenset(("history", "busy"))

#: What a connector holds of one read.
T = TypeVar("T")


@dataclass
class _Held(Generic[T]):
    window: Interval
    read: T
    deadline: float
    used: set[str] = field(default_factory=set)


class HeldReads(Generic[T]):
    """One held read per owner and thread (see the module docstring), of any shape.

    Args:
        hold_s: how long a read is held before it expires unused (default :data:`HOLD_S`).
        monotonic: the clock for that (injected so tests need not wait).
    """

    def __init__(
        self, *, hold_s: float = HOLD_S, monotonic: Callable[[], float] = time.monotonic
    ) -> None:
        self._hold_s = hold_s
        self._monotonic = monotonic
        self._local = threading.local()

    def _table(self) -> dict[str, _Held[T]]:
        table: dict[str, _Held[T]] = self._local.__dict__.setdefault("held", {})
        return table

    def hold(self, owner_email: str, window: Interval, read: T) -> None:
        """Hold ``read`` (the owner's events over ``window``), replacing any read held for the
        owner.

        Expired leftovers of other owners on this thread are dropped too, so a worker thread
        that plans many owners keeps at most the reads of rounds still in progress.
        """
        now = self._monotonic()
        table = self._table()
        for key in [k for k, held in table.items() if now > held.deadline]:
            del table[key]
        table[owner_email.lower()] = _Held(window, read, now + self._hold_s)

    def take(self, owner_email: str, start: datetime, end: datetime, use: Use) -> T | None:
        """The held read for this ``use`` if a live read for the owner covers ``[start, end)``
        as the round's read of that kind would (see the module docstring).

        None when there is none, it expired, the window is not the round's, or ``use`` already
        had it: the caller then reads the provider itself. The caller filters the events to its
        window (the held read is wider).
        """
        if start.tzinfo is None or end.tzinfo is None or end < start:
            return None  # not a window a held read can answer; the provider says what is wrong
        table = self._table()
        key = owner_email.lower()
        held = table.get(key)
        if held is None:
            return None
        if self._monotonic() > held.deadline:
            del table[key]
            return None
        inside = held.window.start <= start and end <= held.window.end
        edge = start == held.window.start if use == "history" else end == held.window.end
        if use in held.used or not (inside and edge):
            return None
        held.used.add(use)
        if held.used >= _USES:
            del table[key]
        return held.read

    def holding(self, owner_email: str) -> bool:
        """Whether a read for the owner is held on this thread (expired or not); for tests."""
        return owner_email.lower() in self._table()


class OwnerReads(HeldReads[Sequence[Mapping[str, Any]]]):
    """:class:`HeldReads` of a list of events (copied when held)."""

    def hold(self, owner_email: str, window: Interval, read: Sequence[Mapping[str, Any]]) -> None:
        super().hold(owner_email, window, list(read))
