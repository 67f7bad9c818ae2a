"""Fixture upstream for the official MCP conformance suite (server mode).

The suite's server scenarios look for fixed names (`test_simple_text`, `test://static-text`,
`test_simple_prompt`, ...). This server exposes them, built with the `mcp` SDK's `MCPServer`, so
`conformance/run.sh` can run the suite once against it directly and once through `mcpwarden serve`
and compare the two.

Gateway aliases: mcpwarden exposes server S's tool `name` as `S<sep>name`. run.sh therefore puts
this fixture behind the gateway as server `test` with separator `_`, and every `test_*` tool and
prompt is also registered here without its `test_` prefix: the gateway then exposes that alias
as exactly the name the suite asks for (`test` + `_` + `simple_text`), routed to this same process.
The direct run sees the aliases too, so both runs talk to one identical upstream. Resource URIs
cannot be aliased this way (the gateway rewrites them to `mcpwarden://test/<uri>`).

Usage: python conformance/everything_server.py PORT   (serves http://127.0.0.1:PORT/mcp)
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import logging
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from mcp.server import ServerRequestContext
from mcp.server.mcpserver import Context, MCPServer, RequestStateSecurity
from mcp.server.mcpserver.prompts.base import Prompt, UserMessage
from mcp.server.streamable_http import EventCallback, EventMessage, EventStore
from mcp.shared.exceptions import MCPError
from mcp.types import (
    MISSING_REQUIRED_CLIENT_CAPABILITY,
    AudioContent,
    Completion,
    CompletionArgument,
    CompletionContext,
    CreateMessageRequest,
    CreateMessageRequestParams,
    CreateMessageResult,
    ElicitRequest,
    ElicitRequestFormParams,
    ElicitResult,
    EmbeddedResource,
    EmptyResult,
    ImageContent,
    InputRequest,
    InputRequiredResult,
    JSONRPCMessage,
    ListRootsRequest,
    ListRootsResult,
    PromptReference,
    ResourceTemplateReference,
    SamplingMessage,
    SetLevelRequestParams,
    SubscribeRequestParams,
    TextContent,
    TextResourceContents,
    UnsubscribeRequestParams,
)
from pydantic import BaseModel, Field
from tasks_extension import JobFailed, Task, TasksExtension, text_result

logger = logging.getLogger("everything_server")

F = TypeVar("F", bound=Callable[..., Any])

ALIAS_PREFIX = "test_"

# A 1x1 PNG and a minimal WAV: the suite only checks type, mimeType and non-empty base64 data.
IMAGE_B64 = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8DwHwAFBQIAX8jx0gAAAABJRU5ErkJggg=="
AUDIO_B64 = "UklGRiYAAABXQVZFZm10IBAAAAABAAEAQB8AAAB9AAACABAAZGF0YQIAAAA="

# Fixed test key: request-state sealing needs >= 32 bytes; nothing secret is protected by it.
REQUEST_STATE_KEY = b"mcpwarden-conformance-fixture-request-state-key"

NAME_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"name": {"type": "string"}},
    "required": ["name"],
}
CONFIRM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"ok": {"type": "boolean"}},
    "required": ["ok"],
}


class MemoryEventStore(EventStore):
    """Keeps SSE events in memory so the SSE polling / reconnection scenarios can resume."""

    def __init__(self) -> None:
        self._events: list[tuple[str, str, JSONRPCMessage | None]] = []
        self._next = 0

    async def store_event(self, stream_id: str, message: JSONRPCMessage | None) -> str:
        self._next += 1
        self._events.append((stream_id, str(self._next), message))
        return str(self._next)

    async def replay_events_after(self, last_event_id: str, send_callback: EventCallback) -> str | None:
        stream = next((s for s, e, _ in self._events if e == last_event_id), None)
        if stream is None:
            return None
        after = int(last_event_id)
        for stream_id, event_id, message in self._events:
            # Priming events carry no message and must not be replayed.
            if stream_id == stream and int(event_id) > after and message is not None:
                await send_callback(EventMessage(message, event_id))
        return stream


tasks = TasksExtension()
mcp = MCPServer(
    name="mcpwarden-conformance-fixture",
    version="0.1.0",
    request_state_security=RequestStateSecurity(keys=[REQUEST_STATE_KEY]),
    extensions=[tasks],
)


def tool(name: str) -> Callable[[F], F]:
    """Register a tool under `name` and, for the gateway run, under `name` minus `test_`."""

    def register(fn: F) -> F:
        mcp.tool(name=name)(fn)
        if name.startswith(ALIAS_PREFIX):
            mcp.tool(name=name.removeprefix(ALIAS_PREFIX))(fn)
        return fn

    return register


def prompt(name: str) -> Callable[[F], F]:
    """Register a prompt under `name` and its gateway alias, as `tool` does."""

    def register(fn: F) -> F:
        mcp.prompt(name=name)(fn)
        if name.startswith(ALIAS_PREFIX):
            mcp.prompt(name=name.removeprefix(ALIAS_PREFIX))(fn)
        return fn

    return register


# --- tools: content types -------------------------------------------------------------------


@tool("test_simple_text")
def simple_text() -> str:
    """Tests simple text content response"""
    return "This is a simple text response for testing."


@tool("test_image_content")
def image_content() -> list[ImageContent]:
    """Tests image content response"""
    return [ImageContent(type="image", data=IMAGE_B64, mime_type="image/png")]


@tool("test_audio_content")
def audio_content() -> list[AudioContent]:
    """Tests audio content response"""
    return [AudioContent(type="audio", data=AUDIO_B64, mime_type="audio/wav")]


@tool("test_embedded_resource")
def embedded_resource() -> list[EmbeddedResource]:
    """Tests embedded resource content response"""
    return [
        EmbeddedResource(
            type="resource",
            resource=TextResourceContents(
                uri="test://embedded-resource",
                mime_type="text/plain",
                text="This is an embedded resource content.",
            ),
        )
    ]


@tool("test_multiple_content_types")
def multiple_content_types() -> list[TextContent | ImageContent | EmbeddedResource]:
    """Tests response with multiple content types (text, image, resource)"""
    return [
        TextContent(type="text", text="Multiple content types test:"),
        ImageContent(type="image", data=IMAGE_B64, mime_type="image/png"),
        EmbeddedResource(
            type="resource",
            resource=TextResourceContents(
                uri="test://mixed-content-resource",
                mime_type="application/json",
                text='{"test": "data", "value": 123}',
            ),
        ),
    ]


@tool("test_error_handling")
def error_handling() -> str:
    """Tests error response handling"""
    raise RuntimeError("This tool intentionally returns an error for testing")


# --- tools: notifications during a call -------------------------------------------------------


@tool("test_tool_with_logging")
async def tool_with_logging(ctx: Context) -> str:
    """Tests tool that emits log messages during execution"""
    for message in ("Tool execution started", "Tool processing data", "Tool execution completed"):
        await ctx.info(message)
        await asyncio.sleep(0.05)
    return "Tool with logging executed successfully"


@tool("test_logging_tool")
async def logging_tool(ctx: Context) -> str:
    """Logs once; the SDK must drop it unless the request's _meta set a log level (SEP-2575)"""
    await ctx.info("Diagnostic trace logging activated")
    return "Logging evaluated"


