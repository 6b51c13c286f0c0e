"""Following invites once they are out (``sync_responses``, ``record_reply``), on every store."""

from __future__ import annotations

from datetime import timedelta

import pytest

from scheduler.app import conflicts, responses
from scheduler.app.records import Meeting
from scheduler.core.errors import (
    AuthorizationRevoked,
    CalendarUnavailable,
    InvalidRequest,
    ProviderUnavailable,
    RateLimited,
)
from scheduler.core.model import AttendeeStatus
from scheduler.core.states import MeetingState
from tests.usecase.fakes import FAKE_PROVIDER
from tests.usecase.world import ALEX, JO, KIM, SAM, SAM_POLICY, World, alex_policy, skip_codes

S = MeetingState
A = AttendeeStatus


def _booked_with(world: World, stakeholder: str = KIM) -> Meeting:
    world.plan()
    world.book_all()
    return world.only(ALEX, stakeholder, S.BOOKED)


def _event_id(m: Meeting) -> str:
    assert m.provider_event_id is not None
    return m.provider_event_id


def _sync(world: World, owner: str = ALEX) -> int:
    return responses.sync_responses(world.p, world.user_id(owner))


def test_an_acceptance_is_mirrored_once(world: World) -> None:
    m = _booked_with(world)
    world.calendar.respond(_event_id(m), A.ACCEPTED)
    assert _sync(world) == 1
    assert world.meeting(m.id).state is S.ACCEPTED
    assert _sync(world) == 0  # nothing new
    assert world.store.audit_trail(m.id)[-1].detail == "attendee answered"


def test_a_decline_is_mirrored_and_backs_the_cadence_off(world: World) -> None:
    m = _booked_with(world)
    world.advance(timedelta(hours=2))
    world.calendar.respond(_event_id(m), A.DECLINED)
    _sync(world)
    assert world.meeting(m.id).state is S.DECLINED
    status = world.store.get_stakeholder_status(world.user_id(), KIM)
    now = world.clock.now()
    assert status.last_declined_at == now
    assert status.backoff_until == now + timedelta(weeks=4)  # half of Kim's 8-week interval
    world.advance(timedelta(days=3))
    assert skip_codes(world.plan())[KIM] == "backoff"
    assert world.meetings(ALEX, S.APPROVED, with_=KIM) == []


def test_a_declined_invite_is_still_followed_when_the_attendee_changes_their_mind(
    world: World,
) -> None:
    m = _booked_with(world)
    world.calendar.respond(_event_id(m), A.DECLINED)
    _sync(world)
    world.calendar.respond(_event_id(m), A.ACCEPTED)
    assert _sync(world) == 1
    assert world.meeting(m.id).state is S.ACCEPTED


def test_an_event_cancelled_at_the_provider_cancels_the_meeting(world: World) -> None:
    m = _booked_with(world)
    world.calendar.cancel(_event_id(m))
    assert _sync(world) == 1
    assert world.meeting(m.id).state is S.CANCELLED
    assert world.store.audit_trail(m.id)[-1].detail == "cancelled at the provider"


def test_an_event_gone_from_the_provider_cancels_the_meeting(world: World) -> None:
    m = _booked_with(world)
    world.calendar.delete(_event_id(m))
    _sync(world)
    assert world.meeting(m.id).state is S.CANCELLED
    assert "ResourceGone" in world.store.audit_trail(m.id)[-1].detail


def test_a_moved_event_is_followed(world: World) -> None:
    m = _booked_with(world)
    new_start = m.start + timedelta(days=1, hours=-1)
    world.calendar.move(_event_id(m), new_start, new_start + timedelta(minutes=45))
    assert _sync(world) == 1
    moved = world.meeting(m.id)
    assert (moved.start, moved.end, moved.state) == (
        new_start,
        new_start + timedelta(minutes=45),
        S.BOOKED,
    )
    assert world.store.audit_trail(m.id)[-1].detail.startswith("moved from")
    assert _sync(world) == 0


@pytest.mark.parametrize("answer", [A.ACCEPTED, A.TENTATIVE])
def test_a_meeting_that_took_place_completes_and_counts_as_contact(
    world: World, answer: AttendeeStatus
) -> None:
    m = _booked_with(world)
    world.calendar.respond(_event_id(m), answer)
    _sync(world)
    world.advance_past(m.end)
    _sync(world)
    assert world.meeting(m.id).state is S.COMPLETED
    assert world.store.last_contacts(world.user_id())[KIM] == m.end
    assert skip_codes(world.plan())[KIM] == "not_due"


def test_completion_counts_for_both_sides_when_both_use_goodwill(world: World) -> None:
    world.write_policy(SAM, SAM_POLICY)
    world.plan(SAM)
    world.book_all()
    m = world.only(SAM, ALEX, S.BOOKED)
    world.calendar.respond(_event_id(m), A.ACCEPTED)
    world.advance_past(m.end)
    _sync(world, SAM)
    assert world.meeting(m.id).state is S.COMPLETED
    assert world.store.last_contacts(world.user_id(SAM)) == {ALEX: m.end}
    assert world.store.last_contacts(world.user_id(ALEX)) == {SAM: m.end}


