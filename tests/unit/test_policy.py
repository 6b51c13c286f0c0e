"""Policy files: loading, every rejection rule with its line and field, defaults, accessors."""

from __future__ import annotations

import hashlib
import re
import tomllib
from datetime import date, time, timedelta
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from scheduler.app.policies import load_policy, validate_policy_files
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
    assert names == {"sam", "lena", "maria", "jon", "omar", "chloe", "kim", "dana", "tom", "raj"}
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
