"""The audit trail's embedded sink: an append-only, hash-chained SQLite table.

The pipeline hands one `AuditEvent` per exchange to `SqliteAuditLog.append` (from a worker thread;
the method takes a lock). `mcpwarden audit tail` reads records back and `mcpwarden audit verify`
checks the chain. By convention the database is `state_dir / AUDIT_DB_NAME`.

**The chain.** Record `seq` (1, 2, 3, … without gaps) stores the event's fields in typed columns
plus `prev_hash` and `hash`, where::

    hash = sha256_hex(prev_hash + canonical_json({"seq": seq, **event fields}))

and the first record's `prev_hash` is 64 zeros (`GENESIS_HASH`). `record_hash` is that formula;
anyone can recompute it from an export. Values are normalised when the event is built
(`audit.events`), so the columns read back give byte-identical canonical JSON.

**What `verify` detects.** An edited field (the hash no longer matches), a record deleted in the
middle or at the start (a gap in `seq`, a broken link), records reordered or swapped (`seq` is
hashed, links break), a forged record that does not carry a correct chain hash, and records deleted
at the end: the one-row `audit_head` table holds the last `seq` and `hash` and is advanced by a
trigger in the same transaction as each insert, so a truncated table disagrees with it.

**What it cannot detect.** The chain is not signed. Someone who can write the whole database file
can truncate the table *and* rewind `audit_head`, or rewrite every record from some point on and
recompute the hashes; the result verifies. What defeats that is a copy of a head kept elsewhere:
`verify` reports the head (`seq` and `hash`), and `verify(anchor=(seq, hash))` /
`mcpwarden audit verify --anchor SEQ:HASH` fails if that record is no longer in the chain with
that hash. Record anchors off the host (a ticket, a log shipper) to make rewriting history
detectable up to the last anchor.

**Append-only from the gateway's side.** Triggers `RAISE` on `UPDATE` or `DELETE` of a record, on
an insert that does not extend the chain, and on rewinding the head, so a bug or a stray SQL
statement fails loudly. They are a guard rail, not a security boundary: an attacker drops them.

**Durability.** Each `append` / `append_many` is one `BEGIN IMMEDIATE … COMMIT`, committed before
it returns; the database is in WAL mode (`store.sqlite`). With `synchronous="NORMAL"` (the default)
a committed event survives `kill -9` of the gateway, because it is already written to the WAL file,
but the last events before a power loss or kernel crash may be lost. `synchronous="FULL"` adds an
fsync per commit and survives power loss too. The gateway does not call `append` per exchange: it
queues events and commits them in small batches within a bounded window (`audit.writer`), so
`kill -9` can lose the events of that window. The rare slow commit is SQLite's automatic WAL
checkpoint (every ~1000 pages), which copies pages into the main file and syncs it.

**Concurrency.** The last hash is read inside `BEGIN IMMEDIATE`, which holds SQLite's write lock,
so two processes appending to one file (two gateways, or a gateway and a test) interleave whole
records and never fork the chain. Readers never block the writer (WAL).
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

from mcpwarden.audit.events import EVENT_FIELDS, AuditEvent, canonical_json
from mcpwarden.errors import MCPWardenError
from mcpwarden.store.sqlite import Synchronous, open_database, transaction

AUDIT_DB_NAME: Final = "audit.db"
GENESIS_HASH: Final = "0" * 64
SCHEMA_VERSION: Final = 1
_PAGE_SIZE: Final = 500

# Typed columns (not one JSON blob) so the trail can be queried by time, principal or decision;
# `extra` alone is stored as its canonical JSON text. The one index serves "what happened to the
# call whose error said correlation id X"; each index costs every append (~7 µs, bench/audit.py).
_SCHEMA: Final[tuple[str, ...]] = (
    """
    CREATE TABLE IF NOT EXISTS audit_log (
        seq             INTEGER PRIMARY KEY,
        time            REAL    NOT NULL,
        correlation_id  TEXT    NOT NULL,
        principal       TEXT    NOT NULL,
        transport       TEXT    NOT NULL,
        method          TEXT    NOT NULL,
        server          TEXT,
        target          TEXT,
        argument_digest TEXT,
        decision        TEXT    NOT NULL,
        reason          TEXT    NOT NULL,
        detail          TEXT    NOT NULL,
        latency_ms      REAL    NOT NULL,
        request_bytes   INTEGER NOT NULL,
        response_bytes  INTEGER NOT NULL,
        guard           TEXT,
        extra           TEXT    NOT NULL,
        prev_hash       TEXT    NOT NULL,
        hash            TEXT    NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS audit_log_correlation ON audit_log (correlation_id)",
    """
    CREATE TABLE IF NOT EXISTS audit_head (
        id   INTEGER PRIMARY KEY CHECK (id = 1),
        seq  INTEGER NOT NULL,
        hash TEXT    NOT NULL
    )
    """,
    f"INSERT OR IGNORE INTO audit_head (id, seq, hash) VALUES (1, 0, '{GENESIS_HASH}')",
    """
    CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: records cannot be updated'); END
    """,
    """
    CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log
    BEGIN SELECT RAISE(ABORT, 'audit_log is append-only: records cannot be deleted'); END
    """,
    """
    CREATE TRIGGER IF NOT EXISTS audit_log_extends_chain BEFORE INSERT ON audit_log
    WHEN NEW.seq IS NOT (SELECT seq + 1 FROM audit_head WHERE id = 1)
      OR NEW.prev_hash IS NOT (SELECT hash FROM audit_head WHERE id = 1)
    BEGIN SELECT RAISE(ABORT, 'audit record does not extend the chain'); END
    """,
    """
    CREATE TRIGGER IF NOT EXISTS audit_log_advance_head AFTER INSERT ON audit_log
    BEGIN UPDATE audit_head SET seq = NEW.seq, hash = NEW.hash WHERE id = 1; END
    """,
    """
    CREATE TRIGGER IF NOT EXISTS audit_head_forward_only BEFORE UPDATE ON audit_head
    WHEN NEW.seq IS NOT OLD.seq + 1 OR NEW.id IS NOT OLD.id
    BEGIN SELECT RAISE(ABORT, 'audit_head only moves forward, one record at a time'); END
    """,
    """
    CREATE TRIGGER IF NOT EXISTS audit_head_no_delete BEFORE DELETE ON audit_head
    BEGIN SELECT RAISE(ABORT, 'audit_head cannot be deleted'); END
    """,
)

