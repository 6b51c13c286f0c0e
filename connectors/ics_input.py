"""Untrusted iCalendar input: caps checked before parsing, line-numbered problems, a work and
time budget per read, and a per-process cache of parsed calendars.

A calendar file is someone else's data. Reading one must stay cheap whatever it holds, and what
goes wrong must be said in one printable line that names the file and the line. So:

* **Caps before parsing.** icalendar parses the whole text before anything can look at it, and
  parsing costs about the same per content line whatever the line says. So the lines are
  counted first, cheaply: more than ``limits.ics_max_components`` components (``BEGIN:``
  lines), ``limits.ics_max_lines`` content lines or ``limits.ics_max_dates`` RDATE/EXDATE
  values, and the file is refused before icalendar sees it.
* **A budget per read** (:class:`ReadBudget`): recurrence expansion is charged step by step
  (``limits.ics_max_steps``) and the whole read, parse included, has ``limits.ics_read_budget_s``
  seconds on an injectable monotonic clock. Running out is a
  :class:`~scheduler.core.errors.CalendarDataError` naming the file, the line and the event: the
  person is "calendar unavailable" for that round, never read as free.
* **Problems have a line and an escaped excerpt.** A line that is not an iCalendar content line,
  a property whose value cannot be read or a component that is not closed is reported as
  ``FILE:LINE: what, and what was done`` with at most about 60 characters of the line, every
  non-printable character written as ``\\xNN`` (:func:`printable`). Nothing from the file
  reaches a terminal or a log raw.
* **Only the broken part is skipped.** An event whose times cannot be read (DTSTART, DTEND,
  DURATION, RRULE, RDATE, EXDATE, RECURRENCE-ID), or which contains an unclosed component, is
  left out and logged on the ``goodwill.ics`` logger; lines that are not content lines and other
  unreadable properties are ignored and logged; the rest of the calendar is read. A file that
  is not iCalendar at all (binary, empty, UTF-16), ends inside a component (cut short), or of
  whose events not one can be read is refused in one line.
* **A parse cache** (:class:`CalendarCache`): parsed calendars keyed by file and content digest,
  least recently used out, bounded by entries and bytes, shared by the threads of a process
  (:func:`shared_cache`). Readers treat the cached calendars as read-only. Each kept calendar
  also keeps what readers derived from it (:meth:`CalendarCache.memo`: the expanded instances
  of a window), counted in the same byte bound and dropped with it when the file changes.
"""

from __future__ import annotations

import copy
import hashlib
import logging
import os
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import icalendar
from icalendar.parser.content_line import Contentline
from icalendar.parser.ical.calendar import CalendarIcalParser
from icalendar.parser.parameter import Parameters

from scheduler.core.errors import CalendarDataError
from scheduler.limits import Limits

__all__ = [
    "MEMOS_PER_FILE",
    "SETTLED_S",
    "CalendarCache",
    "FileMemo",
    "ParsedCalendar",
    "ReadBudget",
    "describe",
    "file_stamp",
    "parse_calendar",
    "printable",
    "printable_bytes",
    "shared_cache",
]

log = logging.getLogger("goodwill.ics")

#: The longest excerpt of a file line put into a message, in characters.
EXCERPT = 60
#: Problems logged per parse; the rest are counted in one last line.
_MAX_LOGGED = 20
#: Components nested deeper than this are refused (real calendars nest three deep:
#: VCALENDAR > VEVENT > VALARM); it also bounds the work of matching each END line.
_MAX_DEPTH = 8
#: Properties that decide when an event happens: one unreadable value skips the event.
_TIME_PROPERTIES = frozenset(
    {"DTSTART", "DTEND", "DURATION", "RRULE", "EXRULE", "RDATE", "EXDATE", "RECURRENCE-ID"}
)

# One logical line: a physical line that is not blank, with its folded continuations (a line
# break followed by a space or tab, RFC 5545 §3.1; blank lines before the space are folded
# away too, as icalendar does). Other blank lines are skipped by the scanner.
_LOGICAL_LINE = re.compile(r"^(?!\r?$)[^\n]*(?:\n(?:\r?\n)*[ \t][^\n]*)*", re.MULTILINE)
_FOLD = re.compile(r"\r?\n(?:\r?\n)*[ \t]")
_SURROGATE = re.compile("[\udc80-\udcff]")
#: icalendar's content line (a str); its constructor has no annotations.
_content_line: Callable[[str], Contentline] = Contentline
_COMPONENT_START = re.compile(r"^BEGIN:[A-Za-z0-9-]+\r?$", re.MULTILINE | re.IGNORECASE)


