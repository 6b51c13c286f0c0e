"""Meeting keys and UIDs are keyed: HMAC-SHA256 with a secret only the installation holds."""

from __future__ import annotations

import hashlib
import logging
import stat
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from connectors.ical_common import event_uid
from scheduler.app.pipeline import derive_key_secret, idempotency_key
from scheduler.core.errors import ConfigurationError
from scheduler.entrypoints.bootstrap import bootstrap
from scheduler.entrypoints.keys import KEY_FILE, meeting_key_secret
from scheduler.settings import Settings, new_secret_key

START = datetime(2027, 3, 2, 10, 0, tzinfo=UTC)
SECRET = derive_key_secret(b"k" * 32)


def _settings(tmp_path: Path, **values: object) -> Settings:
    return Settings(_env_file=None, data_dir=tmp_path / "data", **values)  # type: ignore[arg-type]


def test_the_key_is_not_the_guessable_sha256_of_its_inputs() -> None:
    key = idempotency_key(7, "jon@corp.example", START, secret=SECRET)
    # What UIDs used to be: anyone who knew the user id, the address and the time had them.
    old_raw = f"goodwill:7:jon@corp.example:{START.isoformat()}"
    assert key != "gw" + hashlib.sha256(old_raw.encode()).hexdigest()[:30]
    assert key.startswith("gw")
    assert len(key) == 32
    assert event_uid(key) == f"{key}@goodwill"


def test_the_key_depends_on_the_secret_and_nothing_else_varies() -> None:
    key = idempotency_key(7, "jon@corp.example", START, secret=SECRET)
    assert key == idempotency_key(7, " Jon@Corp.Example", START, secret=SECRET)
    same_instant = START.astimezone(timezone(timedelta(hours=-5)))
    assert key == idempotency_key(7, "jon@corp.example", same_instant, secret=SECRET)
    other = derive_key_secret(b"o" * 32)
    assert key != idempotency_key(7, "jon@corp.example", START, secret=other)
    assert key != idempotency_key(8, "jon@corp.example", START, secret=SECRET)
    with pytest.raises(ValueError, match="16 bytes"):
        idempotency_key(7, "jon@corp.example", START, secret=b"short")


def test_with_a_secret_key_every_process_derives_the_same_secret(tmp_path: Path) -> None:
    key = new_secret_key()
    a = meeting_key_secret(_settings(tmp_path / "a", secret_key=key))
    b = meeting_key_secret(_settings(tmp_path / "b", secret_key=key))
    assert a == b == derive_key_secret(key.encode())
    assert a != meeting_key_secret(_settings(tmp_path / "c", secret_key=new_secret_key()))
    assert not (tmp_path / "a" / "data" / KEY_FILE).exists()  # nothing written
    # Domain separation: it is not the secret key itself.
    assert a != key.encode()


def test_without_a_secret_key_a_private_installation_secret_is_made_once(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    first = meeting_key_secret(settings)
    path = tmp_path / "data" / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert meeting_key_secret(settings) == first  # read back, not remade
    assert meeting_key_secret(_settings(tmp_path / "elsewhere")) != first


def test_a_damaged_key_file_is_refused_with_the_file_and_the_fix(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    path = tmp_path / "data" / KEY_FILE
    path.parent.mkdir(parents=True)
    path.write_text("not base64 !!!\n")
    with pytest.raises(ConfigurationError, match="GOODWILL_SECRET_KEY") as caught:
        meeting_key_secret(settings)
    assert str(path) in str(caught.value)


def test_a_shared_database_without_a_secret_key_warns(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = _settings(tmp_path, database_url="postgresql+psycopg://db.internal/goodwill")
    with caplog.at_level(logging.WARNING, logger="goodwill.keys"):
        meeting_key_secret(settings)
    [record] = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "GOODWILL_SECRET_KEY" in record.getMessage()
    assert "@" not in record.getMessage()


def test_bootstrap_gives_every_process_of_an_installation_the_same_secret(tmp_path: Path) -> None:
    settings = _settings(tmp_path, policy_dir=tmp_path / "policies")
    one = bootstrap(settings, auto_migrate=True)
    two = bootstrap(settings)
    try:
        assert one.pipeline.key_secret == two.pipeline.key_secret
        assert len(one.pipeline.key_secret) == 32
    finally:
        one.engine.dispose()
        two.engine.dispose()