_COLUMNS: Final[tuple[str, ...]] = ("seq", *EVENT_FIELDS, "prev_hash", "hash")
_SELECT: Final = f"SELECT {', '.join(_COLUMNS)} FROM audit_log"
_INSERT: Final = f"INSERT INTO audit_log ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' for _ in _COLUMNS)})"


class AuditError(MCPWardenError):
    """The audit database is missing, foreign, from a newer version, or closed."""


@dataclass(frozen=True, slots=True)
class AuditRecord:
    """An event as stored: its place in the chain and the hashes that link it."""

    seq: int
    event: AuditEvent
    prev_hash: str
    hash: str

    def to_dict(self) -> dict[str, Any]:
        """Flat JSON-able form for exports and `audit tail --format json`."""
        return {"seq": self.seq, **self.event.to_dict(), "prev_hash": self.prev_hash, "hash": self.hash}


@dataclass(frozen=True, slots=True)
class VerifyResult:
    """Outcome of walking the chain. `checked` counts records that verified before any problem."""

    ok: bool
    checked: int
    first_bad_seq: int | None
    problem: str | None
    head_seq: int = 0  # the last record that verified (0: none)
    head_hash: str = GENESIS_HASH


class AuditSink(Protocol):
    """What the pipeline needs from an audit backend (SQLite here; PostgreSQL later)."""

    def append(self, event: AuditEvent) -> AuditRecord: ...

    def close(self) -> None: ...


def record_hash(seq: int, event: AuditEvent, prev_hash: str) -> str:
    """The chain hash of record `seq`: sha256(prev_hash || canonical JSON of seq and the event)."""
    payload = canonical_json({"seq": seq, **event.to_dict()})
    return hashlib.sha256((prev_hash + payload).encode("ascii")).hexdigest()


def audit_db_path(state_dir: Path) -> Path:
    return state_dir / AUDIT_DB_NAME


