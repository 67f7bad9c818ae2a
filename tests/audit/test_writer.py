"""GroupCommit: events queued by the gateway are committed in batches within the window, in order,
on one chain; nothing queued is lost on a clean close, and a failed commit never raises."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import anyio
import pytest

from mcpwarden.audit.events import AuditEvent
from mcpwarden.audit.log import AuditRecord, SqliteAuditLog
from mcpwarden.audit.writer import MAX_BATCH, GroupCommit
from mcpwarden.config import Settings

EventFactory = Callable[..., AuditEvent]


def committed(db_path: Path) -> list[str]:
    with SqliteAuditLog(db_path, create=False) as reader:
        return [record.event.correlation_id for record in reader.iter_records()]


def test_outside_an_event_loop_each_event_is_committed_at_once(
    db_path: Path, make_event: EventFactory
) -> None:
    writer = GroupCommit(SqliteAuditLog(db_path), window=60.0)
    writer.append(make_event(correlation_id="a"))
    assert committed(db_path) == ["a"]
    writer.close()


@pytest.mark.anyio
async def test_events_are_committed_together_once_the_window_passes(
    db_path: Path, make_event: EventFactory
) -> None:
    writer = GroupCommit(SqliteAuditLog(db_path), window=0.05)
    for index in range(5):
        writer.append(make_event(correlation_id=f"e{index}"))
    assert committed(db_path) == []  # still inside the window
    await anyio.sleep(0.2)
    assert committed(db_path) == [f"e{index}" for index in range(5)]
    writer.append(make_event(correlation_id="later"))  # a new batch opens a new window
    await anyio.sleep(0.2)
    assert committed(db_path)[-1] == "later"
    assert writer.log.verify().ok
    writer.close()


@pytest.mark.anyio
async def test_a_zero_window_commits_at_the_next_turn_of_the_loop(
    db_path: Path, make_event: EventFactory
) -> None:
    writer = GroupCommit(SqliteAuditLog(db_path), window=0.0)
    writer.append(make_event(correlation_id="a"))
    await anyio.sleep(0)
    await anyio.sleep(0)
    assert committed(db_path) == ["a"]
    writer.close()


@pytest.mark.anyio
async def test_close_commits_what_is_queued(db_path: Path, make_event: EventFactory) -> None:
    writer = GroupCommit(SqliteAuditLog(db_path), window=60.0)
    events = [make_event(correlation_id=f"e{index}") for index in range(MAX_BATCH * 2 + 3)]
    for event in events:
        writer.append(event)
    writer.close()
    assert committed(db_path) == [event.correlation_id for event in events]
    with SqliteAuditLog(db_path, create=False) as reader:
        assert reader.verify().ok


@pytest.mark.anyio
async def test_a_failed_commit_is_logged_with_the_lost_ids_and_never_raises(
    db_path: Path, make_event: EventFactory, caplog: pytest.LogCaptureFixture
) -> None:
    log = SqliteAuditLog(db_path)
    writer = GroupCommit(log, window=0.01)
    log.close()  # the database is gone from under the writer
    writer.append(make_event(correlation_id="lost-one"))
    with caplog.at_level(logging.ERROR, logger="mcpwarden.audit.writer"):
        await anyio.sleep(0.1)
    assert "lost-one" in caplog.text
    assert "AuditError" in caplog.text
    writer.append(make_event(correlation_id="lost-two"))  # the writer keeps going
    writer.flush()
    assert "lost-two" in caplog.text


def test_the_gateway_sink_uses_the_configured_window(tmp_path: Path) -> None:
    settings = Settings(state_dir=tmp_path / "state", gateway={"audit_commit_ms": 250})
    (tmp_path / "state").mkdir()
    writer = GroupCommit.for_settings(settings)
    assert writer.window == 0.25
    assert writer.log.path == tmp_path / "state" / "audit.db"
    writer.close()


class _RecordingLog(SqliteAuditLog):
    """A trail that notes which thread committed each batch."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.threads: list[str] = []

    def append_many(self, events: Sequence[AuditEvent]) -> list[AuditRecord]:
        self.threads.append(threading.current_thread().name)
        return super().append_many(events)


