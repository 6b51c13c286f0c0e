"""Service settings, read once from ``GOODWILL_*`` environment variables in the composition root.

Nested groups use ``__``: ``GOODWILL_GOOGLE__TOKEN_URI``, ``GOODWILL_SMTP__HOST``. No other
module reads the environment. Tests build ``Settings(...)`` explicitly with ``_env_file=None``.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

__all__ = [
    "CalDAVSettings",
    "GoogleSettings",
    "Limits",
    "MicrosoftSettings",
    "OpsSettings",
    "Settings",
    "SmtpSettings",
]


class GoogleSettings(BaseModel):
    """Google Workspace. Endpoints are settings so tests and proxies can point elsewhere."""

    token_uri: str = "https://oauth2.googleapis.com/token"
    auth_uri: str = "https://accounts.google.com/o/oauth2/auth"
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


class OpsSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 9464


class Limits(BaseModel):
    """Named limits on untrusted input (see each field)."""

    #: An ICS feed larger than this is refused, so one huge export cannot exhaust memory.
    ics_max_bytes: int = 20 * 1024 * 1024
    #: Expanded instances of one calendar beyond this are refused and reported, never dropped
    #: silently.
    max_instances: int = 50_000


class Settings(BaseSettings):
    """Everything a goodwill process needs, built once per process."""

    model_config = SettingsConfigDict(
        env_prefix="GOODWILL_", env_nested_delimiter="__", extra="ignore"
    )

    data_dir: Path = Path(".goodwill")
    database_url: str | None = None  # default: sqlite file in data_dir
    broker_url: str = "embedded"  # embedded | redis://… | amqp://…
    policy_dir: Path = Path("policies")
    calendars_dir: Path | None = None  # ICS directory connector (demo, tests)
    secret_key: SecretStr | None = None
    tick_interval_s: float = 10.0
    #: How long a booking claim holds; must exceed the actor's time limit (120 s).
    booking_lease_s: float = 300.0
    #: How long a sent book_meeting message counts as in flight before the tick re-sends it.
    send_lease_s: float = 120.0
    #: How often each user is re-planned when nothing brings it forward.
    plan_every_s: float = 12 * 3600.0
    #: When a planning round failed (calendar unreachable) or its message was lost, retry after.
    plan_retry_s: float = 300.0
    #: Log format: json, text, or auto (json when stderr is not a terminal).
    log_format: str = "auto"
    log_level: str = "INFO"
    google: GoogleSettings = Field(default_factory=GoogleSettings)
    microsoft: MicrosoftSettings = Field(default_factory=MicrosoftSettings)
    caldav: CalDAVSettings = Field(default_factory=CalDAVSettings)
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)
    ops: OpsSettings = Field(default_factory=OpsSettings)
    limits: Limits = Field(default_factory=Limits)

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{(self.data_dir / 'goodwill.db').as_posix()}"