def printable(text: str, limit: int = EXCERPT) -> str:
    """``text`` safe for a terminal or a log line: at most ``limit`` characters, then ``…``.

    Printable characters stay; a backslash is doubled; everything else is written as an escape:
    ``\\xNN`` (bytes that were not UTF-8 included), ``\\uNNNN`` or ``\\UNNNNNNNN``.

    >>> printable("caf\\u00e9 \\x1b[31m\\udcff")
    'café \\\\x1b[31m\\\\xff'
    """
    if len(text) <= limit and text.isprintable() and "\\" not in text:
        return text  # every character stays, none is cut: most UIDs and names
    out: list[str] = []
    used = 0
    for char in text:
        code = ord(char)
        if char == "\\":
            piece = "\\\\"
        elif char.isprintable():
            piece = char
        elif 0xDC80 <= code <= 0xDCFF:  # a byte that was not UTF-8 (surrogateescape)
            piece = f"\\x{code - 0xDC00:02x}"
        elif code < 0x100:
            piece = f"\\x{code:02x}"
        elif code < 0x10000:
            piece = f"\\u{code:04x}"
        else:
            piece = f"\\U{code:08x}"
        if used + len(piece) > limit:
            out.append("…")
            break
        out.append(piece)
        used += len(piece)
    return "".join(out)


def printable_bytes(data: bytes, limit: int = EXCERPT) -> str:
    """Raw bytes as printable ASCII, every other byte as ``\\xNN`` (see :func:`printable`)."""
    return printable(data.decode("ascii", "surrogateescape"), limit)


def describe(exc: BaseException) -> str:
    """An exception as one short printable line: its type and the first line of its message."""
    text = str(exc).strip().splitlines()
    return (
        f"{type(exc).__name__}: {printable(text[0], 2 * EXCERPT)}" if text else type(exc).__name__
    )


class ReadBudget:
    """The work and the time one calendar read may take; running out refuses the read.

    ``charge`` counts expansion steps against ``max_steps``; every ``charge`` and every
    ``check_time`` reads ``monotonic`` against the deadline ``seconds`` after the budget was
    made. ``at`` says which part of the file is being read, for the message.

    >>> budget = ReadBudget("a.ics", max_steps=2, seconds=60.0, monotonic=lambda: 0.0)
    >>> budget.at(12, "event UID='x'")
    >>> budget.charge(2)
    >>> budget.charge()
    Traceback (most recent call last):
    ...
    scheduler.core.errors.CalendarDataError: a.ics:12: event UID='x': more than 2 expansion \
steps (limits.ics_max_steps); refused: the calendar is unavailable this round
    """

    def __init__(
        self,
        source: str,
        *,
        max_steps: int,
        seconds: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.source = source
        self.max_steps = max_steps
        self.seconds = seconds
        self.steps = 0
        #: True once this budget refused the read (a result not worth caching).
        self.exhausted = False
        self._now = monotonic
        self._deadline = monotonic() + seconds
        self._line: int | None = None
        self._what = ""

    @classmethod
    def of(
        cls, source: str, limits: Limits, monotonic: Callable[[], float] | None = None
    ) -> ReadBudget:
        """A fresh budget from ``limits.ics_max_steps`` and ``limits.ics_read_budget_s``."""
        return cls(
            source,
            max_steps=limits.ics_max_steps,
            seconds=limits.ics_read_budget_s,
            monotonic=monotonic or time.monotonic,
        )

    def trial(self) -> ReadBudget:
        """A copy to try some work on: this budget's steps so far and its deadline, charged
        apart, so that work given up on leaves this budget as it was."""
        return copy.copy(self)

    @property
    def timed_out(self) -> bool:
        """The budget refused for its deadline (which depends on the machine), not its steps."""
        return self.exhausted and self.steps <= self.max_steps

    def at(self, line: int | None, what: str = "") -> None:
        """Name the line and the part (``event UID='x'``) being read from now on."""
        self._line = line
        self._what = what

    def charge(self, steps: int = 1) -> None:
        """Count ``steps`` of expansion work; refuse beyond ``max_steps`` or the deadline."""
        self.steps += steps
        if self.steps > self.max_steps:
            self._refuse(f"more than {self.max_steps} expansion steps (limits.ics_max_steps)")
        self.check_time()

    def check_time(self) -> None:
        """Refuse when the deadline has passed."""
        if self._now() > self._deadline:
            self._refuse(f"reading took longer than {self.seconds:g} s (limits.ics_read_budget_s)")

    def _refuse(self, why: str) -> None:
        self.exhausted = True
        what = f"{self._what}: " if self._what else ""
        raise CalendarDataError(
            self.source,
            f"{what}{why}; refused: the calendar is unavailable this round",
            line=self._line,
        )


@dataclass(frozen=True, slots=True)
class ParsedCalendar:
    """A calendar file after :func:`parse_calendar`: what was read, and what was not.

    Attributes:
        source: the file name or URL named in messages.
        calendars: the VCALENDARs (a bare VEVENT is given one), ``X-WR-TIMEZONE`` applied,
            broken events removed. Shared between readers: never change them.
        problems: ``FILE:LINE: …`` for each line or event that was ignored or skipped.
        event_lines: the line of each UID's first ``BEGIN:VEVENT``, for messages.
    """

    source: str
    calendars: tuple[icalendar.Calendar, ...]
    problems: tuple[str, ...] = ()
    event_lines: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))

    def line_of(self, uid: str) -> int | None:
        """The line where the event ``uid`` begins, when known."""
        return self.event_lines.get(uid)


