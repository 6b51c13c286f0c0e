"""Registration in a watched policy directory: a round stats only what the feed says changed.

The feed is an in-memory :class:`scheduler.app.policy_scan.ChangeFeed` (the real one, a file
watcher, is tested in ``tests/integration/test_policy_watch.py``); the files are real. Listings
of the directory and stats of files are counted, so "a quiet round costs O(changes)" is
asserted as "no listing, no stat, no store call, no load".
"""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path

import pytest

from scheduler.app import planning, policy_scan
from scheduler.app.pipeline import Pipeline
from tests.usecase.test_registration_by_change import (
    CountingBook,
    CountingStore,
    counted_pipeline,
    owner_policy,
    reset,
)
from tests.usecase.world import NOW


class FakeFeed:
    """Reports the paths it is told about; ``blind`` makes it unable to tell (None)."""

    def __init__(self) -> None:
        self.pending: set[str] = set()
        self.blind = False

    def drain(self) -> set[str] | None:
        if self.blind:
            return None
        out, self.pending = self.pending, set()
        return out


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    calls: Counter[str] = Counter()
    listing, stat = policy_scan.list_policy_files, policy_scan._stat_of

    def counted_listing(directory: Path) -> dict[str, policy_scan.FileStat]:
        calls["listing"] += 1
        return listing(directory)

    def counted_stat(path: str) -> policy_scan.FileStat | None:
        calls["stat"] += 1
        return stat(path)

    monkeypatch.setattr(policy_scan, "list_policy_files", counted_listing)
    monkeypatch.setattr(policy_scan, "_stat_of", counted_stat)
    return calls


Setup = tuple[Pipeline, CountingStore, CountingBook, FakeFeed, Path]


def _age(directory: Path) -> None:
    """Files written a minute ago: their stat is trusted (a file modified within
    ``policy_scan.RACY_NS`` of a round is stat'ed again the next round, event or not)."""
    past = time.time() - 60
    for path in directory.iterdir():
        os.utime(path, (past, past))


def _watched(tmp_path: Path, files: int = 6) -> Setup:
    p, store, book = counted_pipeline(tmp_path, files)
    _age(tmp_path / "policies")
    feed = FakeFeed()
    p.scan.feed = feed
    planning.register_policies(p)  # the first round is full: it lists
    reset(store, book)
    return p, store, book, feed, tmp_path / "policies"


def _key(directory: Path, name: str) -> str:
    return str(directory / name)


def test_quiet_watched_rounds_list_nothing_stat_nothing_and_call_no_store(
    tmp_path: Path, counted: Counter[str]
) -> None:
    p, store, book, _, _ = _watched(tmp_path)
    counted.clear()
    for _ in range(5):
        assert planning.register_policies(p) == []
    assert counted == Counter()
    assert store.calls == Counter()
    assert book.loads == Counter()


def test_an_edit_the_feed_reports_is_registered_alone(
    tmp_path: Path, counted: Counter[str]
) -> None:
    p, store, book, feed, directory = _watched(tmp_path)
    user = store.inner.get_user_by_email("owner3@corp.example")
    assert user is not None
    (directory / "owner3.yaml").write_text(owner_policy(3).replace("every: 4w", "every: 6w"))
    feed.pending.add(_key(directory, "owner3.yaml"))
    counted.clear()

    planning.register_policies(p)

    assert counted == Counter({"stat": 1})
    assert book.loads == Counter({"owner3.yaml": 1})
    assert store.writes() == Counter({"register_users": 1})
    after = store.inner.get_user(user.id)
    assert after is not None
    assert after.policy_hash != user.policy_hash


def test_new_and_removed_files_the_feed_reports_are_followed(
    tmp_path: Path, counted: Counter[str]
) -> None:
    p, store, _, feed, directory = _watched(tmp_path)
    gone = store.inner.get_user_by_email("owner2@corp.example")
    assert gone is not None
    (directory / "owner2.yaml").unlink()
    (directory / "owner9.yaml").write_text(owner_policy(9))
    feed.pending |= {_key(directory, "owner2.yaml"), _key(directory, "owner9.yaml")}
    counted.clear()

    planning.register_policies(p)

    assert counted["listing"] == 0
    removed = store.inner.get_user(gone.id)
    assert removed is not None
    assert removed.policy_missing_since == NOW
    assert store.inner.get_user_by_email("owner9@corp.example") is not None


@pytest.mark.parametrize("change", ["..data", "owner1.yaml.swp", "sub/owner1.yaml"])
def test_a_change_that_is_not_a_policy_file_lists_the_directory(
    tmp_path: Path, counted: Counter[str], change: str
) -> None:
    """A ConfigMap swaps its ``..data`` link, an editor writes a temporary file: the files
    themselves may have changed without an event of their own."""
    p, store, _, feed, directory = _watched(tmp_path)
    (directory / "owner1.yaml").write_text(owner_policy(1).replace("every: 4w", "every: 2w"))
    feed.pending.add(_key(directory, change))
    counted.clear()
    planning.register_policies(p)
    assert counted["listing"] == 1
    assert store.writes() == Counter({"register_users": 1})


