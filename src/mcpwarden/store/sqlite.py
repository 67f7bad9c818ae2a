"""Open the embedded SQLite databases that live in the state directory.

Every embedded store (audit trail, API keys, pins, approvals, usage) opens its file through
`open_database`, so they all get the same durability and concurrency settings:

- **WAL journal**: readers (`mcpwarden audit tail`, the dashboard) never block the gateway's writer,
  and a committed transaction is in the WAL file before `COMMIT` returns.
- **synchronous=NORMAL** by default: in WAL mode this survives a crash or `kill -9` of the process
  (the operating system still holds the written pages), but a power loss or kernel crash can lose
  the last transactions since the most recent checkpoint. `FULL` fsyncs the WAL on every commit and
  survives power loss too, at a cost of one fsync per transaction; stores pass `synchronous="FULL"`
  when an operator asks for it.
- **busy_timeout**: several processes (two gateways, a CLI reading while the gateway writes) wait
  for each other's locks instead of failing at once.
- **foreign_keys=ON**: SQLite leaves them off by default; stores that declare them mean it.
- **Manual transactions** (`isolation_level=None`): the caller writes `BEGIN IMMEDIATE` / `COMMIT`
  itself (see `transaction`), so what is atomic is visible in the code, not hidden in the driver.

The state directory holds secrets (hashed keys, approval tokens), so it is created `0700` and new
database files `0600`; SQLite gives its `-wal` and `-shm` files the database file's permissions.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Literal

Synchronous = Literal["OFF", "NORMAL", "FULL", "EXTRA"]

DEFAULT_BUSY_TIMEOUT_MS = 5000
_SYNCHRONOUS_LEVELS: dict[str, int] = {"OFF": 0, "NORMAL": 1, "FULL": 2, "EXTRA": 3}


def open_database(
    path: Path,
    *,
    synchronous: Synchronous = "NORMAL",
    busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
    create: bool = True,
) -> sqlite3.Connection:
    """Open (and with `create`, create) the SQLite database at `path` with the store settings.

    The connection may be used from any thread (`check_same_thread=False`); callers that share one
    connection between threads must serialise its use with their own lock. Raises
    `FileNotFoundError` when `create` is false and the file does not exist, rather than letting
    SQLite create an empty database where a reader expected data.
    """
    if synchronous not in _SYNCHRONOUS_LEVELS:
        raise ValueError(f"synchronous must be one of {', '.join(_SYNCHRONOUS_LEVELS)}, not {synchronous!r}")
    if busy_timeout_ms < 0:
        raise ValueError("busy_timeout_ms must not be negative")
    if create:
        _create_private(path)
    elif not path.is_file():
        raise FileNotFoundError(f"no database at {path}")
    # `timeout` is the driver's own busy wait; keep it equal to the pragma so both agree.
    connection = sqlite3.connect(
        path,
        timeout=busy_timeout_ms / 1000,
        isolation_level=None,
        check_same_thread=False,
    )
    try:
        connection.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        mode = connection.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            # e.g. a database on a filesystem without shared memory; durability claims would not hold.
            raise sqlite3.OperationalError(f"{path}: cannot switch to WAL journal mode (got {mode!r})")
        connection.execute(f"PRAGMA synchronous = {synchronous}")
        connection.execute("PRAGMA foreign_keys = ON")
    except BaseException:
        connection.close()
        raise
    return connection


@contextlib.contextmanager
def transaction(connection: sqlite3.Connection, *, immediate: bool = True) -> Iterator[sqlite3.Connection]:
    """Run the block in one transaction: commit on success, roll back on any exception.

    `immediate` takes the write lock at `BEGIN`, so a read-then-write (read the last hash, insert
    the next record) cannot interleave with another process's write; SQLite waits up to
    busy_timeout for the lock.
    """
    connection.execute("BEGIN IMMEDIATE" if immediate else "BEGIN")
    try:
        yield connection
    except BaseException:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise
    connection.execute("COMMIT")


class LockedDatabase:
    """One connection to one store file, serialised by a lock, with its schema ensured on open.

    The gateway calls its stores from the event loop and from worker threads; the CLI opens the
    same files from another process (WAL keeps both working).
    """

    def __init__(self, path: Path, schema: str, *, create: bool = True) -> None:
        self.path = path
        self._db = open_database(path, create=create)
        self._lock = threading.Lock()
        with self._locked() as db:
            db.executescript(schema)

    def close(self) -> None:
        self._db.close()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            yield self._db


def synchronous_level(name: Synchronous) -> int:
    """The number `PRAGMA synchronous` reports for a level name (for checks and tests)."""
    return _SYNCHRONOUS_LEVELS[name]


def _create_private(path: Path) -> None:
    if not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    # Create the file ourselves so it is never world-readable, not even for a moment.
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
