"""Cold-start cost of the CLI (issue 13): ``goodwill plan`` / ``validate`` / ``--help``, before and
after, in fresh interpreters.

*Before* is the code at git HEAD, unpacked read-only (``git archive HEAD | tar -x``) into a
temporary directory; *after* is the working tree. Both run with this venv's interpreter and
``PYTHONPATH`` pointing at their tree (it wins over the editable install's finder), from an
empty working directory and no ``GOODWILL_*`` variable (no database: a dry run creates none;
``plan+env`` is the same dry run with ``GOODWILL_DATA_DIR`` on an empty directory, which makes
the CLI build its settings), on the same input files (HEAD's ``examples/``, which the working
tree still accepts; the working tree's own with ``--after-only``). Runs alternate before/after so
a load spike on the shared machine hits both alike.

Bytecode: by default each tree gets its own ``PYTHONPYCACHEPREFIX`` and one warm-up run, so
the figures are those of an installed goodwill (pip compiles the ``.pyc`` files at install);
``--no-bytecode`` sets ``PYTHONDONTWRITEBYTECODE`` and compiles every module on every run.

Prints one table (median wall and CPU ms of ``--runs`` runs, the ratio before/after, the load
average at the start and the end), or one JSON object with ``--json``. ``make bench-cold`` (not
part of ``make test``). The machine is shared: compare the two columns of one run, not runs.
``--after DIR`` measures another tree than the working tree as *after* (e.g. HEAD with only
some files changed, while others edit the working tree).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
NOW = "2026-12-01T09:00:00Z"


@dataclass(frozen=True)
class Case:
    name: str
    args: tuple[str, ...]
    #: Added to the tree's environment for this command.
    env: tuple[tuple[str, str], ...] = ()


def cases(examples: Path, data_dir: Path) -> list[Case]:
    policy = str(examples / "policies" / "alex.yaml")
    plan = ("plan", "--policy", policy, "--calendars", str(examples / "calendars"), "--now", NOW)
    return [
        Case("plan", plan),
        Case("plan+env", plan, (("GOODWILL_DATA_DIR", str(data_dir)),)),
        Case("validate", ("validate", policy)),
        Case("--help", ("--help",)),
    ]


def unpack_head(into: Path) -> Path:
    """The tree at git HEAD under ``into`` (read-only git: ``git archive``)."""
    blob = subprocess.run(
        ["git", "archive", "--format=tar", "HEAD"], cwd=REPO, capture_output=True, check=True
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(blob)) as tar:
        tar.extractall(into, filter="data")
    return into


@dataclass
class Tree:
    label: str
    root: Path
    env: dict[str, str]


def make_env(root: Path, scratch: Path, label: str, *, bytecode: bool) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GOODWILL_")}
    env.pop("PYTHONPYCACHEPREFIX", None)
    env["PYTHONPATH"] = str(root)
    if bytecode:
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(scratch / f"pyc-{label}")
    else:
        env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


@dataclass
class Sample:
    wall_ms: float
    cpu_ms: float
    code: int
    out: bytes


def run_once(tree: Tree, case: Case, cwd: Path) -> Sample:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "scheduler", *case.args],
        cwd=cwd,
        env={**tree.env, **dict(case.env)},
        capture_output=True,
        check=False,
    )
    wall = (time.perf_counter() - start) * 1000
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime) * 1000
    return Sample(wall, cpu, proc.returncode, proc.stdout)


def measure(
    trees: list[Tree], runs: int, examples: Path, cwd: Path, data_dir: Path
) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for case in cases(examples, data_dir):
        samples: dict[str, list[Sample]] = {t.label: [] for t in trees}
        for tree in trees:  # warm-up: fills the bytecode cache, pages the venv in
            run_once(tree, case, cwd)
        for _ in range(runs):
            for tree in trees:
                samples[tree.label].append(run_once(tree, case, cwd))
        row: dict[str, object] = {"command": case.name}
        for tree in trees:
            got = samples[tree.label]
            row[tree.label] = {
                "wall_ms": round(statistics.median(s.wall_ms for s in got), 1),
                "cpu_ms": round(statistics.median(s.cpu_ms for s in got), 1),
                "exit": sorted({s.code for s in got}),
            }
        if len(trees) == 2:
            a, b = (samples[t.label][-1] for t in trees)
            row["same_output"] = a.code == b.code and a.out == b.out
            first, second = (row[t.label] for t in trees)
            assert isinstance(first, dict)
            assert isinstance(second, dict)
            row["ratio"] = round(first["wall_ms"] / second["wall_ms"], 2)
        rows.append(row)
    return rows


def print_table(rows: list[dict[str, object]], labels: list[str], runs: int) -> None:
    head = f"{'command':<10}"
    for label in labels:
        head += f" | {label + ' wall ms':>16} | {label + ' CPU ms':>15} | exit"
    if len(labels) == 2:
        head += " | ratio (wall) | same output"
    print(f"goodwill cold start, median of {runs} runs ({sys.executable})")
    print(head)
    print("-" * len(head))
    for row in rows:
        line = f"{row['command']!s:<10}"
        for label in labels:
            cell = row[label]
            assert isinstance(cell, dict)
            codes = ",".join(str(c) for c in cell["exit"])
            line += f" | {cell['wall_ms']:>16.1f} | {cell['cpu_ms']:>15.1f} | {codes:>4}"
        if len(labels) == 2:
            line += f" | {row['ratio']!s:>11}× | {'yes' if row['same_output'] else 'NO':>11}"
        print(line)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="runs per command and tree")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--after-only", action="store_true", help="skip the HEAD tree")
    parser.add_argument(
        "--no-bytecode", action="store_true", help="compile every module on every run"
    )
    parser.add_argument(
        "--after", type=Path, default=REPO, metavar="DIR", help="the tree measured as after"
    )
    args = parser.parse_args(argv)
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="goodwill-cold-") as tmp:
        scratch = Path(tmp)
        cwd = scratch / "cwd"
        cwd.mkdir()
        roots = [] if args.after_only else [("before", unpack_head(scratch / "head"))]
        roots.append(("after", args.after.resolve()))
        trees = [
            Tree(label, root, make_env(root, scratch, label, bytecode=not args.no_bytecode))
            for label, root in roots
        ]
        # The same input for both: HEAD's examples (the working tree still accepts them).
        examples = roots[0][1] / "examples"
        data_dir = scratch / "data"  # stays empty: a dry run writes nothing
        data_dir.mkdir()
        rows = measure(trees, args.runs, examples, cwd, data_dir)
    labels = [t.label for t in trees]
    load = {"start": list(load_start), "end": list(os.getloadavg())}
    if args.json:
        report = {"runs": args.runs, "bytecode": not args.no_bytecode, "load": load, "rows": rows}
        json.dump(report, sys.stdout)
        print()
    else:
        print_table(rows, labels, args.runs)
        start, end = ("/".join(f"{x:.2f}" for x in load[k]) for k in ("start", "end"))
        print(f"load average (1/5/15 min): {start} at the start, {end} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
