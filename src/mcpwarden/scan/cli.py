"""`mcpwarden scan`: the command function (registered by mcpwarden.cli as `app.command("scan")`).

Reads targets (or discovers client configs), shows what it will start, runs the scan with a
progress display on a terminal, writes the report (table, json, sarif or html) and exits as
CONTRACT.md says: 0 = nothing at or above --fail-on, 1 = findings at or above it, 2 = could not run.
Messages go to standard error, so standard output carries only the report.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path

import anyio
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from mcpwarden.errors import ConfigError
from mcpwarden.scan.engine import visible
from mcpwarden.scan.html import render_html
from mcpwarden.scan.model import ScanReport, ServerEntry
from mcpwarden.scan.pins import DEFAULT_PINS_FILE
from mcpwarden.scan.report import render_json, render_table
from mcpwarden.scan.runner import ScanOptions, refuses_to_start, run_scan, wants_live
from mcpwarden.scan.sarif import render_sarif
from mcpwarden.scan.static import redacted_argv
from mcpwarden.scan.targets import TargetSet, discover, load_targets

__all__ = ["FailOn", "ReportFormat", "scan_command"]

EXIT_OK, EXIT_FINDINGS, EXIT_ERROR = 0, 1, 2


class ReportFormat(StrEnum):
    table = "table"
    json = "json"
    sarif = "sarif"
    html = "html"


class FailOn(StrEnum):
    info = "info"
    low = "low"
    medium = "medium"
    high = "high"
    critical = "critical"


def scan_command(
    targets: list[str] = typer.Argument(  # noqa: B008 - typer declares options through defaults
        None,
        help="Client config files (Claude Desktop, Cursor, VS Code, Windsurf, Claude Code, Zed, Continue), "
        "mcpwarden configs, or MCP URLs. None: discover the user's client configs.",
        show_default=False,
    ),
    format: ReportFormat = typer.Option(ReportFormat.table, "--format", "-f", help="Report format."),  # noqa: B008
    output: Path | None = typer.Option(  # noqa: B008
        None, "-o", "--output", help="Write the report to this file instead of standard output."
    ),
    fail_on: FailOn = typer.Option(  # noqa: B008
        FailOn.high, "--fail-on", help="Exit 1 when a finding has this severity or a higher one."
    ),
    run_stdio: bool = typer.Option(
        False, "--run-stdio", help="Start stdio servers (this runs their code) for live checks."
    ),
    pins: Path | None = typer.Option(  # noqa: B008
        None, "--pins", help=f"Pin file for drift detection (default {DEFAULT_PINS_FILE})."
    ),
    update_pins: bool = typer.Option(
        False, "--update-pins", help="Accept changed tool definitions as the new baseline."
    ),
    timeout: float = typer.Option(
        15.0, "--timeout", min=0.1, help="Seconds allowed per server (connect + list)."
    ),
    test_token: str | None = typer.Option(
        None,
        "--test-token",
        envvar="MCPWARDEN_TEST_TOKEN",
        help="A token minted for ANOTHER audience; URL targets must refuse it (prefer the env variable).",
        show_default=False,
    ),
    concurrency: int = typer.Option(
        8, "--concurrency", min=1, max=64, help="Servers checked at the same time."
    ),
    static_only: bool = typer.Option(False, "--static-only", help="Do not contact or start any server."),
) -> None:
    """Assess MCP servers: configs, startup commands, tools, prompts and HTTP posture."""
    errors = Console(stderr=True, highlight=False, soft_wrap=True)
    try:
        found = load_targets(list(targets)) if targets else _discover(errors)
    except ConfigError as exc:
        errors.print(Text(f"error: {exc}", style="red"))
        raise typer.Exit(EXIT_ERROR) from None
    if not found.entries:
        errors.print(Text("error: no MCP servers found in the targets", style="red"))
        raise typer.Exit(EXIT_ERROR)

    options = ScanOptions(
        run_stdio=run_stdio,
        timeout=timeout,
        pins=(pins or DEFAULT_PINS_FILE).expanduser(),
        update_pins=update_pins,
        test_token=test_token,
        concurrency=concurrency,
        live=not static_only,
    )
    if run_stdio and not static_only:
        _show_commands(found.entries, errors)
    try:
        report = _run(found, options, errors)
    except (OSError, ValueError) as exc:
        errors.print(Text(f"error: {exc}", style="red"))
        raise typer.Exit(EXIT_ERROR) from None
    except Exception as exc:
        # Exit 1 means "findings" to CI; a scanner fault must never look like that (or like a pass).
        errors.print(Text(f"error: the scan failed: {type(exc).__name__}: {exc}", style="red"))
        raise typer.Exit(EXIT_ERROR) from None

    _write(report, format, output)
    raise typer.Exit(EXIT_FINDINGS if report.has_findings_at_or_above(fail_on.value) else EXIT_OK)


def _discover(errors: Console) -> TargetSet:
    found = discover()
    for warning in found.warnings:
        errors.print(Text(f"warning: {warning}", style="yellow"))
    if not found.files_read:
        raise ConfigError("no MCP client configuration found (looked under $HOME and the current directory)")
    for path in found.files_read:
        errors.print(Text(f"read {path}", style="dim"))
    return found


def _show_commands(entries: tuple[ServerEntry, ...], errors: Console) -> None:
    stdio = [entry for entry in entries if entry.transport == "stdio" and not refuses_to_start(entry)]
    if not stdio:
        return
    errors.print(Text("Starting stdio servers (their code runs, in a scrubbed environment):", style="bold"))
    for entry in stdio:
        errors.print(Text(f"  {visible(entry.name)}: {visible(' '.join(redacted_argv(entry)))}"))
    refused = [entry.name for entry in entries if entry.transport == "stdio" and refuses_to_start(entry)]
    if refused:
        errors.print(
            Text(
                "Not started (dangerous startup command): " + ", ".join(map(visible, refused)), style="yellow"
            )
        )


def _run(found: TargetSet, options: ScanOptions, errors: Console) -> ScanReport:
    live_count = sum(1 for entry in found.entries if wants_live(entry, options))
    if not errors.is_terminal or live_count == 0:
        return anyio.run(
            lambda: run_scan(found.entries, options, files_read=found.files_read, warnings=found.warnings)
        )
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=errors,
        transient=True,
    )
    with progress:
        task = progress.add_task("checking servers", total=live_count)

        def on_progress(entry: ServerEntry, state: str) -> None:
            if state == "done":
                progress.advance(task)
            else:
                progress.update(task, description=f"checking {visible(entry.name)[:40]}")

        return anyio.run(
            lambda: run_scan(
                found.entries,
                options,
                files_read=found.files_read,
                warnings=found.warnings,
                on_progress=on_progress,
            )
        )


def _write(report: ScanReport, format: ReportFormat, output: Path | None) -> None:
    if format is ReportFormat.table:
        if output is None:
            render_table(report, Console(highlight=False, soft_wrap=False))
            return
        with output.open("w", encoding="utf-8") as stream:
            render_table(report, Console(file=stream, highlight=False, width=160, color_system=None))
        return
    text = {
        ReportFormat.json: render_json,
        ReportFormat.sarif: render_sarif,
        ReportFormat.html: render_html,
    }[format](report)
    if output is None:
        sys.stdout.write(text)
    else:
        output.write_text(text, encoding="utf-8")
