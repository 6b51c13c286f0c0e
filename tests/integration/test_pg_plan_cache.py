"""Issue 13: why PostgreSQL's CPU per plan grew with N in the pipeline bench, and the remedy.

A prepared statement's generic plan is cached with the tables as they were when it was made.
Made on an empty ``meetings`` table, ``stakeholder_load``'s plan is a sequential scan, and it
stays one as the table fills, until an ``ANALYZE`` (autovacuum's, on a deployed server)
invalidates it. The machines here run PostgreSQL with autovacuum off, so the bench applies
autovacuum's rule itself (:mod:`bench.pg_maintenance`). The statement is PREPAREd in SQL here
(psycopg prepares it the same way on its fifth run) so that ``EXPLAIN EXECUTE`` can show the
cached plan.
"""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bench.pg_maintenance import Autovacuum, Thresholds, due_work
from scheduler.store import make_engine, migrate
from scheduler.store import repository as repo
from tests.conftest_db import PG_HOST, PG_PORT, pg_schema

NOW = datetime(2026, 12, 1, 9, tzinfo=UTC)
WANTED = [f"s{i}@corp.example" for i in range(20)]
DEFAULTS = Thresholds()


# -- autovacuum's rule ---------------------------------------------------------------------------


def test_due_work_follows_autovacuums_thresholds() -> None:
    rows = [
        ("quiet", 1000.0, 100, 10, 10),  # under every threshold (analyse at 150, vacuum at 250)
        ("changed", 1000.0, 151, 0, 0),
        ("dead", 1000.0, 0, 251, 0),
        ("inserted", 1000.0, 0, 0, 1201),  # insert threshold 1000 + 0.2 * 1000
        ("both", 0.0, 51, 51, 0),  # a table never analysed counts as empty
    ]
    off = Thresholds(insert_base=-1)
    assert due_work([("inserted", 1000.0, 0, 0, 10**6)], off) == []  # -1: no insert vacuum
    assert due_work(rows, DEFAULTS) == [
        ("changed", "ANALYZE"),
        ("dead", "VACUUM"),
        ("inserted", "VACUUM"),
        ("both", "VACUUM (ANALYZE)"),
    ]


def test_thresholds_read_from_the_servers_settings() -> None:
    values = {
        "autovacuum_naptime": "15",
        "autovacuum_analyze_threshold": "10",
        "autovacuum_analyze_scale_factor": "0.05",
        "autovacuum_vacuum_threshold": "20",
        "autovacuum_vacuum_scale_factor": "0.1",
        "autovacuum_vacuum_insert_threshold": "500",
        "autovacuum_vacuum_insert_scale_factor": "0.3",
    }
    assert Thresholds.from_settings(values) == Thresholds(15.0, 10, 0.05, 20, 0.1, 500, 0.3)


@pytest.mark.services
def test_the_servers_settings_are_read_where_autovacuum_is_off(pg_dsn: str) -> None:
    vacuum = Autovacuum(pg_dsn, "gwbench-maintenance")
    vacuum.start()
    try:
        if vacuum.mode == "the server's autovacuum":
            assert vacuum.thresholds is None  # the server does the work
        else:
            assert vacuum.thresholds is not None
            assert vacuum.thresholds.naptime_s > 0
    finally:
        vacuum.stop()


# -- the cached plan, on PostgreSQL --------------------------------------------------------------


@pytest.fixture
def pg_dsn(pg_database: str) -> Iterator[str]:
    """A libpq DSN of a fresh, migrated schema."""
    with pg_schema(pg_database) as url:
        migrate(url)
        schema = url.rsplit("%3D", 1)[1]
        yield (
            f"host={PG_HOST} port={PG_PORT} user=postgres dbname={pg_database} "
            f"options=-csearch_path={schema}"
        )


def _prepared_stakeholder_load(cur: Any) -> str:
    """PREPARE the store's statement under the name ``q``; returns the EXECUTE with its values."""
    params = {
        "wanted": WANTED, "start": NOW, "end": NOW + timedelta(weeks=6),
        "exclude_user_id": 1, "invited_since": NOW - timedelta(days=1),
    }  # fmt: skip
    engine = make_engine("postgresql://postgres@127.0.0.1/postgres")
    compiled = repo._STAKEHOLDER_LOAD.statements["postgresql"].params(**params).compile(
        dialect=engine.dialect, compile_kwargs={"render_postcompile": True}
    )
    sql = str(compiled)
    names = list(dict.fromkeys(re.findall(r"%\((\w+)\)s", sql)))
    number = {n: i + 1 for i, n in enumerate(names)}
    sql = re.sub(r"%\((\w+)\)s", lambda m: f"${number[m.group(1)]}", sql)
    types = [
        "varchar[]" if n == "wanted" else "integer" if n == "exclude_user_id" else "timestamptz"
        for n in names
    ]  # one array of e-mails: the statement's text is the same for any number of them
    cur.execute(f"PREPARE q({', '.join(types)}) AS {sql}")
    values = [params[n] for n in names]
    return str(cur.mogrify(f"EXECUTE q({', '.join(['%s'] * len(values))})", values))


