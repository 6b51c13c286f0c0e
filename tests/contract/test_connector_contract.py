"""The connector contract: busy read, create, duplicate create is a no-op, responses, cancel.

Runs once per provider env (see conftest). Counts are taken at the calendar, not in our database.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from scheduler.core.errors import AttendeeLimitExceeded, InvalidRequest, ResourceGone
from scheduler.core.intervals import Interval
from scheduler.core.model import AttendeeStatus, BusyQuery, EventDraft, EventStatus, Person
from scheduler.core.ports import ContactHistory

from .conftest import ContractEnv

DAY = datetime(2027, 3, 2, tzinfo=UTC)


def _draft(env: ContractEnv, key: str, hour: int = 14) -> EventDraft:
    start = DAY.replace(hour=hour)
    return EventDraft(
        idempotency_key=key,
        organizer=env.organizer,
        attendee=env.attendee,
        start=start,
        end=start + timedelta(minutes=30),
        title=f"Coffee: {env.organizer.first_name} / {env.attendee.first_name}",
        description="Catch up on what you are both working on.",
        location="Level 2 café",
    )


def _busy_for(env: ContractEnv, email: str, window: Interval) -> list[Interval]:
    result = env.source.busy(BusyQuery(window=window, people=(env.organizer, env.attendee)))
    assert email not in result.unavailable, result.unavailable
    return [b.interval for b in result.blocks.get(email, [])]


def test_busy_read_sees_seeded_events(env: ContractEnv) -> None:
    # Given an event on the attendee's calendar
    start = DAY.replace(hour=9)
    env.seed_event(env.attendee, start, start + timedelta(hours=1))
    # When we read busy time for the day
    busy = _busy_for(env, env.attendee.email, Interval(DAY, DAY + timedelta(days=1)))
    # Then the event's hour is busy, and an hour outside it is not
    assert any(iv.overlaps(Interval(start, start + timedelta(hours=1))) for iv in busy)
    later = DAY.replace(hour=16)
    assert not any(iv.overlaps(Interval(later, later + timedelta(hours=1))) for iv in busy)


def test_create_puts_one_event_on_the_organizers_calendar(env: ContractEnv) -> None:
    before = env.count_events(env.organizer.email)
    created = env.writer.create_event(_draft(env, "contract-create-1"))
    assert created.created is True
    assert created.provider_event_id
    assert env.count_events(env.organizer.email) == before + 1


def test_duplicate_create_is_a_no_op(env: ContractEnv) -> None:
    draft = _draft(env, "contract-dup-1")
    first = env.writer.create_event(draft)
    second = env.writer.create_event(draft)
    assert second.created is False
    assert second.provider_event_id == first.provider_event_id
    assert env.count_events(env.organizer.email) == 1


def test_distinct_keys_make_distinct_events(env: ContractEnv) -> None:
    a = env.writer.create_event(_draft(env, "contract-a", hour=10))
    b = env.writer.create_event(_draft(env, "contract-b", hour=15))
    assert a.provider_event_id != b.provider_event_id
    assert env.count_events(env.organizer.email) == 2


@pytest.mark.parametrize(
    "answer", [AttendeeStatus.ACCEPTED, AttendeeStatus.DECLINED, AttendeeStatus.TENTATIVE]
)
def test_responses_are_read_back(env: ContractEnv, answer: AttendeeStatus) -> None:
    created = env.writer.create_event(_draft(env, f"contract-resp-{answer.value}"))
    state = env.responses.event_state(env.organizer, created.provider_event_id, env.attendee.email)
    assert state.response == AttendeeStatus.NEEDS_ACTION
    assert state.cancelled is False
    env.respond(env.attendee.email, created.provider_event_id, answer)
    state = env.responses.event_state(env.organizer, created.provider_event_id, env.attendee.email)
    assert state.response == answer
    assert state.start == DAY.replace(hour=14)
    assert state.end == DAY.replace(hour=14, minute=30)


def test_cancel_removes_the_event_and_is_idempotent(env: ContractEnv) -> None:
    created = env.writer.create_event(_draft(env, "contract-cancel-1"))
    env.writer.cancel_event(env.organizer, created.provider_event_id)
    assert env.count_events(env.organizer.email) == 0
    env.writer.cancel_event(env.organizer, created.provider_event_id)  # again: counts as done
    try:
        state = env.responses.event_state(
            env.organizer, created.provider_event_id, env.attendee.email
        )
    except ResourceGone:
        return
    assert state.cancelled is True


def test_our_own_invites_are_not_organic_contact(env: ContractEnv) -> None:
    # Given a goodwill invite the attendee accepted, now in the past
    history = env.source
    assert isinstance(history, ContactHistory)
    created = env.writer.create_event(_draft(env, "contract-organic-1"))
    env.respond(env.attendee.email, created.provider_event_id, AttendeeStatus.ACCEPTED)
    # When organic contact is looked up after it ended
    found = history.last_contacts(
        env.organizer, [env.attendee.email], DAY - timedelta(days=1), DAY + timedelta(days=1)
    )
    # Then it does not count: the pipeline follows its own meetings (completed on acceptance)
    assert env.attendee.email not in {k.lower() for k in found}


def test_cancel_by_key_finds_the_event_or_does_nothing(env: ContractEnv) -> None:
    # Given a create whose reply was lost: we know the key, not the event id
    env.writer.create_event(_draft(env, "contract-bykey-1"))
    assert env.count_events(env.organizer.email) == 1
    # When the meeting must end, it is cancelled by key
    env.writer.cancel_by_key(env.organizer, "contract-bykey-1")
    assert env.count_events(env.organizer.email) == 0
    # And a key that never made an event is a no-op, as is a second cancel
    env.writer.cancel_by_key(env.organizer, "contract-bykey-never")
    env.writer.cancel_by_key(env.organizer, "contract-bykey-1")
    assert env.count_events(env.organizer.email) == 0


def test_find_by_key_sees_a_live_event_and_nothing_else(env: ContractEnv) -> None:
    # Given a create whose reply was lost: only the key is known
    created = env.writer.create_event(_draft(env, "contract-find-1"))
    # When the retry looks it up by its key, it finds that very event
    found = env.writer.find_by_key(env.organizer, "contract-find-1")
    assert found is not None
    assert found.provider_event_id == created.provider_event_id
    assert found.created is False
    # A key that never made an event finds nothing
    assert env.writer.find_by_key(env.organizer, "contract-find-never") is None
    # And a cancelled event is not found: the create must be sent again
    env.writer.cancel_event(env.organizer, created.provider_event_id)
    assert env.writer.find_by_key(env.organizer, "contract-find-1") is None


def test_move_event_moves_the_same_event(env: ContractEnv) -> None:
    # Given a booked coffee at 14:00
    created = env.writer.create_event(_draft(env, "contract-move-1"))
    event_id = created.provider_event_id
    creates = env.count_creates(env.organizer.email)
    old = Interval(DAY.replace(hour=14), DAY.replace(hour=14, minute=30))
    new = Interval(DAY.replace(hour=16), DAY.replace(hour=16, minute=30))
    # When it is moved to 16:00
    env.writer.move_event(env.organizer, event_id, new.start, new.end)
    # Then the provider shows that same event at the new time, and nothing was created
    state = env.responses.event_state(env.organizer, event_id, env.attendee.email)
    assert (state.start, state.end) == (new.start, new.end)
    assert state.cancelled is False
    assert env.count_events(env.organizer.email) == 1
    assert env.count_creates(env.organizer.email) == creates
    # And the attendee was told, once
    assert env.updates_sent(env.attendee.email, event_id) == 1
    # And both calendars show the new time busy and the old time free
    env.deliver_mail()
    day = Interval(DAY, DAY + timedelta(days=1))
    for person in (env.organizer, env.attendee):
        busy = _busy_for(env, person.email, day)
        assert any(iv.overlaps(new) for iv in busy), (person.email, busy)
        assert not any(iv.overlaps(old) for iv in busy), (person.email, busy)
    # A retried move (the reply was lost) changes nothing and tells nobody again
    env.writer.move_event(env.organizer, event_id, new.start, new.end)
    assert env.updates_sent(env.attendee.email, event_id) == 1
    assert env.count_creates(env.organizer.email) == creates
    # Moving a cancelled or an unknown event is refused as gone
    env.writer.cancel_event(env.organizer, event_id)
    with pytest.raises(ResourceGone):
        env.writer.move_event(env.organizer, event_id, old.start, old.end)
    with pytest.raises(ResourceGone):
        env.writer.move_event(
            env.organizer, _unknown_id(env, "contract-move-never"), old.start, old.end
        )
    assert env.count_creates(env.organizer.email) == creates


def _unknown_id(env: ContractEnv, key: str) -> str:
    """An event id of the provider's shape that no event has."""
    if env.name == "google":
        from connectors.google_events import google_event_id

        return google_event_id(key)
    if env.name == "microsoft":
        return "AAkALgAAAAAAHYQDEapmEc2byACqAC-EWg0A" + key.replace("-", "")
    return f"{key}@goodwill"