def test_a_feed_that_cannot_tell_lists_the_directory(tmp_path: Path, counted: Counter[str]) -> None:
    p, _, _, feed, _ = _watched(tmp_path)
    feed.blind = True
    counted.clear()
    planning.register_policies(p)
    planning.register_policies(p)
    assert counted["listing"] == 2


def test_an_event_lost_is_caught_by_the_periodic_listing(
    tmp_path: Path, counted: Counter[str]
) -> None:
    p, store, _, _, directory = _watched(tmp_path)
    (directory / "owner4.yaml").write_text(owner_policy(4).replace("every: 4w", "every: 3w"))
    counted.clear()
    for _ in range(p.scan.list_every - 1):  # the rounds after a listing, up to the next
        planning.register_policies(p)
    assert counted["listing"] == 0
    assert store.writes() == Counter()
    planning.register_policies(p)
    assert counted["listing"] == 1
    assert store.writes() == Counter({"register_users": 1})


def test_a_bad_file_is_reported_every_watched_round(tmp_path: Path, counted: Counter[str]) -> None:
    p, _, _, feed, directory = _watched(tmp_path)
    (directory / "owner5.yaml").write_text("owner: [not, a, mapping\n")
    _age(directory)
    feed.pending.add(_key(directory, "owner5.yaml"))
    first = planning.register_policies(p)
    counted.clear()
    again = planning.register_policies(p)
    assert first
    assert [str(i) for i in again] == [str(i) for i in first]
    assert counted == Counter()


def test_a_vanished_directory_is_not_everyone_removed(tmp_path: Path) -> None:
    p, store, _, feed, directory = _watched(tmp_path, files=3)
    for path in list(directory.iterdir()):
        feed.pending.add(str(path))
        path.unlink()
    directory.rmdir()
    planning.register_policies(p)
    assert all(u.policy_missing_since is None for u in store.inner.all_users())


def test_a_file_written_just_before_a_round_is_stat_again_without_an_event(
    tmp_path: Path, counted: Counter[str]
) -> None:
    """Two writes of the same size inside the timestamp granularity leave the same stat: a
    file modified within RACY_NS of the round that saw it is looked at again next round."""
    p, _, _, feed, directory = _watched(tmp_path)
    (directory / "owner0.yaml").write_text(owner_policy(0).replace("every: 4w", "every: 5w"))
    feed.pending.add(_key(directory, "owner0.yaml"))
    planning.register_policies(p)
    counted.clear()
    planning.register_policies(p)  # no event: stat'ed again all the same (racy)
    assert counted == Counter({"stat": 1})


def test_a_round_that_failed_after_the_feed_drained_is_followed_by_a_listing(
    tmp_path: Path, counted: Counter[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The feed forgets what it handed out: a round that fails (the store is down) must not
    lose it, so the next round lists the directory."""
    p, store, _, feed, directory = _watched(tmp_path)
    (directory / "owner9.yaml").write_text(owner_policy(9))
    feed.pending.add(_key(directory, "owner9.yaml"))
    real = store.inner.users_matching

    def down(*_: object) -> object:
        raise ConnectionError("the database is down")

    monkeypatch.setattr(store.inner, "users_matching", down)
    with pytest.raises(ConnectionError):
        planning.register_policies(p)
    monkeypatch.setattr(store.inner, "users_matching", real)
    _a_listing_registers(p, store, counted, "owner9@corp.example")


def test_another_directory_at_the_same_path_is_listed(
    tmp_path: Path, counted: Counter[str]
) -> None:
    """A symbolic link retargeted or a volume mounted over the path: the feed watches the old
    directory, so the new one is listed."""
    p, store, _, _, directory = _watched(tmp_path, files=2)
    directory.rename(tmp_path / "old")
    directory.mkdir()
    (directory / "owner7.yaml").write_text(owner_policy(7))
    _a_listing_registers(p, store, counted, "owner7@corp.example")


def _a_listing_registers(
    p: Pipeline, store: CountingStore, counted: Counter[str], email: str
) -> None:
    """The next round lists the directory (once) and registers ``email``'s file."""
    counted.clear()
    planning.register_policies(p)
    assert counted["listing"] == 1
    assert store.inner.get_user_by_email(email) is not None


def test_the_directory_is_listed_at_least_every_list_every_s(
    tmp_path: Path, counted: Counter[str]
) -> None:
    p, _, _, _, _ = _watched(tmp_path, files=2)
    p.scan.list_every_s = 0.0  # a tick with a long interval: every round is "long enough"
    counted.clear()
    planning.register_policies(p)
    assert counted["listing"] == 1
