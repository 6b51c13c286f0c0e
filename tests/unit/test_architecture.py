"""Dependencies point inward: the core imports no vendor SDK, database, broker or connector."""

from __future__ import annotations

import importlib
import pkgutil
import subprocess
import sys

import scheduler

PURE_CORE = [
    "scheduler.core.intervals",
    "scheduler.core.model",
    "scheduler.core.busy",
    "scheduler.core.availability",
    "scheduler.core.slots",
    "scheduler.core.cadence",
    "scheduler.core.planner",
    "scheduler.core.policy",
    "scheduler.core.durations",
    "scheduler.core.clock",
    "scheduler.core.errors",
    "scheduler.core.ports",
]
FORBIDDEN = [
    "googleapiclient",
    "google.auth",
    "msal",
    "caldav",
    "dramatiq",
    "sqlalchemy",
    "alembic",
    "icalendar",
    "recurring_ical_events",
    "httpx",
    "requests",
    "connectors",
    "workers",
]


def test_pure_core_imports_no_vendor_sdk() -> None:
    # Given a fresh interpreter, when only the pure core is imported …
    code = (
        "import sys\n"
        f"for m in {PURE_CORE!r}: __import__(m)\n"
        f"bad = sorted(n for n in sys.modules for f in {FORBIDDEN!r}\n"
        "             if n == f or n.startswith(f + '.'))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    # … then no vendor, storage, broker or adapter module was loaded.
    assert out.stdout.strip() == ""


def test_every_scheduler_module_imports() -> None:
    for info in pkgutil.walk_packages(scheduler.__path__, "scheduler."):
        if ".migrations" in info.name or info.name.endswith("__main__"):
            continue
        importlib.import_module(info.name)
