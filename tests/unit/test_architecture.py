"""Dependencies point inward, checked statically: see ``tests/architecture_rules.py``.

The checker parses every module (it imports nothing), so it also sees imports inside functions,
under ``if TYPE_CHECKING:`` and in ``try/except ImportError``. Two cheap runtime checks back it up:
every module imports, and importing the application layer loads no database, crypto, metrics or
broker library.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path

import pytest

from tests.architecture_rules import (
    Violation,
    check_architecture,
    discover_modules,
    format_violations,
    scan,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


def make_tree(root: Path, files: Mapping[str, str]) -> Path:
    """Write ``files`` (path -> source) under ``root``, adding the ``__init__.py`` files needed."""
    for relative, source in files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(source), encoding="utf-8")
        for parent in path.relative_to(root).parents:
            if parent != Path("."):
                (root / parent / "__init__.py").touch()
    return root


def messages(violations: list[Violation]) -> list[str]:
    return [str(violation) for violation in violations]


# --- the real tree ------------------------------------------------------------------------------


def test_the_project_follows_the_layer_rules_and_has_no_import_cycle() -> None:
    violations = check_architecture(REPO_ROOT)
    assert violations == [], "architecture violations:\n" + format_violations(violations)


def test_the_checker_sees_the_whole_project() -> None:
    modules = discover_modules(REPO_ROOT)
    # Guards against a checker that silently scans nothing (wrong root, renamed packages).
    assert "scheduler.core.model" in modules
    assert "connectors.registry" in modules
    assert "workers.tick" in modules
    assert any(edge.importer.startswith("connectors.") for edge in scan(REPO_ROOT).edges)


#: The size rules of the core and application layers (docs/architecture.md): a module a reader
#: can hold in their head, a function that fits on a screen.
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 500, 80


def oversized(root: Path) -> list[str]:
    """Modules of ``scheduler/core`` and ``scheduler/app`` over the size rules, as FILE:LINE."""
    import ast

    found: list[str] = []
    for package in ("scheduler/core", "scheduler/app"):
        for path in sorted((root / package).rglob("*.py")):
            text = path.read_text(encoding="utf-8")
            name = path.relative_to(root)
            if (lines := text.count("\n")) > MAX_MODULE_LINES:
                found.append(f"{name}: {lines} lines (at most {MAX_MODULE_LINES}): split it")
            for node in ast.walk(ast.parse(text)):
                if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                    length = (node.end_lineno or node.lineno) - node.lineno + 1
                    if length > MAX_FUNCTION_LINES:
                        found.append(
                            f"{name}:{node.lineno}: {node.name} is {length} lines "
                            f"(at most {MAX_FUNCTION_LINES}): give its steps names"
                        )
    return found


def test_core_and_app_modules_and_functions_stay_small() -> None:
    assert oversized(REPO_ROOT) == []


def test_the_size_check_names_an_oversized_module_and_function(tmp_path: Path) -> None:
    body = "".join(f"    x{i} = {i}\n" for i in range(MAX_FUNCTION_LINES))
    module = tmp_path / "scheduler" / "core" / "big.py"
    module.parent.mkdir(parents=True)
    module.write_text("def long():\n" + body + "\n" * MAX_MODULE_LINES, encoding="utf-8")
    (tmp_path / "scheduler" / "app").mkdir()
    assert oversized(tmp_path) == [
        f"scheduler/core/big.py: {MAX_MODULE_LINES + MAX_FUNCTION_LINES + 1} lines (at most "
        f"{MAX_MODULE_LINES}): split it",
        f"scheduler/core/big.py:1: long is {MAX_FUNCTION_LINES + 1} lines (at most "
        f"{MAX_FUNCTION_LINES}): give its steps names",
    ]


# --- each rule fires on a synthetic tree --------------------------------------------------------


def test_a_clean_tree_has_no_violation(tmp_path: Path) -> None:
    root = make_tree(
        tmp_path,
        {
            "scheduler/__init__.py": "",
            "scheduler/core/model.py": "import datetime\nfrom pydantic import BaseModel\n",
            "scheduler/core/policy/__init__.py": "from ..model import BaseModel\nimport yaml\n",
            "scheduler/settings.py": "from pydantic_settings import BaseSettings\n",
            "scheduler/app/booking.py": (
                "from typing import TYPE_CHECKING\n"
                "from scheduler.core import model\n"
                "from scheduler.settings import BaseSettings\n"
                "if TYPE_CHECKING:\n"
                "    from scheduler.core.policy import BaseModel\n"
            ),
            "scheduler/store/repository.py": (
                "import sqlalchemy\nfrom scheduler.app.booking import model\n"
            ),
            "scheduler/entrypoints/cli.py": (
                "import connectors.ics\nimport workers.tick\nimport scheduler.store.repository\n"
            ),
            "scheduler/__main__.py": "from scheduler.entrypoints.cli import connectors\n",
            "connectors/ics.py": "import icalendar\nfrom scheduler.core.model import BaseModel\n",
            "workers/tick.py": "import dramatiq\nfrom scheduler.app import booking\n",
        },
    )
    assert messages(check_architecture(root)) == []


def test_core_importing_a_database_library_at_module_level(tmp_path: Path) -> None:
    root = make_tree(
        tmp_path,
        {"scheduler/core/model.py": '"""Doc."""\n\nimport datetime\nimport sqlalchemy.orm\n'},
    )
    assert messages(check_architecture(root)) == [
        "scheduler/core/model.py:4: scheduler.core may import only the stdlib and pydantic, "
        "pydantic_core, annotated_types, typing_extensions and yaml from outside the project, "
        "not sqlalchemy.orm (scheduler.core may not import sqlalchemy: the database lives in "
        "scheduler.store)"
    ]


def test_core_importing_prometheus_inside_a_function(tmp_path: Path) -> None:
    root = make_tree(
        tmp_path,
        {
            "scheduler/core/clock.py": """\
                def tick() -> None:
                    from prometheus_client import Counter

                    Counter("ticks", "ticks").inc()
                """
        },
    )
    (violation,) = check_architecture(root)
    assert (violation.path, violation.line) == ("scheduler/core/clock.py", 2)
    assert "scheduler.core may not import prometheus_client" in violation.message


def test_core_importing_settings_is_named_explicitly(tmp_path: Path) -> None:
    root = make_tree(tmp_path, {"scheduler/core/clock.py": "from scheduler import settings\n"})
    make_tree(tmp_path, {"scheduler/settings.py": ""})
    (violation,) = check_architecture(root)
    assert str(violation) == (
        "scheduler/core/clock.py:1: scheduler.core may import only scheduler.core from "
        "scheduler/, not scheduler.settings (scheduler.core may not import scheduler.settings: "
        "configuration is read at the edge and passed in)"
    )


def test_app_importing_the_store_under_type_checking(tmp_path: Path) -> None:
    root = make_tree(
        tmp_path,
        {
            "scheduler/store/__init__.py": "",
            "scheduler/app/booking.py": """\
                from typing import TYPE_CHECKING

                if TYPE_CHECKING:
                    from scheduler.store import Store
                """,
        },
    )
    (violation,) = check_architecture(root)
    assert (violation.path, violation.line) == ("scheduler/app/booking.py", 4)
    assert violation.message.startswith(
        "scheduler.app may import only scheduler.core, scheduler.app and scheduler.settings from "
        "scheduler/, not scheduler.store"
    )
    assert "TYPE_CHECKING" in violation.message


def test_app_importing_the_store_through_a_relative_import(tmp_path: Path) -> None:
    root = make_tree(
        tmp_path,
        {
            "scheduler/store/repository.py": "",
            "scheduler/app/m.py": "from ..store import repository\nfrom .. import store\n",
        },
    )
    assert messages(check_architecture(root)) == [
        "scheduler/app/m.py:1: scheduler.app may import only scheduler.core, scheduler.app and "
        "scheduler.settings from scheduler/, not scheduler.store.repository (scheduler.app may "
        "not import scheduler.store: storage is reached through the ports in "
        "scheduler.core.ports)",
        "scheduler/app/m.py:2: scheduler.app may import only scheduler.core, scheduler.app and "
        "scheduler.settings from scheduler/, not scheduler.store (scheduler.app may not import "
        "scheduler.store: storage is reached through the ports in scheduler.core.ports)",
    ]


def test_app_importing_a_third_party_package_in_a_try_block(tmp_path: Path) -> None:
    root = make_tree(
        tmp_path,
        {
            "scheduler/app/crypto.py": """\
                try:
                    from cryptography.fernet import Fernet
                except ImportError:
                    Fernet = None
                """
        },
    )
    (violation,) = check_architecture(root)
    assert violation.line == 2
    assert "scheduler.app may not import cryptography" in violation.message


def test_connectors_importing_the_application_layer(tmp_path: Path) -> None:
    root = make_tree(
        tmp_path,
        {
            "scheduler/app/booking.py": "",
            "connectors/registry.py": '"""Doc."""\n\nfrom scheduler.app.booking import Backend\n',
        },
    )
    (violation,) = check_architecture(root)
    assert str(violation).startswith(
        "connectors/registry.py:3: connectors may import only scheduler.core and "
        "scheduler.settings from scheduler/, not scheduler.app.booking"
    )


def test_workers_importing_connectors(tmp_path: Path) -> None:
    root = make_tree(
        tmp_path,
        {
            "connectors/registry.py": "",
            "workers/tick.py": "import logging\n\n\ndef run() -> None:\n    import connectors\n",
        },
    )
    (violation,) = check_architecture(root)
    assert str(violation).startswith(
        "workers/tick.py:5: workers may import only scheduler.core, scheduler.app, "
        "scheduler.settings and workers from the project, not connectors"
    )


def test_store_importing_entrypoints_dynamically(tmp_path: Path) -> None:
    root = make_tree(
        tmp_path,
        {
            "scheduler/entrypoints/metrics.py": "",
            "scheduler/store/engine.py": (
                "import importlib\nm = importlib.import_module('scheduler.entrypoints.metrics')\n"
            ),
        },
    )
    (violation,) = check_architecture(root)
    assert (violation.path, violation.line) == ("scheduler/store/engine.py", 2)
    assert "not scheduler.entrypoints.metrics" in violation.message


def test_settings_importing_a_connector(tmp_path: Path) -> None:
    root = make_tree(tmp_path, {"scheduler/settings.py": "import httpx\n"})
    (violation,) = check_architecture(root)
    assert str(violation) == (
        "scheduler/settings.py:1: scheduler.settings may import only the stdlib and pydantic, "
        "pydantic_core, annotated_types, typing_extensions, yaml and pydantic_settings from "
        "outside the project, not httpx"
    )


def test_a_module_outside_the_layers(tmp_path: Path) -> None:
    root = make_tree(tmp_path, {"scheduler/utils.py": "import sqlalchemy\n"})
    assert messages(check_architecture(root)) == [
        "scheduler/utils.py:1: scheduler.utils is a module outside the layers: move it into "
        "scheduler.core, scheduler.app, scheduler.store, scheduler.settings or "
        "scheduler.entrypoints"
    ]


def test_a_cycle_between_two_core_modules_through_a_function_level_import(
    tmp_path: Path,
) -> None:
    root = make_tree(
        tmp_path,
        {
            "scheduler/core/a.py": "from scheduler.core.b import B\n\nA = 1\n",
            "scheduler/core/b.py": """\
                B = 2


                def late() -> int:
                    from scheduler.core import a

                    return a.A
                """,
        },
    )
    assert messages(check_architecture(root)) == [
        "scheduler/core/a.py:1: import cycle: scheduler.core.a -> scheduler.core.b -> "
        "scheduler.core.a (scheduler/core/a.py:1 imports scheduler.core.b; "
        "scheduler/core/b.py:5 imports scheduler.core.a)"
    ]


def test_a_cycle_of_three_crosses_packages(tmp_path: Path) -> None:
    root = make_tree(
        tmp_path,
        {
            "scheduler/entrypoints/cli.py": "import scheduler.entrypoints.commands\n",
            "scheduler/entrypoints/commands.py": "from . import demo\n",
            "scheduler/entrypoints/demo.py": "from .cli import main\n",
        },
    )
    (violation,) = check_architecture(root)
    assert violation.message.startswith(
        "import cycle: scheduler.entrypoints.cli -> scheduler.entrypoints.commands -> "
        "scheduler.entrypoints.demo -> scheduler.entrypoints.cli ("
    )
    assert "scheduler/entrypoints/demo.py:1 imports scheduler.entrypoints.cli" in violation.message


def test_type_checking_only_edges_make_no_cycle(tmp_path: Path) -> None:
    root = make_tree(
        tmp_path,
        {
            "scheduler/core/a.py": "from scheduler.core.b import B\n",
            "scheduler/core/b.py": """\
                import typing

                if typing.TYPE_CHECKING:
                    from scheduler.core.a import A
                else:
                    A = object
                B = 1
                """,
        },
    )
    assert messages(check_architecture(root)) == []


def test_the_else_branch_of_type_checking_runs(tmp_path: Path) -> None:
    root = make_tree(
        tmp_path,
        {
            "scheduler/core/a.py": """\
                from typing import TYPE_CHECKING

                if TYPE_CHECKING:
                    pass
                else:
                    import redis
                """
        },
    )
    (violation,) = check_architecture(root)
    assert violation.line == 6
    assert "TYPE_CHECKING" not in violation.message


def test_a_relative_import_above_the_top_level_package(tmp_path: Path) -> None:
    root = make_tree(tmp_path, {"connectors/x.py": "from .. import scheduler\n"})
    (violation,) = check_architecture(root)
    assert str(violation).startswith("connectors/x.py:1: relative import 'from .. import ...'")


# --- runtime smoke checks -----------------------------------------------------------------------


def _importable_modules() -> list[str]:
    return sorted(
        name
        for name in discover_modules(REPO_ROOT)
        if not name.endswith("__main__") and not name.startswith("scheduler.store.migrations")
    )


@pytest.mark.parametrize("module", _importable_modules())
def test_every_module_imports(module: str) -> None:
    importlib.import_module(module)


HEAVY = ["sqlalchemy", "alembic", "cryptography", "prometheus_client", "dramatiq"]


def test_the_application_layer_loads_no_heavy_dependency() -> None:
    # Given a fresh interpreter, when only the application layer is imported …
    code = (
        "import sys\n"
        "import scheduler.app.booking\n"
        "loaded = {name.partition('.')[0] for name in sys.modules}\n"
        "print(','.join(sorted(loaded & set(sys.argv[1:]))))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, *HEAVY],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO_ROOT,
    )
    assert out.returncode == 0, f"import scheduler.app.booking failed:\n{out.stderr}"
    # … then no database, crypto, metrics or broker library was loaded.
    assert out.stdout.strip() == "", f"import scheduler.app.booking loaded: {out.stdout.strip()}"


#: What `goodwill plan`/`validate`/`--help` must not load from a cold start (issue 13): the store,
#: the provider SDKs, the broker, metrics and the web stack load only in the commands that use them.
CLI_HEAVY = [
    *HEAVY,
    "googleapiclient",
    "google.auth",
    "msal",
    "caldav",
    "requests",
    "httpx",
    "starlette",
    "uvicorn",
    "jinja2",
    "authlib",
]

_RUN_CLI = """\
import contextlib, io, json, sys
heavy = json.loads(sys.argv[1])
from scheduler.entrypoints.cli import main
shown = io.StringIO()
with contextlib.redirect_stdout(shown):
    try:
        code = main(sys.argv[2:], out=shown)
    except SystemExit as exc:  # --help
        code = exc.code
