"""Per-process costs (issue 13): what a worker builds once, and what it keeps in bounded memory.

The Google service-account key is read and parsed once per process and each owner's delegated
credentials (with their access token) are kept; the connector registry keeps at most
``GOODWILL_LIMITS__CLIENT_CACHE_SIZE`` per-owner backends. Real google-auth and
google-api-python-client against the Google emulator; opens of the key file are counted by an
audit hook, not by patching.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from connectors.google import GoogleCalendar
from connectors.google_keys import ServiceAccountKey
from connectors.registry import BackendRegistry
from scheduler.core.errors import ConfigurationError
from scheduler.core.intervals import Interval
from scheduler.core.model import BusyQuery, EventDraft, Person
from scheduler.core.policy import Policy, load_policy_text
from scheduler.settings import GoogleSettings, Limits, Settings
from tests.emulators.google_emulator import GoogleEmulator
from tests.emulators.graph_emulator import GraphEmulator
from tests.integration.reliability_support import service_account_file

MONDAY = datetime(2027, 3, 1, tzinfo=UTC)
WINDOW = Interval(MONDAY, MONDAY + timedelta(days=1))

_watched: dict[str, int] = {}
_watch_lock = threading.Lock()


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event == "open" and _watched and isinstance(args[0], str | Path):
        name = os.fspath(args[0])
        if name in _watched:
            with _watch_lock:
                _watched[name] += 1


sys.addaudithook(_audit)  # audit hooks cannot be removed: this one only counts watched paths


@pytest.fixture
def opens() -> Iterator[dict[str, int]]:
    """Counts of ``open()`` per path put in the dict (by the test) while the test runs."""
    try:
        yield _watched
    finally:
        _watched.clear()


def _policy(owner: str, provider: str = "google") -> Policy:
    text = (
        f"owner: {{email: {owner}, name: Owner, timezone: UTC}}\n"
        f"calendar: {{provider: {provider}}}\n"
        "meeting: {kind: coffee, duration: 30m}\n"
        "tiers:\n  peer: {every: 4w, mode: propose}\n"
        "stakeholders:\n  - {email: sam@corp.example, name: Sam, tier: peer, timezone: UTC}\n"
    )
    return load_policy_text(text, source=f"{owner}.yaml", fmt="yaml")


def _owners(count: int) -> list[str]:
    return [f"o{i:03d}@corp.example" for i in range(count)]


def _settings(tmp_path: Path, emulator: GoogleEmulator, key: Path, size: int = 256) -> Settings:
    google = GoogleSettings(
        service_account_file=key,
        token_uri=emulator.token_uri,
        api_endpoint=emulator.api_endpoint,
        timeout_s=10,
    )
    return Settings(
        data_dir=tmp_path / "data", google=google, limits=Limits(client_cache_size=size)
    )


def _busy(registry: BackendRegistry, owner: str) -> None:
    backend = registry(_policy(owner))
    person = Person(owner, "Owner", "UTC")
    result = backend.source.busy(BusyQuery(window=WINDOW, people=(person,)))
    assert result.unavailable == {}


def test_the_key_file_is_read_once_for_every_owner_and_each_token_is_kept(
    tmp_path: Path, opens: dict[str, int]
) -> None:
    key = service_account_file(tmp_path / "sa.json")
    owners = _owners(6)
    with GoogleEmulator() as emulator:
        for owner in owners:
            emulator.add_calendar(owner)
        opens[str(key)] = 0
        registry = BackendRegistry(_settings(tmp_path, emulator, key, size=2))
        for _ in range(2):  # the second pass rebuilds evicted backends: no new read, no token
            for owner in owners:
                _busy(registry, owner)

        assert opens[str(key)] == 1
        subjects = [t["sub"] for t in emulator.token_requests]
        assert sorted(subjects) == owners  # one grant per owner, each acting as that owner
        assert len(registry.cache) == 1  # one Google connector for every owner
        google = registry(_policy(owners[0])).source
        assert isinstance(google, GoogleCalendar)
        assert len(google._services) <= 2  # clients of the two most recent owners
        assert google._services.evictions >= len(owners)  # the second pass built them again


def test_google_clients_are_shared_by_threads_each_over_its_own_connection(
    tmp_path: Path,
) -> None:
    key = service_account_file(tmp_path / "sa.json")
    owners = _owners(8)
    with GoogleEmulator() as emulator:
        for owner in owners:
            emulator.add_calendar(owner)
        registry = BackendRegistry(_settings(tmp_path, emulator, key, size=4))
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda o: _busy(registry, o), owners * 3))
        google = registry(_policy(owners[0])).source
        assert isinstance(google, GoogleCalendar)
        assert len(google._services) <= 4
        assert sorted({t["sub"] for t in emulator.token_requests}) == owners


def test_google_api_collections_are_built_once_and_each_request_acts_as_its_owner(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 13: building a client's collections from the discovery document cost more than
    the requests they served (a quarter of a worker's CPU, built again for every call). They
    are built once per connector; each owner's request still goes out as that owner."""
    import googleapiclient.discovery as discovery

    import connectors.google as google_module

    builds: list[int] = []
    real = discovery.build_from_document

    def counting(*args: Any, **kwargs: Any) -> Any:
        builds.append(1)
        return real(*args, **kwargs)

    google_module._discovery()  # the shared document is prepared once per process, apart
    monkeypatch.setattr(google_module, "build_from_document", counting)
    key = service_account_file(tmp_path / "sa.json")
    owners = _owners(6)
    with GoogleEmulator() as emulator:
        for owner in owners:
            emulator.add_calendar(owner)
        emulator.add_calendar("sam@corp.example")
        registry = BackendRegistry(_settings(tmp_path, emulator, key, size=3))

        def create(owner: str) -> None:
            writer = registry(_policy(owner)).writer
            assert writer is not None
            start = MONDAY + timedelta(hours=10 + owners.index(owner) % 4)
            writer.create_event(
                EventDraft(
                    idempotency_key=f"key-{owner}",
                    organizer=Person(owner, "Owner", "UTC"),
                    attendee=Person("sam@corp.example", "Sam", "UTC"),
                    start=start,
                    end=start + timedelta(minutes=30),
                    title=f"Coffee for {owner}",
                )
            )

        with ThreadPoolExecutor(4) as pool:
            list(pool.map(create, owners * 2))  # the second create of each answers 409
        assert len(builds) == 1
        for owner in owners:
            (event,) = emulator.events(owner)
            assert event["summary"] == f"Coffee for {owner}"


