"""Shared fixtures for the audit tests: an event factory and a fresh audit log in tmp_path."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from mcpwarden.audit.events import AuditEvent, digest_arguments
from mcpwarden.audit.log import AUDIT_DB_NAME, SqliteAuditLog

EventFactory = Callable[..., AuditEvent]


def _make_event(**overrides: Any) -> AuditEvent:
    values: dict[str, Any] = {
        "time": 1_790_000_000.25,
        "correlation_id": "0123456789abcdef0123456789abcdef",
        "principal": "alice",
        "transport": "http",
        "method": "tools/call",
        "server": "notes",
        "target": "search",
        "argument_digest": digest_arguments({"q": "x"}),
        "decision": "allow",
        "reason": "ok",
        "detail": "",
        "latency_ms": 1.5,
        "request_bytes": 120,
        "response_bytes": 3400,
    }
    values.update(overrides)
    return AuditEvent(**values)


@pytest.fixture
def make_event() -> EventFactory:
    """Build a valid event; keyword arguments override single fields."""
    return _make_event


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / AUDIT_DB_NAME


@pytest.fixture
def audit_log(db_path: Path) -> Iterator[SqliteAuditLog]:
    log = SqliteAuditLog(db_path)
    yield log
    log.close()
