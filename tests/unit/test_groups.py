"""Group meetings in the planner: attendees, quorum, presenter rotation, caps, seniors first."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from scheduler.core.groups import GroupHistory, GroupProposal, plan_groups
from scheduler.core.model import BusyBlock, BusyResult
from scheduler.core.planner import ExistingMeeting, Plan, StakeholderLoad, plan
from scheduler.core.policy import Policy, load_policy_text

NOW = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)  # a Monday

HEAD = """
owner: {email: alex@corp.example, name: Alex Doe, timezone: Europe/London}
meeting: {kind: coffee, duration: 30m}
availability:
  working_hours: {mon-fri: "09:00-17:00"}
  min_notice: 0m
  horizon: 14d
  buffer: 0m
  max_per_day: 2
  max_per_week: 10
tiers:
  peer: {every: 8w}
allowed_domains: [corp.example]
stakeholders:
  - {email: a@corp.example, name: Ann A, tier: peer, department: Design}
  - {email: b@corp.example, name: Bo B, tier: peer, department: Design}
  - {email: c@corp.example, name: Cy C, tier: peer, department: Data}
  - {email: d@corp.example, name: Di D, tier: peer, department: Sales}
  - {email: s@corp.example, name: Sue S, tier: peer, department: Legal, senior: true}
