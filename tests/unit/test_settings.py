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


def _cli_errors(monkeypatch: pytest.MonkeyPatch, **env: str) -> str:
    """What ``goodwill`` prints for these settings (``goodwill link`` reads them first)."""
    import io

    from scheduler.entrypoints.cli import main

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    err = io.StringIO()
    assert main(["link", "--user", "ann@corp.example"], out=io.StringIO(), err=err) == 2
    return err.getvalue()


@pytest.mark.parametrize(
    "url", ["127.0.0.1:8080", "ftp://gw.example", "http://", "https:///page", "http://:8080/"]
)
def test_a_base_url_without_scheme_or_host_is_refused_with_the_value(
    monkeypatch: pytest.MonkeyPatch, url: str
) -> None:
    printed = _cli_errors(monkeypatch, GOODWILL_WEB__BASE_URL=url)
    assert "GOODWILL_WEB__BASE_URL" in printed
    assert repr(url) in printed  # the value itself, quoted
    assert "!r" not in printed
    assert "{got" not in printed
    assert "https://goodwill.corp.example" in printed  # an example of the fix


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080", "https://gw.example/", "http://[::1]:80"])
def test_a_base_url_with_a_host_is_accepted(url: str) -> None:
    assert Settings(_env_file=None, web={"base_url": url}).web.base_url == url.rstrip("/")


@pytest.mark.parametrize("port", ["abc", "-1", "65536", "80.5"])
def test_a_bad_port_names_the_variable_the_value_and_the_fix(
    monkeypatch: pytest.MonkeyPatch, port: str
) -> None:
    printed = _cli_errors(monkeypatch, GOODWILL_WEB__PORT=port)
    assert f"GOODWILL_WEB__PORT must be a whole number from 0 to 65535, got {port!r}" in printed
    assert "unset it for" in printed
    assert "Input should be" not in printed  # not pydantic's own wording


@pytest.mark.parametrize(
    ("host", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:8080"),
        ("::1", "http://[::1]:8080"),
        ("[::1]", "http://[::1]:8080"),
        ("fe80::1", "http://[fe80::1]:8080"),
        ("gw.local", "http://gw.local:8080"),
    ],
)
def test_the_default_base_url_brackets_an_ipv6_host(host: str, url: str) -> None:
    assert Settings(_env_file=None, web={"host": host}).web.effective_base_url == url
