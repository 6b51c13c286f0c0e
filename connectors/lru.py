"""A small thread-safe least-recently-used map: per-owner clients kept in bounded memory.

A worker process plans many owners over its life; each owner's calendar client (an API client,
its HTTP connections, a token cache) is worth keeping while the owner is planned again soon, and
worth dropping after. :class:`Lru` keeps at most ``size`` values: getting one marks it used, and
adding one past the size drops the least recently used. ``GOODWILL_LIMITS__CLIENT_CACHE_SIZE``
sets the size of the connector registry's cache.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

__all__ = ["Lru"]

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class Lru(Generic[K, V]):
    """At most ``size`` values, least recently used out; safe across threads.

    ``get_or_make(key, make)`` runs ``make()`` outside the lock (building a client may do I/O),
    so two threads missing the same key at once may both build one; the first one stored wins
    and both callers get it. ``evictions`` counts the values dropped, for tests and benchmarks.
    """

    def __init__(self, size: int) -> None:
        if size < 1:
            raise ValueError(f"an LRU cache needs a size of at least 1, got {size}")
        self.size = size
        self.evictions = 0
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)

    def __contains__(self, key: object) -> bool:
        with self._lock:
            return key in self._items

    def get(self, key: K) -> V | None:
        """The value kept for ``key`` (now the most recently used), or None."""
        with self._lock:
            value = self._items.get(key)
            if value is not None:
                self._items.move_to_end(key)
            return value

    def put(self, key: K, value: V) -> V:
        """Keep ``value`` unless a value is already kept for ``key``; returns the one kept."""
        with self._lock:
            kept = self._items.get(key)
            if kept is not None:
                self._items.move_to_end(key)
                return kept
            self._items[key] = value
            while len(self._items) > self.size:
                self._items.popitem(last=False)
                self.evictions += 1
            return value

    def get_or_make(self, key: K, make: Callable[[], V]) -> V:
        """The value kept for ``key``, or ``make()`` kept and returned."""
        found = self.get(key)
        if found is not None:
            return found
        return self.put(key, make())

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
