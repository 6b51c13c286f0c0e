"""Debian's Chromium driven by Playwright (never ``playwright install``), for the browser tests
and ``make screenshots``.

Every context made here answers any request for a host other than 127.0.0.1/localhost with
``route.abort()`` and records it in :attr:`Guarded.blocked`: the page must never need anything
from elsewhere, and a test can say so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

__all__ = ["CHROMIUM", "LOCAL_HOSTS", "Guarded", "guarded_context", "launch"]

CHROMIUM = "/usr/bin/chromium"
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})


def launch(playwright: Any) -> Any:
    """One headless Chromium (as root it needs ``--no-sandbox``)."""
    return playwright.chromium.launch(
        executable_path=CHROMIUM, headless=True, args=["--no-sandbox"]
    )


@dataclass
class Guarded:
    """A browser context whose off-machine requests are aborted (and listed in ``blocked``)."""

    context: Any
    blocked: list[str] = field(default_factory=list)

    def new_page(self) -> Any:
        return self.context.new_page()

    def close(self) -> None:
        self.context.close()


def guarded_context(browser: Any, **options: Any) -> Guarded:
    """``browser.new_context(**options)`` with every non-loopback request aborted."""
    guarded = Guarded(browser.new_context(**options))

    def only_loopback(route: Any) -> None:
        url = route.request.url
        host = urlsplit(url).hostname or ""
        if host in LOCAL_HOSTS or url.startswith(("data:", "about:")):
            route.continue_()
        else:
            guarded.blocked.append(url)
            route.abort()

    guarded.context.route("**/*", only_loopback)
    return guarded