@tool("test_tool_with_progress")
async def tool_with_progress(ctx: Context) -> str:
    """Tests tool that reports progress notifications"""
    for step in (0, 50, 100):
        await ctx.report_progress(progress=step, total=100, message=f"Completed step {step} of 100")
        await asyncio.sleep(0.05)
    meta = ctx.request_context.meta if ctx.request_context else None
    return str(meta.get("progress_token") if meta else 0)


@tool("test_streaming_elicitation")
async def streaming_elicitation(ctx: Context) -> str:
    """Streams a progress notification, never an independent request, on the response stream"""
    await ctx.report_progress(progress=50, total=100)
    return "Streaming complete"


@tool("test_reconnection")
async def reconnection(ctx: Context) -> str:
    """Tests SSE polling by closing the stream mid-call (SEP-1699)"""
    await ctx.info("Before disconnect")
    await ctx.close_sse_stream()
    await asyncio.sleep(0.2)  # the client reconnects with Last-Event-ID meanwhile
    await ctx.info("After reconnect")
    return "Reconnection test completed"


# --- tools: server-to-client requests (legacy era) -------------------------------------------


@tool("test_sampling")
async def sampling(prompt: str, ctx: Context) -> str:
    """Tests server-initiated sampling (LLM completion request)"""
    try:
        # related_request_id keeps the request on this call's stream; the standalone GET stream
        # may not be open yet and the request would be lost.
        result = await ctx.session.create_message(
            messages=[SamplingMessage(role="user", content=TextContent(type="text", text=prompt))],
            max_tokens=100,
            related_request_id=ctx.request_id,
        )
    except Exception as exc:
        return f"Sampling not supported or error: {exc}"
    text = result.content.text if result.content.type == "text" else "No response"
    return f"LLM response: {text}"