class SqliteAuditLog:
    """Append-only, hash-chained audit trail in one SQLite file; safe to share between threads."""

    def __init__(self, path: Path, *, synchronous: Synchronous = "NORMAL", create: bool = True) -> None:
        """Open the trail at `path`, creating the file and schema when `create` (the gateway).

        Readers (`audit tail`, `audit verify`) pass `create=False`: a missing file raises
        `AuditError` instead of leaving an empty database behind, and the schema is not touched.
        """
        self._path = Path(path)
        self._lock = threading.Lock()
        try:
            self._conn: sqlite3.Connection | None = open_database(
                self._path, synchronous=synchronous, create=create
            )
        except FileNotFoundError:
            raise AuditError(f"no audit database at {self._path}") from None
        try:
            if create:
                self._create_schema(self._conn)
            self._check_schema(self._conn)
        except BaseException:
            self._conn.close()
            raise

    @property
    def path(self) -> Path:
        return self._path

    def append(self, event: AuditEvent) -> AuditRecord:
        """Chain `event` after the current head and commit it before returning.

        Raises `AuditError` once closed and `sqlite3.Error` when the write fails (disk full, the
        lock held by another process beyond busy_timeout); nothing is half-written then.
        """
        return self.append_many((event,))[0]

    def append_many(self, events: Sequence[AuditEvent]) -> list[AuditRecord]:
        """Chain `events` in order after the current head, in one transaction (group commit).

        Either every event is committed or none is; errors as for `append`.
        """
        records: list[AuditRecord] = []
        with self._lock:
            conn = self._connection()
            with transaction(conn, immediate=True):
                # Read the head inside the write lock, so no other writer can take the same seq.
                head_seq, prev_hash = conn.execute("SELECT seq, hash FROM audit_head WHERE id = 1").fetchone()
                seq = int(head_seq)
                for event in events:
                    seq += 1
                    digest = record_hash(seq, event, prev_hash)
                    records.append(AuditRecord(seq=seq, event=event, prev_hash=prev_hash, hash=digest))
                    prev_hash = digest
                conn.executemany(
                    _INSERT, [(r.seq, *_event_columns(r.event), r.prev_hash, r.hash) for r in records]
                )
        return records

    def tail(self, limit: int = 20) -> list[AuditRecord]:
        """The last `limit` records, oldest first (like `tail`)."""
        if limit <= 0:
            return []
        with self._lock:
            rows = self._connection().execute(f"{_SELECT} ORDER BY seq DESC LIMIT ?", (limit,)).fetchall()
        return [_record_from_row(row) for row in reversed(rows)]

    def iter_records(self, since_seq: int = 0) -> Iterator[AuditRecord]:
        """Records with `seq > since_seq`, in order, read in pages so the lock is never held long."""
        last = since_seq
        while True:
            with self._lock:
                rows = (
                    self._connection()
                    .execute(f"{_SELECT} WHERE seq > ? ORDER BY seq LIMIT ?", (last, _PAGE_SIZE))
                    .fetchall()
                )
            for row in rows:
                record = _record_from_row(row)
                last = record.seq
                yield record
            if len(rows) < _PAGE_SIZE:
                return

    def head(self) -> tuple[int, str]:
        """The anchor row: last seq and hash as the writer recorded them."""
        with self._lock:
            seq, digest = (
                self._connection().execute("SELECT seq, hash FROM audit_head WHERE id = 1").fetchone()
            )
        return int(seq), str(digest)

    def verify(self, anchor: tuple[int, str] | None = None) -> VerifyResult:
        """Walk the whole chain and report the first problem, if any.

        Runs on its own connection inside one read transaction: a consistent snapshot even while
        this or another process appends, without blocking them (WAL). `anchor` is a (seq, hash)
        recorded earlier, e.g. from a previous verify; it must still be in the chain.
        """
        self._connection()  # fail like the other methods once closed
        conn = open_database(self._path, create=False)
        try:
            conn.execute("BEGIN")
            try:
                return _verify_chain(conn, anchor)
            finally:
                conn.execute("ROLLBACK")
        finally:
            conn.close()

    def close(self) -> None:
        """Close the connection; idempotent. Appends after close raise `AuditError`."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> SqliteAuditLog:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise AuditError(f"audit log {self._path} is closed")
        return self._conn

    @staticmethod
    def _create_schema(conn: sqlite3.Connection) -> None:
        # IMMEDIATE: two processes opening a new file at once create the schema one after the other.
        with transaction(conn, immediate=True):
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            if version > SCHEMA_VERSION:
                return  # _check_schema reports it
            if version == 0 and _has_foreign_tables(conn):
                raise AuditError("the file is an SQLite database, but not an mcpwarden audit trail")
            # Run on every open: re-creates any dropped trigger (an existing object is left alone).
            for statement in _SCHEMA:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _check_schema(self, conn: sqlite3.Connection) -> None:
        try:
            version = int(conn.execute("PRAGMA user_version").fetchone()[0])
            tables = {
                str(row[0])
                for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
            }
        except sqlite3.DatabaseError as exc:
            raise AuditError(f"{self._path}: not a readable SQLite database ({exc})") from None
        if version > SCHEMA_VERSION:
            raise AuditError(
                f"{self._path}: audit schema version {version} is newer than this mcpwarden's "
                f"({SCHEMA_VERSION})"
            )
        if version != SCHEMA_VERSION or not {"audit_log", "audit_head"} <= tables:
            raise AuditError(f"{self._path}: not an mcpwarden audit trail")


def _has_foreign_tables(conn: sqlite3.Connection) -> bool:
    count = conn.execute("SELECT count(*) FROM sqlite_master WHERE type = 'table'").fetchone()[0]
    return int(count) > 0


def _event_columns(event: AuditEvent) -> tuple[Any, ...]:
    return tuple(
        canonical_json(dict(event.extra)) if name == "extra" else getattr(event, name)
        for name in EVENT_FIELDS
    )


def _record_from_row(row: tuple[Any, ...]) -> AuditRecord:
    """Rebuild a record; raises ValueError or TypeError if the row holds values no append could write."""
    seq, *values, prev_hash, digest = row
    fields = dict(zip(EVENT_FIELDS, values, strict=True))
    if not isinstance(fields["extra"], str):
        raise TypeError("extra is not JSON text")
    fields["extra"] = json.loads(fields["extra"])
    if not isinstance(seq, int) or not isinstance(prev_hash, str) or not isinstance(digest, str):
        raise TypeError("seq, prev_hash or hash has the wrong type")
    return AuditRecord(seq=seq, event=AuditEvent(**fields), prev_hash=prev_hash, hash=digest)


def _verify_chain(conn: sqlite3.Connection, anchor: tuple[int, str] | None) -> VerifyResult:
    checked = 0
    expected_seq = 1
    prev_hash = GENESIS_HASH

    def broken(seq: int, problem: str) -> VerifyResult:
        return VerifyResult(False, checked, seq, problem, expected_seq - 1, prev_hash)

    cursor = conn.execute(f"{_SELECT} ORDER BY seq")
    for row in cursor:
        seq = row[0]
        if not isinstance(seq, int) or seq < expected_seq:
            return broken(
                expected_seq, f"unexpected record with seq {seq!r} where {expected_seq} was expected"
            )
        if seq > expected_seq:
            missing = _span(expected_seq, seq - 1)
            return broken(expected_seq, f"{missing} missing (deleted?): the next record is {seq}")
        try:
            record = _record_from_row(row)
        except (TypeError, ValueError) as exc:
            return broken(seq, f"record {seq} holds values no append could have written: {exc}")
        if record.prev_hash != prev_hash:
            return broken(
                seq, f"record {seq} does not link to record {seq - 1} (reordered, replaced or forged?)"
            )
        if record_hash(seq, record.event, prev_hash) != record.hash:
            return broken(seq, f"record {seq} does not match its hash (edited or forged?)")
        if anchor is not None and anchor[0] == seq and anchor[1] != record.hash:
            return broken(seq, f"record {seq} is not the one anchored earlier (history rewritten?)")
        checked += 1
        expected_seq = seq + 1
        prev_hash = record.hash

    last_seq = expected_seq - 1
    head = conn.execute("SELECT seq, hash FROM audit_head WHERE id = 1").fetchone()
    if head is None:
        return broken(last_seq + 1, "the head anchor row is missing (audit_head was tampered with)")
    head_seq, head_hash = head
    if isinstance(head_seq, int) and head_seq > last_seq:
        return broken(
            last_seq + 1,
            f"{_span(last_seq + 1, head_seq)} missing at the end (deleted?): the head anchor says {head_seq}",
        )
    if head_seq != last_seq or head_hash != prev_hash:
        return broken(last_seq, f"the head anchor ({head_seq!r}) does not match the last record ({last_seq})")
    if anchor is not None and anchor[0] > last_seq:
        return broken(last_seq + 1, f"anchored record {anchor[0]} is missing (history truncated?)")
    return VerifyResult(True, checked, None, None, last_seq, prev_hash)


def _span(first: int, last: int) -> str:
    return f"record {first} is" if first == last else f"records {first}..{last} are"
