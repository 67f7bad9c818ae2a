"""The tasks extension (`io.modelcontextprotocol/tasks`, SEP-2663) for the conformance fixture.

Built on the SDK's extension interface (SEP-2133): `tasks/get`, `tasks/update` and `tasks/cancel`
are extension methods, and task creation is a `tools/call` interceptor. A tool registered here as
a job is run as a task when the request declares the extension in
`_meta["io.modelcontextprotocol/clientCapabilities"].extensions`; otherwise the call falls through
to the tool's ordinary synchronous registration (`optional`), or is refused with -32021
(`required`). The task surface answers only requests that declare the extension (-32021 too).

Task state lives in this process, in memory, for `TTL_MS`: this is a test fixture, not a server to
copy. Jobs run as asyncio tasks on the server's loop; a job that needs input parks the task in
`input_required` with its `inputRequests` until `tasks/update` answers every key.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from mcp.server import ServerRequestContext
from mcp.server.context import CallNext, HandlerResult
from mcp.server.mcpserver import Extension, MethodBinding
from mcp.shared.exceptions import MCPError
from mcp.types import (
    HEADER_MISMATCH,
    INTERNAL_ERROR,
    INVALID_PARAMS,
    MISSING_REQUIRED_CLIENT_CAPABILITY,
    CallToolRequestParams,
    RequestParams,
)
from pydantic import ConfigDict

TASKS = "io.modelcontextprotocol/tasks"
TTL_MS = 10 * 60 * 1000
POLL_INTERVAL_MS = 100
TERMINAL = frozenset({"completed", "failed", "cancelled"})

TaskSupport = Literal["optional", "required"]


class TaskParams(RequestParams):
    """Params of `tasks/*`: the task id, and for `tasks/update` the answers (kept as sent)."""

    model_config = ConfigDict(extra="allow")
    taskId: str


class JobFailed(Exception):
    """A protocol-level failure of a job: the task ends `failed` with this JSON-RPC error."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Task:
    task_id: str
    created: str
    updated: str
    status: str = "working"
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    pending: dict[str, Any] = field(default_factory=dict)  # key -> input request (wire form)
    answers: dict[str, Any] = field(default_factory=dict)
    answered: asyncio.Event = field(default_factory=asyncio.Event)
    runner: asyncio.Task[None] | None = None
    expires: float = 0.0

    def touch(self, status: str | None = None) -> None:
        if status is not None:
            self.status = status
        self.updated = _now()

    async def ask(self, requests: Mapping[str, Any]) -> dict[str, Any]:
        """Park the task until every one of `requests` (key -> wire input request) is answered."""
        self.pending = dict(requests)
        self.answered = asyncio.Event()
        self.touch("input_required")
        await self.answered.wait()
        answers = {key: self.answers.pop(key) for key in requests if key in self.answers}
        self.touch("working")
        return answers

    def wire(self) -> dict[str, Any]:
        """The task as `CreateTaskResult` fields (flat: no `task` wrapper, no `requestState`)."""
        return {
            "taskId": self.task_id,
            "status": self.status,
            "createdAt": self.created,
            "lastUpdatedAt": self.updated,
            "ttlMs": TTL_MS,
            "pollIntervalMs": POLL_INTERVAL_MS,
        }


Job = Callable[[dict[str, Any], Task], Awaitable[dict[str, Any]]]
# Decides, for one call, whether it becomes a task: (params, ctx) -> a job, or None (answer in line).
Escalation = Callable[[CallToolRequestParams, ServerRequestContext[Any, Any]], Awaitable[Job | None]]


@dataclass(frozen=True)
class _Registration:
    support: TaskSupport
    job: Job | None = None
    escalate: Escalation | None = None


