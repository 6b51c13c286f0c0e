"""Logging: redaction of addresses and secrets, JSON and text formats, correlation fields."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest

from scheduler.entrypoints.logs import bound, configure_logging, log_context, redact


@pytest.fixture
def restore_root() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    for handler in list(root.handlers):
        if handler not in handlers:
            root.removeHandler(handler)
    root.setLevel(level)


def capture(fmt: str = "json", level: str = "DEBUG") -> io.StringIO:
    stream = io.StringIO()
    configure_logging(fmt, level, stream=stream)  # type: ignore[arg-type]
    return stream


def json_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        ("invite to Sam.Lee+x@Corp.Example failed", "invite to ***@Corp.Example failed"),
        ("Authorization: Bearer ya29.A0ARrdaM-abc_def/ghi==", "Authorization: Bearer [redacted]"),
        ("token eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln end", "token [redacted] end"),
        ('{"access_token": "abc123", "x": 1}', '{"access_token": "[redacted]", "x": 1}'),
        (
            "refresh_token=1//0gabc&client_secret=shh",
            "refresh_token=[redacted]&client_secret=[redacted]",
        ),
        ("postgresql://goodwill:hunter2@db:5432/gw", "postgresql://***:***@db:5432/gw"),
        ("amqp://guest@rabbit:5672/", "amqp://***@rabbit:5672/"),
        ("HTTP 429 after 3 tries at 10:00", "HTTP 429 after 3 tries at 10:00"),
    ],
)
def test_redact(raw: str, clean: str) -> None:
    assert redact(raw) == clean


def test_redact_without_domain_leaves_no_at_sign() -> None:
    text = redact("sam@corp.example via redis://:pw@redis:6379/0", keep_domain=False)
    assert text == "[email] via redis://redis:6379/0"


def test_json_lines_redact_message_args_extras_and_traceback(restore_root: None) -> None:
    stream = capture("json")
    log = logging.getLogger("goodwill.test")
    try:
        raise RuntimeError("grant of kim@corp.example refused: Bearer abc.def")
    except RuntimeError:
        log.exception(
            "booking %s for %s failed",
            42,
            "sam@corp.example",
            extra={"attendees": ["sam@corp.example", "kim@corp.example"], "meeting_id": 42},
        )
    [entry] = json_lines(stream)
    assert entry["msg"] == "booking 42 for ***@corp.example failed"
    assert entry["level"] == "ERROR"
    assert entry["logger"] == "goodwill.test"
    assert entry["meeting_id"] == 42
    assert entry["attendees"] == ["***@corp.example", "***@corp.example"]
    assert "RuntimeError: grant of ***@corp.example refused: Bearer [redacted]" in entry["exc"]
    assert entry["ts"].endswith("Z")
    assert "sam@" not in stream.getvalue()
    assert "kim@" not in stream.getvalue()
    assert "abc.def" not in stream.getvalue()


def test_text_format_is_one_readable_line_with_tags(restore_root: None) -> None:
    stream = capture("text")
    bound("goodwill.book", user_id=3, meeting_id=41).warning("retrying %s", "alex@corp.example")
    line = stream.getvalue()
    assert line.count("\n") == 1
    assert "WARNING goodwill.book: retrying ***@corp.example  user_id=3 meeting_id=41" in line


def test_log_context_tags_records_and_explicit_extra_wins(restore_root: None) -> None:
    stream = capture("json")
    log = logging.getLogger("goodwill.tick")
    with log_context(user_id=7, actor="tick"):
        log.info("planning")
        with log_context(meeting_id=9):
            log.info("sent", extra={"user_id": 8})
    log.info("outside")
    first, second, third = json_lines(stream)
    assert (first["user_id"], first["actor"], "meeting_id" in first) == (7, "tick", False)
    assert (second["user_id"], second["meeting_id"]) == (8, 9)
    assert "user_id" not in third


def test_bound_adapter_merges_call_extras(restore_root: None) -> None:
    stream = capture("json")
    bound(logging.getLogger("goodwill.x"), user_id=1).info("x", extra={"provider": "google"})
    [entry] = json_lines(stream)
    assert (entry["user_id"], entry["provider"]) == (1, "google")


def test_auto_picks_json_off_a_terminal_and_text_on_one(restore_root: None) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    pipe = io.StringIO()
    configure_logging("auto", "INFO", stream=pipe)
    logging.getLogger("goodwill").info("hello")
    assert json.loads(pipe.getvalue())["msg"] == "hello"
    tty = Tty()
    configure_logging("auto", "INFO", stream=tty)
    logging.getLogger("goodwill").info("hello")
    assert tty.getvalue().rstrip().endswith("INFO    goodwill: hello")
    # Re-configuring replaced the handler instead of adding a second one.
    assert pipe.getvalue().count("hello") == 1


def test_level_filters_and_bad_format_is_refused(restore_root: None) -> None:
    stream = capture("json", level="WARNING")
    logging.getLogger("goodwill").info("quiet")
    logging.getLogger("goodwill").warning("loud")
    assert [e["msg"] for e in json_lines(stream)] == ["loud"]
    with pytest.raises(ValueError, match="json, text or auto"):
        configure_logging("xml", stream=io.StringIO())  # type: ignore[arg-type]
