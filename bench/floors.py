"""CPU floor of the prescribed libraries for one user-plan, with none of goodwill's own logic.

The issue's target is "≤ 20 ms of goodwill CPU per user-plan (workers + tick)"; goodwill measures
65–85 ms (``bench.pipeline`` at N = 1,000, ``docs/benchmarks.md``, "After the eighth round"). This
bench asks what the libraries goodwill is built on cost for the same work when nothing else runs:
each call a user-plan makes, made directly through the library, timed as CPU of the calling side,
and multiplied by how often one user-plan makes it (the call mix measured by ``bench.pipeline``
at N = 1,000 on 2026-12-03; every count is a flag, ``--from-pipeline RUN.json`` takes them from a
``bench.pipeline --json`` run, and the mix is printed). Every calendar call of the mix is
priced: the planning rounds' owner read and stakeholders' ``freeBusy`` as such, the other
``freeBusy`` calls (the booking batches' re-checks) as a read of 6 calendars over a day, the
other ``events.list`` calls (a booking batch's owner read, the sync passes) as a one-day list.

- **Calendar API** (google-api-python-client + httplib2 + google-auth): the Google emulator of
  ``bench.pipeline`` in its own process (:mod:`bench.pipeline_emulator`, the users of
  :func:`bench.soak.world.build_world`: ~40 events a week, 26 weeks of history). One client built
  once with ``build_from_document`` from the Calendar v3 discovery document shipped with the
  library, with goodwill's ``connectors.google_json.json_model`` (the library's ``JsonModel``
  with ``orjson.loads`` as its parser: the cheapest way the library offers to parse replies);
  its ``events()`` and ``freebusy()`` collections made once; one ``httplib2.Http`` reused by every
  owner, each owner's requests through a ``google_auth_httplib2.AuthorizedHttp`` with their
  delegated service-account credentials (``execute(http=...)``). Rows: ``events.list`` of the
  owner's calendar over the history and the horizon (``maxResults=2500``, one page, goodwill's
  ``fields``); ``freebusy.query`` of the owner's 20 stakeholders over the horizon; the booking
  batch's ``freebusy.query`` of 6 calendars over a day; ``events.insert`` shaped as
  ``connectors.google_events.insert_body`` writes it (``sendUpdates=all``, ``fields=id``, a Meet
  request for the owners who ask one); a token grant (``with_subject`` on the parsed key, then
  ``refresh``: a signed JWT-bearer grant at the emulator's token endpoint).
- **SQL** (SQLAlchemy Core 2.x + psycopg 3, pooled engine, PostgreSQL on 127.0.0.1, database
  ``gwfloor`` created and dropped here): a parameterised ``SELECT`` by primary key on a small
  table, on an open connection (one statement round trip); ``INSERT`` on an open transaction;
  ``engine.begin()`` around one ``INSERT`` (pool checkout, ``BEGIN``, ``INSERT``, ``COMMIT``,
  return). A user-plan's round trips are priced as its BEGIN/COMMIT pairs (the transaction less
  its ``INSERT``, pool checkout and return included) plus the other round trips at the
  ``SELECT``'s price.
- **Broker** (dramatiq 2 + RedisBroker on 127.0.0.1:6379 db 7, configured as goodwill configures
  it, dramatiq's default middleware): ``actor.send()`` of a one-int message, and a real
  ``dramatiq.Worker`` in this process (4 threads, ``worker_timeout=200``, as ``goodwill worker``)
  fetching, running a no-op actor and acking. The worker's CPU is this process's CPU
  (``time.process_time``: every thread, dramatiq's consumer, heartbeat and time-limit threads
  included) less the main thread's own (``time.thread_time``) over batches of messages sent while
  it runs (a backlog, as when the tick finds many users due); the informational row sends one
  message at a time and waits for its ack (the worker polls an empty queue in between).

Every Calendar and SQL figure is the ``time.thread_time`` of the calling thread around one call
(request building, HTTP or wire protocol, reply parsing), after a warm-up (clients built, tokens
fetched, statements compiled and prepared), medians and 90th percentiles over many calls and,
for the calendar, over several owners in turns. Not counted: the emulator's, PostgreSQL's and
Redis's CPU (other processes), anything goodwill does with the replies (times parsed, busy
blocks, plans, rows mapped), process start-up, imports and policy loads. SQL round trips are
priced low: 16 of them taken as 8 BEGIN/COMMIT pairs (a pair costs less than two statements),
the rest as a primary-key ``SELECT``. So the total is a floor: what goodwill cannot go under
with these libraries used this way.

``python -m bench.floors`` (``--json`` prints one object); ``--goodwill-ms`` is goodwill's
measured figure to compare with. Run it at ``nice -n 19`` on a shared machine (about 20 s on
2 cores); compare the rows of one run, not runs. Not part of ``make test``.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

__all__ = ["Mix", "Row", "main"]

#: The emulator's "now" (as in ``bench.plan_cpu``: a Monday morning, no DST change ahead).
START = datetime(2026, 11, 9, 8, 0, tzinfo=UTC)
SEED = 1
FRESH_WEEKS = 8
HISTORY = timedelta(weeks=26)
PG_ADMIN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres connect_timeout=5"
PG_DATABASE = "gwfloor"
PG_URL = f"postgresql+psycopg://postgres@127.0.0.1:5432/{PG_DATABASE}"
REDIS_DB = 7
REDIS_URL = f"redis://127.0.0.1:6379/{REDIS_DB}"
QUEUE = "gwfloor"
Say = Callable[[str], None]


@dataclass(frozen=True)
class Mix:
    """How often one user-plan makes each call (``bench.pipeline``, N = 1,000)."""

    planning_rounds: float = 1.317
    bookings: float = 6.354
    #: ``freeBusy`` calls besides the planning rounds' (the booking batches' re-checks, ...):
    #: priced as the booking batch's read of 6 calendars over a day.
    other_freebusy: float = 2.464
    #: ``events.list`` calls besides the planning rounds' owner reads (a booking batch's read
    #: of the owner, the sync passes' reads of goodwill's events): priced as a one-day list.
    other_lists: float = 3.137
    #: ``events.get`` calls (a create whose reply was lost, a moved event's check).
    gets: float = 0.078
    token_grants: float = 1.778
    sql_round_trips: float = 23.98
    sql_transactions: float = 8.0
    messages: float = 2.96

    @classmethod
    def from_pipeline(cls, path: Path, users: int | None) -> Mix:
        """The mix of one size of a ``bench.pipeline --json`` run (the first, or ``users``)."""
        sizes = json.loads(path.read_text(encoding="utf-8"))["sizes"]
        size = next((s for s in sizes if users in (None, s["users"])), None)
        if size is None:
            raise SystemExit(f"{path}: no size with {users} users")
        plans, api = max(size["planned"], 1), size["api"]
        rounds = size["plan_rounds"]
        return cls(
            planning_rounds=round(rounds / plans, 3),
            bookings=round(api.get("insert", 0) / plans, 3),
            other_freebusy=round(max(0, api.get("freebusy", 0) - rounds) / plans, 3),
            other_lists=round(max(0, api.get("list", 0) - rounds) / plans, 3),
            gets=round(api.get("get", 0) / plans, 3),
            token_grants=round(api.get("token", 0) / plans, 3),
            sql_round_trips=size["sql_all_per_plan"],
            # the planning rounds' and the booking messages' transactions, as the probes count
            sql_transactions=cls.sql_transactions,
            messages=size["messages_per_plan"],
        )

    @property
    def sql_statements(self) -> float:
        """Round trips that are not a transaction's BEGIN or COMMIT."""
        return max(0.0, self.sql_round_trips - 2 * self.sql_transactions)


