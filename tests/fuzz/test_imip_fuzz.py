"""Fuzzing the iMIP REPLY reader: whatever arrives, ``parse_reply`` answers with a reply or a
:class:`CalendarDataError`, never another exception (a RecursionError, an IndexError from the
header parser, a UnicodeError), and the Authentication-Results reader never raises at all.

Bounded for ``make test`` (a few seconds each); ``GOODWILL_FUZZ=long`` runs many more examples.
"""

from __future__ import annotations

from email.message import EmailMessage
from email.policy import SMTP

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectors.imip import (
    MAX_MIME_DEPTH,
    ImipReply,
    authentication_failure,
    mail_address,
    parse_reply,
)
from scheduler.core.errors import CalendarDataError

CALENDAR = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//fuzz//EN\r\nMETHOD:REPLY\r\nBEGIN:VEVENT\r\n"
    "UID:gw0123456789abcdef0123456789ab@goodwill\r\nDTSTAMP:20270301T080000Z\r\nSEQUENCE:1\r\n"
    "ORGANIZER:mailto:ann@corp.example\r\n"
    "ATTENDEE;CN=Bo;PARTSTAT=DECLINED:mailto:bo@corp.example\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


def _reply(headers: dict[str, str] | None = None, calendar: str = CALENDAR) -> bytes:
    mail = EmailMessage()
    mail["From"] = "Bo <bo@corp.example>"
    mail["To"] = "ann@corp.example"
    mail["Subject"] = "Declined: Coffee"
    mail.set_content("Declined.")
    mail.add_attachment(
        calendar.encode(), maintype="text", subtype="calendar", params={"method": "REPLY"}
    )
    raw = mail.as_bytes(policy=SMTP)
    if headers:
        extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        raw = extra.encode("utf-8", "surrogateescape") + raw
    return raw


VALID = _reply()


def _parse_safely(raw: bytes) -> ImipReply | None:
    try:
        return parse_reply(raw)
    except CalendarDataError:
        return None


def test_the_seed_reply_is_valid() -> None:
    reply = parse_reply(VALID)
    assert (reply.attendee_email, reply.senders) == ("bo@corp.example", ("bo@corp.example",))


@settings(max_examples=300)
@given(st.binary(max_size=4096))
def test_arbitrary_bytes_are_a_reply_or_a_calendar_data_error(raw: bytes) -> None:
    _parse_safely(raw)


@settings(max_examples=300)
@given(
    st.lists(
        st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255), st.sampled_from("rid")),
        min_size=1,
        max_size=12,
    )
)
def test_a_real_reply_with_bytes_replaced_inserted_or_deleted(
    edits: list[tuple[int, int, str]],
) -> None:
    raw = bytearray(VALID)
    for position, value, kind in edits:
        position %= max(len(raw), 1)
        if kind == "r" and raw:
            raw[position] = value
        elif kind == "i":
            raw.insert(position, value)
        elif raw:
            del raw[position]
    reply = _parse_safely(bytes(raw))
    if reply is not None:
        assert isinstance(reply.uid, str)
        assert isinstance(reply.attendee_email, str)
        assert all("@" in s for s in reply.senders)


@settings(max_examples=200)
@given(st.integers(0, len(VALID)))
def test_a_real_reply_cut_short(length: int) -> None:
    _parse_safely(VALID[:length])


_HEADER_TEXT = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"), max_size=200
) | st.sampled_from(
    [
        '"a@b" <c@d>, e@f',
        "=?utf-8?q?=E2=80=AE?= <bo@corp.example>",
        "<>",
        "(comment (nested) bo@corp.example",
        "bo@corp.example <mallory@evil.example>",
        "\\",
        "=?x?b?@@@?=",
        ";;;;====",
    ]
)