def test_unanswered_invites_in_a_row_pause_the_stakeholder(world: World) -> None:
    for count in (1, 2):  # etiquette.max_unanswered: 2
        m = _booked_with(world, JO)
        world.advance_past(m.end)
        _sync(world)
        assert world.meeting(m.id).state is S.CANCELLED
        assert world.store.audit_trail(m.id)[-1].detail == "unanswered"
        status = world.store.get_stakeholder_status(world.user_id(), JO)
        assert status.unanswered_in_row == count
    assert status.paused_reason == "2 invites in a row went unanswered"
    assert status.paused_until == world.clock.now() + timedelta(weeks=12)
    assert skip_codes(world.plan())[JO] == "paused"
    assert world.meetings(ALEX, S.APPROVED, with_=JO) == []


def test_an_answer_resets_the_unanswered_count(world: World) -> None:
    m = _booked_with(world, JO)
    world.advance_past(m.end)
    _sync(world)
    assert world.store.get_stakeholder_status(world.user_id(), JO).unanswered_in_row == 1
    again = _booked_with(world, JO)
    world.calendar.respond(_event_id(again), A.ACCEPTED)
    _sync(world)
    assert world.store.get_stakeholder_status(world.user_id(), JO).unanswered_in_row == 0


def test_a_transient_provider_error_is_raised_and_changes_nothing(world: World) -> None:
    m = _booked_with(world)
    world.calendar.respond(_event_id(m), A.ACCEPTED)
    world.calendar.fail_next("event_state", ProviderUnavailable("503", provider=FAKE_PROVIDER))
    with pytest.raises(ProviderUnavailable):
        _sync(world)
    assert world.meeting(m.id).state is S.BOOKED
    assert _sync(world) == 1  # the retry goes through


def test_an_emailed_reply_is_recorded_at_the_provider_and_followed(world: World) -> None:
    m = _booked_with(world)
    result = responses.record_reply(world.p, _event_id(m), KIM.upper(), A.ACCEPTED)
    assert (result.meeting_id, result.state, result.detail) == (m.id, S.ACCEPTED, "applied")
    assert world.calendar.event(_event_id(m)).response is A.ACCEPTED
    assert world.meeting(m.id).state is S.ACCEPTED


def test_an_emailed_reply_older_than_the_invite_is_ignored(world: World) -> None:
    m = _booked_with(world)
    world.calendar.move(_event_id(m), m.start + timedelta(hours=1), m.end + timedelta(hours=1))
    result = responses.record_reply(world.p, _event_id(m), KIM, A.DECLINED, sequence=0)
    assert result.detail == "ignored: older than the invite"
    assert world.meeting(m.id).state is S.BOOKED


def test_emailed_replies_from_strangers_or_for_unknown_events_change_nothing(
    world: World,
) -> None:
    m = _booked_with(world)
    stranger = responses.record_reply(world.p, _event_id(m), "eve@corp.example", A.DECLINED)
    assert stranger.detail == "the reply is not from the invited attendee"
    unknown = responses.record_reply(world.p, "evt-404", KIM, A.DECLINED)
    assert (unknown.meeting_id, unknown.detail) == (None, "no goodwill meeting with this UID")
    assert world.meeting(m.id).state is S.BOOKED
    assert world.calendar.calls["set_attendee_status"] == 0


def test_an_invite_cancelled_while_its_answer_is_followed_stays_cancelled(world: World) -> None:
    # Given Kim accepted and the slot has passed
    m = _booked_with(world)
    world.calendar.respond(_event_id(m), A.ACCEPTED)
    world.advance_past(m.end)

    def owner_cancels() -> None:  # Alex cancels it after sync listed the meetings to follow
        world.store.transition(m.id, S.CANCELLED, actor="user", now=world.clock.now())

    world.calendar.during_next("event_state", owner_cancels)
    # When sync follows the answers, it must leave the cancelled meeting alone
    _sync(world)
    assert world.meeting(m.id).state is S.CANCELLED
    assert KIM not in world.store.last_contacts(world.user_id())


