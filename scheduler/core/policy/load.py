"""Loading a policy from text: parse (YAML or TOML), validate, and report every issue at once.

Nothing here reads files; :mod:`scheduler.app.policies` reads them and hands the text over.
:func:`load_policy_text` raises :class:`~scheduler.core.errors.PolicyError` carrying *every*
problem found; :func:`validate_policy_text` returns them along with the line index.

The text is untrusted: :class:`~scheduler.core.policy.limits.PolicyLimits` bound its size (checked
first), nesting, values (YAML aliases counted as copies), texts and stakeholders before the
expensive steps run, and each broken limit is one ``FILE:LINE`` issue like any other.

**Two paths, one verdict.** A valid YAML policy loads by the fast path: the limits checked on
libyaml's event stream (:func:`~scheduler.core.policy.limits.scan_yaml_events`, which also
makes sure no mapping repeats a key), then ``yaml.CSafeLoader`` (``SafeLoader`` where PyYAML has
no libyaml) and plain validation. Anything the fast path does not accept outright (a broken
limit, a repeated or non-scalar key, a syntax error, a value or field pydantic refuses) is
loaded again by the explaining path: the line-positioned loader of :mod:`.safe_yaml` and
:mod:`.lines`, whose ``FILE:LINE`` issues are the messages. Both build the policy from the same
data, so a file valid for one is the same policy by the other; line positions of a valid file
are computed only when asked for (:class:`LoadResult` ``lines``).
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
    _toml_value_issue,
    _yaml_syntax_issue,
)
from scheduler.core.policy.limits import LimitHit, PolicyLimits, check_data, scan_yaml_events
from scheduler.core.policy.lines import (
    DocPath,
    LineIndex,
    PolicyFormat,
    _Lines,
    _TomlLines,
    _YamlLines,
    line_index,
)
from scheduler.core.policy.safe_yaml import BadValue, LimitExceeded, compose, construct
from scheduler.core.policy.schema import Policy

__all__ = [
    "MAX_ISSUES",
    "LoadResult",
    "load_policy_text",
    "policy_to_data",
    "validate_policy_text",
]

#: At most this many issues are listed per file (then one line says how many more there are).
MAX_ISSUES = 100
_FORMATTED = 10 * MAX_ISSUES
_DEFAULT_LIMITS = PolicyLimits()
#: The fast path's loader: libyaml's parser and composer when PyYAML has them.
_FAST_LOADER: type[Any] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


@dataclasses.dataclass
class LoadResult:
    """What validating one policy text gave: the policy (``None`` on any issue), the issues,
    and where each path is written (every path on line 1 when the text was never parsed)."""

    policy: Policy | None
    issues: list[PolicyIssue]
    lines: LineIndex = dataclasses.field(default_factory=_Lines)


class _LazyLines(_Lines):
    """The line index of a valid text, computed on the first look-up (most never need one)."""

    def __init__(self, text: str, fmt: PolicyFormat, limits: PolicyLimits) -> None:
        super().__init__()
        self._text: str | None = text
        self._fmt: PolicyFormat = fmt
        self._limits = limits
        self._index: LineIndex | None = None

    def line_of(self, path: DocPath) -> int:
        if self._index is None:
            assert self._text is not None
            self._index = line_index(self._text, self._fmt, self._limits)
            self._text = None
        return self._index.line_of(path)


def _fast_yaml(text: str, source: str, digest: str, limits: PolicyLimits) -> LoadResult | None:
    """The policy of a valid YAML text by the fast path; ``None``: explain it the slow way."""
    try:
        hit, plain_keys = scan_yaml_events(yaml.parse(text, Loader=_FAST_LOADER), limits)
        if hit is not None or not plain_keys:
            return None
        data = yaml.load(text, Loader=_FAST_LOADER)  # a safe loader
        if not isinstance(data, dict) or not data:
            return None
        people = data.get("stakeholders")
        if isinstance(people, list) and len(people) > limits.max_stakeholders:
            return None
        policy = Policy.model_validate(data, context={"limits": limits})
    except Exception:  # whatever it is, the explaining path reports it
        return None
    policy._source = source
    policy._content_hash = digest
    return LoadResult(policy, [], _LazyLines(text, "yaml", limits))


def _hit_issue(hit: LimitHit, lines: _Lines, source: str) -> PolicyIssue:
    line = hit.line if hit.line is not None else lines.line_of(hit.path)
    return PolicyIssue(source, line, _field_name(hit.path) if hit.field else "", hit.message)


def _parse_toml(
    text: str, source: str, limits: PolicyLimits
) -> tuple[Any, _Lines, list[PolicyIssue]]:
    # The line scanner runs first: it stops at the first path nested too deeply (and tells
    # where) before tomllib, which recurses once per level, ever sees it.
    lines = _TomlLines(text, limits.max_depth)
    if lines.too_deep is not None:
        return None, lines, [PolicyIssue(source, lines.too_deep, "", limits.too_deep())]
    try:
        data: Any = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return None, _Lines(), [_toml_syntax_issue(exc, source)]
    except RecursionError:  # nesting the scanner could not follow
        return None, lines, [PolicyIssue(source, 1, "", limits.too_deep())]
    except ValueError as exc:  # a value Python refuses, e.g. an integer of 5,000 digits
        return None, lines, [_toml_value_issue(exc, text, source)]
    hit = check_data(data, limits)
    if hit is not None:
        return None, lines, [_hit_issue(hit, lines, source)]
    return data, lines, []


def _parse_yaml(
    text: str, source: str, limits: PolicyLimits
) -> tuple[Any, _Lines, list[PolicyIssue]]:
    try:
        root, loader = compose(text, limits)
    except LimitExceeded as exc:
        return None, _Lines(), [_hit_issue(exc.hit, _Lines(), source)]
    except yaml.YAMLError as exc:
        return None, _Lines(), [_yaml_syntax_issue(exc, text, source)]
    lines = _YamlLines(root)  # before constructing: merge keys are flattened in place
    try:
        data = construct(root, loader)
    except BadValue as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark is not None else 1
        return None, lines, [PolicyIssue(source, line, "", str(exc.problem))]
    except yaml.YAMLError as exc:
        return None, lines, [_yaml_syntax_issue(exc, text, source)]
    duplicates = [
        PolicyIssue(source, lines.line_of(p), _field_name(p), m) for p, m in lines.duplicates
    ]
    return data, lines, duplicates


def _parse(
    text: str, source: str, fmt: PolicyFormat, limits: PolicyLimits
) -> tuple[Any, _Lines, list[PolicyIssue]]:
    """Parse to plain data plus line numbers; syntax errors become issues, never tracebacks."""
    if fmt == "toml":
        return _parse_toml(text, source, limits)
    return _parse_yaml(text, source, limits)


def _capped(issues: list[PolicyIssue], source: str, unread: int = 0) -> list[PolicyIssue]:
    """At most :data:`MAX_ISSUES`, then one line counting the rest (``unread``: not formatted)."""
    if len(issues) <= MAX_ISSUES and not unread:
        return issues
    rest = len(issues) - MAX_ISSUES + unread
    more = f"… and {rest} more problem(s) not listed; fix the ones above and validate again"
    line = issues[MAX_ISSUES].line if len(issues) > MAX_ISSUES else issues[-1].line
    return [*issues[:MAX_ISSUES], PolicyIssue(source, line, "", more)]


def _size_issue(text: str, source: str, limits: PolicyLimits) -> PolicyIssue | None:
    """A text too big (checked before any parsing), or not encodable as UTF-8."""
    if len(text) > limits.max_bytes:  # characters: at least one byte each
        return PolicyIssue(source, 1, "", limits.too_big(len(text)))
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:
        line = text.count("\n", 0, exc.start) + 1
        return PolicyIssue(source, line, "", "the text is not valid Unicode; save it as UTF-8")
    return PolicyIssue(source, 1, "", limits.too_big(size)) if size > limits.max_bytes else None


def _printable(text: str) -> str:
    """``text`` with line breaks and other unprintable characters escaped: one issue, one line."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


