"""The one atomic file write: old file or new file, never half; no temp file left; modes kept."""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest

from connectors.files import atomic_write


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".tmp"))


def test_writes_a_new_file_privately(tmp_path: Path) -> None:
    target = tmp_path / "a.ics"
    atomic_write(target, b"new")
    assert target.read_bytes() == b"new"
    assert _mode(target) == 0o600
    assert _leftovers(tmp_path) == []


def test_replacing_keeps_the_mode_of_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "a.ics"
    target.write_bytes(b"old")
    target.chmod(0o644)
    atomic_write(target, b"new")
    assert (target.read_bytes(), _mode(target)) == (b"new", 0o644)


@pytest.mark.parametrize("before", [None, 0o644])
def test_an_explicit_mode_wins(tmp_path: Path, before: int | None) -> None:
    target = tmp_path / "token"
    if before is not None:
        target.write_bytes(b"old")
        target.chmod(before)
    atomic_write(target, b"secret", mode=0o600)
    assert (target.read_bytes(), _mode(target)) == (b"secret", 0o600)


def test_the_old_file_is_replaced_not_rewritten(tmp_path: Path) -> None:
    # A reader holding the old file keeps reading the old bytes: the new file is a new inode.
    target = tmp_path / "a.ics"
    target.write_bytes(b"old content")
    with target.open("rb") as reader:
        atomic_write(target, b"new content")
        assert reader.read() == b"old content"
    assert target.read_bytes() == b"new content"


def test_a_failed_write_leaves_the_old_file_and_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "a.ics"
    target.write_bytes(b"old")

    def disk_full(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", disk_full)
    with pytest.raises(OSError, match="No space"):
        atomic_write(target, b"new")
    assert target.read_bytes() == b"old"
    assert _leftovers(tmp_path) == []


def test_a_failed_rename_leaves_no_temp_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "a.ics"

    def refuse(src: str, dst: str) -> None:
        raise PermissionError("read-only")

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(PermissionError):
        atomic_write(target, b"new")
    assert not target.exists()
    assert _leftovers(tmp_path) == []


def test_an_interrupt_also_cleans_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(fd: int) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "fsync", interrupted)
    with pytest.raises(KeyboardInterrupt):
        atomic_write(tmp_path / "a.ics", b"new")
    assert list(tmp_path.iterdir()) == []


def test_concurrent_writers_leave_one_whole_version(tmp_path: Path) -> None:
    target = tmp_path / "a.ics"
    versions = [bytes([65 + n]) * 50_000 for n in range(8)]
    threads = [threading.Thread(target=atomic_write, args=(target, v)) for v in versions]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert target.read_bytes() in versions
    assert _leftovers(tmp_path) == []


def test_the_directory_must_exist(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        atomic_write(tmp_path / "missing" / "a.ics", b"x")
