"""Per-process costs of a worker (issue 13): policy loads, the service-account key, ICS parses, RSS.

Each row measures the new path against the old one *in the same run*, where the old one still
exists in the code:

- **policy load**: PyYAML's pure-Python ``SafeLoader`` plus validation (what the issue measured),
  the explaining (line-positioned) loader that every load used to run, the fast path (libyaml's
  event stream for the limits, ``CSafeLoader``, plain validation), and a load of an unchanged
  file (the process's cache by content);
- **policy cache cycling**: a process seeing more owners than the cache's parsed entries (a
  worker or the tick at N = 10,000) loads each policy again and again through its packed copy;
  the old cache pickled and compressed an entry anew every time it left the parsed ones, the new
  one packs it once and keeps the copy it was unpacked from;
- **service-account key**: reading the key file and parsing its RSA key for each owner (the old
  registry) against :class:`connectors.google_keys.ServiceAccountKey` (parsed once, one
  ``with_subject`` per owner);
- **ICS calendar file**: ``parse_calendar`` of the file against the cache by content (read and
  hash) and by settled stamp (no read), and one whole planning round's read for scale: without
  a cache, with parses kept only, and with parses and expanded instances kept;
- **worker RSS** after planning distinct owners (the connector registry, four worker threads,
  the Google emulator in the parent process) with ``GOODWILL_LIMITS__CLIENT_CACHE_SIZE`` at its
  default against a cache as large as the number of owners (the old unbounded dict).

``make bench-process`` (not part of ``make test``); ``--owners`` sets the RSS run's size.
Timings are medians of repeated runs on a shared machine: compare rows, not runs.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from scheduler.core.policy import Policy, PolicyLimits, load_policy_text

ROOT = Path(__file__).resolve().parents[1]
CALENDARS = ROOT / "examples" / "calendars"
Row = tuple[str, str, float, float]  # what, unit, old, new


def _median_ms(work: Callable[[], object], *, repeat: int = 15, number: int = 5) -> float:
    return _medians_ms([work], repeat=repeat, number=number)[0]


def _medians_ms(
    works: list[Callable[[], object]], *, repeat: int = 15, number: int = 5
) -> list[float]:
    """Median ms per call of each of ``works``, run in turns (ABCABC…) so that a busy moment
    of the shared machine falls on all of them alike."""
    for work in works:
        work()
    runs: list[list[float]] = [[] for _ in works]
    for _ in range(repeat):
        for index, work in enumerate(works):
            started = time.perf_counter()
            for _ in range(number):
                work()
            runs[index].append((time.perf_counter() - started) / number * 1000)
    return [statistics.median(r) for r in runs]


def policy_text(stakeholders: int) -> str:
    people = "".join(
        f"  - {{email: p{i}@corp.example, name: Peer {i}, tier: peer, timezone: Europe/London}}\n"
        for i in range(stakeholders)
    )
    return (
        "owner: {email: alex@corp.example, name: Alex Doe, timezone: Europe/London}\n"
        "calendar: {provider: google}\n"
        "meeting: {kind: coffee, duration: 30m}\n"
        "availability:\n"
        '  working_hours: {mon-fri: "09:00-17:00"}\n'
        "  horizon: 14d\n"
        "tiers:\n"
        "  peer: {every: 4w, mode: propose}\n"
        f"stakeholders:\n{people}"
        "allowed_domains: [corp.example]\n"
    )


def _policy_timings(text: str, limits: PolicyLimits) -> tuple[float, float, float, float]:
    """(SafeLoader + validation, explaining path, fast path, unchanged file) in ms."""
    from scheduler.app.policies import _Loaded
    from scheduler.core.policy import validate_policy_text

    raw = text.encode()
    digest = hashlib.sha256(raw).hexdigest()
    cache = _Loaded(8)
    cache.load("p.yaml", raw, "yaml", limits)
    pure, explaining, fast = _medians_ms(
        [
            lambda: Policy.model_validate(yaml.load(text, Loader=yaml.SafeLoader)),
            lambda: validate_policy_text(text, "p.yaml", "yaml", digest, limits, fast=False),
            lambda: validate_policy_text(text, "p.yaml", "yaml", digest, limits),
        ]
    )
    hit = _median_ms(lambda: cache.load("p.yaml", raw, "yaml", limits), number=50)
    return pure, explaining, fast, hit


def policy_rows() -> list[Row]:
    rows: list[Row] = []
    for count in (20, 200):
        pure, explained, fast, hit = _policy_timings(policy_text(count), PolicyLimits())
        rows += [
            (f"policy, {count} people: SafeLoader vs fast path", "ms", pure, fast),
            (f"policy, {count} people: explaining vs fast path", "ms", explained, fast),
            (f"policy, {count} people: explaining vs unchanged file", "ms", explained, hit),
        ]
    return rows


def cycling_rows(owners: int = 3000, passes: int = 3) -> list[Row]:
    """ms per load over ``passes`` passes of ``owners`` distinct policies (each its own file)
    through the process cache's :data:`~scheduler.app.policies.LOADED_CACHE_SIZE` parsed
    entries, after a first pass that parsed them all: old (packed anew at every eviction)
    against new."""
    from scheduler.app.policies import LOADED_CACHE_SIZE, PACKED_CACHE_BYTES, _Loaded

    class _Repacking(_Loaded):  # the cache before: no copy kept of what it unpacked
        def _keep(self, key: tuple[object, ...], kept: Any, packed: bytes | None = None) -> Any:
            return super()._keep(key, kept, None)

    limits = PolicyLimits()
    base = policy_text(20)
    texts = [base.replace("alex@", f"owner{i}@").encode() for i in range(owners)]
    timings: list[float] = []
    for cache in (_Repacking(LOADED_CACHE_SIZE, PACKED_CACHE_BYTES), _Loaded(LOADED_CACHE_SIZE)):
        for raw in texts:
            cache.load("p.yaml", raw, "yaml", limits)
        began = time.process_time()
        for _ in range(passes):
            for raw in texts:
                cache.load("p.yaml", raw, "yaml", limits)
        timings.append((time.process_time() - began) * 1000 / (passes * owners))
    what = f"policy cache, {owners:,} owners through {LOADED_CACHE_SIZE:,} parsed: repack vs once"
    return [(what, "ms", timings[0], timings[1])]


def key_rows(owners: int = 200) -> list[Row]:
    from connectors.google import SCOPES, service_account_credentials
    from connectors.google_keys import ServiceAccountKey
    from tests.integration.reliability_support import service_account_file

    with tempfile.TemporaryDirectory() as tmp:
        path = service_account_file(Path(tmp) / "sa.json")
        names = [f"o{i}@corp.example" for i in range(owners)]
        uri = "http://127.0.0.1:9/token"
        old, new = math.inf, math.inf
        for _ in range(3):  # in turns, the best of three: a busy moment hits both alike
            started = time.perf_counter()
            for name in names:
                service_account_credentials(json.loads(path.read_text()), name, uri)
            old = min(old, (time.perf_counter() - started) / owners * 1000)
            keys = ServiceAccountKey(path, uri, SCOPES, cache_size=owners)
            started = time.perf_counter()
            for name in names:
                keys(name)
            new = min(new, (time.perf_counter() - started) / owners * 1000)
    return [(f"service-account credentials, per owner ({owners} owners)", "ms", old, new)]


def ics_rows() -> list[Row]:
    from connectors.ics import IcsDirectory
    from connectors.ics_input import CalendarCache, file_stamp, parse_calendar
    from scheduler.core.intervals import Interval
    from scheduler.core.model import BusyQuery, Person
    from scheduler.settings import Limits

    limits = Limits()
    files = sorted(CALENDARS.glob("*.ics"))
    datas = [(p, p.read_bytes()) for p in files]

    def parse_all() -> None:
        for path, data in datas:
            parse_calendar(data, source=path.name, limits=limits)

    cache = CalendarCache()
    for path, data in datas:
        cache.parse(str(path), data, source=path.name, limits=limits)

    def by_digest() -> None:
        for path, _ in datas:
            cache.parse(str(path), path.read_bytes(), source=path.name, limits=limits)

    stamped = CalendarCache()
    later = time.time() + 3600  # as if the files had settled
    stamps = {}
    for path, data in datas:
        stamps[path] = file_stamp(path, now=later)
        stamped.parse(str(path), data, source=path.name, limits=limits, stamp=stamps[path])

    def by_stamp() -> None:
        for path, _ in datas:
            stamp = file_stamp(path, now=later)
            assert stamped.unchanged(str(path), stamp, source=path.name, limits=limits)

    per = len(files)
    parse_ms, digest_ms, stamp_ms = (
        ms / per for ms in _medians_ms([parse_all, by_digest, by_stamp], repeat=7, number=1)
    )
    rows: list[Row] = [
        ("ICS file: parse vs kept by content (read, hash)", "ms", parse_ms, digest_ms),
        ("ICS file: parse vs kept by settled stamp (no read)", "ms", parse_ms, stamp_ms),
    ]

    people = tuple(Person(p.stem, p.stem, "Europe/London") for p in files)
    now = datetime(2026, 12, 1, tzinfo=UTC)
    fresh = IcsDirectory(CALENDARS, limits=Limits(ics_cache_entries=0))
    kept = IcsDirectory(CALENDARS, cache=CalendarCache())

    def round_of(directory: IcsDirectory) -> Callable[[], object]:
        def run() -> object:
            directory.last_contacts(
                people[0], [p.email for p in people[1:]], now - timedelta(weeks=26), now
            )
            window = Interval(now, now + timedelta(days=14))
            return directory.busy(BusyQuery(window=window, people=people))

        return run

    class ParsesOnly(CalendarCache):
        """The cache as it was before expansions were kept with the parses."""

        def memo(self, *args: object, **kwargs: object) -> None:
            return None

    parses_only = IcsDirectory(CALENDARS, cache=ParsesOnly())
    no_cache, parsed_only, cached = _medians_ms(
        [round_of(fresh), round_of(parses_only), round_of(kept)], repeat=5, number=1
    )
    what = f"ICS round ({per} files, 26 weeks + 14 days)"
    rows.append((f"{what}: no cache vs cache", "ms", no_cache, cached))
    rows.append((f"{what}: parses kept vs parses and expansions kept", "ms", parsed_only, cached))
    return rows


# -- RSS ---------------------------------------------------------------------------------------


def _rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def rss_child(argv: list[str]) -> int:
    """In a fresh process: plan ``owners`` distinct owners with four threads; print RSS (MiB)."""
    owners, size, api, token, key = int(argv[0]), int(argv[1]), argv[2], argv[3], Path(argv[4])
    from bench.plan_round import policy_for
    from connectors.registry import BackendRegistry
    from scheduler.core.intervals import Interval
    from scheduler.core.model import BusyQuery, Person
    from scheduler.settings import GoogleSettings, Limits, Settings

    google = GoogleSettings(
        service_account_file=key, token_uri=token, api_endpoint=api, timeout_s=30
    )
    bound = {"client_cache_size": size} if "client_cache_size" in Limits.model_fields else {}
    with tempfile.TemporaryDirectory() as tmp:
        settings = Settings(data_dir=Path(tmp), google=google, limits=Limits(**bound))
    registry = BackendRegistry(settings)
    peers = [Person(f"peer{i}@corp.example", "Peer", "UTC") for i in range(5)]
    monday = datetime(2027, 3, 1, tzinfo=UTC)
    window = Interval(monday, monday + timedelta(days=14))
    before = _rss_mib()

    def plan(index: int) -> None:
        owner = Person(f"o{index:05d}@corp.example", "Owner", "UTC")
        backend = registry(policy_for(owner, "google", peers))
        assert backend.history is not None
        backend.history.last_contacts(
            owner, [p.email for p in peers], monday - timedelta(weeks=26), monday
        )
        result = backend.source.busy(BusyQuery(window=window, people=(owner, *peers)))
        assert not result.unavailable, result.unavailable

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(plan, range(owners)))
    backend = registry(policy_for(Person("o00000@corp.example", "O", "UTC"), "google", peers))
    services = getattr(backend.source, "_services", None)  # the baseline: one backend per owner
    kept = len(services) if services is not None else len(registry._cache)
    print(json.dumps({"before": before, "after": _rss_mib(), "kept": kept}))
    return 0


def rss_rows(owners: int, tree: Path | None = None) -> list[Row]:
    from tests.emulators.google_emulator import GoogleEmulator
    from tests.integration.reliability_support import service_account_file

    results = {}
    with tempfile.TemporaryDirectory() as tmp, GoogleEmulator() as emulator:
        key = service_account_file(Path(tmp) / "sa.json")
        for i in range(2 * owners):
            emulator.add_calendar(f"o{i:05d}@corp.example")
        for i in range(5):
            emulator.add_calendar(f"peer{i}@corp.example")
        runs = {
            "unbounded": (owners, owners + 1),
            "bounded": (owners, 256),
            "twice": (2 * owners, 256),
        }
        if tree is not None:
            runs["baseline"] = (owners, owners + 1)
        for label, (count, size) in runs.items():
            child = ["--rss-child", str(count), str(size), emulator.api_endpoint]
            child += [emulator.token_uri, str(key)]
            results[label] = json.loads(_child(child, tree if label == "baseline" else None))
    old, new, twice = results["unbounded"], results["bounded"], results["twice"]
    return [
        (
            f"worker RSS, {owners} owners planned (4 threads), clients kept: "
            f"{old['kept']} vs {new['kept']}",
            "MiB",
            old["after"],
            new["after"],
        ),
        (
            "  of which grown while planning",
            "MiB",
            old["after"] - old["before"],
            new["after"] - new["before"],
        ),
        (
            f"worker RSS, bounded: {owners} vs {2 * owners} owners planned",
            "MiB",
            new["after"],
            twice["after"],
        ),
        *(
            [
                (
                    f"worker RSS, {owners} owners planned: baseline vs now "
                    f"(clients kept {results['baseline']['kept']} vs {new['kept']})",
                    "MiB",
                    results["baseline"]["after"],
                    new["after"],
                )
            ]
            if "baseline" in results
            else []
        ),
    ]


def policy_child(argv: list[str]) -> int:
    """In a fresh process: the median ms of ``load_policy_text`` for ``argv[0]`` people."""
    text = policy_text(int(argv[0]))
    print(json.dumps(_median_ms(lambda: load_policy_text(text, source="p.yaml", fmt="yaml"))))
    return 0


def _child(args: list[str], tree: Path | None) -> str:
    path = f"{tree}{os.pathsep}{ROOT}" if tree else str(ROOT)
    out = subprocess.run(
        [sys.executable, "-m", "bench.process_costs", *args],
        check=True, capture_output=True, text=True, cwd=tree or ROOT,
        env={**os.environ, "PYTHONPATH": path},
    )  # fmt: skip
    return out.stdout.strip().splitlines()[-1]


def baseline_tree(
    ref: str, into: Path, paths: tuple[str, ...] = ("scheduler", "connectors")
) -> Path:
    """``scheduler/`` and ``connectors/`` (or ``paths``) as of git ``ref`` (``git archive``:
    read-only)."""
    archive = subprocess.run(
        ["git", "archive", "--format=tar", ref, *paths],
        check=True, capture_output=True, cwd=ROOT,
    )  # fmt: skip
    with tarfile.open(fileobj=io.BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    return into


def baseline_rows(tree: Path) -> list[Row]:
    """``load_policy_text`` of the baseline tree against this one, each in a fresh process."""
    rows: list[Row] = []
    for count in (20, 200):
        old, new = math.inf, math.inf
        for _ in range(3):  # in turns, the best of three
            old = min(old, float(_child(["--policy-child", str(count)], tree)))
            new = min(new, float(_child(["--policy-child", str(count)], None)))
        rows.append((f"load_policy_text, {count} people: baseline vs now", "ms", old, new))
    return rows


def _print(rows: list[Row]) -> None:
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':{width}}  {'unit':>4}  {'old':>9}  {'new':>9}  {'old/new':>8}")
    for what, unit, old, new in rows:
        ratio = f"{old / new:7.1f}x" if new > 0 else "       -"
        print(f"{what:{width}}  {unit:>4}  {old:9.3f}  {new:9.3f}  {ratio}")


def main(argv: list[str] | None = None) -> int:
    args_list = sys.argv[1:] if argv is None else argv
    if args_list[:1] == ["--rss-child"]:
        return rss_child(args_list[1:])
    if args_list[:1] == ["--policy-child"]:
        return policy_child(args_list[1:])
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--owners", type=int, default=1000, help="owners in the RSS run")
    parser.add_argument("--skip-rss", action="store_true", help="leave out the RSS run")
    parser.add_argument(
        "--baseline",
        metavar="GIT_REF",
        help="also measure scheduler/ and connectors/ as of this git ref (e.g. HEAD) in fresh "
        "processes: load_policy_text and the RSS run, old code against this checkout",
    )
    args = parser.parse_args(args_list)
    print(
        f"process costs on {os.cpu_count()} cores, Python {sys.version.split()[0]}, "
        f"PyYAML {yaml.__version__} (libyaml: {getattr(yaml, '__with_libyaml__', False)}), "
        f"{datetime.now(UTC):%Y-%m-%d}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        tree = baseline_tree(args.baseline, Path(tmp)) if args.baseline else None
        rows = policy_rows() + cycling_rows() + key_rows() + ics_rows()
        if tree is not None:
            rows += baseline_rows(tree)
        if not args.skip_rss:
            rows += rss_rows(args.owners, tree)
    _print(rows)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