class TasksExtension(Extension):
    identifier = TASKS

    def __init__(self) -> None:
        self._tools: dict[str, _Registration] = {}
        self._tasks: dict[str, Task] = {}

    # -- registration ----------------------------------------------------------------------------

    def job(self, names: Sequence[str], support: TaskSupport = "optional") -> Callable[[Job], Job]:
        """Run these tools as tasks with this job when the caller declared the extension."""

        def register(job: Job) -> Job:
            for name in names:
                self._tools[name] = _Registration(support, job=job)
            return job

        return register

    def escalation(
        self, names: Sequence[str], support: TaskSupport = "required"
    ) -> Callable[[Escalation], Escalation]:
        """Tools that answer in line (e.g. an MRTR round) until the escalation hands back a job."""

        def register(escalate: Escalation) -> Escalation:
            for name in names:
                self._tools[name] = _Registration(support, escalate=escalate)
            return escalate

        return register

    # -- the extension interface -----------------------------------------------------------------

    def methods(self) -> Sequence[MethodBinding]:
        return (
            MethodBinding("tasks/get", TaskParams, self._get),
            MethodBinding("tasks/update", TaskParams, self._update),
            MethodBinding("tasks/cancel", TaskParams, self._cancel),
        )

    async def intercept_tool_call(
        self, params: CallToolRequestParams, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        registration = self._tools.get(params.name)
        if registration is None:
            return await call_next(ctx)
        if not declares_tasks(ctx):
            if registration.support == "required":
                raise missing_tasks_capability(f"tool {params.name!r} runs only as a task")
            return await call_next(ctx)  # no declaration: the ordinary synchronous tool
        job = registration.job
        if registration.escalate is not None:
            job = await registration.escalate(params, ctx)
            if job is None:
                return await call_next(ctx)
        assert job is not None
        task = self._start(job, dict(params.arguments or {}))
        return {"resultType": "task", **task.wire()}

    # -- tasks/* ---------------------------------------------------------------------------------

    async def _get(self, ctx: ServerRequestContext[Any, Any], params: TaskParams) -> dict[str, Any]:
        task = self._task(ctx, params)
        detailed: dict[str, Any] = {"resultType": "complete", **task.wire()}
        if task.status == "input_required":
            detailed["inputRequests"] = dict(task.pending)
        elif task.status == "completed" and task.result is not None:
            detailed["result"] = task.result
        elif task.status == "failed" and task.error is not None:
            detailed["error"] = task.error
        return detailed

    async def _update(self, ctx: ServerRequestContext[Any, Any], params: TaskParams) -> dict[str, Any]:
        task = self._task(ctx, params)
        responses = (params.model_extra or {}).get("inputResponses")
        if not isinstance(responses, dict):
            raise MCPError(INVALID_PARAMS, "tasks/update needs inputResponses")
        for key, answer in responses.items():
            if key in task.pending:  # answers to keys never asked are ignored
                task.pending.pop(key)
                task.answers[key] = answer
        if task.status == "input_required" and not task.pending:
            task.answered.set()
        return {"resultType": "complete"}

    async def _cancel(self, ctx: ServerRequestContext[Any, Any], params: TaskParams) -> dict[str, Any]:
        task = self._task(ctx, params)
        if task.status not in TERMINAL:
            task.touch("cancelled")
            if task.runner is not None:
                task.runner.cancel()
        return {"resultType": "complete"}  # idempotent on a terminal task

    # -- internals -------------------------------------------------------------------------------

    def _task(self, ctx: ServerRequestContext[Any, Any], params: TaskParams) -> Task:
        if not declares_tasks(ctx):
            raise missing_tasks_capability(f"{ctx.method} needs the tasks extension")
        _check_name_header(ctx, params.taskId)
        self._expire()
        task = self._tasks.get(params.taskId)
        if task is None:
            raise MCPError(INVALID_PARAMS, f"unknown task {params.taskId!r}")
        return task

    def _start(self, job: Job, arguments: dict[str, Any]) -> Task:
        now = _now()
        task = Task(uuid.uuid4().hex, now, now, expires=time.monotonic() + TTL_MS / 1000)
        # Registered before the answer goes out: a tasks/get right after it must find the task.
        self._tasks[task.task_id] = task
        task.runner = asyncio.get_running_loop().create_task(self._run(job, arguments, task))
        return task

    async def _run(self, job: Job, arguments: dict[str, Any], task: Task) -> None:
        try:
            result = await job(arguments, task)
        except asyncio.CancelledError:
            task.touch("cancelled")
            return
        except JobFailed as exc:
            task.error = {"code": exc.code, "message": exc.message}
            task.touch("failed")
            return
        except Exception as exc:  # a crash of the job is a protocol-level failure, not a tool error
            task.error = {"code": INTERNAL_ERROR, "message": f"job crashed: {type(exc).__name__}"}
            task.touch("failed")
            return
        if task.status != "cancelled":
            task.result = result
            task.touch("completed")

    def _expire(self) -> None:
        now = time.monotonic()
        for task_id in [t for t, task in self._tasks.items() if task.expires < now]:
            del self._tasks[task_id]


def declares_tasks(ctx: ServerRequestContext[Any, Any]) -> bool:
    """Whether this request's client capabilities (per request, in `_meta`) name the extension."""
    capabilities = ctx.session.client_capabilities
    return bool(capabilities is not None and capabilities.extensions and TASKS in capabilities.extensions)


def _check_name_header(ctx: ServerRequestContext[Any, Any], task_id: str) -> None:
    """SEP-2663 routes `tasks/*` by `Mcp-Name: <taskId>`; a header that names another task is a
    mismatch (-32020). The SDK validates the header only for the core methods."""
    headers = getattr(ctx.request, "headers", None)
    named = headers.get("mcp-name") if headers is not None else None
    if named is not None and named.strip() != task_id:
        raise MCPError(HEADER_MISMATCH, "Mcp-Name does not match params.taskId")


def missing_tasks_capability(message: str) -> MCPError:
    return MCPError(
        MISSING_REQUIRED_CLIENT_CAPABILITY,
        message,
        {"requiredCapabilities": {"extensions": {TASKS: {}}}},
    )


def text_result(text: str, *, is_error: bool = False) -> dict[str, Any]:
    """A `CallToolResult` as inlined on `tasks/get` (no related-task `_meta`): the shape `MCPServer`
    gives a tool returning `str` (text, and the same text as `{"result": ...}` unless an error)."""
    if is_error:
        return {"content": [{"type": "text", "text": text}], "isError": True}
    return {
        "content": [{"type": "text", "text": text}],
        "structuredContent": {"result": text},
        "isError": False,
    }


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
