"""Usage reports: calls and cost per principal, server and tool, read from the audit trail.

**Why the audit trail, not a usage table of its own.** The quota guard already writes every
metered call's cost into that call's audit event (`extra.cost`), and the pipeline writes exactly
one event per exchange, committed before the answer is returned. Reading usage from there means
one source of truth — the usage report can never disagree with the audit trail — no extra write
on the hot path, time filters exact to the second, and the numbers are covered by the hash chain
(`mcpwarden audit verify`), so a usage figure used for billing or a dispute is tamper-evident. The
cost: a report scans the events of its time range (one SQL aggregate, about a second per million
events), and each gateway replica reports the calls it served (its own `state_dir`).

Counted are the methods the quota guard meters (`tools/call`, `prompts/get`, `resources/read`):
`calls` are the answered ones (decision allow), `denied` those refused or held, `errors` those that
failed upstream; `cost` sums what was charged (denied calls and failures cost nothing). A task's
result is charged per KB when it arrives (`tasks/get`, a legacy `tasks/result`): that charge is
added to the cost of the tool that created the task, and is not a call of its own.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final

from mcpwarden.audit.log import SqliteAuditLog
from mcpwarden.guards.tasks import TASK_TOOL_KEY
from mcpwarden.quota.plan import METERED_METHODS
from mcpwarden.router import RESOURCE_SCHEME
from mcpwarden.store.sqlite import open_database

DIMENSIONS: Final = ("principal", "server", "tool")
_RELATIVE: Final = re.compile(r"^(\d+)([smhdw])$")
_UNIT_SECONDS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}

_QUERY: Final = f"""
    SELECT principal, server, target, method, decision, count(*),
           total(CAST(json_extract(extra, '$.cost') AS REAL))
    FROM audit_log
    WHERE method IN ({", ".join("?" for _ in METERED_METHODS)}) AND time >= ?
    GROUP BY principal, server, target, method, decision
"""
# What task results were charged when they arrived, by the (exposed) tool that created the task.
_TASK_CHARGES: Final = f"""
    SELECT principal, server, json_extract(extra, '$.{TASK_TOOL_KEY}') AS tool,
           total(CAST(json_extract(extra, '$.cost') AS REAL))
    FROM audit_log
    WHERE method IN ('tasks/get', 'tasks/result') AND time >= ? AND tool IS NOT NULL
    GROUP BY principal, server, tool
"""


@dataclass(frozen=True, slots=True)
class UsageRow:
    """One line of the report; a dimension not grouped by is None."""

    principal: str | None
    server: str | None
    tool: str | None  # the exposed name (notes__search), as in `limits` and `policy`
    calls: int
    denied: int
    errors: int
    cost: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_since(text: str, now: datetime | None = None) -> float:
    """`7d`, `12h`, `30m`, `45s`, `2w` ago, or an ISO date/time (UTC unless it says otherwise)."""
    now = now or datetime.now(UTC)
    match = _RELATIVE.match(text.strip())
    if match:
        return (now - timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])).timestamp()
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"--since must be like 1d, 12h, 30m or an ISO date/time, not {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def exposed_name(method: str, server: str | None, target: str | None, separator: str) -> str | None:
    if server is None or target is None:
        return target
    if method == "resources/read":
        return f"{RESOURCE_SCHEME}{server}/{target}"
    return f"{server}{separator}{target}"


def usage_report(
    audit_path: Path,
    *,
    by: Sequence[str] = DIMENSIONS,
    since: float | None = None,
    separator: str = "__",
) -> list[UsageRow]:
    """Aggregate the trail at `audit_path`; most expensive first. Raises AuditError if it is not one."""
    unknown = set(by) - set(DIMENSIONS)
    if unknown:
        raise ValueError(f"cannot group by {', '.join(sorted(unknown))}; use {', '.join(DIMENSIONS)}")
    SqliteAuditLog(audit_path, create=False).close()  # checks that this is an audit trail we can read
    conn = open_database(audit_path, create=False)
    try:
        start = since if since is not None else float("-inf")
        rows = conn.execute(_QUERY, (*sorted(METERED_METHODS), start)).fetchall()
        charges = conn.execute(_TASK_CHARGES, (start,)).fetchall()
        totals: dict[tuple[str | None, ...], list[float]] = {}

        def entry(principal: str, server: str | None, tool: str | None) -> list[float]:
            values = {"principal": principal, "server": server, "tool": tool}
            key = tuple(values[name] if name in by else None for name in DIMENSIONS)
            return totals.setdefault(key, [0, 0, 0, 0.0])

        for principal, server, target, method, decision, count, cost in rows:
            counts = entry(principal, server, exposed_name(method, server, target, separator))
            counts[0 if decision == "allow" else 2 if decision == "error" else 1] += int(count)
            counts[3] += float(cost)
        for principal, server, tool, cost in charges:
            entry(principal, server, str(tool))[3] += float(cost)
    finally:
        conn.close()
    report = [
        UsageRow(key[0], key[1], key[2], int(entry[0]), int(entry[1]), int(entry[2]), round(entry[3], 6))
        for key, entry in totals.items()
    ]
    report.sort(
        key=lambda row: (-row.cost, -row.calls, row.principal or "", row.server or "", row.tool or "")
    )
    return report
