"""Running store calls from several threads at once, for the race tests."""

from __future__ import annotations

import threading
from collections.abc import Callable


def run_together(n: int, work: Callable[[int, threading.Barrier], None]) -> None:
    """Run ``work(i, barrier)`` in ``n`` threads and re-raise the first error."""
    barrier = threading.Barrier(n, timeout=30)
    errors: list[BaseException] = []

    def target(i: int) -> None:
        try:
            work(i, barrier)
        except BaseException as exc:  # surfaced below, after join
            errors.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=target, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    if errors:
        raise errors[0]
