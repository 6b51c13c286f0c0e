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
import smtplib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage, Message
from email.utils import formataddr, formatdate, getaddresses, make_msgid, parseaddr
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from icalendar import Calendar, Event, vCalAddress

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
    "PRODID",
    "ImipReply",
    "ImipSender",
    "ReplyTarget",
    "apply_reply",
    "build_cancel",
    "build_request",
    "event_calendar",
    "itip_message",
    "parse_reply",
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
    event.add(
        "attendee",
        _address(
            draft.attendee,
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
    """The iMIP ``REQUEST`` inviting ``draft.attendee`` (RFC 6047 §2, RFC 5546 §3.2.2).

    Args:
        draft: the meeting.
        sequence: the event's SEQUENCE (0 for a new meeting).
        dtstamp: when the message is made (aware); defaults to now.
    """
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
    """An attendee's answer read from an iMIP ``REPLY`` e-mail."""

    uid: str
    attendee_email: str
    partstat: AttendeeStatus
    sequence: int


def _calendar_parts(msg: Message) -> list[Message]:
    return [p for p in msg.walk() if p.get_content_type() in ("text/calendar", "application/ics")]


def parse_reply(message_bytes: bytes) -> ImipReply:
    """Read an iMIP ``METHOD:REPLY`` e-mail.

    Raises:
        CalendarDataError: no text/calendar part, not a REPLY, or no UID/ATTENDEE in it.
    """
    msg = email.message_from_bytes(message_bytes, policy=email.policy.default)
    source = f"imip:{msg.get('Message-ID', '?')}"
    for part in _calendar_parts(msg):
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            continue
        try:
            cal = Calendar.from_ical(payload)
        except ValueError as exc:
            raise CalendarDataError(source, f"unreadable text/calendar part: {exc}") from exc
        assert isinstance(cal, Calendar)
        method = str(cal.get("METHOD", part.get_param("method", "") or "")).upper()
        if method != "REPLY":
            raise CalendarDataError(source, f"expected METHOD:REPLY, got {method or 'none'!r}")
        events = cal.walk("VEVENT")
        if not events:
            raise CalendarDataError(source, "REPLY has no VEVENT")
        event = events[0]
        attendees = _as_list(event.get("ATTENDEE"))
        if not event.get("UID") or len(attendees) != 1:
            raise CalendarDataError(source, "a REPLY needs a UID and exactly one ATTENDEE")
        attendee = attendees[0]
        return ImipReply(
            uid=str(event["UID"]),
            attendee_email=_mail_of(attendee).lower(),
            partstat=parse_partstat(getattr(attendee, "params", {}).get("PARTSTAT")),
            sequence=int(event.get("SEQUENCE", 0)),
        )
    raise CalendarDataError(source, "no text/calendar part")


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
        """Send ``message`` to its To/Cc addresses, with CRLF line endings.

        Raises:
            ProviderUnavailable: connection problems or a 4xx answer (retry later).
            AuthorizationRevoked: the SMTP login was refused.
            InvalidRequest: a 5xx answer (recipient or sender refused).
        """
        headers = [str(h) for h in message.get_all("To", []) + message.get_all("Cc", [])]
        to_addrs = [addr for _, addr in getaddresses(headers) if addr]
        envelope_from = self._smtp.sender or parseaddr(str(message["From"]))[1]
        if not to_addrs or not envelope_from:
            raise ValueError("an iMIP message needs From and To")
        data = message.as_bytes(policy=email.policy.SMTP)
        try:
            with smtplib.SMTP(self._smtp.host, self._smtp.port, timeout=self._timeout_s) as smtp:
                if self._smtp.starttls:
                    smtp.starttls()
                if self._smtp.user:
                    password = self._smtp.password.get_secret_value() if self._smtp.password else ""
                    smtp.login(self._smtp.user, password)
                smtp.sendmail(envelope_from, to_addrs, data)
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
