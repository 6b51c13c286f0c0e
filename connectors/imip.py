"""E-mailed invitations (iMIP, RFC 6047) for calendars that do not schedule by themselves.

A CalDAV server without RFC 6638 scheduling (Radicale) stores the organizer's event but never
tells the attendee. Then we e-mail the iTIP message (RFC 5546) ourselves: a ``REQUEST`` to
invite, a ``CANCEL`` (higher ``SEQUENCE``, ``STATUS:CANCELLED``) to call it off. The attendee's
client answers with a ``REPLY`` e-mail, which :func:`parse_reply` reads and :func:`apply_reply`
writes into the organizer's stored copy, so the connector's ``event_state`` sees the answer.

Wire rules we keep (none of the common parsers checks them, see test-peers.md §2.3):
the ``method`` parameter of the ``text/calendar`` part equals the VCALENDAR ``METHOD``; the
calendar part has CRLF line endings and is base64-encoded so they survive transport; DTSTART and
DTEND carry the organizer's TZID with its VTIMEZONE; messages go out with CRLF line endings
(Xandikos' and other aiosmtpd-based receivers reject bare LF).
"""

from __future__ import annotations

import copy
import email
import email.policy
import hashlib
import re
import smtplib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.errors import HeaderParseError
from email.message import EmailMessage, Message
from email.parser import BytesParser
from email.utils import formataddr, formatdate, getaddresses, make_msgid, parseaddr
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from icalendar import Calendar, Event, vCalAddress

from connectors.attendees import IMIP_MAX_RECIPIENTS, invitees
from connectors.ical_common import event_uid, parse_partstat
from scheduler.core.errors import (
    AuthorizationRevoked,
    CalendarDataError,
    ConfigurationError,
    InvalidRequest,
    ProviderUnavailable,
)
from scheduler.core.model import AttendeeStatus, EventDraft, Person
from scheduler.core.ports import ReplyRecorder
from scheduler.settings import SmtpSettings

__all__ = [
    "MAX_MIME_DEPTH",
    "MAX_MIME_PARTS",
    "PRODID",
    "ImipReply",
    "ImipSender",
    "ReplyTarget",
    "apply_reply",
    "authentication_failure",
    "build_cancel",
    "build_request",
    "event_calendar",
    "itip_message",
    "mail_address",
    "parse_reply",
    "send_smtp",
]

PRODID = "-//goodwill//goodwill coffee scheduler//EN"
_PROVIDER = "smtp"