@dataclass(slots=True)
class _Problem:
    line: int
    message: str


@dataclass(slots=True)
class _Lines:
    """Logical content lines with the file line each begins on."""

    source: str
    lines: list[Contentline]
    numbers: list[int]
    #: Index -> the line as read, where it held bytes that were not UTF-8 (for excerpts).
    raw: dict[int, str]
    last_line: int


def parse_calendar(
    data: bytes,
    *,
    source: str,
    limits: Limits | None = None,
    budget: ReadBudget | None = None,
) -> ParsedCalendar:
    """Parse untrusted iCalendar bytes (the rules are in the module docstring).

    Args:
        data: the file or feed content.
        source: file name or URL for messages.
        limits: the caps (``ics_max_components``, ``ics_max_lines``, ``ics_max_dates``).
        budget: the read's time budget (checked every 1024 lines); None: no deadline.

    Raises:
        CalendarDataError: not iCalendar, over a cap, cut short, no event readable, over budget.
    """
    limits = limits or Limits()
    text, lossy = _decode(data)
    if not text.strip():
        raise CalendarDataError(source, "the file is empty; expected iCalendar data")
    if not _COMPONENT_START.search(text):
        raise CalendarDataError(source, _not_a_calendar(data))
    scanned = _scan(text, lossy=lossy, source=source, limits=limits, budget=budget)
    parser = _NumberedParser(scanned, budget)
    try:
        roots = parser.parse()
    except CalendarDataError:
        raise
    except Exception as exc:  # untrusted input: the parser raises many kinds of errors
        raise CalendarDataError(
            source, f"cannot parse this line ({describe(exc)}); refused", line=parser.line
        ) from exc
    if parser.open_components:
        name, line = parser.open_components[-1]
        raise CalendarDataError(
            source,
            f"the file ends inside BEGIN:{printable(name)} (line {line}): it looks cut short; "
            "refused",
            line=scanned.last_line,
        )
    return _assemble(roots, parser, source)


def _decode(data: bytes) -> tuple[str, bool]:
    """UTF-8 text (a BOM dropped); bytes that are not UTF-8 become lone surrogates."""
    try:
        return data.decode("utf-8-sig"), False
    except UnicodeDecodeError:
        return data.decode("utf-8-sig", "surrogateescape"), True


def _not_a_calendar(data: bytes) -> str:
    head = data.lstrip()[:24]
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):
        hint = "it is UTF-16 text: save it as UTF-8"
    else:
        hint = f"it starts with '{printable_bytes(head, 40)}'"
    return f"not an iCalendar file: no BEGIN: line ({hint}); refused"


