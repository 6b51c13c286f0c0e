"""Policy files: loading, every rejection rule with its line and field, defaults, accessors."""

from __future__ import annotations

import hashlib
import re
import time as time_module
import tomllib
from datetime import date, time, timedelta
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from scheduler.app import policies as app_policies
from scheduler.app.policies import (
    PolicyBook,
    PolicyLimits,
    load_policy,
    policy_limits,
    validate_policy_files,
)
from scheduler.core.errors import PolicyError, PolicyIssue
from scheduler.core.model import BusyRule, BusyRules, DateRange, Person, TimeRange, WeeklyHours
from scheduler.core.policy import (
    Owner,
    Policy,
    Stakeholder,
    Tier,
    line_index,
    load_policy_text,
    policy_to_data,
)
from scheduler.settings import Settings

DATA = Path(__file__).parent / "data" / "policies"
EXAMPLES = Path(__file__).parents[2] / "examples" / "policies"
BAD = sorted((DATA / "bad").iterdir())
GOOD = sorted((DATA / "good").iterdir())

# A bad fixture states what it must produce, one line per issue:
#   # expect: <line> <field or -> | <fragment of the message>
_EXPECT = re.compile(r"^# expect: (\d+) (\S+) \| (.+)$")


def _expectations(path: Path) -> list[tuple[int, str, str]]:
    found = []
    for text in path.read_text(encoding="utf-8").splitlines():
        match = _EXPECT.match(text)
        if match:
            field = "" if match.group(2) == "-" else match.group(2)
            found.append((int(match.group(1)), field, match.group(3)))
    return found


def _issues(text: str, fmt: str) -> list[PolicyIssue]:
    with pytest.raises(PolicyError) as info:
        load_policy_text(text, source="inline", fmt=fmt)  # type: ignore[arg-type]
    return info.value.issues


# -- every rejection rule, YAML and TOML -----------------------------------------------------


def test_every_bad_fixture_states_its_expectations() -> None:
    assert len(BAD) >= 30
    assert {p.suffix for p in BAD} == {".yaml", ".toml"}
    for path in BAD:
        assert _expectations(path), f"{path.name} has no '# expect:' line"


@pytest.mark.parametrize("path", BAD, ids=[p.name for p in BAD])
def test_bad_policy_reports_line_field_and_message(path: Path) -> None:
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    issues = info.value.issues
    expected = _expectations(path)
    for line, field, fragment in expected:
        matching = [
            i for i in issues if i.line == line and i.field == field and fragment in i.message
        ]
        assert matching, f"no issue at line {line} {field!r} saying {fragment!r}; got {issues}"
    assert len(issues) == len(expected), issues
    assert all(i.file == str(path) for i in issues)


def test_many_mistakes_are_reported_in_one_pass() -> None:
    issues = validate_policy_files([DATA / "bad" / "many_errors.yaml"])
    assert [i.line for i in issues] == [8, 11, 13, 14, 19, 20]


def test_policy_error_prints_file_line_field_and_fix() -> None:
    path = DATA / "bad" / "undefined_tier.yaml"
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    assert str(info.value) == (
        f"{path}:10: stakeholders[1].tier: unknown tier 'peers'; defined tiers: mentor, peer "
        f"(did you mean 'peer'?)"
    )


@pytest.mark.parametrize("fmt", ["yaml", "toml"])
@pytest.mark.parametrize("text", ["", "  \n\n"])
def test_empty_text_is_an_issue_at_line_one(fmt: str, text: str) -> None:
    [issue] = _issues(text, fmt)
    assert (issue.line, issue.field) == (1, "")
    assert "the file is empty" in issue.message


@pytest.mark.parametrize(
    ("fmt", "text", "line"),
    [
        (
            "yaml",
            "owner: {email: a@corp.example, name: A, timezone: UTC}\n"
            "availability:\n"
            "  windows:\n"
            "    - 10:00-11:00\n"
            "    - 25:00-26:00\n",
            5,
        ),
        (
            "toml",
            'owner = { email = "a@corp.example", name = "A", timezone = "UTC" }\n'
            "[availability]\n"
            "windows = [\n"
            '  "10:00-11:00",  # morning\n'
            '  "25:00-26:00",\n'
            "]\n",
            5,
        ),
    ],
)
def test_list_items_point_at_their_own_line(fmt: str, text: str, line: int) -> None:
    [issue] = _issues(text, fmt)
    assert (issue.line, issue.field) == (line, "availability.windows[1]")
    assert "expected a time range like 09:00-17:30, got '25:00-26:00'" in issue.message


def test_toml_inline_table_keys_point_at_their_line() -> None:
    text = (
        "# comment\n"
        'owner = { email = "a@corp.example", name = "A", timezone = "UTC" }\n'
        'meeting = { kind = "brunch" }\n'
    )
    [issue] = _issues(text, "toml")
    assert (issue.line, issue.field) == (3, "meeting.kind")
    assert issue.message == "expected one of 'coffee' or 'lunch', got 'brunch'"


def test_a_bare_number_is_minutes_only_for_the_meeting_duration() -> None:
    text = "owner: {email: a@corp.example, name: A, timezone: UTC}\ntiers: {peer: {every: 3}}\n"
    [issue] = _issues(text, "yaml")
    assert (issue.line, issue.field) == (2, "tiers.peer.every")
    assert "got the bare number 3; add a unit" in issue.message
    policy = load_policy_text(
        "owner: {email: a@corp.example, name: A, timezone: UTC}\nmeeting: {duration: 25}\n",
        source="inline",
        fmt="yaml",
    )
    assert policy.meeting.duration == timedelta(minutes=25)


