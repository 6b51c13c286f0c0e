"""Service settings, read once from ``GOODWILL_*`` environment variables in the composition root.

Nested groups use ``__``: ``GOODWILL_GOOGLE__TOKEN_URI``, ``GOODWILL_SMTP__HOST``. No other
module reads the environment (``goodwill plan`` and ``validate`` only look whether any
``GOODWILL_*`` name is set: with none, they use the defaults without building this). Tests
build ``Settings(...)`` explicitly with ``_env_file=None``.
"""

from __future__ import annotations

import base64
import binascii
import math
import secrets
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, Field, SecretStr, ValidationInfo, field_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, SettingsConfigDict

from scheduler.limits import Limits

__all__ = [
    "SECRET_KEY_BYTES",
    "CalDAVSettings",
    "GoogleSettings",
    "Limits",
    "MicrosoftSettings",
    "OpsSettings",
    "Settings",
    "SmtpSettings",
    "WebSettings",
    "new_secret_key",
    "secret_key_problem",
]

#: The longest grace ``GOODWILL_POLICY_REMOVED_GRACE_S`` accepts (ten years, in seconds).
_MAX_GRACE_S = 10 * 365 * 86400.0
#: Tick timing settings: (above, at most, what it is), in seconds.
_TICK_SECONDS = {
    "tick_interval_s": (0, 3600, "how often the tick runs a round"),
    "max_clock_skew_s": (0, 300, "how far this host's clock may be from the database's"),
    "tick_max_lease_s": (0, 86400, "the longest tick lease anyone may hold"),
    "sync_every_s": (0, 86400, "how often answers and conflicts are followed at the most"),
    "sync_max_every_s": (0, 86400, "how long an owner's answers and conflicts may go unread"),
}
#: Tick health settings: (least, most, what it is), in rounds.
_TICK_ROUNDS = {
    "tick_stale_rounds": (2, 1000, "/readyz fails when no tick round completed in this many "
                          "intervals"),
    "tick_max_failed_rounds": (1, 1000, "/readyz fails after this many tick rounds failed in a "
                               "row"),
}  # fmt: skip
#: Web link lifetimes: (least, most, what it is), in seconds.
_LINK_TTLS = {
    "link_ttl_s": (60, 86400, "how long an e-mailed sign-in link works"),
    "action_link_ttl_s": (300, 30 * 86400, "how long an action link in a digest e-mail works"),
}
#: The least key material ``GOODWILL_SECRET_KEY`` must carry (random bytes, base64-encoded).
SECRET_KEY_BYTES = 32


def new_secret_key() -> str:
    """A fresh ``GOODWILL_SECRET_KEY``: 32 random bytes, urlsafe base64 (44 characters)."""
    return base64.urlsafe_b64encode(secrets.token_bytes(SECRET_KEY_BYTES)).decode("ascii")


def secret_key_problem(key: str) -> str | None:
    """Why ``key`` is not a usable secret key (None: it is).

    Accepted: standard or urlsafe base64, padded or not, of at least 32 bytes that do not look
    like a pattern (32 random bytes take fewer than 16 distinct values with negligible odds).
    The key itself never appears in the answer.
    """
    text = key.strip()
    raw: bytes | None = None
    for altchars in (None, b"-_"):
        try:
            raw = base64.b64decode(text + "=" * (-len(text) % 4), altchars=altchars, validate=True)
            break
        except (binascii.Error, ValueError):
            continue
    if raw is None:
        why = "it is not base64"
    elif len(raw) < SECRET_KEY_BYTES:
        why = f"it decodes to {len(raw)} bytes"
    elif len(set(raw)) < 16:
        why = "its bytes repeat a pattern instead of being random"
    else:
        return None
    return (
        f"GOODWILL_SECRET_KEY is not a strong key: {why}; it must be at least "
        f"{SECRET_KEY_BYTES} random bytes in base64. Make one with `goodwill secret` (or "
        f"`openssl rand -base64 {SECRET_KEY_BYTES}`) and put it in the service's env file. Keep "
        "it: changing it later ends every stored calendar grant (users run goodwill connect again)"
    )


class GoogleSettings(BaseModel):
    """Google Workspace. Endpoints are settings so tests and proxies can point elsewhere."""

    token_uri: str = "https://oauth2.googleapis.com/token"
    auth_uri: str = "https://accounts.google.com/o/oauth2/auth"
    #: OpenID Connect discovery document for "Sign in with Google" on the owner's page.
    discovery_url: str = "https://accounts.google.com/.well-known/openid-configuration"
    api_endpoint: str = "https://www.googleapis.com/calendar/v3/"
    batch_uri: str = "https://www.googleapis.com/batch/calendar/v3"
    service_account_file: Path | None = None
    client_id: str | None = None
    client_secret: SecretStr | None = None
    timeout_s: float = 30.0


