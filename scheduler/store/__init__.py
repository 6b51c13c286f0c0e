"""Persistence: SQLAlchemy models, engines, the repository API, migrations and secret storage.

The database is the source of truth for the booking pipeline; the broker only signals that work
is waiting. Import from here: ``from scheduler.store import Store, make_engine, migrate``.
"""

from __future__ import annotations

from scheduler.store.crypto import CredentialDecryptError, SecretBox
from scheduler.store.engine import (
    maintenance_warning,
    make_engine,
    make_session_factory,
    normalise_url,
)
from scheduler.store.migrations import at_head, migrate
from scheduler.store.repository import (
    AuditEntry,
    Meeting,
    NewMeeting,
    RevokedCredential,
    StakeholderStatus,
    Store,
    UnknownMeeting,
    User,
)
from scheduler.store.tables import ContactSource

__all__ = [
    "AuditEntry",
    "ContactSource",
    "CredentialDecryptError",
    "Meeting",
    "NewMeeting",
    "RevokedCredential",
    "SecretBox",
    "StakeholderStatus",
    "Store",
    "UnknownMeeting",
    "User",
    "at_head",
    "maintenance_warning",
    "make_engine",
    "make_session_factory",
    "migrate",
    "normalise_url",
]
