"""open_database and transaction: the settings every embedded store relies on."""

from __future__ import annotations

import sqlite3
import stat
import sys
import threading
import time
from pathlib import Path

import pytest

from mcpwarden.store.sqlite import open_database, synchronous_level, transaction


def _pragma(conn: sqlite3.Connection, name: str) -> object:
    return conn.execute(f"PRAGMA {name}").fetchone()[0]


def test_defaults_are_wal_normal_busy_timeout_and_foreign_keys(tmp_path: Path) -> None:
    conn = open_database(tmp_path / "state" / "x.db")
    try:
        assert _pragma(conn, "journal_mode") == "wal"
        assert _pragma(conn, "synchronous") == synchronous_level("NORMAL") == 1
        assert _pragma(conn, "busy_timeout") == 5000
        assert _pragma(conn, "foreign_keys") == 1
        assert conn.isolation_level is None
    finally:
        conn.close()


def test_synchronous_and_busy_timeout_are_configurable(tmp_path: Path) -> None:
    conn = open_database(tmp_path / "x.db", synchronous="FULL", busy_timeout_ms=250)
    try:
        assert _pragma(conn, "synchronous") == 2
        assert _pragma(conn, "busy_timeout") == 250
    finally:
        conn.close()


@pytest.mark.parametrize("kwargs", [{"synchronous": "SOMETIMES"}, {"busy_timeout_ms": -1}])
def test_invalid_settings_are_rejected(tmp_path: Path, kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        open_database(tmp_path / "x.db", **kwargs)  # type: ignore[arg-type]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX permissions")
def test_state_dir_and_new_files_are_private(tmp_path: Path) -> None:
    path = tmp_path / "state" / "nested" / "keys.db"
    open_database(path).close()
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_without_create_a_missing_file_is_an_error_and_is_not_created(tmp_path: Path) -> None:
    path = tmp_path / "missing.db"
    with pytest.raises(FileNotFoundError):
        open_database(path, create=False)
    assert not path.exists()


def test_transaction_commits_or_rolls_back(tmp_path: Path) -> None:
    conn = open_database(tmp_path / "x.db")
    try:
        conn.execute("CREATE TABLE t (v INTEGER)")
        with transaction(conn):
            conn.execute("INSERT INTO t VALUES (1)")
        with pytest.raises(RuntimeError), transaction(conn):
            conn.execute("INSERT INTO t VALUES (2)")
            raise RuntimeError("boom")
        assert not conn.in_transaction
        assert conn.execute("SELECT v FROM t").fetchall() == [(1,)]
    finally:
        conn.close()


def test_a_committed_write_is_visible_to_another_connection(tmp_path: Path) -> None:
    writer = open_database(tmp_path / "x.db")
    reader = open_database(tmp_path / "x.db", create=False)
    try:
        writer.execute("CREATE TABLE t (v INTEGER)")
        with transaction(writer):
            writer.execute("INSERT INTO t VALUES (7)")
        assert reader.execute("SELECT v FROM t").fetchall() == [(7,)]
    finally:
        writer.close()
        reader.close()


def test_a_second_writer_waits_at_most_busy_timeout(tmp_path: Path) -> None:
    holder = open_database(tmp_path / "x.db")
    waiter = open_database(tmp_path / "x.db", busy_timeout_ms=100)
    try:
        holder.execute("BEGIN IMMEDIATE")
        started = time.monotonic()
        with pytest.raises(sqlite3.OperationalError, match="locked"), transaction(waiter):
            pass
        assert time.monotonic() - started < 5
        holder.execute("COMMIT")
        with transaction(waiter):  # free again
            pass
    finally:
        holder.close()
        waiter.close()


def test_connection_may_be_used_from_another_thread(tmp_path: Path) -> None:
    conn = open_database(tmp_path / "x.db")
    results: list[object] = []
    thread = threading.Thread(target=lambda: results.append(_pragma(conn, "journal_mode")))
    thread.start()
    thread.join(timeout=10)
    conn.close()
    assert results == ["wal"]