@pytest.mark.anyio
async def test_with_a_window_commits_run_on_the_writer_thread_not_the_event_loop(
    db_path: Path, make_event: EventFactory
) -> None:
    log = _RecordingLog(db_path)
    writer = GroupCommit(log, window=0.01)
    writer.append(make_event(correlation_id="a"))
    with anyio.fail_after(5):
        while committed(db_path) != ["a"]:
            await anyio.sleep(0.01)
    assert log.threads and all(name.startswith("mcpwarden-audit") for name in log.threads)
    writer.close()


@pytest.mark.anyio
async def test_flush_commits_after_every_batch_already_handed_to_the_writer(
    db_path: Path, make_event: EventFactory
) -> None:
    log = _RecordingLog(db_path)
    writer = GroupCommit(log, window=0.001)
    first = [make_event(correlation_id=f"a{index}") for index in range(MAX_BATCH + 5)]
    for event in first:
        writer.append(event)
    with anyio.fail_after(5):
        while not log.threads:  # the window passed: the first batch is with the writer
            await anyio.sleep(0.001)
    writer.append(make_event(correlation_id="b"))
    writer.flush()  # returns once all of it is committed, in order
    assert committed(db_path) == [event.correlation_id for event in first] + ["b"]
    assert log.verify().ok
    writer.close()


@pytest.mark.anyio
async def test_an_event_after_close_is_logged_as_lost_not_raised(
    db_path: Path, make_event: EventFactory, caplog: pytest.LogCaptureFixture
) -> None:
    writer = GroupCommit(SqliteAuditLog(db_path), window=0.01)
    writer.close()
    writer.close()  # twice is harmless
    with caplog.at_level(logging.ERROR, logger="mcpwarden.audit.writer"):
        writer.append(make_event(correlation_id="late"))
        await anyio.sleep(0.05)
    assert "late" in caplog.text


@pytest.mark.anyio
async def test_an_event_handed_over_to_build_later_is_built_on_the_writer_thread(
    db_path: Path, make_event: EventFactory
) -> None:
    built_on: list[str] = []

    def build() -> AuditEvent:
        built_on.append(threading.current_thread().name)
        return make_event(correlation_id="later")

    writer = GroupCommit(SqliteAuditLog(db_path), window=0.01)
    writer.append(make_event(correlation_id="now"))
    writer.append_later(build, "later")
    writer.flush()
    assert committed(db_path) == ["now", "later"]
    assert built_on and built_on[0].startswith("mcpwarden-audit")
    writer.close()


@pytest.mark.anyio
async def test_an_event_that_cannot_be_built_is_logged_as_lost_and_the_rest_committed(
    db_path: Path, make_event: EventFactory, caplog: pytest.LogCaptureFixture
) -> None:
    def broken() -> AuditEvent:
        return make_event(correlation_id="broken", decision="maybe")  # not a decision: ValueError

    writer = GroupCommit(SqliteAuditLog(db_path), window=0.01)
    writer.append_later(broken, "broken-id")
    writer.append(make_event(correlation_id="fine"))
    with caplog.at_level(logging.ERROR, logger="mcpwarden.audit.writer"):
        writer.flush()
    assert committed(db_path) == ["fine"]
    assert "broken-id" in caplog.text and "ValueError" in caplog.text
    writer.close()


def test_with_no_window_an_event_is_built_and_committed_at_once(
    db_path: Path, make_event: EventFactory
) -> None:
    writer = GroupCommit(SqliteAuditLog(db_path), window=0.0)
    writer.append_later(lambda: make_event(correlation_id="a"), "a")
    assert committed(db_path) == ["a"]
    writer.close()
