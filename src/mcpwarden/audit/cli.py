"""`mcpwarden audit tail` and `mcpwarden audit verify`: read the trail the gateway writes.

Both commands open `state_dir / audit.db` of the configuration (`-c FILE`, else ./mcpwarden.yaml,
else defaults) without creating it, so running them in the wrong directory says so instead of
leaving an empty database behind. They only read; the gateway may keep writing meanwhile (WAL).

Exit codes of `verify`: 0 the chain is intact, 1 it is broken (or the file is not a readable
database), 2 the check could not run (bad configuration, no database, database locked).
"""

from __future__ import annotations

import json
import sqlite3
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from mcpwarden.audit.log import AuditError, AuditRecord, SqliteAuditLog, audit_db_path
from mcpwarden.console import OutputFormat
from mcpwarden.errors import ConfigError

EXIT_OK = 0
EXIT_BROKEN = 1
EXIT_CANNOT_RUN = 2
FOLLOW_POLL_SECONDS = 0.5

audit_app = typer.Typer(
    name="audit",
    help="Read the audit trail and verify its hash chain.",
    no_args_is_help=True,
    add_completion=False,
)


ConfigOption = Annotated[
    Path | None,
    typer.Option("-c", "--config", help="Configuration file whose state_dir holds audit.db.", dir_okay=False),
]


@audit_app.command("tail")
def tail_command(
    config: ConfigOption = None,
    lines: Annotated[int, typer.Option("-n", "--lines", min=1, help="How many of the last records.")] = 20,
    output: Annotated[
        OutputFormat,
        typer.Option("--format", help="table, or json: one JSON object per line (JSON Lines)."),
    ] = OutputFormat.TABLE,
    follow: Annotated[
        bool, typer.Option("-f", "--follow", help="Keep printing new records as they are written.")
    ] = False,
) -> None:
    """Show the last records of the audit trail, oldest first."""
    log = _open_log(config)
    try:
        records = log.tail(lines)
        _print_records(records, output)
        if follow:
            since = records[-1].seq if records else 0
            try:
                for batch in follow_records(log, since, FOLLOW_POLL_SECONDS):
                    _print_records(batch, output, header=False)
            except KeyboardInterrupt:
                pass
    except sqlite3.DatabaseError as exc:
        _fail(f"cannot read {log.path}: {exc}", EXIT_CANNOT_RUN)
    except (TypeError, ValueError) as exc:  # a row no append could have written: tampering
        _fail(f"unreadable audit record in {log.path} ({exc}); run `mcpwarden audit verify`", EXIT_BROKEN)
    finally:
        log.close()


@audit_app.command("verify")
def verify_command(
    config: ConfigOption = None,
    anchor: Annotated[
        str | None,
        typer.Option(
            "--anchor",
            metavar="SEQ:HASH",
            help="A head printed by an earlier verify and kept elsewhere; fail if it left the chain.",
        ),
    ] = None,
) -> None:
    """Recompute the hash chain of every record; exit 0 intact, 1 broken, 2 could not run."""
    expected = _parse_anchor(anchor) if anchor is not None else None
    missing = _missing_trail(config)
    if missing is not None:
        # Nothing was ever recorded here: an empty trail is intact, unless an anchor says that
        # records once existed (then the whole file was removed).
        out = Console(highlight=False, soft_wrap=True)
        out.print(f"database: {escape(str(missing))} (none yet)")
        out.print("records checked: 0")
        if expected is not None and expected[0] > 0:
            out.print(
                f"[red]chain BROKEN[/red]: the anchored record {expected[0]} is gone with the whole trail"
            )
            raise typer.Exit(EXIT_BROKEN)
        out.print("[green]chain intact[/green] (empty)")
        raise typer.Exit(EXIT_OK)
    log = _open_log(config, damaged_exit=EXIT_BROKEN)
    try:
        result = log.verify(expected)
    except sqlite3.OperationalError as exc:  # locked, I/O: the check did not happen
        _fail(f"cannot read {log.path}: {exc}", EXIT_CANNOT_RUN)
    except sqlite3.DatabaseError as exc:  # corrupt file: the trail is damaged
        _fail(f"audit trail {log.path} is unreadable: {exc}", EXIT_BROKEN)
    finally:
        log.close()
    # soft_wrap: the hashes must stay on one line so scripts can pick the head up as an anchor.
    out = Console(highlight=False, soft_wrap=True)
    out.print(f"database: {escape(str(log.path))}")
    out.print(f"records checked: {result.checked}")
    if result.ok:
        out.print(
            f"head (keep it elsewhere; pass it to --anchor later): {result.head_seq}:{result.head_hash}"
        )
        out.print("[green]chain intact[/green]")
        raise typer.Exit(EXIT_OK)
    out.print(f"last good record: {result.head_seq}:{result.head_hash}")
    out.print(f"[red]chain BROKEN at seq {result.first_bad_seq}[/red]: {escape(result.problem or '')}")
    raise typer.Exit(EXIT_BROKEN)


