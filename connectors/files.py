"""Writing a file so that a crash leaves the old file or the new one, never half of either.

Used by the ICS directory (:class:`connectors.ics_write.CalendarFiles`) and the encrypted token
store (:class:`connectors.tokens.EncryptedFileTokenStore`).
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path

__all__ = ["atomic_write"]


def atomic_write(path: Path, data: bytes, *, mode: int | None = None) -> None:
    """Replace ``path`` with ``data`` atomically.

    The bytes go to a temporary file beside ``path`` (``.<name>.<random>.tmp``: same directory,
    so the same file system), are flushed to disk, and the temporary file is renamed over
    ``path`` with :func:`os.replace`. A reader sees the old content or the new, never a mix.
    If anything fails, the temporary file is removed and ``path`` is left as it was.

    Args:
        path: the file to write; its directory must exist.
        data: the complete new content.
        mode: permission bits to give the file (``0o600``). None keeps the mode of the file being
            replaced; a new file is then private (``0o600``, as :func:`tempfile.mkstemp` makes it).
    """
    if mode is None:
        with contextlib.suppress(FileNotFoundError):
            mode = stat.S_IMODE(path.stat().st_mode)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            if mode is not None:
                os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