@dataclass
class Row:
    """One operation: its CPU ms per call (samples) and how often a user-plan makes it."""

    key: str
    operation: str
    library: str
    samples: list[float]
    #: Calls per user-plan; None: shown for reference, not in the total.
    per_plan: float | None

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    @property
    def p90(self) -> float:
        return _percentile(self.samples, 0.9)

    @property
    def ms_per_plan(self) -> float | None:
        return None if self.per_plan is None else self.median * self.per_plan

    def as_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "operation": self.operation,
            "library": self.library,
            "median_ms": round(self.median, 4),
            "p90_ms": round(self.p90, 4),
            "samples": len(self.samples),
            "per_plan": self.per_plan,
            "ms_per_plan": None if self.ms_per_plan is None else round(self.ms_per_plan, 3),
        }


@dataclass
class Context:
    """What the table's header reports about the run."""

    owners: int = 0
    reps: int = 0
    horizon_days: int = 14
    events_per_list: float = 0.0
    list_pages: int = 1
    notes: list[str] = field(default_factory=list)


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _cpu_ms(work: Callable[..., object], *args: Any) -> float:
    """Thread CPU ms of ``work(*args)``."""
    began = time.thread_time()
    work(*args)
    return (time.thread_time() - began) * 1000


def _z(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _event_id(key: str) -> str:
    """A valid client-side ``Event.id`` (base32hex of SHA-256), as goodwill derives it."""
    digest = hashlib.sha256(key.encode()).digest()
    return base64.b32hexencode(digest).decode("ascii").rstrip("=").lower()


# -- the Calendar API -----------------------------------------------------------------------------


@dataclass
class _Owner:
    email: str
    name: str
    zone: str
    video: str
    stakeholders: list[tuple[str, str]]  # (email, name)
    http: Any  # google_auth_httplib2.AuthorizedHttp


@contextmanager
def _emulator(work: Path, owners: int, say: Say) -> Iterator[tuple[Any, Any]]:
    """The world and the emulator process; yields (world, RemoteEmulator); stops it after."""
    from bench.pipeline_emulator import write_spec
    from bench.soak.emulator import RemoteEmulator
    from bench.soak.world import build_world

    world = build_world(
        users=max(owners, 2), stakeholders=20, hubs=6, seed=SEED, start=START, seed_calendars=False
    )
    spec = work / "calendars.json"
    write_spec(world, spec, start=START, seed=SEED, fresh_weeks=FRESH_WEEKS)
    emulator = RemoteEmulator(spec, work / "emulator.log", module="bench.pipeline_emulator")
    say(f"emulator up at {emulator.base_url} ({emulator.hello.get('people')} people)")
    try:
        yield world, emulator
    finally:
        emulator.close()


def measure_google(work: Path, args: argparse.Namespace, context: Context, say: Say) -> list[Row]:
    """Token grants, events.list, the two freebusy.query and events.insert, owners in turns."""
    import google_auth_httplib2
    import httplib2
    from google.oauth2 import service_account
    from googleapiclient import discovery_cache
    from googleapiclient.discovery import build_from_document

    from connectors.google import _LIST_FIELDS, _LIST_PAGE_SIZE, SCOPES
    from connectors.google_json import json_model
    from tests.integration.reliability_support import service_account_file

    info = json.loads(service_account_file(work / "sa.json").read_text(encoding="utf-8"))
    with _emulator(work, args.owners, say) as (world, emulator):
        http = httplib2.Http(timeout=30)
        token_request = google_auth_httplib2.Request(http)
        base = service_account.Credentials.from_service_account_info(  # type: ignore[no-untyped-call]
            {**info, "token_uri": emulator.token_uri}, scopes=list(SCOPES)
        )
        document = json.loads(discovery_cache.get_static_doc("calendar", "v3") or "{}")
        root = build_from_document(
            document,
            http=http,
            model=json_model(),
            client_options={"api_endpoint": emulator.api_endpoint},
        )
        events, freebusy = root.events(), root.freebusy()
        owners: list[_Owner] = []
        for user in world.users[: args.owners]:
            credentials = base.with_subject(user.person.email)
            credentials.refresh(token_request)  # warm-up: each owner's token, fetched once
            owners.append(
                _Owner(
                    email=user.person.email,
                    name=user.person.name,
                    zone=user.person.timezone,
                    video=user.video,
                    stakeholders=[(s.email, s.name) for s in user.stakeholders],
                    http=google_auth_httplib2.AuthorizedHttp(credentials, http=http),
                )
            )
        now = START
        horizon = timedelta(days=args.horizon_days)
        day = now + timedelta(days=2)  # a booking batch's day: midnight to midnight, UTC
        day_start = day.replace(hour=0, minute=0)
        counter = iter(range(1_000_000))
        listed: list[int] = []
        pages = 0

        def events_list(owner: _Owner) -> None:
            nonlocal pages
            page = events.list(
                calendarId="primary",
                timeMin=_z(now - HISTORY),
                timeMax=_z(now + horizon),
                singleEvents=True,
                orderBy="startTime",
                maxResults=_LIST_PAGE_SIZE,
                fields=_LIST_FIELDS,
            ).execute(http=owner.http)
            listed.append(len(page.get("items") or []))
            pages = max(pages, 2 if page.get("nextPageToken") else 1)

        def plan_freebusy(owner: _Owner) -> Any:
            body = {
                "timeMin": _z(now),
                "timeMax": _z(now + horizon),
                "timeZone": "UTC",
                "calendarExpansionMax": len(owner.stakeholders),
                "items": [{"id": email} for email, _ in owner.stakeholders],
            }
            return freebusy.query(body=body).execute(http=owner.http)

        def booking_freebusy(owner: _Owner) -> Any:
            people = [owner.email, *(email for email, _ in owner.stakeholders[:5])]
            body = {
                "timeMin": _z(day_start),
                "timeMax": _z(day_start + timedelta(days=1)),
                "timeZone": "UTC",
                "calendarExpansionMax": len(people),
                "items": [{"id": email} for email in people],
            }
            return freebusy.query(body=body).execute(http=owner.http)

        def insert_request(owner: _Owner) -> Callable[[], Any]:
            """The insert of a new meeting, its body built outside the timing."""
            n = next(counter)
            key = f"floors:{os.getpid()}:{owner.email}:{n}"
            zone = ZoneInfo(owner.zone)
            start = (day + timedelta(hours=2, minutes=30 * (n % 12))).astimezone(zone)
            end = start + timedelta(minutes=30)
            guest_email, guest_name = owner.stakeholders[n % len(owner.stakeholders)]
            body: dict[str, Any] = {
                "id": _event_id(key),
                "summary": f"Coffee: {owner.name} / {guest_name}",
                "description": "Proposed by goodwill. Reply to accept or decline.",
                "start": {"dateTime": start.isoformat(), "timeZone": owner.zone},
                "end": {"dateTime": end.isoformat(), "timeZone": owner.zone},
                "attendees": [{"email": guest_email, "displayName": guest_name}],
                "extendedProperties": {"private": {"goodwill": "1", "goodwillKey": key}},
                "reminders": {"useDefault": True},
                "location": "Level 2 café",
            }
            extra: dict[str, Any] = {}
            if owner.video == "meet":
                body["conferenceData"] = {
                    "createRequest": {
                        "requestId": _event_id("meet:" + key)[:32],
                        "conferenceSolutionKey": {"type": "hangoutsMeet"},
                    }
                }
                extra["conferenceDataVersion"] = 1

            def insert() -> Any:
                return events.insert(
                    calendarId="primary", body=body, sendUpdates="all", fields="id", **extra
                ).execute(http=owner.http)

            return insert

        created: dict[str, str] = {}  # owner -> the id of an event inserted for them

        def day_list(owner: _Owner) -> Any:
            return events.list(
                calendarId="primary",
                timeMin=_z(day_start),
                timeMax=_z(day_start + timedelta(days=1)),
                singleEvents=True,
                orderBy="startTime",
                maxResults=_LIST_PAGE_SIZE,
                fields=_LIST_FIELDS,
            ).execute(http=owner.http)

        def event_get(owner: _Owner) -> Any:
            return events.get(calendarId="primary", eventId=created[owner.email]).execute(
                http=owner.http
            )

        def token_grant(owner: _Owner) -> None:
            base.with_subject(owner.email).refresh(token_request)

        for owner in owners[:2]:  # warm-up of every call's code path, and what it answers
            events_list(owner)
            for reply, size in ((plan_freebusy(owner), 20), (booking_freebusy(owner), 6)):
                answered = reply.get("calendars") or {}
                if len(answered) != size or any(c.get("errors") for c in answered.values()):
                    raise RuntimeError(f"freebusy.query answered {answered}")
            token_grant(owner)
        for owner in owners:  # an event each owner's events.get reads
            reply = insert_request(owner)()
            if "id" not in reply:
                raise RuntimeError("events.insert answered without the event's id")
            created[owner.email] = reply["id"]
        for owner in owners[:2]:
            if event_get(owner).get("id") != created[owner.email]:
                raise RuntimeError("events.get answered another event")
            day_list(owner)
        listed.clear()
        kinds = ("token", "list", "fb", "fb6", "insert", "day", "get")
        samples: dict[str, list[float]] = {k: [] for k in kinds}
        for rep in range(args.reps):  # in turns: a busy moment falls on every call alike
            owner = owners[rep % len(owners)]
            samples["token"].append(_cpu_ms(token_grant, owner))
            samples["list"].append(_cpu_ms(events_list, owner))
            samples["fb"].append(_cpu_ms(plan_freebusy, owner))
            samples["fb6"].append(_cpu_ms(booking_freebusy, owner))
            for _ in range(args.inserts_per_rep):
                samples["insert"].append(_cpu_ms(insert_request(owner)))
            samples["day"].append(_cpu_ms(day_list, owner))
            samples["get"].append(_cpu_ms(event_get, owner))
        calls = emulator.ask("counts")
        say(f"emulator served: {calls}")
    context.owners = len(owners)
    context.reps = args.reps
    context.horizon_days = args.horizon_days
    context.events_per_list = statistics.mean(listed)
    context.list_pages = pages
    mix: Mix = args.mix
    client = "googleapiclient + httplib2 + AuthorizedHttp"
    return [
        Row(
            "token_grant",
            "token grant: with_subject + refresh (JWT bearer, RS256)",
            "google-auth + google_auth_httplib2.Request",
            samples["token"],
            mix.token_grants,
        ),
        Row(
            "events_list",
            f"events.list, owner, {context.events_per_list:,.0f} events, {pages} page(s)",
            f"{client}, orjson model",
            samples["list"],
            mix.planning_rounds,
        ),
        Row(
            "freebusy_plan",
            f"freebusy.query, 20 calendars, {args.horizon_days} d",
            client,
            samples["fb"],
            mix.planning_rounds,
        ),
        Row(
            "events_insert",
            "events.insert, fields=id, sendUpdates=all",
            client,
            samples["insert"],
            mix.bookings,
        ),
        Row(
            "freebusy_booking",
            "freebusy.query, 6 calendars, 1 d (booking batch, other reads)",
            client,
            samples["fb6"],
            mix.other_freebusy,
        ),
        Row(
            "events_list_day",
            "events.list, owner, one day (booking batch, sync passes)",
            client,
            samples["day"],
            mix.other_lists,
        ),
        Row("events_get", "events.get of one event", client, samples["get"], mix.gets),
    ]


# -- SQL ---------------------------------------------------------------------------------------


@contextmanager
def _database(say: Say) -> Iterator[None]:
    """The ``gwfloor`` database, created fresh and dropped after."""
    import psycopg

    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)')
        admin.execute(f'CREATE DATABASE "{PG_DATABASE}"')
    say(f"database {PG_DATABASE} created")
    try:
        yield
    finally:
        with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{PG_DATABASE}" WITH (FORCE)')
        say(f"database {PG_DATABASE} dropped")