class MicrosoftSettings(BaseModel):
    """Microsoft 365 through Graph and msal."""

    authority_host: str = "https://login.microsoftonline.com"
    tenant: str = "organizations"
    graph_base_url: str = "https://graph.microsoft.com/v1.0"
    client_id: str | None = None
    client_secret: SecretStr | None = None
    ca_bundle: Path | None = None  # extra CA for a TLS-intercepting proxy or a test authority
    timeout_s: float = 30.0


class CalDAVSettings(BaseModel):
    """A CalDAV server (Nextcloud, Fastmail, SOGo, Radicale, Xandikos …)."""

    url: str | None = None
    username: str | None = None
    password: SecretStr | None = None
    #: Key into connectors/caldav_quirks.py (generic, radicale, xandikos, cyrus, davical).
    server: str = "generic"
    #: Where a person's calendar lives; ``{user}`` is the part of the e-mail before ``@``.
    calendar_path: str = "/{user}/calendar/"
    timeout_s: float = 30.0


class SmtpSettings(BaseModel):
    """Outgoing mail for iMIP invites."""

    host: str = "127.0.0.1"
    port: int = 25
    starttls: bool = False
    user: str | None = None
    password: SecretStr | None = None
    sender: str | None = None


class WebSettings(BaseModel):
    """The owner's web page (``goodwill serve``, or ``goodwill web`` in scale mode)."""

    host: str = "127.0.0.1"
    port: int = Field(8080, ge=0, le=65535)
    #: The public URL of the page, used in e-mailed links (default ``http://HOST:PORT``).
    base_url: str | None = None
    #: How long an e-mailed sign-in link works, in seconds (``GOODWILL_WEB__LINK_TTL_S``).
    link_ttl_s: int = 900
    #: How long an action link in a digest works, in seconds: a weekly digest is read days
    #: later (``GOODWILL_WEB__ACTION_LINK_TTL_S``; one week).
    action_link_ttl_s: int = 604800

    @field_validator("link_ttl_s", "action_link_ttl_s")
    @classmethod
    def _ttl_in_range(cls, value: int, info: ValidationInfo) -> int:
        name = str(info.field_name)
        low, high, what = _LINK_TTLS[name]
        if not low <= value <= high:
            raise PydanticCustomError(
                "bad_link_ttl",
                "{variable} must be a whole number of seconds from {low} to {high}, got {got}: "
                "it is {what}; unset it for the default {default}",
                {"variable": f"GOODWILL_WEB__{name.upper()}", "low": low, "high": high,
                 "got": value, "what": what, "default": cls.model_fields[name].default},
            )  # fmt: skip
        return value

    @field_validator("port", mode="before")
    @classmethod
    def _port_number(cls, value: object) -> int:
        return _port(value, "GOODWILL_WEB__PORT", 8080)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is None:
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise PydanticCustomError(
                "bad_base_url",
                "GOODWILL_WEB__BASE_URL must be an http:// or https:// address with a host, got "
                "{got}: it is the public address of the owner's page, used in e-mailed links "
                "(for example https://goodwill.corp.example)",
                {"got": repr(value)},
            )
        return value.rstrip("/")

    @property
    def effective_base_url(self) -> str:
        """``GOODWILL_WEB__BASE_URL``, or ``http://HOST:PORT`` when it is unset (an IPv6 host in
        brackets: ``http://[::1]:8080``)."""
        if self.base_url:
            return self.base_url
        host = self.host.strip("[]")
        return f"http://{f'[{host}]' if ':' in host else host}:{self.port}"

    @property
    def base_url_unreachable(self) -> bool:
        """No ``GOODWILL_WEB__BASE_URL`` and a wildcard host (``0.0.0.0``, ``::``): e-mailed
        links would point at an address no one can open."""
        return self.base_url is None and self.host.strip("[]") in ("0.0.0.0", "::", "")


