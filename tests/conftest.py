"""Shared fixtures. Service-backed fixtures skip on a laptop without the service and fail in CI."""

from __future__ import annotations

import os
import socket

import pytest
from hypothesis import HealthCheck, settings

pytest_plugins = ["tests.conftest_db"]


IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}

# Hypothesis on a loaded 2-core CI machine: no per-example deadline and no "too slow" health
# check (both measure the machine, not the code). `make fuzz` sets GOODWILL_FUZZ=long for many
# more examples; tests that set their own max_examples keep them.
settings.register_profile(
    "goodwill",
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile("long", settings.get_profile("goodwill"), max_examples=5_000)
settings.load_profile("long" if os.environ.get("GOODWILL_FUZZ") == "long" else "goodwill")


def service_up(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def require_service(name: str, port: int) -> None:
    """Skip when ``name`` is not listening locally; in CI (CI=true) fail instead."""
    if service_up(port):
        return
    message = f"{name} is not listening on 127.0.0.1:{port}"
    if IN_CI:
        pytest.fail(f"{message} (CI=true: .ci/services.sh should have started it)")
    pytest.skip(message)


@pytest.fixture(autouse=True)
def _clean_goodwill_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No GOODWILL_* variable from the developer's shell leaks into a test."""
    for key in list(os.environ):
        if key.startswith("GOODWILL_"):
            monkeypatch.delenv(key)