def test_busy_read_of_the_owners_calendar_names_our_own_event(env: ContractEnv) -> None:
    if env.owner_keys_hidden is not None:
        pytest.skip(f"{env.name}: {env.owner_keys_hidden}")
    # Given one of our coffees and one of the owner's own events on their calendar
    draft = _draft(env, "contract-key-1")
    created = env.writer.create_event(draft)
    env.seed_event(env.organizer, DAY.replace(hour=9), DAY.replace(hour=10))
    day = Interval(DAY, DAY + timedelta(days=1))
    query = BusyQuery(window=day, people=(env.organizer, env.attendee))
    # When the owner's calendar is read
    blocks = env.source.busy(query).blocks[env.organizer.email]
    # Then our coffee carries its idempotency key and the owner's own event none
    ours = [b for b in blocks if b.key == draft.idempotency_key]
    assert [(b.start, b.end) for b in ours] == [(draft.start, draft.end)]
    assert [b.key for b in blocks if b.start == DAY.replace(hour=9)] == [None]
    # And after a move the key goes with the event
    moved = DAY.replace(hour=11)
    env.writer.move_event(
        env.organizer, created.provider_event_id, moved, moved + (draft.end - draft.start)
    )
    blocks = env.source.busy(query).blocks[env.organizer.email]
    assert [b.start for b in blocks if b.key == draft.idempotency_key] == [moved]


