"""`mcpwarden approvals list | approve ID | deny ID`: answer held calls from another terminal.

These commands open `state_dir/approvals.db` of the configuration (`-c FILE`, else ./mcpwarden.yaml)
while the gateway runs; SQLite (WAL, busy timeout) lets both write. `approve` makes the held call
succeed once, for the same principal with the same arguments, within `approvals.lifetime`; `deny`
makes it fail with `approval-denied`. A startup approval (a flagged stdio command) is approved for
that exact command; the gateway starts the server at its next retry.

Exit codes: 0 done, 1 no such pending approval, 2 bad configuration.
"""

from __future__ import annotations

import getpass
import json
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from mcpwarden import reasons
from mcpwarden.approvals.store import ApprovalStore, Status, approvals_db_path
from mcpwarden.audit.events import AuditEvent
from mcpwarden.audit.log import SqliteAuditLog, audit_db_path
from mcpwarden.config import Settings, load_settings
from mcpwarden.console import FormatOption, OutputFormat, err, out
from mcpwarden.errors import MCPWardenError

approvals_app = typer.Typer(
    name="approvals",
    help="Pending human approvals: list them, approve or deny one.",
    no_args_is_help=True,
    add_completion=False,
)


ConfigOption = Annotated[
    Path | None,
    typer.Option(
        "-c", "--config", help="Configuration file whose state_dir holds approvals.db.", dir_okay=False
    ),
]


def load(config: Path | None) -> Settings:
    try:
        return load_settings(config)
    except MCPWardenError as exc:
        err.print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(2) from None


def decider() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


@approvals_app.command("list")
def list_command(
    config: ConfigOption = None,
    output: FormatOption = OutputFormat.TABLE,
    show_all: Annotated[
        bool, typer.Option("--all", help="Also show decided, used and expired approvals.")
    ] = False,
) -> None:
    """Show approvals waiting for a human (JSON: [{"id", "principal", "tool", "arguments", "created"}])."""
    settings = load(config)
    path = approvals_db_path(settings.state_dir)
    approvals = []
    if path.exists():
        store = ApprovalStore(path, create=False)
        try:
            everything: tuple[Status, ...] = ("pending", "approved", "denied", "consumed", "expired")
            approvals = store.list(everything if show_all else ("pending",))
        finally:
            store.close()
    if output is OutputFormat.JSON:
        typer.echo(json.dumps([a.to_dict() for a in approvals], ensure_ascii=False))
        return
    if not approvals:
        out.print("no approvals are waiting", markup=False)
        return
    table = Table("id", "kind", "principal", "tool", "tier", "arguments", "created", "status")
    for approval in approvals:
        table.add_row(
            approval.id,
            approval.kind,
            escape(approval.principal),
            escape(approval.tool),
            approval.tier or "",
            escape(json.dumps(approval.arguments, ensure_ascii=False)[:200]),
            datetime.fromtimestamp(approval.created, UTC).strftime("%Y-%m-%d %H:%M:%S"),
            approval.status,
        )
    out.print(table)


def record(
    settings: Settings, method: str, target: str, decision: str, reason: str, extra: dict[str, Any]
) -> None:
    """Append what a human decided here to the audit trail (the gateway records the rest)."""
    now = time.time()
    event = AuditEvent(
        time=now,
        correlation_id=uuid.uuid4().hex,
        principal=decider(),
        transport="cli",
        method=method,
        server=None,
        target=target,
        argument_digest=None,
        decision=decision,
        reason=reason,
        detail="",
        latency_ms=0.0,
        request_bytes=0,
        response_bytes=0,
        guard=None,
        extra=extra,
    )
    try:
        log = SqliteAuditLog(audit_db_path(settings.state_dir))
        try:
            log.append(event)
        finally:
            log.close()
    except Exception as exc:  # the decision stands; say loudly that its record is missing
        err.print(f"[yellow]warning:[/yellow] could not write the audit trail: {type(exc).__name__}")


def _decide(config: Path | None, approval_id: str, approved: bool) -> None:
    settings = load(config)
    path = approvals_db_path(settings.state_dir)
    if not path.exists():
        err.print(f"no pending approval {escape(approval_id)} (no approvals in {settings.state_dir})")
        raise typer.Exit(1)
    store = ApprovalStore(path, create=False)
    try:
        decided = store.decide(approval_id, approved, decider(), settings.approvals.lifetime)
    finally:
        store.close()
    if decided is None:
        err.print(f"no pending approval {escape(approval_id)} (unknown, already decided or expired)")
        raise typer.Exit(1)
    verb = "approved" if approved else "denied"
    record(
        settings,
        f"approvals/{'approve' if approved else 'deny'}",
        decided.tool,
        "allow" if approved else "deny",
        reasons.OK if approved else reasons.APPROVAL_DENIED,
        {"approval": {"id": decided.id, "step": verb, "kind": decided.kind, "for": decided.principal}},
    )
    if decided.kind == "startup":
        out.print(f"{verb} the start command of server {decided.server}", markup=False)
    elif approved:
        out.print(
            f"approved {decided.id}: {decided.principal} may call {decided.tool} once with these arguments "
            f"within {settings.approvals.lifetime:g}s",
            markup=False,
        )
    else:
        out.print(f"denied {decided.id}: {decided.tool} for {decided.principal}", markup=False)


@approvals_app.command("approve")
def approve_command(
    approval_id: Annotated[str, typer.Argument(metavar="ID", help="The approval id from the error.")],
    config: ConfigOption = None,
) -> None:
    """Approve a held call (it then succeeds once) or a server's start command."""
    _decide(config, approval_id, True)


@approvals_app.command("deny")
def deny_command(
    approval_id: Annotated[str, typer.Argument(metavar="ID", help="The approval id from the error.")],
    config: ConfigOption = None,
) -> None:
    """Deny a held call: repeating it fails with approval-denied."""
    _decide(config, approval_id, False)