def _plan(cur: Any, execute: str) -> str:
    cur.execute(f"EXPLAIN {execute}")
    return "\n".join(row[0] for row in cur.fetchall())


def _fill(cur: Any, meetings: int) -> None:
    """Many other owners' completed meetings with many people (none of ``WANTED`` among them
    but a few)."""
    cur.execute(
        "INSERT INTO users (email, policy_path, policy_hash, created_at) "
        "SELECT 'u' || g || '@corp.example', '/p/' || g, 'h', now() FROM generate_series(1, 200) g"
    )
    cur.execute(
        'INSERT INTO meetings (user_id, stakeholder_email, kind, start, "end", state, mode, '
        "idempotency_key, provider, attempts, created_at, updated_at, reason) "
        "SELECT g %% 200 + 1, 's' || g %% 2000 || '@corp.example', 'coffee', "
        "now() - g * interval '1 hour', now() - g * interval '1 hour' + interval '30 minutes', "
        "'completed', 'auto', 'k' || g, 'google', 0, now(), now(), 'r' "
        "FROM generate_series(1, %s) g",
        (meetings,),
    )
    cur.execute("SELECT pg_stat_force_next_flush()")  # PostgreSQL 15: the counts autovacuum reads


@pytest.mark.services
def test_a_plan_cached_on_empty_tables_scans_until_analysed(pg_dsn: str) -> None:
    psycopg = pytest.importorskip("psycopg")
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        cur = psycopg.ClientCursor(conn)
        execute = _prepared_stakeholder_load(cur)
        for _ in range(6):  # custom plans for five runs, then the generic plan is cached
            cur.execute(execute)
        _fill(cur, 20_000)
        assert "Seq Scan on meetings" in _plan(cur, execute)  # the cached plan: every row

        vacuum = Autovacuum(pg_dsn, "gwbench-maintenance", thresholds=DEFAULTS)
        done = vacuum.round(conn)

        assert ("meetings", "VACUUM (ANALYZE)") in done
        assert vacuum.counts["analyze"] >= 1
        plan = _plan(cur, execute)
        assert "Seq Scan on meetings" not in plan  # re-planned: by the e-mail index
        assert "ix_meetings_stakeholder_email" in plan


# -- what goodwill tells the operator --------------------------------------------------------------


def test_the_tick_warns_when_the_server_never_analyses(
    db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from scheduler.entrypoints.runtime import build_runtime
    from scheduler.settings import Settings, new_secret_key
    from scheduler.store import maintenance_warning

    engine = make_engine(db_url)
    try:
        warning = maintenance_warning(engine)
        if engine.dialect.name == "sqlite":
            assert warning is None
            return
        with engine.connect() as conn:
            autovacuum = conn.exec_driver_sql("SHOW autovacuum").scalar()
    finally:
        engine.dispose()
    if autovacuum == "on":
        assert warning is None
        return
    assert warning is not None
    assert "autovacuum off" in warning
    assert "ANALYZE" in warning
    settings = Settings(
        database_url=db_url, broker_url="embedded", data_dir=tmp_path, secret_key=new_secret_key()
    )
    with caplog.at_level("WARNING", logger="goodwill.runtime"):
        build_runtime(settings, with_worker=False, auto_migrate=True).app.engine.dispose()
    assert [r.getMessage() for r in caplog.records if r.name == "goodwill.runtime"] == [warning]


@pytest.mark.services
def test_a_tick_run_once_from_cron_warns_too(
    pg_database: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    from scheduler.entrypoints.cli import main
    from scheduler.settings import new_secret_key

    with pg_schema(pg_database) as url:
        migrate(url)
        engine = make_engine(url)
        try:
            with engine.connect() as conn:
                autovacuum = conn.exec_driver_sql("SHOW autovacuum").scalar()
        finally:
            engine.dispose()
        (tmp_path / "policies").mkdir()
        for name, value in {
            "GOODWILL_DATABASE_URL": url, "GOODWILL_DATA_DIR": str(tmp_path / "data"),
            "GOODWILL_POLICY_DIR": str(tmp_path / "policies"), "GOODWILL_BROKER_URL": "embedded",
            "GOODWILL_SECRET_KEY": new_secret_key(),
        }.items():  # fmt: skip
            monkeypatch.setenv(name, value)
        out, err = io.StringIO(), io.StringIO()
        code = main(["serve", "--once"], out=out, err=err)
    assert code == 0, err.getvalue()
    logged = capfd.readouterr().err + err.getvalue()
    assert ("runs with autovacuum off" in logged) == (autovacuum != "on"), logged
