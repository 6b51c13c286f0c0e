"""Token stores: round trip, encryption at rest, wrong key, file naming and permissions."""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

import pytest

from connectors.tokens import EncryptedFileTokenStore, MemoryTokenStore, TokenStore
from scheduler.core.errors import AuthorizationRevoked, ConfigurationError

EMAIL = "alex.doe@corp.example"
KEY = f"google:{EMAIL}"
BLOB = json.dumps({"refresh_token": "1//0refresh-SECRET-value", "email": EMAIL}).encode()


@pytest.mark.parametrize("factory", ["memory", "file"])
def test_round_trip_and_missing_key(tmp_path: Path, factory: str) -> None:
    store: TokenStore = (
        MemoryTokenStore() if factory == "memory" else EncryptedFileTokenStore(tmp_path, "s3cret")
    )
    assert isinstance(store, TokenStore)
    assert store.load(KEY) is None
    store.save(KEY, BLOB)
    assert store.load(KEY) == BLOB
    store.save(KEY, b"rotated")
    assert store.load(KEY) == b"rotated"
    assert store.load("google:other@corp.example") is None


def test_ciphertext_hides_the_token_and_the_email(tmp_path: Path) -> None:
    EncryptedFileTokenStore(tmp_path, "s3cret").save(KEY, BLOB)
    files = [p for p in tmp_path.iterdir() if p.name != "salt"]
    assert [p.name for p in files] == [hashlib.sha256(KEY.encode()).hexdigest()]
    raw = files[0].read_bytes()
    assert b"SECRET" not in raw
    assert b"refresh" not in raw
    assert EMAIL.encode() not in raw
    assert b"alex" not in raw
    assert all("alex" not in p.name for p in tmp_path.iterdir())


def test_files_are_private(tmp_path: Path) -> None:
    directory = tmp_path / "tokens"
    EncryptedFileTokenStore(directory, "s3cret").save(KEY, BLOB)
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    for path in directory.iterdir():
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name
    # No temp files are left behind by the atomic write.
    assert not [p for p in directory.iterdir() if p.name.endswith(".tmp")]
    names = {p.name for p in directory.iterdir()}
    assert names == {"salt", hashlib.sha256(KEY.encode()).hexdigest()}


def test_a_second_store_on_the_same_directory_reads_the_blob(tmp_path: Path) -> None:
    EncryptedFileTokenStore(tmp_path, "s3cret").save(KEY, BLOB)
    assert EncryptedFileTokenStore(tmp_path, "s3cret").load(KEY) == BLOB


def test_wrong_secret_key_says_reconnect(tmp_path: Path) -> None:
    EncryptedFileTokenStore(tmp_path, "s3cret").save(KEY, BLOB)
    with pytest.raises(AuthorizationRevoked, match="GOODWILL_SECRET_KEY"):
        EncryptedFileTokenStore(tmp_path, "another-secret").load(KEY)


def test_tampered_file_is_refused(tmp_path: Path) -> None:
    store = EncryptedFileTokenStore(tmp_path, "s3cret")
    store.save(KEY, BLOB)
    path = tmp_path / hashlib.sha256(KEY.encode()).hexdigest()
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(AuthorizationRevoked):
        store.load(KEY)


def test_salt_differs_per_store_directory(tmp_path: Path) -> None:
    EncryptedFileTokenStore(tmp_path / "a", "s3cret").save(KEY, BLOB)
    EncryptedFileTokenStore(tmp_path / "b", "s3cret").save(KEY, BLOB)
    assert (tmp_path / "a" / "salt").read_bytes() != (tmp_path / "b" / "salt").read_bytes()
    # Same secret, other salt: the key differs, so a copied file does not decrypt elsewhere.
    name = hashlib.sha256(KEY.encode()).hexdigest()
    (tmp_path / "b" / name).write_bytes((tmp_path / "a" / name).read_bytes())
    with pytest.raises(AuthorizationRevoked):
        EncryptedFileTokenStore(tmp_path / "b", "s3cret").load(KEY)


def test_empty_secret_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError):
        EncryptedFileTokenStore(tmp_path, "")
