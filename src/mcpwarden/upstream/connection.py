"""One upstream server: its connection, its supervisor (restart with backoff) and its catalog.

The gateway holds one `Upstream` per configured server. A supervisor task keeps a connection open
(a stdio child, or a Streamable HTTP client of either protocol era), lists the server's tools,
prompts, resources and templates into a `Catalog`, and reconnects with exponential backoff when the
child dies. Requests borrow the live `mcp.Client`; when the child dies mid-call the SDK wakes every
waiter with a connection-closed error at once, so nothing waits for a timeout (THREATS E14).
Change notifications from the upstream (legacy push or modern `subscriptions/listen`) are coalesced
into at most one re-list per `RELIST_INTERVAL` (E11) and reported to the gateway.
"""

from __future__ import annotations

import contextvars
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, Literal

import anyio
import mcp_types as types
from mcp import Client
from mcp.client.session import ClientRequestContext, ElicitationFnT, ListRootsFnT, SamplingFnT
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.dispatcher import CallOptions
from mcp.shared.exceptions import MCPError
from mcp.shared.inbound import MCP_NAME_HEADER, encode_header_value
from mcp_types import CLIENT_CAPABILITIES_META_KEY
from mcp_types.version import MODERN_PROTOCOL_VERSIONS

import mcpwarden
from mcpwarden.config import GatewaySettings, ServerSpec
from mcpwarden.errors import UpstreamError
from mcpwarden.exchange import Decision
from mcpwarden.tasks import TASKS_EXTENSION, TasksRelay
from mcpwarden.upstream.credentials import ClientCredentialsAuth, upstream_auth, upstream_headers
from mcpwarden.upstream.stdio import StdioChild, stdio_transport
from mcpwarden.upstream.wire import WirePoster

logger = logging.getLogger(__name__)

ChangeKind = Literal["tools", "prompts", "resources"]
ALL_KINDS: frozenset[ChangeKind] = frozenset({"tools", "prompts", "resources"})
RELIST_INTERVAL = 1.0  # seconds: a flood of list_changed costs at most one re-list per interval
MAX_CATALOG_ITEMS = 10_000  # per list, per server: a server announcing 100k tools is cut here
MAX_LIST_PAGES = 100
_BACKOFF_START = 0.25

ChangeCallback = Callable[[str, frozenset[ChangeKind]], Awaitable[None]]
ResourceUpdateCallback = Callable[[str, str], Awaitable[None]]


# The capabilities of the client on whose behalf a request goes upstream (wire form), so a modern
# server asks only for input the real client can give; set per request by the gateway.
forwarded_capabilities: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "mcpwarden_forwarded_capabilities", default=None
)


def _forward_client_capabilities(client: Client) -> None:
    """Make the client's per-request `_meta` carry the calling client's capabilities.

    The SDK stamps the connection's own capabilities on every modern request; this wraps that
    stamp (a private seam of the pinned mcp 2.3 SDK) to substitute the caller's, when known.
    Without a caller (listings, the gateway's own requests) the tasks extension, which the
    connection declares only so the SDK accepts a `CreateTaskResult` (tasks.TasksRelay), is taken
    out: an upstream creates tasks only for a caller that asked for them. `tasks/*` also get the
    `Mcp-Name: <taskId>` header SEP-2663 asks for, which the SDK sets for core methods only.
    """
    session = client.session
    original = session._stamp

    def stamp(data: dict[str, Any], opts: Any) -> None:
        original(data, opts)
        meta = data["params"]["_meta"]
        capabilities = forwarded_capabilities.get()
        if capabilities is not None:
            meta[CLIENT_CAPABILITIES_META_KEY] = capabilities
        else:
            meta[CLIENT_CAPABILITIES_META_KEY] = _without_tasks(meta.get(CLIENT_CAPABILITIES_META_KEY))
        task_id = data["params"].get("taskId")
        if data.get("method", "").startswith("tasks/") and isinstance(task_id, str):
            opts.setdefault("headers", {})[MCP_NAME_HEADER] = encode_header_value(task_id)

    session._stamp = stamp


def _without_tasks(capabilities: Any) -> Any:
    if not isinstance(capabilities, dict):
        return capabilities
    extensions = capabilities.get("extensions")
    if not isinstance(extensions, dict) or TASKS_EXTENSION not in extensions:
        return capabilities
    # A copy: the SDK stamps the same capabilities object on every request.
    rest = {key: value for key, value in extensions.items() if key != TASKS_EXTENSION}
    trimmed = {key: value for key, value in capabilities.items() if key != "extensions"}
    if rest:
        trimmed["extensions"] = rest
    return trimmed