class UserResponse(BaseModel):
    response: str = Field(description="User's response")


@tool("test_elicitation")
async def elicitation(message: str, ctx: Context) -> str:
    """Tests server-initiated elicitation (user input request)"""
    try:
        result = await ctx.elicit(message=message, schema=UserResponse)
    except Exception as exc:
        return f"Elicitation not supported or error: {exc}"
    content = result.data.model_dump_json() if result.action == "accept" else "{}"
    return f"User response: action={result.action}, content={content}"


class DefaultsSchema(BaseModel):
    """SEP-1034: a default for every primitive type."""

    name: str = Field(default="John Doe", description="User name")
    age: int = Field(default=30, description="User age")
    score: float = Field(default=95.5, description="User score")
    status: str = Field(
        default="active",
        description="User status",
        json_schema_extra={"enum": ["active", "inactive", "pending"]},
    )
    verified: bool = Field(default=True, description="Verification status")


@tool("test_elicitation_sep1034_defaults")
async def elicitation_defaults(ctx: Context) -> str:
    """Tests elicitation with default values for all primitive types (SEP-1034)"""
    try:
        result = await ctx.elicit(message="Please provide user information", schema=DefaultsSchema)
    except Exception as exc:
        return f"Elicitation not supported or error: {exc}"
    content = result.data.model_dump_json() if result.action == "accept" else "{}"
    return f"Elicitation result: action={result.action}, content={content}"


class EnumsSchema(BaseModel):
    """SEP-1330: every enum schema variation."""

    untitledSingle: str = Field(
        description="Simple enum without titles",
        json_schema_extra={"enum": ["active", "inactive", "pending"]},
    )
    titledSingle: str = Field(
        description="Enum with titled options (oneOf)",
        json_schema_extra={
            "oneOf": [
                {"const": "low", "title": "Low Priority"},
                {"const": "medium", "title": "Medium Priority"},
                {"const": "high", "title": "High Priority"},
            ]
        },
    )
    untitledMulti: list[str] = Field(
        description="Multi-select without titles",
        json_schema_extra={"items": {"type": "string", "enum": ["read", "write", "execute"]}},
    )
    titledMulti: list[str] = Field(
        description="Multi-select with titled options",
        json_schema_extra={
            "items": {
                "anyOf": [
                    {"const": "feature", "title": "New Feature"},
                    {"const": "bug", "title": "Bug Fix"},
                    {"const": "docs", "title": "Documentation"},
                ]
            }
        },
    )
    legacyEnum: str = Field(
        description="Legacy enum with enumNames",
        json_schema_extra={
            "enum": ["small", "medium", "large"],
            "enumNames": ["Small Size", "Medium Size", "Large Size"],
        },
    )