def test_answers_are_read_with_one_listing_where_the_provider_offers_one(world: World) -> None:
    """A provider that lists (Google) serves every followed meeting's answer from one listing;
    what the listing does not find (a cancelled or moved event) is asked one by one."""
    booked = _five_booked(world)
    assert len(booked) >= 3, "the scenario needs three followed meetings"
    for m in booked:
        world.calendar.respond(_event_id(m), A.ACCEPTED)
    unlisted = _event_id(booked[0])
    calendar = world.calendar
    listings: list[list[tuple[str, str]]] = []
    inner = 0

    def listed_event_states(organizer, wanted, window):  # type: ignore[no-untyped-def]
        nonlocal inner
        listings.append(list(wanted))
        found = {}
        for event_id, email in wanted:
            if event_id != unlisted:
                inner += 1
                found[(event_id, email)] = calendar.event_state(organizer, event_id, email)
        return found

    calendar.listed_event_states = listed_event_states  # type: ignore[attr-defined]
    asked_before = calendar.calls["event_state"]

    assert _sync(world) == len(booked)

    assert len(listings) == 1
    assert sorted(listings[0]) == sorted((_event_id(m), m.stakeholder_email) for m in booked)
    assert calendar.calls["event_state"] - asked_before - inner == 1  # the unlisted one
    assert all(world.meeting(m.id).state is S.ACCEPTED for m in booked)


def test_few_followed_meetings_are_asked_one_by_one(world: World) -> None:
    m = _booked_with(world)
    listings: list[object] = []
    listing = lambda *a: listings.append(a) or {}  # noqa: E731
    world.calendar.listed_event_states = listing  # type: ignore[attr-defined]
    world.calendar.respond(_event_id(m), A.ACCEPTED)
    assert _sync(world) == 1
    assert listings == []
    assert world.meeting(m.id).state is S.ACCEPTED


@pytest.mark.parametrize(
    "error",
    [
        AuthorizationRevoked("invalid_grant", provider=FAKE_PROVIDER, status=400),
        CalendarUnavailable("403 delegation removed", provider=FAKE_PROVIDER, status=403),
    ],
    ids=["revoked", "unavailable"],
)
def test_an_owner_level_failure_cancels_nothing(world: World, error: Exception) -> None:
    """A revoked grant or an unreadable calendar says nothing about the events: the meetings
    stay as they are (their events are still on everyone's calendar) and the error is raised."""
    world.plan()
    world.book_all()
    booked = world.meetings(ALEX, S.BOOKED)
    assert booked
    world.calendar.fail_next("event_state", error, times=10)
    with pytest.raises(type(error)):
        _sync(world)
    assert [world.meeting(m.id).state for m in booked] == [S.BOOKED] * len(booked)


def test_an_unreadable_answer_skips_that_meeting_only(world: World) -> None:
    world.plan()
    world.book_all()
    first, second = world.meetings(ALEX, S.BOOKED)[:2]
    world.calendar.respond(_event_id(second), A.ACCEPTED)
    world.calendar.fail_next(
        "event_state", InvalidRequest("400 bad id", provider=FAKE_PROVIDER, status=400)
    )
    assert _sync(world) == 1
    assert (
        world.meeting(first.id).state is S.BOOKED
    )  # not cancelled: the read failed, not the event
    assert world.meeting(second.id).state is S.ACCEPTED


def _five_booked(world: World) -> list[Meeting]:
    jo = "  - {email: jo@corp.example, name: Jo Park, tier: peer}\n"
    more = "".join(f"  - {{email: {n}@corp.example, name: {n.title()} Ray, tier: peer}}\n"
                   for n in ("lee", "max", "ola"))  # fmt: skip
    text = alex_policy().replace("max_per_day: 1", "max_per_day: 3").replace(jo, jo + more)
    world.write_policy(ALEX, text.replace("max_per_week: 3", "max_per_week: 6"))
    world.plan()
    world.book_all()
    return world.meetings(ALEX, S.BOOKED)


def test_a_listing_that_fails_falls_back_to_reads_one_by_one(world: World) -> None:
    booked = _five_booked(world)
    for m in booked:
        world.calendar.respond(_event_id(m), A.ACCEPTED)

    def listing_times_out(*_: object) -> dict[tuple[str, str], object]:
        raise ProviderUnavailable("timed out", provider=FAKE_PROVIDER)

    world.calendar.listed_event_states = listing_times_out  # type: ignore[attr-defined]
    assert _sync(world) == len(booked)
    assert all(world.meeting(m.id).state is S.ACCEPTED for m in booked)


def test_a_rate_limited_listing_is_raised(world: World) -> None:
    booked = _five_booked(world)

    def rate_limited(*_: object) -> dict[tuple[str, str], object]:
        raise RateLimited("429", provider=FAKE_PROVIDER, status=429)

    world.calendar.listed_event_states = rate_limited  # type: ignore[attr-defined]
    with pytest.raises(RateLimited):
        _sync(world)
    assert all(world.meeting(m.id).state is S.BOOKED for m in booked)


def test_the_sync_pass_stops_quietly_on_a_revoked_grant(world: World) -> None:
    booked = _five_booked(world)
    revoked = AuthorizationRevoked("invalid_grant", provider=FAKE_PROVIDER, status=400)
    world.calendar.fail_next("event_state", revoked, times=10)
    assert conflicts.sync_pass(world.p, world.user_id()) == 0
    assert all(world.meeting(m.id).state is S.BOOKED for m in booked)
