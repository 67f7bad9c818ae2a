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

With a window, the commit itself runs on one writer thread, in order, batch after batch: the
SQLite transaction (locking, WAL writes, the occasional checkpoint) then neither stalls the event
loop nor sits between a caller and its answer, and a slow disk delays only the trail, never the
traffic. The writer takes the batch the loop hands it at the end of the window, so the bound on
what `kill -9` can lose is the same. (With window 0 the loop commits itself, to keep the
next-turn guarantee above.) An event handed over with `append_later` is even built there: its
normalisation and argument digest leave the loop as well.

A failed commit (disk full, the database locked by another process beyond its busy timeout) is
logged with the correlation ids it lost; the exchanges themselves have already been answered.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Final

from mcpwarden.audit.events import AuditEvent
from mcpwarden.audit.log import SqliteAuditLog, audit_db_path
from mcpwarden.config import Settings

logger = logging.getLogger(__name__)

# One transaction holds at most this many events, so a burst never holds the write lock for long.
MAX_BATCH: Final = 256


@dataclass(frozen=True, slots=True)
class _Later:
    """An event to build on the writer thread; its id says what was lost if building fails."""

    build: Callable[[], AuditEvent]
    correlation_id: str


class GroupCommit:
    """An `AuditSink` that commits queued events in batches, at most `window` seconds late."""

    def __init__(self, log: SqliteAuditLog, window: float = 0.0) -> None:
        self.log = log
        self.window = window
        self._pending: list[AuditEvent | _Later] = []
        self._scheduled = False
        self._closed = False
        # One thread, so batches are committed in the order they were handed over.
        self._writer = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="mcpwarden-audit") if window > 0 else None
        )

    @classmethod
    def for_settings(cls, settings: Settings) -> GroupCommit:
        """The gateway's audit sink: its state directory's trail, with the configured window."""
        log = SqliteAuditLog(audit_db_path(settings.state_dir))
        return cls(log, settings.gateway.audit_commit_ms / 1000)

    def append(self, event: AuditEvent) -> None:
        self._queue(event)

    def append_later(self, build: Callable[[], AuditEvent], correlation_id: str) -> None:
        """Queue the event `build()` returns, built where it is committed (the writer thread when
        there is a window); a `build` that raises loses that event, logged by `correlation_id`."""
        if self._writer is None:
            self._queue(build())
        else:
            self._queue(_Later(build, correlation_id))

    def _queue(self, event: AuditEvent | _Later) -> None:
        self._pending.append(event)
        if self._scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        self._scheduled = True
        loop.call_later(self.window, self._hand_over)

    def _hand_over(self) -> None:
        """End of a window: the queue goes to the writer thread (or is committed here, window 0)."""
        self._scheduled = False
        batch, self._pending = self._pending, []
        if batch:
            self._run(batch, wait=False)

    def flush(self) -> None:
        """Commit everything queued, after every batch already handed over; returns when done."""
        batch, self._pending = self._pending, []
        self._run(batch, wait=True)

    def _run(self, batch: list[AuditEvent | _Later], *, wait: bool) -> None:
        if self._writer is None or self._closed:  # window 0, or a late event after close
            self._commit(batch)
            return
        done = self._writer.submit(self._commit, batch)
        if wait:
            done.result()

    def _commit(self, queued: Sequence[AuditEvent | _Later]) -> None:
        """What cannot be built or committed is logged by correlation id, never raised."""
        events = [event for item in queued if (event := _built(item)) is not None]
        for start in range(0, len(events), MAX_BATCH):
            batch = events[start : start + MAX_BATCH]
            try:
                self.log.append_many(batch)
            except Exception as exc:
                lost = ", ".join(event.correlation_id for event in batch)
                logger.error("audit write failed (%s); events lost: %s", type(exc).__name__, lost)

    def close(self) -> None:
        self.flush()
        self._closed = True
        if self._writer is not None:
            self._writer.shutdown(wait=True)
        self.log.close()


def _built(item: AuditEvent | _Later) -> AuditEvent | None:
    if isinstance(item, AuditEvent):
        return item
    try:
        return item.build()
    except Exception as exc:
        lost = item.correlation_id
        logger.error("audit event could not be built (%s); event lost: %s", type(exc).__name__, lost)
        return None
