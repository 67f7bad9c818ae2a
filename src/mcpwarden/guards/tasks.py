"""Task ownership: `tasks/*` reach only tasks the same principal started through the gateway.

The gateway talks to an upstream with one identity of its own, so without this guard any caller
could read, poll or cancel a task of another caller (or of anyone else using that upstream) by
naming `S__<task id>`: a confused deputy. A task becomes reachable when a `tools/call` result
through the gateway names it (`taskId`, or `task.taskId` in the 2025-11-25 shape), and then only
for the principal whose call created it; every other `tasks/*` request is refused as an unknown
task, exactly as if it did not exist. State is per gateway process, in memory, bounded.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from mcpwarden import reasons
from mcpwarden.catalog import CatalogView
from mcpwarden.config import Settings
from mcpwarden.exchange import ALLOW, Decision, Exchange, deny
from mcpwarden.pipeline import BaseGuard

MAX_TASKS = 100_000


class TaskOwnershipGuard(BaseGuard):
    name = "tasks"

    def __init__(self, max_tasks: int = MAX_TASKS) -> None:
        self.max_tasks = max_tasks
        self._owners: OrderedDict[tuple[str, str], str] = OrderedDict()  # (server, task id) -> principal

    @classmethod
    def from_settings(cls, settings: Settings, catalog: CatalogView | None = None) -> TaskOwnershipGuard:
        return cls()

    async def check_request(self, exchange: Exchange) -> Decision:
        if not exchange.method.startswith("tasks/") or exchange.server is None or exchange.target is None:
            return ALLOW
        if self._owners.get((exchange.server, exchange.target)) == exchange.principal:
            return ALLOW
        return deny(reasons.UNKNOWN_TASK, f"no task {exchange.exposed_name!r}")

    async def check_response(self, exchange: Exchange) -> Decision:
        if exchange.method == "tools/call" and exchange.server is not None:
            task_id = _task_id(exchange.result)
            if task_id is not None:
                self._owners[(exchange.server, task_id)] = exchange.principal
                while len(self._owners) > self.max_tasks:
                    self._owners.popitem(last=False)
        return ALLOW


def _task_id(result: Any) -> str | None:
    if not isinstance(result, dict):
        return None
    task = result.get("task")
    task_id = task.get("taskId") if isinstance(task, dict) else result.get("taskId")
    return task_id if isinstance(task_id, str) else None
