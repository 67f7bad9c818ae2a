"""SARIF 2.1.0 output, shaped for GitHub code scanning.

One rule per finding id (with `security-severity`, which GitHub uses to rank alerts), one result
per finding, located at the config file and line that defines the server (or at the URL for URL
targets: code scanning requires a location on every result). `partialFingerprints` are derived
from source, server, finding and tool, so an alert keeps its identity across runs and line moves.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from mcpwarden import __version__
from mcpwarden.scan.engine import visible
from mcpwarden.scan.model import ScanFinding, ScanReport, ServerResult, Severity

__all__ = ["render_sarif", "report_to_sarif"]

SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"
_LEVELS: dict[Severity, str] = {
    "critical": "error",
    "high": "error",
    "medium": "warning",
    "low": "note",
    "info": "note",
}
# GitHub maps security-severity to critical (>= 9.0), high (>= 7.0), medium (>= 4.0), low.
_SECURITY_SEVERITY: dict[Severity, str] = {
    "critical": "9.5", "high": "8.0", "medium": "5.5", "low": "3.0", "info": "1.0",
}  # fmt: skip


def _rule_name(finding_id: str) -> str:
    return "".join(part.capitalize() for part in finding_id.split("-"))


def _artifact_uri(source: str, base: Path) -> str:
    if re.match(r"^https?://", source):
        return source.split("?", 1)[0]
    path = Path(source.split("#", 1)[0])
    try:
        return path.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return path.resolve().as_uri()


def _line_of_server(source: str, name: str, cache: dict[str, list[str]]) -> int:
    """The 1-based line that names the server in its file (best effort; 1 if not found)."""
    path = source.split("#", 1)[0]
    if path not in cache:
        try:
            cache[path] = Path(path).read_text(encoding="utf-8", errors="replace").splitlines()
        except OSError:
            cache[path] = []
    key = name.rsplit(":", 1)[-1]
    patterns = (
        re.compile(rf'"{re.escape(key)}"\s*:'),
        re.compile(rf"^\s*{re.escape(key)}\s*:"),
        re.compile(rf"name:\s*['\"]?{re.escape(key)}\b"),
        re.compile(rf'"name"\s*:\s*"{re.escape(key)}"'),
    )
    for number, line in enumerate(cache[path], start=1):
        if any(pattern.search(line) for pattern in patterns):
            return number
    return 1


def _fingerprint(server: ServerResult, finding: ScanFinding) -> str:
    material = "|".join([server.entry.source, server.entry.name, finding.id, finding.tool or ""])
    return hashlib.sha256(material.encode("utf-8")).hexdigest()


def report_to_sarif(report: ScanReport, base: Path | None = None) -> dict[str, Any]:
    base = base or Path.cwd()
    rules: dict[str, dict[str, Any]] = {}
    results: list[dict[str, Any]] = []
    lines: dict[str, list[str]] = {}
    for server in report.servers:
        for finding in server.findings:
            rule = rules.get(finding.id)
            if rule is None or float(rule["properties"]["security-severity"]) < float(
                _SECURITY_SEVERITY[finding.severity]
            ):
                rules[finding.id] = {
                    "id": finding.id,
                    "name": _rule_name(finding.id),
                    "shortDescription": {"text": visible(finding.title)},
                    "fullDescription": {"text": visible(finding.detail or finding.title)},
                    "help": {"text": visible(finding.detail or finding.title)},
                    "defaultConfiguration": {"level": _LEVELS[finding.severity]},
                    "properties": {
                        "security-severity": _SECURITY_SEVERITY[finding.severity],
                        "tags": ["security", "mcp"],
                        "precision": "high" if finding.location in {"command", "config"} else "medium",
                    },
                }
    rule_ids = sorted(rules)
    for server in report.servers:
        is_url = bool(re.match(r"^https?://", server.entry.source))
        line = 1 if is_url else _line_of_server(server.entry.source, server.entry.name, lines)
        for finding in server.findings:
            subject = f"server '{visible(server.entry.name)}'" + (
                f", tool '{visible(finding.tool)}'" if finding.tool else ""
            )
            message = f"{visible(finding.title)} ({subject})."
            if finding.evidence:
                message += f" Evidence: {visible(finding.evidence)}"
            location: dict[str, Any] = {
                "physicalLocation": {
                    "artifactLocation": {"uri": _artifact_uri(server.entry.source, base)},
                    "region": {"startLine": line},
                },
                "logicalLocations": [
                    {
                        "name": visible(finding.tool or server.entry.name),
                        "fullyQualifiedName": visible(
                            server.entry.name + (f"/{finding.tool}" if finding.tool else "")
                        ),
                        "kind": "function" if finding.tool else "module",
                    }
                ],
            }
            results.append(
                {
                    "ruleId": finding.id,
                    "ruleIndex": rule_ids.index(finding.id),
                    "level": _LEVELS[finding.severity],
                    "message": {"text": message},
                    "locations": [location],
                    "partialFingerprints": {"mcpwardenFinding/v1": _fingerprint(server, finding)},
                    "properties": {"severity": finding.severity, "server": server.entry.name},
                }
            )
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {
                    "driver": {
                        "name": "mcpwarden",
                        "version": __version__,
                        "semanticVersion": __version__,
                        "rules": [rules[rule_id] for rule_id in rule_ids],
                    }
                },
                "automationDetails": {"id": "mcpwarden-scan/"},
                "invocations": [
                    {
                        "executionSuccessful": True,
                        "toolExecutionNotifications": [
                            {"level": "warning", "message": {"text": visible(warning)}}
                            for warning in report.warnings
                        ],
                    }
                ],
                "results": results,
            }
        ],
    }


def render_sarif(report: ScanReport, base: Path | None = None) -> str:
    return json.dumps(report_to_sarif(report, base), indent=2, ensure_ascii=True) + "\n"
