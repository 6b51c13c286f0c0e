"""Loading a policy from text: parse (YAML or TOML), validate, and report every issue at once.

Nothing here reads files; :mod:`scheduler.app.policies` reads them and hands the text over.
:func:`load_policy_text` raises :class:`~scheduler.core.errors.PolicyError` carrying *every*
problem found; :func:`validate_policy_text` returns them along with the line index.
"""

from __future__ import annotations

import dataclasses
import hashlib
import tomllib
from typing import Any

import yaml
from pydantic import ValidationError

from scheduler.core.errors import PolicyError, PolicyIssue
from scheduler.core.policy.issues import (
    _field_name,
    _issues,
    _toml_syntax_issue,
    _yaml_syntax_issue,
)
from scheduler.core.policy.lines import LineIndex, PolicyFormat, _Lines, _TomlLines, _YamlLines
from scheduler.core.policy.schema import Policy

__all__ = ["LoadResult", "load_policy_text", "policy_to_data", "validate_policy_text"]


@dataclasses.dataclass
class LoadResult:
    """What validating one policy text gave: the policy (``None`` on any issue), the issues,
    and where each path is written (every path on line 1 when the text was never parsed)."""

    policy: Policy | None
    issues: list[PolicyIssue]
    lines: LineIndex = dataclasses.field(default_factory=_Lines)


def _parse(text: str, source: str, fmt: PolicyFormat) -> tuple[Any, _Lines, list[PolicyIssue]]:
    """Parse to plain data plus line numbers; syntax errors become issues, never tracebacks."""
    if fmt == "toml":
        try:
            data: Any = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            return None, _Lines(), [_toml_syntax_issue(exc, source)]
        return data, _TomlLines(text), []
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        return None, _Lines(), [_yaml_syntax_issue(exc, text, source)]
    lines = _YamlLines(root)
    duplicates = [
        PolicyIssue(source, lines.line_of(p), _field_name(p), m) for p, m in lines.duplicates
    ]
    return data, lines, duplicates


def validate_policy_text(text: str, source: str, fmt: PolicyFormat, digest: str) -> LoadResult:
    """Validate policy text without raising; ``digest`` becomes the policy's ``content_hash``."""
    empty = "the file is empty (no settings); expected a policy starting with owner: {...}"
    if not text.strip():
        return LoadResult(None, [PolicyIssue(source, 1, "", empty)], _Lines())
    data, lines, issues = _parse(text, source, fmt)
    if issues and data is None:
        return LoadResult(None, issues, lines)
    if data is None or data == {}:  # only comments: YAML gives None, TOML an empty table
        return LoadResult(None, [PolicyIssue(source, 1, "", empty)], lines)
    if not isinstance(data, dict):
        message = (
            f"expected a mapping of sections (owner, tiers, stakeholders, …) at the top level, "
            f"got {type(data).__name__}"
        )
        return LoadResult(None, [PolicyIssue(source, lines.line_of(()), "", message)], lines)
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        issues += _issues(exc, lines, source)
        return LoadResult(None, sorted(issues, key=lambda i: i.line), lines)
    if issues:
        return LoadResult(None, issues, lines)
    policy._source = source
    policy._content_hash = digest
    return LoadResult(policy, [], lines)


def load_policy_text(text: str, *, source: str, fmt: PolicyFormat) -> Policy:
    """Validate policy text; ``source`` names it in issues. ``content_hash`` hashes the UTF-8.

    Raises:
        PolicyError: listing every problem found, each with source, line, field and a fix.
    """
    loaded = validate_policy_text(
        text, source, fmt, hashlib.sha256(text.encode("utf-8")).hexdigest()
    )
    if loaded.policy is None:
        raise PolicyError(loaded.issues)
    return loaded.policy


def policy_to_data(policy: Policy) -> dict[str, Any]:
    """The policy as plain file-shaped data (durations as ``30m``…), ready for YAML or JSON."""
    return policy.model_dump(mode="json", exclude_none=True)
