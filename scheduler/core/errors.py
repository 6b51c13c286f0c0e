"""One typed error tree for goodwill.

::

    SchedulerError
    ├── ConfigurationError            bad settings or wiring; fix the configuration
    ├── PolicyError                   one policy file is invalid; carries every PolicyIssue
    ├── CalendarDataError             a calendar file/feed could not be read (names the file)
    └── ConnectorError                a provider call failed; ``transient`` says whether to retry
        ├── ProviderUnavailable       5xx, timeouts, dropped connections           (transient)
        │   └── RateLimited           429/403 rate limits; ``retry_after_s``       (transient)
        ├── AuthorizationRevoked      refresh token expired/revoked; user must reconnect (permanent)
        ├── CalendarUnavailable       calendar not found / no permission            (permanent)
        ├── ResourceGone              the event no longer exists (404/410)          (permanent)
        └── InvalidRequest            the provider rejected our request (4xx)       (permanent)

Being transient or permanent is a property of the class, never decided where it is caught.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

__all__ = [
    "AuthorizationRevoked",
    "CalendarDataError",
    "CalendarUnavailable",
    "ConfigurationError",
    "ConnectorError",
    "InvalidRequest",
    "PolicyError",
    "PolicyIssue",
    "ProviderUnavailable",
    "RateLimited",
    "ResourceGone",
    "SchedulerError",
]


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


class CalendarDataError(SchedulerError):
    """A calendar file or feed could not be parsed. ``source`` names the file or URL."""

    def __init__(self, source: str, reason: str) -> None:
        self.source = source
        self.reason = reason
        super().__init__(f"{source}: {reason}")


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
