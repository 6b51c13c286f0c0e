"""The words of the owner's e-mails: the digest and the short notices, as text and HTML.

Only what the owner needs to act: a stakeholder's name, the time on the owner's clock, the reason
goodwill gave for the slot, and links. Never a tier, a power tag or a note. Every value that
comes from a policy file or a provider (names can contain ``<``) is escaped in the HTML part.
"""

from __future__ import annotations

import html
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid
from zoneinfo import ZoneInfo

from scheduler.app.decisions import WITHDRAWN_PAIR
from scheduler.app.groups import below_quorum_counts

__all__ = [
    "DigestContent",
    "Happening",
    "HeldAnswer",
    "Notice",
    "WaitingConflict",
    "WaitingProposal",
    "below_quorum_line",
    "cancel_reason",
    "local_time",
    "render_digest",
    "render_notice",
]


@dataclass(frozen=True, slots=True)
class WaitingProposal:
    meeting_id: int
    name: str
    when: str  # on the owner's clock, zone named
    reason: str
    approve_url: str
    decline_url: str
    is_move: bool = False  # a new time for a booked coffee that got a conflict
    #: A group meeting or introduction in plain words (group, attendees, presenter); "" for
    #: a one-to-one.
    group_line: str = ""
    #: Private to the owner ("ask Maria to introduce you to Nina"): this mail is theirs.
    owner_note: str = ""


@dataclass(frozen=True, slots=True)
class WaitingConflict:
    name: str
    when: str
    note: str


@dataclass(frozen=True, slots=True)
class HeldAnswer:
    held_id: int
    name: str
    when: str
    answer: str
    sender: str


@dataclass(frozen=True, slots=True)
class Happening:
    """One line of "since the last digest", already in plain words."""

    text: str


@dataclass(frozen=True, slots=True)
class DigestContent:
    owner_email: str
    owner_name: str
    zone: str
    page_url: str
    proposals: tuple[WaitingProposal, ...] = ()
    conflicts: tuple[WaitingConflict, ...] = ()
    held: tuple[HeldAnswer, ...] = ()
    happened: tuple[Happening, ...] = ()
    since: datetime | None = None

    @property
    def subject(self) -> str:
        n = len(self.proposals)
        if n:
            return f"goodwill: {n} proposal{'s wait' if n != 1 else ' waits'} for you"
        waiting = len(self.conflicts) + len(self.held)
        if waiting:
            return f"goodwill: {waiting} thing{'s wait' if waiting != 1 else ' waits'} for you"
        return "goodwill: your digest (nothing waits for you)"


@dataclass(frozen=True, slots=True)
class Notice:
    owner_email: str
    owner_name: str
    subject: str
    line: str
    page_url: str
    actions: tuple[tuple[str, str], ...] = field(default=())  # (label, url)


def local_time(moment: datetime, zone: str) -> str:
    """``Mon 7 Dec 10:00 (Europe/London)``: a moment on the owner's clock."""
    local = moment.astimezone(ZoneInfo(zone))
    return f"{local:%a} {local.day} {local:%b %H:%M} ({zone})"


#: Why a meeting was cancelled, by its audit detail's start, in the owner's words (the page's).
_CANCEL_REASONS = (
    (WITHDRAWN_PAIR, "their side booked a meeting with you first"),
    ("pair_taken", "their side booked a meeting with you first"),
    ("cancelled by the owner", "you cancelled it"),
    ("declined by the owner", "you declined it"),
    ("cancelled at the provider", "it was cancelled in the calendar"),
    ("unanswered", "the slot passed without an answer"),
    ("slot_taken", "the slot was taken before it could be booked; goodwill plans again"),
    ("stakeholder no longer in the policy", "they are no longer in your policy"),
    ("owner removed", "your policy was removed"),
    ("the meeting it would move is no longer booked", "the meeting it would move is gone"),
)


def cancel_reason(detail: str) -> str:
    """The plain reason for a cancellation's audit ``detail``; "" when none is known."""
    return next((why for start, why in _CANCEL_REASONS if detail.startswith(start)), "")


def below_quorum_line(kind: str, group: str, when: str, detail: str) -> str:
    """``Lunch design-data-lunch on …: 2 of 3 declined; it needs 2 attending to stand — …``."""
    found = below_quorum_counts(detail)
    counts = (
        f"{found[0]} of {found[1]} declined; it needs {found[2]} attending to stand"
        if found
        else "too many declined for it to stand"
    )
    return f"{kind.capitalize()} {group} on {when}: {counts} — decide whether to keep or cancel it"


