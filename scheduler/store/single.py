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

import json
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    CTE,
    Dialect,
    Integer,
    Select,
    String,
    Table,
    Text,
    TextClause,
    and_,
    any_,
    bindparam,
    exists,
    func,
    insert,
    literal,
    null,
    or_,
    select,
    text,
    tuple_,
    update,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Row
from sqlalchemy.types import TypeDecorator

from scheduler.app.records import BookedEvent
from scheduler.core.model import AttendeeStatus
from scheduler.core.states import MeetingState
from scheduler.store.records import Meeting, User, meeting_from_values, user_from_row
from scheduler.store.tables import AuditRow, MeetingAttendeeRow, MeetingRow, UserRow, UTCDateTime

__all__ = [
    "bookings_statement",
    "claim_statement",
    "claimed_rows",
    "claims_statement",
    "contacts_statement",
    "create_attempted_statement",
    "creates_attempted_statement",
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


def _audit_cte(moved: CTE, *, from_state: str | None, to_state: str | None) -> CTE:
    """``INSERT INTO audit_log … SELECT`` one row per row ``moved`` returned (id, user_id), with
    the parameters ``at``, ``actor`` and ``detail``."""

    def state(value: str | None) -> Any:
        return null() if value is None else literal(value)

    rows = select(
        moved.c.id,
        moved.c.user_id,
        bindparam("p_at", type_=UTCDateTime()),
        bindparam("p_actor", type_=String()),
        state(from_state),
        state(to_state),
        bindparam("p_detail", type_=Text()),
    )
    return insert(_A).from_select(_AUDIT_COLUMNS, rows).returning(_A.c.meeting_id).cte("audited")


def _outcome(audited: CTE) -> Select[Any]:
    """One row: whether the update moved the meeting ``mid`` (an audit row was written), and
    whether the meeting exists at all."""
    return select(
        select(func.count()).select_from(audited).scalar_subquery().label("moved"),
        exists().where(_M.c.id == bindparam("p_mid")).label("known"),
    )


#: The statements below are built once per shape and run with parameters: SQLAlchemy then
#: reuses the statement's cache key and its compiled form (building and compiling a statement
#: of CTEs afresh cost more CPU than the round trip).
Statement = tuple[Select[Any], dict[str, Any]]


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
) -> Statement:
    """``Store.transition`` from a known state: the fenced UPDATE and its audit row."""
    statement = _transition_shape(expect, target, attempt is not None, tuple(sorted(values)))
    params = {f"p_v_{k}": v for k, v in values.items()}
    params.update(p_mid=meeting_id, p_attempt=attempt, p_at=now, p_actor=actor, p_detail=detail)
    return statement, params


@lru_cache(maxsize=512)
def _transition_shape(
    expect: MeetingState, target: MeetingState, fenced: bool, columns: tuple[str, ...]
) -> Select[Any]:
    fence = [_M.c.id == bindparam("p_mid"), _M.c.state == expect]
    if fenced:
        fence.append(_M.c.attempts == bindparam("p_attempt"))
    sets = {k: bindparam(f"p_v_{k}", type_=_M.c[k].type) for k in columns}
    moved = update(_M).where(*fence).values(**sets).returning(_M.c.id, _M.c.user_id).cte("moved")
    return _outcome(_audit_cte(moved, from_state=expect.value, to_state=target.value))


def _announced(*which: Any) -> CTE:
    """The fenced UPDATE of the meetings ``which`` selects in ``booking`` that records their
    create as attempted (the first time kept), returning ``(id, user_id)``."""
    return (
        update(_M)
        .where(*which, _M.c.state == MeetingState.BOOKING)
        .values(
            create_attempted_at=func.coalesce(
                _M.c.create_attempted_at, bindparam("p_at", type_=UTCDateTime())
            ),
            updated_at=bindparam("p_at", type_=UTCDateTime()),
        )
        .returning(_M.c.id, _M.c.user_id)
        .cte("moved")
    )


def _create_attempted_shape() -> Select[Any]:
    moved = _announced(_M.c.id == bindparam("p_mid"), _M.c.attempts == bindparam("p_attempt"))
    return _outcome(_audit_cte(moved, from_state=None, to_state=None))


_CREATE_ATTEMPTED = _create_attempted_shape()


def create_attempted_statement(meeting_id: int, now: datetime, *, attempt: int) -> Statement:
    """``Store.mark_create_attempted``: the fenced UPDATE (the first time kept) and its audit."""
    return _CREATE_ATTEMPTED, {
        "p_mid": meeting_id, "p_attempt": attempt, "p_at": now, "p_actor": "worker",
        "p_detail": "create attempted",
    }  # fmt: skip