@tool("test_elicitation_sep1330_enums")
async def elicitation_enums(ctx: Context) -> str:
    """Tests elicitation with enum schema variations per SEP-1330"""
    try:
        result = await ctx.elicit(
            message="Please select values using different enum schema types", schema=EnumsSchema
        )
    except Exception as exc:
        return f"Elicitation not supported or error: {exc}"
    content = result.data.model_dump_json() if result.action == "accept" else "{}"
    return f"Elicitation completed: action={result.action}, content={content}"


# --- tools: 2026-07-28 specifics -----------------------------------------------------------------


@tool("test_x_mcp_header")
def x_mcp_header(
    region: Annotated[
        str,
        Field(
            description="Mirrored into the Mcp-Param-Region header",
            json_schema_extra={"x-mcp-header": "Region"},
        ),
    ] = "<none>",
) -> str:
    """Arms the SEP-2243 Mcp-Param-* server validation scenario"""
    return f"region={region}"


@tool("test_missing_capability")
async def missing_capability(ctx: Context) -> str:
    """Needs the client's sampling capability; without it, a top-level -32021 error"""
    caps = ctx.session.client_capabilities
    if caps is None or caps.sampling is None:
        # MCPError is re-raised by tool dispatch (not wrapped in isError), as the suite requires.
        raise MCPError(
            code=MISSING_REQUIRED_CLIENT_CAPABILITY,
            message="This tool requires the client 'sampling' capability",
            data={"requiredCapabilities": {"sampling": {}}},
        )
    return "Client declared sampling capability; proceeding."


def _dynamic() -> str:
    """Registered and removed again by the list-changed triggers."""
    return "dynamic"


@tool("test_trigger_tool_change")
async def trigger_tool_change(ctx: Context) -> str:
    """Mutates the tool list and announces it on subscriptions/listen streams (SEP-2575)"""
    mcp.add_tool(_dynamic, name="test_dynamic_tool")
    mcp.remove_tool("test_dynamic_tool")
    await ctx.notify_tools_changed()
    return "tool list changed"


@tool("test_trigger_prompt_change")
async def trigger_prompt_change(ctx: Context) -> str:
    """Mutates the prompt list and announces it on subscriptions/listen streams (SEP-2575)"""
    mcp.add_prompt(Prompt.from_function(_dynamic, name="test_dynamic_prompt", description="dynamic"))
    mcp.remove_prompt("test_dynamic_prompt")
    await ctx.notify_prompts_changed()
    return "prompt list changed"


# SEP-1613: a tool whose inputSchema carries the JSON Schema 2020-12 keywords the suite looks for.
# Its name has no `test_` prefix, so the gateway run cannot reach it under the suite's name.
JSON_SCHEMA_2020_12: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "$defs": {
        "address": {
            "$anchor": "addressDef",
            "type": "object",
            "properties": {"street": {"type": "string"}, "city": {"type": "string"}},
        }
    },
    "properties": {
        "name": {"type": "string"},
        "address": {"$ref": "#/$defs/address"},
        "contactMethod": {"type": "string", "enum": ["phone", "email"]},
        "phone": {"type": "string"},
        "email": {"type": "string"},
    },
    "allOf": [{"anyOf": [{"required": ["phone"]}, {"required": ["email"]}]}],
    "if": {"properties": {"contactMethod": {"const": "phone"}}, "required": ["contactMethod"]},
    "then": {"required": ["phone"]},
    "else": {"required": ["email"]},
    "additionalProperties": False,
}


@mcp.tool(name="json_schema_2020_12_tool")
def json_schema_2020_12_tool() -> str:
    """Tests JSON Schema 2020-12 keyword preservation in tools/list"""
    return "json_schema_2020_12_tool"


# MCPServer derives inputSchema from the signature and has no override yet; replace it in place.
mcp._tool_manager._tools["json_schema_2020_12_tool"].parameters = JSON_SCHEMA_2020_12


