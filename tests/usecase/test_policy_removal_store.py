"""The store calls behind a removed policy file, held to one behaviour on the fake, SQLite and
PostgreSQL: the mark keeps its first time, a marked owner is never claimed for planning nor has
meetings sent for booking, and is claimed for the cancelling round only after the grace."""

from __future__ import annotations

from datetime import timedelta

from scheduler.app.records import NewMeeting
from scheduler.core.states import MeetingState
from tests.usecase.stores import InspectableStore
from tests.usecase.world import ALEX, KIM, NOW, SAM

RETRY_S = 300.0


def _approved(store: InspectableStore, user_id: int, key: str) -> int:
    start = NOW + timedelta(days=2)
    (mid,) = store.add_meetings(
        user_id,
        [
            NewMeeting(
                stakeholder_email=KIM,
                kind="coffee",
                start=start,
                end=start + timedelta(minutes=30),
                mode="auto",
                idempotency_key=key,
                provider="ics",
                state=MeetingState.APPROVED,
            )
        ],
        now=NOW,
    )
    return mid


def test_a_removed_owner_is_claimed_only_for_the_round_after_the_grace(
    store: InspectableStore,
) -> None:
    alex = store.upsert_user(ALEX, "policies/alex.yaml", "h1", now=NOW)
    sam = store.upsert_user(SAM, "policies/sam.yaml", "h2", now=NOW)
    alex_meeting = _approved(store, alex, "k-alex")
    sam_meeting = _approved(store, sam, "k-sam")

    assert store.mark_policy_missing(alex, now=NOW) == NOW
    later = NOW + timedelta(minutes=5)
    assert store.mark_policy_missing(alex, now=later) == NOW  # the first time is kept
    assert store.mark_policy_missing(9999, now=NOW) is None
    user = store.get_user(alex)
    assert user is not None
    assert user.policy_missing_since == NOW
    assert [u.id for u in store.all_users()] == [alex, sam]

    # Not planned, nothing sent for booking; the other owner is unaffected.
    assert store.claim_users_for_planning(later, 10, RETRY_S) == [sam]
    assert store.approved_needing_send(later, 10) == [sam_meeting]
    # Within the grace the cancelling round is not due; after it, it is claimed once.
    grace = timedelta(hours=6)
    assert store.claim_removed_owners(later - grace, later, 10, RETRY_S) == []
    after = NOW + grace + timedelta(minutes=1)
    assert store.claim_removed_owners(after - grace, after, 10, RETRY_S) == [alex]
    assert store.claim_removed_owners(after - grace, after, 10, RETRY_S) == []  # pushed on

    # The file is back: planning resumes at once, the meeting is sent again.
    back = after + timedelta(minutes=1)
    assert store.clear_policy_missing(alex, now=back)
    assert not store.clear_policy_missing(alex, now=back)
    user = store.get_user(alex)
    assert user is not None
    assert user.policy_missing_since is None
    assert user.next_plan_at == back
    assert alex in store.claim_users_for_planning(back, 10, RETRY_S)
    assert alex_meeting in store.approved_needing_send(back, 10)
