"""The owner's digest e-mail and notices, on the fake store, SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy

from scheduler.app import digest
from scheduler.app.conflicts import CONFLICT_ASKED, CONFLICT_NOTIFY, CONFLICT_STUCK
from scheduler.app.digest import OwnerMailer
from scheduler.app.records import AuditEntry, OwnerMailKind
from scheduler.core.errors import ProviderUnavailable
from scheduler.core.states import MeetingState
from tests.concurrency import run_together
from tests.usecase.world import ALEX, SAM, World

#: Alex in Kolkata, a digest on Mondays at 08:30; Sam's name needs escaping; notes, tiers and
#: power tags that must never reach an e-mail.
POLICY = """\
owner: {email: alex@corp.example, name: Alex Doe, timezone: Asia/Kolkata}
calendar: {provider: ics}
tiers:
  mentor: {every: 4w, mode: propose}
stakeholders:
  - {email: sam@corp.example, name: "Sam <b>Lee</b> & Co", tier: mentor,
     power: [knowledge], notes: "SECRET-NOTE-42", department: Finance}
notify: {digest: "mon 08:30", on: [proposal, declined]}
allowed_domains: [corp.example]
"""

FIRST_DIGEST = datetime(2027, 3, 8, 3, 0, tzinfo=UTC)  # Monday 08:30 in Kolkata after NOW


class FakeLinks:
    def page(self) -> str:
        return "https://gw.example/?from=mail&x=1"

    def action(self, email: str, meeting_id: int, action: str) -> str:
        return f"https://gw.example/action/{meeting_id}/{action}?e={email}"


class SinkMailer:
    """Keeps every message; raises ``ProviderUnavailable`` for the first ``failures`` sends."""

    def __init__(self, failures: int = 0) -> None:
        self.sent: list[EmailMessage] = []
        self.failures = failures
        self._lock = threading.Lock()

    def send(self, message: EmailMessage) -> None:
        with self._lock:
            if self.failures > 0:
                self.failures -= 1
                raise ProviderUnavailable("SMTP answered 451", provider="smtp")
            self.sent.append(message)


def _post(mailer: SinkMailer) -> OwnerMailer:
    return OwnerMailer(links=FakeLinks(), mailer=mailer, sender="goodwill@corp.example")


def _setup(world: World) -> int:
    world.write_policy(ALEX, POLICY)
    world.register()
    return world.add_meeting(ALEX, SAM, datetime(2027, 3, 10, 5, 0, tzinfo=UTC),
                             state=MeetingState.PROPOSED)  # fmt: skip


def _parts(message: EmailMessage) -> tuple[str, str]:
    parsed = message_from_bytes(message.as_bytes(), policy=default_policy)
    assert isinstance(parsed, EmailMessage)
    text = parsed.get_body(preferencelist=("plain",))
    page = parsed.get_body(preferencelist=("html",))
    assert text is not None
    assert page is not None
    return str(text.get_content()), str(page.get_content())


def test_registration_schedules_the_digest_in_the_owners_zone(world: World) -> None:
    _setup(world)
    assert world.user(ALEX).next_digest_at == FIRST_DIGEST
    world.register()  # registering again keeps a time still on the schedule
    assert world.user(ALEX).next_digest_at == FIRST_DIGEST
    world.write_policy(ALEX, POLICY.replace('digest: "mon 08:30"', 'digest: "tue 09:00"'))
    world.register()
    assert world.user(ALEX).next_digest_at == datetime(2027, 3, 2, 3, 30, tzinfo=UTC)
    world.write_policy(ALEX, POLICY.replace('digest: "mon 08:30", ', ""))
    world.register()
    assert world.user(ALEX).next_digest_at is None


def test_the_digest_lists_what_waits_with_links_and_escapes_names(world: World) -> None:
    meeting_id = _setup(world)
    mailer = SinkMailer()
    assert digest.send_due_digests(world.p, _post(mailer)) == []  # not due yet
    world.advance_past(FIRST_DIGEST)
    sent = digest.send_due_digests(world.p, _post(mailer))
    assert [s.ok for s in sent] == [True]
    (message,) = mailer.sent
    assert message["Subject"] == "goodwill: 1 proposal waits for you"
    assert message["To"] == "Alex Doe <alex@corp.example>"
    assert message["From"] == "goodwill@corp.example"
    assert message["Date"]
    assert message["Message-ID"]
    assert message.get_content_type() == "multipart/alternative"
    text, page = _parts(message)
    for part in (text, page):
        assert "Wed 10 Mar 10:30 (Asia/Kolkata)" in part  # 05:00 UTC on Alex's clock
        assert f"https://gw.example/action/{meeting_id}/approve" in part
        assert f"https://gw.example/action/{meeting_id}/decline" in part
        assert "https://gw.example/?from=mail" in part  # a plain link to the page, never dies
        assert "signin" not in part  # no short-lived sign-in link in a weekly mail
        for private in ("SECRET-NOTE-42", "mentor", "knowledge", "Finance"):
            assert private not in part
    assert "Sam <b>Lee</b> & Co" in text
    assert "Sam &lt;b&gt;Lee&lt;/b&gt; &amp; Co" in page
    assert "<b>Lee</b>" not in page
    assert "gw.example/?from=mail&amp;x=1" in page  # attribute escaped too
    # The next digest is a week later, and this period is never sent again.
    assert world.user(ALEX).next_digest_at == FIRST_DIGEST + timedelta(weeks=1)
    assert digest.send_due_digests(world.p, _post(mailer)) == []
    assert len(mailer.sent) == 1


def test_what_happened_since_the_last_digest_is_in_plain_words(world: World) -> None:
    meeting_id = _setup(world)
    mailer = SinkMailer()
    world.advance_past(FIRST_DIGEST)
    digest.send_due_digests(world.p, _post(mailer))
    world.advance(timedelta(hours=1))
    assert world.store.transition(
        meeting_id, MeetingState.EXPIRED, actor="tick", now=world.clock.now(),
        expect=MeetingState.PROPOSED,
    )  # fmt: skip
    world.advance_past(FIRST_DIGEST + timedelta(weeks=1))
    digest.send_due_digests(world.p, _post(mailer))
    assert len(mailer.sent) == 2
    text, _ = _parts(mailer.sent[1])
    assert "Since your last digest:" in text
    assert "The proposal to meet Sam <b>Lee</b> & Co on Wed 10 Mar 10:30" in text
    assert "goodwill proposed a coffee" not in text  # before the last digest
    assert mailer.sent[1]["Subject"] == "goodwill: your digest (nothing waits for you)"


def test_a_failed_send_is_retried_on_a_later_round_and_never_lost(world: World) -> None:
    _setup(world)
    mailer = SinkMailer(failures=1)
    post = _post(mailer)
    world.advance_past(FIRST_DIGEST)
    (failed,) = digest.send_owner_mails(world.p, post)
    assert not failed.ok
    assert failed.error is not None
    assert "451" in failed.error
    assert world.user(ALEX).next_digest_at == FIRST_DIGEST  # still due
    assert digest.send_due_digests(world.p, post) == []  # the retry is not due yet
    world.advance(timedelta(seconds=post.retry_s + 1))
    (sent,) = digest.send_due_digests(world.p, post)
    assert sent.ok
    assert len(mailer.sent) == 1
    last = world.store.last_owner_mail(world.user_id(ALEX), OwnerMailKind.DIGEST)
    assert last is not None
    assert last.attempts == 2
    assert world.user(ALEX).next_digest_at == FIRST_DIGEST + timedelta(weeks=1)


def test_two_senders_at_once_send_one_digest(world: World) -> None:
    _setup(world)
    world.advance_past(FIRST_DIGEST)
    mailer = SinkMailer()
    posts = [_post(mailer), _post(mailer)]
    results: list[list[digest.SentMail]] = [[], []]

    def work(i: int, barrier: threading.Barrier) -> None:
        barrier.wait()
        results[i] = digest.send_due_digests(world.p, posts[i])

    run_together(2, work)
    assert len(mailer.sent) == 1
    assert sorted(len(r) for r in results) == [0, 1]


def test_a_crashed_sender_is_taken_over_after_its_lease(world: World) -> None:
    _setup(world)
    world.advance_past(FIRST_DIGEST)
    user_id = world.user_id(ALEX)
    key = FIRST_DIGEST.isoformat()
    claim = world.store.claim_owner_mail(
        user_id, OwnerMailKind.DIGEST, key, now=world.clock.now(), lease_s=60
    )
    assert claim is not None  # ... and the sender dies here
    mailer = SinkMailer()
    assert digest.send_due_digests(world.p, _post(mailer)) == []
    world.advance(timedelta(seconds=61))
    assert [s.ok for s in digest.send_due_digests(world.p, _post(mailer))] == [True]
    # The crashed sender's late finish changes nothing.
    assert not world.store.finish_owner_mail(
        claim.id, attempt=claim.attempts, now=world.clock.now(), error="late"
    )
    assert len(mailer.sent) == 1


def test_notices_go_once_per_matching_event(world: World) -> None:
    meeting_id = _setup(world)
    mailer = SinkMailer()
    post = _post(mailer)
    sent = digest.send_notices(world.p, post)
    assert [s.kind for s in sent] == [OwnerMailKind.NOTICE]
    (notice,) = mailer.sent
    assert (
        notice["Subject"] == "goodwill: a coffee with Sam <b>Lee</b> & Co waits for your approval"
    )
    text, page = _parts(notice)
    assert f"https://gw.example/action/{meeting_id}/approve" in text
    assert "Sam &lt;b&gt;Lee" in page
    world.advance(post.notice_every)
    assert digest.send_notices(world.p, post) == []  # the same event: never twice
    assert world.store.transition(
        meeting_id, MeetingState.EXPIRED, actor="tick", now=world.clock.now(),
        expect=MeetingState.PROPOSED,
    )  # fmt: skip
    world.advance(post.notice_every)
    assert digest.send_notices(world.p, post) == []  # expired is not in notify.on
    assert len(mailer.sent) == 1


def test_a_failed_notice_is_sent_on_a_later_pass(world: World) -> None:
    _setup(world)
    mailer = SinkMailer(failures=1)
    post = _post(mailer)
    assert [s.ok for s in digest.send_notices(world.p, post)] == [False]
    world.advance(post.notice_every)
    assert digest.send_notices(world.p, post) == []  # its retry is not due yet
    world.advance(timedelta(seconds=post.retry_s + 1))
    assert [s.ok for s in digest.send_notices(world.p, post)] == [True]
    world.advance(timedelta(seconds=post.retry_s + 1))
    assert digest.send_notices(world.p, post) == []
    assert len(mailer.sent) == 1


def test_a_notice_pass_reads_only_new_events(world: World) -> None:
    _setup(world)
    post = _post(SinkMailer())
    assert len(digest.send_notices(world.p, post)) == 1
    world.advance(post.notice_every)
    seen: list[int] = []
    real = world.store.events_after

    def counting(after_id: int, *, since: datetime, limit: int) -> list[AuditEntry]:
        found = real(after_id, since=since, limit=limit)
        seen.extend(e.id for e in found)
        return found

    scans: list[str] = []
    world.store.events_after = counting  # type: ignore[method-assign]
    world.store.all_users = lambda: scans.append("all_users") or []  # type: ignore[method-assign]
    world.store.user_events = (  # type: ignore[method-assign]
        lambda user_id, *, since: scans.append("user_events") or []
    )
    assert digest.send_notices(world.p, post) == []
    assert seen == []  # nothing new: no audit row read again
    assert scans == []  # and no pass over every user


def test_conflict_details_are_recognised_as_conflicts() -> None:
    for detail in (CONFLICT_ASKED, CONFLICT_NOTIFY, CONFLICT_STUCK):
        assert detail.startswith(digest.CONFLICT_PREFIX)


# -- group meetings, introductions and the owner's note ----------------------------------------

GROUPS_POLICY = """\
owner: {email: alex@corp.example, name: Alex Doe, timezone: Europe/London}
calendar: {provider: ics}
tiers:
  mentor: {every: 4w, mode: propose}
