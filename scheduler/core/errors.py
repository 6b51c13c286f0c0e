"""One typed error tree for goodwill.

::

    SchedulerError
    ├── ConfigurationError            bad settings or wiring; fix the configuration
    ├── PolicyError                   one policy file is invalid; carries every PolicyIssue
    ├── SpecError                     one policy notation (30m, 09:00-17:30, mon-fri) is malformed;
    │                                 also a ValueError, so pydantic validators report it
    ├── CalendarDataError             a calendar file/feed could not be read (names the file)
    ├── IllegalTransition             a meeting state change the machine forbids; a caller bug
    ├── UnknownMeeting                no meeting has this id (also a LookupError)
    ├── CredentialDecryptError        a stored grant cannot be decrypted (key changed, row altered)
    ├── CheckFailed                   a readiness check failed; the message is shown in ``/readyz``
    └── ConnectorError                a provider call failed; ``transient`` says whether to retry
        ├── ProviderUnavailable       5xx, timeouts, dropped connections           (transient)
        │   └── RateLimited           429/403 rate limits; ``retry_after_s``       (transient)
        ├── AuthorizationRevoked      refresh token expired/revoked; user must reconnect (permanent)
        ├── CalendarUnavailable       calendar not found / no permission            (permanent)
        ├── ResourceGone              the event no longer exists (404/410)          (permanent)
        └── InvalidRequest            the provider rejected our request (4xx)       (permanent)
            └── AttendeeLimitExceeded  more attendees than the provider takes; not sent (permanent)

Being transient or permanent is a property of the class, never decided where it is caught.
Every exception goodwill defines is in this tree (``tests/unit/test_errors.py`` checks it); the
modules that raise one re-export it, e.g. ``from scheduler.core.states import IllegalTransition``.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from scheduler.core.states import MeetingState

__all__ = [
    "AttendeeLimitExceeded",
    "AuthorizationRevoked",
    "CalendarDataError",
    "CalendarUnavailable",
    "CheckFailed",
    "ConfigurationError",
    "ConnectorError",
    "CredentialDecryptError",
    "IllegalTransition",
    "InvalidRequest",
    "PolicyError",
    "PolicyIssue",
    "ProviderUnavailable",
    "RateLimited",
    "ResourceGone",
    "SchedulerError",
    "SpecError",
    "SubPath",
    "UnknownMeeting",
]

#: A location inside a parsed value: mapping keys and list indices.
SubPath = tuple[str | int, ...]


class SchedulerError(Exception):
    """Root of every error goodwill raises on purpose."""


class ConfigurationError(SchedulerError):
    """Settings or wiring are wrong (unknown provider, missing endpoint). Fix the configuration."""


@dataclass(frozen=True, slots=True)
class PolicyIssue:
    """One problem in a policy file: where it is and how to fix it."""

    file: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.field}: " if self.field else ""
        return f"{self.file}:{self.line}: {where}{self.message}"


class PolicyError(SchedulerError):
    """A policy file is invalid. ``issues`` lists every problem found, not just the first."""

    def __init__(self, issues: list[PolicyIssue]) -> None:
        self.issues = issues
        super().__init__("\n".join(str(i) for i in issues))


class SpecError(SchedulerError, ValueError):
    """A value in one of the policy notations could not be parsed (:mod:`scheduler.core.durations`).

    Also a :class:`ValueError`: pydantic validators turn a ValueError into a validation error,
    which the policy loader reports as a :class:`PolicyIssue`.

    Attributes:
        problems: ``(sub_path, message)`` pairs; ``sub_path`` is relative to the parsed value
            (``("mon-thu",)`` for one key of a working-hours mapping, ``()`` for the value itself).
    """

    def __init__(self, message_or_problems: str | Sequence[tuple[SubPath, str]]) -> None:
        if isinstance(message_or_problems, str):
            problems: tuple[tuple[SubPath, str], ...] = (((), message_or_problems),)
        else:
            problems = tuple(message_or_problems)
        self.problems = problems
        super().__init__("; ".join(message for _, message in problems))


class CalendarDataError(SchedulerError):
    """A calendar file or feed could not be parsed. ``source`` names the file or URL.

    With ``line`` the message reads ``FILE:LINE: reason``.
    """

    def __init__(self, source: str, reason: str, *, line: int | None = None) -> None:
        self.source = source
        self.reason = reason
        self.line = line
        where = source if line is None else f"{source}:{line}"
        super().__init__(f"{where}: {reason}")


class IllegalTransition(SchedulerError):
    """A state change the machine does not allow was requested; a bug in the caller.

    Raised by :func:`scheduler.core.states.transition`, which passes the states that *are*
    allowed from ``current`` so the message can name them.

    Attributes:
        current: the state the meeting is in.
        target: the state that was requested.
    """

    def __init__(
        self,
        current: MeetingState,
        target: MeetingState,
        allowed: Collection[MeetingState] | None = None,
    ) -> None:
        self.current = current
        self.target = target
        message = f"a meeting cannot go from {current} to {target}"
        if allowed is not None:
            named = ", ".join(sorted(allowed)) or "none: it is terminal"
            message += f" (allowed from {current}: {named})"
        super().__init__(message)


class CredentialDecryptError(SchedulerError):
    """A stored credential could not be decrypted (:mod:`scheduler.store.crypto`).

    Either ``GOODWILL_SECRET_KEY`` changed (keep the old one in ``old_secrets`` while rotating),
    the row was tampered with, or it was copied from another user. The user must reconnect.
    """


class UnknownMeeting(SchedulerError, LookupError):
    """No meeting has this id (deleted with its user, or a bug in the caller).

    Raised by the store port's state changes (:meth:`scheduler.app.ports.StorePort.transition`).
    """


class CheckFailed(SchedulerError):
    """A readiness check found a problem; the message is shown in ``/readyz`` (no secrets).

    Raised by the checks in :mod:`scheduler.entrypoints.ops`.
    """


class ConnectorError(SchedulerError):
    """A calendar provider call failed.

    Attributes:
        provider: ``google``, ``microsoft``, ``caldav`` or ``ics``.
        status: the HTTP status, when there was one.
    """

    transient: ClassVar[bool] = False

    def __init__(self, message: str, *, provider: str = "", status: int | None = None) -> None:
        self.provider = provider
        self.status = status
        super().__init__(message)


class ProviderUnavailable(ConnectorError):
    """The provider failed in a way that may pass (5xx, timeout, dropped connection).

    Retry later.
    """

    transient = True


class RateLimited(ProviderUnavailable):
    """The provider asked us to slow down.

    Retry after ``retry_after_s`` seconds (None: back off).
    """

    def __init__(
        self,
        message: str,
        *,
        retry_after_s: float | None = None,
        provider: str = "",
        status: int | None = None,
    ) -> None:
        self.retry_after_s = retry_after_s
        super().__init__(message, provider=provider, status=status)


class AuthorizationRevoked(ConnectorError):
    """The stored grant no longer works (invalid_grant, 401 after refresh).

    Fix: the user runs ``goodwill connect <provider> --user EMAIL`` again.
    """


class CalendarUnavailable(ConnectorError):
    """A calendar cannot be read: not found or no permission. That person is skipped, never booked
    blind.
    """


class ResourceGone(ConnectorError):
    """The event no longer exists at the provider (404/410)."""


class InvalidRequest(ConnectorError):
    """The provider rejected the request as malformed (4xx other than auth/rate limits). A bug: do
    not retry.
    """


class AttendeeLimitExceeded(InvalidRequest):
    """A draft invites more people than the provider takes on one event; nothing was sent.

    Not retried: the same draft would be refused again. Fix: a smaller group (``size`` in the
    group's policy entry).

    Attributes:
        count: the attendees of the draft (the organizer not counted).
        limit: the most the provider takes.
    """

    def __init__(self, *, provider: str, count: int, limit: int, reason: str) -> None:
        self.count = count
        self.limit = limit
        super().__init__(
            f"{provider}: {count} attendees on one event is more than the {limit} allowed "
            f"({reason}); invite fewer people (lower the group's size in the policy)",
            provider=provider,
        )
