"""DirectoryWatch against a real directory: inotify events come back as policy file keys."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from scheduler.app.policy_scan import list_policy_files
from scheduler.entrypoints.policy_watch import DirectoryWatch, watch_policies

DEADLINE_S = 10.0


@pytest.fixture
def watched(tmp_path: Path) -> Iterator[tuple[Path, DirectoryWatch]]:
    directory = tmp_path / "policies"
    directory.mkdir()
    watch = DirectoryWatch(directory, debounce_ms=20)
    watch.start()
    ready(watch)
    yield directory, watch
    watch.close()


def ready(watch: DirectoryWatch) -> None:
    """The first drain after start is None (nothing to count from); the next is a set."""
    assert watch.drain() is None
    assert watch.drain() == set()


def changed_until(watch: DirectoryWatch, expected: set[str]) -> set[str]:
    """Everything drained until ``expected`` was all seen (or the deadline passed)."""
    seen: set[str] = set()
    deadline = time.monotonic() + DEADLINE_S
    while not expected <= seen and time.monotonic() < deadline:
        drained = watch.drain()
        assert drained is not None
        seen |= drained
        time.sleep(0.01)
    return seen


def test_create_modify_delete_and_replace_are_each_reported(
    watched: tuple[Path, DirectoryWatch],
) -> None:
    directory, watch = watched
    alex = directory / "alex.yaml"
    alex.write_text("owner: {email: alex@corp.example}\n")
    assert str(alex) in changed_until(watch, {str(alex)})

    with alex.open("a") as file:  # in place: same inode
        file.write("# edited\n")
    assert str(alex) in changed_until(watch, {str(alex)})

    os.chmod(alex, 0o600)  # attributes only
    assert str(alex) in changed_until(watch, {str(alex)})

    alex.unlink()
    assert str(alex) in changed_until(watch, {str(alex)})

    sam = directory / "sam.toml"
    temporary = directory / ".sam.toml.tmp"
    temporary.write_text("[owner]\nemail = 'sam@corp.example'\n")
    os.replace(temporary, sam)  # how editors and config tools write
    seen = changed_until(watch, {str(sam)})
    assert str(sam) in seen
    assert seen <= {str(sam), str(temporary)}


def test_drain_forgets_what_it_returned(watched: tuple[Path, DirectoryWatch]) -> None:
    directory, watch = watched
    path = directory / "kim.yml"
    path.write_text("x: 1\n")
    assert str(path) in changed_until(watch, {str(path)})
    time.sleep(0.2)  # let any trailing event of that write arrive
    watch.drain()
    assert watch.drain() == set()


def test_a_relative_directory_gives_the_keys_list_policy_files_gives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    directory = Path("policies")
    directory.mkdir()
    watch = DirectoryWatch(directory, debounce_ms=20)
    watch.start()
    try:
        ready(watch)
        (directory / "lee.yaml").write_text("x: 1\n")
        [key] = list_policy_files(directory)
        assert not os.path.isabs(key)
        assert key in changed_until(watch, {key})
    finally:
        watch.close()


def test_none_before_start_and_after_close(tmp_path: Path) -> None:
    watch = DirectoryWatch(tmp_path)
    assert watch.drain() is None
    watch.start()
    ready(watch)
    watch.close()
    assert watch.drain() is None
    (tmp_path / "late.yaml").write_text("x: 1\n")
    assert watch.drain() is None
    watch.start()  # a closed watch stays closed
    assert watch.drain() is None


def test_a_missing_directory_is_not_watched_and_start_does_not_raise(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    watch = DirectoryWatch(tmp_path / "nowhere")
    with caplog.at_level("WARNING", logger="goodwill.policy_watch"):
        watch.start()
        watch.start()
    assert len(caplog.records) == 1
    assert "lists it every round" in caplog.records[0].getMessage()
    assert watch.drain() is None
    assert watch.drain() is None
    watch.close()


def test_removing_the_directory_ends_the_watch_for_good(tmp_path: Path) -> None:
    directory = tmp_path / "policies"
    directory.mkdir()
    watch = DirectoryWatch(directory, debounce_ms=20)
    watch.start()
    try:
        ready(watch)
        directory.rmdir()
        deadline = time.monotonic() + DEADLINE_S
        while watch.drain() is not None and time.monotonic() < deadline:
            time.sleep(0.01)
        directory.mkdir()  # back, but the old watch is gone: listing every round is the answer
        (directory / "back.yaml").write_text("x: 1\n")
        assert watch.drain() is None
    finally:
        watch.close()


def test_the_directory_s_mode_or_times_changing_keeps_the_watch(
    watched: tuple[Path, DirectoryWatch],
) -> None:
    """rsync -a, tar x and permission fixes touch the directory itself: still watched."""
    directory, watch = watched
    os.chmod(directory, 0o750)
    os.utime(directory)
    marker = directory / "after.yaml"
    marker.write_text("x: 1\n")  # seen once the directory's own events were handled
    assert str(marker) in changed_until(watch, {str(marker)})
    assert watch.drain() is not None


def test_symlinks_in_the_directory_mean_listing(watched: tuple[Path, DirectoryWatch]) -> None:
    # A link's target can change without an event on the directory (a ConfigMap volume).
    directory, watch = watched
    target = directory.parent / "elsewhere.yaml"
    target.write_text("x: 1\n")
    link = directory / "ash.yaml"
    link.symlink_to(target)
    deadline = time.monotonic() + DEADLINE_S
    while watch.drain() is not None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert watch.drain() is None
    link.unlink()
    deadline = time.monotonic() + DEADLINE_S
    while watch.drain() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert watch.drain() is not None


def test_watch_policies_can_be_turned_off(tmp_path: Path) -> None:
    assert watch_policies(tmp_path, enabled=False) is None
    watch = watch_policies(tmp_path)
    assert watch is not None
    try:
        ready(watch)
    finally:
        watch.close()