def measure_sql(args: argparse.Namespace, say: Say) -> list[Row]:
    """SELECT by primary key, INSERT, and a one-INSERT transaction, in turns."""
    from sqlalchemy import (
        Column,
        DateTime,
        Integer,
        MetaData,
        String,
        Table,
        bindparam,
        create_engine,
        insert,
        select,
    )

    with _database(say):
        engine = create_engine(PG_URL)  # QueuePool: connections are reused
        try:
            meta = MetaData()
            people = Table(
                "people",
                meta,
                Column("id", Integer, primary_key=True),
                Column("email", String(200), nullable=False),
                Column("score", Integer, nullable=False),
            )
            log = Table(
                "log",
                meta,
                Column("id", Integer, primary_key=True, autoincrement=True),
                Column("person_id", Integer, nullable=False),
                Column("note", String(200), nullable=False),
                Column("at", DateTime(timezone=True), nullable=False),
            )
            meta.create_all(engine)
            with engine.begin() as conn:
                conn.execute(
                    insert(people),
                    [{"id": i, "email": f"p{i}@corp.example", "score": i} for i in range(200)],
                )
            by_id = select(people.c.id, people.c.email, people.c.score).where(
                people.c.id == bindparam("id")
            )
            add = insert(log)
            at = datetime.now(UTC)
            samples: dict[str, list[float]] = {"select": [], "insert": [], "txn": [], "pair": []}
            with engine.connect() as held:

                def one_select(i: int) -> None:
                    held.execute(by_id, {"id": i % 200}).one()

                def one_insert(i: int) -> None:
                    held.execute(add, {"person_id": i % 200, "note": "floor", "at": at})

                def one_txn(i: int) -> None:
                    with engine.begin() as conn:
                        conn.execute(add, {"person_id": i % 200, "note": "floor", "at": at})

                for i in range(30):  # warm-up: compiled and (psycopg: 5th run) prepared
                    one_select(i)
                    one_insert(i)
                    one_txn(i)
                held.commit()
                for i in range(args.sql_reps):
                    s = _cpu_ms(one_select, i)
                    n = _cpu_ms(one_insert, i)
                    t = _cpu_ms(one_txn, i)
                    samples["select"].append(s)
                    samples["insert"].append(n)
                    samples["txn"].append(t)
                    samples["pair"].append(t - n)
                    if i % 50 == 49:
                        held.commit()  # not timed: keeps the held transaction short
                held.commit()
        finally:
            engine.dispose()
    mix: Mix = args.mix
    core = "SQLAlchemy Core conn.execute + psycopg 3, pooled"
    return [
        Row(
            "sql_select",
            "SQL statement round trip: SELECT by primary key",
            core,
            samples["select"],
            mix.sql_statements,
        ),
        Row(
            "sql_begin_commit",
            "SQL BEGIN + COMMIT pair, pool checkout + return",
            f"{core} (engine.begin() less its INSERT)",
            samples["pair"],
            mix.sql_transactions,
        ),
        Row(
            "sql_insert",
            "(ref.) SQL INSERT on an open transaction",
            core,
            samples["insert"],
            None,
        ),
        Row(
            "sql_transaction",
            "(ref.) SQL transaction: checkout, BEGIN, INSERT, COMMIT (3 round trips)",
            f"{core}, engine.begin()",
            samples["txn"],
            None,
        ),
    ]