# -- group meetings: one event, every attendee invited -----------------------------------------


def _group_draft(env: ContractEnv, key: str, hour: int = 12) -> EventDraft:
    start = DAY.replace(hour=hour)
    return EventDraft(
        idempotency_key=key,
        organizer=env.organizer,
        attendee=env.attendee,
        extra_attendees=env.extra_attendees,
        start=start,
        end=start + timedelta(hours=1),
        title="Lunch: platform group",
        description="Presenter: the first attendee.",
        location="Level 2 café",
    )


def _busy_of(env: ContractEnv, person: Person) -> list[Interval]:
    """``person``'s busy time on DAY, read with the organizer's (as the planner reads it);
    blocks of cancelled events left out, as the busy rules leave them out."""
    window = Interval(DAY, DAY + timedelta(days=1))
    result = env.source.busy(BusyQuery(window=window, people=(env.organizer, person)))
    assert person.email not in result.unavailable, result.unavailable
    blocks = result.blocks.get(person.email, [])
    return [b.interval for b in blocks if b.status is not EventStatus.CANCELLED]


def _everyone(env: ContractEnv) -> list[str]:
    return sorted(p.email.lower() for p in (env.attendee, *env.extra_attendees))


def test_a_group_is_one_event_inviting_every_attendee_once(env: ContractEnv) -> None:
    assert len(env.extra_attendees) == 2
    draft = _group_draft(env, "contract-group-1")
    # When a three-attendee meeting is created, and the create is retried (a lost reply)
    first = env.writer.create_event(draft)
    again = env.writer.create_event(draft)
    # Then the provider holds one event, made by one create, and the retry reconciled it
    assert first.created is True
    assert again.created is False
    assert again.provider_event_id == first.provider_event_id
    assert env.count_events(env.organizer.email) == 1
    # And each of the three was invited exactly once (the retry invited nobody again), the
    # organizer not
    assert sorted(env.invitations(first.provider_event_id)) == _everyone(env)
    # And the lookup by key finds that one event
    found = env.writer.find_by_key(env.organizer, draft.idempotency_key)
    assert found is not None
    assert found.provider_event_id == first.provider_event_id
    # And it blocks every attendee's calendar (once their client has filed the invite)
    env.deliver_mail()
    hour = Interval(draft.start, draft.end)
    for person in (env.attendee, *env.extra_attendees):
        busy = _busy_of(env, person)
        assert any(iv.overlaps(hour) for iv in busy), (person.email, busy)


def test_each_group_attendee_answers_on_their_own(env: ContractEnv) -> None:
    created = env.writer.create_event(_group_draft(env, "contract-group-resp"))
    event_id = created.provider_event_id
    second, third = env.extra_attendees
    # Given nobody has answered, everyone reads as needing to
    for person in (env.attendee, second, third):
        state = env.responses.event_state(env.organizer, event_id, person.email)
        assert state.response == AttendeeStatus.NEEDS_ACTION, person.email
    # When the first accepts and the second declines
    env.respond(env.attendee.email, event_id, AttendeeStatus.ACCEPTED)
    env.respond(second.email, event_id, AttendeeStatus.DECLINED)
    # Then each answer is read back for its own person only, the third still open
    answers = {
        p.email: env.responses.event_state(env.organizer, event_id, p.email).response
        for p in (env.attendee, second, third)
    }
    assert answers == {
        env.attendee.email: AttendeeStatus.ACCEPTED,
        second.email: AttendeeStatus.DECLINED,
        third.email: AttendeeStatus.NEEDS_ACTION,
    }
    # And the third's later answer changes nobody else's
    env.respond(third.email, event_id, AttendeeStatus.TENTATIVE)
    state = env.responses.event_state(env.organizer, event_id, third.email)
    assert state.response == AttendeeStatus.TENTATIVE
    state = env.responses.event_state(env.organizer, event_id, second.email)
    assert state.response == AttendeeStatus.DECLINED


