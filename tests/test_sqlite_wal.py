"""The write-ahead log's checkpointer: off the commit, and still checkpointed."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import pytest
from django.db import DEFAULT_DB_ALIAS, connections

from core.sqlite_wal import WalCheckpointer, start_wal_checkpointer, stop_wal_checkpointer

ALIAS = "wal-check"


def rows_in_main_file(path: Path) -> int:
    """Rows of ``t`` in the database file itself: ``immutable`` reads past the write-ahead log."""
    with sqlite3.connect(f"file:{path}?immutable=1", uri=True) as reader:
        if reader.execute("SELECT count(*) FROM sqlite_master WHERE name = 't'").fetchone()[0] == 0:
            return 0  # the table itself is still only in the log
        return reader.execute("SELECT count(*) FROM t").fetchone()[0]


def logged_database(path: Path, rows: int) -> None:
    """A WAL database whose ``rows`` rows are all still in its log, none in its file."""
    with sqlite3.connect(path, isolation_level=None) as writer:
        writer.execute("PRAGMA journal_mode=WAL")
        writer.execute("CREATE TABLE t (x TEXT)")
        writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the table itself is in the file
        writer.execute("PRAGMA wal_autocheckpoint=0")
        writer.executemany("INSERT INTO t VALUES (?)", [("x" * 100,)] * rows)


def until(condition, seconds: float = 10.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def test_the_log_stays_out_of_the_file_without_a_checkpoint(tmp_path):
    """The measure the next test relies on: committed rows are only in the log until a checkpoint."""
    path = tmp_path / "db.sqlite3"
    logged_database(path, rows=50)
    time.sleep(0.2)
    assert rows_in_main_file(path) == 0


def test_the_checkpointer_copies_committed_rows_into_the_file(tmp_path):
    path = tmp_path / "db.sqlite3"
    logged_database(path, rows=50)
    checkpointer = WalCheckpointer(str(path), interval=0.05)
    checkpointer.start()
    try:
        assert until(lambda: rows_in_main_file(path) == 50)
    finally:
        checkpointer.stop()
    assert checkpointer.checkpoints >= 1
    assert checkpointer.last is not None and checkpointer.last.copied == checkpointer.last.logged


def test_a_file_it_cannot_open_is_logged_and_retried(tmp_path, caplog):
    folder = tmp_path / "not yet"
    checkpointer = WalCheckpointer(str(folder / "db.sqlite3"), interval=0.05)
    checkpointer.start()
    try:
        assert until(lambda: "WAL checkpoint of" in caplog.text)
        assert checkpointer.checkpoints == 0
        folder.mkdir()
        time.sleep(0.2)
        assert not (folder / "db.sqlite3").exists()  # it never creates the database
        logged_database(folder / "db.sqlite3", rows=5)
        assert until(lambda: rows_in_main_file(folder / "db.sqlite3") == 5)
    finally:
        checkpointer.stop()


@pytest.fixture
def file_database(tmp_path, django_db_blocker):
    """A second database alias on a SQLite file, as a server's own database is."""
    databases = {
        DEFAULT_DB_ALIAS: connections.settings[DEFAULT_DB_ALIAS],
        ALIAS: {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": str(tmp_path / "db.sqlite3"),
            "OPTIONS": {"init_command": "PRAGMA journal_mode=WAL;"},
        },
    }
    connections.settings[ALIAS] = connections.configure_settings(databases)[ALIAS]
    with django_db_blocker.unblock():
        yield connections[ALIAS]
        stop_wal_checkpointer(ALIAS)
        connections[ALIAS].close()
    del connections[ALIAS]
    del connections.settings[ALIAS]


def autocheckpoint(connection) -> int:
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA wal_autocheckpoint")
        return cursor.fetchone()[0]


def test_connections_opened_while_it_runs_leave_checkpoints_to_it(file_database):
    assert autocheckpoint(file_database) == 1000  # SQLite's own, before
    file_database.close()
    checkpointer = start_wal_checkpointer(0.05, alias=ALIAS)
    assert checkpointer is not None
    assert start_wal_checkpointer(0.05, alias=ALIAS) is checkpointer  # one per process
    assert autocheckpoint(file_database) == 0
    with file_database.cursor() as cursor:
        cursor.execute("CREATE TABLE t (x TEXT)")
        cursor.executemany("INSERT INTO t VALUES (%s)", [("x",)] * 20)
    assert until(lambda: rows_in_main_file(Path(file_database.settings_dict["NAME"])) == 20)

    stop_wal_checkpointer(ALIAS)
    file_database.close()
    assert autocheckpoint(file_database) == 1000  # no checkpointer, SQLite's own again


def test_no_checkpointer_when_turned_off(file_database):
    assert start_wal_checkpointer(0, alias=ALIAS) is None
    assert autocheckpoint(file_database) == 1000


@pytest.mark.django_db
def test_no_checkpointer_for_an_in_memory_or_postgresql_database():
    try:
        assert start_wal_checkpointer(1.0, alias=DEFAULT_DB_ALIAS) is None  # the test database
    finally:
        stop_wal_checkpointer(DEFAULT_DB_ALIAS)
