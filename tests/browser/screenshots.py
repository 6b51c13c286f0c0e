"""``make screenshots``: docs/screenshots/owner-page-{desktop,phone}.png, full page, of a sample
owner's page (``python -m tests.browser.screenshots [OUT_DIR]``).

The sample organisation runs one demo cycle (``goodwill demo`` into a temporary directory), then
``goodwill demo --serve`` serves its page on 127.0.0.1 while Debian's Chromium signs in as the
owner with the most proposals and takes a 1280-wide and a 375-wide picture. Nothing beyond
127.0.0.1 is loaded (the script fails if the page asked for anything). Not part of the tests:
the dates on the pictures are the day it runs.
"""

from __future__ import annotations

import io
import re
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from scheduler.entrypoints.demo import run_demo, serve_demo
from tests.browser.browser_support import guarded_context, launch

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
OUT = REPO / "docs" / "screenshots"
#: name -> viewport width (CSS pixels)
WIDTHS = {"desktop": 1280, "phone": 375}
_LINK = re.compile(r"(http://\S+/signin/link\?token=\S+)")


@contextmanager
def served_demo(data_dir: Path) -> Iterator[str]:
    """Run one demo cycle into ``data_dir``, serve its page on a free port; yield a sign-in
    link for the sample owner with the most proposals. Stops the page afterwards."""
    run_demo(EXAMPLES, data_dir, out=io.StringIO())
    ready, stop = threading.Event(), threading.Event()
    printed = io.StringIO()
    failed: list[BaseException] = []

    def wait(on_stop: Callable[[], None]) -> None:
        ready.set()
        stop.wait()
        on_stop()

    def serve() -> None:
        try:
            serve_demo(EXAMPLES, data_dir, out=printed, port=0, wait=wait)
        except BaseException as exc:
            failed.append(exc)
            ready.set()

    thread = threading.Thread(target=serve, name="demo-page", daemon=True)
    thread.start()
    try:
        if not ready.wait(120) or failed:
            raise RuntimeError(f"the demo's page did not start: {failed or 'timeout'}")
        found = _LINK.search(printed.getvalue())
        if found is None:
            raise RuntimeError(f"no sign-in link in: {printed.getvalue()}")
        yield found.group(1)
    finally:
        stop.set()
        thread.join(60)


def take(out_dir: Path = OUT) -> list[Path]:
    from playwright.sync_api import sync_playwright

    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        served_demo(Path(tmp) / "demo") as link,
        sync_playwright() as p,
    ):
        browser = launch(p)
        try:
            first = guarded_context(browser, viewport={"width": 1280, "height": 900})
            page = first.new_page()
            page.goto(link)
            page.get_by_role("button", name="Sign in").click()
            page.get_by_role("heading", name=re.compile("'s coffees$")).wait_for()
            signed_in = first.context.storage_state()
            blocked = list(first.blocked)
            first.close()
            for name, width in WIDTHS.items():
                shot = guarded_context(
                    browser, viewport={"width": width, "height": 800}, storage_state=signed_in
                )
                page = shot.new_page()
                page.goto(link.split("/signin/", 1)[0] + "/")
                page.get_by_role("heading", name=re.compile("'s coffees$")).wait_for()
                path = out_dir / f"owner-page-{name}.png"
                page.screenshot(path=str(path), full_page=True)
                written.append(path)
                blocked += shot.blocked
                shot.close()
        finally:
            browser.close()
    if blocked:
        raise RuntimeError(f"the page asked for something beyond 127.0.0.1: {blocked}")
    return written


def main(argv: list[str]) -> int:
    for path in take(Path(argv[0]) if argv else OUT):
        print(f"wrote {path.relative_to(REPO) if path.is_relative_to(REPO) else path}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
