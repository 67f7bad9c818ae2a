"""The gateway: one MCP server in front, many supervised upstreams behind, the pipeline between.

The front is the SDK's low-level `Server`, which speaks both protocol eras on both transports; its
outermost middleware is the Pipeline (guards + audit). The handlers here only aggregate and relay:
listings are the upstreams' catalogs under exposed names, calls go to the one upstream the router
chose. They also bridge the eras: a modern upstream's multi round-trip `InputRequiredResult` is
relayed as-is to a modern client, and turned into real server-to-client requests for a legacy one.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import anyio
import anyio.abc
import mcp_types as types
from mcp.client import Client
from mcp.client.session import ClientRequestContext
from mcp.server import NotificationOptions, Server, ServerRequestContext
from mcp.server.connection import Connection
from mcp.server.models import InitializationOptions
from mcp.server.subscriptions import (
    InMemorySubscriptionBus,
    ListenHandler,
    PromptsListChanged,
    ResourcesListChanged,
    ResourceUpdated,
    ServerEvent,
    ToolsListChanged,
)
from mcp.shared.dispatcher import CallOptions, ProgressFnT
from mcp.shared.exceptions import MCPError
from mcp.shared.message import ServerMessageMetadata
from mcp_types import SERVER_INFO_META_KEY
from mcp_types.methods import serialize_server_result
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS, MODERN_PROTOCOL_VERSIONS
from pydantic import TypeAdapter

import mcpwarden
from mcpwarden import reasons
from mcpwarden.config import Settings
from mcpwarden.consent import ConsentBroker
from mcpwarden.exchange import Exchange
from mcpwarden.guards import build_guards
from mcpwarden.guards.content import screen_input_request
from mcpwarden.pinning.startup import startup_check_for
from mcpwarden.pipeline import (
    AuditSink,
    Guard,
    Pipeline,
    PrincipalResolver,
    SessionKeyResolver,
    current_exchange,
)
from mcpwarden.router import Router
from mcpwarden.tasks import (
    TASKS_EXTENSION,
    CreateTaskResult,
    declares_tasks,
    missing_tasks_capability,
    relayable_task_id,
    tasks_declaration,
)
from mcpwarden.upstream.connection import (
    ChangeKind,
    ClientCallbacks,
    Upstream,
    UpstreamUnavailable,
    forwarded_capabilities,
)
from mcpwarden.upstream.wire import invalid_reply

logger = logging.getLogger(__name__)

MAX_INPUT_ROUNDS = 8  # bridging a legacy client: rounds of upstream questions before giving up
_ResultT = TypeVar("_ResultT")
_JSON: TypeAdapter[Any] = TypeAdapter(dict[str, Any])


class Gateway:
    """Everything one running gateway holds: upstreams, router, pipeline and the front Server."""

    def __init__(
        self,
        settings: Settings,
        *,
        transport: str,
        audit: AuditSink,
        principal_of: PrincipalResolver,
        session_key_of: SessionKeyResolver,
        extra_guards: Sequence[Guard] = (),
    ) -> None:
        self.settings = settings
        self.router = Router(settings.gateway.separator, settings.servers)
        # A flagged stdio command (THREATS A8, C19) is not started before a human approved it.
        self._startup_check = startup_check_for(settings)
        self.upstreams = {
            server_id: Upstream(
                server_id,
                spec,
                settings.gateway,
                self._on_upstream_change,
                self._on_resource_updated,
                startup_check=self._startup_check,
                poll_interval=settings.pinning.poll_interval,
            )
            for server_id, spec in settings.servers.items()
        }
        self.bus = InMemorySubscriptionBus()
        # Legacy clients' connections, to push list-changed to; modern clients listen on the bus.
        self._legacy_connections: weakref.WeakSet[Connection] = weakref.WeakSet()
        self._initialized_connections: weakref.WeakSet[Connection] = weakref.WeakSet()
        # Upstream connections dedicated to one legacy client (see _dedicated_upstream).
        self._dedicated: weakref.WeakKeyDictionary[Connection, dict[str, Upstream]] = (
            weakref.WeakKeyDictionary()
        )
        self._task_group: anyio.abc.TaskGroup | None = None
        self.guards = [*build_guards(settings, self), *extra_guards]
        consent = ConsentBroker(settings.state_dir, settings.gateway.approval_timeout)
        self.pipeline = Pipeline(
            self.guards, self.router, audit, transport, principal_of, session_key_of, consent
        )
        self.server: Server[Any] = Server(
            "mcpwarden",
            version=mcpwarden.__version__,
            instructions="mcpwarden gateway: tools of server S are named S"
            + settings.gateway.separator
            + "<tool>.",
            get_tool_input_schema=self.tool_input_schema,
            on_list_tools=self._list_tools,
            on_list_prompts=self._list_prompts,
            on_get_prompt=self._get_prompt,
            on_list_resources=self._list_resources,
            on_list_resource_templates=self._list_resource_templates,
            on_read_resource=self._read_resource,
            on_subscribe_resource=self._subscribe_resource,
            on_unsubscribe_resource=self._unsubscribe_resource,
            on_subscriptions_listen=_TasksAwareListen(self.bus),
            on_completion=self._complete,
        )
        # Registered by method rather than `on_call_tool`, whose type admits no extension result:
        # a caller that declared the tasks extension may get a CreateTaskResult.
        self.server.add_request_handler("tools/call", types.CallToolRequestParams, self._call_tool)
        for method in ("tasks/get", "tasks/result", "tasks/cancel", "tasks/update"):
            self.server.add_request_handler(method, types.RequestParams, self._forward_task)
        self.server.add_request_handler("server/discover", types.RequestParams, self._discover)
        # The pipeline replaces the SDK's default tracing middleware: it is the one place that sees
        # every request, and tracing without an exporter would only cost time on the hot path.
        self.server.middleware = [self.pipeline, self._track_legacy_connection]

    # -- lifecycle -----------------------------------------------------------------------------

    @asynccontextmanager
    async def running(self, ready_timeout: float | None = None) -> AsyncIterator[Gateway]:
        """Start every upstream's supervisor; wait (bounded) until they have connected once."""
        async with anyio.create_task_group() as tg:
            self._task_group = tg
            for upstream in self.upstreams.values():
                tg.start_soon(upstream.run)
            timeout = self.settings.gateway.connect_timeout if ready_timeout is None else ready_timeout
            with anyio.move_on_after(timeout):
                for upstream in self.upstreams.values():
                    await upstream.wait_ready(timeout)
            for server_id, upstream in self.upstreams.items():
                if not upstream.ready:
                    logger.warning(
                        "upstream %s is not ready yet: %s", server_id, upstream.last_error or "starting"
                    )
            try:
                yield self
            finally:
                self._task_group = None
                for upstream in [
                    *self.upstreams.values(),
                    *(u for d in self._dedicated.values() for u in d.values()),
                ]:
                    upstream.stop()
                tg.cancel_scope.cancel()

    # -- the CatalogView guards read ------------------------------------------------------------

    def tool(self, server_id: str, name: str) -> Mapping[str, Any] | None:
        upstream = self.upstreams.get(server_id)
        return upstream.catalog.tool_wire.get(name) if upstream is not None else None

    def definition(self, server_id: str, kind: str, key: str) -> Mapping[str, Any] | None:
        upstream = self.upstreams.get(server_id)
        return upstream.catalog.wire.get(kind, {}).get(key) if upstream is not None else None

    def instructions(self, server_id: str) -> str | None:
        upstream = self.upstreams.get(server_id)
        return upstream.catalog.instructions if upstream is not None else None

    def server_ids(self) -> tuple[str, ...]:
        return tuple(self.upstreams)

    def relayed_extensions(self) -> dict[str, dict[str, Any]]:
        """The extensions the gateway relays, to advertise: the tasks extension when at least one
        ready upstream advertises it (the gateway settles no extension itself)."""
        for upstream in self.upstreams.values():
            if upstream.advertises(TASKS_EXTENSION):
                return {TASKS_EXTENSION: {}}
        return {}

    async def _discover(
        self, ctx: ServerRequestContext[Any, Any], params: types.RequestParams | None
    ) -> types.DiscoverResult:
        # The SDK's own answer, with the extensions of the upstreams as they are now.
        capabilities = self.server.get_capabilities(protocol_version=ctx.protocol_version)
        capabilities.extensions = self.relayed_extensions() or None
        return types.DiscoverResult(
            supported_versions=list(MODERN_PROTOCOL_VERSIONS),
            capabilities=capabilities,
            instructions=self.server.instructions,
        )

    def initialization_options(self) -> InitializationOptions:
        # Legacy clients learn from these flags that list-changed notifications will come.
        changes = NotificationOptions(prompts_changed=True, resources_changed=True, tools_changed=True)
        return self.server.create_initialization_options(changes)

    def health(self) -> dict[str, Any]:
        return {
            "status": "ok",
            "upstreams": {
                server_id: {
                    "ready": up.ready,
                    "protocol": up.protocol_version,
                    "tools": len(up.catalog.tools),
                    "restarts": up.restarts,
                    "last_error": up.last_error,
                }
                for server_id, up in self.upstreams.items()
            },
        }

    # -- notifications to clients --------------------------------------------------------------

    async def _track_legacy_connection(self, ctx: ServerRequestContext[Any, Any], call_next: Any) -> Any:
        # ServerSession is per request; the connection outlives it. The SDK (pinned 2.3.*) exposes
        # it to handlers only through this attribute.
        connection = getattr(ctx.session, "_connection", None)
        if not isinstance(connection, Connection) or ctx.protocol_version not in HANDSHAKE_PROTOCOL_VERSIONS:
            return await call_next(ctx)
        if ctx.method == "initialize":
            if ctx.request_id is None:
                # Sent as a notification: nothing to answer, and it must neither count as the
                # handshake (a real one would then be refused) nor raise (the SDK logs a trace).
                logger.warning("ignored an 'initialize' sent as a notification")
                return None
            if connection in self._initialized_connections:
                # A second handshake could swap the client's declared capabilities mid-session.
                raise MCPError(types.INVALID_REQUEST, "this connection is already initialized")
            result = await call_next(ctx)
            self._initialized_connections.add(connection)
            return result
        self._legacy_connections.add(connection)
        return await call_next(ctx)

    async def _on_upstream_change(self, server_id: str, kinds: frozenset[ChangeKind]) -> None:
        events: dict[ChangeKind, ServerEvent] = {
            "tools": ToolsListChanged(),
            "prompts": PromptsListChanged(),
            "resources": ResourcesListChanged(),
        }
        for kind in sorted(kinds):
            await self.bus.publish(events[kind])
        for connection in list(self._legacy_connections):
            senders = {
                "tools": connection.send_tool_list_changed,
                "prompts": connection.send_prompt_list_changed,
                "resources": connection.send_resource_list_changed,
            }
            for kind in sorted(kinds):
                try:
                    await senders[kind]()
                except Exception as exc:  # a client that went away: forget it
                    logger.info("dropping a client connection that cannot be notified: %s", exc)
                    self._legacy_connections.discard(connection)
                    break

    async def _on_resource_updated(self, server_id: str, uri: str) -> None:
        exposed = self.router.expose_uri(server_id, uri)
        await self.bus.publish(ResourceUpdated(uri=exposed))
        for connection in list(self._legacy_connections):
            try:
                await connection.send_resource_updated(exposed)
            except Exception:
                self._legacy_connections.discard(connection)

    # -- listings ------------------------------------------------------------------------------

    def tool_input_schema(self, exposed: str) -> Mapping[str, Any] | None:
        # Used by the SDK to validate `Mcp-Param-*` headers without an upstream round trip.
        split = self.router.split(exposed)
        if split is None or split[0] not in self.upstreams:
            return None
        tool = self.upstreams[split[0]].catalog.tool(split[1])
        return tool.input_schema if tool is not None else None

    async def _list_tools(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListToolsResult:
        tools = [
            tool.model_copy(update={"name": self.router.expose(server_id, tool.name)})
            for server_id, up in self.upstreams.items()
            for tool in up.catalog.tools
        ]
        return types.ListToolsResult(tools=tools)

    async def _list_prompts(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListPromptsResult:
        prompts = [
            prompt.model_copy(update={"name": self.router.expose(server_id, prompt.name)})
            for server_id, up in self.upstreams.items()
            for prompt in up.catalog.prompts
        ]
        return types.ListPromptsResult(prompts=prompts)

    async def _list_resources(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourcesResult:
        resources = [
            resource.model_copy(update={"uri": self.router.expose_uri(server_id, str(resource.uri))})
            for server_id, up in self.upstreams.items()
            for resource in up.catalog.resources
        ]
        return types.ListResourcesResult(resources=resources)

    async def _list_resource_templates(
        self, ctx: ServerRequestContext[Any, Any], params: types.PaginatedRequestParams | None
    ) -> types.ListResourceTemplatesResult:
        templates = [
            template.model_copy(
                update={"uri_template": self.router.expose_uri(server_id, template.uri_template)}
            )
            for server_id, up in self.upstreams.items()
            for template in up.catalog.templates
        ]
        return types.ListResourceTemplatesResult(resource_templates=templates)

    # -- calls ---------------------------------------------------------------------------------

    async def _call_tool(
        self, ctx: ServerRequestContext[Any, Any], params: types.CallToolRequestParams
    ) -> types.CallToolResult | types.InputRequiredResult | CreateTaskResult:
        exchange = current_exchange()
        target = _required(exchange.target)
        self._listed_upstream(exchange)

        async def send(
            responses: types.InputResponses | None, state: str | None
        ) -> types.CallToolResult | types.InputRequiredResult | CreateTaskResult:
            client = await self._client_for(exchange.server, ctx)
            result = await client.session.call_tool(
                target,
                params.arguments,
                progress_callback=_progress_relay(ctx),
                input_responses=responses,
                request_state=state,
                allow_input_required=True,
                allow_claimed=True,
            )
            if isinstance(result, types.CallToolResult | types.InputRequiredResult | CreateTaskResult):
                return result
            raise invalid_reply()  # a claimed shape the gateway does not relay

        result = await self._relay(ctx, send, params.input_responses, params.request_state)
        if isinstance(result, CreateTaskResult):
            self._check_task_created(ctx)
            result.task_id = self._exposed_task_id(_required(exchange.server), result.task_id)
        return result

    def _check_task_created(self, ctx: ServerRequestContext[Any, Any]) -> None:
        """An upstream creates a task only for a caller that declared the tasks extension; one that
        did not could neither read the answer nor ever see the call's result (fail closed)."""
        if ctx.protocol_version in HANDSHAKE_PROTOCOL_VERSIONS or not declares_tasks(
            ctx.session.client_capabilities
        ):
            logger.warning("an upstream created a task the caller did not ask for; refused")
            raise invalid_reply()

    def _exposed_task_id(self, server_id: str, task_id: str) -> str:
        """The id the caller gets for an upstream's task; an id that is no plain token is refused."""
        if not relayable_task_id(task_id):
            logger.warning("an upstream named a task with an id that is not a plain token; refused")
            raise invalid_reply()
        return self.router.expose(server_id, task_id)

    def _listed_upstream(self, exchange: Exchange) -> Upstream:
        """The upstream of a `tools/call`, which must have listed the tool: only what the server
        listed (and the guards saw) may be called."""
        upstream = self.upstreams[_required(exchange.server)]
        if upstream.catalog.tool(_required(exchange.target)) is None:
            raise MCPError(
                types.INVALID_PARAMS,
                f"no server exposes {exchange.exposed_name!r}",
                {"reason": reasons.UNKNOWN_TOOL},
            )
        return upstream

    async def call_tool_wire(self, ctx: ServerRequestContext[Any, Any]) -> dict[str, Any]:
        """`tools/call` for the fast lane (transport/fastlane.py): the same relay as `_call_tool`,
        but the request and the result stay JSON (see `Upstream.request_wire`)."""
        exchange = current_exchange()
        upstream = self._listed_upstream(exchange)
        client = await self._client_for(upstream.server_id, ctx)
        params: dict[str, Any] = {"name": _required(exchange.target)}
        arguments = (ctx.params or {}).get("arguments")
        if arguments is not None:
            params["arguments"] = arguments
        forwarded_capabilities.set(_relayable_capabilities(ctx))
        raw = await self._upstream_call(upstream.request_wire(client, "tools/call", params))
        if raw.get("resultType") == "task":
            # Checked as the SDK path checks it (its claim model), then relayed as it came.
            self._check_task_created(ctx)
            try:
                created = CreateTaskResult.model_validate(raw)
            except ValueError:
                raise invalid_reply() from None
            _strip_upstream_identity_wire(raw)
            raw["taskId"] = self._exposed_task_id(upstream.server_id, created.task_id)
            return raw
        if raw.get("resultType") == "input_required":
            try:
                asked = types.InputRequiredResult.model_validate(raw).input_requests or {}
            except ValueError:
                raise invalid_reply() from None
            _require_client_capabilities(ctx, asked)
        if client.protocol_version in HANDSHAKE_PROTOCOL_VERSIONS:
            raw.setdefault("resultType", "complete")  # the SDK's reading of a 2025 result
        _strip_upstream_identity_wire(raw)
        if ctx.protocol_version == PLAIN_RESULT_VERSION and is_plain_call_result(raw):
            result = raw  # what the SDK's check would hand back unchanged (tests/test_gateway.py)
        else:
            try:
                result = serialize_server_result("tools/call", ctx.protocol_version, raw)
            except ValueError:  # pydantic's ValidationError included: a result the spec does not allow
                raise invalid_reply() from None
        return result  # the fast lane stamps the gateway's identity on its way out, as the SDK does

    async def _get_prompt(
        self, ctx: ServerRequestContext[Any, Any], params: types.GetPromptRequestParams
    ) -> types.GetPromptResult | types.InputRequiredResult:
        exchange = current_exchange()
        target = _required(exchange.target)

        async def send(
            responses: types.InputResponses | None, state: str | None
        ) -> types.GetPromptResult | types.InputRequiredResult:
            client = await self._client_for(exchange.server, ctx)
            return await client.session.get_prompt(
                target,
                params.arguments,
                input_responses=responses,
                request_state=state,
                allow_input_required=True,
            )

        return await self._relay(ctx, send, params.input_responses, params.request_state)

    async def _read_resource(
        self, ctx: ServerRequestContext[Any, Any], params: types.ReadResourceRequestParams
    ) -> types.ReadResourceResult | types.InputRequiredResult:
        exchange = current_exchange()
        target, exposed = _required(exchange.target), _required(exchange.exposed_name)

        async def send(
            responses: types.InputResponses | None, state: str | None
        ) -> types.ReadResourceResult | types.InputRequiredResult:
            client = await self._client_for(exchange.server, ctx)
            return await client.session.read_resource(
                target, input_responses=responses, request_state=state, allow_input_required=True
            )

        try:
            result = await self._relay(ctx, send, params.input_responses, params.request_state)
        except MCPError as exc:
            if isinstance(exc.error.data, dict) and "uri" in exc.error.data:
                exc.error.data["uri"] = exposed  # never the upstream's own URI
            raise
        if isinstance(result, types.ReadResourceResult):
            # Contents name the upstream's URI; the client must only ever see exposed ones.
            for content in result.contents:
                if str(content.uri) == target:
                    content.uri = exposed
                else:
                    content.uri = self.router.expose_uri(_required(exchange.server), str(content.uri))
        return result

    async def _subscribe_resource(
        self, ctx: ServerRequestContext[Any, Any], params: types.SubscribeRequestParams
    ) -> types.EmptyResult:
        exchange = current_exchange()
        client = await self._client_for(exchange.server, ctx)
        if client.protocol_version in HANDSHAKE_PROTOCOL_VERSIONS:
            await self._upstream_call(client.session.subscribe_resource(_required(exchange.target)))
        return types.EmptyResult()

    async def _unsubscribe_resource(
        self, ctx: ServerRequestContext[Any, Any], params: types.UnsubscribeRequestParams
    ) -> types.EmptyResult:
        exchange = current_exchange()
        client = await self._client_for(exchange.server, ctx)
        if client.protocol_version in HANDSHAKE_PROTOCOL_VERSIONS:
            await self._upstream_call(client.session.unsubscribe_resource(_required(exchange.target)))
        return types.EmptyResult()

    async def _complete(
        self, ctx: ServerRequestContext[Any, Any], params: types.CompleteRequestParams
    ) -> types.CompleteResult:
        exchange = current_exchange()
        client = await self._client_for(exchange.server, ctx)
        ref: types.PromptReference | types.ResourceTemplateReference
        if isinstance(params.ref, types.PromptReference):
            ref = types.PromptReference(type="ref/prompt", name=_required(exchange.target))
        else:
            ref = types.ResourceTemplateReference(type="ref/resource", uri=_required(exchange.target))
        argument = {"name": params.argument.name, "value": params.argument.value}
        context = params.context.arguments if params.context is not None else None
        return await self._upstream_call(client.session.complete(ref, argument, context_arguments=context))

    async def _forward_task(
        self, ctx: ServerRequestContext[Any, Any], params: types.RequestParams
    ) -> dict[str, Any]:
        """`tasks/*` are relayed with the task id mapped back to the upstream's own, and with the
        caller's declaration of the tasks extension (the pipeline refused modern callers without
        one), so the upstream serves the task surface to this caller."""
        exchange = current_exchange()
        client = await self._client_for(exchange.server, ctx)
        body = {k: v for k, v in (ctx.params or {}).items() if k != "_meta"}
        body["taskId"] = exchange.target
        request = types.Request[dict[str, Any], str](method=ctx.method, params=body)
        forwarded_capabilities.set(_relayable_capabilities(ctx))
        result: dict[str, Any] = await self._upstream_call(client.session.send_request(request, _JSON))
        if isinstance(result.get("taskId"), str):
            result["taskId"] = self._exposed_task_id(_required(exchange.server), result["taskId"])
        _strip_upstream_identity_wire(result)
        return result

    # -- relaying ------------------------------------------------------------------------------

    async def _client_for(self, server_id: str | None, ctx: ServerRequestContext[Any, Any]) -> Client:
        upstream = self.upstreams[_required(server_id)]
        connection = _legacy_connection(ctx)
        if connection is not None and upstream.protocol_version in HANDSHAKE_PROTOCOL_VERSIONS:
            upstream = self._dedicated_upstream(upstream, connection)
        try:
            return await upstream.client()
        except UpstreamUnavailable:
            refusal = upstream.refusal
            if refusal is not None:  # not started until a human approves its command (A8, C19)
                raise MCPError(
                    types.INTERNAL_ERROR, refusal.detail, {"reason": refusal.reason, **refusal.data}
                ) from None
            raise MCPError(
                types.INTERNAL_ERROR,
                f"server {upstream.server_id!r} is not available right now",
                {"reason": reasons.UPSTREAM_UNAVAILABLE},
            ) from None

    def _dedicated_upstream(self, shared: Upstream, connection: Connection) -> Upstream:
        """A legacy upstream may push requests (elicitation, sampling, roots) mid-call; only a
        connection of its own per client session can tell whom they are for, so such a client gets
        one, whose pushes are bridged to that client alone. It ends when the client's connection
        goes away."""
        capabilities = connection.client_capabilities
        if self._task_group is None or capabilities is None:
            return shared
        if not (capabilities.elicitation or capabilities.sampling or capabilities.roots):
            return shared  # this client could answer nothing: the shared connection will do
        per_client = self._dedicated.setdefault(connection, {})
        upstream = per_client.get(shared.server_id)
        if upstream is None:
            upstream = Upstream(
                shared.server_id,
                shared.spec,
                self.settings.gateway,
                _ignore_change,
                _ignore_update,
                callbacks=_bridge_to(connection, capabilities, self.settings.gateway.approval_timeout),
                startup_check=self._startup_check,
            )
            per_client[shared.server_id] = upstream
            weakref.finalize(connection, upstream.stop)
            self._task_group.start_soon(upstream.run)
        return upstream

    async def _upstream_call(self, call: Awaitable[_ResultT]) -> _ResultT:
        try:
            return await call
        except MCPError as exc:
            raise _upstream_error(exc) from None

    async def _relay(
        self,
        ctx: ServerRequestContext[Any, Any],
        send: Callable[[types.InputResponses | None, str | None], Awaitable[_ResultT]],
        responses: types.InputResponses | None,
        state: str | None,
    ) -> _ResultT:
        forwarded_capabilities.set(_relayable_capabilities(ctx))
        result = await self._upstream_call(send(responses, state))
        if isinstance(result, types.InputRequiredResult):
            _require_client_capabilities(ctx, result.input_requests or {})
        if ctx.protocol_version in HANDSHAKE_PROTOCOL_VERSIONS:
            # A legacy client cannot take an InputRequiredResult: ask it the questions ourselves,
            # as real server-to-client requests, and retry the upstream with the answers.
            for _ in range(MAX_INPUT_ROUNDS):
                if not isinstance(result, types.InputRequiredResult):
                    break
                answers = await _ask_legacy_client(
                    ctx, result.input_requests or {}, self.settings.gateway.request_timeout
                )
                result = await self._upstream_call(send(answers, result.request_state))
            if isinstance(result, types.InputRequiredResult):
                raise MCPError(
                    types.INTERNAL_ERROR,
                    "the server kept asking for input",
                    {"reason": reasons.UPSTREAM_FAILED},
                )
        _strip_upstream_identity(result)
        return result


class _TasksAwareListen(ListenHandler):
    """`subscriptions/listen` on the gateway's own bus. Task status notifications (`taskIds`) are
    for callers that declared the tasks extension (-32021 otherwise, as SEP-2663 requires); the
    gateway relays none, so a declared caller's `taskIds` are left out of the acknowledgement and
    it polls."""

    async def __call__(
        self, ctx: ServerRequestContext[Any, Any], params: types.SubscriptionsListenRequestParams
    ) -> types.SubscriptionsListenResult:
        asked = (params.notifications.model_extra or {}).get("taskIds")
        if asked and not declares_tasks(ctx.session.client_capabilities):
            raise missing_tasks_capability(ctx.method)
        return await super().__call__(ctx, params)


_RELAYABLE_MEMO_LIMIT = 256
# (id of a declaration, legacy caller) -> (that declaration, what of it is relayed). The fast lane
# hands over one validated object per distinct declaration, so most calls find theirs here. The
# dicts are shared between calls: the request stamp only places them, never changes them.
_relayable_memo: dict[tuple[int, bool], tuple[types.ClientCapabilities, dict[str, Any]]] = {}


def _relayable_capabilities(ctx: ServerRequestContext[Any, Any]) -> dict[str, Any]:
    """What the calling client can answer, limited to the input requests the gateway can relay,
    and of its extensions only the tasks extension, which the gateway relays (modern callers
    only: a legacy session cannot take a `CreateTaskResult`)."""
    declared = ctx.session.client_capabilities
    if declared is None:
        return {}
    key = (id(declared), ctx.protocol_version in HANDSHAKE_PROTOCOL_VERSIONS)
    known = _relayable_memo.get(key)
    if known is not None and known[0] is declared:
        return known[1]
    relayable = _relayable_of(declared, legacy=key[1])
    if len(_relayable_memo) >= _RELAYABLE_MEMO_LIMIT:
        _relayable_memo.clear()
    _relayable_memo[key] = (declared, relayable)  # holding `declared` keeps its id from reuse
    return relayable


def _relayable_of(declared: types.ClientCapabilities, *, legacy: bool) -> dict[str, Any]:
    wire = declared.model_dump(by_alias=True, mode="json", exclude_none=True)
    relayable: dict[str, Any] = {
        key: wire[key] for key in ("elicitation", "sampling", "roots") if key in wire
    }
    tasks = tasks_declaration(declared)
    if tasks is not None and not legacy:
        relayable["extensions"] = {TASKS_EXTENSION: tasks}
    return relayable


def _legacy_connection(ctx: ServerRequestContext[Any, Any]) -> Connection | None:
    if ctx.protocol_version not in HANDSHAKE_PROTOCOL_VERSIONS:
        return None
    connection = getattr(ctx.session, "_connection", None)  # see _track_legacy_connection
    return connection if isinstance(connection, Connection) else None


async def _ignore_change(server_id: str, kinds: frozenset[ChangeKind]) -> None:
    """A dedicated connection's listings are the shared one's; only the shared one reports."""


async def _ignore_update(server_id: str, uri: str) -> None:
    """Resource updates are reported by the shared connection."""


def _bridge_to(
    connection: Connection, capabilities: types.ClientCapabilities, timeout: float
) -> ClientCallbacks:
    """Callbacks that pass an upstream's pushed requests on to one legacy client, and declare to
    the upstream only what that client declared."""
    opts: CallOptions = {"timeout": timeout}

    async def elicit(
        context: ClientRequestContext, params: types.ElicitRequestParams
    ) -> types.ElicitResult | types.ErrorData:
        request = types.ElicitRequest(params=params)
        problem = screen_input_request(request.model_dump(by_alias=True, mode="json", exclude_none=True))
        if problem is not None:  # the same screening as for multi round-trip requests (C24)
            return types.ErrorData(code=types.INVALID_REQUEST, message=f"refused by the gateway: {problem}")
        try:
            return await connection.send_request(request, opts=opts)
        except MCPError as exc:
            return exc.error

    async def sample(
        context: ClientRequestContext, params: types.CreateMessageRequestParams
    ) -> types.CreateMessageResult | types.CreateMessageResultWithTools | types.ErrorData:
        wire = types.CreateMessageRequest(params=params).model_dump(
            by_alias=True, mode="json", exclude_none=True
        )
        problem = screen_input_request(wire)  # also clips context and tokens in `wire` (C14)
        if problem is not None:
            return types.ErrorData(code=types.INVALID_REQUEST, message=f"refused by the gateway: {problem}")
        request = types.CreateMessageRequest.model_validate(wire)
        try:
            return await connection.send_request(request, opts=opts)
        except MCPError as exc:
            return exc.error

    async def roots(context: ClientRequestContext) -> types.ListRootsResult | types.ErrorData:
        try:
            return await connection.send_request(types.ListRootsRequest(), opts=opts)
        except MCPError as exc:
            return exc.error

    return ClientCallbacks(
        elicitation=elicit if capabilities.elicitation else None,
        sampling=sample if capabilities.sampling else None,
        roots=roots if capabilities.roots else None,
    )


def _require_client_capabilities(
    ctx: ServerRequestContext[Any, Any], requests: Mapping[str, types.InputRequest]
) -> None:
    """A server must not send input requests the client never declared it can answer (-32021)."""
    declared = ctx.session.client_capabilities or types.ClientCapabilities()
    missing: dict[str, Any] = {}
    for request in requests.values():
        if isinstance(request, types.ElicitRequest) and declared.elicitation is None:
            missing["elicitation"] = {}
        elif isinstance(request, types.CreateMessageRequest) and declared.sampling is None:
            missing["sampling"] = {}
        elif isinstance(request, types.ListRootsRequest) and declared.roots is None:
            missing["roots"] = {}
    if missing:
        raise MCPError(
            types.MISSING_REQUIRED_CLIENT_CAPABILITY,
            f"the server needs the client capabilities: {', '.join(sorted(missing))}",
            {"requiredCapabilities": missing, "reason": reasons.MISSING_CLIENT_CAPABILITY},
        )


def _required(value: str | None) -> str:
    if value is None:  # the router guarantees it for these methods; keep mypy and readers honest
        raise MCPError(types.INTERNAL_ERROR, "internal routing error", {"reason": reasons.INTERNAL_ERROR})
    return value


def _upstream_error(exc: MCPError) -> MCPError:
    if exc.code == types.CONNECTION_CLOSED:
        return MCPError(
            types.INTERNAL_ERROR,
            "the server stopped while handling the request",
            {"reason": reasons.UPSTREAM_FAILED},
        )
    if exc.code == types.REQUEST_TIMEOUT:
        return MCPError(
            types.INTERNAL_ERROR, "the server did not answer in time", {"reason": reasons.UPSTREAM_TIMEOUT}
        )
    data = exc.error.data if isinstance(exc.error.data, dict) else {}
    if data.get("source") == "mcpwarden":  # synthesised by our own transport (e.g. a size cap)
        return exc
    # The upstream's own error: keep its code and message (later guards scan and redact them).
    return MCPError(exc.code, exc.message, {**data, "reason": reasons.UPSTREAM_ERROR})


# The protocol version whose result schema `is_plain_call_result` mirrors; others take the SDK's check.
PLAIN_RESULT_VERSION = "2026-07-28"
_PLAIN_RESULT_KEYS = frozenset({"content", "structuredContent", "isError", "_meta", "resultType"})
_TEXT_KEYS = frozenset({"type", "text"})


def is_plain_call_result(raw: dict[str, Any]) -> bool:
    """A complete `tools/call` result of the commonest shape (text content, optional structured
    content, error flag and `_meta`), which the SDK's check for the current protocol version passes
    through unchanged. Checking this costs far less than validating and re-serialising; anything
    else takes the SDK's check."""
    if raw.get("resultType") != "complete" or raw.keys() - _PLAIN_RESULT_KEYS:
        return False
    content = raw.get("content")
    if type(content) is not list or not all(_is_plain_text(item) for item in content):
        return False
    if "isError" in raw and type(raw["isError"]) is not bool:
        return False
    if "structuredContent" in raw and type(raw["structuredContent"]) is not dict:
        return False
    meta = raw.get("_meta", {})
    return type(meta) is dict and None not in meta.values()


def _is_plain_text(item: Any) -> bool:
    if type(item) is not dict or item.keys() != _TEXT_KEYS:
        return False
    return item["type"] == "text" and type(item["text"]) is str


def _strip_upstream_identity_wire(result: dict[str, Any]) -> None:
    meta = result.get("_meta")
    if isinstance(meta, dict) and SERVER_INFO_META_KEY in meta:
        result["_meta"] = {key: value for key, value in meta.items() if key != SERVER_INFO_META_KEY}


def _strip_upstream_identity(result: Any) -> None:
    """The upstream's self-description must not pass as ours; the SDK stamps the gateway's own."""
    meta = getattr(result, "meta", None)
    if isinstance(meta, dict) and SERVER_INFO_META_KEY in meta:
        del meta[SERVER_INFO_META_KEY]


def _progress_relay(ctx: ServerRequestContext[Any, Any]) -> ProgressFnT | None:
    meta = (ctx.params or {}).get("_meta")
    if not isinstance(meta, dict) or meta.get("progressToken") is None:
        return None

    async def relay(progress: float, total: float | None, message: str | None) -> None:
        await ctx.session.report_progress(progress, total, message)

    return relay


async def _ask_legacy_client(
    ctx: ServerRequestContext[Any, Any], requests: Mapping[str, types.InputRequest], timeout: float
) -> types.InputResponses:
    # Sent on the request's own channel, so over HTTP they ride that request's SSE stream.
    related = ServerMessageMetadata(related_request_id=ctx.request_id)
    answers: types.InputResponses = {}
    for key, request in requests.items():
        result_type: type[types.InputResponse]
        if isinstance(request, types.ElicitRequest):
            result_type = types.ElicitResult
        elif isinstance(request, types.CreateMessageRequest):
            result_type = types.CreateMessageResult
        else:
            result_type = types.ListRootsResult
        answers[key] = await ctx.session.send_request(request, result_type, timeout, related)
    return answers