def test_horizon_must_exceed_min_notice() -> None:
    text = (
        "owner: {email: a@corp.example, name: A, timezone: UTC}\n"
        "availability:\n"
        "  min_notice: 2w\n"
        "  horizon: 14d\n"
    )
    [issue] = _issues(text, "yaml")
    assert (issue.line, issue.field) == (4, "availability.horizon")
    assert "horizon (2w) must be longer than min_notice (2w)" in issue.message


def test_section_of_the_wrong_shape_says_a_mapping_is_expected() -> None:
    [issue] = _issues("owner: alex@corp.example\n", "yaml")
    assert (issue.line, issue.field) == (1, "owner")
    assert issue.message.startswith("expected a mapping of fields")


def test_unknown_key_inside_a_tier_is_named_with_a_suggestion() -> None:
    text = "owner: {email: a@corp.example, name: A, timezone: UTC}\ntiers:\n  peer:\n    evry: 8w\n"
    issues = _issues(text, "yaml")
    assert [(i.line, i.field, i.message) for i in issues] == [
        (3, "tiers.peer.every", "missing required field 'every'; add it"),
        (4, "tiers.peer.evry", "unknown field 'evry'; did you mean 'every'?"),
    ]


def test_policy_can_be_built_in_code() -> None:
    policy = Policy.model_validate(
        {
            "owner": Owner(email="Ann@Corp.Example", name="Ann Lee", timezone="UTC"),
            "tiers": {"peer": Tier(every=timedelta(weeks=2), mode="auto")},
            "stakeholders": [Stakeholder(email="bo@corp.example", name="Bo", tier="peer")],
        }
    )
    assert policy.owner.email == "ann@corp.example"
    assert policy.allowed_domains == ["corp.example"]
    assert (policy.source, policy.content_hash) == ("<memory>", "")
    assert policy.mode_of(policy.stakeholders[0]) == "auto"


# -- files: validate_policy_files never raises -------------------------------------------------


def test_missing_file_is_an_issue_not_a_traceback(tmp_path: Path) -> None:
    missing = tmp_path / "nobody.yaml"
    [issue] = validate_policy_files([missing])
    assert (issue.file, issue.line, issue.field) == (str(missing), 1, "")
    assert "cannot read the file" in issue.message
    with pytest.raises(PolicyError):
        load_policy(missing)


def test_unsupported_suffix_and_non_utf8_are_issues(tmp_path: Path) -> None:
    (tmp_path / "alex.json").write_text("{}", encoding="utf-8")
    (tmp_path / "latin.yaml").write_bytes(b"owner:\n  name: Ren\xe9\n")
    issues = validate_policy_files([tmp_path / "alex.json", tmp_path / "latin.yaml"])
    assert [(Path(i.file).name, i.line) for i in issues] == [("alex.json", 1), ("latin.yaml", 2)]
    assert "name the file *.yaml, *.yml or *.toml" in issues[0].message
    assert "save it as UTF-8" in issues[1].message


def test_a_directory_is_expanded_and_one_owner_has_one_file(tmp_path: Path) -> None:
    owner = "owner: {email: alex@corp.example, name: Alex Doe, timezone: Europe/London}\n"
    (tmp_path / "a.yaml").write_text(owner, encoding="utf-8")
    (tmp_path / "b.yml").write_text("# second copy\n" + owner, encoding="utf-8")
    (tmp_path / "notes.txt").write_text("not a policy", encoding="utf-8")
    [issue] = validate_policy_files([tmp_path])
    assert (Path(issue.file).name, issue.line, issue.field) == ("b.yml", 2, "owner.email")
    assert "already has a policy in" in issue.message


def test_validate_policy_files_accepts_good_files() -> None:
    assert validate_policy_files([EXAMPLES]) == []  # three owners, no clash
    for path in GOOD:
        assert validate_policy_files([path]) == [], path


# -- good files, defaults, round trip ----------------------------------------------------------


def test_minimal_policy_gets_the_documented_defaults() -> None:
    policy = load_policy(DATA / "good" / "minimal.yaml")
    assert policy.owner.person == Person("alex@corp.example", "Alex Doe", "Europe/London")
    assert policy.owner.first_name == "Alex"
    assert policy.calendar.provider == "ics"
    assert policy.allowed_domains == ["corp.example"]  # the owner's own domain
    meeting = policy.meeting
    assert (meeting.kind, meeting.duration, meeting.video) == (
        "coffee",
        timedelta(minutes=30),
        "none",
    )
    assert meeting.title == "Coffee: {owner.first_name} / {stakeholder.first_name}"
    a = policy.availability
    nine_to_five = (TimeRange(time(9), time(17)),)
    assert a.working_hours == WeeklyHours({d: nine_to_five for d in range(5)})
    assert a.windows == ()
    assert a.lunch_window == TimeRange(time(11, 30), time(14))
    assert (a.min_notice, a.horizon, a.buffer) == (
        timedelta(days=1),
        timedelta(days=14),
        timedelta(minutes=10),
    )
    assert (a.max_per_day, a.max_per_week) == (1, 3)
    assert a.no_meeting_days == frozenset()
    assert a.blackout == ()
    assert a.busy == BusyRules()
    e = policy.etiquette
    assert (e.decline_backoff, e.max_unanswered, e.max_per_stakeholder_per_week) == (0.5, 3, 1)
    assert policy.tiers == {}
    assert policy.stakeholders == []


def test_minimal_yaml_and_toml_are_the_same_policy() -> None:
    yaml_policy = load_policy(DATA / "good" / "minimal.yaml")
    toml_policy = load_policy(DATA / "good" / "minimal.toml")
    assert yaml_policy.model_dump() == toml_policy.model_dump()


