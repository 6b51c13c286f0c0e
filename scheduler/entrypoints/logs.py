"""Logging: JSON lines in production, readable text in a terminal, secrets and addresses redacted.

``configure_logging`` is called once by the composition root (the CLI). Every record passes a
:class:`RedactingFilter` first, which rewrites the message, its arguments, the exception text and
every ``extra`` field: e-mail addresses keep only their domain (``***@corp.example``), bearer
tokens, JWTs, ``access_token=…``-style pairs and passwords inside URLs become ``[redacted]``.
Logs are shipped to places with wider access than the database, so they get the same privacy
rule as metrics (DESIGN.md, "Privacy").

Correlation ids travel as ``extra`` fields: ``log_context(user_id=…, meeting_id=…)`` tags every
record logged inside it (per thread/task, through a context variable), and ``bound(logger, …)``
gives a logger adapter that tags its own records.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import sys
from collections.abc import Iterator, Mapping, MutableMapping
from contextlib import contextmanager
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Literal, TextIO

__all__ = [
    "CONTEXT_FIELDS",
    "ContextAdapter",
    "JsonFormatter",
    "LogFormat",
    "RedactingFilter",
    "TextFormatter",
    "bound",
    "configure_logging",
    "log_context",
    "redact",
]

LogFormat = Literal["json", "text", "auto"]

#: Correlation fields the formatters put first, in this order.
CONTEXT_FIELDS = ("user_id", "meeting_id", "actor")

_REDACTED = "[redacted]"
# Order matters: URL credentials before e-mails, since "user:secret@host.example" looks like an
# address; the e-mail rule then keeps the domain, which is what an operator needs to debug.
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@:]*:[^/\s@]*@"), r"\1***:***@"),
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://)[^/\s@:]+@"), r"\1***@"),
    (re.compile(r"(?i)\bbearer\s+[a-z0-9\-._~+/]+=*"), f"Bearer {_REDACTED}"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*"), _REDACTED),
    (
        re.compile(
            r"(?i)\b(access_token|refresh_token|id_token|client_secret|client_assertion|"
            r"password|passwd|api_key|apikey|secret_key|private_key)"
            r"(\"?'?\s*[:=]\s*\"?'?)[^\s\"'&,;}]+"
        ),
        rf"\1\2{_REDACTED}",
    ),
    (re.compile(r"(?i)\b[a-z0-9._%+'-]+@([a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,})\b"), r"***@\1"),
)

# After _PATTERNS ran: the kept-domain form of an address, and the masked user info of a URL.
_HIDDEN_EMAIL = re.compile(r"\*\*\*@[a-z0-9-]+(?:\.[a-z0-9-]+)*\.[a-z]{2,}\b", re.IGNORECASE)
_URL_USERINFO = re.compile(r"(://)\*\*\*(?::\*\*\*)?@")

_context: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "goodwill_log_context", default=MappingProxyType({})
)

# Attributes every LogRecord has; anything else on a record came in through ``extra``.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}


def redact(text: str, *, keep_domain: bool = True) -> str:
    """Remove e-mail local parts, bearer tokens, JWTs, secrets in ``key=value`` and in URLs.

    Args:
        text: anything about to leave the process.
        keep_domain: keep an address's domain (``***@corp.example``, for logs); False replaces
            the whole address with ``[email]`` (health answers, which must not contain ``@``).

    >>> redact("sam@corp.example refused: Bearer ya29.a0Af redis://:pw@redis:6379/0")
    '***@corp.example refused: Bearer [redacted] redis://***:***@redis:6379/0'
    >>> redact("sam@corp.example", keep_domain=False)
    '[email]'
    """
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    if not keep_domain:
        text = _HIDDEN_EMAIL.sub("[email]", text)
        text = _URL_USERINFO.sub(r"\1", text)
    return text


def _redact_value(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {k: _redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_redact_value(v) for v in value]
    if isinstance(value, bool | int | float) or value is None:
        return value
    return redact(str(value))


class RedactingFilter(logging.Filter):
    """Rewrites a record in place so no handler ever sees an address or a secret.

    Also copies the current :func:`log_context` fields onto the record (without overriding
    fields passed explicitly through ``extra``).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in _context.get().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        # Render the message once with its args, then drop the args: an argument may hold the
        # secret, and formatters would otherwise render it again.
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        for key in _extra_keys(record):
            setattr(record, key, _redact_value(getattr(record, key)))
        return True


