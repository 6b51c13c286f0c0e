"""A policy whose calendar is a published ICS feed: `goodwill plan` reads the owner's busy time
from it over HTTP (loopback), and never books blind for people it cannot see."""

from __future__ import annotations

import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from scheduler.entrypoints.cli import main

ROOT = Path(__file__).resolve().parents[2]
FEED = (ROOT / "examples" / "calendars" / "alex@corp.example.ics").read_bytes()


@pytest.fixture
def feed_url() -> Iterator[str]:
    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            hits.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "text/calendar")
            self.send_header("Content-Length", str(len(FEED)))
            self.end_headers()
            self.wfile.write(FEED)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/alex.ics"
    finally:
        server.shutdown()
        server.server_close()
    assert hits == ["/alex.ics"]  # one read of the feed per plan


def test_plan_reads_the_owners_feed_and_skips_people_it_cannot_see(
    tmp_path: Path, feed_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GOODWILL_DATA_DIR", str(tmp_path / "data"))
    policy = tmp_path / "alex.yaml"
    policy.write_text(
        "owner: {email: alex@corp.example, name: Alex Doe, timezone: Europe/London}\n"
        f"calendar: {{provider: ics, url: '{feed_url}'}}\n"
        "tiers: {peer: {every: 8w, mode: auto}}\n"
        "stakeholders:\n"
        "  - {email: jon@corp.example, name: Jon Berg, tier: peer}\n"
        "allowed_domains: [corp.example]\n"
    )
    out, err = io.StringIO(), io.StringIO()
    code = main(
        ["plan", "--policy", str(policy), "--now", "2026-11-30T08:00:00Z", "--json"],
        out=out,
        err=err,
    )
    assert code == 0, err.getvalue()
    data = json.loads(out.getvalue())
    assert data["proposals"] == []
    (skip,) = data["skipped"]
    assert skip["stakeholder"] == "jon@corp.example"
    assert skip["code"] == "calendar_unavailable"
