"""Task ownership: `tasks/*` reach only tasks the same principal started through the gateway.

The gateway talks to an upstream with one identity of its own, so without this guard any caller
could read, poll, answer or cancel a task of another caller (or of anyone else using that upstream)
by naming `S__<task id>`: a confused deputy. A task becomes reachable when a `tools/call` result
through the gateway creates it (a 2026-07-28 `CreateTaskResult`, `resultType: "task"` with the
`taskId` the gateway exposed), and then only for the principal whose call created it; every other
`tasks/*` request is refused as an unknown task, exactly as if it did not exist.

A task id an upstream hands to a second principal (reused, or a job deduplicated across callers)
stays the first one's: that call is refused as an invalid reply (`upstream-invalid-reply`).

Tasks are keyed by the id the caller was given (the exposed `S<sep><id>`: the gateway has
namespaced it by then), so a task of one server can never be reached through another. The tool
that created the task is kept too: its later `tasks/get` answers carry that tool's result, and the
content guard names it as the source exactly as for the `tools/call` itself
(`metadata["task_tool"]`). The creating call's audit event names the task (`task_created`).
State is per gateway process, in memory, bounded in all and per principal (oldest out first).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import NamedTuple

from mcpwarden import reasons
from mcpwarden.catalog import CatalogView
from mcpwarden.config import Settings
from mcpwarden.exchange import ALLOW, Decision, Exchange, deny
from mcpwarden.pipeline import BaseGuard
from mcpwarden.tasks import task_id_of

logger = logging.getLogger(__name__)

MAX_TASKS = 100_000
# Each principal's oldest tasks make room for its new ones, so no caller can flood the map and
# evict everyone else's tasks (whose owners would then get unknown-task).
MAX_TASKS_PER_PRINCIPAL = 10_000
TASK_TOOL_KEY = "task_tool"  # exchange.metadata: the exposed tool whose call created the task


class _Owner(NamedTuple):
    principal: str
    tool: str | None


class TaskOwnershipGuard(BaseGuard):
    name = "tasks"

    def __init__(self, max_tasks: int = MAX_TASKS, max_per_principal: int = MAX_TASKS_PER_PRINCIPAL) -> None:
        self.max_tasks = max_tasks
        self.max_per_principal = max_per_principal
        self._owners: OrderedDict[str, _Owner] = OrderedDict()  # exposed task id -> owner
        self._of_principal: dict[str, OrderedDict[str, None]] = {}  # principal -> its task ids, oldest first

    @classmethod
    def from_settings(cls, settings: Settings, catalog: CatalogView | None = None) -> TaskOwnershipGuard:
        return cls()

    async def check_request(self, exchange: Exchange) -> Decision:
        if not exchange.method.startswith("tasks/") or exchange.exposed_name is None:
            return ALLOW
        owner = self._owners.get(exchange.exposed_name)
        if owner is None or owner.principal != exchange.principal:
            return deny(reasons.UNKNOWN_TASK, f"no task {exchange.exposed_name!r}")
        if owner.tool is not None:
            exchange.metadata[TASK_TOOL_KEY] = owner.tool
        return ALLOW

    async def check_response(self, exchange: Exchange) -> Decision:
        if exchange.method == "tools/call" and exchange.server is not None:
            task_id = task_id_of(exchange.result)
            if task_id is not None:
                owner = self._owners.get(task_id)
                if owner is not None and owner.principal != exchange.principal:
                    # The upstream sees one identity, the gateway's: a task id it gives out again
                    # (reused, or a job deduplicated across callers) is still the first caller's
                    # task, and must not move to this one. The caller is told no more than for any
                    # invalid reply: that another caller started the same task is not its business.
                    logger.warning("an upstream handed out a task another principal owns; refused")
                    exchange.metadata.setdefault("audit", {})["task_conflict"] = task_id
                    return deny(reasons.UPSTREAM_INVALID_REPLY, "the server sent an invalid reply")
                self._remember(task_id, _Owner(exchange.principal, exchange.exposed_name))
                # Links the call's audit event to the later tasks/* events of the same task.
                exchange.metadata.setdefault("audit", {})["task_created"] = task_id
        return ALLOW

    def _remember(self, task_id: str, owner: _Owner) -> None:
        self._owners[task_id] = owner
        self._owners.move_to_end(task_id)
        mine = self._of_principal.setdefault(owner.principal, OrderedDict())
        mine[task_id] = None
        mine.move_to_end(task_id)
        while len(mine) > self.max_per_principal:
            del self._owners[mine.popitem(last=False)[0]]
        while len(self._owners) > self.max_tasks:
            evicted, gone = self._owners.popitem(last=False)
            theirs = self._of_principal[gone.principal]
            del theirs[evicted]
            if not theirs:
                del self._of_principal[gone.principal]