def _extra_keys(record: logging.LogRecord) -> list[str]:
    return [k for k in record.__dict__ if k not in _STANDARD and not k.startswith("_")]


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    keys = _extra_keys(record)
    ordered = [k for k in CONTEXT_FIELDS if k in keys] + sorted(
        k for k in keys if k not in CONTEXT_FIELDS
    )
    return {k: getattr(record, k) for k in ordered}


def _timestamp(record: logging.LogRecord) -> str:
    at = datetime.fromtimestamp(record.created, tz=UTC)
    return at.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``ts``, ``level``, ``logger``, ``msg``, extras, ``exc``."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key, value in _extras(record).items():
            entry.setdefault(key, value)
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(self.formatException(record.exc_info))
        if record.exc_text:
            entry["exc"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    """``HH:MM:SS LEVEL logger: message  key=value …`` for people at a terminal."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = _extras(record)
        if not extras:
            return line
        first, newline, rest = line.partition("\n")
        tags = " ".join(f"{k}={v}" for k, v in extras.items())
        return f"{first}  {tags}{newline}{rest}"


_HANDLER_MARK = "_goodwill_handler"


def configure_logging(
    fmt: LogFormat = "auto", level: int | str = "INFO", *, stream: TextIO | None = None
) -> logging.Handler:
    """Install goodwill's handler on the root logger (replacing one installed before).

    Args:
        fmt: ``json`` (one object per line, for log shippers), ``text`` (for people), or
            ``auto``: JSON unless the stream is a terminal.
        level: root level, a name (``"DEBUG"``) or a number.
        stream: where to write; default ``sys.stderr``.

    Returns:
        The installed handler (tests read what it wrote through ``stream``).
    """
    out = stream if stream is not None else sys.stderr
    if fmt == "auto":
        fmt = "text" if _is_tty(out) else "json"
    if fmt not in ("json", "text"):
        raise ValueError(f"log format must be json, text or auto, not {fmt!r}")
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(RedactingFilter())
    setattr(handler, _HANDLER_MARK, True)
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, _HANDLER_MARK, False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)
    return handler


def _is_tty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # closed or not a real file
        return False


@contextmanager
def log_context(**fields: Any) -> Iterator[None]:
    """Tag every record logged inside the block (this thread / task) with ``fields``.

    >>> with log_context(user_id=3, meeting_id=41):
    ...     logging.getLogger("goodwill").info("booked")  # carries user_id and meeting_id
    """
    token = _context.set({**_context.get(), **fields})
    try:
        yield
    finally:
        _context.reset(token)


class ContextAdapter(logging.LoggerAdapter[logging.Logger]):
    """A logger adapter whose fields merge with (not replace) a call's own ``extra``."""

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        kwargs["extra"] = {**(self.extra or {}), **kwargs.get("extra", {})}
        return msg, kwargs


def bound(
    logger: logging.Logger | str,
    *,
    user_id: int | None = None,
    meeting_id: int | None = None,
    **fields: Any,
) -> ContextAdapter:
    """A logger that adds ``user_id`` / ``meeting_id`` (and ``fields``) to each record.

    >>> log = bound("workers.book", user_id=3, meeting_id=41)
    >>> log.info("claimed lease")  # doctest: +SKIP
    """
    base = logging.getLogger(logger) if isinstance(logger, str) else logger
    extra: dict[str, Any] = {k: v for k, v in fields.items() if v is not None}
    if user_id is not None:
        extra["user_id"] = user_id
    if meeting_id is not None:
        extra["meeting_id"] = meeting_id
    return ContextAdapter(base, extra)
