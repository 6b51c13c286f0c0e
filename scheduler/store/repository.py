"""The use-case-facing persistence API: short transactions, plain records out, injected time in.

Every method opens and commits its own short transaction (never across a provider call) and
returns frozen records, never live ORM objects. Time always comes in as an aware UTC ``now``
argument; the store never reads the clock. State changes go through :mod:`scheduler.core.states` and
are compare-and-set UPDATEs (``… WHERE id = ? AND state = ?``) with an audit row in the same
transaction, so two workers racing on one meeting cannot both win.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from sqlalchemy import (
    Connection,
    CursorResult,
    Engine,
    Executable,
    Row,
    String,
    Table,
    and_,
    any_,
    bindparam,
    delete,
    func,
    literal,
    literal_column,
    nulls_first,
    or_,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from scheduler.app.ports import UserRegistration
from scheduler.app.records import (
    BookedEvent,
    BookingClaim,
    FollowedOwner,
    OwnerMail,
    OwnerMailKind,
    Rival,
    RoundMeetings,
)
from scheduler.core.errors import ConfigurationError, UnknownMeeting
from scheduler.core.model import AttendeeStatus
from scheduler.core.states import (
    FOLLOWED_STATES,
    INITIAL_STATES,
    OPEN_STATES,
    TERMINAL_STATES,
    MeetingState,
)
from scheduler.core.states import transition as check_transition
from scheduler.store import single
from scheduler.store.crypto import SecretBox
from scheduler.store.engine import READ_ONLY, make_session_factory
from scheduler.store.records import (
    AuditEntry,
    Heartbeat,
    HeldReply,
    HeldReplyState,
    Meeting,
    NewHeldReply,
    NewMeeting,
    RevokedCredential,
    StakeholderStatus,
    User,
    alternatives_json,
    audit_from_row,
    held_reply_from_row,
    meeting_from_row,
    meeting_from_values,
    owner_mail_from_row,
    status_from_row,
    user_from_row,
)
from scheduler.store.tables import (
    AuditRow,
    Base,
    ContactRow,
    ContactSource,
    CredentialRow,
    HeartbeatRow,
    HeldReplyRow,
    MeetingAttendeeRow,
    MeetingRow,
    OwnerMailRow,
    StakeholderStatusRow,
    TickLeaseRow,
    UsedLinkRow,
    UserRow,
    UTCDateTime,
)

__all__ = [
    "AuditEntry",
    "Meeting",
    "NewMeeting",
    "RevokedCredential",
    "StakeholderStatus",
    "Store",
    "UnknownMeeting",
    "User",
]

#: Columns ``Store.transition`` may set along with the state.
_TRANSITION_FIELDS = frozenset(
    {"provider_event_id", "next_attempt_at", "lease_until", "last_error", "attempts", "reason"}
)
_TICK_ROW_ID = 1


def _email(value: str) -> str:
    return value.strip().lower()


_NEEDS = AttendeeStatus.NEEDS_ACTION.value


#: Whether a meeting row has ``meeting_attendees`` rows (a group meeting's people): a hot read
#: selects it and loads attendees only for those rows (:func:`_core_meetings`), instead of the
#: relationship's ``selectin`` query beside every read that returns any meeting. A ``LIMIT 1``
#: scalar subquery, not ``EXISTS``: PostgreSQL may run an ``EXISTS`` as one hashed scan of the
#: whole attendee table (rows ∝ every group meeting); this is one index probe per row returned.
_HAS_ATTENDEES = (
    select(literal(1))
    .where(MeetingAttendeeRow.meeting_id == MeetingRow.id)
    .limit(1)
    .correlate(MeetingRow)
    .scalar_subquery()
    .is_not(None)
    .label("has_attendees")
)
#: The meeting's owner's e-mail, one primary-key probe per row returned. A join would let
#: PostgreSQL hash or merge the whole users table (rows ∝ N) beside a read of a few meetings.
_OWNER_EMAIL = (
    select(UserRow.email)
    .where(UserRow.id == MeetingRow.user_id)
    .correlate(MeetingRow)
    .scalar_subquery()
    .label("email")
)
#: States in which a meeting holds its slot for the re-check before a booking (with an
#: ``approved`` one whose create was attempted): :meth:`Store.active_overlapping`.
_ACTIVE = (MeetingState.BOOKING, MeetingState.BOOKED, MeetingState.ACCEPTED, MeetingState.TENTATIVE)


if not all(s.value.isidentifier() and s.value.islower() for s in MeetingState):
    raise RuntimeError("a meeting state is not a plain word: _state_in writes them as SQL")


def _literal(state: MeetingState) -> Any:
    """A state as an SQL literal (our own constant, a plain word), not a parameter: a plan made
    without the values (a prepared statement's generic plan) sees it."""
    return literal_column(f"'{state.value}'")


def _state_in(states: Collection[MeetingState]) -> Any:
    """``state IN (states)`` written as ``state NOT IN (every other state)``: the same rows (the
    column is NOT NULL and holds MeetingState values only), but no state-leading index can serve
    it, so the plan goes by the query's selective index (e-mail, owner) whatever the statistics
    say. Without statistics (a database not analysed yet; autovacuum off) PostgreSQL took
    ``state IN (…)`` for more selective than twenty e-mails and read every meeting in those
    states, and their dead index entries, for each read (rows ∝ N)."""
    wanted = set(states)
    # The other states as SQL literals (our own constants, all plain words), not parameters: a
    # hot read holds several of these lists, and expanding ~6 parameters each per execution
    # was a good part of the statement's CPU.
    others: list[Any] = [_literal(s) for s in MeetingState if s not in wanted]
    return MeetingRow.state.not_in(others)


#: How a hot read writes "this column is one of the list ``name``": a function of the column
#: and the parameter's name. SQLite has no arrays: ``column IN (…)``, one parameter per item.
#: PostgreSQL: ``column = ANY(:name)``, ONE array parameter, so the statement's text does not
#: vary with the list's length: psycopg prepares one statement per text and connection, and
#: PostgreSQL makes a custom plan for each prepared statement's first five runs; with a text
#: per length (twenty due stakeholders or three) that was a custom plan for most runs
#: (``stakeholder_load``: 1,125 plans for 1,347 runs; 237 for 1,353 with the array). Not for
#: every list: for the bookings' rivals read PostgreSQL then chose a custom plan at EVERY run
#: (a known short array always looks cheaper planned for), 4,188 plans for 4,180 runs.
OneOf = Callable[[Any, str], Any]


def _in_list(column: Any, name: str) -> Any:
    return column.in_(bindparam(name, expanding=True))


def _any_of(column: Any, name: str) -> Any:
    # The array typed by its items' kind, not the column's: ``::VARCHAR(320)[]`` would cut a
    # longer value down to 320 characters, and a cut value could equal a stored one.
    item = String() if isinstance(column.type, String) else column.type
    return column == any_(bindparam(name, type_=postgresql.ARRAY(item)))


#: The variants of a statement built for each dialect (:class:`_PerDialect`).
_ONE_OF: dict[str, OneOf] = {"postgresql": _any_of, "sqlite": _in_list}


class _PerDialect:
    """A statement built once per dialect with that dialect's :data:`OneOf`; ``for_(engine)``
    picks it (a dialect not listed gets ``IN (…)``)."""

    def __init__(self, build: Callable[[OneOf], Any]) -> None:
        self.statements = {name: build(one_of) for name, one_of in _ONE_OF.items()}

    def for_(self, connection: Connection) -> Any:
        return self.statements.get(connection.dialect.name, self.statements["sqlite"])


def _owners_of(wanted: Any) -> Any:
    """Ids of the users among ``wanted`` (by the unique e-mail index)."""
    return select(UserRow.id).where(UserRow.email.in_(wanted))


def _overlapping(wanted: Any, start: Any, end: Any, *, exclude_id: Any) -> Any:
    """The condition of :meth:`Store.active_overlapping` on a meetings row (no join). Each
    argument is a value or a bound parameter (:func:`_rivals_statement`)."""
    return and_(
        *_holds_slot(start, end, exclude_id=exclude_id),
        or_(
            MeetingRow.stakeholder_email.in_(wanted),
            MeetingRow.user_id.in_(_owners_of(wanted)),
            MeetingRow.id.in_(
                select(MeetingAttendeeRow.meeting_id).where(MeetingAttendeeRow.email.in_(wanted))
            ),
        ),
    )


def _holds_slot(start: Any, end: Any, *, exclude_id: Any) -> list[Any]:
    """A meeting other than ``exclude_id`` that holds ``[start, end)``: being booked, on
    calendars, or ``approved`` with its create attempted (the event may exist)."""
    return [
        MeetingRow.id != exclude_id,
        # active, or approved with its create attempted (neither condition is a state range)
        _state_in([*_ACTIVE, MeetingState.APPROVED]),
        or_(MeetingRow.state != MeetingState.APPROVED, MeetingRow.create_attempted_at.is_not(None)),
        MeetingRow.start < end,
        MeetingRow.end > start,
    ]


def _overlap_candidates(wanted: Any, start: Any, end: Any, *, exclude_id: Any) -> list[Any]:
    """The ids :func:`_overlapping` matches, as three indexed reads: by stakeholder
    (``(stakeholder_email, state, start)``), by owner (``(user_id, start)``) and by group
    attendee (``ix_meeting_attendees_email``). Each reads what involves these people; the
    ``OR`` of the three in one scan cannot use an index (it ranged over every owner's meetings
    in those states that start before ``end``: rows ∝ N)."""
    holds = _holds_slot(start, end, exclude_id=exclude_id)
    return [
        select(MeetingRow.id).where(MeetingRow.stakeholder_email.in_(wanted), *holds),
        select(MeetingRow.id).where(MeetingRow.user_id.in_(_owners_of(wanted)), *holds),
        select(MeetingAttendeeRow.meeting_id)
        .join(MeetingRow, MeetingRow.id == MeetingAttendeeRow.meeting_id)
        .where(MeetingAttendeeRow.email.in_(wanted), *holds),
    ]


def _rivals_statement() -> Any:
    """:meth:`Store.booking_rivals`'s read, built once with parameters ``wanted`` (e-mails),
    ``start``, ``end``, ``exclude_id`` and ``owner_email``: Core rows of the meetings table, so
    neither the statement nor an ORM instance is built per booking."""
    wanted: Any = bindparam("wanted", expanding=True)
    start: Any = bindparam("start")
    end: Any = bindparam("end")
    exclude_id: Any = bindparam("exclude_id")
    overlaps = _overlapping(wanted, start, end, exclude_id=exclude_id)
    theirs = and_(MeetingRow.stakeholder_email == bindparam("owner_email"), _state_in(OPEN_STATES))
    candidates = union_all(
        *_overlap_candidates(wanted, start, end, exclude_id=exclude_id),
        select(MeetingRow.id).where(theirs),
    )
    meetings = cast("Table", MeetingRow.__table__)
    return (
        select(
            _OWNER_EMAIL,
            *meetings.c,
            overlaps.label("overlaps"),
            theirs.label("theirs"),
            _HAS_ATTENDEES,
        )
        .where(MeetingRow.id.in_(candidates))  # exactly the rows of the two reads
        .order_by(MeetingRow.start, MeetingRow.id)
    )


_RIVALS = _rivals_statement()  # IN (…) on both dialects: see OneOf
_ATTENDEES_OF = (
    select(MeetingAttendeeRow.meeting_id, MeetingAttendeeRow.email, MeetingAttendeeRow.status)
    .where(MeetingAttendeeRow.meeting_id.in_(bindparam("ids", expanding=True)))
    .order_by(MeetingAttendeeRow.email)
)


def _core_meetings(conn: Connection, rows: Sequence[Row[Any]]) -> list[Meeting]:
    """Meetings from Core rows with the meetings columns and ``has_attendees``: ONE more read
    for the attendees of those that have any, none when no row has."""
    wanted = [row.id for row in rows if row.has_attendees]
    found: dict[int, list[tuple[str, str]]] = {}
    if wanted:
        for a in conn.execute(_ATTENDEES_OF, {"ids": wanted}):
            found.setdefault(a.meeting_id, []).append((a.email, a.status))
    return [meeting_from_values(row, found.get(row.id, ())) for row in rows]


def _round_meetings_statement() -> Any:
    """:meth:`Store.round_meetings`'s read, built once; parameters ``user_id``, ``owner``,
    ``now``, ``declined_since``, ``declined_until``, ``history_since``."""
    now: Any = bindparam("now")
    history_since: Any = bindparam("history_since")
    declined = and_(
        MeetingRow.state == MeetingState.DECLINED,
        MeetingRow.start < bindparam("declined_until"),
        MeetingRow.end > bindparam("declined_since"),
    )
    grouped = and_(MeetingRow.group_name.is_not(None), MeetingRow.start >= history_since)
    completed = and_(
        MeetingRow.state == MeetingState.COMPLETED,
        MeetingRow.start < now,
        MeetingRow.end > history_since,
    )
    mine = and_(
        MeetingRow.user_id == bindparam("user_id"),
        or_(_state_in(OPEN_STATES), declined, grouped, completed),
    )
    theirs = and_(MeetingRow.stakeholder_email == bindparam("owner"), _state_in(OPEN_STATES))
    meetings = cast("Table", MeetingRow.__table__)
    return (
        select(_OWNER_EMAIL, *meetings.c, _HAS_ATTENDEES)
        .where(or_(mine, theirs))
        .order_by(MeetingRow.start, MeetingRow.id)
    )


def _stakeholder_load_statement(one_of: OneOf) -> Any:
    """:meth:`Store.stakeholder_load`'s read, built once; parameters ``wanted`` (e-mails),
    ``start``, ``end``, ``exclude_user_id``, ``invited_since``."""
    counted = [*OPEN_STATES, MeetingState.COMPLETED]
    invite = and_(
        _state_in([s for s in OPEN_STATES if s != MeetingState.PROPOSED]),
        func.coalesce(MeetingRow.create_attempted_at, MeetingRow.updated_at)
        > bindparam("invited_since"),
    )
    common = and_(
        MeetingRow.user_id != bindparam("exclude_user_id"),
        _state_in(counted),
        or_(and_(MeetingRow.start < bindparam("end"), MeetingRow.end > bindparam("start")), invite),
    )
    times = (MeetingRow.start, MeetingRow.end, invite.label("invited"))
    one_to_ones = select(MeetingRow.stakeholder_email.label("email"), *times).where(
        one_of(MeetingRow.stakeholder_email, "wanted"), MeetingRow.group_name.is_(None), common
    )
    attendees = (
        select(MeetingAttendeeRow.email.label("email"), *times)
        .join(MeetingRow, MeetingRow.id == MeetingAttendeeRow.meeting_id)
        .where(one_of(MeetingAttendeeRow.email, "wanted"), common)
    )
    both = union_all(one_to_ones, attendees).subquery()
    return select(both).order_by(both.c.start)


_ROUND_MEETINGS = _round_meetings_statement()
_STAKEHOLDER_LOAD = _PerDialect(_stakeholder_load_statement)


_USERS = cast("Table", UserRow.__table__)
_USER_BY_ID = select(*_USERS.c).where(_USERS.c.id == bindparam("id"))
_LAST_CONTACTS = (
    select(ContactRow.stakeholder_email, func.max(ContactRow.met_at))
    .where(ContactRow.user_id == bindparam("user_id"))
    .group_by(ContactRow.stakeholder_email)
)
_STATUS_TABLE = cast("Table", StakeholderStatusRow.__table__)
_STATUSES = select(*_STATUS_TABLE.c).where(_STATUS_TABLE.c.user_id == bindparam("user_id"))


def _group_attendees(p: NewMeeting) -> list[str]:
    """A new group meeting's attendees, checked: distinct, the first one its stakeholder.

    Raises:
        ValueError: an attendee twice, or ``stakeholder_email`` not the first attendee.
    """
    attendees = [_email(e) for e in p.attendees]
    if not attendees:
        return []
    if len(set(attendees)) != len(attendees):
        raise ValueError(f"meeting {p.idempotency_key} lists an attendee twice")
    if attendees[0] != _email(p.stakeholder_email):
        raise ValueError(
            f"meeting {p.idempotency_key}: stakeholder_email must be the first attendee"
        )
    return attendees


class Store:
    """goodwill's database, one instance per process, shared by threads.

    Args:
        engine: from :func:`scheduler.store.engine.make_engine` (SQLite or PostgreSQL).
        secrets: encrypts the credentials table; required only by the credential methods.
    """

    def __init__(self, engine: Engine, *, secrets: SecretBox | None = None) -> None:
        self._engine = engine
        self._postgres = engine.dialect.name == "postgresql"
        self._sessions = make_session_factory(engine)
        # Reads on PostgreSQL run in autocommit: no BEGIN and ROLLBACK round trips around each
        # SELECT. Under READ COMMITTED every statement takes its own snapshot anyway, and no read
        # locks rows (every FOR UPDATE and compare-and-set UPDATE is in a _write transaction).
        read_options: dict[str, Any] = {READ_ONLY: True}
        if self._postgres:
            read_options["isolation_level"] = "AUTOCOMMIT"
        #: Core reads of prebuilt statements (no Session), same options as the read sessions.
        self._read_engine = engine.execution_options(**read_options)
        self._read_sessions: sessionmaker[Session] = make_session_factory(self._read_engine)
        self._secrets = secrets
        # One-statement writes (PostgreSQL): autocommit, each statement its own transaction.
        self._single_engine = engine.execution_options(isolation_level="AUTOCOMMIT")

    # -- plumbing ----------------------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[Session]:
        # One short transaction; on SQLite it starts with BEGIN IMMEDIATE (see engine.py).
        with self._sessions.begin() as session:
            yield session

    @contextmanager
    def _read(self) -> Iterator[Session]:
        with self._read_sessions() as session:
            yield session

    def _single(self, statement: single.Statement) -> Row[Any]:
        """Run ONE prebuilt statement with its parameters in autocommit (PostgreSQL only) and
        return its one row: the statement is atomic on its own, so no BEGIN/COMMIT round trips
        (:mod:`.single`)."""
        with self._single_engine.connect() as conn:
            return conn.execute(*statement).one()

    def _single_or_none(self, statement: single.Statement) -> Row[Any] | None:
        with self._single_engine.connect() as conn:
            return conn.execute(*statement).one_or_none()

    def _insert(self, row_class: type[Base]) -> postgresql.Insert | sqlite.Insert:
        # INSERT … ON CONFLICT exists on both backends, with per-dialect constructs. Core
        # (table) inserts; whether one wrote a row is read from RETURNING, because psycopg
        # reports rowcount -1 for INSERT … ON CONFLICT through SQLAlchemy (measured).
        table = cast("Table", row_class.__table__)
        if self._postgres:
            return postgresql.insert(table)
        return sqlite.insert(table)

    @staticmethod
    def _rowcount(session: Session, statement: Executable) -> int:
        # UPDATE/INSERT results are CursorResults; Session.execute is typed as a plain Result.
        result = cast("CursorResult[Any]", session.execute(statement))
        return result.rowcount

    @staticmethod
    def _audit(
        session: Session,
        *,
        at: datetime,
        actor: str,
        meeting_id: int | None = None,
        user_id: int | None = None,
        from_state: str | None = None,
        to_state: str | None = None,
        detail: str = "",
    ) -> None:
        session.add(
            AuditRow(
                meeting_id=meeting_id,
                user_id=user_id,
                at=at,
                actor=actor,
                from_state=from_state,
                to_state=to_state,
                detail=detail,
            )
        )

    def ping(self) -> None:
        """Run ``SELECT 1`` (readiness). Raises the driver's error when the database is down."""
        with self._read() as session:
            session.execute(text("SELECT 1"))

    # -- users -------------------------------------------------------------------------------

    def upsert_user(self, email: str, policy_path: str, policy_hash: str, *, now: datetime) -> int:
        """Register a user's policy file, or update its path and content hash.

        A new user is due for planning at ``now``. When the hash changed (the file was edited),
        planning is brought forward to ``now`` so the edit takes effect on the next tick.

        Returns:
            The user's id.
        """
        email = _email(email)
        with self._write() as s:
            s.execute(
                self._insert(UserRow)
                .values(
                    email=email,
                    policy_path=policy_path,
                    policy_hash=policy_hash,
                    next_plan_at=now,
                    created_at=now,
                )
                .on_conflict_do_nothing(index_elements=["email"])
            )
            row = s.scalars(select(UserRow).where(UserRow.email == email).with_for_update()).one()
            row.policy_path = policy_path
            if row.policy_hash != policy_hash:
                row.policy_hash = policy_hash
                if row.next_plan_at is None or row.next_plan_at > now:
                    row.next_plan_at = now
            return row.id

    def get_user(self, user_id: int) -> User | None:
        """The user with this id, or None."""
        with self._read_engine.connect() as conn:
            row = conn.execute(_USER_BY_ID, {"id": user_id}).one_or_none()
        return user_from_row(row) if row else None

    def get_user_by_email(self, email: str) -> User | None:
        """The user with this e-mail (case-insensitive), or None."""
        with self._read() as s:
            row = s.scalars(select(UserRow).where(UserRow.email == _email(email))).one_or_none()
            return user_from_row(row) if row else None

    def users_due(self, now: datetime, limit: int) -> list[User]:
        """Users whose ``next_plan_at`` is at or before ``now`` (or unset), most overdue first."""
        with self._read() as s:
            rows = s.scalars(
                select(UserRow)
                .where(or_(UserRow.next_plan_at.is_(None), UserRow.next_plan_at <= now))
                .order_by(nulls_first(UserRow.next_plan_at), UserRow.id)
                .limit(limit)
            )
            return [user_from_row(r) for r in rows]

    def claim_users_for_planning(self, now: datetime, limit: int, retry_s: float) -> list[int]:
        """Pick the users due for planning and push their ``next_plan_at`` to ``now + retry_s``.

        The tick calls this, then sends ``plan_user(id)`` after it returns (write first, enqueue
        second). A successful round sets the real next time with :meth:`set_next_plan`; if the
        message is lost or the round crashes, the user comes due again after ``retry_s``.
        On PostgreSQL rows locked by another transaction are skipped. Users whose policy file
        is gone (``policy_missing_since`` set) are never picked: see :meth:`claim_removed_owners`.

        Returns:
            User ids, most overdue first, at most ``limit``.
        """
        return self._claim_users(UserRow.policy_missing_since.is_(None), now, limit, retry_s)

    def claim_removed_owners(
        self, missing_before: datetime, now: datetime, limit: int, retry_s: float
    ) -> list[int]:
        """Like :meth:`claim_users_for_planning`, for users whose policy file has been gone since
        ``missing_before`` or earlier (their grace period is over): their round cancels what they
        still have open. Due and pushed forward exactly as planning claims are.
        """
        condition = and_(
            UserRow.policy_missing_since.is_not(None),
            UserRow.policy_missing_since <= missing_before,
        )
        return self._claim_users(condition, now, limit, retry_s)

    def _claim_users(self, condition: Any, now: datetime, limit: int, retry_s: float) -> list[int]:
        if retry_s <= 0:
            raise ValueError("retry_s must be positive")
        # Candidates: the first `limit` never-planned users by id and the first `limit` due
        # ones by due time, each by the (next_plan_at, id) index in its order (an OR of the
        # two would read and sort every due user each round: rows ∝ N under a backlog).
        never = (
            select(UserRow.id)
            .where(UserRow.next_plan_at.is_(None), condition)
            .order_by(UserRow.id)
            .limit(limit)
        ).subquery()
        due = (
            select(UserRow.id)
            .where(UserRow.next_plan_at <= now, condition)
            .order_by(UserRow.next_plan_at, UserRow.id)
            .limit(limit)
        ).subquery()
        with self._write() as s:
            query = (
                select(UserRow.id)
                .where(
                    UserRow.id.in_(union_all(select(never.c.id), select(due.c.id))),
                    or_(UserRow.next_plan_at.is_(None), UserRow.next_plan_at <= now),
                    condition,
                )
                .order_by(nulls_first(UserRow.next_plan_at), UserRow.id)
                .limit(limit)
            )
            if self._postgres:
                query = query.with_for_update(skip_locked=True)
            ids = list(s.scalars(query))
            if ids:
                s.execute(
                    update(UserRow)
                    .where(UserRow.id.in_(ids))
                    .values(next_plan_at=now + timedelta(seconds=retry_s))
                    .execution_options(synchronize_session=False)
                )
            return ids

    def set_next_plan(
        self, user_id: int, at: datetime, *, planned_at: datetime | None = None
    ) -> None:
        """Schedule the user's next planning at ``at``; ``planned_at`` records a finished round."""
        values: dict[str, Any] = {"next_plan_at": at}
        if planned_at is not None:
            values["last_planned_at"] = planned_at
        with self._write() as s:
            s.execute(update(UserRow).where(UserRow.id == user_id).values(**values))

    def record_policy_error(self, user_id: int, message: str | None) -> None:
        """Remember why the user's policy could not be used (None: it loads again)."""
        with self._write() as s:
            s.execute(update(UserRow).where(UserRow.id == user_id).values(policy_error=message))

    def users_with_policy_errors(self) -> list[User]:
        """Users whose last policy load failed (for the report and /readyz)."""
        with self._read() as s:
            rows = s.scalars(select(UserRow).where(UserRow.policy_error.is_not(None)))
            return [user_from_row(r) for r in rows]

    def all_users(self) -> list[User]:
        """Every user, by id (the tick compares them with the policy files it finds)."""
        with self._read() as s:
            return [user_from_row(r) for r in s.scalars(select(UserRow).order_by(UserRow.id))]

    def register_users(self, users: Sequence[UserRegistration], *, now: datetime) -> list[int]:
        """:meth:`upsert_user` for many policy files in one transaction, each also setting the
        user's ``policy_error``; in order (a later file of the same owner wins).

        Returns:
            The users' ids, in the order given.
        """
        if not users:
            return []
        emails = [_email(u.email) for u in users]
        with self._write() as s:
            s.execute(
                self._insert(UserRow)
                .values(
                    [
                        {
                            "email": email, "policy_path": u.policy_path,
                            "policy_hash": u.policy_hash, "next_plan_at": now, "created_at": now,
                        }
                        for email, u in dict(zip(emails, users, strict=True)).items()
                    ]
                )
                .on_conflict_do_nothing(index_elements=["email"])
            )  # fmt: skip
            rows = {
                r.email: r
                for r in s.scalars(
                    select(UserRow)
                    .where(UserRow.email.in_(set(emails)))
                    .order_by(UserRow.id)
                    .with_for_update()
                )
            }
            for email, u in zip(emails, users, strict=True):
                row = rows[email]
                row.policy_path = u.policy_path
                row.policy_error = u.policy_error
                if row.policy_hash != u.policy_hash:
                    row.policy_hash = u.policy_hash
                    if row.next_plan_at is None or row.next_plan_at > now:
                        row.next_plan_at = now
            return [rows[email].id for email in emails]

    def users_matching(self, emails: Collection[str], paths: Collection[str]) -> list[User]:
        """Users with one of these e-mails or policy paths, by id (both columns indexed)."""
        if not emails and not paths:
            return []
        with self._read() as s:
            query = select(UserRow).where(
                or_(
                    UserRow.email.in_({_email(e) for e in emails}),
                    UserRow.policy_path.in_(set(paths)),
                )
            )
            return [user_from_row(r) for r in s.scalars(query.order_by(UserRow.id))]

    def followed_owners(
        self,
        user_ids: Collection[int] | None,
        *,
        now: datetime | None = None,
        cutoff: timedelta | None = None,
    ) -> dict[int, FollowedOwner]:
        """Owners with a meeting whose answers are followed (booked, accepted, tentative,
        declined), among ``user_ids`` (by the ``(user_id, start)`` index) or all (None), each
        with whether their policy file is gone and, given ``now``, when their soonest followed
        meeting starts that has not ended or waits to be completed (a past decline does not
        count) and, given ``cutoff`` too, the soonest that starts after ``now + cutoff``: the
        tick follows an owner more often as either nears."""
        followed = FOLLOWED_STATES
        if user_ids is not None and not user_ids:
            return {}
        has = (
            select(MeetingRow.id)
            .where(MeetingRow.user_id == UserRow.id, _state_in(followed))
            .exists()
        )
        columns: list[Any] = [UserRow.id, UserRow.policy_missing_since]

        def soonest(*where: Any) -> Any:
            return (
                select(func.min(MeetingRow.start))
                .where(MeetingRow.user_id == UserRow.id, _state_in(followed), *where)
                .scalar_subquery()
            )

        if now is not None:
            closely = or_(MeetingRow.end > now, MeetingRow.state != MeetingState.DECLINED.value)
            columns.append(soonest(closely).label("next_start"))
            if cutoff is not None:
                columns.append(soonest(MeetingRow.start > now + cutoff).label("next_far_start"))
        query = select(*columns).where(has)
        if user_ids is not None:
            query = query.where(UserRow.id.in_(set(user_ids)))
        with self._read() as s:
            return {
                row.id: FollowedOwner(
                    row.policy_missing_since is not None,
                    row.next_start if now is not None else None,
                    row.next_far_start if now is not None and cutoff is not None else None,
                )
                for row in s.execute(query)
            }

    def mark_policy_missing(self, user_id: int, *, now: datetime) -> datetime | None:
        """Record that the user's policy file is gone, keeping the first time it was seen gone.

        Returns:
            When it was first found gone (``now`` the first time), or None for an unknown user.
        """
        with self._write() as s:
            s.execute(
                update(UserRow)
                .where(UserRow.id == user_id, UserRow.policy_missing_since.is_(None))
                .values(policy_missing_since=now)
                .execution_options(synchronize_session=False)
            )
            return s.scalar(select(UserRow.policy_missing_since).where(UserRow.id == user_id))

    def clear_policy_missing(self, user_id: int, *, now: datetime) -> bool:
        """The user's policy file is back: clear the mark and make them due for planning now.

        Returns:
            True when the user was marked missing (and now is not); False otherwise.
        """
        with self._write() as s:
            return (
                self._rowcount(
                    s,
                    update(UserRow)
                    .where(UserRow.id == user_id, UserRow.policy_missing_since.is_not(None))
                    .values(policy_missing_since=None, next_plan_at=now)
                    .execution_options(synchronize_session=False),
                )
                == 1
            )

    def set_owner_pause(self, user_id: int, until: datetime | None, *, now: datetime) -> bool:
        """Pause the owner until ``until`` (None: resume), with an audit row.

        Returns:
            False for an unknown user (nothing written).
        """
        with self._write() as s:
            if (
                self._rowcount(
                    s,
                    update(UserRow)
                    .where(UserRow.id == user_id)
                    .values(paused_until=until)
                    .execution_options(synchronize_session=False),
                )
                != 1
            ):
                return False
            detail = "resumed" if until is None else f"paused until {until.isoformat()}"
            self._audit(s, at=now, actor="owner", user_id=user_id, detail=detail)
            return True

    # -- meetings ----------------------------------------------------------------------------

    def add_meetings(
        self,
        user_id: int,
        proposals: Sequence[NewMeeting],
        *,
        now: datetime,
        actor: str = "planner",
    ) -> list[int]:
        """Write the planner's proposals in one transaction.

        A proposal whose ``idempotency_key`` already exists is not written again; the existing
        row's id is returned in its place (so a retried planning round is harmless).

        Returns:
            One meeting id per proposal, in order.

        Raises:
            ValueError: a proposal starts in a state other than proposed/approved, or ends
                before it starts.
        """
        with self._write() as s:
            ids, audits = self._insert_meetings(s, user_id, proposals, now=now, actor=actor)
            self._insert_audits(s, audits)
        return ids

    def record_plan_round(
        self,
        user_id: int,
        proposals: Sequence[NewMeeting],
        skips: Sequence[str],
        next_plan_at: datetime,
        *,
        now: datetime,
        actor: str = "planner",
        history: tuple[datetime, str] | None = None,
    ) -> list[int]:
        """Write what one planning round decided, in ONE transaction: the proposals (as
        :meth:`add_meetings`), one audit row per skip detail (one multi-row insert, with the
        proposals' own audit rows), and the next round at ``next_plan_at`` (the round finished
        at ``now``). ``history=(until, key)`` is stored as the user's ``history_read_until`` /
        ``history_read_key`` (the round read the owner's calendar history up to ``until`` for
        the stakeholder set ``key``); None keeps the stored values.

        Returns:
            One meeting id per proposal, in order.

        On PostgreSQL it is ONE statement in autocommit (data-modifying CTEs: the meetings,
        their attendees, the audit rows and the user's row; :func:`.single.plan_round_statement`),
        atomic on its own: one round trip instead of BEGIN, three or four statements and COMMIT.

        Raises:
            ValueError: as :meth:`add_meetings`; nothing is written then.
        """
        if self._postgres:
            return self._record_plan_round_single(
                user_id, proposals, skips, next_plan_at, now=now, actor=actor, history=history
            )
        with self._write() as s:
            ids, audits = self._insert_meetings(s, user_id, proposals, now=now, actor=actor)
            audits += [
                {"meeting_id": None, "user_id": user_id, "at": now, "actor": actor,
                 "from_state": None, "to_state": None, "detail": detail}
                for detail in skips
            ]  # fmt: skip
            self._insert_audits(s, audits)
            values: dict[str, Any] = {"next_plan_at": next_plan_at, "last_planned_at": now}
            if history is not None:
                values["history_read_until"], values["history_read_key"] = history
            s.execute(
                update(UserRow)
                .where(UserRow.id == user_id)
                .values(values)
                .execution_options(synchronize_session=False)
            )
        return ids

    def _record_plan_round_single(
        self,
        user_id: int,
        proposals: Sequence[NewMeeting],
        skips: Sequence[str],
        next_plan_at: datetime,
        *,
        now: datetime,
        actor: str,
        history: tuple[datetime, str] | None,
    ) -> list[int]:
        rows, attendees = self._meeting_rows(user_id, proposals, now=now)
        statement, params = single.plan_round_statement(
            user_id, rows, attendees, skips, next_plan_at=next_plan_at, now=now, actor=actor,
            history=history,
        )  # fmt: skip
        keys = [p.idempotency_key for p in proposals]
        with self._single_engine.connect() as conn:
            result = conn.execute(statement, params)
            ids = {row.key: row.id for row in result if row.key is not None}
            missing = set(keys) - set(ids)
            if missing:  # known keys (a retried round, or a concurrent one that committed)
                ids.update(self._ids_by_key(conn, missing))
        return [ids[k] for k in keys]

    def _insert_meetings(
        self,
        s: Session,
        user_id: int,
        proposals: Sequence[NewMeeting],
        *,
        now: datetime,
        actor: str,
    ) -> tuple[list[int], list[dict[str, Any]]]:
        """Insert new meetings in one multi-row statement (a repeated key keeps its row), their
        attendees in another; returns the ids in order and the audit rows still to insert."""
        rows, attendees = self._meeting_rows(user_id, proposals, now=now)
        if not rows:
            return [], []
        inserted = {
            row.idempotency_key: row.id
            for row in s.execute(
                self._insert(MeetingRow)
                .values(rows)
                .on_conflict_do_nothing(index_elements=["idempotency_key"])
                .returning(MeetingRow.id, MeetingRow.idempotency_key)
            )
        }
        keys = [p.idempotency_key for p in proposals]
        existing = {k for k in keys if k not in inserted}
        found: dict[str, int] = {}
        if existing:  # retried round: the rows exist already
            found = self._ids_by_key(s, existing)
        people = [
            {"meeting_id": inserted[key], "email": e, "status": _NEEDS}
            for key, emails in attendees.items()
            if key in inserted
            for e in emails
        ]
        if people:
            s.execute(self._insert(MeetingAttendeeRow).values(people))
        first: dict[str, NewMeeting] = {}  # the row's proposal (a repeated key: the first)
        for p in proposals:
            if p.idempotency_key in inserted:
                first.setdefault(p.idempotency_key, p)
        audits = [
            {"meeting_id": inserted[key], "user_id": user_id, "at": now, "actor": actor,
             "from_state": None, "to_state": p.state, "detail": "created"}
            for key, p in first.items()
        ]  # fmt: skip
        return [inserted.get(k) or found[k] for k in keys], audits

    @staticmethod
    def _ids_by_key(s: Session | Any, keys: Collection[str]) -> dict[str, int]:
        return {
            row.idempotency_key: row.id
            for row in s.execute(
                select(MeetingRow.id, MeetingRow.idempotency_key).where(
                    MeetingRow.idempotency_key.in_(keys)
                )
            )
        }

    @staticmethod
    def _meeting_rows(
        user_id: int, proposals: Sequence[NewMeeting], *, now: datetime
    ) -> tuple[list[dict[str, Any]], dict[str, list[str]]]:
        """The checked rows of new meetings, in order, and each key's group attendees.

        Raises:
            ValueError: a proposal in another state than proposed/approved, or ending before
                it starts.
        """
        rows: list[dict[str, Any]] = []
        attendees: dict[str, list[str]] = {}
        for p in proposals:
            if p.state not in INITIAL_STATES:
                raise ValueError(f"a new meeting cannot start as {p.state}")
            if not p.start < p.end:
                raise ValueError(f"meeting {p.idempotency_key} ends before it starts")
            attendees.setdefault(p.idempotency_key, _group_attendees(p))
            rows.append(
                {
                    "user_id": user_id, "stakeholder_email": _email(p.stakeholder_email),
                    "kind": p.kind, "start": p.start, "end": p.end, "state": p.state,
                    "mode": p.mode, "idempotency_key": p.idempotency_key,
                    "provider": p.provider, "attempts": 0, "reason": p.reason,
                    "replaces_id": p.replaces_id,
                    "alternatives": alternatives_json(p.alternatives),
                    "group_name": p.group_name,
                    "presenter": _email(p.presenter) if p.presenter else None,
                    "quorum": p.quorum, "owner_note": p.owner_note or None,
                    "created_at": now, "updated_at": now,
                }
            )  # fmt: skip
        return rows, attendees

    def _insert_audits(self, s: Session, audits: Sequence[dict[str, Any]]) -> None:
        """Audit rows that are not tied to an ORM flush, as ONE multi-row insert."""
        if audits:
            s.execute(self._insert(AuditRow).values(list(audits)))

    def meeting_by_event_id(self, provider_event_id: str) -> Meeting | None:
        """The meeting whose provider event id is this (an iMIP UID, a Graph id …), or None."""
        with self._read() as s:
            row = s.scalars(
                select(MeetingRow)
                .where(MeetingRow.provider_event_id == provider_event_id)
                .order_by(MeetingRow.id.desc())
                .limit(1)
            ).one_or_none()
            return meeting_from_row(row) if row else None

    def get_meeting(self, meeting_id: int) -> Meeting | None:
        """The meeting with this id, or None."""
        with self._read() as s:
            row = s.get(MeetingRow, meeting_id)
            return meeting_from_row(row) if row else None

    def open_meetings(self, user_id: int) -> list[Meeting]:
        """The user's meetings that still count against caps (:data:`OPEN_STATES`), by start."""
        with self._read() as s:
            rows = s.scalars(
                select(MeetingRow)
                .where(MeetingRow.user_id == user_id, _state_in(OPEN_STATES))
                .order_by(MeetingRow.start, MeetingRow.id)
            )
            return [meeting_from_row(r) for r in rows]

    def open_meetings_as_stakeholder(self, email: str) -> list[tuple[str, Meeting]]:
        """Open meetings other users have with ``email`` as their stakeholder: (owner, meeting).

        When two users list each other, each one's planner must see the other's meeting.
        """
        with self._read() as s:
            rows = s.execute(
                select(_OWNER_EMAIL, MeetingRow)
                .where(MeetingRow.stakeholder_email == _email(email), _state_in(OPEN_STATES))
                .order_by(MeetingRow.start, MeetingRow.id)
            ).all()
            return [(owner, meeting_from_row(m)) for owner, m in rows]

    def round_meetings(
        self,
        user_id: int,
        owner_email: str,
        *,
        now: datetime,
        declined_since: datetime,
        declined_until: datetime,
        history_since: datetime,
    ) -> RoundMeetings:
        """A planning round's meeting reads in ONE query (see ``StorePort.round_meetings``):
        the rows of all five reads, each row once, split here by the same conditions."""
        owner = _email(owner_email)
        params = {
            "user_id": user_id, "owner": owner, "now": now, "declined_since": declined_since,
            "declined_until": declined_until, "history_since": history_since,
        }  # fmt: skip
        with self._read_engine.connect() as conn:
            rows = conn.execute(_ROUND_MEETINGS, params).all()
            found = list(zip((row.email for row in rows), _core_meetings(conn, rows), strict=True))
        own = [m for _, m in found if m.user_id == user_id]
        return RoundMeetings(
            open=[m for m in own if m.state in OPEN_STATES],
            declined=[
                m
                for m in own
                if m.state == MeetingState.DECLINED
                and m.start < declined_until
                and m.end > declined_since
            ],
            groups=[m for m in own if m.group_name is not None and m.start >= history_since],
            completed=[
                m
                for m in own
                if m.state == MeetingState.COMPLETED and m.start < now and m.end > history_since
            ],
            as_stakeholder=[
                (email, m)
                for email, m in found
                if m.stakeholder_email == owner and m.state in OPEN_STATES
            ],
        )

    def stakeholder_load(
        self,
        emails: Collection[str],
        start: datetime,
        end: datetime,
        *,
        exclude_user_id: int,
        invited_since: datetime,
    ) -> tuple[dict[str, list[datetime]], set[str]]:
        """What other owners already have with these people: as the stakeholder of a
        one-to-one, or as any attendee of a group meeting (``meeting_attendees``).

        Returns:
            (e-mail -> starts of the open, booked or completed goodwill meetings other owners
            have with them in ``[start, end)``, proposals awaiting approval included; the
            e-mails another owner's goodwill invite went to since ``invited_since`` or is going
            to now). Lower-cased e-mails; one query, both halves by index
            (``stakeholder_email``; ``ix_meeting_attendees_email``).

        An invite counts by ``create_attempted_at`` (the first time its create may have reached
        the provider; it never moves later), or, for an approved meeting not sent yet, by
        ``updated_at`` (its approval, or a later retry). A proposal awaiting approval is none.
        """
        wanted = [_email(e) for e in emails]
        if not wanted:
            return {}, set()
        params = {
            "wanted": wanted, "start": start, "end": end, "exclude_user_id": exclude_user_id,
            "invited_since": invited_since,
        }  # fmt: skip
        with self._read_engine.connect() as conn:
            rows = conn.execute(_STAKEHOLDER_LOAD.for_(conn), params).all()
        meetings: dict[str, list[datetime]] = {}
        invited: set[str] = set()
        for email, begins, ends, sent in rows:
            if begins < end and ends > start:
                meetings.setdefault(email, []).append(begins)
            if sent:
                invited.add(email)
        return meetings, invited

    def active_overlapping(
        self, emails: Collection[str], start: datetime, end: datetime, *, exclude_id: int
    ) -> list[Meeting]:
        """Meetings being booked or on calendars that overlap ``[start, end)`` and involve any of
        ``emails`` (as the stakeholder or as the owner), other than ``exclude_id``.

        The last guard against two owners booking the same person at the same time: the
        provider re-check cannot see an event another worker is creating right now. An
        ``approved`` meeting whose create was attempted (its reply lost: the event may exist)
        holds its slot too, until its retry finds out.
        """
        wanted = [_email(e) for e in emails]
        with self._read() as s:
            rows = s.scalars(
                select(MeetingRow)
                .where(
                    MeetingRow.id.in_(
                        union_all(*_overlap_candidates(wanted, start, end, exclude_id=exclude_id))
                    )
                )
                .order_by(MeetingRow.id)
            )
            return [meeting_from_row(r) for r in rows]

    def booking_rivals(
        self,
        emails: Collection[str],
        start: datetime,
        end: datetime,
        *,
        exclude_id: int,
        owner_email: str,
    ) -> tuple[list[Meeting], list[tuple[str, Meeting]]]:
        """:meth:`active_overlapping` and :meth:`open_meetings_as_stakeholder` of
        ``owner_email`` in ONE query (a booking's re-check reads both, twice).

        The rows are those of four indexed reads of ids (:func:`_overlap_candidates` and the
        owner's meetings as a stakeholder), so the query reads what involves these people,
        never a range of every owner's meetings (an ``OR`` across columns would)."""
        found = self._rival_rows(emails, start, end, exclude_id=exclude_id, owner=owner_email)
        overlapping = sorted((r.meeting for r in found if r.overlaps), key=lambda m: m.id)
        return overlapping, [(r.owner_email, r.meeting) for r in found if r.theirs]

    def booking_rival_rows(
        self, emails: Collection[str], start: datetime, end: datetime, *, owner_email: str
    ) -> list[Rival]:
        """:meth:`booking_rivals`'s rows, none excluded (ids are positive), with their flags."""
        return self._rival_rows(emails, start, end, exclude_id=0, owner=owner_email)

    def _rival_rows(
        self, emails: Collection[str], start: datetime, end: datetime, *, exclude_id: int,
        owner: str,
    ) -> list[Rival]:  # fmt: skip
        params = {
            "wanted": [_email(e) for e in emails], "start": start, "end": end,
            "exclude_id": exclude_id, "owner_email": _email(owner),
        }  # fmt: skip
        with self._read_engine.connect() as conn:
            rows = conn.execute(_RIVALS, params).all()
            meetings = _core_meetings(conn, rows)
        return [
            Rival(row.email, m, bool(row.overlaps), bool(row.theirs))
            for row, m in zip(rows, meetings, strict=True)
        ]

    def group_meetings(self, user_id: int, *, since: datetime) -> list[Meeting]:
        """The user's group meetings (lunch groups, introductions) starting at ``since`` or
        later, in any state, by start (the presenter rotation reads who presented when)."""
        with self._read() as s:
            rows = s.scalars(
                select(MeetingRow)
                .where(
                    MeetingRow.user_id == user_id,
                    MeetingRow.group_name.is_not(None),
                    MeetingRow.start >= since,
                )
                .order_by(MeetingRow.start, MeetingRow.id)
            )
            return [meeting_from_row(r) for r in rows]

    def set_attendee_status(
        self, meeting_id: int, email: str, status: AttendeeStatus, *, now: datetime
    ) -> bool:
        """Record one group attendee's answer (``responded_at = now``), with an audit row.

        Returns:
            True when the answer changed; False when it was already that, or ``email`` is not
            an attendee of the meeting (nothing written).
        """
        value = AttendeeStatus(status).value
        with self._write() as s:
            moved = self._rowcount(
                s,
                update(MeetingAttendeeRow)
                .where(
                    MeetingAttendeeRow.meeting_id == meeting_id,
                    MeetingAttendeeRow.email == _email(email),
                    MeetingAttendeeRow.status != value,
                )
                .values(status=value, responded_at=now)
                .execution_options(synchronize_session=False),
            )
            if moved != 1:
                return False
            user_id = s.scalar(select(MeetingRow.user_id).where(MeetingRow.id == meeting_id))
            self._audit(
                s, at=now, actor="sync", meeting_id=meeting_id, user_id=user_id,
                detail=f"attendee {_email(email)} answered {value}",
            )  # fmt: skip
            return True

    def meetings_by_state(self, state: MeetingState, *, limit: int | None = None) -> list[Meeting]:
        """Meetings in ``state``, oldest first."""
        with self._read() as s:
            query = select(MeetingRow).where(MeetingRow.state == state).order_by(MeetingRow.id)
            rows = s.scalars(query.limit(limit) if limit is not None else query)
            return [meeting_from_row(r) for r in rows]

    def proposals_starting_before(self, before: datetime, limit: int) -> list[Meeting]:
        """Proposed meetings starting at or before ``before``, soonest first, at most ``limit``
        (by the ``(state, start)`` index: the tick's expiry reads only what is due)."""
        with self._read() as s:
            rows = s.scalars(
                select(MeetingRow)
                .where(MeetingRow.state == MeetingState.PROPOSED, MeetingRow.start <= before)
                .order_by(MeetingRow.start, MeetingRow.id)
                .limit(limit)
            )
            return [meeting_from_row(r) for r in rows]

    def meetings_between(
        self,
        user_id: int,
        start: datetime,
        end: datetime,
        *,
        states: Collection[MeetingState] | None = None,
    ) -> list[Meeting]:
        """The user's meetings overlapping ``[start, end)``, optionally only in ``states``."""
        with self._read() as s:
            query = select(MeetingRow).where(
                MeetingRow.user_id == user_id, MeetingRow.start < end, MeetingRow.end > start
            )
            if states is not None:
                query = query.where(_state_in(states))
            rows = s.scalars(query.order_by(MeetingRow.start, MeetingRow.id))
            return [meeting_from_row(r) for r in rows]

    def transition(
        self,
        meeting_id: int,
        target: MeetingState,
        *,
        actor: str,
        now: datetime,
        detail: str = "",
        expect: MeetingState | None = None,
        attempt: int | None = None,
        **fields: Any,
    ) -> bool:
        """Move a meeting to ``target`` with a compare-and-set UPDATE and an audit row.

        Leaving ``booking`` clears ``lease_until`` unless ``fields`` sets it.

        Args:
            meeting_id: the meeting.
            target: the new state.
            actor: who acts (``worker``, ``tick``, ``sync``, ``user:alex@…``) for the audit log.
            now: aware UTC time of the change (``updated_at``, audit ``at``).
            detail: free text for the audit log (``slot_taken``, the error message …).
            expect: the state the caller read; if the row is in another state now, nothing is
                written and False is returned. None: whatever state it is in now.
            attempt: the claim number the caller holds (``attempts`` after its claim); if the
                meeting was re-claimed since (a stalled worker outlived its lease), nothing is
                written and False is returned, so a stale worker never overwrites the new one.
            **fields: other columns to set: provider_event_id, next_attempt_at, lease_until,
                last_error, attempts, reason.

        Returns:
            True if this call moved the meeting; False if its state changed under us.

        Raises:
            IllegalTransition: the state machine forbids the move (from ``expect``, or from the
                current state).
            UnknownMeeting: no such meeting.
            TypeError: an unknown field.
        """
        target = MeetingState(target)
        unknown = set(fields) - _TRANSITION_FIELDS
        if unknown:
            raise TypeError(f"transition() cannot set {', '.join(sorted(unknown))}")
        if expect is not None:
            check_transition(expect, target)
            return self._transition_from(
                meeting_id, expect, target, actor=actor, now=now, detail=detail,
                attempt=attempt, fields=fields,
            )  # fmt: skip
        with self._write() as s:
            found = s.execute(
                select(MeetingRow.state, MeetingRow.user_id).where(MeetingRow.id == meeting_id)
            ).one_or_none()
            if found is None:
                raise UnknownMeeting(f"no meeting with id {meeting_id}")
            current, user_id = MeetingState(found.state), found.user_id
            if expect is not None and current != expect:
                return False
            check_transition(current, target)
            values: dict[str, Any] = {"state": target, "updated_at": now, **fields}
            if target != MeetingState.BOOKING:
                values.setdefault("lease_until", None)
            fence = [MeetingRow.id == meeting_id, MeetingRow.state == current]
            if attempt is not None:
                fence.append(MeetingRow.attempts == attempt)
            moved = self._rowcount(
                s,
                update(MeetingRow)
                .where(*fence)
                .values(**values)
                .execution_options(synchronize_session=False),
            )
            if moved != 1:
                return False
            self._audit(
                s, at=now, actor=actor, meeting_id=meeting_id, user_id=user_id,
                from_state=current, to_state=target, detail=detail,
            )  # fmt: skip
            return True

    def _transition_from(
        self,
        meeting_id: int,
        expect: MeetingState,
        target: MeetingState,
        *,
        actor: str,
        now: datetime,
        detail: str,
        attempt: int | None,
        fields: dict[str, Any],
    ) -> bool:
        """:meth:`transition` from a known state: the compare-and-set UPDATE alone (no SELECT
        first) returns the owner for the audit row; only a miss reads whether the row exists."""
        values: dict[str, Any] = {"state": target, "updated_at": now, **fields}
        if target != MeetingState.BOOKING:
            values.setdefault("lease_until", None)
        if self._postgres:  # one statement: the compare-and-set UPDATE feeds its audit row
            statement = single.transition_statement(
                meeting_id, expect, target, actor=actor, now=now, detail=detail,
                attempt=attempt, values=values,
            )  # fmt: skip
            outcome = self._single(statement)
            if not outcome.moved and not outcome.known:
                raise UnknownMeeting(f"no meeting with id {meeting_id}")
            return bool(outcome.moved)
        with self._write() as s:
            return self._transition_in(
                s, meeting_id, expect, target, actor=actor, now=now, detail=detail,
                attempt=attempt, values=values,
            )  # fmt: skip

    def _transition_in(
        self, s: Session, meeting_id: int, expect: MeetingState, target: MeetingState, *,
        actor: str, now: datetime, detail: str, attempt: int | None, values: dict[str, Any],
    ) -> bool:  # fmt: skip
        """The portable compare-and-set UPDATE and its audit row, in the transaction ``s``."""
        fence = [MeetingRow.id == meeting_id, MeetingRow.state == expect]
        if attempt is not None:
            fence.append(MeetingRow.attempts == attempt)
        user_id = s.execute(
            update(MeetingRow)
            .where(*fence)
            .values(**values)
            .returning(MeetingRow.user_id)
            .execution_options(synchronize_session=False)
        ).one_or_none()
        if user_id is None:
            if s.scalar(select(MeetingRow.id).where(MeetingRow.id == meeting_id)) is None:
                raise UnknownMeeting(f"no meeting with id {meeting_id}")
            return False
        self._audit(
            s, at=now, actor=actor, meeting_id=meeting_id, user_id=user_id[0],
            from_state=expect, to_state=target, detail=detail,
        )  # fmt: skip
        return True

    def claim_for_booking(
        self, meeting_id: int, now: datetime, lease_s: float, *, actor: str = "worker"
    ) -> Meeting | None:
        """Take the booking lease on one meeting (compare-and-set), or learn someone else has it.

        Claims an ``approved`` meeting whose ``next_attempt_at`` is unset or due, or re-claims
        a ``booking`` meeting whose lease has expired (its worker died). The claim sets
        ``lease_until = now + lease_s`` and counts one more attempt. Pick ``lease_s`` larger than
        the actor's time limit: the lease is what stops a second worker.

        Returns:
            The claimed meeting (state ``booking``), or None when it is not claimable: done,
            not yet due, unknown, or leased by another worker.
        """
        if lease_s <= 0:
            raise ValueError("lease_s must be positive")
        with self._write() as s:
            found = s.execute(
                select(
                    MeetingRow.state,
                    MeetingRow.user_id,
                    MeetingRow.attempts,
                    MeetingRow.next_attempt_at,
                    MeetingRow.lease_until,
                ).where(MeetingRow.id == meeting_id)
            ).one_or_none()
            if found is None:
                return None
            current = MeetingState(found.state)
            if current == MeetingState.APPROVED and (
                found.next_attempt_at is None or found.next_attempt_at <= now
            ):
                detail = "claimed"
            elif current == MeetingState.BOOKING and (
                found.lease_until is not None and found.lease_until <= now
            ):
                detail = f"lease expired at {found.lease_until.isoformat()}: re-claimed"
            else:
                return None
            # attempts doubles as a version number: it changes on every claim.
            claimed = s.scalars(
                update(MeetingRow)
                .where(
                    MeetingRow.id == meeting_id,
                    MeetingRow.state == current,
                    MeetingRow.attempts == found.attempts,
                )
                .values(
                    state=MeetingState.BOOKING,
                    lease_until=now + timedelta(seconds=lease_s),
                    attempts=found.attempts + 1,
                    updated_at=now,
                )
                .returning(MeetingRow)
                .execution_options(synchronize_session=False)
            ).one_or_none()
            if claimed is None:
                return None
            self._audit(
                s, at=now, actor=actor, meeting_id=meeting_id, user_id=found.user_id,
                from_state=current, to_state=MeetingState.BOOKING, detail=detail,
            )  # fmt: skip
            return meeting_from_row(claimed)

    def claim_booking(
        self, meeting_id: int, now: datetime, lease_s: float, *, actor: str = "worker"
    ) -> BookingClaim | None:
        """:meth:`claim_for_booking` and the owner's row. On PostgreSQL a due ``approved``
        meeting is claimed in ONE statement (the claim, its audit row, its attendees and its
        owner); anything else (a lease to re-claim, nothing to claim) takes the portable way."""
        if lease_s <= 0:
            raise ValueError("lease_s must be positive")
        if self._postgres:
            row = self._single_or_none(
                single.claim_statement(meeting_id, now, lease_s, actor=actor)
            )
            if row is not None:
                return BookingClaim(*single.claimed_rows(row))
        return self._claim_portable(meeting_id, now, lease_s, actor=actor)

    def _claim_portable(
        self, meeting_id: int, now: datetime, lease_s: float, *, actor: str
    ) -> BookingClaim | None:
        """:meth:`claim_for_booking`, then the owner's row: any store, any claimable state."""
        claimed = self.claim_for_booking(meeting_id, now, lease_s, actor=actor)
        if claimed is None:
            return None
        return BookingClaim(claimed, self.get_user(claimed.user_id))

    def claim_bookings(
        self, meeting_ids: Sequence[int], now: datetime, lease_s: float, *, actor: str = "worker"
    ) -> dict[int, BookingClaim]:
        """:meth:`claim_booking` for each of ``meeting_ids``: the claims made, by id. On
        PostgreSQL the due ``approved`` ones are claimed in ONE statement; any other is tried
        the portable way (a lease to re-claim), as :meth:`claim_booking` does."""
        if lease_s <= 0:
            raise ValueError("lease_s must be positive")
        wanted = list(dict.fromkeys(meeting_ids))
        found: dict[int, BookingClaim] = {}
        if self._postgres and wanted:
            with self._single_engine.connect() as conn:
                rows = conn.execute(
                    *single.claims_statement(wanted, now, lease_s, actor=actor)
                ).all()
            for row in rows:
                claim = BookingClaim(*single.claimed_rows(row))
                found[claim.meeting.id] = claim
        for meeting_id in wanted:
            if meeting_id in found:
                continue
            other = self._claim_portable(meeting_id, now, lease_s, actor=actor)
            if other is not None:
                found[meeting_id] = other
        return found

    def renew_lease(self, meeting_id: int, now: datetime, lease_s: float, *, attempt: int) -> bool:
        """Extend the booking lease to ``now + lease_s``, only if claim number ``attempt`` holds it.

        Returns:
            False when the meeting left ``booking`` or was re-claimed (``attempts`` moved on):
            the caller has lost the lease and must stop.
        """
        with self._write() as s:
            renewed = self._rowcount(
                s,
                update(MeetingRow)
                .where(
                    MeetingRow.id == meeting_id,
                    MeetingRow.state == MeetingState.BOOKING,
                    MeetingRow.attempts == attempt,
                )
                .values(lease_until=now + timedelta(seconds=lease_s), updated_at=now)
                .execution_options(synchronize_session=False),
            )
            return renewed == 1

    def mark_create_attempted(self, meeting_id: int, now: datetime, *, attempt: int) -> bool:
        """Record, before the create call goes out, that the event may exist from now on.

        Fenced like :meth:`transition`: only claim number ``attempt`` of a ``booking`` meeting
        may set it. The first time is kept (``create_attempted_at`` never moves later), and an
        audit row ``create attempted`` is written.

        Returns:
            False when the caller no longer holds the claim (it must not call the provider).
        """
        if self._postgres:  # one statement: the fenced UPDATE feeds its audit row
            outcome = self._single(
                single.create_attempted_statement(meeting_id, now, attempt=attempt)
            )
            return bool(outcome.moved)
        with self._write() as s:
            row = s.execute(
                update(MeetingRow)
                .where(
                    MeetingRow.id == meeting_id,
                    MeetingRow.state == MeetingState.BOOKING,
                    MeetingRow.attempts == attempt,
                )
                .values(
                    create_attempted_at=func.coalesce(
                        MeetingRow.create_attempted_at, literal(now, UTCDateTime())
                    ),
                    updated_at=now,
                )
                .returning(MeetingRow.user_id)
                .execution_options(synchronize_session=False)
            ).one_or_none()
            if row is None:
                return False
            self._audit(
                s, at=now, actor="worker", meeting_id=meeting_id, user_id=row.user_id,
                detail="create attempted",
            )  # fmt: skip
            return True

    def mark_creates_attempted(self, claims: Sequence[tuple[int, int]], now: datetime) -> set[int]:
        """:meth:`mark_create_attempted` for several claims. On PostgreSQL ONE statement (the
        fenced UPDATE of every row feeds their audit rows); elsewhere one write each."""
        if not claims:
            return set()
        if self._postgres:
            with self._single_engine.connect() as conn:
                rows = conn.execute(*single.creates_attempted_statement(claims, now)).all()
            return {int(row.meeting_id) for row in rows}
        return {m for m, attempt in claims if self.mark_create_attempted(m, now, attempt=attempt)}

    def record_bookings(
        self, booked: Sequence[BookedEvent], now: datetime, *, actor: str = "worker"
    ) -> set[int]:
        """``booking`` → ``booked`` for each event (as :meth:`transition` with ``expect=
        booking``, the claim number, the event id, no last error): the ids that moved. One
        write: ONE statement on PostgreSQL, one transaction elsewhere (all or none)."""
        check_transition(MeetingState.BOOKING, MeetingState.BOOKED)
        if not booked:
            return set()
        if self._postgres:
            with self._single_engine.connect() as conn:
                rows = conn.execute(*single.bookings_statement(booked, now, actor=actor)).all()
            return {int(row.meeting_id) for row in rows}
        values = {"state": MeetingState.BOOKED, "updated_at": now, "lease_until": None}
        moved: set[int] = set()
        with self._write() as s:
            for b in booked:
                fields = {**values, "provider_event_id": b.provider_event_id, "last_error": None}
                try:
                    if self._transition_in(
                        s, b.meeting_id, MeetingState.BOOKING, MeetingState.BOOKED, actor=actor,
                        now=now, detail=b.detail, attempt=b.attempt, values=fields,
                    ):  # fmt: skip
                        moved.add(b.meeting_id)
                except UnknownMeeting:  # gone (its owner removed): not moved, as on PostgreSQL
                    continue
        return moved

    def approved_needing_send(
        self, now: datetime, limit: int, *, send_lease_s: float = 120.0
    ) -> list[int]:
        """Pick meetings a ``book_meeting`` message must be sent for, and mark them in flight.

        Due: ``approved`` with ``next_attempt_at`` unset or passed and no message in flight,
        plus ``booking`` rows whose lease expired (the worker died: re-drive). Those go back to
        ``approved`` (audited). Every returned row gets ``lease_until = now + send_lease_s``
        ("message in flight until"), so the next ticks do not send it again while it waits in
        the queue; if it is lost, it is sent again after that. Send only after this returns
        (the transaction has committed): write first, enqueue second.

        On PostgreSQL rows locked by another transaction are skipped (FOR UPDATE SKIP LOCKED).
        Meetings of an owner whose policy file is gone are not sent: they wait for the file to
        come back, or for the grace period to end (then they are cancelled). Nor are those of an
        owner who paused goodwill: they are sent once the pause ends (or fail as usual when
        their slot passed meanwhile).

        Returns:
            Meeting ids, oldest first, at most ``limit``.
        """
        if send_lease_s <= 0:
            raise ValueError("send_lease_s must be positive")
        in_flight_until = now + timedelta(seconds=send_lease_s)
        # The policy file is gone, or the owner paused goodwill (both columns indexed: the
        # anti-join probes the owner's row, or hashes the few held owners, never every user).
        owner_held = (
            select(UserRow.id)
            .where(
                UserRow.id == MeetingRow.user_id,
                or_(UserRow.policy_missing_since.is_not(None), UserRow.paused_until > now),
            )
            .exists()
        )
        retry_due = or_(MeetingRow.next_attempt_at.is_(None), MeetingRow.next_attempt_at <= now)
        # The states as SQL literals (our constants), not parameters: a plan made without the
        # values (a prepared statement's generic plan) can then use the partial index of the
        # never sent, whose predicate names 'approved'.
        is_approved = MeetingRow.state == _literal(MeetingState.APPROVED)
        never_sent = and_(is_approved, MeetingRow.lease_until.is_(None), retry_due)
        send_lapsed = and_(is_approved, MeetingRow.lease_until <= now, retry_due)
        approved_due = or_(never_sent, send_lapsed)
        lease_expired = and_(
            MeetingRow.state == _literal(MeetingState.BOOKING),
            MeetingRow.lease_until <= now,
        )

        def oldest(due: Any) -> Any:
            # Each kind by its range of the (state, lease_until, id) index, in that index's
            # order (so a scan stops at the limit): the approved never sent (lease NULL: in id
            # order), those whose send lease ran out and the bookings whose lease ran out (the
            # longest lapsed first); never the meetings in flight (sent, lease running: the
            # workers' backlog, which the (state, id) order read through to reach the due ones
            # behind it).
            first = (
                select(MeetingRow.id)
                .where(due, ~owner_held)
                .order_by(MeetingRow.lease_until, MeetingRow.id)
                .limit(limit)
            ).subquery()
            return select(first.c.id)

        with self._write() as s:
            candidates = union_all(oldest(never_sent), oldest(send_lapsed), oldest(lease_expired))
            query = (
                select(MeetingRow.id, MeetingRow.state, MeetingRow.user_id, MeetingRow.lease_until)
                .where(
                    MeetingRow.id.in_(candidates),
                    or_(approved_due, lease_expired),
                    ~owner_held,
                )
                .order_by(MeetingRow.id)
                .limit(limit)
            )
            if self._postgres:
                query = query.with_for_update(skip_locked=True)
            due = s.execute(query).all()
            # The rows are this transaction's (FOR UPDATE on PostgreSQL, BEGIN IMMEDIATE on
            # SQLite): one UPDATE by primary key per kind, not one per row, and no state in the
            # WHERE (a planner without statistics read a whole state's rows for `id AND state`).
            approved = [row.id for row in due if row.state == MeetingState.APPROVED]
            redriven = [row for row in due if row.state == MeetingState.BOOKING]
            in_flight = {"lease_until": in_flight_until, "updated_at": now}
            if approved:
                s.execute(
                    update(MeetingRow)
                    .where(MeetingRow.id.in_(approved))
                    .values(**in_flight)
                    .execution_options(synchronize_session=False)
                )
            if redriven:
                s.execute(
                    update(MeetingRow)
                    .where(MeetingRow.id.in_([row.id for row in redriven]))
                    .values(**in_flight, state=MeetingState.APPROVED, next_attempt_at=None)
                    .execution_options(synchronize_session=False)
                )
                self._insert_audits(
                    s,
                    [
                        {"meeting_id": row.id, "user_id": row.user_id, "at": now,
                         "actor": "tick", "from_state": MeetingState.BOOKING,
                         "to_state": MeetingState.APPROVED,
                         "detail": f"lease expired at {row.lease_until.isoformat()}: re-drive"}
                        for row in redriven  # selected by lease_until <= now: never None
                    ],
                )  # fmt: skip
            return [row.id for row in due]

    def booking_leases_expired(self, now: datetime, limit: int) -> list[int]:
        """Ids of ``booking`` meetings whose worker lease ran out (re-driven by the tick)."""
        with self._read() as s:
            return list(
                s.scalars(
                    select(MeetingRow.id)
                    .where(MeetingRow.state == MeetingState.BOOKING, MeetingRow.lease_until <= now)
                    .order_by(MeetingRow.id)
                    .limit(limit)
                )
            )

    def reschedule(
        self,
        meeting_id: int,
        start: datetime,
        end: datetime,
        *,
        now: datetime,
        actor: str,
        why: str = "",
    ) -> bool:
        """Follow a meeting that moved (at the provider, or moved by us): new ``start``/``end``.

        Audited as ``moved from A to B`` (``why`` first, e.g. ``moved: conflict; …``); a
        conflict recorded on the meeting is cleared, since it was about the old time.

        Returns:
            False when the meeting is unknown or already in a terminal state.
        """
        if not start < end:
            raise ValueError("a meeting must end after it starts")
        with self._write() as s:
            row = s.get(MeetingRow, meeting_id)
            if row is None or MeetingState(row.state) in TERMINAL_STATES:
                return False
            old = f"{row.start.isoformat()}..{row.end.isoformat()}"
            row.start, row.end, row.updated_at = start, end, now
            row.conflict_at = None
            moved = f"moved from {old} to {start.isoformat()}..{end.isoformat()}"
            self._audit(
                s, at=now, actor=actor, meeting_id=meeting_id, user_id=row.user_id,
                detail=f"{why}; {moved}" if why else moved,
            )  # fmt: skip
            return True

    def set_conflict(
        self, meeting_id: int, at: datetime | None, *, now: datetime, detail: str
    ) -> bool:
        """Record (``at``) or clear (None) a conflict on a meeting still open, audited.

        Recording keeps the first time a conflict was seen. Returns False when nothing changed
        (already recorded or already clear, or the meeting is over).
        """
        with self._write() as s:
            row = s.get(MeetingRow, meeting_id)
            if row is None or MeetingState(row.state) in TERMINAL_STATES:
                return False
            if (row.conflict_at is None) == (at is None):
                return False
            row.conflict_at, row.updated_at = at, now
            self._audit(
                s, at=now, actor="sync", meeting_id=meeting_id, user_id=row.user_id,
                detail=detail,
            )  # fmt: skip
            return True

    def user_events(self, user_id: int, *, since: datetime) -> list[AuditEntry]:
        """The user's audit rows at or after ``since``, oldest first (plans, skips, changes)."""
        with self._read() as s:
            rows = s.scalars(
                select(AuditRow)
                .where(AuditRow.user_id == user_id, AuditRow.at >= since)
                .order_by(AuditRow.id)
            )
            return [audit_from_row(r) for r in rows]

    def events_after(self, after_id: int, *, since: datetime, limit: int) -> list[AuditEntry]:
        """Audit rows with an id above ``after_id`` and written at or after ``since``, oldest
        first, at most ``limit`` (read by the primary key, or by ``at`` on a first pass)."""
        with self._read() as s:
            rows = s.scalars(
                select(AuditRow)
                .where(AuditRow.id > after_id, AuditRow.at >= since)
                .order_by(AuditRow.id)
                .limit(limit)
            )
            return [audit_from_row(r) for r in rows]

    def counts_by_state(self) -> dict[str, int]:
        """Number of meetings per state, every state present (zeros included), for metrics."""
        counts = dict.fromkeys((s.value for s in MeetingState), 0)
        with self._read() as s:
            for state, n in s.execute(
                select(MeetingRow.state, func.count()).group_by(MeetingRow.state)
            ):
                counts[MeetingState(state).value] = n
        return counts

    def audit_trail(self, meeting_id: int) -> list[AuditEntry]:
        """The audit rows of one meeting, oldest first."""
        with self._read() as s:
            rows = s.scalars(
                select(AuditRow).where(AuditRow.meeting_id == meeting_id).order_by(AuditRow.id)
            )
            return [audit_from_row(r) for r in rows]

    def record_event(
        self,
        *,
        now: datetime,
        actor: str,
        detail: str,
        user_id: int | None = None,
        meeting_id: int | None = None,
    ) -> None:
        """Write an audit row that is not a state change (a skipped stakeholder, a reconnect)."""
        with self._write() as s:
            self._audit(
                s, at=now, actor=actor, user_id=user_id, meeting_id=meeting_id, detail=detail
            )

    # -- e-mails to the owner (digests and notices) -----------------------------------------

    def set_next_digest(self, user_id: int, at: datetime | None) -> None:
        """When the owner's next digest is due (None: no digest in their policy)."""
        with self._write() as s:
            s.execute(update(UserRow).where(UserRow.id == user_id).values(next_digest_at=at))

    def due_digest_users(self, now: datetime, limit: int) -> list[User]:
        """Users whose digest is due (``next_digest_at <= now``, by its index), most overdue
        first, at most ``limit``; owners whose policy file is gone are left out."""
        with self._read() as s:
            rows = s.scalars(
                select(UserRow)
                .where(
                    UserRow.next_digest_at.is_not(None),
                    UserRow.next_digest_at <= now,
                    UserRow.policy_missing_since.is_(None),
                )
                .order_by(UserRow.next_digest_at, UserRow.id)
                .limit(limit)
            )
            return [user_from_row(r) for r in rows]

    def claim_owner_mail(
        self, user_id: int, kind: OwnerMailKind, period_key: str, *, now: datetime, lease_s: float
    ) -> OwnerMail | None:
        """Claim the right to send one owner e-mail, before sending it.

        A new (user, kind, period) row is inserted as ``sending``; an existing one is taken over
        only when it is not ``sent`` and its lease has run out (a crashed sender, or a failed
        send whose retry time has come). Returns the claimed row (``attempts`` counts this one),
        or None: sent already, or someone else holds it, or its retry is not due yet.
        """
        if lease_s <= 0:
            raise ValueError("lease_s must be positive")
        kind = OwnerMailKind(kind)
        lease = now + timedelta(seconds=lease_s)
        with self._write() as s:
            new_id = s.execute(
                self._insert(OwnerMailRow)
                .values(
                    user_id=user_id,
                    kind=kind.value,
                    period_key=period_key,
                    state="sending",
                    claimed_at=now,
                    lease_until=lease,
                    attempts=1,
                )
                .on_conflict_do_nothing(index_elements=["user_id", "kind", "period_key"])
                .returning(OwnerMailRow.id)
            ).scalar_one_or_none()
            if new_id is None:
                changed = self._rowcount(
                    s,
                    update(OwnerMailRow)
                    .where(
                        OwnerMailRow.user_id == user_id,
                        OwnerMailRow.kind == kind.value,
                        OwnerMailRow.period_key == period_key,
                        OwnerMailRow.state != "sent",
                        or_(OwnerMailRow.lease_until.is_(None), OwnerMailRow.lease_until <= now),
                    )
                    .values(
                        state="sending",
                        claimed_at=now,
                        lease_until=lease,
                        attempts=OwnerMailRow.attempts + 1,
                    )
                    .execution_options(synchronize_session=False),
                )
                if changed != 1:
                    return None
            row = s.scalars(
                select(OwnerMailRow).where(
                    OwnerMailRow.user_id == user_id,
                    OwnerMailRow.kind == kind.value,
                    OwnerMailRow.period_key == period_key,
                )
            ).one()
            return owner_mail_from_row(row)

    def finish_owner_mail(
        self,
        mail_id: int,
        *,
        attempt: int,
        now: datetime,
        error: str | None = None,
        retry_at: datetime | None = None,
        next_digest_at: datetime | None = None,
    ) -> bool:
        """End a claim: sent (``error`` None), or failed and retried from ``retry_at`` on.

        Compare-and-set on the claim (``sending``, this ``attempt``): a sender whose lease ran
        out and was taken over changes nothing. A sent digest moves the owner's
        ``next_digest_at`` in the same transaction, so a crash never sends one period twice.
        """
        with self._write() as s:
            values: dict[str, Any]
            if error is None:
                values = {"state": "sent", "sent_at": now, "lease_until": None, "last_error": None}
            else:
                values = {"state": "failed", "lease_until": retry_at or now, "last_error": error}
            changed = self._rowcount(
                s,
                update(OwnerMailRow)
                .where(
                    OwnerMailRow.id == mail_id,
                    OwnerMailRow.state == "sending",
                    OwnerMailRow.attempts == attempt,
                )
                .values(**values)
                .execution_options(synchronize_session=False),
            )
            if changed == 1 and error is None and next_digest_at is not None:
                user_id = s.scalars(
                    select(OwnerMailRow.user_id).where(OwnerMailRow.id == mail_id)
                ).one()
                s.execute(
                    update(UserRow)
                    .where(UserRow.id == user_id)
                    .values(next_digest_at=next_digest_at)
                )
            return changed == 1

    def last_owner_mail(self, user_id: int, kind: OwnerMailKind) -> OwnerMail | None:
        """The owner's last *sent* e-mail of ``kind`` (the digest's "since"), or None."""
        with self._read() as s:
            row = s.scalars(
                select(OwnerMailRow)
                .where(
                    OwnerMailRow.user_id == user_id,
                    OwnerMailRow.kind == OwnerMailKind(kind).value,
                    OwnerMailRow.state == "sent",
                )
                .order_by(OwnerMailRow.sent_at.desc(), OwnerMailRow.id.desc())
                .limit(1)
            ).one_or_none()
            return owner_mail_from_row(row) if row else None

    # -- the tick ----------------------------------------------------------------------------

    def try_acquire_tick(
        self, holder: str, now: datetime, lease_s: float, *, max_lease_s: float | None = None
    ) -> bool:
        """Compete for this period's tick: True for exactly one caller per lease period.

        A compare-and-set on the singleton ``tick_lease`` row (``… WHERE lease_until <= now``),
        created on first use with INSERT … ON CONFLICT DO NOTHING. Replicas must pass ``now``
        from clocks that agree to well under ``lease_s`` (NTP; the tick checks its clock
        against :meth:`database_now` before it competes).

        Args:
            holder: this replica's name (host:pid), recorded for operators.
            now: aware UTC time.
            lease_s: the tick period; nobody else wins before ``now + lease_s``.
            max_lease_s: the longest lease anyone may hold. A lease that ends later than
                ``now + max_lease_s`` was written from a clock running ahead: it is void and
                taken over, so such a clock stalls the tick for at most ``max_lease_s``.

        Raises:
            ValueError: ``lease_s`` is not positive, or longer than ``max_lease_s``.
        """
        if lease_s <= 0:
            raise ValueError("lease_s must be positive")
        if max_lease_s is not None and lease_s > max_lease_s:
            raise ValueError(f"lease_s {lease_s:g} is longer than max_lease_s {max_lease_s:g}")
        until = now + timedelta(seconds=lease_s)
        free = TickLeaseRow.lease_until <= now
        if max_lease_s is not None:
            free = or_(free, TickLeaseRow.lease_until > now + timedelta(seconds=max_lease_s))
        with self._write() as s:
            won = self._rowcount(
                s,
                update(TickLeaseRow)
                .where(TickLeaseRow.id == _TICK_ROW_ID, free)
                .values(holder=holder, lease_until=until, ticked_at=now)
                .execution_options(synchronize_session=False),
            )
            if won == 1:
                return True
            # First tick ever: create the row. A concurrent creator makes ours a no-op (lost).
            # (RETURNING, not rowcount: drivers need not report a rowcount for INSERT.)
            inserted = s.execute(
                self._insert(TickLeaseRow)
                .values(id=_TICK_ROW_ID, holder=holder, lease_until=until, ticked_at=now)
                .on_conflict_do_nothing(index_elements=["id"])
                .returning(TickLeaseRow.id)
            ).scalar_one_or_none()
            return inserted is not None

    def last_tick(self) -> tuple[str, datetime] | None:
        """(holder, ticked_at) of the latest tick, or None before the first (for /livez)."""
        with self._read() as s:
            row = s.get(TickLeaseRow, _TICK_ROW_ID)
            return (row.holder, row.ticked_at) if row else None

    # -- the database clock and heartbeats ---------------------------------------------------

    def database_now(self) -> datetime:
        """The database server's clock (PostgreSQL ``now()``, SQLite ``'now'``), aware UTC.

        The one clock every replica shares: the tick compares its own clock with it, and
        heartbeats are written and judged by it, so a replica with a skewed clock can neither
        make a beat look fresh nor stale.
        """
        with self._read() as s:
            return self._database_now(s)

    def _database_now(self, session: Session) -> datetime:
        if self._postgres:
            value = session.execute(text("SELECT now()")).scalar_one()
        else:  # CURRENT_TIMESTAMP, with milliseconds
            raw = session.execute(text("SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')")).scalar_one()
            value = datetime.fromisoformat(str(raw))
        moment = cast("datetime", value)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC)

    def record_heartbeat(self, name: str, holder: str) -> datetime:
        """``holder`` completed a round of ``name``: beat at the database's now, failures to 0.

        This is also the process's write probe: it fails when the database takes no writes
        (read-only transaction mode, disk full). Returns the ``beat_at`` written.
        """
        with self._write() as s:
            at = self._database_now(s)
            values = {"holder": holder, "beat_at": at, "failures": 0, "last_error": None}
            s.execute(
                self._insert(HeartbeatRow)
                .values(name=name, **values)
                .on_conflict_do_update(index_elements=["name"], set_=values)
            )
        return at

    def record_heartbeat_failure(self, name: str, error: str) -> int:
        """A round of ``name`` failed: count it (the beat stays where it was).

        Returns the rounds failed in a row, or 0 when ``name`` never completed a round (there
        is no row to count on; readiness says so anyway). A separate short transaction, which
        may itself fail when the database takes no writes: the beat then goes stale.
        """
        with self._write() as s:
            count = s.execute(
                update(HeartbeatRow)
                .where(HeartbeatRow.name == name)
                .values(failures=HeartbeatRow.failures + 1, last_error=error[:500])
                .returning(HeartbeatRow.failures)
                .execution_options(synchronize_session=False)
            ).scalar_one_or_none()
        return int(count or 0)

    def heartbeat(self, name: str) -> Heartbeat | None:
        """The last completed round of ``name`` and the failures since, or None before one."""
        with self._read() as s:
            row = s.get(HeartbeatRow, name)
            if row is None:
                return None
            return Heartbeat(row.name, row.holder, row.beat_at, row.failures, row.last_error)

    # -- contacts ----------------------------------------------------------------------------

    def record_contact(
        self, user_id: int, email: str, met_at: datetime, source: ContactSource
    ) -> None:
        """Remember that the user met ``email`` at ``met_at`` (recording it twice is a no-op)."""
        self.record_contacts(user_id, {email: met_at}, source)

    def record_contacts(
        self, user_id: int, contacts: Mapping[str, datetime], source: ContactSource
    ) -> None:
        """:meth:`record_contact` for each ``email -> met_at``, in ONE multi-row statement (on
        PostgreSQL in autocommit: one round trip, atomic on its own)."""
        kind = ContactSource(source).value
        pairs = [(_email(e), t) for e, t in contacts.items()]
        if not pairs:
            return
        if self._postgres:  # one statement whose SQL never changes (the rows as JSON)
            with self._single_engine.connect() as conn:
                conn.execute(*single.contacts_statement(user_id, pairs, kind))
            return
        rows = [
            {"user_id": user_id, "stakeholder_email": e, "met_at": t, "source": kind}
            for e, t in pairs
        ]
        statement = (
            self._insert(ContactRow)
            .values(rows)
            .on_conflict_do_nothing(index_elements=["user_id", "stakeholder_email", "met_at"])
        )
        with self._write() as s:
            s.execute(statement)

    def last_contacts(self, user_id: int) -> dict[str, datetime]:
        """The latest recorded contact per stakeholder e-mail (aware UTC)."""
        with self._read_engine.connect() as conn:
            rows = conn.execute(_LAST_CONTACTS, {"user_id": user_id}).all()
        return {email: met_at for email, met_at in rows if met_at is not None}

    # -- stakeholder status ------------------------------------------------------------------

    def get_stakeholder_status(self, user_id: int, email: str) -> StakeholderStatus:
        """The etiquette state for one stakeholder (defaults when nothing was recorded)."""
        with self._read() as s:
            row = s.get(StakeholderStatusRow, (user_id, _email(email)))
            return status_from_row(row) if row else StakeholderStatus(user_id, _email(email))

    def stakeholder_statuses(self, user_id: int) -> dict[str, StakeholderStatus]:
        """Every recorded stakeholder status of the user, by e-mail."""
        with self._read_engine.connect() as conn:
            rows = conn.execute(_STATUSES, {"user_id": user_id}).all()
        return {r.stakeholder_email: status_from_row(r) for r in rows}

    def save_stakeholder_status(self, status: StakeholderStatus) -> None:
        """Insert or replace the status row for ``(status.user_id, status.stakeholder_email)``."""
        values = {
            "paused_reason": status.paused_reason,
            "paused_until": status.paused_until,
            "unanswered_in_row": status.unanswered_in_row,
            "backoff_until": status.backoff_until,
            "last_declined_at": status.last_declined_at,
        }
        with self._write() as s:
            s.execute(
                self._insert(StakeholderStatusRow)
                .values(
                    user_id=status.user_id,
                    stakeholder_email=_email(status.stakeholder_email),
                    **values,
                )
                .on_conflict_do_update(index_elements=["user_id", "stakeholder_email"], set_=values)
            )

    # -- credentials -------------------------------------------------------------------------

    def _box(self) -> SecretBox:
        if self._secrets is None:
            raise ConfigurationError(
                "credentials need GOODWILL_SECRET_KEY: the store was built without a SecretBox"
            )
        return self._secrets

    @staticmethod
    def _context(user_email: str, provider: str) -> str:
        return f"{_email(user_email)} {provider}"

    def save_credential(
        self, user_email: str, provider: str, plaintext: bytes, *, now: datetime
    ) -> None:
        """Store a provider grant encrypted; replaces the previous one and clears a revocation."""
        email = _email(user_email)
        token = self._box().encrypt(plaintext, context=self._context(email, provider))
        values = {"ciphertext": token, "updated_at": now, "revoked_reason": None}
        with self._write() as s:
            s.execute(
                self._insert(CredentialRow)
                .values(user_email=email, provider=provider, **values)
                .on_conflict_do_update(index_elements=["user_email", "provider"], set_=values)
            )

    def load_credential(self, user_email: str, provider: str) -> bytes | None:
        """The decrypted grant, or None when there is none or it was revoked (reconnect).

        Raises:
            CredentialDecryptError: the secret key changed or the row was altered.
        """
        email = _email(user_email)
        with self._read() as s:
            row = s.scalars(
                select(CredentialRow).where(
                    CredentialRow.user_email == email, CredentialRow.provider == provider
                )
            ).one_or_none()
            if row is None or row.revoked_reason is not None:
                return None
            ciphertext = row.ciphertext
        return self._box().decrypt(ciphertext, context=self._context(email, provider))

    def mark_credential_revoked(
        self, user_email: str, provider: str, reason: str, *, now: datetime
    ) -> bool:
        """Flag a grant the provider refused. Returns False when there is no such credential."""
        with self._write() as s:
            flagged = self._rowcount(
                s,
                update(CredentialRow)
                .where(
                    CredentialRow.user_email == _email(user_email),
                    CredentialRow.provider == provider,
                )
                .values(revoked_reason=reason, updated_at=now)
                .execution_options(synchronize_session=False),
            )
            return flagged == 1

    def flag_credential_revoked(
        self, user_email: str, provider: str, reason: str, *, now: datetime
    ) -> None:
        """Flag a grant the provider refused, whether or not one is stored here.

        An app-wide grant (a service account, app-only Graph) has no row: a marker row with an
        empty ciphertext is written. Nothing is encrypted, so this needs no secret key; a
        revoked row is never decrypted, and ``save_credential`` replaces it on reconnect.
        """
        email = _email(user_email)
        with self._write() as s:
            s.execute(
                self._insert(CredentialRow)
                .values(
                    user_email=email,
                    provider=provider,
                    ciphertext=b"",
                    updated_at=now,
                    revoked_reason=reason,
                )
                .on_conflict_do_update(
                    index_elements=["user_email", "provider"],
                    set_={"revoked_reason": reason, "updated_at": now},
                )
            )

    def revoked_credentials(self) -> list[RevokedCredential]:
        """Every revoked grant (for /readyz and the report), by e-mail then provider."""
        with self._read() as s:
            rows = s.scalars(
                select(CredentialRow)
                .where(CredentialRow.revoked_reason.is_not(None))
                .order_by(CredentialRow.user_email, CredentialRow.provider)
            )
            return [
                RevokedCredential(r.user_email, r.provider, r.revoked_reason or "", r.updated_at)
                for r in rows
            ]

    # -- replies held for the owner ----------------------------------------------------------

    def hold_reply(self, reply: NewHeldReply, *, now: datetime) -> HeldReply:
        """Keep an e-mailed answer for the owner to decide on (state ``held``).

        The same mail (same ``message_digest``) held twice is one row: the existing one is
        returned, whatever its state. An audit row on the meeting records the hold.
        """
        with self._write() as s:
            new_id = s.execute(
                self._insert(HeldReplyRow)
                .values(
                    meeting_id=reply.meeting_id,
                    user_id=reply.user_id,
                    received_at=now,
                    sender=_email(reply.sender)[:320],
                    attendee=_email(reply.attendee)[:320],
                    partstat=AttendeeStatus(reply.answer).value,
                    uid=reply.uid[:1024],
                    sequence=reply.sequence,
                    reason=reply.reason,
                    state=HeldReplyState.HELD.value,
                    message_digest=reply.message_digest,
                )
                .on_conflict_do_nothing(index_elements=["message_digest"])
                .returning(HeldReplyRow.id)
            ).scalar_one_or_none()
            if new_id is not None:
                self._audit(
                    s, at=now, actor="replies", meeting_id=reply.meeting_id,
                    user_id=reply.user_id, detail=f"reply held for the owner ({new_id})",
                )  # fmt: skip
            row = s.scalars(
                select(HeldReplyRow).where(HeldReplyRow.message_digest == reply.message_digest)
            ).one()
            return held_reply_from_row(row)

    def get_held_reply(self, held_id: int) -> HeldReply | None:
        """The held reply with this id, or None."""
        with self._read() as s:
            row = s.get(HeldReplyRow, held_id)
            return held_reply_from_row(row) if row else None

    def held_replies(
        self, user_id: int, *, states: Collection[HeldReplyState] = (HeldReplyState.HELD,)
    ) -> list[HeldReply]:
        """The user's held replies in ``states`` (default: still waiting), oldest first."""
        with self._read() as s:
            rows = s.scalars(
                select(HeldReplyRow)
                .where(
                    HeldReplyRow.user_id == user_id,
                    HeldReplyRow.state.in_([HeldReplyState(x).value for x in states]),
                )
                .order_by(HeldReplyRow.id)
            )
            return [held_reply_from_row(r) for r in rows]

    def decide_held_reply(
        self, held_id: int, state: HeldReplyState, *, now: datetime, actor: str
    ) -> bool:
        """Compare-and-set a held reply from ``held`` to ``state`` (applied or refused)."""
        target = HeldReplyState(state)
        if target is HeldReplyState.HELD:
            raise ValueError("a held reply is decided as applied or refused")
        with self._write() as s:
            row = s.get(HeldReplyRow, held_id)
            if row is None or row.state != HeldReplyState.HELD.value:
                return False
            changed = self._rowcount(
                s,
                update(HeldReplyRow)
                .where(HeldReplyRow.id == held_id, HeldReplyRow.state == HeldReplyState.HELD.value)
                .values(state=target.value, decided_at=now)
                .execution_options(synchronize_session=False),
            )
            if changed == 1:
                self._audit(
                    s, at=now, actor=actor, meeting_id=row.meeting_id, user_id=row.user_id,
                    detail=f"held reply {held_id} {target.value}",
                )  # fmt: skip
            return changed == 1

    # -- signed web links (single use) -------------------------------------------------------

    def use_link(self, nonce: str, email: str, expires_at: datetime, *, now: datetime) -> bool:
        """Record that the link with ``nonce`` was used: True the first time, False when it was
        used before. Insert-or-nothing on the primary key, so of two racing requests exactly one
        wins (SQLite and PostgreSQL). Rows whose links expired over a day ago are deleted."""
        with self._write() as s:
            s.execute(
                delete(UsedLinkRow)
                .where(UsedLinkRow.expires_at < now - timedelta(days=1))
                .execution_options(synchronize_session=False)
            )
            won = s.execute(
                self._insert(UsedLinkRow)
                .values(nonce=nonce, user_email=_email(email), used_at=now, expires_at=expires_at)
                .on_conflict_do_nothing(index_elements=["nonce"])
                .returning(UsedLinkRow.nonce)
            ).scalar_one_or_none()
            return won is not None

    def link_used(self, nonce: str) -> bool:
        """Whether the link with ``nonce`` was used already."""
        with self._read() as s:
            return s.get(UsedLinkRow, nonce) is not None