# --- tools: SEP-2322 multi round-trip (InputRequiredResult) ------------------------------------


def _ask_name(message: str = "What is your name?") -> ElicitRequest:
    return ElicitRequest(params=ElicitRequestFormParams(message=message, requested_schema=NAME_SCHEMA))


def _sample(text: str, max_tokens: int) -> CreateMessageRequest:
    return CreateMessageRequest(
        params=CreateMessageRequestParams(
            messages=[SamplingMessage(role="user", content=TextContent(type="text", text=text))],
            max_tokens=max_tokens,
        )
    )


def _confirm() -> ElicitRequest:
    return ElicitRequest(
        params=ElicitRequestFormParams(message="Please confirm", requested_schema=CONFIRM_SCHEMA)
    )


@tool("test_input_required_result_elicitation")
async def irr_elicitation(ctx: Context) -> str | InputRequiredResult:
    """Tests InputRequiredResult with a single elicitation request"""
    answer = (ctx.input_responses or {}).get("user_name")
    if answer is not None:
        name = (
            answer.content.get("name", "stranger")
            if isinstance(answer, ElicitResult) and answer.content
            else "?"
        )
        return f"Hello, {name}!"
    return InputRequiredResult(input_requests={"user_name": _ask_name()})


@tool("test_input_required_result_sampling")
async def irr_sampling(ctx: Context) -> str | InputRequiredResult:
    """Tests InputRequiredResult with a single sampling request"""
    answer = (ctx.input_responses or {}).get("capital_question")
    if answer is not None:
        ok = isinstance(answer, CreateMessageResult) and answer.content.type == "text"
        return f"Model said: {answer.content.text if ok else '?'}"  # type: ignore[union-attr]
    return InputRequiredResult(
        input_requests={"capital_question": _sample("What is the capital of France?", 100)}
    )


@tool("test_input_required_result_list_roots")
async def irr_list_roots(ctx: Context) -> str | InputRequiredResult:
    """Tests InputRequiredResult with a single roots/list request"""
    answer = (ctx.input_responses or {}).get("client_roots")
    if answer is not None:
        count = len(answer.roots) if isinstance(answer, ListRootsResult) else 0
        return f"Client exposed {count} root(s)."
    return InputRequiredResult(input_requests={"client_roots": ListRootsRequest()})


@tool("test_input_required_result_request_state")
async def irr_request_state(ctx: Context) -> str | InputRequiredResult:
    """Tests requestState round-tripping in the InputRequiredResult flow"""
    if "confirm" in (ctx.input_responses or {}) and ctx.request_state == "request-state-nonce":
        return "state-ok: confirmation received"
    return InputRequiredResult(input_requests={"confirm": _confirm()}, request_state="request-state-nonce")


@tool("test_input_required_result_multiple_inputs")
async def irr_multiple_inputs(ctx: Context) -> str | InputRequiredResult:
    """Tests InputRequiredResult carrying elicitation, sampling and roots requests together"""
    if {"user_name", "greeting", "client_roots"} <= (ctx.input_responses or {}).keys():
        return "All inputs received."
    return InputRequiredResult(
        input_requests={
            "user_name": _ask_name(),
            "greeting": _sample("Generate a greeting", 50),
            "client_roots": ListRootsRequest(),
        },
        request_state="multiple-inputs",
    )


