"""Fuzzing the policy loader: any text, YAML or TOML, gives a policy or ``FILE:LINE`` issues.

Never a traceback, never a hang, whatever the input: random text, mutated real policies (the
examples and the test fixtures), junk data written as YAML (with shared values, so PyYAML emits
anchors and aliases, nested into alias bombs) and as TOML, under the default limits and under
tiny ones (so every limit is reached often). The parsers behind the fields (durations, hours,
zones) get the same treatment. The examples per test come from the Hypothesis profile: a few
seconds each in ``make test``; ``make fuzz`` (``GOODWILL_FUZZ=long``) runs thousands.
"""

from __future__ import annotations

import io
import json
import re
import tempfile
import time
from datetime import date, datetime
from pathlib import Path
from typing import Any

import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from scheduler.core.durations import (
    SpecError,
    parse_date_range,
    parse_duration,
    parse_time_ranges,
    parse_weekdays,
    parse_weekly_hours,
)
from scheduler.core.errors import PolicyError
from scheduler.core.policy import LoadResult, line_index, load_policy_text, validate_policy_text
from scheduler.core.policy.limits import PolicyLimits
from scheduler.core.policy.zones import REGION_AREAS, check_zone
from scheduler.entrypoints.cli import main

ROOT = Path(__file__).resolve().parents[2]
SEEDS = sorted(
    [*(ROOT / "examples" / "policies").iterdir(), *(ROOT / "tests/unit/data/policies").rglob("*")]
)
SEED_TEXTS = [
    (p.read_text(encoding="utf-8"), "toml" if p.suffix == ".toml" else "yaml")
    for p in SEEDS
    if p.suffix in (".yaml", ".yml", ".toml")
]
TINY = PolicyLimits(max_bytes=4000, max_depth=6, max_values=400, max_stakeholders=3, max_string=60)
LIMITS = st.sampled_from([PolicyLimits(), TINY])
#: Generous: the loader refuses hostile input in milliseconds; this only catches a hang.
SECONDS = 10

# Fragments that have broken loaders: structure, YAML and TOML syntax, huge or odd values.
TOKENS = [
    "[", "]", "{", "}", ":", ": ", ",", "-", "- ", " ", "  ", "\n", "\n  ", "\t", "\r\n", "#",
    "'", '"', '"""', "'''", "\\", "\\u0000", "=", " = ", ".", "[[", "]]", "&a ", "*a", "&b ",
    "*b", "<<: *a", "<<: [*a, *b]", "? ", "|\n", ">-\n", "!!binary ", "!!python/object:os.system ",
    "!!set ", "!!omap ", "!!timestamp ", "!!int ", "!!float ", "---\n", "...\n", "%YAML 1.1\n",
    "~", "null", "true", "no", "0x", "0o7", "1_000", ".inf", "-.nan", "1e999",
    "99999999999999999999", "99999999999999999999w", "-2w", "0m", "1h30m", "8w", "2026-02-30",
    "2026-12-24..2027-01-03", "09:00-17:00", "25:00-26:00", "mon-fri", "fri-mon", "EST", "CET",
    "US/Eastern", "GMT+1", "Etc/GMT-5", "Europe/London", "a@corp.example", "{owner.first_name}",
    "{", "owner", "tiers", "stakeholders", "every", "timezone", "working_hours", "availability",
    "horizon", "min_notice", "buffer", "duration", "busy", "etiquette", "decline_backoff",
    "\x00", "\x85", "\u2028", "\ufeff", "é", "😀",
]  # fmt: skip
BIG = ["[" * 3000, "{a: " * 3000, "a = [" * 3000, "a." * 3000, "x" * 11_000, "9" * 5000]


def _lines(text: str, fmt: str) -> int:
    """How many lines ``text`` has for its format: YAML also breaks lines at CR, NEL, LS, PS."""
    return len(_YAML_BREAKS.split(text)) if fmt == "yaml" else text.count("\n") + 1


_YAML_BREAKS = re.compile("\r\n|[\r\n\x85\u2028\u2029]")


