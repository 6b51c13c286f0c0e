"""The fake calendar keeps the provider ports' promises (``scheduler.core.ports``).

The use-case tests lean on these: a writer idempotent on the key, events that show as busy for
both people, organic contact that excludes goodwill's own events, one-shot faults. (The store
fake has its contract suite in ``tests/contract/test_store_contract.py``.)
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from scheduler.core.errors import ProviderUnavailable, ResourceGone
from scheduler.core.intervals import Interval
from scheduler.core.model import AttendeeStatus, BusyQuery, EventDraft, Person
from scheduler.core.ports import (
    CalendarSource,
    CalendarWriter,
    ContactHistory,
    ReplyRecorder,
    ResponseReader,
)
from tests.usecase.fakes import FakeCalendar

T0 = datetime(2027, 3, 1, 9, 0, tzinfo=UTC)
ALEX = Person("alex@corp.example", "Alex Doe", "Europe/London")
KIM = Person("kim@corp.example", "Kim Ito", "Europe/London")
JO = Person("jo@corp.example", "Jo Park", "Europe/London")


def draft(key: str = "k1", *, start: datetime = T0, attendee: Person = KIM) -> EventDraft:
    return EventDraft(
        idempotency_key=key,
        organizer=ALEX,
        attendee=attendee,
        start=start,
        end=start + timedelta(minutes=30),
        title="Coffee",
    )


def busy_of(cal: FakeCalendar, person: Person, *, hours: int = 24) -> list[tuple[datetime, str]]:
    result = cal.busy(BusyQuery(Interval(T0, T0 + timedelta(hours=hours)), (person,)))
    return [(b.start, b.response.value) for b in result.blocks[person.email]]


def test_it_implements_every_provider_port() -> None:
    cal = FakeCalendar()
    for port in (CalendarSource, ContactHistory, CalendarWriter, ResponseReader, ReplyRecorder):
        assert isinstance(cal, port)
    backend = cal.backend()
    assert (backend.source, backend.history, backend.writer, backend.responses) == (cal,) * 4


def test_create_is_idempotent_on_the_key() -> None:
    cal = FakeCalendar()
    first = cal.create_event(draft())
    again = cal.create_event(draft(start=T0 + timedelta(hours=3)))
    assert first.created
    assert (again.provider_event_id, again.created) == (first.provider_event_id, False)
    [event] = cal.events()
    assert (event.start, event.key, event.organizer, event.attendee) == (
        T0,
        "k1",
        ALEX.email,
        KIM.email,
    )
    assert cal.create_event(draft("k2")).provider_event_id != first.provider_event_id
    assert cal.calls["create_event"] == 3


def test_find_and_cancel_by_key() -> None:
    cal = FakeCalendar()
    assert cal.find_by_key(ALEX, "k1") is None
    cal.cancel_by_key(ALEX, "k1")  # no event: a no-op
    created = cal.create_event(draft())
    found = cal.find_by_key(ALEX, "k1")
    assert found is not None
    assert (found.provider_event_id, found.created) == (created.provider_event_id, False)
    assert cal.find_by_key(KIM, "k1") is None  # only the organizer's calendar has it
    cal.cancel_by_key(ALEX, "k1")
    assert cal.find_by_key(ALEX, "k1") is None  # cancelled is not live
    assert cal.events() == []
    [cancelled] = cal.events(cancelled=True)
    assert cancelled.id == created.provider_event_id
    cal.cancel_event(ALEX, created.provider_event_id)  # already cancelled: done
    cal.cancel_event(ALEX, "evt-404")  # gone: done


def test_events_are_busy_for_both_people_until_declined_or_cancelled() -> None:
    cal = FakeCalendar()
    cal.add_busy(JO.email, T0 + timedelta(hours=5), T0 + timedelta(hours=6))
    created = cal.create_event(draft())
    assert busy_of(cal, ALEX) == [(T0, "organizer")]
    assert busy_of(cal, KIM) == [(T0, "needsAction")]
    assert busy_of(cal, JO) == [(T0 + timedelta(hours=5), "organizer")]
    cal.respond(created.provider_event_id, AttendeeStatus.DECLINED)
    assert busy_of(cal, KIM) == [(T0, "declined")]  # the busy rules make it free
    cal.cancel(created.provider_event_id)
    assert busy_of(cal, ALEX) == []
    assert busy_of(cal, JO, hours=5) == []  # outside the window


def test_busy_clips_to_the_window_and_reports_unavailable_people() -> None:
    cal = FakeCalendar()
    cal.add_busy(KIM.email, T0 - timedelta(hours=1), T0 + timedelta(hours=1))
    cal.make_unavailable(JO.email, "calendar unavailable: 403")
    result = cal.busy(BusyQuery(Interval(T0, T0 + timedelta(hours=4)), (KIM, JO)))
    [block] = result.blocks[KIM.email]
    assert (block.start, block.end) == (T0, T0 + timedelta(hours=1))
    assert JO.email not in result.blocks
    assert result.unavailable == {JO.email: "calendar unavailable: 403"}


def test_organic_contact_is_the_latest_meeting_both_attended_and_not_goodwills() -> None:
    cal = FakeCalendar()
    day = timedelta(days=1)
    cal.add_meeting(ALEX.email, KIM.email, T0 - 9 * day, T0 - 9 * day + timedelta(hours=1))
    cal.add_meeting(KIM.email, ALEX.email, T0 - 3 * day, T0 - 3 * day + timedelta(hours=1))
    declined = cal.add_meeting(
        ALEX.email, JO.email, T0 - 2 * day, T0 - 2 * day + timedelta(hours=1)
    )
    cal.respond(declined, AttendeeStatus.DECLINED)
    cal.add_meeting(ALEX.email, JO.email, T0 - timedelta(minutes=30), T0 + timedelta(minutes=30))
    cal.create_event(draft(start=T0 - day))  # goodwill's own: not organic
    found = cal.last_contacts(ALEX, ["KIM@corp.example", JO.email], T0 - 30 * day, T0)
    assert found == {"KIM@corp.example": T0 - 3 * day + timedelta(hours=1)}
    assert cal.last_contacts(ALEX, [KIM.email], T0 - 2 * day, T0) == {}


def test_event_state_answers_and_e_mailed_replies() -> None:
    cal = FakeCalendar()
    event_id = cal.create_event(draft()).provider_event_id
    state = cal.event_state(ALEX, event_id, KIM.email)
    assert (state.response, state.cancelled, state.start) == (
        AttendeeStatus.NEEDS_ACTION,
        False,
        T0,
    )
    cal.move(event_id, T0 + timedelta(hours=1), T0 + timedelta(hours=2))
    assert not cal.set_attendee_status(
        ALEX, event_id, KIM.email, AttendeeStatus.DECLINED, sequence=0
    )
    assert cal.set_attendee_status(ALEX, event_id, KIM.email, AttendeeStatus.ACCEPTED, sequence=1)
    state = cal.event_state(ALEX, event_id, KIM.email)
    assert (state.response, state.start) == (AttendeeStatus.ACCEPTED, T0 + timedelta(hours=1))
    cal.delete(event_id)
    with pytest.raises(ResourceGone):
        cal.event_state(ALEX, event_id, KIM.email)


def test_faults_are_one_shot_and_a_lost_reply_still_creates() -> None:
    cal = FakeCalendar()
    cal.fail_next("busy", ProviderUnavailable("503"), times=2)
    query = BusyQuery(Interval(T0, T0 + timedelta(hours=1)), (KIM,))
    for _ in range(2):
        with pytest.raises(ProviderUnavailable):
            cal.busy(query)
    assert cal.busy(query).blocks == {KIM.email: []}
    assert cal.calls["busy"] == 3
    cal.lose_next_create_reply(ProviderUnavailable("timeout"))
    with pytest.raises(ProviderUnavailable):
        cal.create_event(draft())
    assert [e.key for e in cal.events()] == ["k1"]
    cal.fail_next("create_event", ProviderUnavailable("reset"))
    with pytest.raises(ProviderUnavailable):
        cal.create_event(draft("k2"))
    assert [e.key for e in cal.events()] == ["k1"]  # failed before it landed


def test_during_next_runs_while_the_call_is_in_flight() -> None:
    cal = FakeCalendar()
    seen: list[int] = []
    cal.during_next("create_event", lambda: seen.append(len(cal.events())))
    cal.create_event(draft())
    cal.create_event(draft("k2"))
    assert seen == [0]  # before the first event landed, and only once
