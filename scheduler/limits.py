"""Named limits on untrusted input: ``GOODWILL_LIMITS__*`` (a section of
:class:`scheduler.settings.Settings`, which re-exports it).

A module of its own, on pydantic alone, so the connectors and the policy loader that take the
limits do not import pydantic-settings: a cold ``goodwill plan`` with no ``GOODWILL_*`` variable
never builds the settings (issue 13).
"""

from __future__ import annotations

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

__all__ = ["Limits"]


class Limits(BaseModel):
    """Named limits on untrusted input (see each field)."""

    #: An ICS feed larger than this is refused, so one huge export cannot exhaust memory.
    ics_max_bytes: int = 20 * 1024 * 1024
    #: Expanded instances of one calendar beyond this are refused and reported, never dropped
    #: silently.
    max_instances: int = 50_000
    # ICS input (connectors/ics_input.py). The counts are checked before icalendar parses.
    #: Components (``BEGIN:`` lines, VCALENDAR included) in one calendar beyond this: refused.
    ics_max_components: int = Field(20_000, ge=1)
    #: Content lines (after unfolding) in one calendar beyond this: refused.
    ics_max_lines: int = Field(250_000, ge=1)
    #: RDATE and EXDATE values in one calendar beyond this: refused.
    ics_max_dates: int = Field(20_000, ge=1)
    #: Recurrence expansion work (rule steps plus instances) of one read beyond this: refused.
    ics_max_steps: int = Field(10_000_000, ge=1)
    #: Seconds one calendar read (parse and expansion) may take; then the person is
    #: "calendar unavailable" for that round.
    ics_read_budget_s: float = Field(20.0, gt=0, allow_inf_nan=False)
    #: Parsed calendars kept per process (0: none), and the file bytes they may total.
    ics_cache_entries: int = Field(256, ge=0)
    ics_cache_bytes: int = Field(32 * 1024 * 1024, ge=0)
    #: Calendar clients (API client, HTTP connections, token cache) kept per worker process,
    #: one per owner, least recently used out; ``GOODWILL_LIMITS__CLIENT_CACHE_SIZE``. Bounds
    #: the worker's memory: each costs about 0.6 MiB per worker thread. At least 1.
    client_cache_size: int = 256
    # Policy files (docs/policy.md, "Limits"): each broken limit is one FILE:LINE issue.
    #: A policy file larger than this many bytes is refused before it is parsed.
    policy_max_bytes: int = Field(1024 * 1024, ge=1)
    #: The deepest nesting (parts of a value's path; a normal policy needs 5).
    policy_max_depth: int = Field(20, ge=1, le=200)
    #: Most values per policy (keys, items, texts; a YAML alias counts as what it names).
    policy_max_values: int = Field(250_000, ge=1)
    #: Most stakeholders one policy may list.
    policy_max_stakeholders: int = Field(5_000, ge=1)
    #: Longest text (any key or value), in characters.
    policy_max_string: int = Field(10_000, ge=1)
    #: Shortest tier cadence (``every``), in days.
    policy_min_every_days: int = Field(1, ge=1, le=36_400)
    #: Longest tier cadence, in days (260 weeks, about five years).
    policy_max_every_days: int = Field(1820, ge=1, le=36_400)
    #: Longest ``availability.horizon`` (and ``min_notice``), in days (52 weeks).
    policy_max_horizon_days: int = Field(364, ge=1, le=36_400)
    #: An e-mail larger than this is refused by ``goodwill replies`` (at most this + 1 byte is
    #: read); ``GOODWILL_LIMITS__MAIL_MAX_BYTES``.
    mail_max_bytes: int = Field(10 * 1024 * 1024, gt=0)

    @field_validator("client_cache_size")
    @classmethod
    def _some_clients(cls, value: int) -> int:
        if value < 1:
            raise PydanticCustomError(
                "bad_client_cache_size",
                "GOODWILL_LIMITS__CLIENT_CACHE_SIZE must be at least 1, got {got}: it is how "
                "many owners' calendar clients a worker keeps (default 256); unset it or raise it",
                {"got": value},
            )
        return value

    @model_validator(mode="after")
    def _cadence_range(self) -> Limits:
        if self.policy_min_every_days > self.policy_max_every_days:
            raise PydanticCustomError(
                "bad_cadence_range",
                "GOODWILL_LIMITS__POLICY_MIN_EVERY_DAYS ({low}) is above "
                "GOODWILL_LIMITS__POLICY_MAX_EVERY_DAYS ({high}); lower the first or raise the "
                "second",
                {"low": self.policy_min_every_days, "high": self.policy_max_every_days},
            )
        return self
