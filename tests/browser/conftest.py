"""Browser fixtures: one Playwright and one Chromium per session, a fresh guarded context per
test (tests/browser/browser_support.py).

Without ``/usr/bin/chromium`` or the playwright package these tests are skipped, except with
``CI=true``, where they fail (``.ci/run`` installs Debian's chromium).
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.browser.browser_support import CHROMIUM, Guarded, guarded_context, launch
from tests.conftest_db import _in_ci


def _missing() -> str | None:
    if importlib.util.find_spec("playwright") is None:
        return "the playwright package is not installed (pip install -e '.[dev]')"
    if not Path(CHROMIUM).is_file():
        return f"no Chromium at {CHROMIUM} (apt-get install chromium; never `playwright install`)"
    return None


@pytest.fixture(scope="session")
def playwright() -> Iterator[Any]:
    missing = _missing()
    if missing is not None:
        if _in_ci():
            pytest.fail(f"{missing} (CI=true: .ci/run should have installed it)")
        pytest.skip(missing)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="session")
def browser(playwright: Any) -> Iterator[Any]:
    b = launch(playwright)
    try:
        yield b
    finally:
        b.close()


@pytest.fixture
def new_context(browser: Any) -> Iterator[Callable[..., Guarded]]:
    """Make guarded contexts (a second browser, another person); all closed after the test,
    which fails if any of them tried to reach beyond 127.0.0.1."""
    made: list[Guarded] = []

    def make(**options: Any) -> Guarded:
        guarded = guarded_context(browser, **options)
        guarded.context.set_default_timeout(20_000)
        made.append(guarded)
        return guarded

    yield make
    blocked = [url for g in made for url in g.blocked]
    for g in made:
        g.close()
    assert blocked == [], f"the page asked for something beyond 127.0.0.1: {blocked}"


@pytest.fixture
def page(new_context: Callable[..., Guarded]) -> Any:
    return new_context().new_page()