def _creates_attempted_shape() -> Select[Any]:
    """``Store.mark_creates_attempted``: the announce of several ``(id, attempts)`` claims in
    one statement, an audit row each; returns the ids that moved."""
    claims = tuple_(_M.c.id, _M.c.attempts).in_(bindparam("p_claims", expanding=True))
    audited = _audit_cte(_announced(claims), from_state=None, to_state=None)
    return select(audited.c.meeting_id)


_CREATES_ATTEMPTED = _creates_attempted_shape()


def creates_attempted_statement(claims: Sequence[tuple[int, int]], now: datetime) -> Statement:
    """``Store.mark_creates_attempted``: the claims ``(meeting id, claim number)``."""
    pairs = [(int(mid), int(attempt)) for mid, attempt in claims]
    return _CREATES_ATTEMPTED, {
        "p_claims": pairs, "p_at": now, "p_actor": "worker", "p_detail": "create attempted",
    }  # fmt: skip


def _bookings_shape() -> Select[Any]:
    """``Store.record_bookings``: ``booking`` → ``booked`` for several claims at once, each
    fenced on its claim number and given its event id (the rows come as arrays, unnested), an
    audit row each with its own detail; returns the ids that moved."""
    given = (
        func.unnest(
            bindparam("p_ids", type_=postgresql.ARRAY(Integer)),
            bindparam("p_attempts", type_=postgresql.ARRAY(Integer)),
            bindparam("p_events", type_=postgresql.ARRAY(Text)),
            bindparam("p_details", type_=postgresql.ARRAY(Text)),
        )
        .table_valued("mid", "attempt", "event_id", "detail")
        .render_derived(name="given", with_types=False)
    )
    now = bindparam("p_at", type_=UTCDateTime())
    moved = (
        update(_M)
        .where(
            _M.c.id == given.c.mid,
            _M.c.attempts == given.c.attempt,
            _M.c.state == MeetingState.BOOKING,
        )
        .values(
            state=MeetingState.BOOKED,
            provider_event_id=given.c.event_id,
            last_error=null(),
            lease_until=null(),
            updated_at=now,
        )
        .returning(_M.c.id, _M.c.user_id, given.c.detail)
        .cte("moved")
    )
    rows = select(
        moved.c.id,
        moved.c.user_id,
        now,
        bindparam("p_actor", type_=String()),
        literal(MeetingState.BOOKING.value),
        literal(MeetingState.BOOKED.value),
        moved.c.detail,
    )
    audited = insert(_A).from_select(_AUDIT_COLUMNS, rows).returning(_A.c.meeting_id)
    return select(audited.cte("audited").c.meeting_id)


_BOOKINGS = _bookings_shape()


def bookings_statement(booked: Sequence[BookedEvent], now: datetime, *, actor: str) -> Statement:
    """``Store.record_bookings``: the booked events, as four arrays."""
    return _BOOKINGS, {
        "p_ids": [b.meeting_id for b in booked], "p_attempts": [b.attempt for b in booked],
        "p_events": [b.provider_event_id for b in booked], "p_details": [b.detail for b in booked],
        "p_at": now, "p_actor": actor,
    }  # fmt: skip


def _claim_shape(*, many: bool = False) -> Select[Any]:
    """The claim statement; ``many``: of the meetings ``p_mids``, their rows locked in id
    order first (two claims of overlapping sets then wait for each other, never deadlock)."""
    now = bindparam("p_at", type_=UTCDateTime())
    due = [
        _M.c.state == MeetingState.APPROVED,
        or_(_M.c.next_attempt_at.is_(None), _M.c.next_attempt_at <= now),
    ]
    if many:
        locked = (
            select(_M.c.id)
            .where(_M.c.id == any_(bindparam("p_mids", type_=postgresql.ARRAY(Integer))), *due)
            .order_by(_M.c.id)
            .with_for_update()
        )
        which: list[Any] = [_M.c.id.in_(locked.scalar_subquery()), *due]
    else:
        which = [_M.c.id == bindparam("p_mid"), *due]
    claimed = (
        update(_M)
        .where(*which)
        .values(
            state=MeetingState.BOOKING,
            lease_until=bindparam("p_lease_until", type_=UTCDateTime()),
            attempts=_M.c.attempts + 1,
            updated_at=now,
        )
        .returning(*_M.c)
        .cte("claimed")
    )
    audited = _audit_cte(
        claimed, from_state=MeetingState.APPROVED.value, to_state=MeetingState.BOOKING.value
    )
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


_CLAIM = _claim_shape()
_CLAIM_MANY = _claim_shape(many=True)


