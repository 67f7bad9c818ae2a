"""Audit trail write cost: hash-chained appends beside a plain INSERT, in one run.

Every exchange through the gateway writes one audit record, so the cost per record is overhead on
every call. The gateway commits records in small batches (`audit/writer.py`, one transaction per
`gateway.audit_commit_ms`). This prints, side by side:

- baseline: a plain `INSERT` of the same columns, one commit per row, no hashing, no head lookup
  (same database settings: WAL, synchronous=NORMAL);
- chained: `SqliteAuditLog.append` (BEGIN IMMEDIATE, read head, SHA-256 of the canonical JSON,
  insert, triggers, commit), synchronous=NORMAL, the default;
- chained FULL: the same with synchronous=FULL (one fsync per event; survives power loss);
- chained, batches of 10: `SqliteAuditLog.append_many`, one transaction per 10 events, as the
  gateway's group commit does at about 1,000 calls/s (the cost per event is the batch's / 10);
- verify: recomputing the whole chain, in records per second.

Run: `python bench/audit.py [--events 5000]`. Bounded; uses and removes a temporary directory.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

from mcpwarden.audit.events import AuditEvent, canonical_json, digest_arguments
from mcpwarden.audit.log import SqliteAuditLog
from mcpwarden.store.sqlite import Synchronous, open_database, transaction

BASELINE_TABLE = """
CREATE TABLE plain_log (
    seq INTEGER PRIMARY KEY, time REAL, correlation_id TEXT, principal TEXT, transport TEXT,
    method TEXT, server TEXT, target TEXT, argument_digest TEXT, decision TEXT, reason TEXT,
    detail TEXT, latency_ms REAL, request_bytes INTEGER, response_bytes INTEGER, guard TEXT,
    extra TEXT
)
"""


def make_events(count: int) -> list[AuditEvent]:
    base = time.time()
    return [
        AuditEvent(
            time=base + n / 1000,
            correlation_id=uuid.uuid4().hex,
            principal=f"user{n % 7}",
            transport="http",
            method="tools/call",
            server="notes",
            target="search",
            argument_digest=digest_arguments({"query": f"q{n}", "limit": 10}),
            decision="deny" if n % 10 == 0 else "allow",
            reason="tool-not-permitted" if n % 10 == 0 else "ok",
            detail="",
            latency_ms=0.5 + (n % 13) / 10,
            request_bytes=180 + n % 50,
            response_bytes=900 + n % 300,
            extra={"cost": 0.001} if n % 3 == 0 else {},
        )
        for n in range(count)
    ]


def timed(events: Sequence[AuditEvent], write: Callable[[AuditEvent], object]) -> tuple[float, list[int]]:
    samples: list[int] = []
    started = time.perf_counter()
    for event in events:
        before = time.perf_counter_ns()
        write(event)
        samples.append(time.perf_counter_ns() - before)
    return time.perf_counter() - started, samples


def run_baseline(path: Path, events: Sequence[AuditEvent]) -> tuple[float, list[int]]:
    conn = open_database(path)
    conn.execute(BASELINE_TABLE)
    insert = f"INSERT INTO plain_log VALUES (NULL, {', '.join('?' * 16)})"

    def write(event: AuditEvent) -> None:
        row = event.to_dict()
        row["extra"] = canonical_json(row["extra"])
        with transaction(conn):
            conn.execute(insert, tuple(row.values()))

    try:
        return timed(events, write)
    finally:
        conn.close()


def run_chained(
    path: Path, events: Sequence[AuditEvent], synchronous: Synchronous
) -> tuple[float, list[int]]:
    with SqliteAuditLog(path, synchronous=synchronous) as log:
        return timed(events, log.append)


def run_batched(path: Path, events: Sequence[AuditEvent], size: int) -> tuple[float, list[int]]:
    samples: list[int] = []
    with SqliteAuditLog(path) as log:
        started = time.perf_counter()
        for first in range(0, len(events), size):
            batch = events[first : first + size]
            before = time.perf_counter_ns()
            log.append_many(batch)
            samples.extend([(time.perf_counter_ns() - before) // len(batch)] * len(batch))
        return time.perf_counter() - started, samples


def percentile(samples: Sequence[int], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))] / 1000


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=5000, help="events per scenario (default 5000)")
    parser.add_argument(
        "--full-events", type=int, default=1000, help="events for the synchronous=FULL run (fsync each)"
    )
    args = parser.parse_args(argv)
    events = make_events(args.events)
    rows: list[tuple[str, int, float, float, float]] = []
    with tempfile.TemporaryDirectory(prefix="mcpwarden-bench-audit-") as tmp:
        tmp_dir = Path(tmp)
        scenarios: list[tuple[str, Callable[[], tuple[float, list[int]]]]] = [
            ("baseline INSERT (NORMAL)", lambda: run_baseline(tmp_dir / "plain.db", events)),
            ("chained append (NORMAL)", lambda: run_chained(tmp_dir / "audit.db", events, "NORMAL")),
            (
                "chained append (FULL)",
                lambda: run_chained(tmp_dir / "full.db", events[: args.full_events], "FULL"),
            ),
            ("chained, batches of 10", lambda: run_batched(tmp_dir / "batched.db", events, 10)),
        ]
        for name, run in scenarios:
            elapsed, samples = run()
            rows.append(
                (
                    name,
                    len(samples),
                    len(samples) / elapsed,
                    percentile(samples, 0.5),
                    percentile(samples, 0.99),
                )
            )
        with SqliteAuditLog(tmp_dir / "audit.db", create=False) as log:
            started = time.perf_counter()
            result = log.verify()
            verify_seconds = time.perf_counter() - started
        if not result.ok:
            print(f"verify failed: {result.problem}", file=sys.stderr)
            return 1

    baseline_rate, baseline_p50 = rows[0][2], rows[0][3]
    print(f"audit append benchmark, Python {sys.version.split()[0]}, SQLite {_sqlite_version()}")
    print(f"{'scenario':<26} {'events':>7} {'appends/s':>10} {'p50 µs':>8} {'p99 µs':>8} {'vs baseline':>12}")
    for name, count, rate, p50, p99 in rows:
        relative = f"{rate / baseline_rate:.0%} rate" if rate != baseline_rate else "—"
        print(f"{name:<26} {count:>7} {rate:>10,.0f} {p50:>8.1f} {p99:>8.1f} {relative:>12}")
    print(f"chained p50 overhead over baseline: {rows[1][3] - baseline_p50:+.1f} µs per event")
    print(
        f"verify: {result.checked} records in {verify_seconds * 1000:.0f} ms "
        f"({result.checked / verify_seconds:,.0f} records/s)"
    )
    return 0


def _sqlite_version() -> str:
    import sqlite3

    return sqlite3.sqlite_version


if __name__ == "__main__":
    sys.exit(main())
