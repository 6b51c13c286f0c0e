"""Reading an iMIP REPLY defensively (``connectors.imip.parse_reply``): who sent it, what the
receiving server's Authentication-Results say, and mail that is built to hurt a parser."""

from __future__ import annotations

import base64
from email.message import EmailMessage
from email.policy import SMTP

import pytest

from connectors.imip import authentication_failure, mail_address, parse_reply
from scheduler.core.errors import CalendarDataError
from scheduler.core.model import AttendeeStatus

CALENDAR = (
    "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//t//EN\r\nMETHOD:REPLY\r\nBEGIN:VEVENT\r\n"
    "UID:k@goodwill\r\nDTSTAMP:20270301T080000Z\r\n{sequence}"
    "ORGANIZER:mailto:ann@corp.example\r\n{attendee}\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
)


def _mail(
    attendee: str = "ATTENDEE;PARTSTAT=ACCEPTED:mailto:bo@corp.example",
    *,
    sequence: str = "SEQUENCE:2\r\n",
    headers: tuple[tuple[str, str], ...] = (("From", "Bo <bo@corp.example>"),),
) -> bytes:
    mail = EmailMessage()
    for name, value in headers:
        mail[name] = value
    mail["Subject"] = "Accepted"
    mail.set_content("Accepted")
    ics = CALENDAR.format(attendee=attendee, sequence=sequence).encode()
    mail.add_attachment(ics, maintype="text", subtype="calendar", params={"method": "REPLY"})
    return mail.as_bytes(policy=SMTP)


def test_sender_headers_and_the_attendee_are_read() -> None:
    reply = parse_reply(
        _mail(
            'ATTENDEE;SENT-BY="MAILTO:PA@Corp.example";PARTSTAT=DECLINED:MAILTO:Bo@Corp.Example',
            headers=(
                ("From", '"Diaz, Bo" <Bo@Corp.example>'),
                ("Sender", "Assistant <pa@corp.example>"),
                ("Reply-To", "bo.home@home.example"),
            ),
        )
    )
    assert reply.attendee_email == "bo@corp.example"
    assert reply.sent_by == "pa@corp.example"
    assert reply.senders == ("bo@corp.example", "pa@corp.example")
    assert reply.reply_to == ("bo.home@home.example",)
    assert reply.partstat is AttendeeStatus.DECLINED
    assert reply.sequence == 2
    assert len(reply.digest) == 64


def test_a_folded_attendee_line_is_unfolded() -> None:
    folded = (
        "ATTENDEE;CUTYPE=INDIVIDUAL;ROLE=REQ-PARTICIPANT;PARTSTAT=ACCEPTED;CN=bo\r\n"
        " @corp.exam\r\n ple:mailto:bo@corp.example"
    )
    assert parse_reply(_mail(folded)).attendee_email == "bo@corp.example"


def test_a_reply_without_sequence_has_none() -> None:
    # Exchange answering a Google invite leaves SEQUENCE out: "unknown", not "0".
    assert parse_reply(_mail(sequence="")).sequence is None


def test_a_from_with_several_addresses_names_no_sender() -> None:
    reply = parse_reply(_mail(headers=(("From", "bo@corp.example, mallory@evil.example"),)))
    assert reply.senders == ()


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("mailto:Bo@Corp.Example", "bo@corp.example"),
        ("MAILTO:bo@corp.example", "bo@corp.example"),
        ("  MailTo:bo@corp.example ", "bo@corp.example"),
        ("mailto:<bo@corp.example>", "bo@corp.example"),
        ("bo@corp.example", "bo@corp.example"),
        ("", ""),
    ],
)
def test_mail_address_strips_mailto_in_any_case(value: str, expected: str) -> None:
    assert mail_address(value) == expected


@pytest.mark.parametrize(
    ("header", "failed"),
    [
        ("mx.corp.example; dkim=fail header.d=corp.example", "DKIM"),
        ("mx.corp.example; dkim=fail header.i=@corp.example header.s=s1", "DKIM"),
        ("mx.corp.example; dkim=fail header.d=Corp.Example", "DKIM"),
        ("mx.corp.example; dkim=fail header.d=corp.example (bad sig)", "DKIM"),
        ("mx.corp.example; dmarc=fail (p=reject) header.from=corp.example", "DMARC"),
        # Microsoft 365 omits the authserv-id.
        ("spf=pass smtp.mailfrom=corp.example; dkim=fail header.d=corp.example;dmarc=pass", "DKIM"),
        (
            "mx.corp.example 1; dkim=pass header.d=corp.example; "
            "dmarc=pass header.from=corp.example",
            None,
        ),
        ("mx.corp.example; dkim=fail header.d=lists.example", None),  # a list's own signature
        ("mx.corp.example; dkim=none", None),
        ("mx.corp.example; none", None),
        ("", None),
        ("garbage ;;; = ( unclosed", None),
    ],
)
def test_authentication_results_name_a_failure_for_the_senders_domain(
    header: str, failed: str | None
) -> None:
    found = authentication_failure([header], "corp.example")
    if failed is None:
        assert found is None
    else:
        assert found is not None
        assert failed in found


def test_only_the_topmost_authentication_results_counts() -> None:
    # The receiving server prepends its header; anything below came with the mail.
    headers = [
        "mx.corp.example; dkim=pass header.d=corp.example",
        "x; dkim=fail header.d=corp.example",
    ]
    assert authentication_failure(headers, "corp.example") is None
    assert authentication_failure(list(reversed(headers)), "corp.example") is not None