"""
MEMBERS = "[a@corp.example, b@corp.example, c@corp.example, d@corp.example, s@corp.example]"


def policy_with(group: str, extra: str = "") -> Policy:
    text = HEAD + extra + f"groups:\n  - {{name: lunch, members: {MEMBERS}, {group}}}\n"
    return load_policy_text(text, source="t.yaml", fmt="yaml")


def free(policy: Policy, extra: dict[str, list[BusyBlock]] | None = None) -> BusyResult:
    blocks: dict[str, list[BusyBlock]] = {policy.owner.email: []}
    for g in policy.groups:
        blocks.update({m: [] for m in g.members})
    blocks.update({s.email: [] for s in policy.stakeholders})
    blocks.update(extra or {})
    return BusyResult(blocks=blocks)


def whole_days(first: int, days: int) -> list[BusyBlock]:
    start = datetime(2026, 11, 30, tzinfo=UTC) + timedelta(days=first)
    return [BusyBlock(start=start, end=start + timedelta(days=days))]


def only(policy: Policy, busy: BusyResult, **kw: object) -> GroupProposal:
    proposals, skipped = plan_groups(policy, now=NOW, busy=busy, last_contacts={}, **kw)  # type: ignore[arg-type]
    assert skipped == ()
    (p,) = proposals
    return p


def test_a_lunch_group_is_one_proposal_in_the_lunch_window_with_a_presenter() -> None:
    policy = policy_with("size: '2..4', quorum: 1")
    p = only(policy, free(policy))
    london = ZoneInfo("Europe/London")
    assert p.group == "lunch"
    assert p.kind == "lunch"
    assert p.mode == "propose"
    assert p.end - p.start == timedelta(hours=1)
    assert p.start.astimezone(london).time() >= datetime(2026, 1, 1, 11, 30).time()
    assert p.end.astimezone(london).time() <= datetime(2026, 1, 1, 14, 0).time()
    assert 2 <= len(p.attendees) <= 4
    assert "alex@corp.example" not in p.attendees
    assert p.presenter == p.attendees[0]
    # The senior member was never met one-to-one: left out.
    assert "s@corp.example" not in p.attendees
    assert p.quorum == len(p.attendees)


def test_mix_departments_takes_new_departments_first() -> None:
    policy = policy_with("size: '2..3', mix_departments: 3")
    p = only(policy, free(policy))
    departments = {policy.stakeholder(e).department for e in p.attendees}  # type: ignore[union-attr]
    assert len(departments) == 3


def test_avoid_together_keeps_a_pair_apart() -> None:
    policy = policy_with("size: '2..4', avoid_together: [[a@corp.example, c@corp.example]]")
    p = only(policy, free(policy))
    assert not {"a@corp.example", "c@corp.example"} <= set(p.attendees)


def test_seniors_join_once_a_one_to_one_with_them_completed() -> None:
    policy = policy_with("size: '5'")
    proposals, skipped = plan_groups(policy, now=NOW, busy=free(policy), last_contacts={})
    assert proposals == ()
    assert [(s.group, s.code) for s in skipped] == [("lunch", "senior_first")]
    history = GroupHistory(one_to_one_done={"s@corp.example"})
    p = only(policy, free(policy), history=history)
    assert "s@corp.example" in p.attendees


def test_the_quorum_lets_a_busy_attendee_be_invited_but_not_present() -> None:
    # d is busy all fortnight: with quorum 0.75 of 4, 3 free are enough; d never presents.
    policy = policy_with("size: '4', quorum: 0.75, presenter: rotate")
    busy = free(policy, {"d@corp.example": whole_days(0, 14)})
    history = GroupHistory(
        presented={"lunch": {"a@corp.example": NOW, "b@corp.example": NOW, "c@corp.example": NOW}}
    )
    p = only(policy, busy, history=history)
    assert set(p.attendees) == {
        "a@corp.example",
        "b@corp.example",
        "c@corp.example",
        "d@corp.example",
    }
    assert p.quorum == 3
    assert p.presenter != "d@corp.example"
    # With quorum 1 there is no slot at all.
    strict = policy_with("size: '4', quorum: 1")
    proposals, skipped = plan_groups(strict, now=NOW, busy=busy, last_contacts={})
    assert proposals == ()
    assert skipped[0].code == "no_quorum_slot"


def test_the_presenter_is_whoever_presented_longest_ago() -> None:
    policy = policy_with("size: '3', presenter: rotate")
    long_ago = NOW - timedelta(weeks=12)
    history = GroupHistory(
        presented={
            "lunch": {
                "a@corp.example": NOW - timedelta(weeks=4),
                "b@corp.example": long_ago,
                "c@corp.example": NOW - timedelta(weeks=8),
            }
        }
    )
    p = only(policy, free(policy), history=history)
    assert p.presenter == "d@corp.example"  # never presented
    history = GroupHistory(
        presented={"lunch": {**history.presented["lunch"], "d@corp.example": NOW}}
    )
    assert only(policy, free(policy), history=history).presenter == "b@corp.example"


def test_presenter_none_names_nobody() -> None:
    policy = policy_with("size: '2', presenter: none")
    assert only(policy, free(policy)).presenter is None


def test_cadence_and_open_meetings() -> None:
    policy = policy_with("size: '2', every: 4w")
    held = GroupHistory(last_held={"lunch": NOW - timedelta(days=3)})
    _, skipped = plan_groups(policy, now=NOW, busy=free(policy), last_contacts={}, history=held)
    assert [s.code for s in skipped] == ["not_due"]
    due = GroupHistory(last_held={"lunch": NOW - timedelta(weeks=4)})
    assert only(policy, free(policy), history=due).start >= NOW
    opened = GroupHistory(open_groups={"lunch"})
    _, skipped = plan_groups(policy, now=NOW, busy=free(policy), last_contacts={}, history=opened)
    assert [s.code for s in skipped] == ["open_meeting"]


def test_too_few_readable_calendars_skip_the_group() -> None:
    policy = policy_with("size: '3'")
    busy = BusyResult(blocks={"alex@corp.example": [], "a@corp.example": []})
    met = GroupHistory(one_to_one_done={"s@corp.example"})
    _, skipped = plan_groups(policy, now=NOW, busy=busy, last_contacts={}, history=met)
    assert [s.code for s in skipped] == ["calendar_unavailable"]


def test_in_the_plan_a_group_counts_once_towards_the_caps_and_never_overlaps_a_one_to_one() -> None:
    text = HEAD.replace("max_per_day: 2", "max_per_day: 1").replace(
        "max_per_week: 10", "max_per_week: 5"
    )
    text += f"groups:\n  - {{name: lunch, members: {MEMBERS}, size: '2..4', kind: coffee}}\n"
    policy = load_policy_text(text, source="t.yaml", fmt="yaml")
    result = plan(policy, now=NOW, busy=free(policy), last_contacts={})
    (g,) = result.group_proposals
    london = ZoneInfo("Europe/London")
    days = [p.start.astimezone(london).date() for p in result.proposals]
    assert g.start.astimezone(london).date() not in days  # max_per_day 1: the group took a day
    weeks = [d.isocalendar()[1] for d in [*days, g.start.astimezone(london).date()]]
    assert all(weeks.count(w) <= 5 for w in weeks)
    for p in result.proposals:
        assert p.end <= g.start or g.end <= p.start
        for a, b in p.alternatives:
            assert b <= g.start or g.end <= a
    out = result.as_json()
    assert out["group_proposals"][0]["group"] == "lunch"
    assert set(out["group_proposals"][0]) == {
        "group", "attendees", "presenter", "start", "end", "kind", "mode", "reason",
    }  # fmt: skip
    assert out["group_skipped"] == []


def test_when_the_owner_paused_every_group_is_skipped() -> None:
    policy = policy_with("size: '2'")
    result = plan(
        policy,
        now=NOW,
        busy=free(policy),
        last_contacts={},
        owner_paused_until=NOW + timedelta(days=3),
    )
    assert result.group_proposals == ()
    assert [(s.group, s.code) for s in result.group_skipped] == [("lunch", "paused")]


def test_a_senior_member_already_asked_today_by_another_owner_is_left_out() -> None:
    # s has met the owner one-to-one (so "seniors first" does not apply), and another owner's
    # goodwill invite reached s and b today: s waits until tomorrow, the peer b does not.
    load = StakeholderLoad(weekly_cap=2, invited_today={"s@corp.example", "b@corp.example"})
    met = GroupHistory(one_to_one_done={"s@corp.example"})
    asked = GroupHistory(one_to_one_done={"s@corp.example"}, load=load)
    policy = policy_with("size: '2..5'")
    assert "s@corp.example" in only(policy, free(policy), history=met).attendees
    p = only(policy, free(policy), history=asked)
    assert "s@corp.example" not in p.attendees
    assert "b@corp.example" in p.attendees
    # When the group needs every member, it is skipped as "stakeholder busy", naming nobody.
    everyone = policy_with("size: '5'")
    assert "s@corp.example" in only(everyone, free(everyone), history=met).attendees
    proposals, skipped = plan_groups(
        everyone, now=NOW, busy=free(everyone), last_contacts={}, history=asked
    )
    assert proposals == ()
    (skip,) = skipped
    assert (skip.group, skip.code) == ("lunch", "stakeholder_busy")
    assert "1 senior, already asked by goodwill today (asked tomorrow)" in skip.reason
    assert "@" not in skip.reason


# -- the owner's own limit per stakeholder and week (etiquette.max_per_stakeholder_per_week) ----

TWO_GROUPS = (
    "groups:\n"
    "  - {name: lunch, members: [a@corp.example, b@corp.example, c@corp.example], size: '2..3'}\n"
    "  - {name: world, members: [a@corp.example, b@corp.example, d@corp.example], size: '2..3',"
    " kind: coffee, duration: 30m}\n"
)


def _weekly_counts(
    policy: Policy, meetings: list[tuple[str, datetime]]
) -> dict[tuple[str, tuple[int, int]], int]:
    """(e-mail, their ISO week) -> how many of the owner's meetings they have."""
    counts: dict[tuple[str, tuple[int, int]], int] = {}
    for email, start in meetings:
        s = policy.stakeholder(email)
        zone = ZoneInfo(policy.person_of(s).timezone if s else policy.owner.timezone)
        year, week, _ = start.astimezone(zone).isocalendar()
        counts[(email, (year, week))] = counts.get((email, (year, week)), 0) + 1
    return counts