def claim_statement(meeting_id: int, now: datetime, lease_s: float, *, actor: str) -> Statement:
    """Claim a due ``approved`` meeting: the UPDATE (``attempts`` + 1: a new claim number), its
    audit row, and the claimed row with its attendees and its owner's row, in one statement.

    A ``booking`` meeting whose lease expired is not claimed here (its audit detail names the
    old lease): the caller falls back to the portable claim when this returns no row.
    """
    return _CLAIM, {
        "p_mid": meeting_id, "p_at": now, "p_lease_until": now + timedelta(seconds=lease_s),
        "p_actor": actor, "p_detail": "claimed",
    }  # fmt: skip


def claims_statement(
    meeting_ids: Sequence[int], now: datetime, lease_s: float, *, actor: str
) -> Statement:
    """:func:`claim_statement` for several meetings in one statement: a row per meeting it
    claimed (the others are not due ``approved`` meetings: the caller tries each the portable
    way, as one claim that returns no row)."""
    return _CLAIM_MANY, {
        "p_mids": [int(m) for m in meeting_ids], "p_at": now,
        "p_lease_until": now + timedelta(seconds=lease_s), "p_actor": actor, "p_detail": "claimed",
    }  # fmt: skip


class _Owner:
    """The owner's columns of a claim row (``owner_<column>``) as attributes."""

    __slots__ = ("_data",)

    def __init__(self, data: Any) -> None:
        self._data = data

    def __getattr__(self, name: str) -> Any:
        try:
            return self._data[f"{_OWNER}{name}"]
        except KeyError:
            raise AttributeError(name) from None


def claimed_rows(row: Row[Any]) -> tuple[Meeting, User | None]:
    """The claim statement's row as the meeting and its owner (no ORM instances)."""
    data = row._mapping
    meeting = meeting_from_values(row, [tuple(a) for a in data["attendee_rows"] or []])
    if data[f"{_OWNER}id"] is None:
        return meeting, None
    return meeting, user_from_row(_Owner(data))


class _JSONParam(TypeDecorator[Any]):
    """A parameter sent as JSON text (cast to ``jsonb`` in the statement); a datetime in it is
    written as :class:`UTCDateTime` writes it (aware, in UTC: the same ``timestamptz``), and a
    naive one is refused the same way."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: Any, dialect: Dialect) -> str:
        def encode(item: Any) -> Any:
            if isinstance(item, datetime):
                aware = _UTC.process_bind_param(item, dialect)
                assert aware is not None
                return aware.isoformat()
            raise TypeError(f"{type(item).__name__} cannot be sent as JSON")

        return json.dumps(value, default=encode, ensure_ascii=False, separators=(",", ":"))


_UTC = UTCDateTime()
#: A new meeting's columns as a round writes them (the keys of ``Store._meeting_rows``' rows).
_ROUND_COLUMNS = (
    "user_id", "stakeholder_email", "kind", "start", "end", "state", "mode", "idempotency_key",
    "provider", "attempts", "reason", "replaces_id", "alternatives", "group_name", "presenter",
    "quorum", "owner_note", "created_at", "updated_at",
)  # fmt: skip
_ROUND_KEYS = frozenset(_ROUND_COLUMNS)


def _plan_round_shape() -> TextClause:
    """The round's statement: its SQL is the same for every round (the meetings, attendees and
    skips are JSON parameters), so it is compiled once per process."""
    cols = ", ".join(f'"{name}"' for name in _ROUND_COLUMNS)
    audit_cols = ", ".join(_AUDIT_COLUMNS)
    sql = f"""