def test_full_yaml_and_toml_are_the_same_policy() -> None:
    from_yaml = load_policy(DATA / "good" / "full.yaml")
    from_toml = load_policy(DATA / "good" / "full.toml")
    assert from_yaml.model_dump() == from_toml.model_dump()
    a = from_yaml.availability
    assert a.working_hours.on(3) == (TimeRange(time(8), time(12)), TimeRange(time(13), time(18)))
    assert a.windows == (TimeRange(time(11, 30), time(13, 30)),)
    assert a.no_meeting_days == frozenset({2})
    assert a.blackout == (
        DateRange(date(2026, 12, 25), date(2026, 12, 25)),
        DateRange(date(2027, 4, 1), date(2027, 4, 5)),
    )
    assert (a.min_notice, a.buffer) == (timedelta(0), timedelta(0))
    assert a.busy.tentative is BusyRule.FREE
    assert a.busy.all_day is BusyRule.BUSY
    assert from_yaml.owner.email == "omar@corp.example"  # e-mails are lower-cased
    assert from_yaml.tiers["outer"].every == timedelta(days=9)
    assert from_yaml.stakeholders[1].power == ("network",)


ROUND_TRIP = [*GOOD, *sorted(EXAMPLES.iterdir())]


@pytest.mark.parametrize("path", ROUND_TRIP, ids=[p.name for p in ROUND_TRIP])
def test_policy_round_trips_through_plain_data(path: Path) -> None:
    original = load_policy(path)
    text = yaml.safe_dump(policy_to_data(original), sort_keys=False, allow_unicode=True)
    again = load_policy_text(text, source="dumped.yaml", fmt="yaml")
    assert again.model_dump() == original.model_dump()
    assert list(again.tiers) == list(original.tiers)


def test_source_and_content_hash_identify_the_file() -> None:
    path = DATA / "good" / "full.toml"
    policy = load_policy(path)
    assert policy.source == str(path)
    assert policy.content_hash == hashlib.sha256(path.read_bytes()).hexdigest()
    text = path.read_text(encoding="utf-8")
    same = load_policy_text(text, source="x", fmt="toml")
    changed = load_policy_text(text.replace("1.5", "1.25"), source="x", fmt="toml")
    assert same.content_hash == policy.content_hash
    assert changed.content_hash != policy.content_hash


def test_policy_is_immutable() -> None:
    policy = load_policy(DATA / "good" / "minimal.yaml")
    with pytest.raises(ValueError, match="frozen"):
        policy.owner = policy.owner  # type: ignore[misc]


def test_json_schema_can_be_generated_for_editors() -> None:
    schema = Policy.model_json_schema()
    assert "owner" in schema["required"]
    assert schema["additionalProperties"] is False


# -- what the planner asks ---------------------------------------------------------------------

_ACCESSORS = """
owner: {email: alex@corp.example, name: Alex Doe, timezone: Europe/London}
availability: {working_hours: {mon-thu: "09:00-17:30"}}
stakeholder_defaults: {timezone: Europe/Paris}
tiers:
  mentor: {every: 4w}
  peer: {every: 8w, mode: auto}
stakeholders:
  - {email: sam@corp.example, name: Sam Lee, tier: peer, timezone: America/New_York,
     working_hours: {mon-fri: "08:00-16:00"}}
  - {email: lena@corp.example, name: Lena Novak, tier: peer, senior: true}
  - {email: kim@corp.example, name: Kim Ito, tier: peer, senior: true, mode: auto}
  - {email: jon@corp.example, name: Jon Berg, tier: mentor}
"""


@pytest.fixture
def policy() -> Policy:
    return load_policy_text(_ACCESSORS, source="accessors.yaml", fmt="yaml")


def _by_name(policy: Policy, first: str) -> Stakeholder:
    return next(s for s in policy.stakeholders if s.name.startswith(first))


def test_mode_of_explicit_then_senior_then_tier(policy: Policy) -> None:
    assert policy.mode_of(_by_name(policy, "Sam")) == "auto"  # the tier's mode
    assert policy.mode_of(_by_name(policy, "Lena")) == "propose"  # senior, tier is auto
    assert policy.mode_of(_by_name(policy, "Kim")) == "auto"  # explicit beats senior
    assert policy.mode_of(_by_name(policy, "Jon")) == "propose"  # tier default


def test_person_of_takes_the_zone_from_entry_then_defaults_then_owner(policy: Policy) -> None:
    assert policy.person_of(_by_name(policy, "Sam")) == Person(
        "sam@corp.example", "Sam Lee", "America/New_York"
    )
    assert policy.person_of(_by_name(policy, "Lena")).timezone == "Europe/Paris"
    no_defaults = load_policy_text(
        _ACCESSORS.replace("stakeholder_defaults: {timezone: Europe/Paris}\n", ""),
        source="x",
        fmt="yaml",
    )
    assert no_defaults.person_of(_by_name(no_defaults, "Lena")).timezone == "Europe/London"


def test_hours_of_takes_entry_then_defaults_then_owner(policy: Policy) -> None:
    sam, lena = _by_name(policy, "Sam"), _by_name(policy, "Lena")
    assert policy.hours_of(sam).on(4) == (TimeRange(time(8), time(16)),)
    assert policy.hours_explicit(sam)
    assert policy.hours_of(lena) == policy.availability.working_hours  # owner's hours
    assert not policy.hours_explicit(lena)
    with_defaults = load_policy_text(
        _ACCESSORS.replace(
            "{timezone: Europe/Paris}",
            '{timezone: Europe/Paris, working_hours: {tue: "10:00-11:00"}}',
        ),
        source="x",
        fmt="yaml",
    )
    lena = _by_name(with_defaults, "Lena")
    assert with_defaults.hours_of(lena).days == {1: (TimeRange(time(10), time(11)),)}
    assert with_defaults.hours_explicit(lena)


def test_tiers_keep_definition_order_as_priority(policy: Policy) -> None:
    assert list(policy.tiers) == ["mentor", "peer"]
    assert (policy.tier_rank("mentor"), policy.tier_rank("peer")) == (0, 1)
    assert policy.tier_of(_by_name(policy, "Jon")).every == timedelta(weeks=4)
    with pytest.raises(KeyError):
        policy.tier_rank("boss")


