"""Settings validation: ``GOODWILL_SECRET_KEY`` must be a real key, not a password."""

from __future__ import annotations

import base64
import secrets

import pytest
from pydantic import ValidationError

from scheduler.settings import Settings, new_secret_key


def _settings(key: str | None) -> Settings:
    return Settings(_env_file=None, secret_key=key)


def test_no_secret_key_is_allowed() -> None:
    # A service-account or app-only setup stores no grants and needs no key.
    assert _settings(None).secret_key is None


@pytest.mark.parametrize(
    "key",
    [
        base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),  # goodwill secret
        base64.b64encode(b"\xfb\xff" + secrets.token_bytes(30)).decode(),  # openssl rand -base64 32
        secrets.token_urlsafe(32),  # 43 characters, no padding
        base64.b64encode(secrets.token_bytes(64)).decode(),  # longer is fine
    ],
    ids=["urlsafe", "standard", "unpadded", "long"],
)
def test_base64_of_32_random_bytes_is_accepted(key: str) -> None:
    settings = _settings(key)
    assert settings.secret_key is not None
    assert settings.secret_key.get_secret_value() == key  # kept as given: derived keys unchanged


@pytest.mark.parametrize(
    "key",
    [
        "hunter2",
        "",
        "correct horse battery staple",
        base64.b64encode(secrets.token_bytes(16)).decode(),  # 16 bytes: too short
        "A" * 44,  # valid base64 of 32 zero bytes: not random
        "not/base64!" * 4,
    ],
    ids=["hunter2", "empty", "passphrase", "16-bytes", "zeros", "not-base64"],
)
def test_weak_or_malformed_keys_are_refused_with_the_fix(key: str) -> None:
    with pytest.raises(ValidationError) as info:
        _settings(key)
    (error,) = info.value.errors()
    assert error["loc"] == ("secret_key",)
    message = error["msg"]
    assert "GOODWILL_SECRET_KEY" in message
    assert "32" in message
    assert "goodwill secret" in message
    assert key not in message or not key


def test_a_weak_key_from_the_environment_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GOODWILL_SECRET_KEY", "hunter2")
    with pytest.raises(ValidationError, match="GOODWILL_SECRET_KEY"):
        Settings(_env_file=None)


def test_new_secret_key_is_44_characters_of_urlsafe_base64_of_32_bytes() -> None:
    key = new_secret_key()
    assert len(key) == 44
    assert len(base64.urlsafe_b64decode(key)) == 32
    assert key != new_secret_key()
    assert _settings(key).secret_key is not None
