"""The coverage report: due dates, coverage, rates, pauses, credentials, JSON and text."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, date, datetime, timedelta

import jsonschema
import pytest

from scheduler.app.records import Meeting, RevokedCredential, StakeholderStatus
from scheduler.core.policy import Policy, load_policy_text
from scheduler.core.report import (
    Coverage,
    Rates,
    UserReport,
    as_json,
    build_report,
    owner_removed,
)
from scheduler.core.states import MeetingState
from scheduler.entrypoints.rendering import render_text

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # Monday
S = MeetingState

POLICY = """
owner: {email: alex@corp.example, name: Alex Doe, timezone: Europe/London}
calendar: {provider: google}
tiers:
  mentor: {every: 4w, mode: propose}
  peer:   {every: 8w, mode: auto}
stakeholders:
  - {email: sam@corp.example, name: Sam Lee, tier: mentor, department: Finance}
  - {email: kim@corp.example, name: Kim Ito, tier: peer, department: Finance}
  - {email: raj@corp.example, name: Raj Patel, tier: peer, department: Legal}
  - {email: ana@corp.example, name: Ana Ruiz, tier: peer}
  - {email: lee@corp.example, name: Lee Chan, tier: mentor, department: Legal,
     paused_until: 2026-04-01}
  - {email: bo@corp.example, name: Bo Berg, tier: peer, department: Legal}
