"""The composition root: settings -> store, connectors, clock, pipeline. One per process."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.engine import Engine

from connectors.registry import BackendRegistry, StoreTokenStore
from scheduler.app.pipeline import Pipeline
from scheduler.app.policies import PolicyBook, policy_limits
from scheduler.core.clock import Clock, SystemClock
from scheduler.core.errors import ConfigurationError
from scheduler.entrypoints.keys import meeting_key_secret
from scheduler.settings import Settings
from scheduler.store import SecretBox, Store, at_head, make_engine, migrate

__all__ = ["App", "bootstrap"]


@dataclass
class App:
    settings: Settings
    engine: Engine
    store: Store
    pipeline: Pipeline
    clock: Clock


def bootstrap(
    settings: Settings,
    *,
    clock: Clock | None = None,
    auto_migrate: bool = False,
    backends: BackendRegistry | None = None,
    read_only: bool = False,
) -> App:
    """Wire one process. ``auto_migrate`` is for the embedded single-process mode only;
    in scale mode ``goodwill migrate`` runs once before the workers start. ``read_only`` (the
    dry run of ``goodwill plan``): no data directory or meeting-key file is made."""
    clock = clock or SystemClock()
    url = settings.effective_database_url
    if url.startswith("sqlite:///") and not read_only:
        settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # private state
    engine = make_engine(url)
    if auto_migrate:
        migrate(engine)
    elif not at_head(engine):
        raise ConfigurationError("the database is not at the latest schema: run goodwill migrate")
    secrets = (
        SecretBox(settings.secret_key.get_secret_value())
        if settings.secret_key is not None
        else None
    )
    store = Store(engine, secrets=secrets)
    token_store = StoreTokenStore(store, clock.now) if secrets is not None else None
    registry = backends or BackendRegistry(settings, token_store=token_store)
    pipeline = Pipeline(
        store=store,
        clock=clock,
        backends=registry,
        policies=PolicyBook(settings.policy_dir, policy_limits(settings.limits)),
        lease_s=settings.booking_lease_s,
        send_lease_s=settings.send_lease_s,
        plan_every=timedelta(seconds=settings.plan_every_s),
        plan_retry_s=settings.plan_retry_s,
        stakeholder_weekly_cap=settings.stakeholder_weekly_cap,
        policy_removed_grace=timedelta(seconds=settings.policy_removed_grace_s),
        key_secret=meeting_key_secret(settings, create=not read_only),
    )
    return App(settings, engine, store, pipeline, clock)
