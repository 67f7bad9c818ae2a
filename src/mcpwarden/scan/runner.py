"""The scan as a whole: static checks, bounded concurrent live checks and probes, then cross-server
checks and drift, folded into one `ScanReport`.

Live work is I/O-bound (starting processes, waiting on servers), so entries are inspected
concurrently in one anyio task group, at most `concurrency` at a time, each under its own deadline:
one hung server costs `timeout` seconds, not the whole run. Pins are read once before and written
once after, so concurrent checks never race on the file.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import anyio

from mcpwarden.scan.live import Inventory, collision_findings, fetch_inventory, inventory_findings, risk_tier
from mcpwarden.scan.model import (
    SEVERITY_ORDER,
    LiveStatus,
    ScanFinding,
    ScanReport,
    ServerEntry,
    ServerResult,
)
from mcpwarden.scan.pins import PinFile
from mcpwarden.scan.posture import probe_http
from mcpwarden.scan.static import static_findings
from mcpwarden.vetting import CommandFinding, vet_command

__all__ = ["ScanOptions", "refuses_to_start", "run_scan", "wants_live"]

ProgressHook = Callable[[ServerEntry, str], None]


@dataclass(frozen=True)
class ScanOptions:
    run_stdio: bool = False
    timeout: float = 15.0
    pins: Path | None = None
    update_pins: bool = False
    test_token: str | None = None
    concurrency: int = 8
    live: bool = True


@dataclass
class _Live:
    inventory: Inventory | None = None
    error: str | None = None
    probe_findings: tuple[ScanFinding, ...] = ()
    probe_notes: tuple[str, ...] = ()
    needs_auth: bool = False


def refuses_to_start(entry: ServerEntry) -> list[CommandFinding]:
    """The vetting findings that forbid starting this stdio server even with --run-stdio.

    --run-stdio consents to running the servers' own code, not to a command that downloads and
    runs a script, uploads files, escalates privileges, deletes data or chains shell commands (A8):
    those are exactly what a malicious entry would do the moment it is started.
    """
    if entry.transport != "stdio" or entry.command is None:
        return []
    return [
        finding
        for finding in vet_command(entry.command, entry.args)
        if finding.severity == "critical"
        or (finding.id in {"shell-metacharacters", "shell-interpreter"} and finding.severity == "high")
    ]


def wants_live(entry: ServerEntry, options: ScanOptions) -> bool:
    if not options.live:
        return False
    if entry.transport == "http":
        return True
    return options.run_stdio and not refuses_to_start(entry)


async def run_scan(
    entries: Sequence[ServerEntry],
    options: ScanOptions,
    *,
    files_read: Sequence[str] = (),
    warnings: Sequence[str] = (),
    on_progress: ProgressHook | None = None,
) -> ScanReport:
    pin_file = PinFile.load(options.pins) if options.pins is not None else None
    live: dict[int, _Live] = {index: _Live() for index in range(len(entries))}
    limiter = anyio.CapacityLimiter(max(1, options.concurrency))

    async def inspect(index: int, entry: ServerEntry) -> None:
        async with limiter:
            if on_progress is not None:
                on_progress(entry, "started")
            state = live[index]
            try:
                state.inventory = await fetch_inventory(entry, options.timeout)
            except TimeoutError:
                state.error = f"no answer within {options.timeout:g} s"
            except Exception as exc:  # any failure to connect is a result about this server, not a crash
                state.error = _describe(exc)
            if entry.direct_url and entry.url:
                try:
                    with anyio.fail_after(options.timeout * 2):
                        outcome = await probe_http(
                            entry.url, timeout=options.timeout, test_token=options.test_token
                        )
                    state.probe_findings, state.probe_notes = outcome.findings, outcome.notes
                    state.needs_auth = outcome.needs_auth
                except Exception as exc:
                    state.probe_notes = (f"posture probes failed: {_describe(exc)}",)
            if on_progress is not None:
                on_progress(entry, "done")

    async with anyio.create_task_group() as group:
        for index, entry in enumerate(entries):
            if wants_live(entry, options):
                group.start_soon(inspect, index, entry)

    # Tool names per client view, for collisions (C13).
    tools_by_group: dict[str, dict[str, list[str]]] = defaultdict(dict)
    for index, entry in enumerate(entries):
        inventory = live[index].inventory
        if inventory is not None:
            key = f"{index}:{entry.name}"
            tools_by_group[entry.group][key] = [str(tool.get("name", "")) for tool in inventory.tools]
    collisions: dict[str, list[ScanFinding]] = {}
    for servers in tools_by_group.values():
        for key, found in collision_findings(servers).items():
            collisions[key] = [_rename_evidence(f) for f in found]

    results: list[ServerResult] = []
    drift_seen: set[str] = set()
    for index, entry in enumerate(entries):
        findings = list(static_findings(entry, run_stdio=options.run_stdio))
        state = live[index]
        status: LiveStatus = "not-run"
        inventory = state.inventory
        if wants_live(entry, options):
            status = "ok" if inventory is not None else "failed"
        elif entry.transport == "stdio":
            status = "skipped"
            refused = refuses_to_start(entry) if options.run_stdio and options.live else []
            if refused:
                findings.append(
                    ScanFinding(
                        "start-refused",
                        "info",
                        "Not started for live checks: the startup command failed vetting",
                        "Even with --run-stdio the scanner does not run a command that "
                        + ", ".join(sorted({f.id for f in refused}))
                        + " findings describe; fix the entry first.",
                        location="command",
                    )
                )
        if state.error is not None and state.needs_auth:
            # A URL given without credentials that demands them: the expected, healthy answer.
            findings.append(
                ScanFinding(
                    "live-checks-need-credentials",
                    "info",
                    "Live checks skipped: the server requires credentials",
                    "The endpoint refused an anonymous connection (good). To check its tools, scan a client "
                    "or mcpwarden config that carries the credentials.",
                    evidence=state.error,
                    location="http",
                )
            )
        elif state.error is not None:
            findings.append(
                ScanFinding(
                    "connection-failed",
                    "medium",
                    "Could not connect to the server or list its tools",
                    "Live checks did not run for this server.",
                    evidence=state.error,
                    location="http" if entry.transport == "http" else "command",
                )
            )
        if inventory is not None:
            findings += inventory_findings(inventory)
            findings += collisions.get(f"{index}:{entry.name}", [])
            # The same server seen by two clients is pinned (and its drift reported) once.
            if pin_file is not None and entry.identity not in drift_seen:
                drift_seen.add(entry.identity)
                tools = {str(tool.get("name", "")): tool for tool in inventory.tools}
                findings += pin_file.check(
                    entry.identity, tools, inventory.instructions, accept_changes=options.update_pins
                )
        findings += state.probe_findings
        results.append(
            ServerResult(
                entry=entry,
                findings=tuple(_sorted(findings)),
                live=status,
                live_error=state.error,
                tools=tuple(str(t.get("name", "")) for t in inventory.tools) if inventory else (),
                tool_risks=tuple((str(t.get("name", "")), risk_tier(t)) for t in inventory.tools)
                if inventory
                else (),
                prompts=tuple(str(p.get("name", "")) for p in inventory.prompts) if inventory else (),
                resources=tuple(str(r.get("name", "")) for r in inventory.resources) if inventory else (),
                server_name=inventory.server_name if inventory else None,
                protocol_version=inventory.protocol_version if inventory else None,
            )
        )
    if pin_file is not None and drift_seen:
        # Only a scan that listed tools touches the pin file (a --static-only run writes nothing).
        pin_file.save()
    all_warnings = list(warnings)
    for index, entry in enumerate(entries):
        all_warnings += [f"{entry.name}: {note}" for note in live[index].probe_notes]
        inventory = live[index].inventory
        if inventory is not None:
            all_warnings += [f"{entry.name}: {error}" for error in inventory.errors]
    return ScanReport(tuple(results), tuple(files_read), tuple(all_warnings))


def _rename_evidence(finding: ScanFinding) -> ScanFinding:
    # Collision keys are "index:name" to keep same-named entries apart; show only the names.
    if finding.evidence is None:
        return finding
    return replace(finding, evidence=re.sub(r"\b\d+:", "", finding.evidence))


def _sorted(findings: list[ScanFinding]) -> list[ScanFinding]:
    return sorted(findings, key=lambda f: (-SEVERITY_ORDER.index(f.severity), f.id, f.tool or ""))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(inner) for inner in exc.exceptions)
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