"""


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy_text(POLICY, source="alex.yaml", fmt="yaml")


def meeting(
    email: str,
    state: MeetingState,
    start: datetime,
    *,
    mid: int = 1,
    minutes: int = 30,
    owner_note: str = "",
    group_name: str | None = None,
    attendees: tuple[str, ...] = (),
) -> Meeting:
    return Meeting(
        id=mid, user_id=1, stakeholder_email=email, kind="coffee", start=start,
        end=start + timedelta(minutes=minutes), state=state, mode="auto",
        idempotency_key=f"k{mid}", provider="google", provider_event_id=None, attempts=0,
        next_attempt_at=None, lease_until=None, last_error=None, reason="", created_at=NOW,
        updated_at=NOW, owner_note=owner_note, group_name=group_name, attendees=attendees,
    )  # fmt: skip


def build(policy: Policy, **kw: object) -> UserReport:
    args: dict[str, object] = {
        "now": NOW,
        "last_contacts": {},
        "meetings": [],
        "statuses": {},
        "revoked": [],
        "user_email": "Alex@Corp.Example",
    }
    args.update(kw)
    return build_report(policy, **args)  # type: ignore[arg-type]


def test_overdue_and_due_soon_with_due_dates(policy: Policy) -> None:
    report = build(
        policy,
        last_contacts={
            "sam@corp.example": NOW - timedelta(weeks=6),  # mentor 4w: 14 days late
            "kim@corp.example": NOW - timedelta(weeks=7),  # peer 8w: due in 7 days
            "raj@corp.example": NOW - timedelta(weeks=1),  # due in 7 weeks: neither
            "bo@corp.example": NOW - timedelta(weeks=6),  # due in exactly 14 days: due soon
        },
    )
    # Never met (ana) comes first: it has no date to be late from.
    assert [x.email for x in report.overdue] == ["ana@corp.example", "sam@corp.example"]
    sam = report.overdue[1]
    assert sam.due_at == NOW - timedelta(weeks=2)
    assert sam.days_overdue == 14
    assert sam.last_met == NOW - timedelta(weeks=6)
    assert report.overdue[0].last_met is None
    assert report.overdue[0].due_at == NOW
    assert [(x.email, x.due_at) for x in report.due_soon] == [
        ("kim@corp.example", NOW + timedelta(weeks=1)),
        ("bo@corp.example", NOW + timedelta(weeks=2)),
    ]
    assert report.due_soon[0].days_overdue == -7
    assert report.user_email == "alex@corp.example"


def test_completed_meeting_counts_as_last_met_and_next_meeting_is_upcoming(
    policy: Policy,
) -> None:
    completed_at = NOW - timedelta(days=3)
    meetings = [
        meeting("sam@corp.example", S.COMPLETED, completed_at, mid=1),
        meeting("kim@corp.example", S.BOOKED, NOW + timedelta(days=5), mid=2),
        meeting("kim@corp.example", S.ACCEPTED, NOW + timedelta(days=2), mid=3),
        meeting("kim@corp.example", S.CANCELLED, NOW + timedelta(days=1), mid=4),
        meeting("kim@corp.example", S.PROPOSED, NOW + timedelta(hours=1), mid=5),
    ]
    report = build(
        policy,
        last_contacts={"sam@corp.example": NOW - timedelta(weeks=10)},
        meetings=meetings,
    )
    lines = {x.email: x for x in report.stakeholders}
    assert lines["sam@corp.example"].last_met == completed_at + timedelta(minutes=30)
    assert "sam@corp.example" not in {x.email for x in report.overdue}
    kim = lines["kim@corp.example"]
    assert (kim.next_meeting, kim.next_meeting_state) == (NOW + timedelta(days=2), "accepted")
    # Never met but already booked: still overdue, with the meeting shown.
    assert kim in report.overdue


def test_coverage_by_tier_and_department(policy: Policy) -> None:
    report = build(
        policy,
        last_contacts={
            "sam@corp.example": NOW - timedelta(weeks=3),  # mentor, within 4w: met
            "kim@corp.example": NOW - timedelta(weeks=9),  # peer, past 8w: not met
            "raj@corp.example": NOW - timedelta(weeks=1),  # peer: met
            "lee@corp.example": NOW - timedelta(weeks=4),  # mentor, exactly 4w: due now, not met
        },
    )
    assert report.coverage_by_tier == (Coverage("mentor", 1, 2), Coverage("peer", 1, 4))
    assert report.coverage_by_department == (
        Coverage("(none)", 0, 1),
        Coverage("Finance", 1, 2),
        Coverage("Legal", 1, 3),
    )
    assert [c.percent for c in report.coverage_by_department] == [0.0, 50.0, 33.3]


def test_acceptance_and_decline_rates(policy: Policy) -> None:
    states = [S.ACCEPTED, S.COMPLETED, S.DECLINED, S.BOOKED, S.TENTATIVE, S.PROPOSED, S.FAILED]
    meetings = [
        meeting("raj@corp.example", st, NOW - timedelta(days=i + 1), mid=i)
        for i, st in enumerate(states)
    ]
    rates = build(policy, meetings=meetings).rates
    assert rates == Rates(sent=5, accepted=2, declined=1, awaiting=2)
    assert (rates.acceptance_rate, rates.decline_rate) == (0.4, 0.2)
    assert build(policy).rates.acceptance_rate is None


def test_paused_by_policy_service_and_backoff_leave_the_due_lists(policy: Policy) -> None:
    statuses = {
        "kim@corp.example": StakeholderStatus(
            1, "kim@corp.example", paused_reason="3 invites unanswered in a row"
        ),
        "raj@corp.example": StakeholderStatus(
            1,
            "raj@corp.example",
            backoff_until=NOW + timedelta(days=20),
            last_declined_at=NOW - timedelta(days=8),
        ),
        # An expired service pause no longer counts.
        "bo@corp.example": StakeholderStatus(
            1, "bo@corp.example", paused_reason="old", paused_until=NOW - timedelta(days=1)
        ),
    }
    report = build(policy, statuses=statuses)
    paused = {(p.email, p.source, p.until, p.reason) for p in report.paused}
    assert paused == {
        ("lee@corp.example", "policy", date(2026, 4, 1), "paused in the policy file"),
        ("kim@corp.example", "service", None, "3 invites unanswered in a row"),
        (
            "raj@corp.example",
            "backoff",
            NOW + timedelta(days=20),
            "declined on 2026-02-22; backing off",
        ),
    }
    assert {x.email for x in report.overdue} == {
        "sam@corp.example",
        "ana@corp.example",
        "bo@corp.example",
    }


def test_credentials_of_this_user_only(policy: Policy) -> None:
    revoked = [
        RevokedCredential("alex@corp.example", "google", "invalid_grant", NOW - timedelta(days=2)),
        RevokedCredential("other@corp.example", "google", "invalid_grant", NOW),
        RevokedCredential("alex@corp.example", "microsoft", "AADSTS50173", NOW),
    ]
    issues = build(policy, revoked=revoked).credentials
    assert [(c.provider, c.reason) for c in issues] == [
        ("google", "invalid_grant"),
        ("microsoft", "AADSTS50173"),
    ]
    assert issues[0].fix == "reconnect: goodwill connect google --user alex@corp.example"
    assert "the policy now uses google" in issues[1].fix


def obj(*keys: str, **typed: object) -> dict[str, object]:
    """An object schema with exactly ``keys`` (``typed`` gives some of them a schema)."""
    return {
        "type": "object",
        "required": list(keys),
        "additionalProperties": False,
        "properties": {k: typed.get(k, {}) for k in keys},
    }


def array_of(item: object) -> dict[str, object]:
    return {"type": "array", "items": item}


NULLABLE_TIME = {"type": ["string", "null"]}
LINE = obj(
    "email", "name", "tier", "department", "last_met", "due_at", "days_overdue", "next_meeting",
    "next_meeting_state", "kind", "late_at", "days_late",
    email={"type": "string"}, last_met=NULLABLE_TIME, due_at={"type": "string"},
    days_overdue={"type": "integer"}, next_meeting=NULLABLE_TIME,
    kind={"enum": ["coffee", "lunch"]}, late_at={"type": "string"}, days_late={"type": "integer"},
)  # fmt: skip
INSIGHTS = obj(
    "power", "warnings", "outside_department", "mentor_suggestions",
    power=array_of(obj("source", "stakeholders", stakeholders=array_of({"type": "string"}))),
    warnings=array_of({"type": "string"}),
    outside_department=obj(
        "department", "days", "meetings", "outside", "unknown", "share",
        department={"type": ["string", "null"]}, share={"type": ["number", "null"]},
    ),
    mentor_suggestions=array_of(obj("email", "name", "completed", "months", "text")),
)  # fmt: skip
TO_MEET = obj(
    "email", "name", "via", "via_name", "status", "meeting_start", "meeting_state",
    email={"type": "string"}, via={"type": "string"},
    status={"enum": [
        "introduction_booked", "introduction_proposed", "note_on_next_coffee",
        "waiting_for_coffee", "waiting_for_via",
    ]},
    meeting_start=NULLABLE_TIME, meeting_state={"type": ["string", "null"]},
)  # fmt: skip
COVERAGE = array_of(obj("group", "met", "total", "percent", percent={"type": "number"}))
RATE = {"type": ["number", "null"]}
#: The shape docs/operations.md documents for `goodwill report --json`.
REPORT_SCHEMA = obj(
    "version",
    "reports",
    "owner_removed",
    version={"const": 1},
    reports=array_of(
        obj(
            "user",
            "generated_at",
            "timezone",
            "overdue",
            "due_soon",
            "stakeholders",
            "coverage",
            "rates",
            "paused",
            "credentials",
            "held_replies",
            "conflicts",
            "insights",
            "to_meet",
            "below_quorum",
            overdue=array_of(LINE),
            due_soon=array_of(LINE),
            stakeholders=array_of(LINE),
            coverage=obj("by_tier", "by_department", by_tier=COVERAGE, by_department=COVERAGE),
            rates=obj(
                "sent",
                "accepted",
                "declined",
                "awaiting",
                "acceptance_rate",
                "decline_rate",
                acceptance_rate=RATE,
                decline_rate=RATE,
            ),
            paused=array_of(obj("email", "source", "until", "reason")),
            credentials=array_of(obj("provider", "reason", "since", "fix")),
            held_replies=array_of(
                obj(
                    "id",
                    "meeting_id",
                    "sender",
                    "stakeholder",
                    "answer",
                    "meeting_start",
                    "received_at",
                    "reason",
                    "accept",
                    id={"type": "integer"},
                    meeting_start=NULLABLE_TIME,
                    received_at={"type": "string"},
                    accept={"type": "string"},
                )
            ),
            conflicts=array_of(
                obj(
                    "meeting_id",
                    "stakeholder",
                    "start",
                    "note",
                    "at",
                    meeting_id={"type": "integer"},
                    start={"type": "string"},
                    at={"type": "string"},
                )
            ),
            insights=INSIGHTS,
            to_meet=array_of(TO_MEET),
            below_quorum=array_of(
                obj(
                    "meeting_id",
                    "group",
                    "kind",
                    "start",
                    "declined",
                    "invited",
                    "quorum",
                    "note",
                    meeting_id={"type": "integer"},
                    start={"type": "string"},
                    declined={"type": "integer"},
                )
            ),
        )
    ),
    owner_removed=array_of(
        obj(
            "user",
            "policy_path",
            "since",
            "cancel_after",
            "meetings",
            meetings=array_of(obj("id", "stakeholder", "start", "end", "state")),
        )
    ),
)


def test_json_shape_round_trips_and_matches_the_documented_schema(policy: Policy) -> None:
    report = build(
        policy,
        last_contacts={"sam@corp.example": NOW - timedelta(weeks=6)},
        meetings=[meeting("kim@corp.example", S.BOOKED, NOW + timedelta(days=1))],
        revoked=[RevokedCredential("alex@corp.example", "google", "invalid_grant", NOW)],
    )
    data = json.loads(json.dumps(as_json([report])))
    jsonschema.validate(data, REPORT_SCHEMA)
    [one] = data["reports"]
    assert one["user"] == "alex@corp.example"
    sam = next(x for x in one["overdue"] if x["email"] == "sam@corp.example")
    assert sam["due_at"] == "2026-02-16T09:00:00+00:00"
    assert sam["days_overdue"] == 14
    assert one["paused"] == [
        {"email": "lee@corp.example", "source": "policy", "until": "2026-04-01",
         "reason": "paused in the policy file"},
    ]  # fmt: skip
    assert one["credentials"][0]["since"] == NOW.isoformat()


def test_text_rendering_has_tables_in_the_owners_zone(policy: Policy) -> None:
    report = build(
        policy,
        last_contacts={"sam@corp.example": NOW - timedelta(weeks=6)},
        meetings=[meeting("kim@corp.example", S.BOOKED, NOW + timedelta(days=1, hours=1))],
        revoked=[RevokedCredential("alex@corp.example", "google", "invalid_grant", NOW)],
    )
    text = render_text([report, report])
    assert text.count("Coverage report for alex@corp.example") == 2
    assert "Overdue (5)" in text
    # 10:00 UTC on 3 March is 10:00 in London (GMT); the row carries the state.
    assert "Tue 2026-03-03 10:00 (booked)" in text
    assert "14 d late" in text
    assert "never met   2026-03-02  due now" in text
    assert "\n  mentor  0    2      0%\n" in text
    assert "Invites: 1 sent, 0 accepted (0%), 0 declined (0%), 1 awaiting an answer" in text
    assert "google: revoked since 2026-03-02 (invalid_grant)" in text
    assert render_text([]) == "No users.\n"


def test_a_removed_owner_lists_their_open_meetings_ahead_in_json_and_text(policy: Policy) -> None:
    since = NOW - timedelta(hours=2)
    removed = owner_removed(
        "Jo@Corp.Example",
        "policies/jo.yaml",
        since=since,
        grace=timedelta(days=1),
        now=NOW,
        meetings=[
            meeting("kim@corp.example", S.BOOKED, NOW + timedelta(days=2), mid=3),
            meeting("sam@corp.example", S.PROPOSED, NOW + timedelta(days=1), mid=4),
            meeting("raj@corp.example", S.BOOKED, NOW - timedelta(days=1), mid=5),  # past
            meeting("ana@corp.example", S.CANCELLED, NOW + timedelta(days=3), mid=6),  # closed
        ],
    )
    data = json.loads(json.dumps(as_json([build(policy)], [removed])))
    jsonschema.validate(data, REPORT_SCHEMA)
    [entry] = data["owner_removed"]
    assert entry["user"] == "jo@corp.example"
    assert entry["since"] == since.isoformat()
    assert entry["cancel_after"] == (since + timedelta(days=1)).isoformat()
    assert [(m["id"], m["state"]) for m in entry["meetings"]] == [(4, "proposed"), (3, "booked")]
    assert as_json([build(policy)])["owner_removed"] == []

    text = render_text([], [removed], now=NOW)
    assert "Owner removed: jo@corp.example — policies/jo.yaml is gone since" in text
    assert "cancelled at Tue 2026-03-03 07:00 UTC unless the file comes back" in text
    assert "kim@corp.example" in text
    assert "raj@corp.example" not in text
    later = render_text([], [removed], now=NOW + timedelta(days=2))
    assert "being cancelled (the grace period is over)" in later


def test_naive_now_is_refused(policy: Policy) -> None:
    with pytest.raises(ValueError, match="aware"):
        build(policy, now=datetime(2026, 3, 2, 9, 0))


def test_a_pending_proposal_is_the_next_meeting_when_nothing_is_booked(policy: Policy) -> None:
    meetings = [meeting("kim@corp.example", S.PROPOSED, NOW + timedelta(days=3), mid=7)]
    report = build(policy, last_contacts={}, meetings=meetings)
    kim = {x.email: x for x in report.stakeholders}["kim@corp.example"]
    assert (kim.next_meeting, kim.next_meeting_state) == (NOW + timedelta(days=3), "proposed")


# -- introductions: an unmet `to_meet` stakeholder is not overdue ------------------------------

INTRO_POLICY = """
owner: {email: alex@corp.example, name: Alex Doe, timezone: Europe/London}
calendar: {provider: google}
tiers:
  mentor: {every: 4w, mode: propose}
  peer:   {every: 8w, mode: auto}