@tool("test_input_required_result_multi_round")
async def irr_multi_round(ctx: Context) -> str | InputRequiredResult:
    """Tests a three-round InputRequiredResult flow with evolving requestState"""
    state: dict[str, Any] = json.loads(ctx.request_state) if ctx.request_state else {"round": 0}
    responses = ctx.input_responses or {}
    step1 = _ask_name("Step 1: What is your name?")
    if state["round"] == 1 and "step1" in responses:
        answer = responses["step1"]
        name = answer.content.get("name") if isinstance(answer, ElicitResult) and answer.content else None
        color = {"type": "object", "properties": {"color": {"type": "string"}}, "required": ["color"]}
        ask_color = ElicitRequest(
            params=ElicitRequestFormParams(
                message="Step 2: What is your favorite color?", requested_schema=color
            )
        )
        return InputRequiredResult(
            input_requests={"step2": ask_color}, request_state=json.dumps({"round": 2, "name": name})
        )
    if state["round"] == 2 and "step2" in responses:
        answer = responses["step2"]
        picked = answer.content.get("color") if isinstance(answer, ElicitResult) and answer.content else None
        return f"{state.get('name')} likes {picked}."
    # First round, or a missing / out-of-order answer: start over.
    return InputRequiredResult(input_requests={"step1": step1}, request_state=json.dumps({"round": 1}))


@tool("test_input_required_result_tampered_state")
async def irr_tampered_state(ctx: Context) -> str | InputRequiredResult:
    """The SDK's request-state boundary rejects a tampered echo before this handler runs"""
    if ctx.request_state is None:
        return InputRequiredResult(input_requests={"confirm": _confirm()}, request_state="round-1")
    return f"state-ok: {ctx.request_state}"


@tool("test_input_required_result_capabilities")
async def irr_capabilities(ctx: Context) -> InputRequiredResult:
    """Asks only for inputs whose methods the client declared"""
    caps = ctx.client_capabilities
    requests: dict[str, InputRequest] = {}
    if caps is None or caps.sampling is not None:
        requests["sample"] = _sample("Say hello", 50)
    if caps is None or caps.elicitation is not None:
        requests["ask"] = _ask_name()
    return InputRequiredResult(input_requests=requests, request_state="capability-gated")


# --- resources (URIs are fixed by the suite, so they have no gateway alias) -------------------


@mcp.resource("test://static-text")
def static_text() -> str:
    """A static text resource for testing"""
    return "This is the content of the static text resource."


@mcp.resource("test://static-binary")
def static_binary() -> bytes:
    """A static binary resource (image) for testing"""
    return base64.b64decode(IMAGE_B64)


@mcp.resource("test://template/{id}/data")
def template_data(id: str) -> str:
    """A resource template with parameter substitution"""
    return json.dumps({"id": id, "templateTest": True, "data": f"Data for ID: {id}"})


@mcp.resource("test://watched-resource")
def watched() -> str:
    """A resource that can be subscribed to for updates"""
    return "Watched resource content"


# --- prompts -----------------------------------------------------------------------------------


@prompt("test_simple_prompt")
def simple_prompt() -> list[UserMessage]:
    """A simple prompt without arguments"""
    return [UserMessage(content=TextContent(type="text", text="This is a simple prompt for testing."))]


@prompt("test_prompt_with_arguments")
def prompt_with_arguments(arg1: str, arg2: str) -> list[UserMessage]:
    """A prompt with required arguments"""
    text = f"Prompt with arguments: arg1='{arg1}', arg2='{arg2}'"
    return [UserMessage(content=TextContent(type="text", text=text))]


@prompt("test_prompt_with_embedded_resource")
def prompt_with_embedded_resource(resourceUri: str) -> list[UserMessage]:
    """A prompt that includes an embedded resource"""
    embedded = TextResourceContents(
        uri=resourceUri, mime_type="text/plain", text="Embedded resource content for testing."
    )
    return [
        UserMessage(content=EmbeddedResource(type="resource", resource=embedded)),
        UserMessage(content=TextContent(type="text", text="Please process the embedded resource above.")),
    ]


@prompt("test_prompt_with_image")
def prompt_with_image() -> list[UserMessage]:
    """A prompt that includes image content"""
    return [
        UserMessage(content=ImageContent(type="image", data=IMAGE_B64, mime_type="image/png")),
        UserMessage(content=TextContent(type="text", text="Please analyze the image above.")),
    ]