def test_a_rotated_key_file_is_read_again(tmp_path: Path, opens: dict[str, int]) -> None:
    path = service_account_file(tmp_path / "sa.json")
    opens[str(path)] = 0
    keys = ServiceAccountKey(path, "http://127.0.0.1:9/token", ("scope",))
    first = keys("alex@corp.example")
    assert keys("ALEX@corp.example") is first  # kept per owner
    assert keys("sam@corp.example") is not first
    assert (keys.reads, opens[str(path)]) == (1, 1)

    stat = path.stat()
    service_account_file(path)  # a new key in the same place (this write opens it too)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    opens[str(path)] = 0
    assert keys("alex@corp.example") is not first
    assert keys("alex@corp.example") is keys("alex@corp.example")
    assert (keys.reads, opens[str(path)]) == (2, 1)


def test_an_unusable_key_file_names_the_setting(tmp_path: Path) -> None:
    bad = tmp_path / "sa.json"
    bad.write_text('{"type": "service_account"}')
    keys = ServiceAccountKey(bad, "http://127.0.0.1:9/token", ("scope",))
    with pytest.raises(ConfigurationError, match="GOODWILL_GOOGLE__SERVICE_ACCOUNT_FILE"):
        keys("alex@corp.example")
    with pytest.raises(ConfigurationError, match="cannot be used"):
        ServiceAccountKey(tmp_path / "missing.json", "x", ())("alex@corp.example")


def test_the_registry_keeps_at_most_the_configured_number_of_backends(tmp_path: Path) -> None:
    calendars = tmp_path / "calendars"
    calendars.mkdir()
    settings = Settings(
        data_dir=tmp_path / "data", calendars_dir=calendars, limits=Limits(client_cache_size=3)
    )
    registry = BackendRegistry(settings)
    seen = []
    for owner in _owners(20):
        seen.append(registry(_policy(owner)))
        assert len(registry.cache) <= 3
    assert len(registry.cache) == 3
    assert registry.cache.evictions == 17
    assert registry(_policy(_owners(20)[-1])) is seen[-1]  # recently used: kept
    assert registry(_policy(_owners(20)[0])) is not seen[0]  # evicted: built again


def test_a_cache_size_below_one_is_refused_with_the_setting_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GOODWILL_LIMITS__CLIENT_CACHE_SIZE", "0")
    with pytest.raises(ValueError, match="GOODWILL_LIMITS__CLIENT_CACHE_SIZE must be at least 1"):
        Settings()


def test_app_only_microsoft_serves_every_owner_with_one_client_and_one_token(
    tmp_path: Path,
) -> None:
    with GraphEmulator(tmp_path) as emulator:
        owners = _owners(4)
        for owner in owners:
            emulator.add_mailbox(owner)
        settings = Settings(data_dir=tmp_path / "data", microsoft=emulator.settings())
        registry = BackendRegistry(settings)
        backends = {id(registry(_policy(owner, "microsoft"))) for owner in owners}
        for owner in owners:
            person = Person(owner, "Owner", "UTC")
            result = registry(_policy(owner, "microsoft")).source.busy(
                BusyQuery(window=WINDOW, people=(person,))
            )
            assert result.unavailable == {}
        assert len(backends) == 1
        assert len(registry.cache) == 1
        assert [t["grant_type"] for t in emulator.token_requests] == ["client_credentials"]
