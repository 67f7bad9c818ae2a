"""`mcpwarden audit tail` and `mcpwarden audit verify` through typer's runner."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mcpwarden.audit.cli import audit_app, follow_records
from mcpwarden.audit.events import AuditEvent
from mcpwarden.audit.log import AUDIT_DB_NAME, AuditRecord, SqliteAuditLog

EventFactory = Callable[..., AuditEvent]  # the make_event fixture (conftest.py)
runner = CliRunner()


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "mcpwarden.yaml"
    path.write_text("state_dir: state\n", encoding="utf-8")
    return path


@pytest.fixture
def written(config: Path, make_event: EventFactory) -> list[AuditRecord]:
    principals = ["alice", "bob", "carol", "dave"]
    with SqliteAuditLog(config.parent / "state" / AUDIT_DB_NAME) as log:
        return [
            log.append(
                make_event(principal=name, correlation_id=f"c{n}", decision="deny" if n == 2 else "allow")
            )
            for n, name in enumerate(principals)
        ]


def test_tail_json_prints_the_last_records_as_json_lines(config: Path, written: list[AuditRecord]) -> None:
    result = runner.invoke(audit_app, ["tail", "-c", str(config), "-n", "2", "--format", "json"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [row["seq"] for row in rows] == [3, 4]
    assert rows[0]["principal"] == "carol" and rows[0]["decision"] == "deny"
    assert rows[1]["hash"] == written[-1].hash
    assert rows[1]["prev_hash"] == written[-2].hash


def test_tail_table_shows_the_records(config: Path, written: list[AuditRecord]) -> None:
    result = runner.invoke(audit_app, ["tail", "--config", str(config)])
    assert result.exit_code == 0, result.output
    for name in ("alice", "bob", "carol", "dave", "tools/call", "notes/search", "deny"):
        assert name in result.stdout


def test_tail_reports_a_tampered_row_instead_of_crashing(config: Path, written: list[AuditRecord]) -> None:
    conn = sqlite3.connect(config.parent / "state" / AUDIT_DB_NAME)
    conn.execute("DROP TRIGGER audit_log_no_update")
    conn.execute("UPDATE audit_log SET request_bytes = 'many' WHERE seq = 4")
    conn.commit()
    conn.close()
    result = runner.invoke(audit_app, ["tail", "-c", str(config)])
    assert result.exit_code == 1
    assert "audit verify" in result.stderr


def test_tail_of_an_empty_trail_says_so(config: Path) -> None:
    SqliteAuditLog(config.parent / "state" / AUDIT_DB_NAME).close()
    result = runner.invoke(audit_app, ["tail", "-c", str(config)])
    assert result.exit_code == 0
    assert "no audit records" in result.stderr


def test_tail_without_a_database_exits_2_and_creates_nothing(config: Path) -> None:
    result = runner.invoke(audit_app, ["tail", "-c", str(config)])
    assert result.exit_code == 2
    assert "no audit database" in result.stderr
    assert not (config.parent / "state").exists()


def test_a_configuration_error_exits_2_with_the_message(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("state_dir: [1, 2]\nbogus: 1\n", encoding="utf-8")
    for command in ("tail", "verify"):
        result = runner.invoke(audit_app, [command, "-c", str(bad)])
        assert result.exit_code == 2
        assert "bad.yaml" in result.stderr


def test_a_missing_configuration_file_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(audit_app, ["verify", "-c", str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert "no such configuration file" in result.stderr


def test_verify_an_intact_chain_exits_0_and_prints_the_head(config: Path, written: list[AuditRecord]) -> None:
    result = runner.invoke(audit_app, ["verify", "-c", str(config)])
    assert result.exit_code == 0, result.output
    assert "records checked: 4" in result.stdout
    assert f"head (keep it elsewhere; pass it to --anchor later): 4:{written[-1].hash}\n" in result.stdout
    assert "chain intact" in result.stdout


def test_verify_a_tampered_chain_exits_1_and_names_the_record(
    config: Path, written: list[AuditRecord]
) -> None:
    conn = sqlite3.connect(config.parent / "state" / AUDIT_DB_NAME)
    conn.execute("DROP TRIGGER audit_log_no_update")
    conn.execute("UPDATE audit_log SET principal = 'mallory' WHERE seq = 2")
    conn.commit()
    conn.close()
    result = runner.invoke(audit_app, ["verify", "-c", str(config)])
    assert result.exit_code == 1
    assert "records checked: 1" in result.stdout
    assert "BROKEN at seq 2" in result.stdout
    assert f"last good record: 1:{written[0].hash}" in result.stdout


def test_verify_of_a_trail_never_written_is_intact_unless_anchored(config: Path) -> None:
    # CONTRACT: `audit verify` exits 0 on an untouched trail; an anchor proves records existed.
    result = runner.invoke(audit_app, ["verify", "-c", str(config)])
    assert result.exit_code == 0
    assert "records checked: 0" in result.stdout
    anchored = runner.invoke(audit_app, ["verify", "-c", str(config), "--anchor", "3:" + "a" * 64])
    assert anchored.exit_code == 1


def test_verify_a_file_that_is_not_a_database_exits_1(config: Path) -> None:
    state = config.parent / "state"
    state.mkdir()
    (state / AUDIT_DB_NAME).write_bytes(b"this is not an sqlite database at all, just junk" * 100)
    result = runner.invoke(audit_app, ["verify", "-c", str(config)])
    assert result.exit_code == 1
    assert "not a readable audit trail" in result.stderr


def test_verify_checks_an_anchor(config: Path, written: list[AuditRecord]) -> None:
    good = runner.invoke(audit_app, ["verify", "-c", str(config), "--anchor", f"3:{written[2].hash}"])
    assert good.exit_code == 0, good.output
    bad = runner.invoke(audit_app, ["verify", "-c", str(config), "--anchor", f"3:{'a' * 64}"])
    assert bad.exit_code == 1
    assert "not the one anchored" in bad.stdout


@pytest.mark.parametrize("anchor", ["3", "x:" + "a" * 64, "0:" + "a" * 64, "3:abc", "3:" + "g" * 64])
def test_a_malformed_anchor_exits_2(config: Path, written: list[AuditRecord], anchor: str) -> None:
    result = runner.invoke(audit_app, ["verify", "-c", str(config), "--anchor", anchor])
    assert result.exit_code == 2
    assert "--anchor" in result.stderr


def test_follow_yields_new_records_as_they_arrive(
    config: Path, written: list[AuditRecord], make_event: EventFactory
) -> None:
    path = config.parent / "state" / AUDIT_DB_NAME
    reader, writer = SqliteAuditLog(path, create=False), SqliteAuditLog(path)
    sleeps: list[float] = []

    def fake_sleep(seconds: float) -> None:
        # Each poll that finds nothing lets the "gateway" write one more record.
        sleeps.append(seconds)
        writer.append(make_event(principal=f"late{len(sleeps)}"))

    try:
        batches = follow_records(reader, written[-1].seq, 0.25, sleep=fake_sleep)
        first, second = next(batches), next(batches)
    finally:
        reader.close()
        writer.close()
    assert [r.event.principal for r in first] == ["late1"]
    assert [r.seq for r in second] == [6]
    assert sleeps == [0.25, 0.25]