def test_stakeholder_lookup_ignores_case(policy: Policy) -> None:
    found = policy.stakeholder("Sam@Corp.Example")
    assert found is not None
    assert found.name == "Sam Lee"
    assert policy.stakeholder("nobody@corp.example") is None


def test_invite_text_is_rendered_from_the_templates() -> None:
    policy = load_policy(DATA / "good" / "full.yaml")
    owner = policy.owner.person
    chloe = policy.person_of(policy.stakeholders[0])
    assert policy.meeting.render_title(owner, chloe) == "lunch: Omar Haddad + Chloe Martin"
    body = policy.meeting.render_description(owner, chloe, reason="it has been 9 weeks")
    assert body == "Hi Chloe, it has been 9 weeks"
    assert "offsite" not in body  # notes never reach an invite


# -- the shipped examples ----------------------------------------------------------------------

EXAMPLE_FILES = sorted(EXAMPLES.glob("*.*"))


def test_there_are_three_examples_in_both_formats() -> None:
    assert [p.name for p in EXAMPLE_FILES] == ["alex.yaml", "priya.toml", "sam.yaml"]


@pytest.mark.parametrize("path", EXAMPLE_FILES, ids=[p.name for p in EXAMPLE_FILES])
def test_every_example_loads(path: Path) -> None:
    policy = load_policy(path)
    assert policy.owner.email == f"{path.stem}@corp.example"
    assert policy.stakeholders
    assert all(s.email.endswith("@corp.example") for s in policy.stakeholders)


def test_alex_example_matches_the_design_sketch() -> None:
    alex = load_policy(EXAMPLES / "alex.yaml")
    assert alex.calendar.provider == "google"
    assert list(alex.tiers) == ["mentor", "sponsor", "peer"]
    assert alex.availability.windows == (
        TimeRange(time(10), time(11, 30)),
        TimeRange(time(14), time(16, 30)),
    )
    assert alex.availability.no_meeting_days == frozenset({4})
    names = {s.email.split("@")[0] for s in alex.stakeholders}
    assert names == {
        "sam", "lena", "maria", "jon", "omar", "chloe", "kim", "dana", "tom", "raj", "nina",
    }  # fmt: skip
    sam = alex.stakeholder("sam@corp.example")
    kim = alex.stakeholder("kim@corp.example")
    assert sam is not None
    assert sam.senior
    assert sam.tier == "mentor"
    assert alex.mode_of(sam) == "propose"
    assert kim is not None
    assert kim.paused_until == date(2027, 1, 15)


def test_priya_and_sam_examples_use_their_providers() -> None:
    priya = load_policy(EXAMPLES / "priya.toml")
    sam = load_policy(EXAMPLES / "sam.yaml")
    assert (priya.calendar.provider, priya.meeting.kind) == ("microsoft", "lunch")
    assert (sam.calendar.provider, sam.owner.timezone) == ("caldav", "America/New_York")


# -- TOML line numbers (tomllib reports none; policy.py scans for them) -------------------------

_NAMES = st.sampled_from(["email", "name", "tier", "every", "mon-fri", "a_b", "x1", "quoted key"])
_ONE_LINE = st.one_of(
    st.text(alphabet="ab #=,[]{}'.:-", max_size=6).map(lambda t: f'"{t}"'),
    st.text(alphabet='ab #=,[]{}".:-', max_size=6).map(lambda t: f"'{t}'"),
    st.just(r'"a \" b"'),
    st.integers(-99, 99).map(str),
    st.sampled_from(["true", "false", "2027-01-15", "1.5"]),
)
_SCALARS = st.one_of(_ONE_LINE, st.just('"""two\nlines"""'))
_TABLES = st.lists(st.sampled_from(["owner", "tiers.peer", "avail"]), unique=True, max_size=2)


def _key(name: str) -> str:
    return f'"{name}"' if " " in name else name