loaded = sorted(
    name for name in sys.modules if any(name == h or name.startswith(h + ".") for h in heavy)
)
print(json.dumps({"code": code, "loaded": loaded, "out": shown.getvalue()}))
"""


_EXAMPLES = REPO_ROOT / "examples"
_PLAN = [
    "plan",
    "--policy",
    str(_EXAMPLES / "policies" / "alex.yaml"),
    "--calendars",
    str(_EXAMPLES / "calendars"),
    "--now",
    "2026-12-01T09:00:00Z",
]
_VALIDATE = ["validate", str(_EXAMPLES / "policies" / "alex.yaml")]
#: A dry run needs neither the store-facing use cases (the planning round, booking, answers,
#: registration) nor, with no GOODWILL_* variable set, the settings (pydantic-settings).
_USE_CASES = [
    "scheduler.app.planning",
    "scheduler.app.booking",
    "scheduler.app.decisions",
    "scheduler.app.registration",
    "scheduler.app.groups",
    "scheduler.app.pipeline",
]
_SETTINGS = ["pydantic_settings", "scheduler.settings"]
#: --help builds the parser only: not even pydantic or the policy schema.
_HELP_HEAVY = [*CLI_HEAVY, "pydantic", "yaml", "icalendar", "scheduler.core.policy"]


@pytest.mark.parametrize(
    ("args", "heavy", "shows", "bare"),
    [
        (_PLAN, [*CLI_HEAVY, *_USE_CASES, *_SETTINGS], "Dry run: nothing was written", True),
        (_PLAN, [*CLI_HEAVY, *_USE_CASES], "Dry run: nothing was written", False),
        (_VALIDATE, [*CLI_HEAVY, *_USE_CASES, *_SETTINGS], "1 file(s) valid", True),
        (_VALIDATE, CLI_HEAVY, "1 file(s) valid", False),
        (["--help"], _HELP_HEAVY, "usage: goodwill", True),
    ],
    ids=["plan", "plan-with-settings", "validate", "validate-with-settings", "help"],
)
def test_the_cli_loads_only_what_the_command_needs(
    args: list[str], heavy: list[str], shows: str, bare: bool, tmp_path: Path
) -> None:
    # Given a fresh interpreter and no database yet (a dry run creates none), either no
    # GOODWILL_* variable at all (bare) or a data directory named by one …
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith("GOODWILL_")}
    if not bare:
        env["GOODWILL_DATA_DIR"] = str(tmp_path / "data")
    # … when the command runs in it …
    proc = subprocess.run(
        [sys.executable, "-c", _RUN_CLI, json.dumps(heavy), *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=tmp_path,
        env={**env, "PYTHONPATH": str(REPO_ROOT)},
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.splitlines()[-1])
    assert result["code"] == 0, (result["out"], proc.stderr)
    assert shows in result["out"]
    # … then it loaded none of the store, the SDKs, the broker, metrics or the web stack (nor,
    # for a dry run, the use cases it does not run; nor, with no variable, the settings).
    assert result["loaded"] == [], f"goodwill {args[0]} loaded {result['loaded']}"
