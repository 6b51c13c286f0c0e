"""The cyclic garbage collector in a one-shot command (issue 13, CLI cold start).

`goodwill plan` imports some 530 modules (pydantic and the policy models, icalendar, the
planner) and then reads a few calendars; the process ends when the command does. Nearly all
that the imports create lives until then, yet the collector scans it again and again while the
imports run (over a hundred young collections and a full one: 50-60 ms) and once more at
interpreter exit (about 75 ms): a quarter of a cold `plan`'s CPU (docs/benchmarks.md, "CLI cold
start").

:func:`imports_kept` pauses the collector while a command imports what it uses, then moves what
exists at that moment to the permanent generation (:func:`gc.freeze`), which the collector, the
one at exit included, never scans. The work after the imports runs with the collector as usual,
so what the command itself leaves in cycles is collected as before.

Only for the process's own command line (``main()`` without ``argv``: the console script,
``python -m scheduler``): a caller running commands in its process (the tests) keeps its
collector untouched, since freezing would keep its garbage of the moment for good.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["imports_kept"]


@contextmanager
def imports_kept(active: bool) -> Iterator[None]:
    """Run the block (the command's imports) with the collector paused, then freeze what exists.

    ``active`` False (a command run inside another program) or a collector already disabled by
    the caller: nothing is changed.
    """
    if not active or not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        gc.enable()