def test_a_subdomain_sender_aligns_with_the_organisational_domain() -> None:
    assert authentication_failure(["mx; dkim=fail header.d=corp.example"], "mail.corp.example")


def test_parse_reply_reports_the_failed_authentication() -> None:
    raw = _mail(
        headers=(
            ("Authentication-Results", "mx.corp.example; dmarc=fail header.from=corp.example"),
            ("From", "bo@corp.example"),
        )
    )
    reply = parse_reply(raw)
    assert reply.authentication is not None
    assert "DMARC" in reply.authentication


def _nested(depth: int) -> bytes:
    body = "".join(
        f'Content-Type: multipart/mixed; boundary="b{i}"\r\n\r\n--b{i}\r\n' for i in range(depth)
    )
    body += "Content-Type: text/plain\r\n\r\nhi\r\n"
    body += "".join(f"--b{i}--\r\n" for i in reversed(range(depth)))
    return ("From: bo@corp.example\r\nMIME-Version: 1.0\r\n" + body).encode()


def test_deep_mime_nesting_is_refused_not_a_recursion_error() -> None:
    with pytest.raises(CalendarDataError, match="nested deeper than"):
        parse_reply(_nested(3000))
    with pytest.raises(CalendarDataError, match="no text/calendar"):
        parse_reply(_nested(5))  # a sane depth is read through


def test_too_many_parts_are_refused() -> None:
    parts = "".join(f"--b\r\nContent-Type: text/plain\r\n\r\n{i}\r\n" for i in range(2000))
    raw = (
        'From: bo@corp.example\r\nContent-Type: multipart/mixed; boundary="b"\r\n\r\n'
        f"{parts}--b--\r\n"
    )
    with pytest.raises(CalendarDataError, match="parts"):
        parse_reply(raw.encode())


def test_a_calendar_part_in_quoted_printable_inside_nested_multiparts_is_found() -> None:
    # Apple Mail's shape: alternative > mixed > text/calendar (QP, no method parameter).
    ics = CALENDAR.format(
        attendee="ATTENDEE;PARTSTAT=TENTATIVE:mailto:bo@corp.example", sequence=""
    )
    qp = ics.replace("=", "=3D").replace("\r\n", "=0D=0A=\r\n")
    raw = (
        "From: bo@corp.example\r\nMIME-Version: 1.0\r\n"
        "Content-Type: multipart/alternative; boundary=A\r\n\r\n"
        "--A\r\nContent-Type: text/plain\r\n\r\nhi\r\n"
        "--A\r\nContent-Type: multipart/mixed;\r\n\tboundary=B\r\n\r\n\r\n"
        "--B\r\nContent-Type: text/calendar;\r\n\tname=x.ics\r\n"
        f"Content-Transfer-Encoding: quoted-printable\r\n\r\n{qp}\r\n"
        "--B--\r\n\r\n--A--\r\n"
    )
    assert parse_reply(raw.encode()).partstat is AttendeeStatus.TENTATIVE


def test_a_base64_calendar_with_bare_lf_is_read() -> None:
    ics = CALENDAR.format(attendee="ATTENDEE;PARTSTAT=ACCEPTED:mailto:bo@corp.example", sequence="")
    payload = base64.b64encode(ics.replace("\r\n", "\n").encode()).decode()
    raw = (
        "From: bo@corp.example\nContent-Type: multipart/alternative; boundary=x\n\n"
        "--x\nContent-Type: text/calendar; method=REPLY\nContent-Transfer-Encoding: base64\n\n"
        f"{payload}\n--x--\n"
    )
    assert parse_reply(raw.encode()).partstat is AttendeeStatus.ACCEPTED


def test_a_forwarded_message_is_not_searched_for_a_reply() -> None:
    inner = _mail().decode()
    raw = (
        "From: mallory@evil.example\r\nContent-Type: multipart/mixed; boundary=f\r\n\r\n"
        f"--f\r\nContent-Type: message/rfc822\r\n\r\n{inner}\r\n--f--\r\n"
    )
    with pytest.raises(CalendarDataError, match="no text/calendar"):
        parse_reply(raw.encode())


def test_a_calendar_with_thousands_of_nested_components_is_refused_cleanly() -> None:
    ics = "BEGIN:VCALENDAR\r\nMETHOD:REPLY\r\n" + "BEGIN:X\r\n" * 3000 + "END:X\r\n" * 3000
    ics += "END:VCALENDAR\r\n"
    mail = EmailMessage()
    mail["From"] = "bo@corp.example"
    mail.add_attachment(ics.encode(), maintype="text", subtype="calendar")
    with pytest.raises(CalendarDataError):
        parse_reply(mail.as_bytes())


def test_headers_the_standard_parser_chokes_on_make_the_mail_unreadable_not_a_crash() -> None:
    # Found by tests/fuzz: the old reader raised IndexError out of the stdlib header parser.
    raw = b"Message-ID: <\r\n" + _mail()
    reply = parse_reply(raw.replace(b"From: Bo <bo@corp.example>\r\n", b"From: \r\n"))
    assert reply.senders == ()
    raw8 = bytearray(_mail())
    raw8[raw8.index(b"Subject")] = 0x80  # a stray 8-bit byte in a header name
    try:
        parse_reply(bytes(raw8))
    except CalendarDataError:
        pass
