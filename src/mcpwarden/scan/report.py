"""Reports for people and machines: the rich table and the JSON document of CONTRACT.md.

Every string a server sent is attacker-controlled: the table renders it through `visible()` (so
escape sequences cannot repaint the terminal, C7) and as rich `Text`, never as markup. Secrets
never reach a report: static checks withhold values, and entries show only the program or URL.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from rich.console import Console
from rich.table import Table
from rich.text import Text

from mcpwarden import __version__
from mcpwarden.scan.engine import visible
from mcpwarden.scan.model import SEVERITY_ORDER, ScanReport, ServerEntry

__all__ = ["SEVERITY_STYLES", "display_target", "render_json", "render_table", "report_to_dict"]

SEVERITY_STYLES = {
    "critical": "bold white on red",
    "high": "bold red",
    "medium": "yellow",
    "low": "cyan",
    "info": "dim",
}


def display_target(entry: ServerEntry) -> str:
    """What the entry runs or reaches, without credentials (no args, no URL userinfo or query)."""
    if entry.transport == "http" and entry.url:
        try:
            parts = urlsplit(entry.url)
        except ValueError:
            return "(invalid URL)"
        netloc = parts.hostname or ""
        if parts.port:
            netloc += f":{parts.port}"
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    return entry.command or ""


def report_to_dict(report: ScanReport) -> dict[str, Any]:
    counts = dict.fromkeys(reversed(SEVERITY_ORDER), 0)
    for server in report.servers:
        for finding in server.findings:
            counts[finding.severity] += 1
    return {
        "tool": {"name": "mcpwarden", "version": __version__},
        "files_read": list(report.files_read),
        "warnings": list(report.warnings),
        "summary": {
            "servers": len(report.servers),
            "findings": sum(counts.values()),
            "by_severity": counts,
            "worst": report.worst(),
        },
        "servers": [
            {
                "name": server.entry.name,
                "source": server.entry.source,
                "transport": server.entry.transport,
                "target": display_target(server.entry),
                "live": server.live,
                "live_error": server.live_error,
                "server_name": server.server_name,
                "protocol_version": server.protocol_version,
                "tools": list(server.tools),
                "tool_risks": dict(server.tool_risks),
                "prompts": list(server.prompts),
                "resources": list(server.resources),
                "findings": [
                    {
                        "id": finding.id,
                        "severity": finding.severity,
                        "title": finding.title,
                        "tool": finding.tool,
                        "detail": finding.detail,
                        "evidence": finding.evidence,
                        "location": finding.location,
                    }
                    for finding in server.findings
                ],
            }
            for server in report.servers
        ],
    }


def render_json(report: ScanReport) -> str:
    # ensure_ascii keeps hidden characters as \\u escapes: safe to cat in a terminal.
    return json.dumps(report_to_dict(report), indent=2, ensure_ascii=True) + "\n"


def render_table(report: ScanReport, console: Console) -> None:
    if report.files_read:
        console.print(Text("Files read: " + ", ".join(report.files_read), style="dim"))
    for warning in report.warnings:
        console.print(Text("warning: " + visible(warning), style="yellow"))
    table = Table(title="mcpwarden scan", show_lines=False, expand=False)
    table.add_column("Server", overflow="fold")
    table.add_column("Severity")
    table.add_column("Finding", overflow="fold")
    table.add_column("Tool", overflow="fold")
    table.add_column("Evidence", overflow="fold", max_width=60)
    for server in report.servers:
        label = Text(visible(server.entry.name))
        label.append(f"\n{server.entry.transport} · live: {server.live}", style="dim")
        if not server.findings:
            table.add_row(label, Text("ok", style="green"), Text("no findings"), Text(""), Text(""))
        for index, finding in enumerate(server.findings):
            table.add_row(
                label if index == 0 else Text(""),
                Text(finding.severity, style=SEVERITY_STYLES[finding.severity]),
                Text(f"{finding.title}\n", style="bold").append(finding.id, style="dim"),
                Text(visible(finding.tool or "")),
                Text(visible(finding.evidence or "")),
            )
        table.add_section()
    console.print(table)
    summary = report_to_dict(report)["summary"]
    parts = [f"{count} {severity}" for severity, count in summary["by_severity"].items() if count]
    console.print(
        Text(
            f"{summary['servers']} server(s), {summary['findings']} finding(s)"
            + (": " if parts else "")
            + ", ".join(parts)
        )
    )