@dataclass(frozen=True, slots=True)
class ClientCallbacks:
    """How this connection answers server-to-client requests (None = capability not declared)."""

    elicitation: ElicitationFnT | None = None
    sampling: SamplingFnT | None = None
    roots: ListRootsFnT | None = None


class UpstreamUnavailable(UpstreamError):
    """The server is not connected (starting, crashed and restarting, or unreachable)."""


@dataclass(frozen=True, slots=True)
class Catalog:
    """What a server offered at its last listing, in the server's own names."""

    tools: tuple[types.Tool, ...] = ()
    prompts: tuple[types.Prompt, ...] = ()
    resources: tuple[types.Resource, ...] = ()
    templates: tuple[types.ResourceTemplate, ...] = ()
    instructions: str | None = None
    listed_at: float = 0.0
    tool_index: Mapping[str, types.Tool] = field(default_factory=dict)  # by the server's own name
    # The same definitions as wire JSON, dumped once per listing: guards read them on every call.
    tool_wire: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # Prompts by name, resources by URI, templates by URI template, as wire JSON (for pinning).
    wire: Mapping[str, Mapping[str, Mapping[str, Any]]] = field(default_factory=dict)

    def tool(self, name: str) -> types.Tool | None:
        return self.tool_index.get(name)


class Upstream:
    """A supervised connection to one configured server."""

    def __init__(
        self,
        server_id: str,
        spec: ServerSpec,
        settings: GatewaySettings,
        on_change: ChangeCallback,
        on_resource_updated: ResourceUpdateCallback,
        callbacks: ClientCallbacks | None = None,
        startup_check: Callable[[str, ServerSpec], Decision] | None = None,
        poll_interval: float | None = None,
    ) -> None:
        self.server_id = server_id
        self.spec = spec
        self.settings = settings
        self.catalog = Catalog()
        self.restarts = 0
        self.last_error: str | None = None
        self.child: StdioChild | None = None
        self._poster: WirePoster | None = None  # a modern HTTP upstream's fast-lane sender
        self._on_change = on_change
        self._on_resource_updated = on_resource_updated
        self._client: Client | None = None
        self._connected = anyio.Event()
        self._relist_wanted: set[ChangeKind] = set()
        self._relist_signal = anyio.Event()
        self._stopping = False
        self._scope: anyio.CancelScope | None = None
        self._callbacks = callbacks or ClientCallbacks(elicitation=_refuse_elicitation)
        # Asked before every start (pinning/startup.py): a refused server stays not ready.
        self._startup_check = startup_check
        self.refusal: Decision | None = None
        # Re-list tools this often even without list_changed: a silent rug pull (THREATS C4) shows.
        self._poll_interval = poll_interval

    # -- state ---------------------------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self._client is not None

    @property
    def protocol_version(self) -> str | None:
        return self._client.protocol_version if self._client is not None else None

    def advertises(self, extension: str) -> bool:
        """Whether the connected server advertises this extension (SEP-2133) in its capabilities."""
        client = self._client
        extensions = client.server_capabilities.extensions if client is not None else None
        return bool(extensions) and extension in (extensions or {})

    async def client(self) -> Client:
        """The live client, waiting up to the connect timeout for a (re)start to finish."""
        if self._client is not None:
            return self._client
        with anyio.move_on_after(self.settings.connect_timeout):
            while self._client is None and self.refusal is None:
                await self._connected.wait()
        if self._client is None:
            why = f": {self.refusal.detail}" if self.refusal is not None else ""
            raise UpstreamUnavailable(f"server {self.server_id!r} is not available{why}")
        return self._client

    async def request_wire(self, client: Client, method: str, params: dict[str, Any]) -> dict[str, Any]:
        """One request and its result as JSON, without the SDK's models (the fast lane).

        The session's own stamp writes the request's `_meta` and headers (private seams of the
        pinned mcp 2.3 SDK, as `_forward_client_capabilities`). A stdio child of this connection
        gets the request straight on its pipe; otherwise the session's dispatcher sends it, which
        keeps ids, timeouts, cancellation and the connection-closed wake-up with the SDK.
        """
        request: dict[str, Any] = {"method": method, "params": params}
        opts: CallOptions = {}
        session = client.session
        session._stamp(request, opts)
        timeout = session._session_read_timeout_seconds
        current = client is self._client
        wire = self.child.wire if self.child is not None and current else None
        if wire is not None:
            return await wire.send(method, request["params"], timeout)
        poster = self._poster
        if poster is not None and current and client.protocol_version in MODERN_PROTOCOL_VERSIONS:
            return await poster.post(method, request["params"], opts.get("headers", {}), timeout)
        if timeout is not None:
            opts["timeout"] = timeout
        return await session._dispatcher.send_raw_request(method, request["params"], opts)

    async def wait_ready(self, timeout: float) -> bool:
        with anyio.move_on_after(timeout):
            while self._client is None and self.refusal is None:
                await self._connected.wait()
        return self._client is not None

    # -- supervision ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Keep the server connected until cancelled; restart with exponential backoff."""
        backoff = _BACKOFF_START
        async with anyio.create_task_group() as tg:
            self._scope = tg.cancel_scope
            if self._stopping:
                tg.cancel_scope.cancel()
            tg.start_soon(self._relist_loop)
            while not self._stopping:
                started = time.monotonic()
                try:
                    await self._serve_one_connection()
                except Exception as exc:  # any failure of one connection: log, back off, retry
                    self.last_error = _describe(exc)
                    logger.warning("upstream %s failed: %s", self.server_id, self.last_error)
                finally:
                    self._client = None
                    self._connected = anyio.Event()
                if self._stopping:
                    break
                if time.monotonic() - started > 30:
                    backoff = _BACKOFF_START  # it ran well for a while: a fresh crash starts fast
                self.restarts += 1
                logger.info("restarting upstream %s in %.2fs", self.server_id, backoff)
                await anyio.sleep(backoff)
                backoff = min(backoff * 2, self.settings.restart_backoff_max)
            tg.cancel_scope.cancel()

    def stop(self) -> None:
        """Stop supervising and close the connection (safe to call from synchronous code)."""
        self._stopping = True
        if self._scope is not None:
            self._scope.cancel()

    @property
    def request_timeout(self) -> float:
        """Seconds this server may take to answer: its own setting, else the gateway's."""
        return self.spec.request_timeout or self.settings.request_timeout

    @property
    def _max_reply_bytes(self) -> int:
        return self.settings.max_result_kb * 1024 + 65536  # room for the envelope

    def _transport(self) -> AbstractAsyncContextManager[Any]:
        spec = self.spec
        if spec.command is not None:
            self.child = StdioChild(argv=(spec.command, *spec.args))
            return stdio_transport(
                spec.command,
                spec.args,
                spec.env,
                spec.cwd,
                max_line_bytes=self._max_reply_bytes,
                child=self.child,
                server_id=self.server_id,
            )
        assert spec.url is not None
        # Only the gateway's own configured credentials; never the client's (THREATS A4, D16).
        return self._http_transport(
            spec.url,
            upstream_headers(self.server_id, spec),
            upstream_auth(self.server_id, spec, self.settings.connect_timeout),
        )

    @asynccontextmanager
    async def _http_transport(
        self, url: str, headers: dict[str, str], auth: ClientCredentialsAuth | None
    ) -> AsyncIterator[Any]:
        """The SDK's transport, and beside it the fast lane's sender for as long as it is open."""
        poster = self._poster = WirePoster(url, headers, auth, self._max_reply_bytes)
        http = create_mcp_http_client(headers=headers, auth=auth)
        try:
            async with streamable_http_client(url, http_client=http) as streams:
                yield streams
        finally:
            if self._poster is poster:
                self._poster = None
            with anyio.CancelScope(shield=True):
                await poster.close()

    async def _serve_one_connection(self) -> None:
        if self._startup_check is not None:
            decision = self._startup_check(self.server_id, self.spec)
            self.refusal = None if decision.allowed else decision
            if self.refusal is not None:
                self._connected.set()  # waiters see the refusal now instead of waiting out a timeout
                raise UpstreamError(decision.detail)  # run() records it and retries on its backoff
        client = Client(
            self._transport(),
            mode="auto",
            read_timeout_seconds=self.request_timeout,
            message_handler=self._on_message,
            # By default elicitation is declared so modern servers can ask through multi round-trip
            # results, which the gateway relays only to clients that declared it themselves
            # (gateway.py), and pushed requests are refused. Sampling and roots are not declared:
            # the server must answer -32021 rather than assume what the real client cannot do.
            # A connection dedicated to one legacy client bridges pushes to it instead.
            elicitation_callback=self._callbacks.elicitation,
            sampling_callback=self._callbacks.sampling,
            list_roots_callback=self._callbacks.roots,
            client_info=types.Implementation(name="mcpwarden", version=mcpwarden.__version__),
            cache=None,
            # Lets the SDK hand back a caller's CreateTaskResult (see _forward_client_capabilities).
            extensions=[TasksRelay()],
        )
        # The handshake is bounded by the client's read timeout; a cancel scope around entering
        # the client cannot be used, since the client's own task groups outlive that scope.
        async with client:
            if client.protocol_version in MODERN_PROTOCOL_VERSIONS:
                _forward_client_capabilities(client)
            try:
                await self._replace_catalog(await self._list_catalog(client, ALL_KINDS, client.instructions))
                self._client = client
                self.last_error = None
                self._connected.set()
                logger.info(
                    "upstream %s connected (%s, %d tools)",
                    self.server_id,
                    client.protocol_version,
                    len(self.catalog.tools),
                )
                async with anyio.create_task_group() as tg:
                    if client.protocol_version in MODERN_PROTOCOL_VERSIONS:
                        tg.start_soon(self._listen, client)
                    if self._poll_interval:
                        tg.start_soon(self._poll_tools, client, self._poll_interval)
                    if self.child is not None:
                        await self.child.exited.wait()
                        raise UpstreamError(f"server process exited (pid {self.child.pid})")
                    await anyio.sleep_forever()
            finally:
                self._client = None

    # -- catalog -------------------------------------------------------------------------------

    def request_relist(self, kinds: frozenset[ChangeKind]) -> None:
        self._relist_wanted |= kinds
        self._relist_signal.set()

    async def _relist_loop(self) -> None:
        while True:
            await self._relist_signal.wait()
            self._relist_signal = anyio.Event()
            kinds, self._relist_wanted = frozenset(self._relist_wanted), set()
            client = self._client
            if client is not None and kinds:
                try:
                    fresh = await self._list_catalog(client, kinds, client.instructions)
                    await self._replace_catalog(fresh, announced=kinds)
                except Exception as exc:
                    logger.warning("re-listing upstream %s failed: %s", self.server_id, _describe(exc))
            await anyio.sleep(RELIST_INTERVAL)

    async def _poll_tools(self, client: Client, interval: float) -> None:
        """List tools again every `interval` seconds; only a real difference is reported."""
        while True:
            await anyio.sleep(interval)
            try:
                await self._replace_catalog(
                    await self._list_catalog(client, frozenset({"tools"}), client.instructions)
                )
            except Exception as exc:
                logger.warning("polling upstream %s failed: %s", self.server_id, _describe(exc))

    async def _replace_catalog(self, new: Catalog, announced: frozenset[ChangeKind] = frozenset()) -> None:
        """Install a fresh listing and tell the gateway which kinds changed.

        What the server announced is passed on even when the listing looks the same (a tool may
        have come and gone between two listings); a reconnect only reports real differences.
        """
        old, self.catalog = self.catalog, new
        changed: set[ChangeKind] = set(announced)
        if new.tools != old.tools or new.instructions != old.instructions:
            changed.add("tools")
        if new.prompts != old.prompts:
            changed.add("prompts")
        if new.resources != old.resources or new.templates != old.templates:
            changed.add("resources")
        if changed:
            await self._on_change(self.server_id, frozenset(changed))

    async def _list_catalog(
        self, client: Client, kinds: frozenset[ChangeKind], instructions: str | None
    ) -> Catalog:
        previous = self.catalog
        tools, prompts = previous.tools, previous.prompts
        resources, templates = previous.resources, previous.templates
        caps = client.server_capabilities
        with anyio.fail_after(self.request_timeout):
            if "tools" in kinds:
                tools = await self._paginate(client.list_tools, "tools") if caps.tools else ()
            if "prompts" in kinds:
                prompts = await self._paginate(client.list_prompts, "prompts") if caps.prompts else ()
            if "resources" in kinds and caps.resources:
                resources = await self._paginate(client.list_resources, "resources")
                templates = await self._paginate(client.list_resource_templates, "resource_templates")
            elif "resources" in kinds:
                resources, templates = (), ()
        index = {tool.name: tool for tool in tools}
        tool_wire = {tool.name: _wire(tool) for tool in tools}
        wire = {
            "prompt": {prompt.name: _wire(prompt) for prompt in prompts},
            "resource": {str(resource.uri): _wire(resource) for resource in resources},
            "template": {template.uri_template: _wire(template) for template in templates},
        }
        return Catalog(
            tools, prompts, resources, templates, instructions, time.time(), index, tool_wire, wire
        )

    async def _paginate(self, list_page: Callable[..., Awaitable[Any]], field: str) -> tuple[Any, ...]:
        items: list[Any] = []
        cursor: str | None = None
        for _ in range(MAX_LIST_PAGES):
            page = await list_page(cursor=cursor)
            items.extend(getattr(page, field))
            cursor = page.next_cursor
            if not cursor or len(items) >= MAX_CATALOG_ITEMS:
                break
        if len(items) > MAX_CATALOG_ITEMS:
            logger.warning(
                "upstream %s listed %d %s; keeping the first %d",
                self.server_id,
                len(items),
                field,
                MAX_CATALOG_ITEMS,
            )
        return tuple(items[:MAX_CATALOG_ITEMS])

    # -- notifications -------------------------------------------------------------------------

    async def _on_message(self, message: types.ServerNotification | Exception) -> None:
        if isinstance(message, Exception):
            logger.warning("upstream %s sent an unusable message: %s", self.server_id, _describe(message))
            return
        if isinstance(message, types.ToolListChangedNotification):
            self.request_relist(frozenset({"tools"}))
        elif isinstance(message, types.PromptListChangedNotification):
            self.request_relist(frozenset({"prompts"}))
        elif isinstance(message, types.ResourceListChangedNotification):
            self.request_relist(frozenset({"resources"}))
        elif isinstance(message, types.ResourceUpdatedNotification):
            await self._on_resource_updated(self.server_id, str(message.params.uri))

    async def _listen(self, client: Client) -> None:
        """Modern upstreams deliver changes on a `subscriptions/listen` stream."""
        from mcp.shared.subscriptions import (
            PromptsListChanged,
            ResourcesListChanged,
            ResourceUpdated,
            ToolsListChanged,
        )

        try:
            async with client.listen(
                tools_list_changed=True, prompts_list_changed=True, resources_list_changed=True
            ) as subscription:
                async for event in subscription:
                    if isinstance(event, ToolsListChanged):
                        self.request_relist(frozenset({"tools"}))
                    elif isinstance(event, PromptsListChanged):
                        self.request_relist(frozenset({"prompts"}))
                    elif isinstance(event, ResourcesListChanged):
                        self.request_relist(frozenset({"resources"}))
                    elif isinstance(event, ResourceUpdated):
                        await self._on_resource_updated(self.server_id, event.uri)
        except (MCPError, TimeoutError) as exc:
            # A server without subscriptions still works; it just cannot tell us about changes.
            logger.info("upstream %s offers no change subscription: %s", self.server_id, _describe(exc))
        except Exception as exc:
            logger.info("upstream %s change subscription ended: %s", self.server_id, _describe(exc))