def _scan(
    text: str, *, lossy: bool, source: str, limits: Limits, budget: ReadBudget | None
) -> _Lines:
    """Unfold ``text`` into numbered logical lines, refusing it past a cap."""
    lines: list[Contentline] = []
    numbers: list[int] = []
    raw: dict[int, str] = {}
    components = dates = 0
    line_no, position = 1, 0
    for match in _LOGICAL_LINE.finditer(text):
        line_no += text.count("\n", position, match.start())
        position = match.start()
        value = match.group()
        if "\n" in value:
            value = _FOLD.sub("", value)
        if value.endswith("\r"):
            value = value[:-1]
        if len(lines) >= limits.ics_max_lines:
            raise CalendarDataError(
                source,
                f"more than {limits.ics_max_lines} content lines (limits.ics_max_lines); "
                "refused before parsing",
                line=line_no,
            )
        head = value[:7].upper()
        if head.startswith("BEGIN:"):
            components += 1
            if components > limits.ics_max_components:
                raise CalendarDataError(
                    source,
                    f"more than {limits.ics_max_components} components "
                    "(limits.ics_max_components); refused before parsing",
                    line=line_no,
                )
        elif (head.startswith("RDATE") and head[5:6] in (";", ":")) or (
            head.startswith("EXDATE") and head[6:7] in (";", ":")
        ):
            dates += value.count(",") + 1
            if dates > limits.ics_max_dates:
                raise CalendarDataError(
                    source,
                    f"more than {limits.ics_max_dates} RDATE/EXDATE values "
                    "(limits.ics_max_dates); refused before parsing",
                    line=line_no,
                )
        if lossy and _SURROGATE.search(value):
            raw[len(lines)] = value
            value = value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        if budget is not None and not len(lines) & 4095:
            budget.check_time()
        lines.append(_content_line(value))
        numbers.append(line_no)
    lines.append(_content_line(""))  # icalendar ends its own list so
    numbers.append(line_no)
    return _Lines(source, lines, numbers, raw, line_no)