@prompt("test_input_required_result_prompt")
async def irr_prompt(ctx: Context) -> list[UserMessage] | InputRequiredResult:
    """Tests InputRequiredResult from prompts/get (SEP-2322 non-tool request)"""
    answer = (ctx.input_responses or {}).get("user_context")
    if answer is not None:
        text = (
            answer.content.get("context", "?") if isinstance(answer, ElicitResult) and answer.content else "?"
        )
        return [UserMessage(content=TextContent(type="text", text=f"Use the following context: {text}"))]
    schema = {"type": "object", "properties": {"context": {"type": "string"}}, "required": ["context"]}
    ask = ElicitRequest(
        params=ElicitRequestFormParams(message="What context should the prompt use?", requested_schema=schema)
    )
    return InputRequiredResult(input_requests={"user_context": ask})


# --- the tasks extension (SEP-2663): tools of the tasks-* scenarios --------------------------
# Each is an ordinary tool (listed, and run in line for a caller without the extension) and, in
# `tasks`, a job run as a task for a caller that declared it (tasks_extension.py).
#
# Gateway aliases: these names have no `test_` prefix, so run.sh also configures this fixture as
# servers `slow`, `failing`, `protocol`, `confirm` and `multi`, and each tool is registered a
# second time under the rest of its name: the gateway exposes `slow` + `_` + `compute` as exactly
# `slow_compute`. `greet` has no separator to split on and cannot be aliased (naming-gaps.yml).
TASK_ALIASES = {
    "slow_compute": "compute",
    "failing_job": "job",
    "protocol_error_job": "error_job",
    "confirm_delete": "delete",
    "multi_input": "input",
}


def _task_names(name: str) -> list[str]:
    return [name, TASK_ALIASES[name]]


def task_tool(name: str) -> Callable[[F], F]:
    """Register a tasks-scenario tool under `name` and its gateway alias."""

    def register(fn: F) -> F:
        for each in _task_names(name):
            mcp.tool(name=each)(fn)
        return fn

    return register


@mcp.tool(name="greet")
def greet(name: str) -> str:
    """Sync-only: greets at once, never as a task"""
    return f"Hello, {name}!"


def _computed(seconds: float, label: str) -> str:
    return f"computed {label!r} after {seconds:g}s"


@task_tool("slow_compute")
async def slow_compute(seconds: float = 1.0, label: str = "") -> str:
    """Sleeps `seconds`, then reports the label; a task when the caller declared the extension"""
    await asyncio.sleep(seconds)
    return _computed(seconds, label)


@tasks.job(_task_names("slow_compute"))
async def slow_compute_job(arguments: dict[str, Any], task: Task) -> dict[str, Any]:
    seconds = float(arguments.get("seconds", 1.0))
    await asyncio.sleep(seconds)  # a tasks/cancel cancels this sleep: the task ends `cancelled`
    return text_result(_computed(seconds, str(arguments.get("label", ""))))


@task_tool("failing_job")
def failing_job() -> str:
    """Task support required: a tool execution error after about a second"""
    raise ValueError("failing_job always fails")


@tasks.job(_task_names("failing_job"), support="required")
async def failing_job_task(arguments: dict[str, Any], task: Task) -> dict[str, Any]:
    await asyncio.sleep(1.0)
    return text_result("failing_job always fails", is_error=True)


@task_tool("protocol_error_job")
def protocol_error_job() -> str:
    """Fails at the protocol level (a JSON-RPC error, or a `failed` task)"""
    raise MCPError(code=-32603, message="protocol_error_job failed")


@tasks.job(_task_names("protocol_error_job"))
async def protocol_error_job_task(arguments: dict[str, Any], task: Task) -> dict[str, Any]:
    await asyncio.sleep(0.2)
    raise JobFailed(-32603, "protocol_error_job failed")


def _confirmation(message: str, field: str = "confirm") -> dict[str, Any]:
    schema = {"type": "object", "properties": {field: {"type": "boolean"}}, "required": [field]}
    return ElicitRequest(params=ElicitRequestFormParams(message=message, requested_schema=schema)).model_dump(
        by_alias=True, mode="json", exclude_none=True
    )


