"""What differs between CalDAV servers, as data in one place.

Each server gets one :class:`ServerQuirks` record of feature flags. The CalDAV connector reads
these flags and never tests a server's name itself, so supporting a new server means adding a
row here (and, ideally, running ``tests/integration/test_caldav_connector.py`` against it).

The values for ``radicale`` and ``xandikos`` are exercised by our integration tests against the
real servers (Radicale 3.9, Xandikos 0.4.10). ``cyrus`` and ``davical`` come from the measurements
in ``shared/reference/test-peers.md`` §1.1 and are not exercised by our tests. ``generic`` is the
cautious default for an unknown server: only the calendar-query every CalDAV server must answer,
and invites by e-mail because we cannot count on server-side scheduling.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from scheduler.core.errors import ConfigurationError

__all__ = ["QUIRKS", "ServerQuirks", "quirks_for"]


@dataclass(frozen=True, slots=True)
class ServerQuirks:
    """Feature flags of one CalDAV server implementation.

    Attributes:
        supports_free_busy_report: answers the RFC 4791 §7.10 ``free-busy-query`` REPORT on a
            calendar collection, used for stakeholders; otherwise their busy time comes from a
            calendar-query. The owner's own calendar is always read by calendar-query (event
            detail and our key, for the busy rules and the conflict watch).
        free_busy_includes_free: the free-busy reply also carries ``FBTYPE=FREE`` periods (Radicale
            emits one per cancelled event); the connector drops FREE periods either way.
        merges_free_busy_overlaps: overlapping busy periods come back merged (informational; the
            core merges intervals anyway).
        supports_expand: the server expands recurrences in a calendar-query (``<C:expand>``).
            The connector lets the ``caldav`` library expand client-side regardless, because that
            gives the same answer on every server; the flag documents the server.
        schedules_itip: the server does RFC 6638 implicit scheduling: a PUT of an organizer's
            event delivers the invitation to attendees (their inbox/calendar, or iMIP for external
            ones) and attendees' replies update the organizer's copy.
        needs_imip: we must e-mail iTIP messages ourselves (RFC 6047) for attendees to be invited.
        cancel_deletes_resource: cancel by DELETE of the organizer's resource; otherwise the
            resource is kept with ``STATUS:CANCELLED`` and ``SEQUENCE`` + 1, which both RFC 6638
            servers turn into a METHOD:CANCEL and which keeps the event readable for
            ``event_state``.
        cross_user_reads: one account may read another user's calendar (with rights configured).
            Xandikos multi-user refuses (and answers 500 rather than 403), so there each person is
            read with their own identity.
        rejected_put_may_schedule: a PUT refused with 412 may still have delivered a scheduling
            message (seen on Xandikos 0.4.10 for a second resource with the same UID), so the
            connector looks the event up *before* writing.
    """

    name: str
    supports_free_busy_report: bool
    free_busy_includes_free: bool
    merges_free_busy_overlaps: bool
    supports_expand: bool
    schedules_itip: bool
    needs_imip: bool
    cancel_deletes_resource: bool = False
    cross_user_reads: bool = True
    rejected_put_may_schedule: bool = False


QUIRKS: Mapping[str, ServerQuirks] = MappingProxyType(
    {
        "generic": ServerQuirks(
            name="generic",
            supports_free_busy_report=False,
            free_busy_includes_free=False,
            merges_free_busy_overlaps=False,
            supports_expand=False,
            schedules_itip=False,
            needs_imip=True,
        ),
        "radicale": ServerQuirks(
            name="radicale",
            supports_free_busy_report=True,  # since 3.x; not in 3.0 (Kozea/Radicale#34)
            free_busy_includes_free=True,
            merges_free_busy_overlaps=True,
            supports_expand=True,
            schedules_itip=False,  # no RFC 6638 at all: no inbox/outbox
            needs_imip=True,
        ),
        "xandikos": ServerQuirks(
            name="xandikos",
            supports_free_busy_report=True,
            free_busy_includes_free=False,
            merges_free_busy_overlaps=False,
            supports_expand=True,
            schedules_itip=True,  # local attendees + iMIP out via --imip-send
            needs_imip=False,
            # Measured: a STATUS:CANCELLED update goes out as METHOD:REQUEST (with STATUS
            # CANCELLED); only a DELETE makes Xandikos send a proper METHOD:CANCEL.
            cancel_deletes_resource=True,
            cross_user_reads=False,
            rejected_put_may_schedule=True,
        ),
        "cyrus": ServerQuirks(
            name="cyrus",
            supports_free_busy_report=True,
            free_busy_includes_free=False,
            merges_free_busy_overlaps=True,
            supports_expand=True,
            schedules_itip=True,
            needs_imip=False,
        ),
        "davical": ServerQuirks(
            name="davical",
            supports_free_busy_report=True,
            free_busy_includes_free=False,
            merges_free_busy_overlaps=False,
            supports_expand=True,
            # Local attendees only: external ones get SCHEDULE-STATUS 3.7 and no mail. Our
            # attendees are colleagues on the same server, so we do not mail on top.
            schedules_itip=True,
            needs_imip=False,
        ),
    }
)


def quirks_for(server: str) -> ServerQuirks:
    """The quirks record for ``server`` (a key of :data:`QUIRKS`).

    Raises:
        ConfigurationError: the server name is unknown.
    """
    try:
        return QUIRKS[server.strip().lower()]
    except KeyError:
        known = ", ".join(sorted(QUIRKS))
        raise ConfigurationError(
            f"unknown CalDAV server kind {server!r}; use one of: {known}"
        ) from None