class _NumberedParser(CalendarIcalParser):
    """icalendar's calendar parser, told each content line's number, and forgiving.

    It never raises for a broken line or value: it records a problem with the line number,
    skips the line (or the value), and marks the top-level component whose times it broke.
    """

    def __init__(self, scanned: _Lines, budget: ReadBudget | None) -> None:
        super().__init__(
            scanned.lines, icalendar.ComponentFactory(), icalendar.Calendar.types_factory
        )
        self._scanned = scanned
        self._budget = budget
        self.line = 0
        self._index = 0
        self.problems: list[_Problem] = []
        self.begins: dict[int, int] = {}
        self.broken: dict[int, _Problem] = {}

    # -- bookkeeping ---------------------------------------------------------------------------

    def initialize_parsing(self) -> None:
        super().initialize_parsing()  # type: ignore[no-untyped-call]  # icalendar: no annotation
        # A VTIMEZONE after the events makes icalendar parse again: start the records afresh.
        self.problems = []
        self.begins = {}
        self.broken = {}
        self._content_lines_iterator = self._numbered()

    def _numbered(self) -> Iterator[Contentline]:
        numbers = self._scanned.numbers
        budget = self._budget
        for index, line in enumerate(self._content_lines):
            self._index = index
            self.line = numbers[index]
            if budget is not None and not index & 1023:
                budget.check_time()
            yield line

    @property
    def open_components(self) -> list[tuple[str, int]]:
        """(name, line) of the components still open, innermost last."""
        return [(str(c.name), self.begins.get(id(c), 0)) for c in self._stack]

    def _excerpt(self) -> str:
        text = self._scanned.raw.get(self._index, self._content_lines[self._index])
        return printable(str(text))

    def _note(self, message: str) -> None:
        self.problems.append(_Problem(self.line, message))

    def _break(self, reason: str, line: int | None = None) -> None:
        """Mark the top-level component being read as broken (its first reason wins)."""
        stack = self._stack
        if stack and stack[0].name != "VCALENDAR":
            root = stack[0]  # a bare component at the top
        elif len(stack) > 1:
            root = stack[1]
        else:  # the calendar's own properties: nothing to skip
            self._note(f"{reason}, ignored")
            return
        self.broken.setdefault(id(root), _Problem(self.line if line is None else line, reason))

    # -- icalendar's template methods ---------------------------------------------------------

    def handle_line_parse_error(self, exception: Exception) -> None:
        self._note(f"not an iCalendar content line, ignored: '{self._excerpt()}'")
        if self.component is not None:
            self.component.errors.append((None, str(exception)))

    def handle_begin_component(self, vals: str) -> None:
        super().handle_begin_component(vals)
        component = self._stack[-1]
        self.begins[id(component)] = self.line
        if len(self._stack) > _MAX_DEPTH:
            raise CalendarDataError(
                self._scanned.source,
                f"components nested more than {_MAX_DEPTH} deep; refused",
                line=self.line,
            )

    def handle_end_component(self, vals: str) -> None:
        name = vals.upper()
        if not self._stack:
            self._note(f"END:{printable(vals)} without a BEGIN, ignored")
            return
        if str(self._stack[-1].name).upper() == name:
            self._close(vals)
            return
        names = [str(c.name).upper() for c in self._stack]  # at most _MAX_DEPTH
        if name not in names:
            top = self._stack[-1]
            if len(names) == 1:  # a misspelt END:VCALENDAR: close it, as icalendar would
                self._note(f"END:{printable(vals)} read as END:{printable(names[-1])}")
                self._close(str(top.name))
                return
            self._note(
                f"END:{printable(vals)} does not close BEGIN:{printable(names[-1])} "
                f"(line {self.begins.get(id(top), 0)}), ignored"
            )
            return
        while names[-1] != name:  # close what was left open, and skip it
            unclosed = self._stack[-1]
            self._break(
                f"BEGIN:{printable(names[-1])} is never closed (END:{printable(vals)} at line "
                f"{self.line} came first)",
                line=self.begins.get(id(unclosed), self.line),
            )
            self._close(str(unclosed.name))
            names.pop()
        self._close(vals)

    def _close(self, vals: str) -> None:
        component = self._stack[-1]
        try:
            super().handle_end_component(vals)
        except Exception as exc:  # icalendar builds a custom VTIMEZONE's zone here
            if self._stack and self._stack[-1] is component:
                self._stack.pop()  # it failed before taking the component off the stack
            tzid = printable(str(component.get("TZID", "?")))
            self._note(f"{printable(vals)} TZID={tzid!r} cannot be used ({describe(exc)}), ignored")

    def handle_property(self, name: str, params: Parameters, vals: str, line: Contentline) -> None:
        if self.component is None:
            if name != "X-COMMENT":
                self._note(f"a {printable(name)} property outside any component, ignored")
            return
        try:
            super().handle_property(name, params, vals, line)
        except Exception as exc:  # untrusted input: values fail in many ways
            self._bad_value(name, exc)

    def handle_property_parse_error(
        self,
        exception: Exception,
        name: str,
        params: Parameters,
        val: str,
        line: Contentline,
    ) -> None:
        # The value is dropped (not kept as a broken value that fails later, when read).
        assert self.component is not None
        self.component.errors.append((name, str(exception)))
        self._bad_value(name, exception)

    def _bad_value(self, name: str, exc: BaseException) -> None:
        reason = f"{printable(name)}: {describe(exc)}"
        if name.upper() in _TIME_PROPERTIES:
            self._break(reason)
        else:
            self._note(f"{reason}, ignored")


def _to_standard(calendar: icalendar.Calendar) -> icalendar.Calendar:
    """``x_wr_timezone.to_standard``, imported only for a calendar that has X-WR-TIMEZONE.

    Without the property ``to_standard`` returns the calendar itself; its module imports click
    (~90 ms), which `goodwill plan` then never pays for.
    """
    if calendar.get("X-WR-TIMEZONE") is None:
        return calendar
    import x_wr_timezone

    result: icalendar.Calendar = x_wr_timezone.to_standard(calendar)
    return result


