"""Policy registration by change: a round reads, parses and writes only what changed.

The store is counted (every call by name) and so is the policy book (every ``load``), so "a round
with nothing changed does nothing" is asserted as "no store call, no load" rather than by time.
The behaviours that must survive (bad files reported and counted, removal followed, a file coming
back, an edit planned at once) run on every store through ``world``.
"""

from __future__ import annotations

from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from scheduler.app import planning
from scheduler.app.pipeline import Pipeline
from scheduler.app.policies import PolicyBook, PolicyFile
from scheduler.app.registration import REGISTER_BATCH
from scheduler.core.clock import FixedClock
from tests.usecase.fakes import FakeCalendar, FakeStore
from tests.usecase.world import ALEX, NOW, SAM_POLICY, World, alex_policy

#: Store methods that only read.
READS = {"all_users", "users_matching", "get_user", "get_user_by_email"}


class CountingStore:
    """The fake store, with every method call counted by name."""

    def __init__(self, inner: FakeStore) -> None:
        self.inner = inner
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not callable(attr):
            return attr

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return attr(*args, **kwargs)

        return counted

    def writes(self) -> Counter[str]:
        return Counter({k: v for k, v in self.calls.items() if k not in READS})


class CountingBook(PolicyBook):
    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.loads: Counter[str] = Counter()

    def load(self, path: str | Path) -> PolicyFile:
        self.loads[Path(path).name] += 1
        return super().load(path)


def owner_policy(i: int) -> str:
    return (
        f"owner: {{email: owner{i}@corp.example, name: Owner {i}, timezone: UTC}}\n"
        "tiers: {peer: {every: 4w, mode: auto}}\n"
        "stakeholders:\n  - {email: kim@corp.example, name: Kim Ito, tier: peer}\n"
        "allowed_domains: [corp.example]\n"
    )


def counted_pipeline(tmp_path: Path, files: int) -> tuple[Pipeline, CountingStore, CountingBook]:
    directory = tmp_path / "policies"
    directory.mkdir()
    for i in range(files):
        (directory / f"owner{i}.yaml").write_text(owner_policy(i))
    store, book = CountingStore(FakeStore()), CountingBook(directory)
    p = Pipeline(
        store=store,  # type: ignore[arg-type]
        clock=FixedClock(NOW),
        backends=FakeCalendar().backend,
        policies=book,
    )
    return p, store, book


def reset(store: CountingStore, book: CountingBook) -> None:
    store.calls.clear()
    book.loads.clear()


def test_a_round_with_nothing_changed_parses_nothing_and_calls_no_store(tmp_path: Path) -> None:
    p, store, book = counted_pipeline(tmp_path, 5)
    planning.register_policies(p)
    assert len(store.inner.all_users()) == 5
    assert sum(book.loads.values()) == 5
    for _ in range(3):
        reset(store, book)
        assert planning.register_policies(p) == []
        assert store.calls == Counter()  # no read, no write
        assert book.loads == Counter()  # nothing parsed


def test_an_edit_loads_and_writes_that_file_only_and_plans_it_at_once(tmp_path: Path) -> None:
    p, store, book = counted_pipeline(tmp_path, 5)
    planning.register_policies(p)
    user = store.inner.get_user_by_email("owner3@corp.example")
    assert user is not None
    store.inner.set_next_plan(user.id, NOW + timedelta(days=1))
    reset(store, book)
    path = tmp_path / "policies" / "owner3.yaml"
    path.write_text(owner_policy(3).replace("every: 4w", "every: 6w"))

    planning.register_policies(p)

    assert book.loads == Counter({"owner3.yaml": 1})
    assert store.writes() == Counter({"register_users": 1})
    after = store.inner.get_user(user.id)
    assert after is not None
    assert after.next_plan_at == NOW  # re-planned in this round
    assert after.policy_hash != user.policy_hash


def test_new_files_are_upserted_in_batches(tmp_path: Path) -> None:
    files = 2 * REGISTER_BATCH + 50
    p, store, _ = counted_pipeline(tmp_path, files)
    planning.register_policies(p)
    assert store.calls["register_users"] == 3  # one transaction per batch
    assert store.calls["upsert_user"] == 0
    assert len(store.inner.all_users()) == files