def _everyone(result: Plan) -> list[tuple[str, datetime]]:
    out = [(p.stakeholder, p.start) for p in result.proposals]
    for g in result.group_proposals:
        out += [(e, g.start) for e in g.attendees]
    return out


def test_a_member_gets_at_most_one_of_the_owners_meetings_a_week_across_groups() -> None:
    policy = load_policy_text(HEAD + TWO_GROUPS, source="t.yaml", fmt="yaml")
    result = plan(policy, now=NOW, busy=free(policy), last_contacts={})
    lunch, world = sorted(result.group_proposals, key=lambda g: g.group)
    shared = set(lunch.attendees) & set(world.attendees)
    week = {g.group: g.start.isocalendar()[:2] for g in (lunch, world)}
    assert not shared or week["lunch"] != week["world"]
    assert max(_weekly_counts(policy, _everyone(result)).values()) == 1
    # A one-to-one never lands in a week in which they already have one of these groups.
    for p in result.proposals:
        for g in result.group_proposals:
            if p.stakeholder in g.attendees:
                assert p.start.isocalendar()[:2] != g.start.isocalendar()[:2]


def test_the_limit_counts_the_owners_open_group_meetings_in_the_store() -> None:
    policy = policy_with("size: '2..4', kind: coffee, duration: 30m")
    this_week = NOW + timedelta(days=2, hours=3)  # Wed 2 Dec, 11:00 London
    history = GroupHistory(attended={"a@corp.example": [this_week]})
    result = plan(policy, now=NOW, busy=free(policy), last_contacts={}, group_history=history)
    (g,) = result.group_proposals
    if "a@corp.example" in g.attendees:
        assert g.start.isocalendar()[:2] != this_week.isocalendar()[:2]
    (p,) = [p for p in result.proposals if p.stakeholder == "a@corp.example"]
    assert p.start.isocalendar()[:2] != this_week.isocalendar()[:2]
    # Alone in this week's slots, the group goes without them, saying so in plain words.
    only_now = GroupHistory(attended={e: [this_week] for e in ("a@corp.example",)})
    policy1 = load_policy_text(
        HEAD.replace("horizon: 14d", "horizon: 4d")
        + f"groups:\n  - {{name: lunch, members: {MEMBERS}, size: '2..4'}}\n",
        source="t.yaml",
        fmt="yaml",
    )
    q = only(policy1, free(policy1), history=only_now)
    assert "a@corp.example" not in q.attendees
    assert "1 not invited: already have a goodwill meeting with you that week" in q.reason
    # A one-to-one in the only week they already have the owner's group: skipped, plainly.
    result1 = plan(policy1, now=NOW, busy=free(policy1), last_contacts={}, group_history=only_now)
    (skip,) = [s for s in result1.skipped if s.stakeholder == "a@corp.example"]
    assert skip.code == "cap_reached"
    assert "already have a goodwill meeting with you" in skip.reason
    assert "max_per_stakeholder_per_week" in skip.reason


