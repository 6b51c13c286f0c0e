"""What every use case needs, built once per process by the composition root.

Each use case reads state from the store, does one piece of work through the ports, and writes
the outcome with a compare-and-set, so calling it twice (a redelivered message, a second worker)
is harmless. Nothing in :mod:`scheduler.app` imports dramatiq, SQLAlchemy or a vendor SDK: the
actors in ``workers/`` are thin wrappers and the store arrives through :class:`StorePort`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from scheduler.app.policies import PolicyBook
from scheduler.app.policy_scan import PolicyScan
from scheduler.app.ports import Instruments, StorePort
from scheduler.app.problems import PolicyProblems
from scheduler.app.records import StakeholderStatus, User
from scheduler.core.clock import Clock
from scheduler.core.policy import Policy
from scheduler.core.ports import BackendFactory

__all__ = [
    "KEY_SECRET_LABEL",
    "Pipeline",
    "derive_key_secret",
    "idempotency_key",
    "policy_for",
    "revoke",
    "with_status",
]

#: Domain separation: the secret behind meeting keys and UIDs is derived from the installation's
#: root secret for this one use, so it is never the key that encrypts grants (or anything else).
KEY_SECRET_LABEL = b"goodwill/v1/meeting-idempotency-key"


@dataclass
class Pipeline:
    """The store, the clock, the connectors and the knobs the use cases share.

    Attributes:
        lease_s: how long a booking claim holds; longer than the actor's time limit.
        send_lease_s: how long a sent ``book_meeting`` message counts as in flight.
        plan_every: how often a user is re-planned when nothing else brings it forward.
        max_attempts: booking attempts before a meeting is marked failed.
        plan_retry_s: when a planning round failed or its message was lost, retry after this.
        metrics: counters and histograms for /metrics (None: not collected).
        policy_removed_grace: how long after a user's policy file is removed their open future
            meetings are kept (planning stops at once); then they are cancelled.
        problems: which bad policy files this process has already logged (once per change).
    """

    store: StorePort
    clock: Clock
    backends: BackendFactory
    policies: PolicyBook
    lease_s: float = 300.0
    send_lease_s: float = 120.0
    plan_every: timedelta = timedelta(hours=12)
    retry_base_s: float = 30.0
    retry_cap_s: float = 6 * 3600.0
    max_attempts: int = 8
    plan_retry_s: float = 300.0
    #: At most this many goodwill coffees per stakeholder per week, across every owner.
    stakeholder_weekly_cap: int = 2
    metrics: Instruments | None = None
    policy_removed_grace: timedelta = timedelta(days=1)
    problems: PolicyProblems = field(default_factory=PolicyProblems)
    #: What the last registration round saw in the policy directory (reads only changes).
    scan: PolicyScan = field(default_factory=PolicyScan)
    #: Keys the HMAC in every new meeting's idempotency key (and so its UID): only someone who
    #: received the invite knows it. The composition root passes the installation's
    #: (:func:`derive_key_secret`); the default, random per Pipeline, suits tests only.
    key_secret: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)

    @contextmanager
    def provider_call(self, provider: str, operation: str) -> Iterator[None]:
        """Count and time one provider call (no-op without metrics)."""
        if self.metrics is None:
            yield
            return
        with self.metrics.provider_call(provider, operation):
            yield

    @contextmanager
    def plan_cycle(self) -> Iterator[None]:
        if self.metrics is None:
            yield
            return
        with self.metrics.plan_cycle():
            yield


def derive_key_secret(root: bytes) -> bytes:
    """The meeting-key secret for an installation's root secret (HMAC-SHA256 over a label)."""
    if len(root) < 16:
        raise ValueError("the root secret must be at least 16 bytes")
    return hmac.new(root, KEY_SECRET_LABEL, hashlib.sha256).digest()


def idempotency_key(user_id: int, stakeholder: str, start: datetime, *, secret: bytes) -> str:
    """Stable key for one (user, stakeholder, slot): the provider-side dedupe id derives from it.

    ``gw`` + 30 hex digits (120 bits) of HMAC-SHA256 keyed by ``secret``
    (:attr:`Pipeline.key_secret`): the same inputs give the same key in every process of one
    installation, and without the secret the key (and the UID built from it) cannot be guessed
    from the user, the stakeholder and the time. Keys already stored stay as they were.
    """
    if len(secret) < 16:
        raise ValueError("the key secret must be at least 16 bytes")
    raw = f"{user_id}:{stakeholder.strip().lower()}:{start.astimezone(UTC).isoformat()}"
    return "gw" + hmac.new(secret, raw.encode(), hashlib.sha256).hexdigest()[:30]


def policy_for(p: Pipeline, user: User | None) -> Policy | None:
    """The policy in force for ``user`` (maybe its last good version); problems are recorded."""
    if user is None:
        return None
    pf = p.policies.load(user.policy_path)
    if pf.issues:
        p.store.record_policy_error(user.id, "; ".join(str(i) for i in pf.issues[:5]))
    return pf.policy


def revoke(p: Pipeline, email: str, provider: str, reason: str, now: datetime) -> None:
    """Flag the grant so /readyz and the report show it (app-wide grants get a marker row).

    Needs no ``GOODWILL_SECRET_KEY``: a service-account set-up has none, and the marker row
    holds nothing to encrypt.
    """
    p.store.flag_credential_revoked(email, provider, reason[:500], now=now)


def with_status(
    status: StakeholderStatus,
    *,
    backoff_until: datetime | None = None,
    last_declined_at: datetime | None = None,
    unanswered_in_row: int | None = None,
    paused_until: datetime | None = None,
    paused_reason: str | None = None,
) -> StakeholderStatus:
    """``status`` with the given fields changed (None leaves a field as it is)."""
    return replace(
        status,
        backoff_until=status.backoff_until if backoff_until is None else backoff_until,
        last_declined_at=status.last_declined_at if last_declined_at is None else last_declined_at,
        unanswered_in_row=(
            status.unanswered_in_row if unanswered_in_row is None else unanswered_in_row
        ),
        paused_until=status.paused_until if paused_until is None else paused_until,
        paused_reason=status.paused_reason if paused_reason is None else paused_reason,
    )