def test_a_new_process_writes_nothing_for_users_already_registered(tmp_path: Path) -> None:
    p, store, book = counted_pipeline(tmp_path, 4)
    planning.register_policies(p)
    fresh = Pipeline(
        store=store,  # type: ignore[arg-type]
        clock=p.clock,
        backends=p.backends,
        policies=CountingBook(tmp_path / "policies"),
    )
    reset(store, book)
    planning.register_policies(fresh)
    assert store.writes() == Counter()  # read all users once (a full round), wrote nothing


def test_a_removed_file_reads_only_its_users_and_is_followed(tmp_path: Path) -> None:
    p, store, book = counted_pipeline(tmp_path, 6)
    planning.register_policies(p)
    user = store.inner.get_user_by_email("owner2@corp.example")
    assert user is not None
    reset(store, book)
    path = tmp_path / "policies" / "owner2.yaml"
    text = path.read_text()
    path.unlink()

    planning.register_policies(p)
    assert store.calls["all_users"] == 0
    assert store.calls["users_matching"] == 1
    assert book.loads == Counter()
    gone = store.inner.get_user(user.id)
    assert gone is not None
    assert gone.policy_missing_since == NOW

    path.write_text(text)
    planning.register_policies(p)
    back = store.inner.get_user(user.id)
    assert back is not None
    assert back.policy_missing_since is None
    assert back.next_plan_at == NOW


# -- behaviours kept, on every store -------------------------------------------------------------


def test_an_unchanged_bad_file_keeps_its_issue_and_last_good_version(world: World) -> None:
    world.register()
    alex = world.user()
    path = world.write_policy(ALEX, alex_policy().replace("max_per_day: 1", "max_per_day: -3"))
    first = world.register()
    again = world.register()  # unchanged: not parsed again, still reported
    assert first
    assert [str(i) for i in again] == [str(i) for i in first]
    assert any(f"{path}:" in str(i) for i in again)  # FILE:LINE
    user = world.user()
    assert user.id == alex.id
    assert user.policy_error is not None
    assert "max_per_day" in user.policy_error
    assert user.policy_missing_since is None
    in_force = world.p.policies.load(path).policy  # the last good version stays in force
    assert in_force is not None
    assert in_force.availability.max_per_day == 1


@pytest.mark.parametrize("rounds_between", [0, 2])
def test_a_second_owner_added_later_is_registered_with_a_digest_time(
    world: World, rounds_between: int
) -> None:
    world.register()
    for _ in range(rounds_between):
        world.register()
    world.write_policy("sam@corp.example", SAM_POLICY + 'notify: {digest: "mon 08:30"}\n')
    issues = world.register()
    assert issues == []
    sam = world.user("sam@corp.example")
    assert sam.next_plan_at == NOW
    assert sam.next_digest_at is not None
    assert sam.next_digest_at > NOW


def test_a_round_of_many_new_files_never_holds_them_all_parsed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """10,000 new files held 10,000 parsed policies at once (~46 KiB each) and the tick's heap
    stayed at that high-water mark: a round holds one batch of them at a time."""
    import gc
    import weakref

    from scheduler.app import policies, registration

    monkeypatch.setattr(policies, "LOADED", policies._Loaded(1, packed_bytes=0))  # keep none
    files = 3 * REGISTER_BATCH + 10
    p, _, book = counted_pipeline(tmp_path, files)
    refs: list[weakref.ref[object]] = []  # (policies are not hashable: no WeakSet)
    load = book.load

    def tracked(path: str | Path) -> PolicyFile:
        pf = load(path)
        if pf.policy is not None:
            refs.append(weakref.ref(pf.policy))
        return pf

    most = 0
    register = registration._Round._register

    def counting(self: Any, batch: Any) -> None:
        nonlocal most
        gc.collect()
        most = max(most, sum(ref() is not None for ref in refs))
        register(self, batch)

    monkeypatch.setattr(book, "load", tracked)
    monkeypatch.setattr(registration._Round, "_register", counting)
    planning.register_policies(p)
    assert len(p.store.all_users()) == files
    assert most <= REGISTER_BATCH + 1, f"{most} parsed policies alive at once"