def test_an_open_one_to_one_counts_and_a_higher_limit_allows_more() -> None:
    short = load_policy_text(
        HEAD.replace("horizon: 14d", "horizon: 4d")
        + f"groups:\n  - {{name: lunch, members: {MEMBERS}, size: '2..4'}}\n",
        source="t.yaml",
        fmt="yaml",
    )
    tomorrow = NOW + timedelta(days=1, hours=2)
    mine = ExistingMeeting("b@corp.example", tomorrow, tomorrow + timedelta(minutes=30))
    result = plan(short, now=NOW, busy=free(short), last_contacts={}, existing=[mine])
    (g,) = result.group_proposals
    assert "b@corp.example" not in g.attendees
    two = load_policy_text(
        HEAD.replace("horizon: 14d", "horizon: 4d")
        + "etiquette: {max_per_stakeholder_per_week: 2}\n"
        + f"groups:\n  - {{name: lunch, members: {MEMBERS}, size: '2..4'}}\n",
        source="t.yaml",
        fmt="yaml",
    )
    result2 = plan(two, now=NOW, busy=free(two), last_contacts={}, existing=[mine])
    (g2,) = result2.group_proposals
    assert "b@corp.example" in g2.attendees
    counts = _weekly_counts(two, _everyone(result2))
    assert max(counts.values()) == 2  # a group and a one-to-one the same week: allowed at 2