def follow_records(
    log: SqliteAuditLog,
    since_seq: int,
    poll_seconds: float,
    *,
    sleep: Callable[[float], None] = time.sleep,
) -> Iterator[list[AuditRecord]]:
    """Yield each batch of records written after `since_seq`, polling until the consumer stops."""
    last = since_seq
    while True:
        batch = list(log.iter_records(last))
        if batch:
            last = batch[-1].seq
            yield batch
        else:
            sleep(poll_seconds)


def _missing_trail(config: Path | None) -> Path | None:
    """The trail's path when the configuration is valid but nothing was recorded yet."""
    from mcpwarden.config import load_settings

    try:
        path = audit_db_path(load_settings(config).state_dir)
    except ConfigError as exc:
        _fail(str(exc), EXIT_CANNOT_RUN)
    return None if path.exists() else path


def _open_log(config: Path | None, *, damaged_exit: int = EXIT_CANNOT_RUN) -> SqliteAuditLog:
    """Open the configured trail read-only in spirit (create=False), or exit with a clear message.

    A missing file means "wrong config or the gateway never ran": the command could not run. A
    file that exists but is not a readable audit trail exits with `damaged_exit` (verify: broken).
    """
    # Imported here so `mcpwarden --help` does not pay for pydantic and yaml.
    from mcpwarden.config import load_settings

    try:
        state_dir = load_settings(config).state_dir
    except ConfigError as exc:
        _fail(str(exc), EXIT_CANNOT_RUN)
    path = audit_db_path(state_dir)
    if not path.is_file():
        _fail(f"no audit database at {path} (is {state_dir} the gateway's state_dir?)", EXIT_CANNOT_RUN)
    try:
        return SqliteAuditLog(path, create=False)
    except sqlite3.OperationalError as exc:  # locked, permissions, I/O
        _fail(f"cannot open {path}: {exc}", EXIT_CANNOT_RUN)
    except (AuditError, sqlite3.DatabaseError) as exc:
        _fail(f"{path} is not a readable audit trail: {exc}", damaged_exit)


def _parse_anchor(text: str) -> tuple[int, str]:
    seq_text, _, digest = text.partition(":")
    digest = digest.strip().lower()
    if not seq_text.strip().isdigit() or int(seq_text) < 1 or len(digest) != 64:
        _fail(
            f"--anchor must be SEQ:HASH (a seq of 1 or more, a 64-digit hex hash), not {text!r}",
            EXIT_CANNOT_RUN,
        )
    try:
        int(digest, 16)
    except ValueError:
        _fail(f"--anchor hash must be 64 hex digits, not {digest!r}", EXIT_CANNOT_RUN)
    return int(seq_text), digest


def _print_records(records: Iterable[AuditRecord], output: OutputFormat, *, header: bool = True) -> None:
    if output is OutputFormat.JSON:
        for record in records:
            sys.stdout.write(json.dumps(record.to_dict(), ensure_ascii=False, sort_keys=True) + "\n")
        sys.stdout.flush()
        return
    table = Table(box=None, pad_edge=False, padding=(0, 1, 0, 0), header_style="bold", show_header=header)
    # Fits 80 columns: seq, time and latency stay whole; text columns fold in a narrow terminal.
    folding = {"principal": 9, "method": 10, "target": 12, "outcome": 16}
    for column in ("seq", "time (UTC)", "principal", "method", "target", "outcome", "ms"):
        table.add_column(
            column,
            justify="right" if column in ("seq", "ms") else "left",
            overflow="fold",
            no_wrap=column not in folding,
            min_width=folding.get(column),
        )
    for record in records:
        event = record.event
        target = "/".join(part for part in (event.server, event.target) if part)
        colour = {"allow": "green", "deny": "red", "hold": "yellow"}.get(event.decision, "magenta")
        outcome = f"[{colour}]{event.decision}[/{colour}]"
        if event.reason != "ok":
            outcome += f" {escape(event.reason)}"
        table.add_row(
            str(record.seq),
            datetime.fromtimestamp(event.time, UTC).strftime("%m-%d %H:%M:%S"),
            escape(event.principal),
            escape(event.method),
            escape(target),
            outcome,
            f"{event.latency_ms:.1f}",
        )
    if table.row_count:
        Console(highlight=False).print(table)
    elif header:
        Console(stderr=True, highlight=False).print("[dim]no audit records[/dim]")


def _fail(message: str, code: int) -> NoReturn:
    Console(stderr=True, highlight=False, soft_wrap=True).print(f"[red]error:[/red] {escape(message)}")
    raise typer.Exit(code)
