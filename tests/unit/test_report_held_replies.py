"""Held e-mailed answers in the coverage report: text and the ``held_replies`` JSON key."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

from scheduler.app.records import HeldReply, HeldReplyState
from scheduler.core.model import AttendeeStatus
from scheduler.core.policy import Policy, load_policy_text
from scheduler.core.report import as_json
from scheduler.entrypoints.rendering import render_text
from tests.unit.test_report import NOW, POLICY, S, build, meeting


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy_text(POLICY, source="alex.yaml", fmt="yaml")


def _held(hid: int, meeting_id: int | None) -> HeldReply:
    return HeldReply(
        id=hid,
        meeting_id=meeting_id,
        user_id=1,
        received_at=NOW,
        sender="kim.ito@outlook.example",
        attendee="kim@corp.example",
        answer=AttendeeStatus.DECLINED,
        uid="gwabc@goodwill",
        sequence=0,
        reason="it was sent by kim.ito@outlook.example, not by kim@corp.example",
        state=HeldReplyState.HELD,
        decided_at=None,
    )


def test_a_held_reply_is_shown_with_the_command_that_applies_it(policy: Policy) -> None:
    start = NOW + timedelta(days=2)
    report = build(
        policy,
        meetings=[meeting("kim@corp.example", S.BOOKED, start, mid=5)],
        held_replies=[_held(9, 5)],
    )
    [line] = report.held_replies
    assert (line.id, line.stakeholder, line.meeting_start) == (9, "kim@corp.example", start)
    text = render_text([report])
    assert "Replies not applied (1)" in text
    assert (
        "a reply from kim.ito@outlook.example about your meeting with kim@corp.example on "
        "Wed 2026-03-04 09:00 (declined) was not applied" in text
    )
    assert "to apply it: goodwill replies --accept 9" in text
    [one] = json.loads(json.dumps(as_json([report])))["reports"]
    assert one["held_replies"] == [
        {
            "id": 9,
            "meeting_id": 5,
            "sender": "kim.ito@outlook.example",
            "stakeholder": "kim@corp.example",
            "answer": "declined",
            "meeting_start": start.isoformat(),
            "received_at": NOW.isoformat(),
            "reason": "it was sent by kim.ito@outlook.example, not by kim@corp.example",
            "accept": "goodwill replies --accept 9",
        }
    ]


def test_without_held_replies_the_report_is_as_before(policy: Policy) -> None:
    report = build(policy)
    assert report.held_replies == ()
    assert "Replies not applied" not in render_text([report])
    assert as_json([report])["reports"][0]["held_replies"] == []