def validate_policy_text(
    text: str,
    source: str,
    fmt: PolicyFormat,
    digest: str,
    limits: PolicyLimits | None = None,
    *,
    fast: bool = True,
) -> LoadResult:
    """Validate policy text without raising; ``digest`` becomes the policy's ``content_hash``.

    ``fast=False`` skips the fast path (the module docstring): for tests and benchmarks that
    compare the two; the verdict and the policy are the same.

    ``limits`` (default: the documented :class:`PolicyLimits`) bound what is accepted. Each
    issue is one printable line: keys and values echoed from the file are escaped.
    """
    loaded = _validate(text, source, fmt, digest, limits or _DEFAULT_LIMITS, fast)
    loaded.issues = [
        dataclasses.replace(i, field=_printable(i.field), message=_printable(i.message))
        for i in loaded.issues
    ]
    return loaded


def _validate(
    text: str, source: str, fmt: PolicyFormat, digest: str, limits: PolicyLimits, fast: bool
) -> LoadResult:
    too_big = _size_issue(text, source, limits)
    if too_big is not None:
        return LoadResult(None, [too_big], _Lines())
    empty = "the file is empty (no settings); expected a policy starting with owner: {...}"
    if not text.strip():
        return LoadResult(None, [PolicyIssue(source, 1, "", empty)], _Lines())
    if fast and fmt == "yaml":
        quick = _fast_yaml(text, source, digest, limits)
        if quick is not None:
            return quick
    data, lines, issues = _parse(text, source, fmt, limits)
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
    people = data.get("stakeholders")
    if isinstance(people, list) and len(people) > limits.max_stakeholders:
        message = limits.too_many_stakeholders(len(people))
        where = lines.line_of(("stakeholders",))
        return LoadResult(None, [PolicyIssue(source, where, "stakeholders", message)], lines)
    try:
        policy = Policy.model_validate(data, context={"limits": limits})
    except ValidationError as exc:
        # Formatting an error costs far more than finding it: past ten times what is listed,
        # the rest of a huge list of errors is only counted.
        issues += _issues(exc, lines, source, most=_FORMATTED)
        unread = max(exc.error_count() - _FORMATTED, 0)
        ordered = sorted(issues, key=lambda i: i.line)
        return LoadResult(None, _capped(ordered, source, unread), lines)
    if issues:
        return LoadResult(None, _capped(issues, source), lines)
    policy._source = source
    policy._content_hash = digest
    return LoadResult(policy, [], lines)


def load_policy_text(
    text: str, *, source: str, fmt: PolicyFormat, limits: PolicyLimits | None = None
) -> Policy:
    """Validate policy text; ``source`` names it in issues. ``content_hash`` hashes the UTF-8.

    Raises:
        PolicyError: listing every problem found, each with source, line, field and a fix.
    """
    limits = limits or _DEFAULT_LIMITS
    # Hashed only when it may load at all; invalid text is reported below, not raised here.
    raw = text.encode("utf-8", "surrogatepass") if len(text) <= limits.max_bytes else b""
    loaded = validate_policy_text(text, source, fmt, hashlib.sha256(raw).hexdigest(), limits)
    if loaded.policy is None:
        raise PolicyError(loaded.issues)
    return loaded.policy


def policy_to_data(policy: Policy) -> dict[str, Any]:
    """The policy as plain file-shaped data (durations as ``30m``…), ready for YAML or JSON."""
    return policy.model_dump(mode="json", exclude_none=True)