WITH planned AS (UPDATE users SET next_plan_at = :next_plan_at, last_planned_at = :now,
        history_read_until = COALESCE(CAST(:history_until AS timestamptz), history_read_until),
        history_read_key = COALESCE(CAST(:history_key AS text), history_read_key)
    WHERE users.id = :user_id RETURNING users.id
), proposed AS (SELECT * FROM jsonb_populate_recordset(NULL::meetings, CAST(:rows AS jsonb))
    WITH ORDINALITY AS p
), inserted AS (INSERT INTO meetings ({cols})
    SELECT {cols} FROM proposed ORDER BY proposed.ordinality
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING meetings.id, meetings.idempotency_key, meetings.state
), invited_rows AS (INSERT INTO meeting_attendees (meeting_id, email, status)
    SELECT inserted.id, people.email, :needs
    FROM inserted
    JOIN jsonb_each(CAST(:attendees AS jsonb)) AS invited ("key", emails)
        ON invited."key" = inserted.idempotency_key
    CROSS JOIN LATERAL jsonb_array_elements_text(invited.emails) AS people (email)
    RETURNING meeting_attendees.meeting_id
), audited AS (INSERT INTO audit_log ({audit_cols})
    SELECT audit_rows.meeting_id, :user_id, :now, :actor, NULL, audit_rows.to_state,
        audit_rows.detail
    FROM (
        SELECT 0 AS part, firsts.ord, inserted.id AS meeting_id, inserted.state AS to_state,
            :created AS detail
        FROM inserted
        JOIN (
            SELECT idempotency_key, min(ordinality) AS ord FROM proposed GROUP BY idempotency_key
        ) AS firsts ON firsts.idempotency_key = inserted.idempotency_key
        UNION ALL
        SELECT 1, skipped.ord, NULL, NULL, skipped.detail
        FROM jsonb_array_elements_text(CAST(:skips AS jsonb))
            WITH ORDINALITY AS skipped (detail, ord)
    ) AS audit_rows
    ORDER BY audit_rows.part, audit_rows.ord
    RETURNING audit_log.id
)
SELECT inserted.id, inserted.idempotency_key AS "key" FROM inserted
UNION ALL
SELECT planned.id, NULL FROM planned WHERE NOT EXISTS (SELECT FROM proposed)
"""
    return text(sql).bindparams(
        bindparam("user_id", type_=Integer()),
        bindparam("next_plan_at", type_=UTCDateTime()),
        bindparam("now", type_=UTCDateTime()),
        bindparam("history_until", type_=UTCDateTime()),
        bindparam("history_key", type_=String()),
        bindparam("actor", type_=String()),
        bindparam("rows", type_=_JSONParam()),
        bindparam("attendees", type_=_JSONParam()),
        bindparam("skips", type_=_JSONParam()),
        bindparam("needs", _NEEDS, type_=String()),
        bindparam("created", "created", type_=Text()),
    )


_PLAN_ROUND = _plan_round_shape()


def plan_round_statement(
    user_id: int,
    rows: Sequence[dict[str, Any]],
    attendees: Mapping[str, Sequence[str]],
    skips: Sequence[str],
    *,
    next_plan_at: datetime,
    now: datetime,
    actor: str,
    history: tuple[datetime, str] | None = None,
) -> tuple[TextClause, dict[str, Any]]:
    """``Store.record_plan_round`` in one statement: the new meetings (``INSERT … ON CONFLICT
    DO NOTHING``: a known key keeps its row; a key repeated in ``rows``: its first row), the
    attendees of those inserted, one ``created`` audit row per inserted meeting then one per
    skip (in that order), and the user's next round (with ``history``, how far the owner's
    calendar history was read and for which stakeholder set).

    The statement's SQL is constant; ``rows`` (each with the keys :data:`_ROUND_COLUMNS`),
    ``attendees`` (key -> e-mails) and ``skips`` are JSON parameters, and the history's two
    values are always bound (NULL without ``history``: ``COALESCE`` keeps the stored ones).

    Returns the statement and its parameters. Its rows are ``(id, key)`` of the meetings it
    inserted; a key that existed (a retried round) is not among them, and the caller reads its
    id. Without proposals, one row ``(user id, NULL)``.
    """
    for row in rows:
        if row.keys() != _ROUND_KEYS:
            raise ValueError(f"a planning round's row has the columns {sorted(row)}")
    until, key = history if history is not None else (None, None)
    return _PLAN_ROUND, {
        "user_id": user_id, "next_plan_at": next_plan_at, "now": now, "actor": actor,
        "rows": rows, "attendees": attendees, "skips": skips,
        "history_until": until, "history_key": key,
    }  # fmt: skip


#: ``Store.record_contacts`` on PostgreSQL: one statement whose SQL never changes (the rows as
#: one JSON parameter), so it is compiled once per process, not once per round.
_CONTACTS = text(
    """
INSERT INTO contacts (user_id, stakeholder_email, met_at, source)
SELECT :user_id, c.email, c.met_at, :source
FROM jsonb_to_recordset(CAST(:rows AS jsonb)) AS c(email text, met_at timestamptz)
ON CONFLICT (user_id, stakeholder_email, met_at) DO NOTHING
"""
).bindparams(
    bindparam("user_id", type_=Integer()),
    bindparam("source", type_=String()),
    bindparam("rows", type_=_JSONParam()),
)


def contacts_statement(
    user_id: int, contacts: Sequence[tuple[str, datetime]], source: str
) -> tuple[Any, dict[str, Any]]:
    """Insert ``(email, met_at)`` contacts of one source; a known one is kept as it is."""
    rows = [{"email": email, "met_at": met_at} for email, met_at in contacts]
    return _CONTACTS, {"user_id": user_id, "source": source, "rows": rows}