def _wire(definition: Any) -> dict[str, Any]:
    dumped: dict[str, Any] = definition.model_dump(by_alias=True, mode="json", exclude_none=True)
    return dumped


def _describe(exc: BaseException) -> str:
    """A one-line description for logs: the type and message, never a traceback."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(e) for e in exc.exceptions)
    text = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {text[:300]}"


# Server-to-client requests on the shared connection cannot be tied to the client request that
# caused them, so the gateway refuses them instead of guessing whom to ask. Modern servers use
# multi round-trip results instead, which the gateway relays with the call they belong to.
async def _refuse_elicitation(
    context: ClientRequestContext, params: types.ElicitRequestParams
) -> types.ElicitResult | types.ErrorData:
    return types.ErrorData(
        code=types.METHOD_NOT_FOUND, message="elicitation is not available through the gateway"
    )


async def _refuse_sampling(
    context: ClientRequestContext, params: types.CreateMessageRequestParams
) -> types.CreateMessageResult | types.CreateMessageResultWithTools | types.ErrorData:
    return types.ErrorData(
        code=types.METHOD_NOT_FOUND, message="sampling is not available through the gateway"
    )


async def _no_roots(context: ClientRequestContext) -> types.ListRootsResult | types.ErrorData:
    return types.ListRootsResult(roots=[])