@task_tool("confirm_delete")
def confirm_delete(filename: str) -> str:
    """Task support required: asks the user to confirm (elicitation through tasks/update)"""
    raise ValueError("confirm_delete runs only as a task")


@tasks.job(_task_names("confirm_delete"), support="required")
async def confirm_delete_task(arguments: dict[str, Any], task: Task) -> dict[str, Any]:
    filename = str(arguments.get("filename", "?"))
    answers = await task.ask({"confirm": _confirmation(f"Delete {filename}?")})
    accepted = (answers.get("confirm") or {}).get("action") == "accept"
    return text_result(f"deleted {filename}" if accepted else f"kept {filename}")


@task_tool("multi_input")
def multi_input() -> str:
    """Task support required: asks two questions at once"""
    raise ValueError("multi_input runs only as a task")


@tasks.job(_task_names("multi_input"), support="required")
async def multi_input_task(arguments: dict[str, Any], task: Task) -> dict[str, Any]:
    answers = await task.ask({"first": _confirmation("First?"), "second": _confirmation("Second?")})
    return text_result(f"answered {', '.join(sorted(answers))}")


@tool("test_tool_with_task")
def tool_with_task() -> InputRequiredResult:
    """Task support required: asks for a name (MRTR), then escalates to a task that greets it"""
    return InputRequiredResult(input_requests={"user_name": _ask_name()})


@tasks.escalation(["test_tool_with_task", "tool_with_task"])
async def tool_with_task_escalation(params: Any, ctx: Any) -> Any:
    answer = (params.input_responses or {}).get("user_name")
    content = getattr(answer, "content", None) if answer is not None else None
    if not isinstance(content, dict) or not content.get("name"):
        return None  # round 1: the tool asks in line

    async def greet_later(arguments: dict[str, Any], task: Task) -> dict[str, Any]:
        await asyncio.sleep(0.2)
        return text_result(f"Hello, {content['name']}!")

    return greet_later


# --- plain request handlers the suite exercises ---------------------------------------------


async def set_logging_level(
    ctx: ServerRequestContext[Any, Any], params: SetLevelRequestParams
) -> EmptyResult:
    return EmptyResult()


async def subscribe(ctx: ServerRequestContext[Any, Any], params: SubscribeRequestParams) -> EmptyResult:
    return EmptyResult()


async def unsubscribe(ctx: ServerRequestContext[Any, Any], params: UnsubscribeRequestParams) -> EmptyResult:
    return EmptyResult()


# MCPServer has no public hook for these three yet, so they go on the low-level server.
_lowlevel = mcp._lowlevel_server
_lowlevel.add_request_handler("logging/setLevel", SetLevelRequestParams, set_logging_level)
_lowlevel.add_request_handler("resources/subscribe", SubscribeRequestParams, subscribe)
_lowlevel.add_request_handler("resources/unsubscribe", UnsubscribeRequestParams, unsubscribe)


@mcp.completion()  # type: ignore[untyped-decorator,no-untyped-call]  # the SDK leaves it untyped
async def complete(
    ref: PromptReference | ResourceTemplateReference,
    argument: CompletionArgument,
    context: CompletionContext | None,
) -> Completion:
    """An empty but well-formed completion is all completion-complete checks."""
    return Completion(values=[], total=0, has_more=False)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("port", type=int, help="TCP port on 127.0.0.1")
    parser.add_argument("--log-level", default="WARNING", help="Python logging level")
    args = parser.parse_args()
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    mcp.run(
        transport="streamable-http",
        host="127.0.0.1",  # loopback only: this fixture has no authentication
        port=args.port,
        event_store=MemoryEventStore(),
        retry_interval=100,  # ms; keeps the SSE polling scenario fast
    )


if __name__ == "__main__":
    main()
