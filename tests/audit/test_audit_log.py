"""SqliteAuditLog: appending, reading back, opening, closing and sharing between threads."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from mcpwarden.audit.events import AuditEvent
from mcpwarden.audit.log import GENESIS_HASH, AuditError, SqliteAuditLog, record_hash

EventFactory = Callable[..., AuditEvent]  # the make_event fixture (conftest.py)


def test_append_chains_records_from_genesis(audit_log: SqliteAuditLog, make_event: EventFactory) -> None:
    first = audit_log.append(make_event(correlation_id="a"))
    second = audit_log.append(make_event(correlation_id="b"))
    assert (first.seq, second.seq) == (1, 2)
    assert first.prev_hash == GENESIS_HASH
    assert second.prev_hash == first.hash
    assert first.hash == record_hash(1, first.event, GENESIS_HASH)
    assert second.hash == record_hash(2, second.event, first.hash)
    assert audit_log.head() == (2, second.hash)


def test_tricky_values_read_back_identical(audit_log: SqliteAuditLog, make_event: EventFactory) -> None:
    events = [
        make_event(time=0.1 + 0.2, latency_ms=1e-300, detail="nul\x00inside, ünïcode ✓, emoji 🛡"),
        make_event(time=1_790_000_000, latency_ms=-0.0, server=None, target=None, argument_digest=None),
        make_event(decision="deny", reason="tool-not-permitted", guard="policy", detail="d" * 900),
        make_event(extra={"cost": 0.1, "nested": {"b": [1, 2.5, None, True], "a": "é"}, "big": 2**62}),
        make_event(request_bytes=2**63 - 1, response_bytes=0, latency_ms=1.7976931348623157e308),
    ]
    written = [audit_log.append(event) for event in events]
    assert audit_log.tail(10) == written
    assert audit_log.verify().ok


def test_tail_returns_the_last_records_oldest_first(
    audit_log: SqliteAuditLog, make_event: EventFactory
) -> None:
    for index in range(5):
        audit_log.append(make_event(correlation_id=f"c{index}"))
    assert [record.seq for record in audit_log.tail(3)] == [3, 4, 5]
    assert [record.seq for record in audit_log.tail(50)] == [1, 2, 3, 4, 5]
    assert audit_log.tail(0) == []


def test_tail_of_an_empty_log_is_empty_and_verifies(audit_log: SqliteAuditLog) -> None:
    assert audit_log.tail() == []
    result = audit_log.verify()
    assert (result.ok, result.checked, result.head_seq, result.head_hash) == (True, 0, 0, GENESIS_HASH)


def test_iter_records_pages_through_everything_after_a_seq(
    audit_log: SqliteAuditLog, make_event: EventFactory
) -> None:
    for index in range(1203):  # more than two pages of 500
        audit_log.append(make_event(correlation_id=f"c{index}"))
    assert [record.seq for record in audit_log.iter_records()] == list(range(1, 1204))
    assert [record.seq for record in audit_log.iter_records(since_seq=1199)] == [1200, 1201, 1202, 1203]
    assert list(audit_log.iter_records(since_seq=1203)) == []


def test_records_persist_across_reopening(db_path: Path, make_event: EventFactory) -> None:
    with SqliteAuditLog(db_path) as log:
        written = log.append(make_event())
    with SqliteAuditLog(db_path, create=False) as log:
        assert log.tail() == [written]
        assert log.append(make_event()).prev_hash == written.hash
        assert log.verify().checked == 2


def test_reader_does_not_create_a_missing_database(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "audit.db"
    with pytest.raises(AuditError, match="no audit database"):
        SqliteAuditLog(path, create=False)
    assert not path.exists()


def test_foreign_sqlite_database_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE notes (body TEXT)")
    conn.close()
    with pytest.raises(AuditError, match="not an mcpwarden audit trail"):
        SqliteAuditLog(path)
    with pytest.raises(AuditError, match="not an mcpwarden audit trail"):
        SqliteAuditLog(path, create=False)


def test_newer_schema_is_refused(db_path: Path) -> None:
    SqliteAuditLog(db_path).close()
    conn = sqlite3.connect(db_path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(AuditError, match="newer"):
        SqliteAuditLog(db_path)


def test_closed_log_refuses_use_and_close_is_idempotent(db_path: Path, make_event: EventFactory) -> None:
    log = SqliteAuditLog(db_path)
    log.close()
    log.close()
    with pytest.raises(AuditError, match="closed"):
        log.append(make_event())
    with pytest.raises(AuditError, match="closed"):
        log.verify()


def test_synchronous_full_is_accepted(tmp_path: Path, make_event: EventFactory) -> None:
    with SqliteAuditLog(tmp_path / "audit.db", synchronous="FULL") as log:
        log.append(make_event())
        assert log.verify().ok


def test_threads_sharing_one_log_never_fork_the_chain(
    audit_log: SqliteAuditLog, make_event: EventFactory
) -> None:
    threads_count, per_thread = 8, 50
    start = threading.Barrier(threads_count)
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        try:
            start.wait(timeout=10)
            for n in range(per_thread):
                audit_log.append(make_event(principal=f"t{index}", correlation_id=f"{index}-{n}"))
        except BaseException as exc:  # surfaced below; a thread's exception would be lost
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors
    records = list(audit_log.iter_records())
    assert [r.seq for r in records] == list(range(1, threads_count * per_thread + 1))
    assert len({r.event.correlation_id for r in records}) == threads_count * per_thread
    assert audit_log.verify().ok


def test_verify_sees_a_consistent_snapshot_while_appends_continue(
    audit_log: SqliteAuditLog, make_event: EventFactory
) -> None:
    done = threading.Event()

    def writer() -> None:
        for n in range(400):
            audit_log.append(make_event(correlation_id=f"w{n}"))
        done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    results = []
    while not done.is_set():
        results.append(audit_log.verify())
    thread.join(timeout=30)
    results.append(audit_log.verify())
    assert all(result.ok for result in results), [r.problem for r in results if not r.ok]
    assert results[-1].checked == 400


def test_a_batch_chains_exactly_like_single_appends(
    audit_log: SqliteAuditLog, make_event: EventFactory
) -> None:
    first = audit_log.append(make_event(correlation_id="single"))
    batch = audit_log.append_many([make_event(correlation_id=f"b{i}") for i in range(3)])
    assert [record.seq for record in batch] == [2, 3, 4]
    assert batch[0].prev_hash == first.hash
    for before, record in zip([first, *batch], batch, strict=False):
        assert record.hash == record_hash(record.seq, record.event, before.hash)
    assert audit_log.tail(10) == [first, *batch]
    assert audit_log.verify().ok