class _Writer:
    """Collects TOML lines and the line each path starts on."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.expected: dict[tuple[str | int, ...], int] = {}

    def emit(self, text: str) -> int:
        self.lines.extend(text.split("\n"))
        return len(self.lines) - text.count("\n")


@st.composite
def _toml_document(draw: st.DrawFn) -> tuple[str, dict[tuple[str | int, ...], int]]:
    """A random TOML document plus the line each path is written on."""
    out = _Writer()

    def pairs(prefix: tuple[str | int, ...]) -> None:
        for name in draw(st.lists(_NAMES, unique=True, max_size=3)):
            path = (*prefix, name)
            style = draw(st.sampled_from(["scalar", "inline", "array", "multiline"]))
            if style == "scalar":
                out.expected[path] = out.emit(f"{_key(name)} = {draw(_SCALARS)}  # note")
            elif style == "inline":
                inner = draw(st.lists(_NAMES, unique=True, min_size=1, max_size=3))
                body = ", ".join(f"{_key(k)} = {draw(_ONE_LINE)}" for k in inner)
                line = out.emit(f"{_key(name)} = {{ {body} }}")
                out.expected[path] = line
                out.expected.update({(*path, k): line for k in inner})
            elif style == "array":
                count = draw(st.integers(0, 3))
                items = ", ".join(draw(_ONE_LINE) for _ in range(count))
                line = out.emit(f"{_key(name)} = [{items}]")
                out.expected[path] = line
                out.expected.update({(*path, i): line for i in range(count)})
            else:
                out.expected[path] = out.emit(f"{_key(name)} = [  # items follow")
                for i in range(draw(st.integers(1, 3))):
                    member = draw(_NAMES)
                    line = out.emit(f"  {{ {_key(member)} = {draw(_ONE_LINE)} }},")
                    out.expected[(*path, i)] = out.expected[(*path, i, member)] = line
                out.emit("]")

    pairs(())
    for table in draw(_TABLES):
        out.emit("")
        parts = tuple(table.split("."))
        out.expected[parts] = out.emit(f"[{table}]")
        pairs(parts)
    for i in range(draw(st.integers(0, 3))):
        line = out.emit("[[stakeholders]]")
        out.expected.setdefault(("stakeholders",), line)
        out.expected[("stakeholders", i)] = line
        pairs(("stakeholders", i))
        if draw(st.booleans()):
            hours = ("stakeholders", i, "working_hours")
            out.expected[hours] = out.emit("[stakeholders.working_hours]")
            pairs(hours)
    return "\n".join(out.lines) + "\n", out.expected


Document = tuple[str, dict[tuple[str | int, ...], int]]


@given(_toml_document())
def test_toml_line_index_finds_every_key_table_and_item(doc: Document) -> None:
    text, expected = doc
    tomllib.loads(text)  # the generator writes valid TOML
    index = line_index(text, "toml")
    for path, line in expected.items():
        assert index.line_of(path) == line, (path, text)
    assert index.line_of(("no", "such", "path")) == 1


# -- never a traceback ---------------------------------------------------------------------------

_WORDS = ["owner", "email", "timezone", "tiers", "peer", "every", "stakeholders", "tier", "mode"]
_WORDS += ["availability", "working_hours", "mon-fri", "windows", "busy", "all_day", "meeting"]
_WORDS += ["duration", "title", "blackout", "no_meeting_days", "allowed_domains", "power"]
_LEAVES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 10**20),
    st.dates(),
    st.text(max_size=5),
    st.sampled_from(["30m", "09:00-17:00", "b@corp.example", "UTC", "fri", "peer", "{x}"]),
)
_JUNK = st.recursive(
    _LEAVES,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.one_of(st.sampled_from(_WORDS), st.integers(0, 3)), inner, max_size=4),
    ),
    max_leaves=20,
)
_VALID = {
    "owner": {"email": "a@corp.example", "name": "A", "timezone": "UTC"},
    "tiers": {"peer": {"every": "2w"}},
    "stakeholders": [{"email": "b@corp.example", "name": "B", "tier": "peer"}],
}


@given(_JUNK, st.sampled_from([*_VALID, "availability", "meeting", "etiquette", None]))
def test_any_yaml_gives_a_policy_or_policy_issues(junk: object, section: str | None) -> None:
    document = junk if section is None else {**_VALID, section: junk}
    text = yaml.safe_dump(document)
    issues: list[PolicyIssue] | None = None
    try:
        load_policy_text(text, source="fuzz.yaml", fmt="yaml")
    except PolicyError as exc:
        issues = exc.issues
    if issues is not None:
        assert issues
        last_line = max(len(text.splitlines()), 1)
        assert all(1 <= i.line <= last_line and i.message for i in issues)


# -- untrusted input: limits, each broken one a FILE:LINE issue (issue 11) ------------------------

_OWNER_YAML = "owner: {email: a@corp.example, name: A, timezone: UTC}\n"
_OWNER_TOML = 'owner = { email = "a@corp.example", name = "A", timezone = "UTC" }\n'
_PEER = "tiers: {peer: {every: 4w}}\n"


def _only_issue(text: str, fmt: str, limits: PolicyLimits | None = None) -> PolicyIssue:
    with pytest.raises(PolicyError) as info:
        load_policy_text(text, source="inline", fmt=fmt, limits=limits)  # type: ignore[arg-type]
    assert len(info.value.issues) == 1, info.value.issues
    return info.value.issues[0]


@pytest.mark.parametrize(
    ("fmt", "text", "line"),
    [
        ("yaml", _OWNER_YAML + "meeting: " + "[" * 20_000 + "]" * 20_000 + "\n", 2),
        ("yaml", _OWNER_YAML + "meeting:\n" + "".join(f"{' ' * i}- \n" for i in range(1, 900)), 23),
        ("yaml", _OWNER_YAML + "meeting: " + "{a: " * 20_000 + "1" + "}" * 20_000 + "\n", 2),
        ("toml", _OWNER_TOML + "meeting = " + "[" * 20_000 + "]" * 20_000 + "\n", 2),
        ("toml", _OWNER_TOML + "meeting = " + "{a = " * 20_000 + "1" + "}" * 20_000 + "\n", 2),
        ("toml", _OWNER_TOML + "[" + ".".join(["a"] * 20_000) + "]\n", 2),
        ("toml", _OWNER_TOML + ".".join(["a"] * 20_000) + " = 1\n", 2),
    ],
    ids=["yaml-flow", "yaml-block", "yaml-mapping", "toml-array", "toml-inline", "toml-header",
         "toml-dotted"],
)  # fmt: skip
def test_deep_nesting_is_one_issue_not_a_recursion_error(fmt: str, text: str, line: int) -> None:
    started = time_module.monotonic()
    issue = _only_issue(text, fmt)
    assert (issue.file, issue.line, issue.field) == ("inline", line, "")
    assert "nested more than 20 levels deep" in issue.message
    assert "GOODWILL_LIMITS__POLICY_MAX_DEPTH" in issue.message
    assert time_module.monotonic() - started < 10  # generous: refused before any deep work


def test_nesting_up_to_the_limit_is_fine_and_the_limit_is_a_setting() -> None:
    text = _OWNER_YAML + "meeting: {title: " + "[" * 18 + "x" + "]" * 18 + "}\n"
    # meeting.title[0]…[0] is 20 levels deep: within the limit, only its type is wrong
    [issue] = _issues(text, "yaml")
    assert (issue.field, issue.message[:19]) == ("meeting.title", "expected text, got ")
    issue = _only_issue(text, "yaml", PolicyLimits(max_depth=5))
    assert (issue.line, issue.field) == (2, "")
    assert "nested more than 5 levels deep" in issue.message


def _alias_bomb(levels: int) -> str:
    """``levels`` nested anchors, each naming the previous nine times: 9**levels values."""
    lines = [_OWNER_YAML.rstrip(), _PEER.rstrip(), "stakeholders:"]
    person = "  - {{email: b{i}@corp.example, name: B, tier: peer, power: &a{i} [{refs}]}}"
    lines.append(person.format(i=0, refs=", ".join(["x"] * 9)))
    for i in range(1, levels):
        lines.append(person.format(i=i, refs=", ".join([f"*a{i - 1}"] * 9)))
    return "\n".join(lines) + "\n"


def test_a_yaml_alias_bomb_is_refused_at_the_alias_that_overflows() -> None:
    text = _alias_bomb(8)  # 9**8 = 43 million values from about a kilobyte
    assert len(text) < 1100
    started = time_module.monotonic()
    issue = _only_issue(text, "yaml")
    assert issue.line == 9  # its 6th anchor (9**6 = 531,441 values) passes 250,000
    assert "more than 250000 values" in issue.message
    assert "a YAML alias counts as a copy of what it names" in issue.message
    assert "GOODWILL_LIMITS__POLICY_MAX_VALUES" in issue.message
    assert time_module.monotonic() - started < 10  # was > 100 s and 4.4 GB


def test_an_alias_inside_the_value_it_names_is_refused() -> None:
    issue = _only_issue(_OWNER_YAML + "meeting: &m {title: *m}\n", "yaml")
    assert (issue.line, issue.field) == (2, "")
    assert "the alias *m is inside the value it names" in issue.message


def test_anchors_aliases_and_merge_keys_within_the_limits_still_work() -> None:
    text = (
        _OWNER_YAML
        + "x-hours: &hours {mon-fri: '08:00-16:00'}\n"
        + _PEER
        + "stakeholders:\n"
        + "  - &sam {email: sam@corp.example, name: Sam Lee, tier: peer, working_hours: *hours}\n"
        + "  - {<<: *sam, email: kim@corp.example, name: Kim Ito}\n"
    ).replace("x-hours: ", "stakeholder_defaults: {working_hours: ")
    text = text.replace("'08:00-16:00'}\n", "'08:00-16:00'}}\n", 1)
    policy = load_policy_text(text, source="inline", fmt="yaml")
    kim = policy.stakeholder("kim@corp.example")
    assert kim is not None
    assert kim.working_hours == policy.stakeholder_defaults.working_hours
    assert (kim.name, kim.tier) == ("Kim Ito", "peer")


def test_yaml_composer_errors_keep_their_wording() -> None:
    assert "found undefined alias 'x'" in _only_issue("a: *x\n", "yaml").message
    issue = _only_issue("a: &x 1\nb: &x 2\n", "yaml")
    assert issue.line == 2
    assert "malformed YAML: found duplicate anchor 'x'" in issue.message
    issue = _only_issue("---\na: 1\n---\nb: 2\n", "yaml")
    assert issue.line == 3
    assert "expected a single document in the stream" in issue.message


@pytest.mark.parametrize("fmt", ["yaml", "toml"])
def test_a_file_over_the_size_limit_is_refused_before_parsing(fmt: str, tmp_path: Path) -> None:
    limits = PolicyLimits(max_bytes=1000)
    text = (_OWNER_YAML if fmt == "yaml" else _OWNER_TOML) + "# padding\n" * 100
    issue = _only_issue(text, fmt, limits)
    assert (issue.line, issue.field) == (1, "")
    assert "larger than 1000 bytes" in issue.message
    assert "GOODWILL_LIMITS__POLICY_MAX_BYTES" in issue.message
    path = tmp_path / f"big.{fmt}"
    path.write_bytes(text.encode() + b"#" * 5_000_000)
    [issue] = validate_policy_files([path], limits)
    assert (issue.file, issue.line) == (str(path), 1)
    assert "larger than 1000 bytes" in issue.message
    assert PolicyLimits().max_bytes == 1024 * 1024


@pytest.mark.parametrize("fmt", ["yaml", "toml"])
def test_more_stakeholders_than_the_limit_is_one_issue_on_the_list(fmt: str) -> None:
    if fmt == "yaml":
        people = "".join(
            f"  - {{email: p{i}@corp.example, name: P, tier: peer}}\n" for i in range(4)
        )
        text, line = _OWNER_YAML + _PEER + "stakeholders:\n" + people, 3
    else:
        people = "".join(
            f'[[stakeholders]]\nemail = "p{i}@corp.example"\nname = "P"\ntier = "peer"\n'
            for i in range(4)
        )
        text, line = _OWNER_TOML + '[tiers.peer]\nevery = "4w"\n' + people, 4
    issue = _only_issue(text, fmt, PolicyLimits(max_stakeholders=3))
    assert (issue.line, issue.field) == (line, "stakeholders")
    assert "4 stakeholders is more than 3" in issue.message
    assert load_policy_text(text, source="x", fmt=fmt).stakeholders[3].email == "p3@corp.example"  # type: ignore[arg-type]
    assert PolicyLimits().max_stakeholders == 5_000


@pytest.mark.parametrize(
    ("fmt", "text", "line"),
    [
        ("yaml", _OWNER_YAML + _PEER + "stakeholders:\n  - {email: b@corp.example, name: B,\n"
         "     tier: peer, notes: '" + "n" * 10_001 + "'}\n", 5),
        ("toml", _OWNER_TOML + '[tiers.peer]\nevery = "4w"\n[[stakeholders]]\n'
         'email = "b@corp.example"\nname = "B"\ntier = "peer"\n'
         'notes = "' + "n" * 10_001 + '"\n', 8),
    ],
)  # fmt: skip
def test_a_text_longer_than_the_limit_names_its_field(fmt: str, text: str, line: int) -> None:
    issue = _only_issue(text, fmt)
    assert (issue.line, issue.field) == (line, "stakeholders[0].notes")
    assert "a text of 10001 characters is longer than 10000" in issue.message


def test_a_dense_file_within_the_size_limit_is_refused_by_its_value_count() -> None:
    text = _OWNER_YAML + "meeting: {title: [" + ",".join(["1"] * 300_000) + "]}\n"
    assert len(text) < 1024 * 1024
    started = time_module.monotonic()
    issue = _only_issue(text, "yaml")
    assert issue.line == 2
    assert "more than 250000 values" in issue.message
    assert time_module.monotonic() - started < 10


@pytest.mark.parametrize(
    ("snippet", "field", "message"),
    [
        ("tiers: {peer: {every: 99999999999999999999w}}", "tiers.peer.every",
         "expected a cadence between 1d and 260w (like 4w or 90d), got '99999999999999999999w'"),
        ("tiers: {peer: {every: 12h}}", "tiers.peer.every",
         "expected a cadence between 1d and 260w (like 4w or 90d), got '12h'"),
        ("tiers: {peer: {every: 261w}}", "tiers.peer.every", "between 1d and 260w"),
        ("availability: {horizon: 53w}", "availability.horizon",
         "expected a horizon of at most 52w (like 14d or 4w), got '53w'"),
        ("availability: {horizon: 99999999999999999999d}", "availability.horizon", "at most 52w"),
        ("availability: {min_notice: 99999999999999999999m}", "availability.min_notice",
         "expected a notice of at most 52w (like 1d, or 0), got '99999999999999999999m'"),
        ("availability: {buffer: 2d}", "availability.buffer",
         "expected a buffer of at most 1d (like 10m, or 0), got '2d'"),
        ("meeting: {duration: 99999999999999999999}", "meeting.duration",
         "expected a meeting of at most 1d (like 30m), got 99999999999999999999 minutes"),
        ("meeting: {duration: -99999999999999999999}", "meeting.duration",
         "expected a duration greater than zero, got -99999999999999999999 minutes"),
        ("etiquette: {decline_backoff: .inf}", "etiquette.decline_backoff",
         "expected a finite number, got inf"),
        ("etiquette: {decline_backoff: 1e300}", "etiquette.decline_backoff",
         "expected a number <= 10"),
    ],
)  # fmt: skip
def test_durations_and_numbers_out_of_range_name_the_range(
    snippet: str, field: str, message: str
) -> None:
    issue = _only_issue(_OWNER_YAML + snippet + "\n", "yaml")
    assert (issue.line, issue.field) == (2, field)
    assert message in issue.message


def test_duration_ranges_follow_the_limits() -> None:
    limits = PolicyLimits(min_every=timedelta(hours=1), max_horizon=timedelta(weeks=60))
    text = _OWNER_YAML + "tiers: {peer: {every: 12h}}\navailability: {horizon: 55w}\n"
    policy = load_policy_text(text, source="x", fmt="yaml", limits=limits)
    assert policy.tiers["peer"].every == timedelta(hours=12)
    assert policy.availability.horizon == timedelta(weeks=55)


@pytest.mark.parametrize(
    ("fmt", "text", "line", "message"),
    [
        ("yaml", _OWNER_YAML + "stakeholders:\n  - {paused_until: 2026-02-30}\n", 3,
         "'2026-02-30' is not a valid date (day is out of range for month); fix the value"),
        ("yaml", _OWNER_YAML + "meeting: {duration: " + "9" * 5000 + "}\n", 2,
         "is not a valid whole number"),
        ("yaml", _OWNER_YAML + "x: 2026-01-01 25:00:00\n", 2, "is not a valid date"),
        ("toml", _OWNER_TOML + "x = " + "9" * 5000 + "\n", 2, "a value cannot be read"),
    ],
)  # fmt: skip
def test_values_python_cannot_hold_are_issues_not_value_errors(
    fmt: str, text: str, line: int, message: str
) -> None:
    issue = _only_issue(text, fmt)
    assert issue.line == line
    assert message in issue.message


def test_text_that_is_not_unicode_is_an_issue() -> None:
    issue = _only_issue(_OWNER_YAML + "x: \ud800\n", "yaml")
    assert (issue.line, issue.message) == (2, "the text is not valid Unicode; save it as UTF-8")


def test_a_regex_that_backtracked_for_minutes_now_refuses_at_once() -> None:
    started = time_module.monotonic()
    issue = _only_issue(_OWNER_YAML + "tiers: {peer: {every: '1w" + " " * 5000 + "x'}}\n", "yaml")
    assert issue.field == "tiers.peer.every"
    assert "expected a duration like 30m, 2d or 4w" in issue.message
    assert time_module.monotonic() - started < 10  # cubic before: about an hour


def test_many_problems_are_capped_with_a_count_of_the_rest() -> None:
    people = "".join(f"  - {{email: p{i}@corp.example, name: P, tier: nope}}\n" for i in range(150))
    issues = _issues(_OWNER_YAML + _PEER + "stakeholders:\n" + people, "yaml")
    assert len(issues) == 101
    assert all("unknown tier 'nope'" in i.message for i in issues[:100])
    assert issues[100].line == 104
    assert issues[100].message.startswith("… and 50 more problem(s) not listed")


# -- time zones: IANA region names only ---------------------------------------------------------


@pytest.mark.parametrize(
    ("zone", "message"),
    [
        ("EST", "'EST' is an abbreviation, not an IANA region name, and does not follow the "
         "place's summer time; write the region of the place, like 'America/New_York', "
         "'America/Toronto' or 'America/Detroit'"),
        ("CET", "like 'Europe/Paris', 'Europe/Berlin' or 'Europe/Madrid'"),
        ("EST5EDT", "'America/New_York'"),
        ("PST", "'America/Los_Angeles'"),
        ("US/Eastern", "'US/Eastern' is an old alias, not an IANA region name; write "
         "'America/New_York'"),
        ("Japan", "write 'Asia/Tokyo'"),
        ("GMT+1", "'GMT+1' is a fixed offset from UTC, which ignores summer time; write the IANA "
         "region name of the place, like 'Europe/Paris', 'Europe/Berlin' or 'Africa/Lagos'"),
        ("UTC-05:00", "like 'America/New_York', 'America/Toronto' or 'America/Bogota'"),
        ("Etc/GMT-1", "like 'Europe/Paris'"),  # POSIX sign: one hour east of UTC
        ("Etc/GMT+5", "like 'America/New_York'"),  # five hours west
        ("GMT", "write 'Europe/London' for the UK or 'UTC' for UTC"),
        ("Zulu", "another name for UTC; write 'UTC'"),
        ("Europe/Londn", "'Europe/Londn' is not an IANA time zone; did you mean 'Europe/London'?"),
        ("Mars/Olympus", "is not an IANA time zone; use a name like Europe/London"),
    ],
)  # fmt: skip
def test_legacy_and_fixed_offset_zones_are_refused_with_region_names(
    zone: str, message: str
) -> None:
    issue = _only_issue(f"owner: {{email: a@corp.example, name: A, timezone: '{zone}'}}\n", "yaml")
    assert issue.field == "owner.timezone"
    assert message in issue.message
    assert "GMT+0" not in issue.message


@pytest.mark.parametrize(
    "zone",
    ["UTC", "Europe/London", "America/Argentina/Buenos_Aires", "Asia/Kolkata", "Asia/Calcutta"],
)
def test_region_names_and_utc_are_accepted(zone: str) -> None:
    text = f"owner: {{email: a@corp.example, name: A, timezone: {zone}}}\n"
    assert load_policy_text(text, source="x", fmt="yaml").owner.timezone == zone


# -- the service's side: settings, PolicyBook never raises --------------------------------------


def test_policy_limits_come_from_goodwill_limits_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    assert policy_limits(Settings(_env_file=None).limits) == PolicyLimits()  # type: ignore[call-arg]
    monkeypatch.setenv("GOODWILL_LIMITS__POLICY_MAX_STAKEHOLDERS", "7")
    monkeypatch.setenv("GOODWILL_LIMITS__POLICY_MAX_HORIZON_DAYS", "30")
    limits = policy_limits(Settings(_env_file=None).limits)  # type: ignore[call-arg]
    assert (limits.max_stakeholders, limits.max_horizon) == (7, timedelta(days=30))
    monkeypatch.setenv("GOODWILL_LIMITS__POLICY_MAX_DEPTH", "100000")
    with pytest.raises(ValueError, match="less than or equal to 200"):
        Settings(_env_file=None)  # type: ignore[call-arg]


def test_policy_book_uses_its_limits_and_turns_any_exception_into_an_issue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "a.yaml"
    path.write_text(_OWNER_YAML + _PEER + "stakeholders:\n  - {email: b@corp.example, name: B, "
                    "tier: peer}\n  - {email: c@corp.example, name: C, tier: peer}\n")  # fmt: skip
    book = PolicyBook(tmp_path, PolicyLimits(max_stakeholders=1))
    [issue] = book.load(path).issues
    assert "2 stakeholders is more than 1" in issue.message
    good = PolicyBook(tmp_path).load(path)
    assert good.policy is not None

    def explode(*args: object, **kwargs: object) -> None:
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(app_policies, "validate_policy_text", explode)
    path.write_text(path.read_text() + "# changed\n")
    book = PolicyBook(tmp_path)
    pf = book.load(path)
    assert pf.policy is None
    [issue] = pf.issues
    assert (issue.file, issue.line) == (str(path), 1)
    assert issue.message.startswith("the file could not be read: RecursionError")
    with pytest.raises(PolicyError, match="could not be read: RecursionError"):
        load_policy(path)


@pytest.mark.parametrize("text", ["a = [b\n", "a = {b = [c\n", "a = [", "a = [1,", "a = {"])
def test_the_toml_line_scanner_ends_on_text_tomllib_refuses(text: str) -> None:
    # It now runs before tomllib (to find deep nesting): unterminated arrays must not loop.
    assert line_index(text, "toml").line_of(("a", 5)) == 1
    issue = _only_issue(text, "toml")
    assert issue.message.startswith("malformed TOML: ")


def test_a_control_character_in_yaml_is_one_line_with_its_line_number() -> None:
    issue = _only_issue(_OWNER_YAML + "x: \x07\n", "yaml")
    assert (issue.line, issue.field) == (2, "")
    assert issue.message.startswith("the file contains #x0007, a character YAML does not allow")


def test_keys_with_line_breaks_are_escaped_so_each_issue_is_one_line() -> None:
    text = yaml.safe_dump({**_VALID, "owner": {**_VALID["owner"], "a\nb": 1, " \x85": 2}})
    issues = _issues(text, "yaml")
    assert {(i.field, i.message[:18]) for i in issues} == {
        ("owner.a\\nb", "unknown field 'a\\n"),
        ("owner. \\x85", "unknown field ' \\x"),
    }
    assert all(i.message.isprintable() for i in issues)


def test_a_zone_name_zoneinfo_would_recurse_on_is_an_issue() -> None:
    # zoneinfo looks "a.a.….a/B" up as nested tzdata packages: a RecursionError before.
    zone = "a." * 3000 + "Europe/London"
    issue = _only_issue(f"owner: {{email: a@corp.example, name: A, timezone: {zone}}}\n", "yaml")
    assert issue.field == "owner.timezone"
    assert "is not an IANA time zone" in issue.message
