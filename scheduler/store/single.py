"""A booking's fenced writes, and a planning round's writes, as ONE PostgreSQL statement each
(no BEGIN/COMMIT round trips).

Each statement is an ``UPDATE … RETURNING`` compare-and-set whose returned row feeds the audit
insert in the same statement (data-modifying CTEs): the audit row exists exactly when the update
moved the row, and a statement is atomic on its own, so the statement runs in autocommit. Under
READ COMMITTED a concurrent writer of the same row makes PostgreSQL wait for it and re-check the
``WHERE`` on the row's newest version, as the multi-statement transactions did.

PostgreSQL only: :class:`scheduler.store.repository.Store` uses these behind its dialect check
and keeps the portable transactions for SQLite.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    CTE,
    Integer,
    Select,
    String,
    Table,
    Text,
    and_,
    cast,
    column,
    exists,
    func,
    insert,
    literal,
    null,
    or_,
    select,
    union_all,
    update,
    values,
)
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.engine import Row

from scheduler.core.model import AttendeeStatus
from scheduler.core.states import MeetingState
from scheduler.store.tables import AuditRow, MeetingAttendeeRow, MeetingRow, UserRow, UTCDateTime

__all__ = [
    "claim_statement",
    "claimed_rows",
    "create_attempted_statement",
    "plan_round_statement",
    "transition_statement",
]

_M: Table = MeetingRow.__table__  # type: ignore[assignment]
_A: Table = AuditRow.__table__  # type: ignore[assignment]
_U: Table = UserRow.__table__  # type: ignore[assignment]
_MA: Table = MeetingAttendeeRow.__table__  # type: ignore[assignment]
_AUDIT_COLUMNS = ["meeting_id", "user_id", "at", "actor", "from_state", "to_state", "detail"]
_OWNER = "owner_"
_NEEDS = AttendeeStatus.NEEDS_ACTION.value


def _audit_cte(
    moved: CTE,
    *,
    now: datetime,
    actor: str,
    from_state: str | None,
    to_state: str | None,
    detail: str,
) -> CTE:
    """``INSERT INTO audit_log … SELECT`` one row per row ``moved`` returned (id, user_id)."""

    def state(value: str | None) -> Any:
        return null() if value is None else literal(value)

    rows = select(
        moved.c.id,
        moved.c.user_id,
        literal(now, UTCDateTime()),
        literal(actor),
        state(from_state),
        state(to_state),
        literal(detail),
    )
    return insert(_A).from_select(_AUDIT_COLUMNS, rows).returning(_A.c.meeting_id).cte("audited")


def _outcome(audited: CTE, meeting_id: int) -> Select[Any]:
    """One row: whether the update moved the meeting (an audit row was written), and whether
    the meeting exists at all."""
    return select(
        select(func.count()).select_from(audited).scalar_subquery().label("moved"),
        exists().where(_M.c.id == meeting_id).label("known"),
    )


def transition_statement(
    meeting_id: int,
    expect: MeetingState,
    target: MeetingState,
    *,
    actor: str,
    now: datetime,
    detail: str,
    attempt: int | None,
    values: dict[str, Any],
) -> Select[Any]:
    """``Store.transition`` from a known state: the fenced UPDATE and its audit row."""
    fence = [_M.c.id == meeting_id, _M.c.state == expect]
    if attempt is not None:
        fence.append(_M.c.attempts == attempt)
    moved = update(_M).where(*fence).values(**values).returning(_M.c.id, _M.c.user_id).cte("moved")
    audited = _audit_cte(
        moved, now=now, actor=actor, from_state=expect.value, to_state=target.value,
        detail=detail,
    )  # fmt: skip
    return _outcome(audited, meeting_id)


def create_attempted_statement(meeting_id: int, now: datetime, *, attempt: int) -> Select[Any]:
    """``Store.mark_create_attempted``: the fenced UPDATE (the first time kept) and its audit."""
    moved = (
        update(_M)
        .where(
            _M.c.id == meeting_id,
            _M.c.state == MeetingState.BOOKING,
            _M.c.attempts == attempt,
        )
        .values(
            create_attempted_at=func.coalesce(
                _M.c.create_attempted_at, literal(now, UTCDateTime())
            ),
            updated_at=now,
        )
        .returning(_M.c.id, _M.c.user_id)
        .cte("moved")
    )
    audited = _audit_cte(
        moved, now=now, actor="worker", from_state=None, to_state=None, detail="create attempted"
    )
    return _outcome(audited, meeting_id)


def claim_statement(meeting_id: int, now: datetime, lease_s: float, *, actor: str) -> Select[Any]:
    """Claim a due ``approved`` meeting: the UPDATE (``attempts`` + 1: a new claim number), its
    audit row, and the claimed row with its attendees and its owner's row, in one statement.

    A ``booking`` meeting whose lease expired is not claimed here (its audit detail names the
    old lease): the caller falls back to the portable claim when this returns no row.
    """
    claimed = (
        update(_M)
        .where(
            _M.c.id == meeting_id,
            _M.c.state == MeetingState.APPROVED,
            or_(_M.c.next_attempt_at.is_(None), _M.c.next_attempt_at <= now),
        )
        .values(
            state=MeetingState.BOOKING,
            lease_until=now + timedelta(seconds=lease_s),
            attempts=_M.c.attempts + 1,
            updated_at=now,
        )
        .returning(*_M.c)
        .cte("claimed")
    )
    audited = _audit_cte(
        claimed, now=now, actor=actor, from_state=MeetingState.APPROVED.value,
        to_state=MeetingState.BOOKING.value, detail="claimed",
    )  # fmt: skip
    attendees = (
        select(func.json_agg(func.json_build_array(_MA.c.email, _MA.c.status)))
        .where(_MA.c.meeting_id == claimed.c.id)
        .scalar_subquery()
        .label("attendee_rows")
    )
    owner = [c.label(f"{_OWNER}{c.key}") for c in _U.c]
    return (
        select(*claimed.c, *owner, attendees)
        .select_from(claimed.outerjoin(_U, and_(_U.c.id == claimed.c.user_id)))
        .add_cte(audited)
    )


def claimed_rows(row: Row[Any]) -> tuple[MeetingRow, UserRow | None]:
    """The claim statement's row as (transient) ORM rows, for the usual record builders."""
    data = row._mapping
    meeting = MeetingRow(
        **{a.key: data[a.columns[0].key] for a in sa_inspect(MeetingRow).column_attrs}
    )
    meeting.attendees = [
        MeetingAttendeeRow(meeting_id=meeting.id, email=email, status=status)
        for email, status in sorted(data["attendee_rows"] or [])
    ]
    if data[f"{_OWNER}id"] is None:
        return meeting, None
    owner = UserRow(
        **{a.key: data[f"{_OWNER}{a.columns[0].key}"] for a in sa_inspect(UserRow).column_attrs}
    )
    return meeting, owner


