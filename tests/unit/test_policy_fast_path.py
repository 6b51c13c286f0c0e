"""The policy loader's fast path (C YAML loader, plain validation) against the explaining path.

Every policy in the repository (examples, test data, the policies written by the tests) loads to
the same :class:`Policy` both ways; every bad file gives the same ``FILE:LINE`` issues both ways;
and the process's cache by content parses an unchanged file once, whoever asks.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

from scheduler.app import policies
from scheduler.app.policies import PolicyBook, load_policy
from scheduler.core.policy import PolicyFormat, PolicyLimits, validate_policy_text
from scheduler.core.policy.load import _LazyLines

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT / "tests" / "unit" / "data" / "policies"
FILES = sorted(
    p
    for folder in (ROOT / "examples" / "policies", DATA / "good", DATA / "bad")
    for p in folder.iterdir()
    if p.suffix in (".yaml", ".yml", ".toml")
)
OWNER = "owner: {email: alex@corp.example, name: Alex Doe, timezone: Europe/London}\n"
PEER = "tiers:\n  peer: {every: 4w}\n"
SAM = "  - {email: sam@corp.example, name: Sam Lee, tier: peer}\n"

#: Texts the fast path must decline (or accept) exactly as the explaining path decides.
TRICKY = {
    "merge keys": (
        OWNER + PEER + "stakeholders:\n  - &sam {email: sam@corp.example, name: Sam, tier: peer}\n"
        "  - {<<: *sam, email: kim@corp.example, name: Kim}\n"
    ),
    "duplicate key": OWNER + PEER + "stakeholders:\n" + SAM + "tiers: {peer: {every: 2w}}\n",
    "duplicate nested key": OWNER + PEER + "stakeholders:\n  - {email: a@corp.example, "
    "name: A, tier: peer, name: B}\n",
    "quoted and plain key": OWNER + PEER + 'stakeholders:\n  - {email: a@corp.example, "name": A,'
    " tier: peer, name: B}\n",
    "alias as a key": "&k owner: {email: alex@corp.example, name: A, timezone: UTC}\n"
    + PEER
    + "*k : 1\n",
    "collection as a key": OWNER + PEER + "? [a, b]\n: 1\n",
    "tagged timestamp": OWNER + "tiers:\n!!timestamp   peer: {every: 8w}\n",
    "bad date": OWNER + PEER + "availability: {blackout: [2026-02-30]}\n",
    "two documents": OWNER + "---\n" + OWNER,
    "not a mapping": "- 1\n- 2\n",
    "only comments": "# nothing\n",
    "syntax": OWNER + "tiers: [\n",
    "unknown field": OWNER + PEER + "stakeholders:\n" + SAM + "colour: blue\n",
    "long text": OWNER + PEER + "stakeholders:\n" + SAM + "x: " + "y" * 10_001 + "\n",
    "many stakeholders": OWNER
    + PEER
    + "stakeholders:\n"
    + "".join(f"  - {{email: p{i}@corp.example, name: P, tier: peer}}\n" for i in range(6)),
}


def _both(text: str, fmt: PolicyFormat, limits: PolicyLimits | None = None) -> tuple:  # type: ignore[type-arg]
    digest = hashlib.sha256(text.encode()).hexdigest()
    fast = validate_policy_text(text, "policy.yaml", fmt, digest, limits)
    slow = validate_policy_text(text, "policy.yaml", fmt, digest, limits, fast=False)
    return fast, slow


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_policy_file_loads_the_same_both_ways(path: Path) -> None:
    fmt: PolicyFormat = "toml" if path.suffix == ".toml" else "yaml"
    fast, slow = _both(path.read_text(encoding="utf-8"), fmt)
    assert fast.issues == slow.issues
    assert fast.policy == slow.policy
    if fast.policy is not None:
        assert fast.policy.content_hash == slow.policy.content_hash  # type: ignore[union-attr]
        for where in [("owner", "email"), ("stakeholders", 0), ("tiers",), ("nowhere", 3)]:
            assert fast.lines.line_of(where) == slow.lines.line_of(where)
    if fmt == "yaml" and fast.policy is not None:
        assert isinstance(fast.lines, _LazyLines)  # the valid file took the fast path


@pytest.mark.parametrize("name", sorted(TRICKY))
def test_tricky_texts_get_the_same_verdict_and_messages_both_ways(name: str) -> None:
    limits = PolicyLimits(max_stakeholders=5)
    fast, slow = _both(TRICKY[name], "yaml", limits)
    assert [(i.line, i.field, i.message) for i in fast.issues] == [
        (i.line, i.field, i.message) for i in slow.issues
    ]
    assert fast.policy == slow.policy
    expect_policy = name == "merge keys"
    assert (fast.policy is not None) == expect_policy


def test_an_explicit_tag_on_text_of_another_form_is_an_issue_on_its_line() -> None:
    fast, _ = _both(TRICKY["tagged timestamp"], "yaml")
    [issue] = fast.issues
    assert issue.line == 3
    assert issue.message == "'peer' is not a valid date (not written as one); fix the value"


def test_an_unchanged_file_is_parsed_once_per_process(tmp_path: Path) -> None:
    path = tmp_path / "alex.yaml"
    path.write_text(TRICKY["merge keys"], encoding="utf-8")
    policies.LOADED.clear()
    misses = policies.LOADED.misses
    first = PolicyBook(tmp_path).load(path).policy
    second = PolicyBook(tmp_path).load(path).policy  # another book: the same parse
    third = load_policy(path)
    assert first is not None
    assert first is second is third
    assert policies.LOADED.misses == misses + 1

    path.write_text(TRICKY["merge keys"].replace("name: Kim", "name: Kimi"), encoding="utf-8")
    changed = PolicyBook(tmp_path).load(path).policy
    assert changed is not None
    assert changed != first
    assert changed.stakeholder("kim@corp.example").name == "Kimi"  # type: ignore[union-attr]
    assert policies.LOADED.misses == misses + 2


def test_the_cache_by_content_is_bounded() -> None:
    cache = policies._Loaded(3)
    limits = PolicyLimits()
    for i in range(10):
        person = f"  - {{email: p{i}@corp.example, name: P, tier: peer}}\n"
        text = OWNER + PEER + "stakeholders:\n" + person
        loaded = cache.load("a.yaml", text.encode(), "yaml", limits)
        assert loaded.policy is not None
        assert len(cache) <= 3
    assert len(cache) == 3


def _peers(i: int) -> bytes:
    person = f"  - {{email: p{i}@corp.example, name: P, tier: peer}}\n"
    return (OWNER + PEER + "stakeholders:\n" + person).encode()


def _counting_parses(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    parses: list[bytes] = []
    parse = policies._parse_bytes

    def counted(source: str, raw: bytes, *rest: Any) -> Any:
        parses.append(raw)
        return parse(source, raw, *rest)

    monkeypatch.setattr(policies, "_parse_bytes", counted)
    return parses


def test_a_policy_out_of_the_parsed_cache_is_unpacked_not_parsed_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """More owners than parsed entries (a worker at N = 10,000): those that left the parsed
    entries come back from their packed copy, equal to what parsing gives, without parsing."""
    cache = policies._Loaded(2)
    limits = PolicyLimits()
    texts = [_peers(i) for i in range(6)]
    first = [cache.load("a.yaml", raw, "yaml", limits).policy for raw in texts]
    parses = _counting_parses(monkeypatch)

    again = [cache.load("a.yaml", raw, "yaml", limits).policy for raw in texts]

    assert parses == []  # four unpacked, two still parsed
    assert again == first
    assert len(cache) == 2


def test_an_entry_unpacked_and_evicted_again_is_not_pickled_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 13: a worker seeing more owners than parsed entries cycles each policy through its
    packed copy; each is pickled and compressed once, when it first leaves, and the copy it was
    unpacked from serves every later eviction."""
    cache = policies._Loaded(2)
    limits = PolicyLimits()
    texts = [_peers(i) for i in range(6)]
    first = [cache.load("a.yaml", raw, "yaml", limits).policy for raw in texts]
    assert cache.packs == 4  # the first four left the two parsed entries
    parses = _counting_parses(monkeypatch)

    for _ in range(3):
        again = [cache.load("a.yaml", raw, "yaml", limits).policy for raw in texts]
        assert again == first

    assert parses == []
    assert cache.packs == 6  # each once; the old way: 4 + 6 + 6 + 6
    assert set(cache._unpacked_from) <= set(cache._items)  # bounded by the parsed entries
    cache.clear()
    assert not cache._unpacked_from
    assert cache.load("a.yaml", texts[0], "yaml", limits).policy == first[0]