def _check(result: LoadResult, text: str, fmt: str) -> None:
    """A policy and no issues, or issues that each point at a line of the text and say why."""
    if result.policy is not None:
        assert result.issues == []
        return
    assert result.issues
    last = _lines(text, fmt)
    for issue in result.issues:
        assert issue.file.startswith("fuzz.")
        assert 1 <= issue.line <= last, (issue, last)
        assert issue.message.strip()
        assert not _YAML_BREAKS.search(issue.message), issue  # one issue, one line
        assert "could not be read" not in issue.message  # the app's last resort, never needed
        assert "Traceback" not in issue.message
    assert len(result.issues) <= 101  # MAX_ISSUES plus the "… and N more" line


def _load(text: str, fmt: str, limits: PolicyLimits) -> LoadResult:
    started = time.monotonic()
    result = validate_policy_text(text, f"fuzz.{fmt}", fmt, "digest", limits)  # type: ignore[arg-type]
    assert time.monotonic() - started < SECONDS
    _check(result, text, fmt)
    raised: list[PolicyError] = []
    try:
        load_policy_text(text, source=f"fuzz.{fmt}", fmt=fmt, limits=limits)  # type: ignore[arg-type]
    except PolicyError as exc:
        raised.append(exc)
    assert [e.issues for e in raised] == ([] if result.policy is not None else [result.issues])
    return result


@st.composite
def _mutated(draw: st.DrawFn) -> tuple[str, str]:
    """A real policy with a few random edits: insert, delete, replace or repeat a slice."""
    text, fmt = draw(st.sampled_from(SEED_TEXTS))
    for _ in range(draw(st.integers(1, 6))):
        at = draw(st.integers(0, len(text)))
        op = draw(st.sampled_from(["insert", "insert", "delete", "replace", "repeat", "big"]))
        if op == "insert":
            text = text[:at] + draw(st.sampled_from(TOKENS)) + text[at:]
        elif op == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 40)) :]
        elif op == "replace":
            text = text[:at] + draw(st.sampled_from(TOKENS)) + text[at + 1 :]
        elif op == "repeat":
            end = min(len(text), at + draw(st.integers(1, 200)))
            text = text[:end] + text[at:end] * draw(st.integers(1, 50)) + text[end:]
        else:
            text = text[:at] + draw(st.sampled_from(BIG)) + text[at:]
    return text, fmt


@given(_mutated(), LIMITS)
def test_mutated_policies_give_a_policy_or_issues(
    doc: tuple[str, str], limits: PolicyLimits
) -> None:
    _load(doc[0], doc[1], limits)


@given(st.text(max_size=300), st.sampled_from(["yaml", "toml"]), LIMITS)
@example("owner: \ud800", "yaml", PolicyLimits())
@example("\x00", "toml", PolicyLimits())
def test_any_text_gives_issues(text: str, fmt: str, limits: PolicyLimits) -> None:
    _load(text, fmt, limits)


_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(10**30), 10**30),
    st.floats(),
    st.dates(),
    st.datetimes(),
    st.text(max_size=8),
    st.text(alphabet="x", min_size=55, max_size=70),  # over the tiny string limit
    st.sampled_from([t.strip() for t in TOKENS if t.strip()]),
)
_KEYS = st.one_of(st.sampled_from([t.strip() for t in TOKENS if t.strip()]), st.text(max_size=6))
_JUNK = st.recursive(
    _LEAVES,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_KEYS, inner, max_size=4)),
    max_leaves=25,
)
_SECTIONS = ["owner", "tiers", "stakeholders", "availability", "meeting", "etiquette", "calendar"]
_BASE: dict[str, Any] = {
    "owner": {"email": "a@corp.example", "name": "A", "timezone": "UTC"},
    "tiers": {"peer": {"every": "2w"}},
    "stakeholders": [{"email": "b@corp.example", "name": "B", "tier": "peer"}],
}


@st.composite
def _shared(draw: st.DrawFn, copies: int = 12**10) -> Any:
    """Junk whose parts are the same object many times over: YAML writes anchors and aliases.

    ``levels`` deep with ``fanout`` copies per level is fanout**levels values once expanded
    (at most ``copies``: TOML has no aliases, so its text holds every copy).
    """
    value: Any = draw(_JUNK)
    total = 1
    for _ in range(draw(st.integers(1, 10))):
        fanout = draw(st.integers(1, 12))
        if total * fanout > copies:
            break
        total *= fanout
        value = [value] * fanout if draw(st.booleans()) else {f"k{i}": value for i in range(fanout)}
    return value


