"""`mcpwarden usage`: calls and cost per principal, server and tool (see `quota.usage`).

Reads `state_dir/audit.db` of the configuration (`-c FILE`, else ./mcpwarden.yaml, else defaults)
without creating it. A state directory where the gateway never ran has no usage: an empty report.
Exit codes: 0 report printed, 2 could not run (bad configuration, bad option, unreadable trail).
"""

from __future__ import annotations

import enum
import json
import sqlite3
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

EXIT_CANNOT_RUN = 2


class UsageFormat(enum.StrEnum):
    TABLE = "table"
    JSON = "json"


class Dimension(enum.StrEnum):
    PRINCIPAL = "principal"
    SERVER = "server"
    TOOL = "tool"


def usage_command(
    by: Annotated[
        list[Dimension] | None,
        typer.Option(
            "--by",
            help="Group by principal, server or tool (repeat for several; default: all three).",
            show_default=False,
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option("--since", help="Only calls since: 1d, 7d, 12h, 30m, or an ISO date/time (UTC)."),
    ] = None,
    output: Annotated[
        UsageFormat,
        typer.Option(
            "--format", help='table, or json: [{"principal", "server", "tool", "calls", "cost", …}].'
        ),
    ] = UsageFormat.TABLE,
    config: Annotated[
        Path | None,
        typer.Option(
            "-c", "--config", help="Configuration file whose state_dir holds audit.db.", dir_okay=False
        ),
    ] = None,
) -> None:
    """Cost and call counts per principal, server and tool, from the audit trail."""
    # Imported here so `mcpwarden --help` does not pay for them.
    from mcpwarden.audit.log import AuditError, audit_db_path
    from mcpwarden.config import load_settings
    from mcpwarden.errors import ConfigError
    from mcpwarden.quota.usage import DIMENSIONS, UsageRow, parse_since, usage_report

    try:
        settings = load_settings(config)
    except ConfigError as exc:
        _fail(str(exc))
    try:
        since_ts = parse_since(since) if since is not None else None
    except ValueError as exc:
        _fail(str(exc))
    dimensions = tuple(name for name in DIMENSIONS if by is None or Dimension(name) in by)
    path = audit_db_path(settings.state_dir)
    rows: list[UsageRow] = []
    if path.is_file():
        try:
            rows = usage_report(path, by=dimensions, since=since_ts, separator=settings.gateway.separator)
        except (AuditError, sqlite3.DatabaseError) as exc:
            _fail(f"cannot read the audit trail {path}: {exc}")
    if output is UsageFormat.JSON:
        sys.stdout.write(json.dumps([row.to_dict() for row in rows], ensure_ascii=False) + "\n")
        return
    if not rows:
        Console(stderr=True).print(f"no usage recorded in {path}", highlight=False, markup=False)
        return
    table = Table(box=None, pad_edge=False, padding=(0, 2, 0, 0), header_style="bold")
    for name in dimensions:
        table.add_column(name, overflow="fold")
    for name in ("calls", "denied", "errors", "cost"):
        table.add_column(name, justify="right")
    for row in rows:
        values = row.to_dict()
        table.add_row(
            *(escape(str(values[name])) for name in dimensions),
            str(row.calls),
            str(row.denied),
            str(row.errors),
            f"{row.cost:.6g}",
        )
    table.add_section()
    table.add_row(
        *(["total"] + [""] * (len(dimensions) - 1)),
        str(sum(row.calls for row in rows)),
        str(sum(row.denied for row in rows)),
        str(sum(row.errors for row in rows)),
        f"{sum(row.cost for row in rows):.6g}",
    )
    Console(highlight=False).print(table)


def _fail(message: str) -> NoReturn:
    Console(stderr=True).print(f"error: {message}", highlight=False, markup=False, soft_wrap=True)
    raise typer.Exit(EXIT_CANNOT_RUN)