def _envelope(
    subject: str, *, sender: str, to: tuple[str, str], now: datetime, text: str, page: str
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = formataddr(to)
    message["Subject"] = subject
    message["Date"] = format_datetime(now)
    domain = sender.rsplit("@", 1)[-1].strip("<> ") or "goodwill.invalid"
    message["Message-ID"] = make_msgid("goodwill", domain=domain)
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(text)
    message.add_alternative(page, subtype="html")
    return message


def _e(value: str) -> str:
    return html.escape(value, quote=True)


def _link(url: str, label: str) -> str:
    return f'<a href="{_e(url)}">{_e(label)}</a>'


def _page(title: str, body: list[str]) -> str:
    return (
        '<!DOCTYPE html>\n<html><head><meta charset="utf-8"><title>'
        + _e(title)
        + "</title></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def _digest_text(c: DigestContent) -> str:
    lines = [f"Hello {c.owner_name},", ""]
    if c.proposals:
        lines.append("Proposals waiting for your approval:")
        for p in c.proposals:
            what = "new time for your coffee with" if p.is_move else "coffee with"
            head = p.group_line or f"{what} {p.name}"
            lines.append(f"- {head}, {p.when}")
            if p.reason:
                lines.append(f"  why: {p.reason}")
            if p.owner_note:
                lines.append(f"  note for you only: {p.owner_note}")
            lines += [f"  approve: {p.approve_url}", f"  decline: {p.decline_url}"]
        lines.append("")
    if c.conflicts:
        lines.append("Conflicts waiting for your answer:")
        lines += [f"- {x.name}, {x.when}: {x.note}" for x in c.conflicts]
        lines.append("")
    if c.held:
        lines.append("Answers held for you (sent by someone other than the person invited):")
        lines += [
            f"- {h.answer} for {h.name}, {h.when}, from {h.sender} "
            f"(goodwill replies --accept {h.held_id})"
            for h in c.held
        ]
        lines.append("")
    lines.append("Since your last digest:" if c.since else "Lately:")
    lines += [f"- {h.text}" for h in c.happened] or ["- nothing new"]
    lines += ["", f"Your page: {c.page_url}", "", f"Times are on your clock ({c.zone})."]
    return "\n".join(lines) + "\n"


def _digest_html(c: DigestContent) -> str:
    body = [f"<p>Hello {_e(c.owner_name)},</p>"]
    if c.proposals:
        body.append("<h2>Proposals waiting for your approval</h2><ul>")
        for p in c.proposals:
            what = "New time for your coffee with" if p.is_move else "Coffee with"
            why = f"<br>Why: {_e(p.reason)}" if p.reason else ""
            if p.owner_note:
                why += f"<br>Note for you only: {_e(p.owner_note)}"
            head = f"{what} <b>{_e(p.name)}</b>"
            if p.group_line:
                head = f"<b>{_e(p.group_line)}</b>"
            body.append(
                f"<li>{head}, {_e(p.when)}{why}<br>"
                f"{_link(p.approve_url, 'Approve')} · {_link(p.decline_url, 'Decline')}</li>"
            )
        body.append("</ul>")
    if c.conflicts:
        body.append("<h2>Conflicts waiting for your answer</h2><ul>")
        body += [f"<li><b>{_e(x.name)}</b>, {_e(x.when)}: {_e(x.note)}</li>" for x in c.conflicts]
        body.append("</ul>")
    if c.held:
        body.append("<h2>Answers held for you</h2><ul>")
        body += [
            f"<li>{_e(h.answer)} for <b>{_e(h.name)}</b>, {_e(h.when)}, from {_e(h.sender)}</li>"
            for h in c.held
        ]
        body.append("</ul>")
    body.append(f"<h2>{'Since your last digest' if c.since else 'Lately'}</h2><ul>")
    body += [f"<li>{_e(h.text)}</li>" for h in c.happened] or ["<li>Nothing new.</li>"]
    body.append("</ul>")
    body.append(f"<p>{_link(c.page_url, 'Open your goodwill page')}</p>")
    body.append(f"<p><small>Times are on your clock ({_e(c.zone)}).</small></p>")
    return _page(c.subject, body)


def render_digest(c: DigestContent, *, sender: str, now: datetime) -> EmailMessage:
    """The digest as a multipart/alternative e-mail (text, then HTML) to the owner."""
    return _envelope(
        c.subject,
        sender=sender,
        to=(c.owner_name, c.owner_email),
        now=now,
        text=_digest_text(c),
        page=_digest_html(c),
    )


def render_notice(n: Notice, *, sender: str, now: datetime) -> EmailMessage:
    """One event's short notice, text and HTML."""
    text = [f"Hello {n.owner_name},", "", n.line, ""]
    text += [f"{label}: {url}" for label, url in n.actions]
    text += [f"Your page: {n.page_url}"]
    links = " · ".join(_link(url, label) for label, url in n.actions)
    body = [f"<p>Hello {_e(n.owner_name)},</p>", f"<p>{_e(n.line)}</p>"]
    if links:
        body.append(f"<p>{links}</p>")
    body.append(f"<p>{_link(n.page_url, 'Open your goodwill page')}</p>")
    return _envelope(
        n.subject,
        sender=sender,
        to=(n.owner_name, n.owner_email),
        now=now,
        text="\n".join(text) + "\n",
        page=_page(n.subject, body),
    )