# -- the broker -------------------------------------------------------------------------------


def measure_broker(args: argparse.Namespace, say: Say) -> list[Row]:
    """``send()`` in the main thread; the in-process Worker's CPU per message consumed."""
    import dramatiq
    from dramatiq.brokers.redis import RedisBroker
    from dramatiq.middleware import Middleware

    class Acked(Middleware):
        """Counts messages acked by the worker (its last step with a message)."""

        def __init__(self) -> None:
            self.count = 0
            self.changed = threading.Condition()

        def after_ack(self, broker: Any, message: Any) -> None:
            with self.changed:
                self.count += 1
                self.changed.notify_all()

        def wait_for(self, target: int) -> None:
            with self.changed:
                if not self.changed.wait_for(lambda: self.count >= target, timeout=60):
                    raise RuntimeError(f"the worker acked {self.count} of {target} messages")

    broker = RedisBroker(  # type: ignore[no-untyped-call]  # as workers/broker.py builds it
        url=REDIS_URL, heartbeat_timeout=15_000, maintenance_chance=100_000
    )
    broker.client.flushdb()
    acked = Acked()
    broker.add_middleware(acked)
    broker.emit_after("process_boot")

    def noop(n: int) -> None:
        pass

    actor = dramatiq.actor(
        actor_name="floor_noop",
        broker=broker,
        queue_name=QUEUE,
        max_retries=3,
        min_backoff=1_000,
        max_backoff=60_000,
        time_limit=120_000,
    )(noop)
    worker = dramatiq.Worker(broker, worker_threads=4, worker_timeout=200)
    sends: list[float] = []
    backlog: list[float] = []
    single: list[float] = []
    try:
        worker.start()
        for n in range(50):  # warm-up
            actor.send(n)
        acked.wait_for(50)
        for _ in range(args.batches):
            target = acked.count + args.batch
            process0, main0 = time.process_time(), time.thread_time()
            for n in range(args.batch):
                sends.append(_cpu_ms(actor.send, n))
            acked.wait_for(target)
            process1, main1 = time.process_time(), time.thread_time()
            backlog.append(((process1 - process0) - (main1 - main0)) * 1000 / args.batch)
        for n in range(args.singles):
            target = acked.count + 1
            process0, main0 = time.process_time(), time.thread_time()
            actor.send(n)
            acked.wait_for(target)
            process1, main1 = time.process_time(), time.thread_time()
            single.append(((process1 - process0) - (main1 - main0)) * 1000)
    finally:
        worker.stop()
        broker.client.flushdb()
        broker.close()
        say(f"redis db {REDIS_DB} flushed")
    mix: Mix = args.mix
    return [
        Row(
            "broker_send",
            "dramatiq actor.send(), one int",
            "dramatiq RedisBroker + redis-py",
            sends,
            mix.messages,
        ),
        Row(
            "broker_consume",
            f"dramatiq Worker: fetch, no-op actor, ack (backlog, {args.batch} a batch)",
            "dramatiq Worker (4 threads) + RedisBroker",
            backlog,
            mix.messages,
        ),
        Row(
            "broker_consume_single",
            "(ref.) dramatiq Worker, one message at a time (idle polling included)",
            "dramatiq Worker (4 threads) + RedisBroker",
            single,
            None,
        ),
    ]


