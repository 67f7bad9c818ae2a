"""mcpwarden scan: a local security assessment of the MCP servers a user or organisation connects to.

The flow: targets (client configs, mcpwarden configs, URLs) -> static checks per entry -> live
checks (connect, list, detect; concurrently) and HTTP posture probes -> cross-server checks and
drift against pins -> a report (table, JSON, SARIF, HTML) and an exit code. The detection engine,
command vetting and pinning rules are the gateway's own, so both reach the same verdicts.
"""

from mcpwarden.scan.model import ScanFinding, ScanReport, ServerEntry, ServerResult
from mcpwarden.scan.runner import ScanOptions, run_scan

__all__ = ["ScanFinding", "ScanOptions", "ScanReport", "ServerEntry", "ServerResult", "run_scan"]