@given(st.one_of(_JUNK, _shared()), st.sampled_from([*_SECTIONS, None]), LIMITS)
def test_any_yaml_data_with_aliases_gives_issues(
    junk: Any, section: str | None, limits: PolicyLimits
) -> None:
    document = junk if section is None else {**_BASE, section: junk}
    try:
        text = yaml.safe_dump(document, allow_unicode=True)
    except (yaml.YAMLError, ValueError):  # the dumper refuses some junk: nothing to load
        return
    _load(text, "yaml", limits)


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return {"inf": "inf", "-inf": "-inf", "nan": "nan"}.get(str(value), repr(value))
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        pairs = (f"{json.dumps(str(k))} = {_toml_value(v)}" for k, v in value.items())
        return "{" + ", ".join(pairs) + "}"
    return json.dumps("" if value is None else str(value))


@given(st.one_of(_JUNK, _shared(copies=5_000)), st.sampled_from([*_SECTIONS, None]), LIMITS)
def test_any_toml_data_gives_issues(junk: Any, section: str | None, limits: PolicyLimits) -> None:
    document = junk if section is None else {**_BASE, section: junk}
    if isinstance(document, dict):
        text = "".join(f"{json.dumps(str(k))} = {_toml_value(v)}\n" for k, v in document.items())
    else:
        text = f"x = {_toml_value(document)}\n"
    _load(text, "toml", limits)


@given(st.one_of(_mutated(), st.tuples(st.text(max_size=200), st.sampled_from(["yaml", "toml"]))))
def test_line_index_answers_for_any_text(doc: tuple[str, str]) -> None:
    text, fmt = doc
    index = line_index(text, fmt)  # type: ignore[arg-type]
    for path in [(), ("owner",), ("stakeholders", 0, "tier"), ("a",) * 30]:
        assert 1 <= index.line_of(path) <= _lines(text, fmt)


_NOTATION = st.text(alphabet="0123456789wdhm:-–,. \t\nmonfritueSAT", max_size=60)


@given(st.one_of(_NOTATION, _LEAVES, _JUNK))
def test_field_parsers_return_a_value_or_a_spec_error(value: Any) -> None:
    for parse in (parse_duration, parse_time_ranges, parse_weekdays, parse_date_range):
        _value_or_spec_error(parse, value)
    _value_or_spec_error(
        parse_weekly_hours, value if isinstance(value, dict) else {str(value): value}
    )


def _value_or_spec_error(parse: Any, value: Any) -> str:
    """What ``parse`` says about ``value``: ``""`` when it parsed, else the SpecError text."""
    problems: tuple[tuple[Any, str], ...] = ()
    try:
        parse(value)
    except SpecError as exc:
        problems = exc.problems or (((), ""),)
    assert all(message for _, message in problems)
    return "; ".join(message for _, message in problems)


@given(st.one_of(st.text(max_size=40), st.sampled_from(TOKENS)))
@example("America/New_York")
@example("posix/Europe/London")
@example("../../etc/passwd")
@example("Europe/" + "x" * 5000)
def test_zones_are_a_region_name_or_a_spec_error_with_a_hint(name: str) -> None:
    message = _value_or_spec_error(check_zone, name)
    if message:
        assert "; " in message  # what is wrong; what to write instead
    else:
        assert name.strip().split("/", 1)[0] in {*REGION_AREAS, "UTC", "Etc"}


@given(_mutated())
def test_goodwill_validate_never_prints_a_traceback(doc: tuple[str, str]) -> None:
    text, fmt = doc
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"fuzz.{fmt}"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        out = io.StringIO()
        code = main(["validate", str(path)], out=out, err=out)
    assert code in (0, 2)
    printed = out.getvalue()
    assert "Traceback" not in printed
    lines = printed.splitlines()
    assert lines[-1] in ("1 file(s) valid",) or lines[-1].startswith("1 of 1 file(s) invalid")
    assert all(line.startswith(f"{path}:") for line in lines[:-1])