def _port(value: object, variable: str, default: int) -> int:
    """``value`` as a TCP port (0..65535), else an error naming the variable, value and fix."""
    text = value.strip() if isinstance(value, str) else value
    if isinstance(text, str) and text.isascii() and text.isdigit():
        text = int(text)
    if isinstance(text, int) and not isinstance(text, bool) and 0 <= text <= 65535:
        return text
    raise PydanticCustomError(
        "bad_port",
        "{variable} must be a whole number from 0 to 65535, got {got}: set it to the TCP port "
        "to listen on, or unset it for {default}",
        {"variable": variable, "got": repr(str(value)), "default": default},
    )


class OpsSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 9464


class Settings(BaseSettings):
    """Everything a goodwill process needs, built once per process."""

    model_config = SettingsConfigDict(
        env_prefix="GOODWILL_", env_nested_delimiter="__", extra="ignore"
    )

    data_dir: Path = Path(".goodwill")
    database_url: str | None = None  # default: sqlite file in data_dir
    broker_url: str = "embedded"  # embedded | redis://… | amqp://…
    policy_dir: Path = Path("policies")
    #: Watch policy_dir for changes (inotify) instead of a stat of every file each tick round.
    #: Off for network file systems that deliver no inotify events (NFS, some FUSE mounts):
    #: the tick then lists the directory every round.
    policy_watch: bool = True
    calendars_dir: Path | None = None  # ICS directory connector (demo, tests)
    secret_key: SecretStr | None = None
    tick_interval_s: float = 10.0
    #: A replica whose clock differs from the database server's by more than this does not
    #: take the tick lease (and its /readyz ``clock`` check fails).
    max_clock_skew_s: float = 2.0
    #: The longest tick lease anyone may hold: a lease row ending later than now + this was
    #: written from a clock running ahead, and is taken over. At least interval + skew; unset:
    #: 60 s, or 2 x interval + skew when that is longer (``effective_tick_max_lease_s``).
    tick_max_lease_s: float | None = None
    #: /readyz fails when no tick round completed within this many intervals (at least 30 s).
    tick_stale_rounds: int = 6
    #: /readyz fails after this many tick rounds failed in a row.
    tick_max_failed_rounds: int = 3
    #: How long a booking claim holds; must exceed the actor's time limit (120 s).
    booking_lease_s: float = 300.0
    #: How long a sent book_meeting message counts as in flight before the tick re-sends it.
    send_lease_s: float = 120.0
    #: How often each user is re-planned when nothing brings it forward.
    plan_every_s: float = 12 * 3600.0
    #: When a planning round failed (calendar unreachable) or its message was lost, retry after.
    plan_retry_s: float = 300.0
    #: How often an owner's answers and conflicts are followed (a sync pass): a twelfth of the
    #: time until their next deadline (a followed meeting's start, or its last 20 hours), at
    #: least ``sync_every_s`` (15 min) and at most ``sync_max_every_s`` (2 h). Polling every
    #: owner every 15 min was most of the service's CPU and, at 100,000 owners, above Google's
    #: 10,000 requests a minute per project (docs/operations.md).
    sync_every_s: float = 900.0
    sync_max_every_s: float = 7200.0
    #: The most rows each of the tick's scans claims per round (plans, bookings, syncs).
    tick_batch: int = Field(500, ge=1, le=100_000)
    #: The most messages the tick keeps waiting in the broker's queue: under a backlog it sends
    #: only what brings the queue back to this, so nothing waits longer than its lease.
    tick_queue_max: int = Field(2000, ge=1, le=1_000_000)
    #: The most users one planning message carries (``plan_users``); a round puts several in
    #: one only when at least 32 are due, or when the queue's room requires it. 1: a
    #: ``plan_user`` each. ``tick_queue_max`` counts such a message once.
    tick_plans_per_message: int = Field(1, ge=1, le=50)
    #: When a user's policy file is removed, planning them stops at once; their open future
    #: meetings are cancelled after this many seconds unless the file comes back.
    policy_removed_grace_s: float = 86400.0
    #: At most this many goodwill coffees per stakeholder per week, across every owner (a
    #: senior stakeholder also gets at most one new goodwill invite a day).
    stakeholder_weekly_cap: int = 2
    #: Log format: json, text, or auto (json when stderr is not a terminal).
    log_format: str = "auto"
    log_level: str = "INFO"
    google: GoogleSettings = Field(default_factory=GoogleSettings)
    microsoft: MicrosoftSettings = Field(default_factory=MicrosoftSettings)
    caldav: CalDAVSettings = Field(default_factory=CalDAVSettings)
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)
    ops: OpsSettings = Field(default_factory=OpsSettings)
    web: WebSettings = Field(default_factory=WebSettings)
    limits: Limits = Field(default_factory=Limits)

    @field_validator("secret_key")
    @classmethod
    def _strong_secret_key(cls, value: SecretStr | None) -> SecretStr | None:
        # None stays allowed: a service-account or app-only setup stores no grants.
        if value is not None and (problem := secret_key_problem(value.get_secret_value())):
            raise PydanticCustomError("weak_secret_key", problem)
        return value

    @field_validator("stakeholder_weekly_cap")
    @classmethod
    def _cap_positive(cls, value: int) -> int:
        if value <= 0:
            raise PydanticCustomError(
                "bad_cap",
                "GOODWILL_STAKEHOLDER_WEEKLY_CAP must be a whole number of at least 1, got "
                "{got}: it is how many goodwill coffees one stakeholder may have in a week "
                "across every owner; unset it for the default 2",
                {"got": value},
            )
        return value

    @field_validator("policy_removed_grace_s")
    @classmethod
    def _grace_in_range(cls, value: float) -> float:
        if not math.isfinite(value) or not 0 < value <= _MAX_GRACE_S:
            raise PydanticCustomError(
                "bad_grace",
                "GOODWILL_POLICY_REMOVED_GRACE_S must be a number of seconds above 0 and at "
                "most {most} (ten years), got {got}: it is how long a removed policy file's "
                "open meetings are kept before they are cancelled; unset it for the default "
                "86400 (one day)",
                {"most": int(_MAX_GRACE_S), "got": value},
            )
        return value

    @field_validator("tick_interval_s", "max_clock_skew_s", "tick_max_lease_s", "sync_every_s",
                     "sync_max_every_s")  # fmt: skip
    @classmethod
    def _tick_seconds_in_range(cls, value: float | None, info: ValidationInfo) -> float | None:
        if value is None:  # tick_max_lease_s unset: derived from the interval
            return None
        name = str(info.field_name)
        low, high, what = _TICK_SECONDS[name]
        variable = f"GOODWILL_{name.upper()}"
        default = cls.model_fields[name].default
        if not math.isfinite(value) or not low < value <= high:
            raise PydanticCustomError(
                "bad_seconds",
                "{variable} must be a number of seconds above {low} and at most {high}, got "
                "{got}: it is {what}; unset it for the default {default}",
                {"variable": variable, "low": low, "high": high, "got": value, "what": what,
                 "default": default},
            )  # fmt: skip
        if name == "tick_max_lease_s":
            interval = info.data.get("tick_interval_s")
            skew = info.data.get("max_clock_skew_s")
            if interval is not None and skew is not None and value < interval + skew:
                raise PydanticCustomError(
                    "lease_too_short",
                    "GOODWILL_TICK_MAX_LEASE_S must be at least GOODWILL_TICK_INTERVAL_S + "
                    "GOODWILL_MAX_CLOCK_SKEW_S ({least} s), got {got}: a shorter bound would "
                    "void the leases of replicas whose clocks are only a little behind",
                    {"least": interval + skew, "got": value},
                )
        every = info.data.get("sync_every_s")
        if name == "sync_max_every_s" and every is not None and value < every:
            raise PydanticCustomError(
                "sync_max_below_min",
                "GOODWILL_SYNC_EVERY_S ({least}) is above GOODWILL_SYNC_MAX_EVERY_S ({got}; "
                "7200 unless set): lower the first or raise the second, or set both alike to "
                "follow every owner at one fixed pace",
                {"least": every, "got": value},
            )
        return value

    @field_validator("tick_stale_rounds", "tick_max_failed_rounds")
    @classmethod
    def _tick_rounds_in_range(cls, value: int, info: ValidationInfo) -> int:
        name = str(info.field_name)
        low, high, what = _TICK_ROUNDS[name]
        if not low <= value <= high:
            raise PydanticCustomError(
                "bad_rounds",
                "{variable} must be a whole number from {low} to {high}, got {got}: {what}; "
                "unset it for the default {default}",
                {"variable": f"GOODWILL_{name.upper()}", "low": low, "high": high, "got": value,
                 "what": what, "default": cls.model_fields[name].default},
            )  # fmt: skip
        return value

    @property
    def effective_tick_max_lease_s(self) -> float:
        """``GOODWILL_TICK_MAX_LEASE_S``, or 60 s / 2 x interval + skew when it is unset."""
        if self.tick_max_lease_s is not None:
            return self.tick_max_lease_s
        return max(60.0, 2 * self.tick_interval_s + self.max_clock_skew_s)

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'goodwill.db').as_posix()}"
