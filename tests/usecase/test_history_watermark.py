"""Issue 13: a round reads the owner's history only from where the last round's read ended
(:mod:`scheduler.app.history_window`), on every store, with the fake calendar.

The first round reads the whole 26-week lookback; the next reads from the first one's end less
the overlap, and the contacts found earlier still count, from the store. Whatever makes the
last read not cover this round's question reads the whole lookback again: other stakeholders,
no read recorded, a read that ended too long ago or in the future. A round that fails records
no read.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

import pytest

from scheduler.app.history_window import (
    HISTORY_OVERLAP,
    ORGANIC_LOOKBACK,
    history_key,
    history_since,
)
from scheduler.core.errors import ProviderUnavailable
from scheduler.core.model import BusyQuery, BusyResult, Person
from tests.usecase.fakes import FakeCalendar
from tests.usecase.world import ALEX, JO, KIM, NOW, World, alex_policy, skip_codes

DAY = timedelta(days=1)


class HistoryRecordingCalendar(FakeCalendar):
    """The fake calendar, recording the window of every history read."""

    def __init__(self) -> None:
        super().__init__()
        self.history: list[tuple[datetime, datetime]] = []
        self.fail_busy = False

    def last_contacts(
        self, owner: Person, emails: Sequence[str], since: datetime, until: datetime
    ) -> Mapping[str, datetime]:
        self.history.append((since, until))
        return super().last_contacts(owner, emails, since, until)

    def busy(self, query: BusyQuery) -> BusyResult:
        if self.fail_busy:
            raise ProviderUnavailable("503", provider="fake", status=503)
        return super().busy(query)


@pytest.fixture
def calendar() -> FakeCalendar:
    return HistoryRecordingCalendar()


def _calendar(world: World) -> HistoryRecordingCalendar:
    assert isinstance(world.calendar, HistoryRecordingCalendar)
    return world.calendar


def test_the_next_round_reads_from_where_the_last_read_ended(world: World) -> None:
    assert world.plan().error is None
    world.advance(DAY)
    assert world.plan().error is None
    world.advance(DAY)
    assert world.plan().error is None

    assert _calendar(world).history == [
        (NOW - ORGANIC_LOOKBACK, NOW),
        (NOW - HISTORY_OVERLAP, NOW + DAY),
        (NOW + DAY - HISTORY_OVERLAP, NOW + 2 * DAY),
    ]
    user = world.user()
    assert user.history_read_until == NOW + 2 * DAY
    assert user.history_read_key == history_key(world.policy())


def test_a_contact_found_by_an_earlier_read_still_counts(world: World) -> None:
    # Jo was met 3 weeks ago: peers are met every 8 weeks, so Jo is not due within the horizon.
    met = NOW - timedelta(weeks=3)
    world.calendar.add_meeting(ALEX, JO, met, met + timedelta(minutes=45))
    first = world.plan()
    world.advance(2 * DAY)

    second = world.plan()

    since, _ = _calendar(world).history[-1]
    assert since > met + timedelta(minutes=45)  # the second read no longer reaches the meeting
    assert skip_codes(first)[JO] == skip_codes(second)[JO] == "not_due"
    assert world.store.last_contacts(world.user_id())[JO] == met + timedelta(minutes=45)


def test_a_stakeholder_added_since_makes_the_round_read_the_whole_lookback(world: World) -> None:
    # Kim was met 3 weeks ago, and is only added to the policy after the first round.
    met = NOW - timedelta(weeks=3)
    world.calendar.add_meeting(ALEX, KIM, met, met + timedelta(minutes=30))
    world.write_policy(ALEX, alex_policy(without=KIM))
    world.plan()
    world.advance(DAY)
    world.write_policy(ALEX, alex_policy())

    run = world.plan()

    assert _calendar(world).history[-1] == (NOW + DAY - ORGANIC_LOOKBACK, NOW + DAY)
    assert skip_codes(run)[KIM] == "not_due"  # the meeting 3 weeks ago was found


def test_a_failed_round_records_no_read(world: World) -> None:
    world.plan()
    world.advance(DAY)
    _calendar(world).fail_busy = True
    assert world.plan().error is not None
    _calendar(world).fail_busy = False
    world.advance(DAY)

    assert world.plan().error is None

    reads = _calendar(world).history
    assert reads[1][0] == reads[2][0] == NOW - HISTORY_OVERLAP  # still from the first read


def test_a_read_that_ended_long_ago_or_in_the_future_reads_the_whole_lookback(
    world: World,
) -> None:
    world.plan()
    user, key = world.user(), history_key(world.policy())
    later = NOW + ORGANIC_LOOKBACK
    assert history_since(user, key, later) == later - ORGANIC_LOOKBACK  # not before the lookback
    earlier = NOW - DAY  # the clock went back: the recorded read ends in the future
    assert history_since(user, key, earlier) == earlier - ORGANIC_LOOKBACK
    assert history_since(user, "another key", NOW + DAY) == NOW + DAY - ORGANIC_LOOKBACK
    assert history_since(user, key, NOW + DAY) == NOW - HISTORY_OVERLAP


def test_a_long_meeting_in_progress_at_one_round_counts_when_a_later_round_sees_it_end(
    world: World,
) -> None:
    # Jo was met 5 weeks ago; a three-week workshop with Jo runs from 20 days ago to tomorrow.
    met = NOW - timedelta(weeks=5)
    world.calendar.add_meeting(ALEX, JO, met, met + timedelta(hours=1))
    world.calendar.add_meeting(ALEX, JO, NOW - timedelta(days=20), NOW + DAY)
    world.plan()  # the workshop has not ended: the last contact is 5 weeks ago
    assert world.store.last_contacts(world.user_id())[JO] == met + timedelta(hours=1)
    world.advance(2 * DAY)
    world.plan()  # reads from 14 days ago: the workshop began before, and ended inside

    assert world.store.last_contacts(world.user_id())[JO] == NOW + DAY


def test_another_calendar_in_the_policy_reads_the_whole_lookback(world: World) -> None:
    world.plan()
    before = history_key(world.policy())
    world.write_policy(
        ALEX, alex_policy().replace("calendar: {provider: ics}", "calendar: {provider: google}")
    )
    assert history_key(world.policy()) != before
