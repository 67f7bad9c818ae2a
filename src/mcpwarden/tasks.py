"""The tasks extension (`io.modelcontextprotocol/tasks`, SEP-2663) as the gateway relays it.

Since 2026-07-28 tasks are an extension a client opts into per request, in
`_meta["io.modelcontextprotocol/clientCapabilities"].extensions`. The gateway never runs tasks
itself; it relays them between a caller that declared the extension and an upstream that
advertises it:

- `server/discover` advertises the extension when at least one ready upstream does;
- the caller's declaration (that extension only, and only when the caller made it) travels with
  the request upstream, so a task-supporting upstream creates a task for that caller alone;
- a `tools/call` answered with a `CreateTaskResult` (`resultType: "task"`) is relayed with its task
  id exposed as `S<sep><id>` (router.py), and the task ownership guard ties it to the caller;
- `tasks/get|update|cancel` from a modern caller that did not declare the extension are refused
  with -32021 before routing, as the extension requires of a server.

The 2025-11-25 experimental tasks (legacy era) are relayed as before: method by method, ids
namespaced, no declaration involved.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import mcp_types as types
from mcp.client.extension import ClaimContext, ClientExtension, ResultClaim
from mcp.shared.exceptions import MCPError
from pydantic import ConfigDict

from mcpwarden import reasons

TASKS_EXTENSION = "io.modelcontextprotocol/tasks"
# A task id goes back to the caller unscreened (it must come back exactly as it went) and is kept
# for its owner until evicted (guards/tasks.py): so it must be a token as ids are (UUIDs, job ids,
# opaque handles), printable ASCII without whitespace and bounded, never text, terminal escapes or
# megabytes an upstream chose.
MAX_TASK_ID_CHARS = 1024
_TASK_ID = re.compile(rf"[!-~]{{1,{MAX_TASK_ID_CHARS}}}")
# The 2026-07-28 task surface; `tasks/result` and `tasks/list` were 2025-11-25 only.
MODERN_TASK_METHODS = frozenset({"tasks/get", "tasks/update", "tasks/cancel"})


def tasks_declaration(capabilities: types.ClientCapabilities | None) -> dict[str, Any] | None:
    """The caller's own settings for the extension, to forward as they are; None when undeclared."""
    extensions = capabilities.extensions if capabilities is not None else None
    if not extensions or TASKS_EXTENSION not in extensions:
        return None
    settings = extensions[TASKS_EXTENSION]
    return dict(settings) if isinstance(settings, dict) else {}


def declares_tasks(capabilities: types.ClientCapabilities | None) -> bool:
    """Whether a caller's declared capabilities name the tasks extension."""
    return tasks_declaration(capabilities) is not None


def missing_tasks_capability(method: str) -> MCPError:
    """-32021 with the shape SEP-2575 gives: what the client must declare to be served."""
    return MCPError(
        types.MISSING_REQUIRED_CLIENT_CAPABILITY,
        f"{method} needs the client capability extensions[{TASKS_EXTENSION!r}]",
        {
            "requiredCapabilities": {"extensions": {TASKS_EXTENSION: {}}},
            "reason": reasons.MISSING_CLIENT_CAPABILITY,
        },
    )


class CreateTaskResult(types.Result):
    """An upstream's `CreateTaskResult`, kept whole: the gateway only rewrites its `taskId`."""

    model_config = ConfigDict(extra="allow")
    result_type: Literal["task"] = "task"
    task_id: str
    status: str


async def _never_resolved(result: CreateTaskResult, context: ClaimContext) -> types.CallToolResult:
    # The gateway relays a task to its caller, who polls it; it never waits for one itself.
    raise MCPError(
        types.INTERNAL_ERROR, "the gateway does not resolve tasks", {"reason": reasons.INTERNAL_ERROR}
    )


class TasksRelay(ClientExtension):
    """What an upstream connection needs to accept `resultType: "task"` on `tools/call`.

    The SDK advertises an extension with claims in the connection's own capabilities; the
    upstream connection takes that ad out again unless the calling client declared the
    extension (upstream/connection.py), so the gateway never asks for tasks on its own behalf.
    """

    identifier = TASKS_EXTENSION

    def claims(self) -> tuple[ResultClaim[Any], ...]:
        return (ResultClaim(result_type="task", model=CreateTaskResult, resolve=_never_resolved),)


def relayable_task_id(task_id: str) -> bool:
    """Whether an upstream's task id may be relayed: a bounded token of printable ASCII."""
    return _TASK_ID.fullmatch(task_id) is not None


def task_id_of(result: Any) -> str | None:
    """The task id a relayed `tools/call` result creates: the `taskId` of a `CreateTaskResult`
    (`resultType: "task"`), which the gateway has exposed as `S<sep><id>`; None for any other result.

    Only that field: every other one is the upstream's, as it sent it. A 2025-11-25 `task.taskId`
    in particular is never namespaced (the gateway relays no 2025 task creation), so an upstream
    that added one to its `CreateTaskResult` would hand the caller any task id of any server.
    """
    if not isinstance(result, dict) or result.get("resultType") != "task":
        return None
    task_id = result.get("taskId")
    return task_id if isinstance(task_id, str) else None