def _assemble(roots: list[Any], parser: _NumberedParser, source: str) -> ParsedCalendar:
    """Wrap bare components, drop broken events, apply X-WR-TIMEZONE, collect the problems."""
    problems = list(parser.problems)
    calendars: list[icalendar.Calendar] = []
    lines: dict[str, int] = {}
    events = kept = 0
    for root in roots:
        if root.name == "VCALENDAR":
            calendar = root
            children = list(root.subcomponents)
        else:  # a bare VEVENT (some exports and mail attachments): give it a calendar
            calendar = icalendar.Calendar()
            children = [root]
        keep = []
        for child in children:
            if child.name != "VEVENT":
                broken = parser.broken.get(id(child))
                if broken is not None:  # a VTIMEZONE, VTODO…: kept, its bad parts dropped
                    name = printable(str(child.name))
                    problems.append(_Problem(broken.line, f"{name}: {broken.message}, ignored"))
                keep.append(child)
                continue
            events += 1
            uid = str(child.get("UID", "?"))
            begin = parser.begins.get(id(child), 0)
            problem = parser.broken.get(id(child)) or _unreadable_times(child, begin)
            if problem is not None:
                problems.append(
                    _Problem(
                        problem.line, f"event UID={printable(uid)!r} skipped: {problem.message}"
                    )
                )
                continue
            kept += 1
            keep.append(child)
            lines.setdefault(uid, begin)
        calendar.subcomponents = keep
        try:
            calendars.append(_to_standard(calendar))
        except Exception as exc:  # e.g. an X-WR-TIMEZONE that is no IANA zone
            raise CalendarDataError(
                source, f"cannot apply X-WR-TIMEZONE ({describe(exc)}); refused"
            ) from exc
    problems.sort(key=lambda p: p.line)
    if not calendars:
        raise CalendarDataError(source, "no VCALENDAR found; refused")
    if events and not kept:
        first = next(p for p in problems if " skipped: " in p.message)
        raise CalendarDataError(
            source, f"{first.message}; no event could be read ({events} broken)", line=first.line
        )
    messages = tuple(f"{source}:{p.line}: {p.message}" for p in problems)
    for message in messages[:_MAX_LOGGED]:
        log.warning("%s", message)
    if len(messages) > _MAX_LOGGED:
        log.warning("%s: %d more problems", source, len(messages) - _MAX_LOGGED)
    return ParsedCalendar(source, tuple(calendars), messages, MappingProxyType(lines))


#: Properties an event has at most once (RFC 5545 §3.6.1); two make it ambiguous.
_SINGLE = ("DTSTART", "DTEND", "DURATION", "RECURRENCE-ID", "UID", "SEQUENCE")


def _unreadable_times(event: Any, line: int) -> _Problem | None:
    if "DTSTART" not in event:
        # RFC 5545 requires DTSTART outside iTIP messages; without it there is no time.
        return _Problem(line, "no DTSTART")
    for name in _SINGLE:
        if isinstance(event.get(name), list):
            return _Problem(line, f"two {name}s")
    return None


#: What the cache keeps: the parse, or a refusal as (source, reason, line).
_Outcome = ParsedCalendar | tuple[str, str, int | None]


