"""`mcpwarden tools`: every exposed tool with its risk tier, flow labels and the reasons why.

It connects to the configured servers the way the gateway does (`Upstream`: same transports,
same startup-command vetting — a flagged command that was not approved is not started here
either), lists their tools, classifies each with `mcpwarden.risk.classify` and the config's
`risk` and `flow` settings, and disconnects. Servers that cannot be reached are reported on
stderr; the listing goes on with the others.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Annotated, Any

import anyio
import typer
from rich.markup import escape
from rich.table import Table

from mcpwarden.approvals.cli import load
from mcpwarden.config import Settings
from mcpwarden.console import FormatOption, OutputFormat, err, out
from mcpwarden.guards.flow import labels_for
from mcpwarden.pinning.startup import startup_check_for
from mcpwarden.risk import classify
from mcpwarden.upstream.connection import ChangeKind, Upstream


async def list_definitions(settings: Settings) -> tuple[dict[str, list[dict[str, Any]]], dict[str, str]]:
    """({server id: [tool definitions as wire JSON]}, {server id: why it could not be listed})."""

    async def ignore_change(server_id: str, kinds: frozenset[ChangeKind]) -> None:
        return None

    async def ignore_update(server_id: str, uri: str) -> None:
        return None

    check = startup_check_for(settings)
    upstreams = {
        server_id: Upstream(
            server_id, spec, settings.gateway, ignore_change, ignore_update, startup_check=check
        )
        for server_id, spec in settings.servers.items()
    }
    async with anyio.create_task_group() as tg:
        for upstream in upstreams.values():
            tg.start_soon(upstream.run)
        with anyio.move_on_after(settings.gateway.connect_timeout):
            for upstream in upstreams.values():
                await upstream.wait_ready(settings.gateway.connect_timeout)
        tools: dict[str, list[dict[str, Any]]] = {}
        errors: dict[str, str] = {}
        for server_id, upstream in upstreams.items():
            if upstream.ready:
                tools[server_id] = [
                    tool.model_dump(by_alias=True, mode="json", exclude_none=True)
                    for tool in upstream.catalog.tools
                ]
            else:
                errors[server_id] = upstream.last_error or "not reachable in time"
            upstream.stop()
        tg.cancel_scope.cancel()
    return tools, errors


def describe_tools(settings: Settings, tools: dict[str, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    separator = settings.gateway.separator
    rows = []
    for server_id in sorted(tools):
        for definition in sorted(tools[server_id], key=lambda d: str(d.get("name"))):
            name = str(definition.get("name"))
            assessment = classify(server_id, name, definition, settings.risk, separator)
            labels = labels_for(assessment.tool, assessment, name, definition, settings.flow)
            row = assessment.to_dict()
            row.update(
                server=server_id,
                name=name,
                approval=assessment.tier in settings.risk.approval_tiers,
                flow_labels=sorted(labels),
            )
            rows.append(row)
    return rows


def tools_command(
    config: Annotated[
        Path | None,
        typer.Option(
            "-c", "--config", help="Configuration file (default: ./mcpwarden.yaml).", dir_okay=False
        ),
    ] = None,
    output: FormatOption = OutputFormat.TABLE,
) -> None:
    """List every exposed tool with its risk tier (low/medium/high/critical) and why."""
    settings = load(config)
    # Connection retries are summed up below, one line per server, instead of logged as they happen.
    logging.getLogger("mcpwarden").setLevel(logging.ERROR)
    tools, errors = anyio.run(list_definitions, settings)
    for server_id, why in sorted(errors.items()):
        err.print(f"[yellow]warning:[/yellow] server {escape(server_id)}: {escape(why)}")
    rows = describe_tools(settings, tools)
    if output is OutputFormat.JSON:
        typer.echo(json.dumps(rows, ensure_ascii=False))
        return
    table = Table("tool", "tier", "approval", "categories", "flow", "why")
    for row in rows:
        table.add_row(
            escape(row["tool"]),
            row["tier"],
            "yes" if row["approval"] else "",
            ", ".join(row["categories"]),
            ", ".join(row["flow_labels"]),
            escape("\n".join(row["reasons"])),
        )
    out.print(table)
