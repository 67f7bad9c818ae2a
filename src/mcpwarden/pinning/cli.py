"""`mcpwarden pins list` / `mcpwarden pins approve SERVER[__TOOL]`: review changed definitions.

`list` shows, per server, how many definitions are pinned and every change awaiting review as a
unified diff (pinned -> now; invisible characters as \\uXXXX escapes), plus start commands waiting
for approval. `approve SERVER__TOOL` pins the reviewed definition of one tool (or prompt;
`approve mcpwarden://SERVER/<uri>` one resource or template); `approve SERVER` pins everything
pending for that server (its definitions, instructions, and start command). The gateway
picks the change up at the next listing or call; nothing needs a restart.

Exit codes: 0 done, 1 nothing awaiting review for that target, 2 bad configuration.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.markup import escape

from mcpwarden import reasons
from mcpwarden.approvals.cli import ConfigOption, decider, load, record
from mcpwarden.approvals.store import ApprovalStore, approvals_db_path
from mcpwarden.console import FormatOption, OutputFormat, err, out
from mcpwarden.pinning.diff import exposed_label, render_diff
from mcpwarden.pinning.store import PinStore, pins_db_path
from mcpwarden.router import Router

pins_app = typer.Typer(
    name="pins",
    help="Pinned tool definitions and changes awaiting review.",
    no_args_is_help=True,
    add_completion=False,
)


@pins_app.command("list")
def list_command(
    config: ConfigOption = None,
    output: FormatOption = OutputFormat.TABLE,
) -> None:
    """Show pinned definitions per server and a diff of every change awaiting review."""
    settings = load(config)
    separator = settings.gateway.separator
    pins, pending = [], []
    if pins_db_path(settings.state_dir).exists():
        store = PinStore.for_state_dir(settings.state_dir, create=False)
        try:
            pins, pending = store.pins(), store.pending()
        finally:
            store.close()
    startups = []
    if approvals_db_path(settings.state_dir).exists():
        approvals = ApprovalStore.for_state_dir(settings.state_dir, create=False)
        try:
            startups = approvals.list(("pending",), kind="startup")
        finally:
            approvals.close()

    def label(server: str, kind: str, name: str) -> str:
        return exposed_label(server, kind, name, separator)

    def approve_target(server: str, kind: str, name: str) -> str:
        return server if kind == "instructions" else label(server, kind, name)

    if output is OutputFormat.JSON:
        document: dict[str, Any] = {
            "pins": [
                {
                    "server": p.server,
                    "kind": p.kind,
                    "name": p.name,
                    "digest": p.digest,
                    "pinned_at": p.pinned_at,
                }
                for p in pins
            ],
            "pending": [
                {
                    "server": c.server,
                    "kind": c.kind,
                    "name": c.name,
                    "target": approve_target(c.server, c.kind, c.name),
                    "change": "new" if c.previous is None else "changed",
                    "digest": c.digest,
                    "diff": render_diff(c.previous, c.definition, label(c.server, c.kind, c.name)),
                    "first_seen": c.first_seen,
                }
                for c in pending
            ],
            "startup": [a.to_dict() for a in startups],
        }
        typer.echo(json.dumps(document, ensure_ascii=False))
        return
    counts: dict[str, int] = {}
    for pin in pins:
        counts[pin.server] = counts.get(pin.server, 0) + 1
    for server in sorted(set(counts) | set(settings.servers)):
        out.print(f"{server}: {counts.get(server, 0)} definitions pinned", markup=False)
    if not pending and not startups:
        out.print("no changes are awaiting review", markup=False)
        return
    for change in pending:
        target = approve_target(change.server, change.kind, change.name)
        what = f"new {change.kind}" if change.previous is None else "changed"
        title = escape(label(change.server, change.kind, change.name))
        out.print(
            f"\n[bold]{title}[/bold]: {what}, awaiting review (`mcpwarden pins approve {escape(target)}`)"
        )
        out.print(
            render_diff(change.previous, change.definition, label(change.server, change.kind, change.name)),
            markup=False,
        )
    for approval in startups:
        out.print(
            f"\n[bold]{escape(approval.server or '?')} (start command)[/bold]: awaiting approval "
            f"(`mcpwarden pins approve {escape(approval.server or '?')}` or "
            f"`mcpwarden approvals approve {approval.id}`)"
        )
        out.print(approval.prompt, markup=False)


@pins_app.command("approve")
def approve_command(
    target: Annotated[
        str,
        typer.Argument(
            metavar="SERVER[__TOOL]",
            help="A server id, or one exposed name: a tool or prompt (SERVER__NAME), a resource or "
            "template (mcpwarden://SERVER/<uri>).",
        ),
    ],
    config: ConfigOption = None,
) -> None:
    """Accept what is pending for a server (all of it) or for one of its tools, prompts or resources."""
    settings = load(config)
    router = Router(settings.gateway.separator, settings.servers)
    named = router.split_uri(target) or router.split(target)
    server, name = named if named is not None else (target, None)
    sep = name is not None
    if server not in settings.servers:
        err.print(f"no server {escape(server)!r} in the configuration")
        raise typer.Exit(1)
    who = decider()
    approved: list[str] = []
    if pins_db_path(settings.state_dir).exists():
        store = PinStore.for_state_dir(settings.state_dir)
        try:
            for change in store.approve(server, name, who):
                approved.append(
                    exposed_label(change.server, change.kind, change.name, settings.gateway.separator)
                )
        finally:
            store.close()
    if not sep and approvals_db_path(settings.state_dir).exists():
        approvals = ApprovalStore.for_state_dir(settings.state_dir)
        try:
            for approval in approvals.list(("pending",), kind="startup"):
                if approval.server == server and approvals.decide(
                    approval.id, True, who, settings.approvals.lifetime
                ):
                    approved.append(f"{server} (start command)")
        finally:
            approvals.close()
    if not approved:
        err.print(f"nothing is awaiting review for {escape(target)}")
        raise typer.Exit(1)
    for item in approved:
        out.print(f"approved {item}", markup=False)
    record(settings, "pins/approve", target, "allow", reasons.OK, {"pins_approved": approved})