class CalendarCache:
    """Parsed calendars by file and content, least recently used out; safe across threads.

    The key is the file (its resolved path, or a feed URL) with the caps it was parsed under;
    the entry holds a BLAKE2 digest of the content and the parse, or the deterministic
    refusal (a broken file is not parsed again either). A file's time stamp and size can stay
    the same across a quick rewrite (time stamps are coarse), so the digest decides: hashing
    costs milliseconds where parsing costs seconds. Reads refused by their time budget are not
    kept: they depend on the machine's load, not on the file.

    A local file can also be recognised without reading it (:meth:`unchanged`): by its
    (device, inode, size, modification time in ns), the stamp, when the file had not been
    modified for :data:`SETTLED_S` seconds when it was read. A rewrite after that moment gets a
    later time stamp, so an equal stamp means the same content (the rule git uses for its
    index); a file modified more recently is read and its digest decides, as for feeds.

    Each entry can also keep a few values derived from its calendar (:meth:`memo`, at most
    :data:`MEMOS_PER_FILE`): they count towards ``max_bytes`` by their estimated size in
    memory and go with the entry (a changed file, eviction).

    Args:
        max_entries: entries kept (0: nothing is kept).
        max_bytes: total size of the files kept plus their memos; a larger file is parsed
            every time. Parsed calendars take about 15 times their file's size in memory.
    """

    def __init__(self, max_entries: int = 256, max_bytes: int = 32 * 1024 * 1024) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        #: Parses run (misses) and parses saved (hits), for tests and measurements.
        self.parses = 0
        self.hits = 0
        #: Hits served by :meth:`unchanged`, without reading the file.
        self.stamp_hits = 0
        #: Memo values kept (misses) and found (hits), for tests and measurements.
        self.memo_puts = 0
        self.memo_hits = 0
        self._entries: OrderedDict[tuple[object, ...], tuple[bytes, int, _Outcome]] = OrderedDict()
        self._stamps: dict[tuple[object, ...], object] = {}
        self._memos: dict[tuple[object, ...], OrderedDict[Hashable, tuple[object, int]]] = {}
        self._bytes = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._entries)

    def configure(self, *, max_entries: int, max_bytes: int) -> None:
        """Change the bounds (evicting at once when they shrink)."""
        with self._lock:
            self.max_entries = max_entries
            self.max_bytes = max_bytes
            self._evict()

    def parse(
        self,
        key: str,
        data: bytes,
        *,
        source: str,
        limits: Limits,
        budget: ReadBudget | None = None,
        stamp: object | None = None,
    ) -> ParsedCalendar:
        """:func:`parse_calendar` of ``data``, or the kept result for the same key and content.

        ``stamp``: the file's settled stamp (see the class docstring) taken before ``data`` was
        read, kept with the entry for :meth:`unchanged`; ``None`` for a feed or a file
        modified too recently.

        Raises:
            CalendarDataError: as :func:`parse_calendar` (a kept refusal is raised anew).
        """
        slot = _slot(key, source, limits)
        digest = hashlib.blake2b(data, digest_size=16).digest()
        with self._lock:
            found = self._entries.get(slot)
            if found is not None and found[0] == digest:
                self._entries.move_to_end(slot)
                self.hits += 1
                self._stamp(slot, stamp)
                return _unpack(found[2])
            self.parses += 1
        outcome: _Outcome
        try:
            outcome = parse_calendar(data, source=source, limits=limits, budget=budget)
        except CalendarDataError as exc:
            if budget is not None and budget.exhausted:
                raise
            outcome = (exc.source, exc.reason, exc.line)
        self._keep(slot, digest, len(data), outcome, stamp)
        return _unpack(outcome)

    def unchanged(
        self, key: str, stamp: object, *, source: str, limits: Limits
    ) -> ParsedCalendar | None:
        """The kept result for ``key`` if it was kept under this (settled) ``stamp``, else None.

        Raises:
            CalendarDataError: the kept refusal of the unchanged file, raised anew.
        """
        slot = _slot(key, source, limits)
        with self._lock:
            found = self._entries.get(slot)
            if found is None or self._stamps.get(slot) != stamp:
                return None
            self._entries.move_to_end(slot)
            self.hits += 1
            self.stamp_hits += 1
        return _unpack(found[2])

    def memo(
        self, key: str, parsed: ParsedCalendar, *, source: str, limits: Limits
    ) -> FileMemo | None:
        """Where values derived from ``parsed`` are kept while ``key`` holds it; None when
        the cache does not keep ``parsed`` (too large, no entries, replaced meanwhile)."""
        slot = _slot(key, source, limits)
        with self._lock:
            found = self._entries.get(slot)
            if found is None or found[2] is not parsed:
                return None
        return FileMemo(self, slot, parsed)

    def _memo_get(
        self, slot: tuple[object, ...], parsed: ParsedCalendar, name: Hashable
    ) -> object | None:
        with self._lock:
            found = self._entries.get(slot)
            memos = self._memos.get(slot)
            if found is None or found[2] is not parsed or memos is None or name not in memos:
                return None
            memos.move_to_end(name)
            self.memo_hits += 1
            return memos[name][0]

    def _memo_put(
        self,
        slot: tuple[object, ...],
        parsed: ParsedCalendar,
        name: Hashable,
        value: object,
        size: int,
    ) -> None:
        with self._lock:
            found = self._entries.get(slot)
            if found is None or found[2] is not parsed:
                return
            memos = self._memos.setdefault(slot, OrderedDict())
            old = memos.pop(name, None)
            if old is not None:
                self._bytes -= old[1]
            while len(memos) >= MEMOS_PER_FILE:
                self._bytes -= memos.popitem(last=False)[1][1]
            if found[1] + sum(m[1] for m in memos.values()) + size > self.max_bytes:
                return  # this file and its memos alone would not fit
            memos[name] = (value, size)
            self._bytes += size
            self.memo_puts += 1
            self._entries.move_to_end(slot)
            self._evict()

    def _drop_memos(self, slot: tuple[object, ...]) -> None:
        for _, size in self._memos.pop(slot, {}).values():
            self._bytes -= size

    def _stamp(self, slot: tuple[object, ...], stamp: object | None) -> None:
        if stamp is None:
            self._stamps.pop(slot, None)
        else:
            self._stamps[slot] = stamp

    def _keep(
        self,
        slot: tuple[object, ...],
        digest: bytes,
        size: int,
        outcome: _Outcome,
        stamp: object | None = None,
    ) -> None:
        with self._lock:
            old = self._entries.pop(slot, None)
            self._stamps.pop(slot, None)
            self._drop_memos(slot)
            if old is not None:
                self._bytes -= old[1]
            if self.max_entries <= 0 or size > self.max_bytes:
                return
            self._entries[slot] = (digest, size, outcome)
            self._stamp(slot, stamp)
            self._bytes += size
            self._evict()

    def _evict(self) -> None:
        while self._entries and (
            len(self._entries) > self.max_entries or self._bytes > self.max_bytes
        ):
            slot, (_, size, _) = self._entries.popitem(last=False)
            self._stamps.pop(slot, None)
            self._drop_memos(slot)
            self._bytes -= size


