"""Across processes: committed events survive kill -9, and concurrent writers keep one chain."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mcpwarden.audit.log import SqliteAuditLog

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL and fork semantics are POSIX")

# A writer process: appends events and prints each committed seq and correlation id. With `wait`,
# it first prints "ready" and blocks until a line arrives on stdin, so writers start together.
WRITER = """
import sys, time
from pathlib import Path
from mcpwarden.audit.events import AuditEvent
from mcpwarden.audit.log import SqliteAuditLog

path, name, count, wait = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4] == "wait"
log = SqliteAuditLog(path)
if wait:
    print("ready", flush=True)
    sys.stdin.readline()
for n in range(count):
    event = AuditEvent(
        time=time.time(), correlation_id=f"{name}-{n}", principal=name, transport="stdio",
        method="tools/call", server="s", target="t", argument_digest=None, decision="allow",
        reason="ok", detail="", latency_ms=0.1, request_bytes=10, response_bytes=20,
    )
    record = log.append(event)
    print(record.seq, event.correlation_id, flush=True)
print("done", flush=True)
"""

DEADLINE_SECONDS = 15.0


def _start_writer(db_path: Path, name: str, count: int, *, wait: bool) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, str(db_path), name, str(count), "wait" if wait else "go"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _read_line(proc: subprocess.Popen[str], deadline: float) -> str:
    assert proc.stdout is not None
    if time.monotonic() > deadline:
        proc.kill()
        pytest.fail("writer process took too long")
    line = proc.stdout.readline()
    if not line:
        stderr = proc.stderr.read() if proc.stderr else ""
        pytest.fail(f"writer process ended early: {stderr}")
    return line.strip()


def test_committed_events_survive_kill_9(db_path: Path) -> None:
    proc = _start_writer(db_path, "victim", 1_000_000, wait=False)
    deadline = time.monotonic() + DEADLINE_SECONDS
    printed: dict[int, str] = {}
    try:
        while len(printed) < 300:
            seq, correlation_id = _read_line(proc, deadline).split()
            printed[int(seq)] = correlation_id
        os.kill(proc.pid, signal.SIGKILL)  # mid-stream: the writer is still appending
        assert proc.stdout is not None
        for line in proc.stdout:  # whatever it printed before it died was committed too
            seq, correlation_id = line.split()
            printed[int(seq)] = correlation_id
    finally:
        proc.kill()
        proc.wait(timeout=DEADLINE_SECONDS)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()
    assert proc.returncode == -signal.SIGKILL

    with SqliteAuditLog(db_path) as log:
        stored = {record.seq: record.event.correlation_id for record in log.iter_records()}
        result = log.verify()
    assert result.ok, result.problem
    assert printed.items() <= stored.items()
    assert result.checked == len(stored) >= len(printed)


def test_two_processes_appending_at_once_keep_one_chain(db_path: Path) -> None:
    per_writer = 150
    SqliteAuditLog(db_path).close()  # the schema exists before the race starts
    writers = [_start_writer(db_path, name, per_writer, wait=True) for name in ("gw1", "gw2")]
    deadline = time.monotonic() + DEADLINE_SECONDS
    outputs: list[list[str]] = []
    try:
        for proc in writers:
            assert _read_line(proc, deadline) == "ready"
        for proc in writers:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        for proc in writers:
            stdout, stderr = proc.communicate(timeout=max(0.1, deadline - time.monotonic()))
            assert proc.returncode == 0, stderr
            outputs.append(stdout.split("\n"))
    finally:
        for proc in writers:
            proc.kill()
            proc.wait(timeout=DEADLINE_SECONDS)

    with SqliteAuditLog(db_path, create=False) as log:
        records = list(log.iter_records())
        result = log.verify()
    assert result.ok, result.problem
    assert [record.seq for record in records] == list(range(1, 2 * per_writer + 1))
    principals = [record.event.principal for record in records]
    assert principals.count("gw1") == principals.count("gw2") == per_writer
    # Each writer's own events keep their order, whatever the interleaving.
    for name in ("gw1", "gw2"):
        mine = [r.event.correlation_id for r in records if r.event.principal == name]
        assert mine == [f"{name}-{n}" for n in range(per_writer)]
    assert all(output[-2] == "done" for output in outputs)