stakeholders:
  - {email: sam@corp.example, name: Sam Lee, tier: mentor, notes: "SECRET-NOTE-42",
     power: [knowledge]}
  - {email: maria@corp.example, name: Maria Garcia, tier: mentor}
  - {email: jon@corp.example, name: Jon Berg, tier: mentor}
  - {email: nina@corp.example, name: Nina Park, tier: mentor, status: to_meet,
     via: maria@corp.example}
groups:
  - {name: design-data-lunch, members: [sam@corp.example, maria@corp.example, jon@corp.example],
     every: 4w, kind: lunch, duration: 60m, size: "2..3", quorum: 0.6, presenter: rotate}
notify: {digest: "mon 08:30", on: [proposal, declined]}
allowed_domains: [corp.example]
"""
NOTE = "ask Maria to introduce you to Nina Park (nina@corp.example)"


def _group_setup(world: World) -> dict[str, int]:
    from scheduler.app.records import NewMeeting

    world.write_policy(ALEX, GROUPS_POLICY)
    world.register()
    start = datetime(2027, 3, 10, 12, 0, tzinfo=UTC)

    def new(key: str, first: str, **more: object) -> NewMeeting:
        return NewMeeting(
            stakeholder_email=first, kind=str(more.pop("kind", "coffee")), start=start,
            end=start + timedelta(hours=1), mode="propose", idempotency_key=key,
            provider="fake", reason="a good slot", **more,  # type: ignore[arg-type]
        )  # fmt: skip

    ids = world.store.add_meetings(
        world.user_id(ALEX),
        [
            new(
                "g1",
                "jon@corp.example",
                kind="lunch",
                group_name="design-data-lunch",
                attendees=("jon@corp.example", "maria@corp.example", SAM),
                presenter="jon@corp.example",
                quorum=2,
            ),
            new(
                "i1",
                "maria@corp.example",
                group_name="introduction",
                attendees=("maria@corp.example", "nina@corp.example"),
                quorum=2,
            ),
            new("m1", "maria@corp.example", owner_note=NOTE),
        ],
        now=world.clock.now(),
    )
    return dict(zip(("lunch", "intro", "maria"), ids, strict=True))


def test_the_digest_describes_groups_and_introductions_and_carries_the_owner_note(
    world: World,
) -> None:
    ids = _group_setup(world)
    assert world.meeting(ids["maria"]).owner_note == NOTE  # the store keeps it
    mailer = SinkMailer()
    world.advance_past(FIRST_DIGEST)
    (sent,) = digest.send_due_digests(world.p, _post(mailer))
    assert sent.ok
    (message,) = mailer.sent
    assert message["Subject"] == "goodwill: 3 proposals wait for you"
    text, page = _parts(message)
    lunch = (
        "Lunch: design-data-lunch, with Jon Berg, Maria Garcia, Sam Lee; Jon Berg presents; "
        "it stands while 2 of 3 can come"
    )
    intro = "Introduction: Maria Garcia introduces you to Nina Park, with Maria Garcia, Nina Park"
    for part in (text, page):
        assert lunch in part
        assert intro in part
        for key in ids.values():
            assert f"https://gw.example/action/{key}/approve" in part
        for private in ("SECRET-NOTE-42", "mentor", "knowledge"):
            assert private not in part
    assert f"note for you only: {NOTE}" in text  # the owner's own mail: the note is there
    assert f"Note for you only: {NOTE}" in page


def test_group_events_and_below_quorum_are_told_in_plain_words(world: World) -> None:
    from scheduler.app.groups import below_quorum_text

    ids = _group_setup(world)
    m = world.meeting(ids["lunch"])
    policy = world.policy()
    proposed = AuditEntry(1, m.id, m.user_id, world.clock.now(), "planner", None, "proposed", "")
    line = digest.describe_event(proposed, m, digest._with(policy, m), policy)
    assert line == (
        "goodwill proposed a lunch with design-data-lunch (Jon Berg, Maria Garcia, Sam Lee) on "
        "Wed 10 Mar 12:00 (Europe/London)"
    )
    below = AuditEntry(
        2, m.id, m.user_id, world.clock.now(), "sync", None, None, below_quorum_text(2, 3, 2)
    )
    assert digest.notice_kind(below) == "declined"
    told = digest.describe_event(below, m, digest._with(policy, m), policy)
    assert told is not None
    assert told == (
        "Lunch design-data-lunch on Wed 10 Mar 12:00 (Europe/London): 2 of 3 declined; it needs "
        "2 attending to stand — decide whether to keep or cancel it"
    )
    assert "quorum (" not in told  # said once, not the audit row pasted in
    intro = world.meeting(ids["intro"])
    assert digest._with(policy, intro) == "Maria Garcia and Nina Park (an introduction)"


def test_a_cancelled_meeting_is_told_with_its_plain_reason(world: World) -> None:
    from scheduler.app.decisions import WITHDRAWN_PAIR
    from scheduler.app.owner import CANCELLED_BY_OWNER

    meeting_id = _setup(world)
    m = world.meeting(meeting_id)
    policy = world.policy()
    name = digest._with(policy, m)

    def told(detail: str) -> str | None:
        entry = AuditEntry(
            1, m.id, m.user_id, world.clock.now(), "planner", "proposed", "cancelled", detail
        )
        return digest.describe_event(entry, m, name, policy)

    start = f"The coffee with {name} on Wed 10 Mar 10:30 (Asia/Kolkata) was cancelled"
    assert told(WITHDRAWN_PAIR) == f"{start}: their side booked a meeting with you first"
    assert told("pair_taken: their meeting 7 comes first") == (
        f"{start}: their side booked a meeting with you first"
    )
    assert told(CANCELLED_BY_OWNER) == f"{start}: you cancelled it"
    assert told("declined by the owner") == f"{start}: you declined it"
    assert told("unanswered") == f"{start}: the slot passed without an answer"
    assert told("slot_taken: clashes with meeting 3") == (
        f"{start}: the slot was taken before it could be booked; goodwill plans again"
    )
    assert told("something new") == start  # no reason known: none made up
