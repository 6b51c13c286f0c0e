"""Fixtures for the use-case tests: every scenario runs on the fake store, SQLite and PostgreSQL.

``world`` is the usual entry point (see :class:`tests.usecase.world.World`); ``store``,
``calendar``, ``clock``, ``policy_dir`` and ``pipeline`` are its parts, for tests that need only
one of them.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from scheduler.app.pipeline import Pipeline
from scheduler.core.clock import FixedClock
from tests.usecase.fakes import FakeCalendar
from tests.usecase.stores import STORE_KINDS, InspectableStore, open_store
from tests.usecase.world import ALEX, NOW, World, alex_policy, make_pipeline


@pytest.fixture(params=STORE_KINDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[InspectableStore]:
    """An empty store: the in-memory fake, or the real one on SQLite or PostgreSQL."""
    with open_store(request.param, request, tmp_path) as opened:
        yield opened


@pytest.fixture
def calendar() -> FakeCalendar:
    return FakeCalendar()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def policy_dir(tmp_path: Path) -> Path:
    """The policy directory, holding Alex's policy (peers in auto mode)."""
    path = tmp_path / "policies"
    path.mkdir()
    (path / f"{ALEX.split('@')[0]}.yaml").write_text(alex_policy())
    return path


@pytest.fixture
def pipeline(
    store: InspectableStore, calendar: FakeCalendar, clock: FixedClock, policy_dir: Path
) -> Pipeline:
    return make_pipeline(store, calendar, clock, policy_dir)


@pytest.fixture
def world(
    store: InspectableStore,
    calendar: FakeCalendar,
    clock: FixedClock,
    policy_dir: Path,
    pipeline: Pipeline,
) -> World:
    return World(store, calendar, clock, policy_dir, pipeline)