# -- output -----------------------------------------------------------------------------------


def summary(rows: list[Row], context: Context, args: argparse.Namespace) -> dict[str, Any]:
    total = sum(r.ms_per_plan for r in rows if r.ms_per_plan is not None)
    return {
        "machine": f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores",
        "python": sys.version.split()[0],
        "date": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
        "mix": asdict(args.mix) | {"sql_statements": round(args.mix.sql_statements, 3)},
        "owners": context.owners,
        "reps": context.reps,
        "horizon_days": context.horizon_days,
        "events_per_list": round(context.events_per_list, 1),
        "rows": [r.as_json() for r in rows],
        "floor_ms_per_plan": round(total, 3),
        "target_ms": args.target_ms,
        "goodwill_ms": args.goodwill_ms,
        "floor_share_of_target": round(total / args.target_ms, 3),
        "floor_share_of_goodwill": round(total / args.goodwill_ms, 3),
        "headroom_ms": round(args.target_ms - total, 3),
        "json_model": "connectors.google_json.json_model (JsonModel parsing with orjson)",
        "seconds": 0.0,
        "notes": context.notes,
    }


def print_table(result: dict[str, Any]) -> None:
    mix = result["mix"]
    print(
        f"CPU floor of the prescribed libraries per user-plan; {result['machine']}, "
        f"Python {result['python']}, {result['date']}; {result['owners']} owners x "
        f"{result['reps']} turns; horizon {result['horizon_days']} d"
    )
    print(
        f"mix per user-plan: {mix['planning_rounds']} planning rounds, {mix['bookings']} "
        f"bookings, {mix['other_freebusy']} other freeBusy, {mix['other_lists']} other "
        f"events.list, {mix['gets']} events.get, {mix['token_grants']} token grants, "
        f"{mix['sql_round_trips']} SQL round trips ({mix['sql_transactions']} BEGIN/COMMIT "
        f"pairs + {mix['sql_statements']} statements), {mix['messages']} broker messages"
    )
    print(f"API client model: {result['json_model']}, allowed as the library's own hook")
    print()
    header = ("operation", "library path", "ms/call p50", "p90", "calls/plan", "ms/plan")
    lines = [header, tuple("-" * 3 for _ in header)]
    for row in result["rows"]:
        per_plan = row["per_plan"]
        lines.append(
            (
                row["operation"],
                row["library"],
                f"{row['median_ms']:.3f}",
                f"{row['p90_ms']:.3f}",
                "—" if per_plan is None else f"{per_plan:g}",
                "—" if row["ms_per_plan"] is None else f"{row['ms_per_plan']:.2f}",
            )
        )
    lines.append(
        (
            "**floor of the prescribed libraries per user-plan**",
            "",
            "",
            "",
            "",
            f"**{result['floor_ms_per_plan']:.2f}**",
        )
    )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    right = {2, 3, 4, 5}
    for n, line in enumerate(lines):
        cells = []
        for i, cell in enumerate(line):
            if n == 1:
                cells.append("-" * (widths[i] - 1) + (":" if i in right else "-"))
            else:
                cells.append(cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]))
        print("| " + " | ".join(cells) + " |")
    print()
    floor, target, goodwill = (
        result["floor_ms_per_plan"],
        result["target_ms"],
        result["goodwill_ms"],
    )
    print(
        f"floor {floor:.1f} ms per user-plan: {result['floor_share_of_target']:.0%} of the "
        f"{target:g} ms target (leaves {target - floor:.1f} ms for goodwill's own code); "
        f"goodwill measures {goodwill:g} ms, {goodwill / floor:.1f}x the floor "
        f"({goodwill - floor:.1f} ms above it)"
    )
    print("(ref.) rows are shown for scale and are not in the total.")
    for note in result["notes"]:
        print(f"note: {note}")
    print(f"run took {result['seconds']:.0f} s")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    m = Mix()
    add = parser.add_argument
    add("--planning-rounds", type=float, default=m.planning_rounds, help="per user-plan")
    add("--bookings", type=float, default=m.bookings, help="events.insert per user-plan")
    add("--other-freebusy", type=float, default=m.other_freebusy, help="beyond the rounds'")
    add("--other-lists", type=float, default=m.other_lists, help="beyond the rounds'")
    add("--gets", type=float, default=m.gets, help="events.get per user-plan")
    add("--from-pipeline", type=Path, help="take the mix from a bench.pipeline --json file")
    add("--size", type=int, help="with --from-pipeline: the size (users) to take")
    add("--token-grants", type=float, default=m.token_grants, help="per user-plan")
    add("--sql-round-trips", type=float, default=m.sql_round_trips, help="per user-plan")
    add("--sql-transactions", type=float, default=m.sql_transactions, help="BEGIN/COMMIT pairs")
    add("--messages", type=float, default=m.messages, help="broker messages per user-plan")
    add("--goodwill-ms", type=float, default=85.5, help="goodwill's measured CPU ms per plan")
    add("--target-ms", type=float, default=20.0, help="the issue's target, CPU ms per plan")
    add("--owners", type=int, default=30, help="owners taken in turns for the calendar calls")
    add("--reps", type=int, default=120, help="turns of the calendar calls (one owner each)")
    add("--inserts-per-rep", type=int, default=2, help="events.insert per turn")
    add("--horizon-days", type=int, default=14, help="the policy's horizon (the soak's: 14 d)")
    add("--sql-reps", type=int, default=1000, help="SQL calls of each kind")
    add("--batches", type=int, default=20, help="broker batches")
    add("--batch", type=int, default=100, help="messages per broker batch")
    add("--singles", type=int, default=40, help="broker messages sent one at a time")
    add("--json", action="store_true", help="print one JSON object")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    args.mix = Mix(
        planning_rounds=args.planning_rounds,
        bookings=args.bookings,
        other_freebusy=args.other_freebusy,
        other_lists=args.other_lists,
        gets=args.gets,
        token_grants=args.token_grants,
        sql_round_trips=args.sql_round_trips,
        sql_transactions=args.sql_transactions,
        messages=args.messages,
    )
    if args.from_pipeline is not None:
        args.mix = Mix.from_pipeline(args.from_pipeline, args.size)

    def say(line: str) -> None:
        print(f"[floors] {line}", file=sys.stderr, flush=True)

    began = time.monotonic()
    context = Context()
    rows: list[Row] = []
    with tempfile.TemporaryDirectory(prefix="floors-") as tmp:
        rows += measure_google(Path(tmp), args, context, say)
    say(f"calendar calls done ({time.monotonic() - began:.0f} s)")
    rows += measure_sql(args, say)
    say(f"SQL done ({time.monotonic() - began:.0f} s)")
    rows += measure_broker(args, say)
    order = [
        "token_grant",
        "events_list",
        "freebusy_plan",
        "events_insert",
        "freebusy_booking",
        "events_list_day",
        "events_get",
        "sql_select",
        "sql_begin_commit",
        "broker_send",
        "broker_consume",
        "sql_insert",
        "sql_transaction",
        "broker_consume_single",
    ]
    rows.sort(key=lambda r: order.index(r.key))
    top = max((r for r in rows if r.ms_per_plan is not None), key=lambda r: r.ms_per_plan or 0.0)
    context.notes.append(f"largest share: {top.operation} ({top.ms_per_plan:.2f} ms per plan)")
    result = summary(rows, context, args)
    result["seconds"] = round(time.monotonic() - began, 1)
    if args.json:
        print(json.dumps(result))
    else:
        print_table(result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
