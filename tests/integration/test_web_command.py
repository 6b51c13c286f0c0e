"""``goodwill web`` refuses before touching anything, and warns about unreachable links."""

from __future__ import annotations

import io
import logging
import sqlite3
from pathlib import Path

import pytest

from scheduler.entrypoints.cli import main


def _env(monkeypatch: pytest.MonkeyPatch, data_dir: Path) -> None:
    for name in ("GOODWILL_SECRET_KEY", "GOODWILL_DATABASE_URL", "GOODWILL_WEB__BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GOODWILL_DATA_DIR", str(data_dir))


def test_web_without_a_secret_key_refuses_before_it_migrates_or_makes_a_key_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    sqlite3.connect(data_dir / "goodwill.db").close()  # an empty database: nothing migrated yet
    _env(monkeypatch, data_dir)
    before = sorted(p.name for p in data_dir.iterdir())
    err = io.StringIO()
    assert main(["web"], out=io.StringIO(), err=err) == 2
    assert "GOODWILL_SECRET_KEY" in err.getvalue()
    assert "goodwill secret" in err.getvalue()
    assert sorted(p.name for p in data_dir.iterdir()) == before  # no key file, no journal
    with sqlite3.connect(data_dir / "goodwill.db") as db:
        assert db.execute("SELECT name FROM sqlite_master").fetchall() == []  # not migrated


@pytest.mark.parametrize("host", ["0.0.0.0", "::"])
def test_a_wildcard_host_without_a_base_url_warns_once_that_links_are_unreachable(
    host: str, caplog: pytest.LogCaptureFixture
) -> None:
    from scheduler.entrypoints.web.server import warn_unreachable_links
    from scheduler.settings import Settings

    settings = Settings(_env_file=None, web={"host": host})
    with caplog.at_level(logging.WARNING, logger="goodwill.web"):
        warn_unreachable_links(settings.web)
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert "GOODWILL_WEB__BASE_URL" in record.getMessage()
    assert "unreachable" in record.getMessage()
    caplog.clear()
    for fine in (
        Settings(_env_file=None, web={"host": host, "base_url": "https://gw.corp.example"}),
        Settings(_env_file=None, web={"host": "127.0.0.1"}),
    ):
        with caplog.at_level(logging.WARNING, logger="goodwill.web"):
            warn_unreachable_links(fine.web)
    assert caplog.records == []
