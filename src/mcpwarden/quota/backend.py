"""Counter backends: the one small interface the quota guard uses, and its embedded SQLite form.

A backend runs an `Admission` (`quota.plan`) atomically: it checks every counter first, then
commits every change or none, so a call refused by one rule never spends another rule's tokens.
Checks run in a fixed order and the first that refuses is reported: budget, loop, concurrency,
rate. After the call, `settle` releases the concurrency lease and adds the cost that is only known
then (cost per KB returned), or refunds the reservation of a call that never got an answer.

State kept per kind of counter (identical in SQLite and Redis):
- **rate**: a token bucket (tokens, last update); capacity N, refilled at N per period; a call
  takes one token. A refusal says when the next token arrives (`retry_after`).
- **concurrency**: one lease per call in flight, with an expiry (`lease_seconds`), so the slots of
  a gateway that crashed mid-call come back by themselves.
- **budget**: units spent in the current UTC period, and whether the 80 % alert was written. A
  call is admitted while its per-call cost still fits (`used + cost <= units`); the cost is
  reserved at admission, so concurrent callers on any number of replicas never overshoot through
  per-call costs. Only the per-KB part, charged after the answer, can push `used` past `units`,
  by at most what the calls in flight at that moment returned.
- **loop**: the admitted identical calls (same principal, tool and argument digest) of the last
  `window` seconds. With `repeats` of them in the window the next is refused until the oldest ages
  out (`retry_after`); refused attempts are not added, so a loop releases once the window passes.

`SqliteCounters` is the embedded default: one `BEGIN IMMEDIATE` transaction per admission in
`state_dir/quota.db`, so everything (rate buckets and loop windows included, not only budgets)
survives restarts and is shared by every gateway process on the host — `mcpwarden stdio` starts one
process per client connection, and reconnecting must not reset anything. It uses wall-clock time
(persisted across processes); a clock stepping backwards refills nothing.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Literal, Protocol, TypeVar

import anyio.to_thread

from mcpwarden.quota.plan import ALERT_FRACTION, Admission, BudgetCheck
from mcpwarden.store.sqlite import open_database, transaction

QUOTA_DB_NAME: Final = "quota.db"
BUDGET_RETENTION_SECONDS: Final = 86400.0  # a finished period's counter is kept a day, then pruned
_PRUNE_EVERY_SECONDS: Final = 60.0

RefusalKind = Literal["budget", "loop", "concurrency", "rate"]
_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class Refusal:
    kind: RefusalKind
    index: int  # position of the refusing check in the admission's tuple of that kind
    retry_after: float | None  # seconds; None where waiting is not the remedy


@dataclass(frozen=True, slots=True)
class BudgetAlert:
    """A budget's spending crossed ALERT_FRACTION of its units (reported once per period)."""

    check: BudgetCheck
    used: float


@dataclass(frozen=True, slots=True)
class Outcome:
    refusal: Refusal | None = None
    alerts: tuple[BudgetAlert, ...] = ()


@dataclass(frozen=True, slots=True)
class Settlement:
    """What is left to do once a call is over."""

    lease_id: str
    leases: tuple[str, ...] = ()  # concurrency keys whose lease is released
    budgets: tuple[BudgetCheck, ...] = ()
    delta: float = 0.0  # added to each budget: the per-KB cost, or minus the reservation (refund)

    @property
    def empty(self) -> bool:
        return not self.leases and not (self.delta and self.budgets)


class CounterBackend(Protocol):
    """Where quota counters live. Every method is atomic on its own; errors propagate (fail closed)."""

    name: str

    async def admit(self, admission: Admission) -> Outcome: ...

    async def settle(self, settlement: Settlement) -> tuple[BudgetAlert, ...]: ...

    async def budget_used(self, key: str) -> float:
        """Units spent under a budget key (0 when none); for reports and tests."""
        ...

    async def aclose(self) -> None: ...


