"""The secret that keys meeting idempotency keys and UIDs, for the composition root.

With ``GOODWILL_SECRET_KEY`` set, the meeting-key secret is derived from it (HMAC-SHA256 over a
label of its own, :data:`scheduler.app.pipeline.KEY_SECRET_LABEL`), so every process and host
given the same environment derives the same one, and it is never the key that encrypts grants.

Without it (a valid set-up: a Google service account or Microsoft app-only stores no grants,
and ``make demo`` needs no configuration) the root secret is a random per-installation value
kept in ``<GOODWILL_DATA_DIR>/meeting-key.secret`` (mode 0600), made on first use. Every
process sharing that data directory shares it; processes on other hosts with their own data
directories would not, so with a shared database and no secret key a warning says to set
``GOODWILL_SECRET_KEY``. Losing the file changes only the keys of meetings planned afterwards:
stored meetings keep their keys and UIDs.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import secrets
from pathlib import Path

from scheduler.app.pipeline import derive_key_secret
from scheduler.core.errors import ConfigurationError
from scheduler.settings import Settings

__all__ = ["KEY_FILE", "meeting_key_secret"]

#: The per-installation root secret's file name inside ``GOODWILL_DATA_DIR``.
KEY_FILE = "meeting-key.secret"
_ROOT_BYTES = 32
_log = logging.getLogger("goodwill.keys")


def meeting_key_secret(settings: Settings, *, create: bool = True) -> bytes:
    """The secret for :attr:`scheduler.app.pipeline.Pipeline.key_secret`.

    ``create`` False (a dry run, which writes nothing): a missing key file is not made; the
    secret is then a random one of this process, good for nothing that is kept.

    Raises:
        ConfigurationError: no secret key is set and the key file cannot be read or made.
    """
    if settings.secret_key is not None:
        return derive_key_secret(settings.secret_key.get_secret_value().encode())
    path = settings.data_dir / KEY_FILE
    if not create and not path.exists():
        return derive_key_secret(secrets.token_bytes(_ROOT_BYTES))
    root = _read_or_create(path)
    if not settings.effective_database_url.startswith("sqlite"):
        _log.warning(
            "GOODWILL_SECRET_KEY is not set: meeting keys and UIDs are keyed with the secret in "
            "%s; every process that plans must share it. Set GOODWILL_SECRET_KEY (make one "
            "with `goodwill secret`) in the environment of every goodwill process",
            path,
        )
    return derive_key_secret(root)


def _read_or_create(path: Path) -> bytes:
    try:
        return _decode(path, path.read_bytes())
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise _unusable(path, f"it cannot be read ({exc.strerror})") from exc
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first: use theirs
        return _decode(path, path.read_bytes())
    except OSError as exc:
        raise _unusable(path, f"it cannot be created ({exc.strerror})") from exc
    root = secrets.token_bytes(_ROOT_BYTES)
    with os.fdopen(fd, "wb") as fh:
        fh.write(base64.urlsafe_b64encode(root) + b"\n")
        fh.flush()
        os.fsync(fh.fileno())
    _log.info("made a new meeting-key secret in %s (GOODWILL_SECRET_KEY is not set)", path)
    return root


def _decode(path: Path, data: bytes) -> bytes:
    try:
        root = base64.urlsafe_b64decode(data.strip())
    except (binascii.Error, ValueError) as exc:
        raise _unusable(path, "it is not base64") from exc
    if len(root) < _ROOT_BYTES:
        raise _unusable(path, f"it holds {len(root)} bytes, not {_ROOT_BYTES}")
    return root


def _unusable(path: Path, why: str) -> ConfigurationError:
    return ConfigurationError(
        f"{path}: the meeting-key secret is unusable: {why}. Set GOODWILL_SECRET_KEY (make one "
        f"with `goodwill secret`), or restore the file from a backup, or remove it to start a "
        "new one (meetings already booked keep their UIDs)"
    )