ZONES = ("Europe/London", "America/New_York", "Asia/Kolkata")


@st.composite
def owner_rounds(draw: st.DrawFn) -> tuple[Policy, GroupHistory, list[ExistingMeeting]]:
    """Up to three groups over six people in three zones, an introduction, a per-person
    limit of 1 or 2, and some of the owner's meetings already in the store."""
    people = [f"m{i}@corp.example" for i in range(6)]
    lines = []
    for i, email in enumerate(people):
        zone = draw(st.sampled_from(ZONES))
        extra = ", status: to_meet, via: m0@corp.example" if i == 5 else ""
        lines.append(
            f"  - {{email: {email}, name: M {i}, tier: peer, timezone: {zone}, "
            f"working_hours: {{mon-fri: '00:00-23:59'}}{extra}}}"
        )
    groups = []
    for g in range(draw(st.integers(1, 3))):
        members = draw(st.lists(st.sampled_from(people[:5]), min_size=2, max_size=5, unique=True))
        kind = draw(st.sampled_from(["coffee", "lunch"]))
        groups.append(
            f"  - {{name: g{g}, members: [{', '.join(members)}], size: '1..{len(members)}', "
            f"kind: {kind}, duration: 30m, quorum: 0.5}}"
        )
    limit = draw(st.integers(1, 2))
    text = (
        "owner: {email: o@corp.example, name: Owner, timezone: Europe/London}\n"
        "availability: {working_hours: {mon-sun: '00:00-23:59'}, min_notice: 0m, "
        "horizon: 15d, max_per_day: 4, max_per_week: 20, buffer: 0m, lunch_window: '00:00-23:59'}\n"
        "tiers: {peer: {every: 1w}}\n"
        f"etiquette: {{max_per_stakeholder_per_week: {limit}}}\n"
        "introductions: {mode: meeting}\n"
        "stakeholders:\n" + "\n".join(lines) + "\ngroups:\n" + "\n".join(groups) + "\n"
    )
    policy = load_policy_text(text, source="p.yaml", fmt="yaml")
    day = st.integers(0, 14).map(lambda d: NOW + timedelta(days=d, hours=6))
    attended = draw(st.dictionaries(st.sampled_from(people[:5]), st.lists(day, max_size=2)))
    held = [
        ExistingMeeting(e, t, t + timedelta(minutes=30))
        for e, t in draw(st.dictionaries(st.sampled_from(people[:5]), day, max_size=2)).items()
    ]
    return policy, GroupHistory(attended=attended), held


@given(owner_rounds())
def test_nobody_gets_more_of_the_owners_meetings_a_week_than_the_limit(
    case: tuple[Policy, GroupHistory, list[ExistingMeeting]],
) -> None:
    policy, history, existing = case
    limit = policy.etiquette.max_per_stakeholder_per_week
    busy = free(policy)
    result = plan(
        policy, now=NOW, busy=busy, last_contacts={}, existing=existing, group_history=history
    )
    before = [(e, t) for e, starts in history.attended.items() for t in starts]
    before += [(m.stakeholder, m.start) for m in existing]
    counts_before = _weekly_counts(policy, before)
    counts = _weekly_counts(policy, [*before, *_everyone(result)])
    for key, n in counts.items():
        # The plan adds nothing to a week already at (or over) the limit, and fills none over.
        assert n <= max(limit, counts_before.get(key, 0)), (key, n)
        if counts_before.get(key, 0) >= limit:
            assert n == counts_before[key], (key, n)
