"""Group commit: the gateway's audit events, committed in small batches within a bounded window.

Committing each event in the pipeline's `finally` put one SQLite transaction (about ten system
calls plus locking, the largest single cost of a relayed call after the pipes themselves) in
front of every answer. `GroupCommit.append` instead queues the event; the event loop commits the
queue `window` seconds after the first event of a batch arrived (`gateway.audit_commit_ms`, 10 ms
by default), all of it in one transaction. `bench/overhead.py` measures what that saves.

**The window** (the "small batches with a bounded window" of the audit design): `kill -9` of the
gateway loses at most the events of the last `window`; every older event is in the WAL already.
A clean shutdown commits everything (`close`). With `window` 0 the queue is committed at the event
loop's next turn: after the answer has been written (both fronts write it in the step that ends
the exchange) and before the loop reads further input, so `kill -9` loses only exchanges answered
in the final turn. Outside a running event loop (CLI tools) `append` commits at once.

A failed commit (disk full, the database locked by another process beyond its busy timeout) is
logged with the correlation ids it lost; the exchanges themselves have already been answered.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Final

from mcpwarden.audit.events import AuditEvent
from mcpwarden.audit.log import SqliteAuditLog, audit_db_path
from mcpwarden.config import Settings

logger = logging.getLogger(__name__)

# One transaction holds at most this many events, so a burst never blocks the loop for long.
MAX_BATCH: Final = 256


class GroupCommit:
    """An `AuditSink` that commits queued events in batches, at most `window` seconds late."""

    def __init__(self, log: SqliteAuditLog, window: float = 0.0) -> None:
        self.log = log
        self.window = window
        self._pending: list[AuditEvent] = []
        self._scheduled = False

    @classmethod
    def for_settings(cls, settings: Settings) -> GroupCommit:
        """The gateway's audit sink: its state directory's trail, with the configured window."""
        log = SqliteAuditLog(audit_db_path(settings.state_dir))
        return cls(log, settings.gateway.audit_commit_ms / 1000)

    def append(self, event: AuditEvent) -> None:
        self._pending.append(event)
        if self._scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        self._scheduled = True
        loop.call_later(self.window, self.flush)

    def flush(self) -> None:
        """Commit everything queued; what cannot be committed is logged by correlation id."""
        self._scheduled = False
        while self._pending:
            batch, self._pending = self._pending[:MAX_BATCH], self._pending[MAX_BATCH:]
            try:
                self.log.append_many(batch)
            except Exception as exc:
                lost = ", ".join(event.correlation_id for event in batch)
                logger.error("audit write failed (%s); events lost: %s", type(exc).__name__, lost)

    def close(self) -> None:
        self.flush()
        self.log.close()