@settings(max_examples=300)
@given(
    st.dictionaries(
        st.sampled_from(["From", "Sender", "Reply-To", "Authentication-Results", "Message-ID"]),
        _HEADER_TEXT,
        max_size=5,
    )
)
def test_hostile_sender_and_authentication_headers(headers: dict[str, str]) -> None:
    reply = _parse_safely(_reply(headers))
    if reply is not None:
        assert all("@" in s for s in reply.senders)
        assert all(s == s.lower() for s in reply.senders)
        assert reply.authentication is None or isinstance(reply.authentication, str)


_ICAL_LINE = st.sampled_from(
    [
        "ATTENDEE:mailto:x@y",
        "ATTENDEE;PARTSTAT=;:",
        'ATTENDEE;SENT-BY="mailto:":MAILTO:',
        "SEQUENCE:-1",
        "SEQUENCE:99999999999999999999999",
        "SEQUENCE:one",
        "UID:",
        "BEGIN:VEVENT",
        "END:VEVENT",
        "BEGIN:VALARM",
        "DTSTART:2027",
        "METHOD:REQUEST",
        " folded",
        "X-\u00e9:\u00ff",
        ";;;",
    ]
)


@settings(max_examples=300)
@given(st.lists(_ICAL_LINE, max_size=20), st.integers(0, 9))
def test_hostile_calendar_lines_inside_a_reply(lines: list[str], where: int) -> None:
    base = CALENDAR.split("\r\n")
    cut = min(where + 5, len(base) - 1)
    calendar = "\r\n".join(base[:cut] + lines + base[cut:])
    _parse_safely(_reply(calendar=calendar))


def _nested(shape: list[tuple[str, int]]) -> bytes:
    """A MIME tree one level per item: (content type of the level, how many siblings)."""
    head = "From: bo@corp.example\r\nMIME-Version: 1.0\r\n"
    opening, closing = "", ""
    for depth, (kind, siblings) in enumerate(shape):
        boundary = f"b{depth}"
        opening += f'Content-Type: {kind}; boundary="{boundary}"\r\n\r\n'
        opening += "".join(
            f"--{boundary}\r\nContent-Type: text/plain\r\n\r\nsibling {n}\r\n"
            for n in range(siblings)
        )
        opening += f"--{boundary}\r\n"
        closing = f"--{boundary}--\r\n" + closing
    leaf = "Content-Type: text/calendar; method=REPLY\r\n\r\n" + CALENDAR
    return (head + opening + leaf + "\r\n" + closing).encode()


@settings(max_examples=150)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["multipart/mixed", "multipart/alternative", "multipart/related"]),
            st.integers(0, 3),
        ),
        max_size=60,
    )
)
def test_any_mime_nesting_is_read_or_refused_clearly(shape: list[tuple[str, int]]) -> None:
    raw = _nested(shape)
    if len(shape) > MAX_MIME_DEPTH:
        with pytest.raises(CalendarDataError, match="nested deeper than"):
            parse_reply(raw)
    else:
        assert parse_reply(raw).attendee_email == "bo@corp.example"


@settings(max_examples=400)
@given(st.lists(_HEADER_TEXT, max_size=3), st.text(max_size=40))
def test_authentication_results_never_raise(values: list[str], domain: str) -> None:
    found = authentication_failure(values, domain)
    assert found is None or ("DKIM" in found or "DMARC" in found)


_LOCAL = st.text("abcdefghijklmnopqrstuvwxyz0123456789._-", min_size=1, max_size=20)


@settings(max_examples=200)
@given(_LOCAL, _LOCAL, st.sampled_from(["mailto:", "MAILTO:", "MailTo:", ""]), st.booleans())
def test_an_address_compares_equal_in_any_case_with_or_without_mailto(
    local: str, domain: str, scheme: str, upper: bool
) -> None:
    address = f"{local}@{domain}.example"
    spelled = (address.upper() if upper else address).join(["", ""])
    assert mail_address(f"{scheme}{spelled}") == address.lower()
    assert mail_address(f"  {scheme}<{spelled}> ") == address.lower()