def test_moving_a_group_keeps_and_tells_every_attendee(env: ContractEnv) -> None:
    draft = _group_draft(env, "contract-group-move")
    created = env.writer.create_event(draft)
    event_id = created.provider_event_id
    new = Interval(DAY.replace(hour=15), DAY.replace(hour=16))
    env.writer.move_event(env.organizer, event_id, new.start, new.end)
    env.writer.move_event(env.organizer, event_id, new.start, new.end)  # a retried move
    # Then the same event moved, every attendee is still on it and was told once
    assert env.count_events(env.organizer.email) == 1
    assert env.count_creates(env.organizer.email) == 1
    for person in (env.attendee, *env.extra_attendees):
        state = env.responses.event_state(env.organizer, event_id, person.email)
        assert (state.start, state.end) == (new.start, new.end)
        assert state.response != AttendeeStatus.DECLINED, person.email  # still invited
        assert env.updates_sent(person.email, event_id) == 1, person.email
    # And every attendee's calendar shows the new time busy and the old one free
    env.deliver_mail()
    old = Interval(draft.start, draft.end)
    for person in (env.attendee, *env.extra_attendees):
        busy = _busy_of(env, person)
        assert any(iv.overlaps(new) for iv in busy), (person.email, busy)
        assert not any(iv.overlaps(old) for iv in busy), (person.email, busy)


def test_cancelling_a_group_reaches_every_attendee_once(env: ContractEnv) -> None:
    draft = _group_draft(env, "contract-group-cancel")
    created = env.writer.create_event(draft)
    event_id = created.provider_event_id
    env.deliver_mail()
    env.writer.cancel_event(env.organizer, event_id)
    env.writer.cancel_event(env.organizer, event_id)  # a retried cancel tells nobody again
    assert env.count_events(env.organizer.email) == 0
    assert sorted(env.cancellations(event_id)) == _everyone(env)
    # And the hour is free again on every attendee's calendar
    env.deliver_mail()
    hour = Interval(draft.start, draft.end)
    for person in (env.attendee, *env.extra_attendees):
        busy = _busy_of(env, person)
        assert not any(iv.overlaps(hour) for iv in busy), (person.email, busy)


def test_a_one_to_one_invites_only_its_attendee(env: ContractEnv) -> None:
    created = env.writer.create_event(_draft(env, "contract-group-none"))
    assert env.invitations(created.provider_event_id) == [env.attendee.email.lower()]


#: The most attendees one event may have, as each provider documents it (see
#: ``connectors/attendees.py``); the CalDAV env mails invites itself (iMIP), one message to all.
_ATTENDEE_LIMITS = {"google": 200, "microsoft": 500, "caldav": 100}


def test_a_draft_above_the_providers_attendee_limit_is_refused_unsent(env: ContractEnv) -> None:
    limit = _ATTENDEE_LIMITS.get(env.name)
    if limit is None:
        pytest.skip(f"{env.name}: a directory of files takes any number of attendees")
    guests = tuple(Person(f"guest{i}@corp.example", f"Guest {i}", "UTC") for i in range(limit))
    # Given a draft with one attendee more than the provider takes
    draft = replace(_group_draft(env, "contract-group-limit"), extra_attendees=guests)
    assert len(draft.attendees) == limit + 1
    # When it is created, it is refused as a permanent error naming the limit, and nothing
    # reached the provider
    with pytest.raises(AttendeeLimitExceeded) as caught:
        env.writer.create_event(draft)
    assert (caught.value.count, caught.value.limit, caught.value.transient) == (
        limit + 1,
        limit,
        False,
    )
    assert isinstance(caught.value, InvalidRequest)
    assert str(limit) in str(caught.value)
    assert env.count_creates(env.organizer.email) == 0
    assert env.writer.find_by_key(env.organizer, draft.idempotency_key) is None
    # And exactly at the limit the one event goes out to everyone
    at_limit = replace(draft, idempotency_key="contract-group-at-limit", extra_attendees=guests[1:])
    created = env.writer.create_event(at_limit)
    assert len(env.invitations(created.provider_event_id)) == limit
    assert env.count_events(env.organizer.email) == 1
