"""One error tree: every exception goodwill defines is a SchedulerError, documented in one place."""

from __future__ import annotations

import importlib
import inspect
import re
from pathlib import Path
from types import ModuleType

import pytest

import scheduler.core.errors as errors
from scheduler.core.errors import SchedulerError

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("scheduler", "connectors", "workers")

#: Exceptions allowed outside the tree: private control flow that never leaves its module
#: (or its package) and is turned into a tree error before anyone else sees it.
#: Each entry is ``"module.QualName"`` with a comment saying why.
ALLOWED_OUTSIDE_TREE: frozenset[str] = frozenset(
    {
        # unwinds the TOML line scanner at the depth limit; line_index turns it into an issue
        "scheduler.core.policy.lines._TooDeep",
        # raised inside the YAML composer/constructor (which only lets yaml's own errors and
        # these through) and turned into a FILE:LINE PolicyIssue by policy.load
        "scheduler.core.policy.safe_yaml.LimitExceeded",
        # must be a yaml ConstructorError for PyYAML's constructor to raise it; policy.load
        # turns it into a FILE:LINE PolicyIssue
        "scheduler.core.policy.safe_yaml.BadValue",
        # passes --now's range check through argparse to main(), which prints it and exits 2
        "scheduler.entrypoints.cli._NowOutOfRange",
    }
)


def _module_names() -> list[str]:
    names = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            name = ".".join(parts)
            if name == "scheduler.__main__" or name.startswith("scheduler.store.migrations"):
                continue  # runs the CLI on import / alembic scripts, not importable modules
            names.append(name)
    return names


def _defined_exceptions(module: ModuleType) -> list[type[BaseException]]:
    """Exception classes defined in ``module``, nested classes included."""
    found: list[type[BaseException]] = []
    pending: list[type] = [
        obj
        for obj in vars(module).values()
        if inspect.isclass(obj) and obj.__module__ == module.__name__
    ]
    while pending:
        cls = pending.pop()
        if issubclass(cls, BaseException):
            found.append(cls)
        pending.extend(
            obj
            for obj in vars(cls).values()
            if inspect.isclass(obj) and obj.__module__ == module.__name__ and obj is not cls
        )
    return found


def _all_defined_exceptions() -> dict[str, type[BaseException]]:
    out: dict[str, type[BaseException]] = {}
    for name in _module_names():
        module = importlib.import_module(name)
        for cls in _defined_exceptions(module):
            out[f"{cls.__module__}.{cls.__qualname__}"] = cls
    return out


def test_the_walk_finds_the_modules_and_their_exceptions() -> None:
    names = _module_names()
    assert {"scheduler.core.errors", "connectors.caldav", "workers.actors"} <= set(names)
    found = _all_defined_exceptions()
    assert "scheduler.core.errors.RateLimited" in found
    assert len(found) > 10


def test_every_exception_is_in_the_tree() -> None:
    outside = sorted(
        name
        for name, cls in _all_defined_exceptions().items()
        if not issubclass(cls, SchedulerError) and name not in ALLOWED_OUTSIDE_TREE
    )
    assert outside == []


def test_every_tree_class_is_defined_in_errors_and_documented() -> None:
    doc = errors.__doc__ or ""
    for name in errors.__all__:
        cls = getattr(errors, name)
        if inspect.isclass(cls) and issubclass(cls, BaseException):
            assert cls.__module__ == "scheduler.core.errors", name
            # a line of the tree drawing that starts with the class name
            drawn = re.search(rf"(?m)^[ │├└─]*{name}\b", doc)
            assert drawn is not None, f"{name} is not in the tree docstring"


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("scheduler.core.states", "IllegalTransition"),
        ("scheduler.core.durations", "SpecError"),
        ("scheduler.store.crypto", "CredentialDecryptError"),
        ("scheduler.store", "CredentialDecryptError"),
        ("scheduler.entrypoints.ops", "CheckFailed"),
    ],
)
def test_old_import_locations_give_the_tree_class(module: str, name: str) -> None:
    imported = importlib.import_module(module)
    assert name in imported.__all__
    assert getattr(imported, name) is getattr(errors, name)


def test_spec_error_is_still_a_value_error() -> None:
    # pydantic validators turn ValueError into a validation error: the policy loader relies on it.
    assert issubclass(errors.SpecError, ValueError)
    assert issubclass(errors.SpecError, SchedulerError)
    caught = errors.SpecError([(("mon",), "bad"), ((), "worse")])
    assert caught.problems == ((("mon",), "bad"), ((), "worse"))
    assert str(caught) == "bad; worse"


def test_illegal_transition_keeps_its_message_and_states() -> None:
    from scheduler.core.states import MeetingState, transition

    with pytest.raises(errors.IllegalTransition) as caught:
        transition(MeetingState.COMPLETED, MeetingState.APPROVED)
    assert (caught.value.current, caught.value.target) == (
        MeetingState.COMPLETED,
        MeetingState.APPROVED,
    )
    assert "none: it is terminal" in str(caught.value)
