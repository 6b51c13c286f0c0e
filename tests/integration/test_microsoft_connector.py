"""The Microsoft 365 connector on the wire: real msal + requests over HTTPS to the Graph emulator.

Every test ends by asserting that no request body broke the Graph v1.0 schema (see the ``emu``
fixture).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, time, timedelta
from pathlib import Path

import pytest

from connectors.microsoft import (
    EXTENDED_PROPERTY_ID,
    AppOnlyTokens,
    DelegatedTokens,
    GraphCalendar,
    build_graph_calendar,
    transaction_id,
)
from connectors.tokens import EncryptedFileTokenStore, MemoryTokenStore
from connectors.windows_zones import to_iana, to_windows
from scheduler.core.clock import FixedClock
from scheduler.core.errors import (
    AuthorizationRevoked,
    CalendarUnavailable,
    ConfigurationError,
    InvalidRequest,
    ProviderUnavailable,
    RateLimited,
    ResourceGone,
)
from scheduler.core.intervals import Interval
from scheduler.core.model import (
    AttendeeStatus,
    BusyQuery,
    EventDraft,
    Person,
    ShowAs,
    TimeRange,
    WeeklyHours,
)
from tests.emulators.graph_emulator import GraphEmulator

ORG = Person("org@corp.example", "Olive Organizer", "Europe/London")
ATT = Person("att@corp.example", "Arun Attendee", "America/New_York")
DAY = datetime(2027, 3, 2, tzinfo=UTC)  # a Tuesday
WINDOW = Interval(DAY, DAY + timedelta(days=1))


class CountingStore:
    """A TokenStore that counts saves and delegates to a real store."""

    def __init__(self, inner: MemoryTokenStore | EncryptedFileTokenStore) -> None:
        self.inner = inner
        self.saves = 0

    def load(self, key: str) -> bytes | None:
        return self.inner.load(key)

    def save(self, key: str, blob: bytes) -> None:
        self.saves += 1
        self.inner.save(key, blob)


@pytest.fixture
def emu(tmp_path: Path) -> Iterator[GraphEmulator]:
    emulator = GraphEmulator(tmp_path)
    emulator.add_mailbox(ORG.email, zone="GMT Standard Time")
    emulator.add_mailbox(ATT.email, zone="Eastern Standard Time")
    try:
        yield emulator
    finally:
        emulator.close()
    assert emulator.schema_violations == []


class SleepRecorder:
    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def sleeps() -> SleepRecorder:
    return SleepRecorder()


@pytest.fixture
def cal(emu: GraphEmulator, sleeps: SleepRecorder) -> GraphCalendar:
    settings = emu.settings()
    return GraphCalendar(settings, AppOnlyTokens(settings, MemoryTokenStore()), sleep=sleeps)


def draft(key: str, *, hour: int = 14, video: str | None = None) -> EventDraft:
    start = DAY.replace(hour=hour)
    return EventDraft(
        idempotency_key=key,
        organizer=ORG,
        attendee=ATT,
        start=start,
        end=start + timedelta(minutes=30),
        title="Coffee: Olive / Arun",
        description="Catch up.",
        location="Level 2 café",
        video=video,
    )


def grants(emu: GraphEmulator, grant: str) -> int:
    return sum(1 for r in emu.token_requests if r.get("grant_type", "").endswith(grant))


# -- tokens -------------------------------------------------------------------------------


def test_app_only_token_is_cached_encrypted_and_saved_only_when_it_changes(
    emu: GraphEmulator, tmp_path: Path
) -> None:
    store = CountingStore(EncryptedFileTokenStore(tmp_path / "tokens", "s3cret-key"))
    settings = emu.settings()
    first = AppOnlyTokens(settings, store)
    token = first.access_token()
    assert first.access_token() == token  # second call: msal cache hit
    assert grants(emu, "client_credentials") == 1
    assert store.saves == 1
    on_disk = b"".join(p.read_bytes() for p in (tmp_path / "tokens").iterdir())
    assert token.encode() not in on_disk
    assert b"AccessToken" not in on_disk
    # A new process loads the cache from the store: no token request, no save.
    second = AppOnlyTokens(settings, store)
    assert second.access_token() == token
    assert grants(emu, "client_credentials") == 1
    assert store.saves == 1


def test_app_only_needs_a_real_tenant(emu: GraphEmulator) -> None:
    with pytest.raises(ConfigurationError):
        AppOnlyTokens(emu.settings(tenant="organizations"), MemoryTokenStore())


def test_wrong_client_secret_is_authorization_revoked(emu: GraphEmulator) -> None:
    tokens = AppOnlyTokens(emu.settings(client_secret="wrong"), MemoryTokenStore())
    with pytest.raises(AuthorizationRevoked):
        tokens.access_token()


def test_expired_access_token_is_refreshed_once(cal: GraphCalendar, emu: GraphEmulator) -> None:
    cal.busy(BusyQuery(WINDOW, (ORG,)))
    emu.expire_tokens()
    result = cal.busy(BusyQuery(WINDOW, (ORG,)))
    assert ORG.email in result.blocks
    assert grants(emu, "client_credentials") == 2
    assert [c.status for c in emu.calls] == [200, 401, 200]


def test_401_after_refresh_is_authorization_revoked(cal: GraphCalendar, emu: GraphEmulator) -> None:
    emu.fail_next(401, times=2)
    with pytest.raises(AuthorizationRevoked):
        cal.busy(BusyQuery(WINDOW, (ORG,)))
    assert emu.count("GET", "calendarView") == 2  # the owner's own calendar, replayed once


def test_delegated_device_flow_then_silent_refresh(emu: GraphEmulator) -> None:
    emu.add_mailbox("ann@corp.example")
    settings = emu.settings(client_secret=None)
    store = CountingStore(MemoryTokenStore())
    tokens = DelegatedTokens(settings, store, "ann@corp.example")
    with pytest.raises(AuthorizationRevoked):
        tokens.access_token()  # never connected
    shown: list[str] = []
    assert tokens.device_flow_login(shown.append) == "ann@corp.example"
    assert len(shown) == 1
    assert "enter the code GW-" in shown[0]
    assert grants(emu, "device_code") == 2  # authorization_pending, then the tokens
    saves_after_login = store.saves
    assert saves_after_login == 1
    # A fresh provider (new process) works silently from the stored cache.
    again = DelegatedTokens(settings, store, "ann@corp.example")
    cal = GraphCalendar(settings, again)
    me = Person("ann@corp.example", "Ann", "America/Los_Angeles")
    cal.busy(BusyQuery(WINDOW, (me,)))
    assert grants(emu, "refresh_token") == 0
    # Graph rejects the access token -> one refresh with the refresh token, cache re-saved.
    emu.expire_tokens()
    cal.busy(BusyQuery(WINDOW, (me,)))
    assert grants(emu, "refresh_token") == 1
    assert store.saves == saves_after_login + 1
    # The refresh token is revoked -> the user must reconnect.
    emu.expire_tokens()
    emu.revoke_refresh_tokens()
    with pytest.raises(AuthorizationRevoked):
        cal.busy(BusyQuery(WINDOW, (me,)))


def test_device_flow_with_the_wrong_account_is_refused(emu: GraphEmulator) -> None:
    emu.device_user = "someone.else@corp.example"
    tokens = DelegatedTokens(
        emu.settings(client_secret=None), MemoryTokenStore(), "ann@corp.example"
    )
    with pytest.raises(AuthorizationRevoked, match=r"someone\.else"):
        tokens.device_flow_login(lambda _: None)


# -- getSchedule ---------------------------------------------------------------------------


def _people(emu: GraphEmulator, n: int) -> tuple[Person, ...]:
    people = [ORG]
    for i in range(n - 1):
        email = f"p{i}@corp.example"
        emu.add_mailbox(email)
        people.append(Person(email, f"P {i}", "UTC"))
    return tuple(people)


# The owner (people[0]) is read through calendarView, so k others take ceil(k / 20) calls.
@pytest.mark.parametrize(("people", "calls"), [(1, 0), (20, 1), (21, 1), (22, 2), (30, 2), (41, 2)])
def test_get_schedule_batches_at_most_20_schedules(
    cal: GraphCalendar, emu: GraphEmulator, people: int, calls: int
) -> None:
    query = BusyQuery(WINDOW, _people(emu, people))
    result = cal.busy(query)
    sent = [c for c in emu.calls if c.path.endswith("/calendar/getSchedule")]
    assert len(sent) == calls
    assert all(len(c.body["schedules"]) <= 20 for c in sent)
    assert sorted(e for c in sent for e in c.body["schedules"]) == sorted(
        p.email for p in query.people[1:]
    )
    assert emu.count("GET", "/calendarView") == 1
    assert set(result.blocks) == {p.email for p in query.people}
    assert all('outlook.timezone="UTC"' in c.prefer for c in sent)


def test_long_windows_are_split_below_62_days(cal: GraphCalendar, emu: GraphEmulator) -> None:
    window = Interval(DAY, DAY + timedelta(days=90))
    seam = DAY + timedelta(days=61)
    emu.seed_event(ATT.email, seam - timedelta(hours=1), seam + timedelta(hours=1))
    result = cal.busy(BusyQuery(window, (ORG, ATT)))
    sent = [c for c in emu.calls if c.path.endswith("/calendar/getSchedule")]
    assert len(sent) == 2
    # The event straddling the seam comes back from both windows but is reported once.
    assert [(b.start, b.end) for b in result.blocks[ATT.email]] == [
        (seam - timedelta(hours=1), seam + timedelta(hours=1))
    ]


def test_schedule_statuses_map_to_show_as(cal: GraphCalendar, emu: GraphEmulator) -> None:
    statuses = ["free", "tentative", "busy", "oof", "workingElsewhere", "unknown"]
    for hour, status in enumerate(statuses, start=8):
        emu.seed_event(
            ATT.email, DAY.replace(hour=hour), DAY.replace(hour=hour, minute=30), show_as=status
        )
    result = cal.busy(BusyQuery(WINDOW, (ORG, ATT)))
    assert [b.show_as for b in result.blocks[ATT.email]] == [
        ShowAs.FREE,
        ShowAs.TENTATIVE,
        ShowAs.BUSY,
        ShowAs.OOF,
        ShowAs.WORKING_ELSEWHERE,
        ShowAs.UNKNOWN,
    ]
    assert result.blocks[ATT.email][2].start == DAY.replace(hour=10)


def test_unanswered_invite_is_tentative_and_declined_is_gone(
    cal: GraphCalendar, emu: GraphEmulator
) -> None:
    first = emu.seed_event(
        ORG.email, DAY.replace(hour=9), DAY.replace(hour=10), attendees=[(ATT.email, "none")]
    )
    emu.seed_event(
        ORG.email, DAY.replace(hour=11), DAY.replace(hour=12), attendees=[(ATT.email, "declined")]
    )
    result = cal.busy(BusyQuery(WINDOW, (ORG, ATT)))
    assert [(b.start.hour, b.show_as) for b in result.blocks[ATT.email]] == [(9, ShowAs.TENTATIVE)]
    emu.respond(ATT.email, first, "accepted")
    result = cal.busy(BusyQuery(WINDOW, (ORG, ATT)))
    assert [(b.start.hour, b.show_as) for b in result.blocks[ATT.email]] == [(9, ShowAs.BUSY)]


def test_windows_zone_working_hours_become_iana(cal: GraphCalendar, emu: GraphEmulator) -> None:
    emu.add_mailbox(
        "pat@corp.example",
        zone="Pacific Standard Time",
        days=("monday", "tuesday", "wednesday", "thursday"),
        start="09:00:00.0000000",
        end="17:30:00.0000000",
    )
    emu.add_mailbox("cus@corp.example", zone="Customized Time Zone")
    pat = Person("pat@corp.example", "Pat", "UTC")
    cus = Person("cus@corp.example", "Cus", "UTC")
    result = cal.busy(BusyQuery(WINDOW, (ORG, pat, cus)))
    span = (TimeRange(time(9), time(17, 30)),)
    assert result.working_hours[pat.email] == (
        "America/Los_Angeles",
        WeeklyHours({0: span, 1: span, 2: span, 3: span}),
    )
    assert ORG.email not in result.working_hours  # the owner's hours come from their policy
    assert cus.email not in result.working_hours  # unmappable zone: the policy's defaults apply
    assert cus.email in result.blocks


def test_unreadable_schedules_are_unavailable_with_a_reason(
    cal: GraphCalendar, emu: GraphEmulator
) -> None:
    emu.add_mailbox("hidden@corp.example", error=("ErrorAccessDenied", "Access is denied."))
    hidden = Person("hidden@corp.example", "Hid", "UTC")
    ghost = Person("ghost@corp.example", "Gho", "UTC")
    result = cal.busy(BusyQuery(WINDOW, (ORG, hidden, ghost)))
    assert result.unavailable[hidden.email] == "ErrorAccessDenied: Access is denied."
    assert result.unavailable[ghost.email].startswith("5009: Unable to resolve")
    assert hidden.email not in result.blocks
    assert ghost.email not in result.blocks
    assert ORG.email in result.blocks


def test_windows_zone_table_round_trips() -> None:
    assert to_iana("Pacific Standard Time") == "America/Los_Angeles"
    assert to_iana("pacific standard time") == "America/Los_Angeles"
    assert to_iana("W. Europe Standard Time") == "Europe/Berlin"
    assert to_iana("Europe/Paris") == "Europe/Paris"
    assert to_iana("UTC") == "UTC"
    assert to_iana("Customized Time Zone") is None
    assert to_windows("Europe/London") == "GMT Standard Time"
    assert to_windows("America/New_York") == "Eastern Standard Time"


# -- create / cancel -----------------------------------------------------------------------


def test_create_sends_transaction_id_tag_and_organizer_zone(
    cal: GraphCalendar, emu: GraphEmulator
) -> None:
    created = cal.create_event(draft("meeting-1"))
    assert created.created is True
    raw = emu.raw_event(created.provider_event_id)
    assert raw["transactionId"] == transaction_id("meeting-1")
    assert raw["ext"] == {EXTENDED_PROPERTY_ID: "meeting-1"}
    assert raw["originalStartTimeZone"] == "GMT Standard Time"
    assert raw["attendees"][0]["emailAddress"]["address"] == ATT.email
    assert raw["attendees"][0]["type"] == "required"
    assert raw["location"] == {"displayName": "Level 2 café"}
    assert "isOnlineMeeting" not in raw
    post = next(c for c in emu.calls if c.method == "POST" and c.path.endswith("/events"))
    assert 'IdType="ImmutableId"' in post.prefer
    assert post.body["start"] == {
        "dateTime": "2027-03-02T14:00:00",
        "timeZone": "GMT Standard Time",
    }


def test_transaction_id_is_a_stable_guid() -> None:
    assert transaction_id("k") == transaction_id("k") != transaction_id("k2")
    assert len(transaction_id("k")) == 36


def test_duplicate_create_leaves_one_event(cal: GraphCalendar, emu: GraphEmulator) -> None:
    first = cal.create_event(draft("dup"))
    second = cal.create_event(draft("dup"))
    assert second == type(second)(provider_event_id=first.provider_event_id, created=False)
    assert len(emu.events_of(ORG.email)) == 1
    assert emu.count("POST", "/events") == 1


def test_lost_create_response_then_retry_reconciles(cal: GraphCalendar, emu: GraphEmulator) -> None:
    emu.drop_next(match="/events", method="POST", after_processing=True)
    with pytest.raises(ProviderUnavailable):
        cal.create_event(draft("lost"))
    assert len(emu.events_of(ORG.email)) == 1  # created, but we never heard back
    retried = cal.create_event(draft("lost"))
    assert retried.created is False
    assert len(emu.events_of(ORG.email)) == 1


def test_racing_duplicate_creates_are_deduplicated_by_transaction_id(
    cal: GraphCalendar, emu: GraphEmulator
) -> None:
    emu.delay_s = 0.2  # both look-ups overlap, so both find nothing and both POST
    barrier = threading.Barrier(2)
    results = []

    def create() -> None:
        barrier.wait()
        results.append(cal.create_event(draft("race")))

    threads = [threading.Thread(target=create) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({r.provider_event_id for r in results}) == 1
    assert emu.count("POST", "/events") == 2  # the look-up could not help: transactionId did
    assert len(emu.events_of(ORG.email)) == 1


def test_teams_video_makes_an_online_meeting(cal: GraphCalendar, emu: GraphEmulator) -> None:
    created = cal.create_event(draft("teams", video="teams"))
    raw = emu.raw_event(created.provider_event_id)
    assert raw["isOnlineMeeting"] is True
    assert raw["onlineMeetingProvider"] == "teamsForBusiness"
    assert raw["onlineMeeting"]["joinUrl"].startswith("https://teams.microsoft.com/")


def test_cancel_then_cancel_again(cal: GraphCalendar, emu: GraphEmulator) -> None:
    created = cal.create_event(draft("cancel"))
    cal.cancel_event(ORG, created.provider_event_id)
    assert emu.events_of(ORG.email) == []
    cal.cancel_event(ORG, created.provider_event_id)  # already gone: counts as done
    assert [c.status for c in emu.calls if c.path.endswith("/cancel")] == [202, 404]
    state = cal.event_state(ORG, created.provider_event_id, ATT.email)
    assert state.cancelled is True


# -- responses -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "expected"),
    [
        ("accepted", AttendeeStatus.ACCEPTED),
        ("declined", AttendeeStatus.DECLINED),
        ("tentativelyAccepted", AttendeeStatus.TENTATIVE),
        ("notResponded", AttendeeStatus.NEEDS_ACTION),
    ],
)
def test_event_state_reads_the_attendee_answer(
    cal: GraphCalendar, emu: GraphEmulator, answer: str, expected: AttendeeStatus
) -> None:
    created = cal.create_event(draft(f"resp-{answer}"))
    before = cal.event_state(ORG, created.provider_event_id, ATT.email)
    assert before.response == AttendeeStatus.NEEDS_ACTION
    emu.respond(ATT.email, created.provider_event_id, answer)
    after = cal.event_state(ORG, created.provider_event_id, ATT.email.upper())
    assert after.response == expected
    assert (after.start, after.end, after.cancelled) == (
        DAY.replace(hour=14),
        DAY.replace(hour=14, minute=30),
        False,
    )


def test_event_state_of_a_missing_event_is_resource_gone(cal: GraphCalendar) -> None:
    with pytest.raises(ResourceGone):
        cal.event_state(ORG, "AAkALgNoSuchEvent", ATT.email)


def test_event_states_use_batches_of_20(cal: GraphCalendar, emu: GraphEmulator) -> None:
    ids = [cal.create_event(draft(f"b{i}", hour=8 + i % 10)).provider_event_id for i in range(24)]
    emu.respond(ATT.email, ids[3], "accepted")
    states = cal.event_states(ORG, [*ids, "AAkALgGone"], ATT.email)
    assert emu.count("POST", "/$batch") == 2
    assert set(states) == set(ids)  # the missing one is simply absent
    assert states[ids[3]].response == AttendeeStatus.ACCEPTED
    assert states[ids[0]].response == AttendeeStatus.NEEDS_ACTION


# -- contact history -----------------------------------------------------------------------


def test_last_contacts_follow_paging_and_skip_declines(tmp_path: Path) -> None:
    with GraphEmulator(tmp_path, max_page_size=2) as emu:
        emu.add_mailbox(ORG.email)
        settings = emu.settings()
        cal = GraphCalendar(settings, AppOnlyTokens(settings, MemoryTokenStore()))
        other = "bo@corp.example"
        jan = datetime(2027, 1, 4, 10, tzinfo=UTC)
        emu.seed_event(
            ORG.email, jan, jan + timedelta(hours=1), attendees=[(ATT.email, "accepted")]
        )
        feb = jan + timedelta(days=30)
        emu.seed_event(
            ORG.email,
            feb,
            feb + timedelta(hours=1),
            attendees=[(ATT.email, "none"), (other, "declined")],
        )
        mar = jan + timedelta(days=60)
        emu.seed_event(
            ORG.email, mar, mar + timedelta(hours=1), attendees=[(ATT.email, "declined")]
        )
        emu.seed_event(
            ORG.email,
            mar,
            mar + timedelta(hours=2),
            attendees=[(ATT.email, "accepted")],
            is_cancelled=True,
        )
        # The owner is an attendee of bo's meeting and went.
        apr = jan + timedelta(days=90)
        emu.seed_event(other, apr, apr + timedelta(minutes=30), attendees=[(ORG.email, "accepted")])
        found = cal.last_contacts(
            ORG,
            [ATT.email, other, "nobody@corp.example"],
            jan - timedelta(days=1),
            jan + timedelta(days=120),
        )
        assert found == {ATT.email: feb + timedelta(hours=1), other: apr + timedelta(minutes=30)}
        assert emu.count("GET", "/calendarView") >= 2  # paged
        assert emu.schema_violations == []


# -- faults --------------------------------------------------------------------------------


def test_429_with_retry_after_raises_rate_limited(
    cal: GraphCalendar, emu: GraphEmulator, sleeps: SleepRecorder
) -> None:
    emu.fail_next(429, retry_after="7")
    with pytest.raises(RateLimited) as caught:
        cal.busy(BusyQuery(WINDOW, (ORG,)))
    assert caught.value.retry_after_s == 7.0
    assert caught.value.status == 429
    assert sleeps.waits == []


def test_short_retry_after_is_waited_out_once(
    cal: GraphCalendar, emu: GraphEmulator, sleeps: SleepRecorder
) -> None:
    emu.fail_next(429, retry_after="1")
    cal.busy(BusyQuery(WINDOW, (ORG,)))  # a 429 asking for 1 s is waited out and replayed...
    assert sleeps.waits == [1.0]
    emu.fail_next(429, retry_after="1", times=2)
    with pytest.raises(RateLimited):  # ...but only once per call
        cal.busy(BusyQuery(WINDOW, (ORG,)))


def test_http_date_retry_after_counts_from_the_injected_clock(
    emu: GraphEmulator, sleeps: SleepRecorder
) -> None:
    settings = emu.settings()
    now = FixedClock(DAY.replace(hour=9))
    cal = GraphCalendar(
        settings, AppOnlyTokens(settings, MemoryTokenStore()), sleep=sleeps, clock=now
    )
    emu.fail_next(429, retry_after="Tue, 02 Mar 2027 09:00:07 GMT")
    with pytest.raises(RateLimited) as caught:  # 7 s from the injected now: the worker waits
        cal.busy(BusyQuery(WINDOW, (ORG,)))
    assert caught.value.retry_after_s == 7.0
    assert sleeps.waits == []
    emu.fail_next(429, retry_after="Tue, 02 Mar 2027 09:00:01 GMT")
    cal.busy(BusyQuery(WINDOW, (ORG,)))  # 1 s from the injected now: waited out and replayed
    assert sleeps.waits == [1.0]
    emu.fail_next(504, retry_after="Tue, 02 Mar 2027 08:00:00 GMT")
    with pytest.raises(RateLimited) as past:  # a date already gone: retry at once
        cal.busy(BusyQuery(WINDOW, (ORG,)))
    assert past.value.retry_after_s == 0.0


@pytest.mark.parametrize(
    ("status", "retry_after", "error", "rate_limited"),
    [
        (503, None, ProviderUnavailable, False),
        (504, "3", ProviderUnavailable, True),
        (500, None, ProviderUnavailable, False),
        (403, None, CalendarUnavailable, False),
        (404, None, ResourceGone, False),
        (400, None, InvalidRequest, False),
    ],
)
def test_http_errors_are_translated(
    cal: GraphCalendar,
    emu: GraphEmulator,
    status: int,
    retry_after: str | None,
    error: type[Exception],
    rate_limited: bool,
) -> None:
    emu.fail_next(status, retry_after=retry_after)
    with pytest.raises(error) as caught:
        cal.busy(BusyQuery(WINDOW, (ORG,)))
    assert isinstance(caught.value, RateLimited) is rate_limited


def test_dropped_connection_is_provider_unavailable(cal: GraphCalendar, emu: GraphEmulator) -> None:
    emu.drop_next()
    with pytest.raises(ProviderUnavailable):
        cal.busy(BusyQuery(WINDOW, (ORG,)))
    assert ORG.email in cal.busy(BusyQuery(WINDOW, (ORG,))).blocks  # next call is fine


def test_slow_response_times_out(emu: GraphEmulator) -> None:
    settings = emu.settings(timeout_s=0.3)
    cal = GraphCalendar(settings, AppOnlyTokens(settings, MemoryTokenStore()))
    cal.busy(BusyQuery(WINDOW, (ORG,)))  # token acquired while fast
    emu.delay_s = 1.0
    with pytest.raises(ProviderUnavailable, match="timed out"):
        cal.busy(BusyQuery(WINDOW, (ORG,)))
    emu.delay_s = 0.0


@pytest.mark.parametrize(("cap", "expect_over_four"), [(4, False), (10, True)])
def test_at_most_four_requests_per_mailbox(
    emu: GraphEmulator, cap: int, expect_over_four: bool
) -> None:
    settings = emu.settings()
    cal = GraphCalendar(
        settings, AppOnlyTokens(settings, MemoryTokenStore()), max_concurrency_per_mailbox=cap
    )
    created = cal.create_event(draft("conc"))
    emu.delay_s = 0.2  # long enough that all 10 threads' requests overlap, even on a slow CI
    emu.enforce_concurrency = False  # observe, do not reject, so the control case can exceed 4
    errors: list[BaseException] = []

    def read() -> None:
        try:
            cal.event_state(ORG, created.provider_event_id, ATT.email)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=read) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    peak = emu.max_concurrency[ORG.email]
    assert (peak > 4) is expect_over_four
    assert peak <= cap


def test_the_schema_check_catches_what_graph_would_mishandle(emu: GraphEmulator) -> None:
    # The emptiness asserted after every test means something only if bad bodies are caught.
    bad = {
        "subject": "x",
        "attendees": [{"email": "a@corp.example", "type": "mandatory"}],
        "onlineMeetingProvider": "teams",
        "start": {"dateTime": "2027-03-02T10:00:00", "timeZone": "Mars Standard Time"},
        "showAs": "Busy",
    }
    problems = emu.schema.validate("event", bad)
    assert sorted(p.split(":")[0] for p in problems) == [
        "event.attendees[0].email",
        "event.attendees[0].type",
        "event.onlineMeetingProvider",
        "event.showAs",
        "event.start.timeZone",
    ]
    assert emu.schema.validate_action("getSchedule", {"Schedules": ["a"], "interval": 5}) == [
        "getSchedule.interval: unknown parameter"
    ]


def test_factory_picks_app_only_or_delegated(emu: GraphEmulator) -> None:
    app = build_graph_calendar(emu.settings(), MemoryTokenStore())
    assert ORG.email in app.busy(BusyQuery(WINDOW, (ORG,))).blocks
    assert grants(emu, "client_credentials") == 1
    with pytest.raises(ConfigurationError):
        build_graph_calendar(emu.settings(client_secret=None), MemoryTokenStore())
    delegated = build_graph_calendar(
        emu.settings(client_secret=None), MemoryTokenStore(), user_email="ann@corp.example"
    )
    with pytest.raises(AuthorizationRevoked, match="goodwill connect microsoft"):
        delegated.busy(BusyQuery(WINDOW, (ORG,)))  # not connected yet