def _zone(person: Person) -> ZoneInfo:
    try:
        return ZoneInfo(person.timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigurationError(f"{person.email}: unknown time zone {person.timezone!r}") from exc


def _address(person: Person, **params: str) -> vCalAddress:
    addr = vCalAddress(f"mailto:{person.email}")
    if person.name:
        addr.params["CN"] = person.name
    for key, value in params.items():
        addr.params[key.replace("_", "-").upper()] = value
    return addr


def event_calendar(
    draft: EventDraft,
    *,
    dtstamp: datetime,
    sequence: int = 0,
    cancelled: bool = False,
) -> Calendar:
    """The VCALENDAR (without METHOD) for ``draft``: what a CalDAV server stores.

    Args:
        draft: the meeting; its times are shown in the organizer's zone (TZID + VTIMEZONE), so
            a client renders the wall-clock time the organizer chose even across DST rules.
        dtstamp: aware time of creation of this iCalendar object (RFC 5545 DTSTAMP).
        sequence: the revision number (RFC 5545 SEQUENCE); bump it for every significant change.
        cancelled: mark the event ``STATUS:CANCELLED`` (otherwise ``CONFIRMED``).
    """
    if draft.start.tzinfo is None or draft.end.tzinfo is None:
        raise ValueError("EventDraft times must be aware")
    zone = _zone(draft.organizer)
    cal = Calendar()
    cal.add("prodid", PRODID)
    cal.add("version", "2.0")
    cal.add("calscale", "GREGORIAN")
    event = Event()
    event.add("uid", event_uid(draft.idempotency_key))
    event.add("dtstamp", dtstamp.astimezone(UTC))
    event.add("sequence", sequence)
    event.add("dtstart", draft.start.astimezone(zone))
    event.add("dtend", draft.end.astimezone(zone))
    event.add("summary", draft.title)
    if draft.description:
        event.add("description", draft.description)
    if draft.location:
        event.add("location", draft.location)
    event.add("status", "CANCELLED" if cancelled else "CONFIRMED")
    event.add("transp", "OPAQUE")
    event.add("organizer", _address(draft.organizer))
    # One ATTENDEE line per person (a group's too), attendee first, each asked to answer.
    for person in invitees(draft, provider=_PROVIDER, limit=None):
        event.add(
            "attendee",
            _address(
                person,
                cutype="INDIVIDUAL",
                role="REQ-PARTICIPANT",
                partstat="NEEDS-ACTION",
                rsvp="TRUE",
            ),
        )
    cal.add_component(event)
    # A VTIMEZONE for just the event's days: one observance (two across a DST change) and no
    # multi-valued RDATE, which Radicale 3.9 truncates to its first value when storing, so a
    # 1970–2038 definition would come back with wrong offsets for anyone using the VTIMEZONE.
    cal.add_missing_timezones(
        first_date=draft.start.astimezone(zone).date() - timedelta(days=1),
        last_date=draft.end.astimezone(zone).date() + timedelta(days=1),
    )
    return cal


def _first_event(cal: Calendar) -> Event:
    events = cal.walk("VEVENT")
    if not events:
        raise ValueError("calendar has no VEVENT")
    event = events[0]
    assert isinstance(event, Event)
    return event


def _mail_of(address: object) -> str:
    text = str(address or "")
    return text[7:] if text.lower().startswith("mailto:") else text


def _as_list(value: object) -> list[object]:
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def itip_message(cal: Calendar, method: str, *, sender: str | None = None) -> EmailMessage:
    """Wrap the VCALENDAR ``cal`` as an RFC 6047 iMIP e-mail with ``METHOD:<method>``.

    The message goes from the ORGANIZER to every ATTENDEE (REQUEST/CANCEL). ``cal`` is not
    changed; a copy gets the METHOD (and ``STATUS:CANCELLED`` for CANCEL).

    Args:
        cal: a VCALENDAR with one VEVENT that has ORGANIZER and ATTENDEE.
        method: ``REQUEST`` or ``CANCEL``.
        sender: the mailbox that actually sends (``Sender:``), when it is not the organizer.
    """
    method = method.upper()
    out = copy.deepcopy(cal)
    out.pop("METHOD", None)
    out.add("method", method)
    event = _first_event(out)
    if method == "CANCEL":
        event.pop("STATUS", None)
        event.add("status", "CANCELLED")
    organizer = event.get("ORGANIZER")
    attendees = _as_list(event.get("ATTENDEE"))
    if organizer is None or not attendees:
        raise ValueError(f"an iTIP {method} needs ORGANIZER and ATTENDEE")
    summary = str(event.get("SUMMARY", ""))
    start = event.decoded("DTSTART")

    msg = EmailMessage()
    org_name = getattr(organizer, "params", {}).get("CN", "")
    msg["From"] = formataddr((str(org_name), _mail_of(organizer)))
    if sender and sender.lower() != _mail_of(organizer).lower():
        msg["Sender"] = sender
    msg["To"] = ", ".join(
        formataddr((str(getattr(a, "params", {}).get("CN", "")), _mail_of(a))) for a in attendees
    )
    verb = "Cancelled" if method == "CANCEL" else "Invitation"
    msg["Subject"] = f"{verb}: {summary}"
    msg["Date"] = formatdate(usegmt=True)
    msg["Message-ID"] = make_msgid(domain="goodwill")
    when = f"{start:%A %d %B %Y %H:%M} ({start.tzinfo})" if isinstance(start, datetime) else ""
    if method == "CANCEL":
        text = f"{summary}\n{when}\n\nThis meeting has been cancelled.\n"
    else:
        text = f"{summary}\n{when}\n\nPlease answer with your calendar (accept or decline).\n"
    msg.set_content(text)
    # Bytes with CRLF, base64-encoded: the calendar part's line endings survive any transport.
    ics = out.to_ical().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    msg.add_alternative(
        ics,
        maintype="text",
        subtype="calendar",
        params={"method": method, "charset": "UTF-8"},
        cte="base64",
    )
    return msg


def build_request(
    draft: EventDraft, *, sequence: int = 0, dtstamp: datetime | None = None
) -> EmailMessage:
    """The iMIP ``REQUEST`` inviting every attendee of ``draft`` (RFC 6047 §2, RFC 5546 §3.2.2).

    One message to all of them (every ATTENDEE in ``To``), as calendar clients send it: the
    VEVENT names them all anyway, and each answers for themself with their own REPLY.

    Args:
        draft: the meeting.
        sequence: the event's SEQUENCE (0 for a new meeting).
        dtstamp: when the message is made (aware); defaults to now.

    Raises:
        AttendeeLimitExceeded: more recipients than one SMTP message is sure to reach.
    """
    invitees(draft, provider=_PROVIDER, limit=IMIP_MAX_RECIPIENTS)
    stamp = dtstamp or datetime.now(UTC)
    return itip_message(event_calendar(draft, dtstamp=stamp, sequence=sequence), "REQUEST")


def build_cancel(
    draft: EventDraft, sequence: int, *, dtstamp: datetime | None = None
) -> EmailMessage:
    """The iMIP ``CANCEL`` for ``draft`` (RFC 5546 §3.2.5).

    Args:
        draft: the meeting that was invited.
        sequence: must be higher than the SEQUENCE of the REQUEST it cancels.
        dtstamp: when the message is made (aware); defaults to now.
    """
    stamp = dtstamp or datetime.now(UTC)
    cal = event_calendar(draft, dtstamp=stamp, sequence=sequence, cancelled=True)
    return itip_message(cal, "CANCEL")


@dataclass(frozen=True, slots=True)
class ImipReply:
    """An attendee's answer read from an iMIP ``REPLY`` e-mail.

    Attributes:
        uid: the event's UID.
        attendee_email: the one ATTENDEE the reply answers for (lower case, no ``mailto:``).
        partstat: their answer.
        sequence: the SEQUENCE the reply refers to; None when the reply carries none (Exchange
            answering a Google invite leaves it out), so no staleness check can be made.
        senders: who sent the mail: the address in ``From`` (when it holds exactly one), then
            the one in ``Sender`` (a delegate, or a calendar service mailing for the person).
        reply_to: the ``Reply-To`` addresses (a CalDAV server mailing from a system address
            puts the attendee there); informative only, they vouch for nothing.
        sent_by: the ATTENDEE's ``SENT-BY`` parameter (a delegate answering), or "".
        authentication: why the receiving server's Authentication-Results say the sender's
            domain failed DKIM or DMARC; None when they do not say so.
        digest: SHA-256 (hex) of the raw message, so one mail read twice is one answer.
        message_id: the ``Message-ID`` header, for logs and errors ("?" when absent).
    """

    uid: str
    attendee_email: str
    partstat: AttendeeStatus
    sequence: int | None
    senders: tuple[str, ...] = ()
    reply_to: tuple[str, ...] = ()
    sent_by: str = ""
    authentication: str | None = None
    digest: str = ""
    message_id: str = "?"
    #: ``REPLY`` (an answer) or ``COUNTER`` (a new time proposed instead: ``proposed``).
    method: str = "REPLY"
    #: For a COUNTER: the (start, end) the attendee proposes, aware UTC.
    proposed: tuple[datetime, datetime] | None = None


#: MIME containers nested deeper than this make a mail unreadable (a real REPLY has 2 or 3).
MAX_MIME_DEPTH = 16
#: Parts of any kind beyond this make a mail unreadable (a real REPLY has fewer than 10).
MAX_MIME_PARTS = 500
_CALENDAR_TYPES = ("text/calendar", "application/ics")
_HEADERS_ONLY = BytesParser(policy=email.policy.default)


def mail_address(value: object) -> str:
    """The bare, lower-case address of a calendar user or mailbox value.

    ``mailto:`` is stripped in any letter case (RFC 3986 schemes are case-insensitive), as are
    surrounding spaces and angle brackets.

    >>> mail_address("MAILTO:<Bo@Corp.Example>")
    'bo@corp.example'
    """
    text = str(value or "").strip()
    if text[:7].lower() == "mailto:":
        text = text[7:].strip()
    if text.startswith("<") and text.endswith(">"):
        text = text[1:-1].strip()
    return text.lower()


def _header_addresses(msg: Message, name: str) -> list[str]:
    """Addresses in header ``name`` (lower case); [] when absent or unreadable."""
    try:
        values = [str(v) for v in msg.get_all(name, [])]
    except (ValueError, TypeError, IndexError, AttributeError, HeaderParseError):
        return []
    return [mail_address(addr) for _, addr in getaddresses(values) if "@" in addr]


def _strip_comments(text: str) -> str:
    """``text`` without RFC 5322 comments (nested parentheses), quoted strings kept."""
    out: list[str] = []
    depth = 0
    quoted = escaped = False
    for ch in text:
        if escaped:
            escaped = False
            if depth == 0:
                out.append(ch)
            continue
        if ch == "\\":
            escaped = True
            if depth == 0:
                out.append(ch)
            continue
        if quoted:
            quoted = ch != '"'
            out.append(ch)
        elif ch == "(":
            depth += 1
        elif ch == ")" and depth:
            depth -= 1
        elif depth == 0:
            quoted = ch == '"'
            out.append(ch)
    return "".join(out)


def _aligned(domain: str, sender_domain: str) -> bool:
    """Relaxed alignment: the same domain, or the sender's is below it (DMARC, RFC 7489 §3.1)."""
    domain = domain.strip().strip('"').lstrip("@").rstrip(".").lower()
    return bool(domain) and (sender_domain == domain or sender_domain.endswith("." + domain))


def authentication_failure(values: Sequence[str], sender_domain: str) -> str | None:
    """Why the receiving server says ``sender_domain`` failed DKIM or DMARC, or None.

    Only the topmost ``Authentication-Results`` header counts (RFC 8601 §5: the receiving
    server prepends its own; any header below it came with the mail and may be forged). A
    ``dkim=fail`` whose ``header.d`` (or ``header.i``) is that domain, or a ``dmarc=fail`` whose
    ``header.from`` is, is a failure; other methods, other domains and ``none``/``neutral``
    results are not.

    Args:
        values: the Authentication-Results header values, topmost first.
        sender_domain: the domain of the address in From.
    """
    if not values or not sender_domain:
        return None
    sender_domain = sender_domain.lower().rstrip(".")
    statements = _strip_comments(str(values[0])).split(";")
    # The authserv-id comes first (RFC 8601 §2.2); Microsoft 365 leaves it out.
    if statements and "=" not in statements[0]:
        statements = statements[1:]
    for statement in statements:
        tokens = statement.split()
        if not tokens or "=" not in tokens[0]:
            continue
        method, _, result = tokens[0].partition("=")
        method = method.split("/", 1)[0].strip().lower()
        result = result.strip().lower()
        props: dict[str, str] = {}
        for token in tokens[1:]:
            key, sep, value = token.partition("=")
            if sep:
                props[key.strip().lower()] = value.strip().strip('"')
        if result != "fail":
            continue
        if method == "dkim":
            signer = props.get("header.d") or props.get("header.i", "").rpartition("@")[2]
            if _aligned(signer, sender_domain):
                return f"DKIM failed for {sender_domain} (the receiving server's verdict)"
        elif method == "dmarc" and _aligned(props.get("header.from", ""), sender_domain):
            return f"DMARC failed for {sender_domain} (the receiving server's verdict)"
    return None


def _subparts(body: bytes, boundary: str) -> list[bytes]:
    """The body parts of a multipart ``body`` split on ``boundary`` (RFC 2046 §5.1.1)."""
    delimiter = re.compile(
        rb"(?:^|\r?\n)--"
        + re.escape(boundary.encode("ascii", "replace"))
        + rb"(--)?[ \t]*(?=\r?\n|$)"
    )
    parts: list[bytes] = []
    position: int | None = None  # None: still in the preamble
    for match in delimiter.finditer(body):
        if position is not None:
            parts.append(body[position : match.start()])
        if match.group(1):  # the close delimiter: the rest is epilogue
            return parts
        end = match.end()
        position = end + (
            2 if body[end : end + 2] == b"\r\n" else 1 if body[end : end + 1] == b"\n" else 0
        )
    if position is not None:
        parts.append(body[position:])  # no close delimiter: take what is there
    return parts


def _calendar_parts(top: Message, source: str) -> list[Message]:
    """The calendar parts of ``top`` (parsed headers-only), walked without recursion.

    Each part is parsed headers-only and multipart bodies are split here, with a depth and a
    part-count bound, so a mail of thousands of nested parts is refused with a clear error
    instead of exhausting the stack (the standard library's full parser recurses per level).
    ``message/rfc822`` parts are not entered: a forwarded mail is not its forwarder's answer.

    Raises:
        CalendarDataError: nested deeper than :data:`MAX_MIME_DEPTH`, or more than
            :data:`MAX_MIME_PARTS` parts.
    """
    found: list[Message] = []
    stack: list[tuple[Message, int]] = [(top, 0)]
    seen = 0
    while stack:
        part, depth = stack.pop()
        seen += 1
        if seen > MAX_MIME_PARTS:
            raise CalendarDataError(source, f"more than {MAX_MIME_PARTS} MIME parts")
        content_type = part.get_content_type()
        if content_type in _CALENDAR_TYPES:
            found.append(part)
            continue
        if part.get_content_maintype() != "multipart":
            continue
        if depth >= MAX_MIME_DEPTH:
            raise CalendarDataError(
                source, f"MIME parts nested deeper than {MAX_MIME_DEPTH} levels"
            )
        boundary = part.get_boundary()
        payload = part.get_payload()
        if not boundary or not isinstance(payload, str):
            continue
        # The parser decoded the body as ASCII with surrogateescape: this gives the bytes back
        # (anything it replaced instead is kept as UTF-8).
        body = payload.encode("utf-8", "surrogateescape")
        children = [
            _HEADERS_ONLY.parsebytes(sub, headersonly=True) for sub in _subparts(body, boundary)
        ]
        stack.extend((child, depth + 1) for child in reversed(children))
    return found


#: What the standard library's header and MIME parsers raise on malformed input (found by
#: tests/fuzz/test_imip_fuzz.py: e.g. IndexError for ``Message-ID: <``, UnicodeError for stray
#: 8-bit bytes); any of them makes the mail unreadable, never crashes the batch.
_MALFORMED = (ValueError, TypeError, LookupError, AttributeError, HeaderParseError)


def parse_reply(message_bytes: bytes) -> ImipReply:
    """Read an iMIP ``METHOD:REPLY`` e-mail, and who sent it.

    Untrusted input: the MIME structure is walked with bounds (:func:`_calendar_parts`), the
    first calendar part is read, and only top-level VEVENTs are looked at.

    Raises:
        CalendarDataError: no calendar part, an unreadable one, not a REPLY, no UID, not
            exactly one ATTENDEE, a MIME structure beyond the bounds, or headers the parser
            cannot read.
    """
    try:
        return _read_reply(message_bytes)
    except CalendarDataError:
        raise
    except _MALFORMED as exc:
        raise CalendarDataError(
            "imip", f"malformed mail ({type(exc).__name__}: {str(exc)[:200]})"
        ) from exc


def _read_reply(message_bytes: bytes) -> ImipReply:
    digest = hashlib.sha256(message_bytes).hexdigest()
    top = _HEADERS_ONLY.parsebytes(message_bytes, headersonly=True)
    try:
        message_id = str(top.get("Message-ID", "?") or "?").strip()[:200]
    except _MALFORMED:  # "Message-ID: <" makes the stdlib raise IndexError
        message_id = "?"
    source = f"imip:{message_id}"
    for part in _calendar_parts(top, source):
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            continue
        try:
            cal = Calendar.from_ical(payload)
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise CalendarDataError(source, f"unreadable text/calendar part: {exc}") from exc
        if not isinstance(cal, Calendar):
            raise CalendarDataError(source, "the text/calendar part holds no VCALENDAR")
        method = str(cal.get("METHOD", part.get_param("method", "") or "")).upper()
        if method not in ("REPLY", "COUNTER"):
            raise CalendarDataError(
                source, f"expected METHOD:REPLY or COUNTER, got {method or 'none'!r}"
            )
        events = [c for c in cal.subcomponents if isinstance(c, Event)]
        if not events:
            raise CalendarDataError(source, f"{method} has no VEVENT")
        event = events[0]
        attendees = _as_list(event.get("ATTENDEE"))
        if not event.get("UID") or len(attendees) != 1:
            raise CalendarDataError(source, "a REPLY needs a UID and exactly one ATTENDEE")
        attendee = attendees[0]
        params = getattr(attendee, "params", {})
        try:
            sequence = int(str(event["SEQUENCE"])) if "SEQUENCE" in event else None
        except ValueError as exc:
            raise CalendarDataError(source, f"SEQUENCE is not a number: {exc}") from exc
        from_addresses = _header_addresses(top, "From")
        senders = [from_addresses[0]] if len(from_addresses) == 1 else []
        senders += [a for a in _header_addresses(top, "Sender")[:1] if a not in senders]
        domain = from_addresses[0].rpartition("@")[2] if len(from_addresses) == 1 else ""
        try:
            results = [str(v) for v in top.get_all("Authentication-Results", [])]
        except (ValueError, TypeError, IndexError, AttributeError, HeaderParseError):
            results = []
        return ImipReply(
            uid=str(event["UID"]),
            attendee_email=mail_address(attendee),
            partstat=parse_partstat(params.get("PARTSTAT")),
            sequence=sequence,
            senders=tuple(senders),
            reply_to=tuple(_header_addresses(top, "Reply-To")),
            sent_by=mail_address(params.get("SENT-BY", "")),
            authentication=authentication_failure(results, domain),
            digest=digest,
            message_id=message_id,
            method=method,
            proposed=_proposed_times(event, source) if method == "COUNTER" else None,
        )
    raise CalendarDataError(source, "no text/calendar part")


def _proposed_times(event: Event, source: str) -> tuple[datetime, datetime]:
    """The new DTSTART/DTEND (or DURATION) a COUNTER proposes, as aware UTC."""
    try:
        start = event.decoded("DTSTART")
        end = event.decoded("DTEND") if "DTEND" in event else start + event.decoded("DURATION")
    except (KeyError, ValueError, TypeError) as exc:
        raise CalendarDataError(source, f"a COUNTER needs DTSTART and DTEND: {exc}") from exc
    if not (isinstance(start, datetime) and isinstance(end, datetime)):
        raise CalendarDataError(source, "a COUNTER must propose a timed slot, not whole days")
    if start.tzinfo is None or end.tzinfo is None:
        raise CalendarDataError(source, "a COUNTER's times need a zone (floating time)")
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    if not start < end:
        raise CalendarDataError(source, "a COUNTER's slot ends before it starts")
    return start, end


#: Where a REPLY is applied: the organizer's stored copy (CalDAV, the ICS directory).
ReplyTarget = ReplyRecorder


def apply_reply(target: ReplyTarget, organizer: Person, reply: ImipReply) -> bool:
    """Write ``reply``'s PARTSTAT into the organizer's copy of event ``reply.uid``.

    Returns:
        True when the stored copy changed; False when the reply is stale (older SEQUENCE), the
        attendee is not invited, or the event is gone.
    """
    return target.set_attendee_status(
        organizer, reply.uid, reply.attendee_email, reply.partstat, sequence=reply.sequence
    )


class ImipSender:
    """Sends iMIP messages over SMTP (one connection per message; invites are rare).

    Args:
        smtp: server, port, STARTTLS and login settings.
        timeout_s: socket timeout in seconds for connect and each SMTP command.
    """

    def __init__(self, smtp: SmtpSettings, *, timeout_s: float = 30.0) -> None:
        self._smtp = smtp
        self._timeout_s = timeout_s

    @property
    def sender(self) -> str | None:
        """The configured envelope sender, if any."""
        return self._smtp.sender

    def send(self, message: EmailMessage) -> None:
        """Send ``message`` to its To/Cc addresses, with CRLF line endings (:func:`send_smtp`)."""
        send_smtp(self._smtp, message, timeout_s=self._timeout_s)


def send_smtp(smtp: SmtpSettings, message: EmailMessage, *, timeout_s: float = 30.0) -> None:
    """Send ``message`` to its To/Cc addresses over SMTP, one connection, CRLF line endings.

    Shared by every mail goodwill sends (iMIP invites, the owner's digest and notices).

    Raises:
        ProviderUnavailable: connection problems or a 4xx answer (retry later).
        AuthorizationRevoked: the SMTP login was refused.
        InvalidRequest: a 5xx answer (recipient or sender refused).
    """
    headers = [str(h) for h in message.get_all("To", []) + message.get_all("Cc", [])]
    to_addrs = [addr for _, addr in getaddresses(headers) if addr]
    envelope_from = smtp.sender or parseaddr(str(message["From"]))[1]
    if not to_addrs or not envelope_from:
        raise ValueError("an e-mail needs From and To")
    data = message.as_bytes(policy=email.policy.SMTP)
    try:
        with smtplib.SMTP(smtp.host, smtp.port, timeout=timeout_s) as client:
            if smtp.starttls:
                client.starttls()
            if smtp.user:
                password = smtp.password.get_secret_value() if smtp.password else ""
                client.login(smtp.user, password)
            client.sendmail(envelope_from, to_addrs, data)
    except smtplib.SMTPAuthenticationError as exc:
        raise AuthorizationRevoked(
            f"SMTP login refused: {exc.smtp_code}", provider=_PROVIDER
        ) from exc
    except smtplib.SMTPRecipientsRefused as exc:
        raise InvalidRequest(
            f"SMTP refused {len(exc.recipients)} recipient(s)", provider=_PROVIDER
        ) from exc
    except smtplib.SMTPResponseException as exc:
        cls = ProviderUnavailable if 400 <= exc.smtp_code < 500 else InvalidRequest
        raise cls(f"SMTP answered {exc.smtp_code}", provider=_PROVIDER) from exc
    except (smtplib.SMTPException, OSError) as exc:
        raise ProviderUnavailable(f"SMTP failed: {exc}", provider=_PROVIDER) from exc
