"""Values the scanner passes between its stages: server entries in, findings and results out.

Targets (targets.py) turn files and URLs into `ServerEntry` values; checks (static.py, live.py,
posture.py) turn entries into `ScanFinding` values; reports render a `ScanReport`. Everything here is
a frozen dataclass so stages cannot mutate what another stage produced.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Literal

from mcpwarden.vetting import SEVERITY_ORDER, Severity

__all__ = [
    "SEVERITY_ORDER",
    "LiveStatus",
    "ScanFinding",
    "ScanReport",
    "ServerEntry",
    "ServerResult",
    "Severity",
    "severity_at_least",
]

Transport = Literal["stdio", "http"]
LiveStatus = Literal["ok", "skipped", "failed", "not-run"]


def severity_at_least(severity: Severity, threshold: Severity) -> bool:
    return SEVERITY_ORDER.index(severity) >= SEVERITY_ORDER.index(threshold)


@dataclass(frozen=True)
class ServerEntry:
    """One MCP server as some client (or the command line) configures it.

    `source` is where the entry came from (a file path or the URL given on the command line);
    `group` identifies one client's view of servers, the scope in which tool names can collide.
    """

    name: str
    source: str
    transport: Transport
    command: str | None = None
    args: tuple[str, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    cwd: str | None = None
    url: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    group: str = ""
    # True when the user named this URL on the command line: only then do posture probes run.
    direct_url: bool = False

    @property
    def identity(self) -> str:
        """What the server is, independent of which file configures it (the key of its pins).

        The command line or URL is hashed: it may carry a credential, and the pin file is plain text.
        """
        what = self.url if self.transport == "http" else "\0".join([self.command or "", *self.args])
        digest = hashlib.sha256((what or "").encode("utf-8")).hexdigest()[:32]
        return f"{self.name}|{self.transport}|{digest}"


@dataclass(frozen=True)
class ScanFinding:
    """One problem; `id` is a stable kebab-case code, `tool` names the tool/prompt it concerns."""

    id: str
    severity: Severity
    title: str
    detail: str = ""
    tool: str | None = None
    evidence: str | None = None
    # Where the problem sits: "config", "command", "tool", "prompt", "resource", "instructions", "http".
    location: str = "config"


@dataclass(frozen=True)
class ServerResult:
    entry: ServerEntry
    findings: tuple[ScanFinding, ...]
    live: LiveStatus = "not-run"
    live_error: str | None = None
    tools: tuple[str, ...] = ()
    # Tool name -> risk tier (read, write, execute, destructive), judged from names, not annotations.
    tool_risks: tuple[tuple[str, str], ...] = ()
    prompts: tuple[str, ...] = ()
    resources: tuple[str, ...] = ()
    server_name: str | None = None
    protocol_version: str | None = None


@dataclass(frozen=True)
class ScanReport:
    servers: tuple[ServerResult, ...]
    files_read: tuple[str, ...] = ()
    warnings: tuple[str, ...] = field(default_factory=tuple)

    def worst(self) -> Severity | None:
        severities = [f.severity for s in self.servers for f in s.findings]
        if not severities:
            return None
        return max(severities, key=SEVERITY_ORDER.index)

    def has_findings_at_or_above(self, threshold: Severity) -> bool:
        return any(severity_at_least(f.severity, threshold) for s in self.servers for f in s.findings)