_SCHEMA: Final[tuple[str, ...]] = (
    """CREATE TABLE IF NOT EXISTS quota_buckets (
        key TEXT PRIMARY KEY, tokens REAL NOT NULL, updated REAL NOT NULL, expires REAL NOT NULL
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS quota_leases (
        key TEXT NOT NULL, lease TEXT NOT NULL, expires REAL NOT NULL, PRIMARY KEY (key, lease)
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS quota_budgets (
        key TEXT PRIMARY KEY, used REAL NOT NULL, alerted INTEGER NOT NULL, expires REAL NOT NULL
    ) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS quota_loops (
        key TEXT NOT NULL, lease TEXT NOT NULL, at REAL NOT NULL, expires REAL NOT NULL,
        PRIMARY KEY (key, lease)
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS quota_loops_at ON quota_loops (key, at)",
)
_TABLES: Final = ("quota_buckets", "quota_leases", "quota_budgets", "quota_loops")


def quota_db_path(state_dir: Path) -> Path:
    return state_dir / QUOTA_DB_NAME


class SqliteCounters:
    """The embedded backend: every counter in one SQLite file, one transaction per admission.

    Calls run in a worker thread by default (`in_thread`), so waiting for another process's
    write lock (up to `timeout`) never stalls the event loop.
    """

    name = "sqlite"

    def __init__(
        self,
        path: Path,
        *,
        timeout: float = 2.0,
        clock: Callable[[], float] = time.time,
        in_thread: bool = True,
    ) -> None:
        self.path = Path(path)
        self._clock = clock
        self._in_thread = in_thread
        self._lock = threading.Lock()
        self._last_prune = 0.0
        self._conn: sqlite3.Connection | None = open_database(
            self.path, busy_timeout_ms=int(timeout * 1000), create=True
        )
        try:
            with transaction(self._conn):
                for statement in _SCHEMA:
                    self._conn.execute(statement)
        except BaseException:
            self._conn.close()
            raise

    async def admit(self, admission: Admission) -> Outcome:
        return await self._run(lambda: self.admit_now(admission))

    async def settle(self, settlement: Settlement) -> tuple[BudgetAlert, ...]:
        return await self._run(lambda: self.settle_now(settlement))

    async def budget_used(self, key: str) -> float:
        return await self._run(lambda: self._budget_used(key))

    async def aclose(self) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    async def _run(self, work: Callable[[], _T]) -> _T:
        if self._in_thread:
            return await anyio.to_thread.run_sync(work)
        return work()

    def _connection(self) -> sqlite3.Connection:
        if self._conn is None:
            raise RuntimeError(f"quota counters {self.path} are closed")
        return self._conn

    def admit_now(self, admission: Admission) -> Outcome:
        """The admission, synchronously (the async `admit` runs this in a worker thread)."""
        with self._lock:
            conn = self._connection()
            now = self._clock()
            with transaction(conn, immediate=True):
                if now - self._last_prune > _PRUNE_EVERY_SECONDS:
                    self._prune(conn, now)
                refusal, tokens = self._check(conn, admission, now)
                if refusal is not None:
                    return Outcome(refusal)
                return Outcome(alerts=self._commit(conn, admission, tokens, now))

    def settle_now(self, settlement: Settlement) -> tuple[BudgetAlert, ...]:
        with self._lock:
            conn = self._connection()
            with transaction(conn, immediate=True):
                for key in settlement.leases:
                    conn.execute(
                        "DELETE FROM quota_leases WHERE key = ? AND lease = ?", (key, settlement.lease_id)
                    )
                if not settlement.delta:
                    return ()
                return tuple(
                    alert
                    for check in settlement.budgets
                    if (alert := _add_to_budget(conn, check, settlement.delta)) is not None
                )

    def _budget_used(self, key: str) -> float:
        with self._lock:
            row = (
                self._connection().execute("SELECT used FROM quota_budgets WHERE key = ?", (key,)).fetchone()
            )
        return float(row[0]) if row else 0.0

    @staticmethod
    def _check(
        conn: sqlite3.Connection, admission: Admission, now: float
    ) -> tuple[Refusal | None, list[float]]:
        for index, budget in enumerate(admission.budgets):
            row = conn.execute("SELECT used FROM quota_budgets WHERE key = ?", (budget.key,)).fetchone()
            used = float(row[0]) if row else 0.0
            if used >= budget.units or used + admission.cost > budget.units:
                return Refusal("budget", index, max(0.0, budget.period_end - now)), []
        for index, loop in enumerate(admission.loops):
            conn.execute("DELETE FROM quota_loops WHERE key = ? AND at <= ?", (loop.key, now - loop.window))
            count, oldest = conn.execute(
                "SELECT count(*), min(at) FROM quota_loops WHERE key = ?", (loop.key,)
            ).fetchone()
            if int(count) >= loop.repeats:
                return Refusal("loop", index, max(0.0, float(oldest) + loop.window - now)), []
        for index, slot in enumerate(admission.concurrency):
            conn.execute("DELETE FROM quota_leases WHERE key = ? AND expires <= ?", (slot.key, now))
            (count,) = conn.execute("SELECT count(*) FROM quota_leases WHERE key = ?", (slot.key,)).fetchone()
            if int(count) >= slot.limit:
                return Refusal("concurrency", index, None), []
        tokens: list[float] = []
        for index, rate in enumerate(admission.rates):
            row = conn.execute(
                "SELECT tokens, updated FROM quota_buckets WHERE key = ?", (rate.key,)
            ).fetchone()
            level = rate.capacity
            if row is not None:
                elapsed = max(0.0, now - float(row[1]))
                level = min(rate.capacity, float(row[0]) + elapsed * rate.refill_per_second)
            if level < 1.0:
                return Refusal("rate", index, (1.0 - level) / rate.refill_per_second), []
            tokens.append(level - 1.0)
        return None, tokens

    @staticmethod
    def _commit(
        conn: sqlite3.Connection, admission: Admission, tokens: list[float], now: float
    ) -> tuple[BudgetAlert, ...]:
        for rate, level in zip(admission.rates, tokens, strict=True):
            full_at = now + (rate.capacity - level) / rate.refill_per_second
            conn.execute(
                "INSERT OR REPLACE INTO quota_buckets (key, tokens, updated, expires) VALUES (?, ?, ?, ?)",
                (rate.key, level, now, full_at),
            )
        for slot in admission.concurrency:
            conn.execute(
                "INSERT OR REPLACE INTO quota_leases (key, lease, expires) VALUES (?, ?, ?)",
                (slot.key, admission.lease_id, now + admission.lease_seconds),
            )
        for loop in admission.loops:
            conn.execute(
                "INSERT OR REPLACE INTO quota_loops (key, lease, at, expires) VALUES (?, ?, ?, ?)",
                (loop.key, admission.lease_id, now, now + loop.window),
            )
        return tuple(
            alert
            for budget in admission.budgets
            if (alert := _add_to_budget(conn, budget, admission.cost)) is not None
        )

    def _prune(self, conn: sqlite3.Connection, now: float) -> None:
        # Counters that are back to their resting state (full bucket, lease or loop entry expired,
        # period over) carry no information: deleting them keeps the file bounded.
        for table in _TABLES:
            conn.execute(f"DELETE FROM {table} WHERE expires < ?", (now,))
        self._last_prune = now


def _add_to_budget(conn: sqlite3.Connection, check: BudgetCheck, amount: float) -> BudgetAlert | None:
    """Add `amount` (negative: refund, floored at 0); report the first crossing of the alert line."""
    expires = check.period_end + BUDGET_RETENTION_SECONDS
    row = conn.execute(
        """INSERT INTO quota_budgets (key, used, alerted, expires) VALUES (?1, max(0.0, ?2), 0, ?3)
           ON CONFLICT (key) DO UPDATE SET used = max(0.0, used + ?2)
           RETURNING used, alerted""",
        (check.key, amount, expires),
    ).fetchone()
    used, alerted = float(row[0]), int(row[1])
    if alerted or used < ALERT_FRACTION * check.units:
        return None
    conn.execute("UPDATE quota_budgets SET alerted = 1 WHERE key = ?", (check.key,))
    return BudgetAlert(check, used)