def plan_round_statement(
    user_id: int,
    rows: Sequence[dict[str, Any]],
    attendees: Mapping[str, Sequence[str]],
    skips: Sequence[str],
    *,
    next_plan_at: datetime,
    now: datetime,
    actor: str,
) -> Select[Any]:
    """``Store.record_plan_round`` in one statement: the new meetings (``INSERT … ON CONFLICT
    DO NOTHING``: a known key keeps its row), the attendees of those inserted, one ``created``
    audit row per inserted meeting then one per skip (in that order), and the user's next round.

    Returns rows ``(id, key)`` of the meetings it inserted; a key that existed (a retried
    round) is not among them, and the caller reads its id. Without proposals, one row
    ``(user id, NULL)``.
    """
    at = literal(now, UTCDateTime())
    planned = (
        update(_U)
        .where(_U.c.id == user_id)
        .values(next_plan_at=next_plan_at, last_planned_at=now)
        .returning(_U.c.id)
        .cte("planned")
    )
    ctes: list[CTE] = [planned]
    audit_rows: list[Select[Any]] = []
    no_key = cast(null(), String).label("key")
    main: Select[Any] = select(planned.c.id, no_key)
    if rows:
        inserted = (
            pg_insert(_M)
            .values(list(rows))
            .on_conflict_do_nothing(index_elements=["idempotency_key"])
            .returning(_M.c.id, _M.c.idempotency_key, _M.c.state)
            .cte("inserted")
        )
        keys = list(dict.fromkeys(r["idempotency_key"] for r in rows))
        order = values(column("key", String), column("ord", Integer), name="proposal_order").data(
            [(k, i) for i, k in enumerate(keys)]
        )
        audit_rows.append(
            _audit_row(
                order.c.ord, inserted.c.id, user_id, at, actor, inserted.c.state,
                literal("created", Text),
            ).join_from(inserted, order, order.c.key == inserted.c.idempotency_key)
        )  # fmt: skip
        people = [(k, e) for k, emails in attendees.items() for e in emails]
        if people:
            invited = values(column("key", String), column("email", String), name="invited").data(
                people
            )
            ctes.append(
                insert(_MA)
                .from_select(
                    ["meeting_id", "email", "status"],
                    select(inserted.c.id, invited.c.email, literal(_NEEDS)).join_from(
                        inserted, invited, invited.c.key == inserted.c.idempotency_key
                    ),
                )
                .returning(_MA.c.meeting_id)
                .cte("invited_rows")
            )
        main = select(inserted.c.id, inserted.c.idempotency_key.label("key"))
    if skips:
        skipped = values(column("ord", Integer), column("detail", Text), name="skips").data(
            [(len(rows) + i, detail) for i, detail in enumerate(skips)]
        )
        audit_rows.append(
            _audit_row(
                skipped.c.ord, cast(null(), Integer), user_id, at, actor, cast(null(), String),
                skipped.c.detail,
            )
        )  # fmt: skip
    if audit_rows:
        both = union_all(*audit_rows).subquery("audit_rows")
        ordered = select(*(both.c[name] for name in _AUDIT_COLUMNS)).order_by(both.c.ord)
        ctes.append(
            insert(_A).from_select(_AUDIT_COLUMNS, ordered).returning(_A.c.id).cte("audited")
        )
    return main.add_cte(*ctes)


def _audit_row(
    ord_: Any, meeting_id: Any, user_id: int, at: Any, actor: str, to_state: Any, detail: Any
) -> Select[Any]:
    """One branch of the round's audit rows: ``ord`` (their order), then the audit columns."""
    return select(
        ord_.label("ord"),
        meeting_id.label("meeting_id"),
        literal(user_id).label("user_id"),
        at.label("at"),
        literal(actor).label("actor"),
        cast(null(), String).label("from_state"),
        to_state.label("to_state"),
        detail.label("detail"),
    )
