"""Problems as the user sees them: :class:`~scheduler.core.errors.PolicyIssue` (file, line,
field path such as ``stakeholders[2].tier``, and a message that says how to fix it).

Pydantic's :class:`~pydantic.ValidationError` entries are walked back to document paths and
reworded ("did you mean 'timezone'?"); YAML and TOML syntax errors become issues on the line to
fix, never tracebacks.
"""

from __future__ import annotations

import re
import reprlib
import tomllib
import types
import typing
from collections.abc import Mapping
from typing import Annotated, Any

import yaml
from pydantic import BaseModel, ValidationError

from scheduler.core.durations import SpecError
from scheduler.core.errors import PolicyIssue
from scheduler.core.policy.fields import _unknown_field
from scheduler.core.policy.lines import DocPath, LineIndex
from scheduler.core.policy.schema import Policy


def _unwrap(annotation: Any) -> Any:
    """Strip ``Annotated`` and ``X | None`` down to the type pydantic walks into."""
    while True:
        origin = typing.get_origin(annotation)
        if origin is Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (typing.Union, types.UnionType):
            rest = [a for a in typing.get_args(annotation) if a is not type(None)]
            if len(rest) != 1:
                return annotation
            annotation = rest[0]
        else:
            return annotation


def _doc_path(loc: tuple[int | str, ...]) -> tuple[DocPath, type[BaseModel] | None]:
    """Turn a pydantic ``loc`` into a document path; also the model holding its last key.

    Pydantic adds type tags to locs (``str``, ``function-plain[...]``); they are not keys in
    the document, so walking the declared types drops them.
    """
    path: list[str | int] = []
    current: Any = Policy
    holder: type[BaseModel] | None = None
    for part in loc:
        current = _unwrap(current)
        origin = typing.get_origin(current)
        if part == "[key]":  # pydantic's marker for "the key itself", e.g. a non-text key
            continue
        if isinstance(current, type) and issubclass(current, BaseModel):
            holder = current
            path.append(part)
            field = current.model_fields.get(part) if isinstance(part, str) else None
            current = field.annotation if field is not None else None
        elif origin in (list, tuple) and isinstance(part, int):
            path.append(part)
            current = typing.get_args(current)[0]
        elif origin is dict:
            path.append(part)
            current = typing.get_args(current)[1]
        else:
            current = None
    return tuple(path), holder


def _field_name(path: DocPath) -> str:
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text


_SHORT = reprlib.Repr()
_SHORT.maxstring, _SHORT.maxother, _SHORT.maxlong, _SHORT.maxlevel = 80, 80, 40, 3


def _message(error: Mapping[str, Any], holder: type[BaseModel] | None) -> str:
    kind: str = error["type"]
    ctx: Mapping[str, Any] = error.get("ctx") or {}
    got = error.get("input")
    key = error["loc"][-1] if error["loc"] else ""
    shown = _SHORT.repr(got)  # bounded: the input may be a huge (aliased) structure
    if kind == "extra_forbidden":
        known = holder.model_fields if holder is not None else ()
        return _unknown_field(str(key), known)
    if kind == "missing":
        return f"missing required field '{key}'; add it"
    if kind == "literal_error":
        return f"expected one of {ctx.get('expected')}, got {shown}"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return f"expected a mapping of fields (key: value), got {shown}"
    if kind in ("list_type", "tuple_type", "set_type", "frozen_set_type"):
        return f"expected a list, got {shown}"
    if kind.startswith("string_"):
        return f"expected text, got {shown}"
    if kind.startswith("int_"):
        return f"expected a whole number, got {shown}"
    if kind.startswith("float_"):
        return f"expected a number, got {shown}"
    if kind == "finite_number":
        return f"expected a finite number, got {shown}"
    if kind.startswith("bool_"):
        return f"expected true or false, got {shown}"
    if kind.startswith("date_"):
        return f"expected an ISO date like 2027-01-15, got {shown}"
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        bound = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<"}.get(kind, "<=")
        limit = next(iter(ctx.values()), "?")
        return f"expected a number {bound} {limit}, got {shown}"
    if kind == "value_error" and "error" in ctx:
        return str(ctx["error"])
    return f"{error['msg']} (got {shown})"


def _issues(
    exc: ValidationError, lines: LineIndex, source: str, most: int | None = None
) -> list[PolicyIssue]:
    """The issues of ``exc``, from at most ``most`` of its errors (the rest are only counted)."""
    issues: list[PolicyIssue] = []
    errors = exc.errors(include_url=False)
    for error in errors if most is None else errors[:most]:
        path, holder = _doc_path(error["loc"])
        cause = (error.get("ctx") or {}).get("error")
        found = cause.problems if isinstance(cause, SpecError) else (((), _message(error, holder)),)
        for sub, message in found:
            full = path + sub
            issues.append(PolicyIssue(source, lines.line_of(full), _field_name(full), message))
    return issues


_TOML_LINE = re.compile(r"at line (\d+)")


def _toml_syntax_issue(exc: tomllib.TOMLDecodeError, source: str) -> PolicyIssue:
    """A TOML syntax error, on the line :mod:`tomllib` names (line 1 when it names none)."""
    match = _TOML_LINE.search(str(exc))
    line = int(match.group(1)) if match else 1
    return PolicyIssue(source, line, "", f"malformed TOML: {exc}")


_YAML_BREAKS = re.compile("\r\n|[\r\n\x85\u2028\u2029]")
_LONG_NUMBER = re.compile(r"\d{1000,}")


def _toml_value_issue(exc: ValueError, text: str, source: str) -> PolicyIssue:
    """A value tomllib parsed but Python refused (an integer of thousands of digits)."""
    match = _LONG_NUMBER.search(text)
    line = text.count("\n", 0, match.start()) + 1 if match else 1
    reason = str(exc).split(":", 1)[0]
    return PolicyIssue(source, line, "", f"a value cannot be read ({reason}); fix the value")


def _yaml_syntax_issue(exc: yaml.YAMLError, text: str, source: str) -> PolicyIssue:
    """A YAML syntax error, on the line to fix."""
    line, reason = 1, " ".join(str(exc).split())  # one line, whatever the error says
    if isinstance(exc, yaml.reader.ReaderError):
        line = len(_YAML_BREAKS.split(text[: exc.position])) if exc.position else 1
        code = f"#x{exc.character:04x}" if isinstance(exc.character, int) else "a character"
        message = (
            f"the file contains {code}, a character YAML does not allow (a control "
            f"character); remove it"
        )
        return PolicyIssue(source, line, "", message)
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        # An unclosed bracket is only noticed at the end of the file; the line where the
        # unfinished construct starts is the one to fix.
        if exc.context_mark is not None and (
            mark is None or mark.line + 1 > len(text.splitlines())
        ):
            mark = exc.context_mark
        line = mark.line + 1 if mark is not None else 1
        reason = " ".join(p for p in (exc.context, exc.problem) if p)
    message = f"malformed YAML: {reason}; check indentation, colons and quotes on this line"
    return PolicyIssue(source, line, "", message)