#: Values kept per calendar file by :meth:`CalendarCache.memo` (windows of its readers).
MEMOS_PER_FILE = 4


class FileMemo:
    """One kept calendar's memo (:meth:`CalendarCache.memo`): values by key, safe across
    threads, gone with the calendar (an :class:`~connectors.ics_read.ExpansionMemo`)."""

    __slots__ = ("_cache", "_parsed", "_slot")

    def __init__(
        self, cache: CalendarCache, slot: tuple[object, ...], parsed: ParsedCalendar
    ) -> None:
        self._cache = cache
        self._slot = slot
        self._parsed = parsed

    def get(self, key: Hashable) -> object | None:
        """The value kept under ``key`` for this calendar, or None."""
        return self._cache._memo_get(self._slot, self._parsed, key)

    def put(self, key: Hashable, value: object, size: int) -> None:
        """Keep ``value`` (about ``size`` bytes in memory) if the cache's bounds allow."""
        self._cache._memo_put(self._slot, self._parsed, key, value, size)


#: Seconds a file must have gone unmodified before its stamp alone identifies its content.
SETTLED_S = 2.0


def file_stamp(path: Path, now: float | None = None) -> tuple[int, int, int, int] | None:
    """(device, inode, size, mtime in ns) of ``path`` if it was last modified at least
    :data:`SETTLED_S` seconds before ``now`` (default: the time now), else None (also when it
    cannot be read: the read that follows says why)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    now = time.time() if now is None else now
    if now - st.st_mtime_ns / 1e9 < SETTLED_S:
        return None
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _slot(key: str, source: str, limits: Limits) -> tuple[object, ...]:
    return (key, source, limits.ics_max_components, limits.ics_max_lines, limits.ics_max_dates)


def _unpack(outcome: _Outcome) -> ParsedCalendar:
    if isinstance(outcome, ParsedCalendar):
        return outcome
    source, reason, line = outcome
    raise CalendarDataError(source, reason, line=line)


_SHARED = CalendarCache()


def shared_cache(limits: Limits) -> CalendarCache:
    """The process's cache, bounded by ``limits.ics_cache_entries`` and ``ics_cache_bytes``."""
    if (_SHARED.max_entries, _SHARED.max_bytes) != (
        limits.ics_cache_entries,
        limits.ics_cache_bytes,
    ):
        _SHARED.configure(max_entries=limits.ics_cache_entries, max_bytes=limits.ics_cache_bytes)
    return _SHARED