stakeholders:
  - {email: sam@corp.example, name: Sam Lee, tier: mentor, department: Finance}
  - {email: nina@corp.example, name: Nina Park, tier: peer, department: Research,
     status: to_meet, via: sam@corp.example}
  - {email: ola@corp.example, name: Ola Berg, tier: peer, department: Research,
     status: to_meet, via: nina@corp.example}
"""
NINA, SAM = "nina@corp.example", "sam@corp.example"
NOTE = "ask Sam to introduce you to Nina Park (nina@corp.example)"


@pytest.fixture(scope="module")
def intro() -> Policy:
    return load_policy_text(INTRO_POLICY, source="alex.yaml", fmt="yaml")


def _to_meet(report: UserReport) -> dict[str, tuple[str, str, datetime | None, str | None]]:
    return {x.email: (x.via, x.status, x.meeting_start, x.meeting_state) for x in report.to_meet}


def test_an_unmet_to_meet_stakeholder_is_neither_overdue_nor_counted(intro: Policy) -> None:
    report = build(intro, last_contacts={SAM: NOW - timedelta(weeks=1)})
    assert report.overdue == ()
    assert report.due_soon == ()
    # Out of the denominators: Research has nobody left to count.
    assert report.coverage_by_tier == (Coverage("mentor", 1, 1),)
    assert report.coverage_by_department == (Coverage("Finance", 1, 1),)
    assert _to_meet(report) == {
        NINA: (SAM, "waiting_for_coffee", None, None),
        # Ola is introduced by Nina, whom the owner has not met either: Nina comes first.
        "ola@corp.example": (NINA, "waiting_for_via", None, None),
    }
    assert [x.via_name for x in report.to_meet] == ["Sam Lee", "Nina Park"]
    # Still listed among every stakeholder.
    assert NINA in {x.email for x in report.stakeholders}


def test_the_note_rides_on_the_owners_own_next_coffee_with_via(intro: Policy) -> None:
    meetings = [
        meeting(SAM, S.BOOKED, NOW + timedelta(days=1), mid=1),  # proposed before: no note
        meeting(SAM, S.PROPOSED, NOW + timedelta(days=3), mid=2, owner_note=NOTE),
        meeting(SAM, S.CANCELLED, NOW + timedelta(days=2), mid=3, owner_note=NOTE),
        meeting(SAM, S.PROPOSED, NOW - timedelta(days=2), mid=4, owner_note=NOTE),  # past
    ]
    report = build(intro, meetings=meetings)
    assert _to_meet(report)[NINA] == (
        SAM, "note_on_next_coffee", NOW + timedelta(days=3), "proposed",
    )  # fmt: skip
    # Sam (an owner too) booked a coffee with Alex sooner: the note rides on that one, whoever
    # booked it (Sam's own notes on it are Sam's, never read).
    theirs = [meeting(SAM, S.BOOKED, NOW + timedelta(hours=5), mid=9, owner_note="Sam's")]
    report = build(intro, meetings=meetings, their_meetings=theirs)
    assert _to_meet(report)[NINA] == (
        SAM, "note_on_next_coffee", NOW + timedelta(hours=5), "booked",
    )  # fmt: skip
    assert report.to_meet[0].note == NOTE


def test_an_introduction_meeting_proposed_then_booked(intro: Policy) -> None:
    def intro_meeting(state: MeetingState, start: datetime, mid: int) -> Meeting:
        return meeting(SAM, state, start, mid=mid, group_name="introduction", attendees=(SAM, NINA))

    coffee = meeting(SAM, S.PROPOSED, NOW + timedelta(days=3), mid=2, owner_note=NOTE)
    proposed = intro_meeting(S.PROPOSED, NOW + timedelta(days=4), 5)
    report = build(intro, meetings=[coffee, proposed])
    assert _to_meet(report)[NINA] == (
        SAM, "introduction_proposed", NOW + timedelta(days=4), "proposed",
    )  # fmt: skip
    booked = intro_meeting(S.ACCEPTED, NOW + timedelta(days=6), 6)
    report = build(intro, meetings=[coffee, proposed, booked])
    assert _to_meet(report)[NINA] == (
        SAM, "introduction_booked", NOW + timedelta(days=6), "accepted",
    )  # fmt: skip
    # A cancelled one, or one for somebody else, says nothing about Nina.
    gone = intro_meeting(S.CANCELLED, NOW + timedelta(days=4), 7)
    other = meeting(
        SAM, S.BOOKED, NOW + timedelta(days=5), mid=8, group_name="introduction",
        attendees=(SAM, "ola@corp.example"),
    )  # fmt: skip
    report = build(intro, meetings=[coffee, gone, other])
    assert _to_meet(report)[NINA][1] == "note_on_next_coffee"


def test_once_a_meeting_with_them_completed_they_are_an_ordinary_stakeholder(
    intro: Policy,
) -> None:
    # The introduction completed nine weeks ago (its end is recorded as a contact with each
    # attendee): peer every 8w, so Nina is a week late now.
    report = build(
        intro,
        last_contacts={SAM: NOW - timedelta(weeks=1), NINA: NOW - timedelta(weeks=9)},
    )
    assert [x.email for x in report.overdue] == [NINA]
    assert report.coverage_by_tier == (Coverage("mentor", 1, 1), Coverage("peer", 0, 1))
    # Ola's introduction through Nina can now be asked for.
    assert _to_meet(report) == {"ola@corp.example": (NINA, "waiting_for_coffee", None, None)}


def test_to_meet_in_json_and_text(intro: Policy) -> None:
    meetings = [meeting(SAM, S.PROPOSED, NOW + timedelta(days=3, hours=5), mid=2, owner_note=NOTE)]
    report = build(intro, last_contacts={SAM: NOW - timedelta(weeks=1)}, meetings=meetings)
    data = json.loads(json.dumps(as_json([report])))
    jsonschema.validate(data, REPORT_SCHEMA)
    [one] = data["reports"]
    assert one["overdue"] == []
    assert one["to_meet"][0] == {
        "email": NINA, "name": "Nina Park", "via": SAM, "via_name": "Sam Lee",
        "status": "note_on_next_coffee", "meeting_start": "2026-03-05T14:00:00+00:00",
        "meeting_state": "proposed",
    }  # fmt: skip
    assert NINA in {x["email"] for x in one["stakeholders"]}

    text = render_text([report])
    overdue = text.split("Overdue (0)")[1].split("To meet")[0]
    assert NINA not in overdue
    assert "To meet through an introduction (2)" in text
    assert "not overdue and not counted in coverage" in text
    section = text.split("To meet through an introduction (2)")[1].split("Coverage by")[0]
    assert NINA in section
    assert "Sam Lee" in section
    # 14:00 UTC on 5 March is 14:00 in London.
    assert f"{NOTE} — at your coffee with Sam Lee on Thu 2026-03-05 14:00 (proposed)" in section
    assert "waiting: Nina Park is to be met through an introduction first" in section
    assert (
        "Coverage by tier (met within their interval; "
        "2 to meet through an introduction not counted)" in text
    )
    # Nobody to meet: the section is left out and the coverage titles stay as they were.
    plain = render_text(
        [build(intro, last_contacts={SAM: NOW, NINA: NOW, "ola@corp.example": NOW})]
    )
    assert "To meet through an introduction" not in plain
    assert "Coverage by tier (met within their interval)\n" in plain


def test_the_note_rides_on_the_coffee_via_booked_with_the_owner(intro: Policy) -> None:
    # Sam, an owner himself, booked a coffee with Alex; Alex's own proposal to Sam (which
    # carried the note) was withdrawn. The note goes on Sam's booked coffee, as Alex's own
    # note: Sam's private notes on his meeting are never shown to Alex.
    theirs = [
        meeting(SAM, S.PROPOSED, NOW + timedelta(hours=2), mid=8),  # Sam's, not an invite yet
        meeting(SAM, S.BOOKED, NOW + timedelta(days=5), mid=9, owner_note="Sam's own note"),
    ]
    withdrawn = meeting(SAM, S.CANCELLED, NOW + timedelta(days=3), mid=2, owner_note=NOTE)
    report = build(intro, meetings=[withdrawn], their_meetings=theirs)
    assert _to_meet(report)[NINA] == (SAM, "note_on_next_coffee", NOW + timedelta(days=5), "booked")
    [line] = [x for x in report.to_meet if x.email == NINA]
    text = line.state_text("Sat 7 Mar")
    assert text.startswith(f"{NOTE} — at your coffee with Sam Lee on Sat 7 Mar")
    assert "Sam's own note" not in text
    assert "goes on your next" not in text
    # Whoever booked it, the next coffee with Sam is where the note goes.
    own = meeting(SAM, S.PROPOSED, NOW + timedelta(days=6), mid=3, owner_note=NOTE)
    report = build(intro, meetings=[withdrawn, own], their_meetings=theirs)
    assert _to_meet(report)[NINA][2] == NOW + timedelta(days=5)
    report = build(intro, meetings=[withdrawn, own], their_meetings=theirs[:1])
    assert _to_meet(report)[NINA][1:] == (
        "note_on_next_coffee", NOW + timedelta(days=6), "proposed",
    )  # fmt: skip


def test_the_next_meeting_skips_a_group_meeting_the_person_declined(policy: Policy) -> None:
    kim = "kim@corp.example"
    lunch = _group(kim)
    coffee = meeting(kim, S.BOOKED, NOW + timedelta(days=4), mid=2)
    report = build(policy, meetings=[lunch, coffee])
    [line] = [x for x in report.stakeholders if x.email == kim]
    assert (line.next_meeting, line.next_meeting_state) == (NOW + timedelta(days=4), "booked")
    # Not declined: the lunch is her next meeting.
    raj = "raj@corp.example"
    [line] = [x for x in build(policy, meetings=[_group(raj)]).stakeholders if x.email == raj]
    assert line.next_meeting == NOW + timedelta(days=1)


def _group(first: str) -> Meeting:
    import dataclasses

    kim, raj = "kim@corp.example", "raj@corp.example"
    return dataclasses.replace(
        meeting(first, S.BOOKED, NOW + timedelta(days=1), mid=1),
        group_name="lunch-club",
        attendees=(first, *(e for e in (kim, raj) if e != first)),
        presenter=first,
        attendee_status=((kim, "declined"), (raj, "accepted")),
    )


def test_a_booked_group_meeting_below_its_quorum_is_told_in_text_and_json(
    policy: Policy,
) -> None:
    from scheduler.core.report import BelowQuorumLine

    ahead = BelowQuorumLine(9, "design-data-lunch", "lunch", NOW + timedelta(days=7), 2, 3, 2)
    report = dataclasses.replace(build(policy), below_quorum=(ahead,))
    text = render_text([report])
    assert "Below quorum (1)" in text
    assert (
        "  Mon 2026-03-09 09:00 lunch design-data-lunch: 2 of 3 declined; it needs 2 attending "
        "to stand — decide whether to keep or cancel it"
    ) in text.splitlines()
    data = json.loads(json.dumps(as_json([report])))
    jsonschema.validate(data, REPORT_SCHEMA)
    (row,) = data["reports"][0]["below_quorum"]
    assert (row["meeting_id"], row["declined"], row["invited"], row["quorum"]) == (9, 2, 3, 2)
    assert row["start"] == "2026-03-09T09:00:00+00:00"
    assert "Below quorum" not in render_text([build(policy)])
