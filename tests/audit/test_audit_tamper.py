"""verify() against an attacker: edits, deletions, reordering, forgeries, raw file edits.

The table's triggers stop accidental rewrites, so each attack first drops them with its own
connection, as someone with write access to the file would.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mcpwarden.audit.events import AuditEvent
from mcpwarden.audit.log import AuditRecord, SqliteAuditLog, record_hash

EventFactory = Callable[..., AuditEvent]  # the make_event fixture (conftest.py)
RECORDS = 6


@pytest.fixture
def written(audit_log: SqliteAuditLog, make_event: EventFactory) -> list[AuditRecord]:
    return [
        audit_log.append(make_event(principal=f"user{n}", correlation_id=f"c{n}", latency_ms=n + 0.5))
        for n in range(1, RECORDS + 1)
    ]


@pytest.fixture
def attacker(db_path: Path, written: list[AuditRecord]) -> Iterator[sqlite3.Connection]:
    conn = sqlite3.connect(db_path, isolation_level=None)
    for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'").fetchall():
        conn.execute(f"DROP TRIGGER {name}")
    yield conn
    conn.close()


def test_untouched_chain_verifies(audit_log: SqliteAuditLog, written: list[AuditRecord]) -> None:
    result = audit_log.verify()
    assert (result.ok, result.checked, result.first_bad_seq, result.problem) == (True, RECORDS, None, None)
    assert (result.head_seq, result.head_hash) == (RECORDS, written[-1].hash)


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("principal", "mallory"),
        ("decision", "deny"),
        ("time", 1_790_000_001.25),
        ("latency_ms", 3.5000001),
        ("request_bytes", 121),
        ("server", None),
        ("detail", "nothing to see"),
        ("extra", '{"cost":1}'),
        ("guard", "policy"),
    ],
)
def test_an_edited_field_is_detected(
    audit_log: SqliteAuditLog, attacker: sqlite3.Connection, column: str, value: object
) -> None:
    attacker.execute(f"UPDATE audit_log SET {column} = ? WHERE seq = 3", (value,))
    result = audit_log.verify()
    assert not result.ok
    assert result.first_bad_seq == 3
    assert result.checked == 2
    assert "does not match its hash" in (result.problem or "")


def test_a_value_of_the_wrong_type_is_detected(
    audit_log: SqliteAuditLog, attacker: sqlite3.Connection
) -> None:
    attacker.execute("UPDATE audit_log SET time = 'yesterday' WHERE seq = 2")
    result = audit_log.verify()
    assert (result.ok, result.first_bad_seq) == (False, 2)
    assert "no append could have written" in (result.problem or "")


def test_an_edited_hash_is_detected(audit_log: SqliteAuditLog, attacker: sqlite3.Connection) -> None:
    attacker.execute("UPDATE audit_log SET hash = ? WHERE seq = 4", ("f" * 64,))
    result = audit_log.verify()
    assert (result.ok, result.first_bad_seq) == (False, 4)


@pytest.mark.parametrize("seq", [1, 3])
def test_a_record_deleted_at_the_start_or_in_the_middle_is_detected(
    audit_log: SqliteAuditLog, attacker: sqlite3.Connection, seq: int
) -> None:
    attacker.execute("DELETE FROM audit_log WHERE seq = ?", (seq,))
    result = audit_log.verify()
    assert (result.ok, result.first_bad_seq) == (False, seq)
    assert f"record {seq} is missing" in (result.problem or "")


def test_records_deleted_at_the_end_are_detected_by_the_head_anchor(
    audit_log: SqliteAuditLog, attacker: sqlite3.Connection
) -> None:
    attacker.execute("DELETE FROM audit_log WHERE seq >= 5")
    result = audit_log.verify()
    assert (result.ok, result.first_bad_seq, result.checked) == (False, 5, 4)
    assert "records 5..6 are missing at the end" in (result.problem or "")


def test_deleting_the_head_anchor_is_detected(
    audit_log: SqliteAuditLog, attacker: sqlite3.Connection
) -> None:
    attacker.execute("DELETE FROM audit_head")
    result = audit_log.verify()
    assert not result.ok
    assert "head anchor row is missing" in (result.problem or "")


def test_renumbered_records_are_detected(audit_log: SqliteAuditLog, attacker: sqlite3.Connection) -> None:
    # Swap records 2 and 3 by their seq, keeping each row's own contents and hashes.
    attacker.execute("UPDATE audit_log SET seq = -1 WHERE seq = 2")
    attacker.execute("UPDATE audit_log SET seq = 2 WHERE seq = 3")
    attacker.execute("UPDATE audit_log SET seq = 3 WHERE seq = -1")
    result = audit_log.verify()
    assert (result.ok, result.first_bad_seq) == (False, 2)


def test_swapped_contents_are_detected(audit_log: SqliteAuditLog, attacker: sqlite3.Connection) -> None:
    # Swap every column but seq between records 2 and 3: each row is internally consistent.
    columns = [row[1] for row in attacker.execute("PRAGMA table_info(audit_log)") if row[1] != "seq"]
    row2 = attacker.execute(f"SELECT {', '.join(columns)} FROM audit_log WHERE seq = 2").fetchone()
    row3 = attacker.execute(f"SELECT {', '.join(columns)} FROM audit_log WHERE seq = 3").fetchone()
    assignments = ", ".join(f"{column} = ?" for column in columns)
    attacker.execute(f"UPDATE audit_log SET {assignments} WHERE seq = 2", row3)
    attacker.execute(f"UPDATE audit_log SET {assignments} WHERE seq = 3", row2)
    result = audit_log.verify()
    assert (result.ok, result.first_bad_seq) == (False, 2)
    assert "does not link" in (result.problem or "")


def _forge(attacker: sqlite3.Connection, source_seq: int, seq: int, prev_hash: str, digest: str) -> None:
    columns = [row[1] for row in attacker.execute("PRAGMA table_info(audit_log)")]
    copied = [c for c in columns if c not in ("seq", "prev_hash", "hash")]
    attacker.execute(
        f"INSERT INTO audit_log (seq, {', '.join(copied)}, prev_hash, hash) "
        f"SELECT ?, {', '.join(copied)}, ?, ? FROM audit_log WHERE seq = ?",
        (seq, prev_hash, digest, source_seq),
    )


def test_a_forged_record_that_does_not_link_is_detected(
    audit_log: SqliteAuditLog, attacker: sqlite3.Connection, written: list[AuditRecord]
) -> None:
    _forge(attacker, 2, RECORDS + 1, "a" * 64, "b" * 64)
    attacker.execute("UPDATE audit_head SET seq = ?, hash = ?", (RECORDS + 1, "b" * 64))
    result = audit_log.verify()
    assert (result.ok, result.first_bad_seq) == (False, RECORDS + 1)
    assert "does not link" in (result.problem or "")


def test_a_forged_record_that_links_but_has_a_made_up_hash_is_detected(
    audit_log: SqliteAuditLog, attacker: sqlite3.Connection, written: list[AuditRecord]
) -> None:
    _forge(attacker, 2, RECORDS + 1, written[-1].hash, "b" * 64)
    result = audit_log.verify()
    assert (result.ok, result.first_bad_seq) == (False, RECORDS + 1)


def test_a_forged_record_without_moving_the_head_is_detected(
    audit_log: SqliteAuditLog, attacker: sqlite3.Connection, written: list[AuditRecord]
) -> None:
    # Even a correctly hashed record is caught when the attacker forgets the head anchor.
    event = written[1].event
    _forge(attacker, 2, RECORDS + 1, written[-1].hash, record_hash(RECORDS + 1, event, written[-1].hash))
    result = audit_log.verify()
    assert not result.ok
    assert "head anchor" in (result.problem or "")


def test_truncation_with_a_rewound_head_passes_but_an_anchor_kept_elsewhere_catches_it(
    audit_log: SqliteAuditLog, attacker: sqlite3.Connection, written: list[AuditRecord]
) -> None:
    """The documented limit: full write access can hide a truncation; an external anchor cannot."""
    anchor = (written[-1].seq, written[-1].hash)
    assert audit_log.verify(anchor).ok
    attacker.execute("DELETE FROM audit_log WHERE seq > 4")
    attacker.execute("UPDATE audit_head SET seq = 4, hash = ?", (written[3].hash,))
    assert audit_log.verify().ok
    result = audit_log.verify(anchor)
    assert (result.ok, result.first_bad_seq) == (False, 5)
    assert "anchored record 6 is missing" in (result.problem or "")


def test_an_anchor_whose_hash_changed_is_detected(
    audit_log: SqliteAuditLog, written: list[AuditRecord]
) -> None:
    result = audit_log.verify((3, "0" * 64))
    assert (result.ok, result.first_bad_seq) == (False, 3)
    assert "not the one anchored" in (result.problem or "")


def test_an_edit_of_the_raw_file_is_detected(
    db_path: Path, audit_log: SqliteAuditLog, written: list[AuditRecord]
) -> None:
    audit_log.close()  # the last connection checkpoints the WAL into the main file
    data = db_path.read_bytes()
    assert data.count(b"user4") == 1
    db_path.write_bytes(data.replace(b"user4", b"userX"))
    with SqliteAuditLog(db_path, create=False) as reopened:
        result = reopened.verify()
    assert (result.ok, result.first_bad_seq) == (False, 4)


class TestTriggersStopAccidentalRewrites:
    def test_update_is_refused(self, db_path: Path, written: list[AuditRecord]) -> None:
        conn = sqlite3.connect(db_path)
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("UPDATE audit_log SET principal = 'x' WHERE seq = 1")
        conn.close()

    def test_delete_is_refused(self, db_path: Path, written: list[AuditRecord]) -> None:
        conn = sqlite3.connect(db_path)
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            conn.execute("DELETE FROM audit_log")
        conn.close()

    def test_insert_that_does_not_extend_the_chain_is_refused(
        self, db_path: Path, written: list[AuditRecord]
    ) -> None:
        conn = sqlite3.connect(db_path)
        with pytest.raises(sqlite3.DatabaseError, match="does not extend the chain"):
            _forge(conn, 2, RECORDS + 1, "a" * 64, "b" * 64)
        with pytest.raises(sqlite3.DatabaseError, match="does not extend the chain"):
            _forge(conn, 2, RECORDS + 5, written[-1].hash, "b" * 64)
        conn.close()

    def test_rewinding_or_deleting_the_head_is_refused(
        self, db_path: Path, written: list[AuditRecord]
    ) -> None:
        conn = sqlite3.connect(db_path)
        with pytest.raises(sqlite3.DatabaseError, match="only moves forward"):
            conn.execute("UPDATE audit_head SET seq = 1")
        with pytest.raises(sqlite3.DatabaseError, match="cannot be deleted"):
            conn.execute("DELETE FROM audit_head")
        conn.close()

    def test_reopening_restores_dropped_triggers(
        self, db_path: Path, audit_log: SqliteAuditLog, attacker: sqlite3.Connection
    ) -> None:
        SqliteAuditLog(db_path).close()
        with pytest.raises(sqlite3.DatabaseError, match="append-only"):
            attacker.execute("DELETE FROM audit_log")
