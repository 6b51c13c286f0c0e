"""Who one event invites, and how many people each provider takes on one event.

A group meeting is ONE event with every attendee (``EventDraft.attendees``, attendee first).
:func:`invitees` is what every writer puts on the event: the draft's attendees in order, each
address once (letter case ignored) and never the organizer, refused with
:class:`~scheduler.core.errors.AttendeeLimitExceeded` above the provider's limit before anything
is sent. A group is at most 8–20 people, so the limits are a guard, not a planning rule.

The limits, and where they come from:

* Google Calendar: 200. The API's ``EventAttendee.responseStatus`` documentation: "if more than
  200 guests are invited to the event, response status is not propagated to the guests"; the
  Workspace help treats events above 200 guests differently. goodwill follows each attendee's
  answer (the quorum), so 200 is the most it can invite and still track.
* Microsoft Graph: 500. The ``event`` resource: "The maximum number of attendees included in an
  event … is 500."
* iMIP (goodwill mails the REQUEST itself, one message to every attendee): 100. RFC 5321
  §4.5.3.1.8: a server must accept at least 100 RCPT TO per message, and may refuse more.

>>> from datetime import UTC, datetime
>>> from scheduler.core.model import EventDraft, Person
>>> p = lambda e: Person(e, e.split("@")[0], "UTC")
>>> at = datetime(2027, 1, 4, 12, tzinfo=UTC)
>>> draft = EventDraft("k", p("o@x"), p("a@x"), at, at, "Lunch",
...                    extra_attendees=(p("b@x"), p("A@x"), p("o@x")))
>>> [q.email for q in invitees(draft, provider="ics", limit=None)]
['a@x', 'b@x']
"""

from __future__ import annotations

from scheduler.core.errors import AttendeeLimitExceeded
from scheduler.core.model import EventDraft, Person

__all__ = [
    "GOOGLE_MAX_ATTENDEES",
    "GRAPH_MAX_ATTENDEES",
    "IMIP_MAX_RECIPIENTS",
    "invitees",
]

GOOGLE_MAX_ATTENDEES = 200
GRAPH_MAX_ATTENDEES = 500
IMIP_MAX_RECIPIENTS = 100

_WHY = {
    "google": "Google stops tracking guests' answers above 200",
    "microsoft": "Microsoft Graph's maximum per event",
    "smtp": "the recipients one SMTP message is sure to reach (RFC 5321)",
}


def invitees(draft: EventDraft, *, provider: str, limit: int | None) -> tuple[Person, ...]:
    """The people ``draft`` invites: ``attendee`` first, then each other address once (letter
    case ignored), the organizer left out.

    Args:
        provider: named in the error (``google``, ``microsoft``, ``smtp``, ...).
        limit: the most attendees the provider takes on one event; None for no limit.

    Raises:
        AttendeeLimitExceeded: more than ``limit`` people would be invited.
    """
    # ``attendee`` always stands, as it did before groups: a one-to-one is written unchanged.
    seen = {draft.organizer.email.lower(), draft.attendee.email.lower()}
    people: list[Person] = [draft.attendee]
    for person in draft.extra_attendees:
        key = person.email.lower()
        if key not in seen:
            seen.add(key)
            people.append(person)
    if limit is not None and len(people) > limit:
        raise AttendeeLimitExceeded(
            provider=provider,
            count=len(people),
            limit=limit,
            reason=_WHY.get(provider, "the provider's limit"),
        )
    return tuple(people)