def test_the_packed_copies_are_bounded_in_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    cache = policies._Loaded(1, packed_bytes=0)  # nothing fits: what leaves is dropped
    limits = PolicyLimits()
    for i in range(3):
        cache.load("a.yaml", _peers(i), "yaml", limits)
    parses = _counting_parses(monkeypatch)
    cache.load("a.yaml", _peers(0), "yaml", limits)
    assert parses == [_peers(0)]


def test_a_bad_file_found_in_the_cache_keeps_its_issues_and_lines(tmp_path: Path) -> None:
    cache = policies._Loaded(8)
    raw = (DATA / "bad" / "undefined_tier.yaml").read_bytes()
    first = cache.load("u.yaml", raw, "yaml", PolicyLimits())
    again = cache.load("u.yaml", raw, "yaml", PolicyLimits())
    assert first.issues == again.issues
    assert first.issues
    assert cache.hits == 1
    assert again.lines.line_of(("tiers",)) == first.lines.line_of(("tiers",))


def test_the_book_keeps_its_last_good_versions_as_bytes_not_parsed(tmp_path: Path) -> None:
    """Issue 13: a tick (or a worker) sees every owner's policy; keeping each parsed made its
    memory grow ~23 KiB per user (a 10,000-user tick held 611 MiB). The book keeps each path's
    last good bytes and parses them again, through the cache by content, when asked."""
    import gc
    import tracemalloc

    people = "".join(
        f"  - {{email: p{i}@corp.example, name: P {i}, tier: peer}}\n" for i in range(20)
    )
    for n in range(200):
        (tmp_path / f"u{n}.yaml").write_text(
            f"owner: {{email: u{n}@corp.example, name: U, timezone: Europe/London}}\n"
            f"{PEER}stakeholders:\n{people}"
        )
    book = PolicyBook(tmp_path)
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        assert all(book.load(f).policy is not None for f in book.files())
        policies.LOADED.clear()
        gc.collect()
        kept_per_file = (tracemalloc.get_traced_memory()[0] - before) / 200
    finally:
        tracemalloc.stop()
    assert kept_per_file < 6 * 1024  # its bytes and a little bookkeeping (parsed: ~23 KiB)

    # and a broken edit still falls back to the last good version, parsed again
    (tmp_path / "u7.yaml").write_text("owner: [broken\n")
    loaded = book.load(tmp_path / "u7.yaml")
    assert loaded.issues
    assert loaded.policy is not None
    assert loaded.policy.owner.email == "u7@corp.example"
