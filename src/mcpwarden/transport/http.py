"""The Streamable HTTP front: `POST /mcp` for MCP (both eras), `GET /healthz` for load balancers.

The SDK's Streamable HTTP app does the wire work (headers, versions, legacy sessions, SSE); we
add the gateway's lifespan (upstreams start before the first request and stop after the last), a
readiness endpoint, body-size caps, and Host/Origin checks that are always on: a browser page on
another origin gets 403, a rebinding DNS name gets 421 (THREATS A10, C16, C17).
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import Any

from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from mcp.shared.inbound import (
    ERROR_CODE_HTTP_STATUS,
    MCP_PARAM_HEADER_PREFIX,
    MCP_PROTOCOL_VERSION_HEADER,
    X_MCP_HEADER_KEY,
    InboundModernRoute,
    classify_inbound_request,
    find_duplicated_routing_header,
    validate_mcp_param_headers,
)
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Mount, Route, Router
from starlette.types import ASGIApp, Receive, Scope, Send

from mcpwarden.approvals.http import ADMIN_PREFIX, approval_routes
from mcpwarden.audit.writer import GroupCommit
from mcpwarden.auth.http import HttpAuth
from mcpwarden.catalog import DefinitionMemo
from mcpwarden.config import Settings
from mcpwarden.exchange import ANONYMOUS, IDENTITY_SCOPE_KEY, Identity
from mcpwarden.gateway import Gateway
from mcpwarden.transport.fastlane import FastCall, FastLane, encode_response
from mcpwarden.transport.sessions import SessionIdTranslation
from mcpwarden.transport.wire import (
    PARSED_MESSAGE_KEY,
    check_shape,
    parse_message,
    read_body,
    replay_body,
)
from mcpwarden.wirejson import loads_exact

logger = logging.getLogger(__name__)

LEGACY_SESSION_HEADER = "mcp-session-id"
MCP_PATH = "/mcp"


def http_principal(ctx: Any) -> Identity:
    """The caller as the HTTP authentication layer established it (ASGI scope key), else anonymous."""
    request = getattr(ctx, "request", None)
    identity = request.scope.get(IDENTITY_SCOPE_KEY) if isinstance(request, Request) else None
    return identity if isinstance(identity, Identity) else ANONYMOUS


def http_session_key(ctx: Any, principal: str) -> str:
    # Legacy clients have a session; stateless modern clients are counted per principal.
    request = getattr(ctx, "request", None)
    session = request.headers.get(LEGACY_SESSION_HEADER) if isinstance(request, Request) else None
    return f"{principal}:{session}" if session else principal


def transport_security(settings: Settings, host: str) -> TransportSecuritySettings:
    hosts = ["127.0.0.1:*", "localhost:*", "[::1]:*"]
    origins = ["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"]
    if host not in ("127.0.0.1", "localhost", "::1", "0.0.0.0", "::"):
        hosts.append(f"{host}:*")
        origins += [f"http://{host}:*", f"https://{host}:*"]
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True,
        allowed_hosts=hosts + list(settings.gateway.allowed_hosts),
        allowed_origins=origins + list(settings.gateway.allowed_origins),
    )


class WireCheckMiddleware:
    """Checks every POST to the MCP endpoint before the SDK sees it (THREATS A10, E1-E4, E19).

    Order matters: a foreign Host or Origin is refused first (421/403), so a hostile page learns
    nothing else; then the media types (415/406), the size (413, before the whole body is read)
    and the JSON-RPC shape (400 with -32700/-32600, never echoing the input).
    """

    def __init__(
        self,
        app: ASGIApp,
        security: TransportSecuritySettings,
        max_body_bytes: int,
        *,
        host_checked: bool = False,
    ) -> None:
        """`host_checked`: a layer in front (the authentication layer) already refused foreign
        Hosts and Origins with these same settings, so this one need not check them again."""
        self.app = app
        self.security = None if host_checked else TransportSecurityMiddleware(security)
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        scope = _without_padded_values(scope)
        request = Request(scope)
        refusal = None
        if self.security is not None:
            refusal = await self.security.validate_request(request, is_post=False)
        if refusal is None and scope["method"] == "POST":
            refusal = self._check_headers(request)
            if refusal is None:
                body, message, refusal = await self._read_body(receive)
                if refusal is None:
                    receive = replay_body(body, receive)
                    scope[PARSED_MESSAGE_KEY] = message
        if refusal is not None:
            await refusal(scope, receive, send)
            return
        await self.app(scope, receive, send)

    def _check_headers(self, request: Request) -> Response | None:
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            return Response("Unsupported Media Type: Content-Type must be application/json", status_code=415)
        accept = request.headers.get("accept", "").lower()
        if "*/*" not in accept and not ("application/json" in accept and "text/event-stream" in accept):
            return Response(
                "Not Acceptable: Accept must list application/json and text/event-stream", status_code=406
            )
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body_bytes:
            return Response("Request body too large", status_code=413)
        return None

    async def _read_body(self, receive: Receive) -> tuple[bytes, dict[str, Any] | None, Response | None]:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return b"", None, Response(status_code=400)
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return b"", None, Response("Request body too large", status_code=413)
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        decoded = loads_exact(body)
        error = check_shape(decoded) if decoded is not None else parse_message(body)[1]
        if error is not None:
            return b"", None, Response(error.to_json(), status_code=400, media_type="application/json")
        return body, decoded, None


_PADDING = (b" ", b"\t")


def _without_padded_values(scope: Scope) -> Scope:
    """The scope with header values trimmed. A field value excludes the whitespace around it (RFC
    9110 5.5); the httptools parser keeps it, and `Mcp-Name:  tool ` must still match the body's
    name (conformance sep-2243). Headers are copied only when one is padded: almost never."""
    headers = scope["headers"]
    if not any(value[:1] in _PADDING or value[-1:] in _PADDING for _, value in headers):
        return scope
    return {**scope, "headers": [(name, value.strip(b" \t")) for name, value in headers]}


class HttpFastLane:
    """The HTTP front's door to the fast lane (transport/fastlane.py), in front of the SDK's app.

    It takes a modern POST to the MCP endpoint only when the SDK would take it too: the fast
    lane's body shape, no duplicated routing header, the headers agreeing with the body (the SDK's
    own validation ladder), and `Mcp-Param-*` headers agreeing with the tool's schema. Anything
    else, including every rejection, goes to the SDK, which answers it. As on the SDK's path, a
    client that disconnects cancels its call, and the answer is `application/json` with the
    status the SDK maps its error code to.
    """

    def __init__(self, app: ASGIApp, lane: FastLane, path: str) -> None:
        self.app = app
        self.lane = lane
        self.path = path
        self._param_headers: DefinitionMemo[bool] = DefinitionMemo()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] != self.path:
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        if request.headers.get(MCP_PROTOCOL_VERSION_HEADER) not in MODERN_PROTOCOL_VERSIONS:
            await self.app(scope, receive, send)
            return
        body = await read_body(receive)
        call = self._fast_call(request, body, scope.get(PARSED_MESSAGE_KEY))
        if call is None:
            await self.app(scope, replay_body(body, receive), send)
            return
        response = await _unless_disconnected(self.lane.answer(call, request), receive)
        if response is not None:
            error = response.get("error")
            status = ERROR_CODE_HTTP_STATUS.get(error["code"], 200) if isinstance(error, dict) else 200
            body = encode_response(response)
            headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})

    def _fast_call(self, request: Request, body: bytes, decoded: Any) -> FastCall | None:
        if decoded is None:  # not behind the wire checks, or not for the fast lane
            decoded = loads_exact(body)
        call = self.lane.accept(decoded)
        if call is None or find_duplicated_routing_header(request.headers.items()) is not None:
            return None
        # accept() took exactly jsonrpc, id, method and params: the message the SDK's ladder reads.
        if not isinstance(classify_inbound_request(decoded, headers=request.headers), InboundModernRoute):
            return None
        arguments = call.params.get("arguments") or {}
        if arguments or any(name.startswith(MCP_PARAM_HEADER_PREFIX.lower()) for name in request.headers):
            schema = self.lane.gateway.tool_input_schema(call.params["name"])
            if (
                schema is not None
                and self._declares_param_headers(call.params["name"], schema)
                and validate_mcp_param_headers(schema, arguments, request.headers)
            ):
                return None
        return call

    def _declares_param_headers(self, name: str, schema: Any) -> bool:
        """Whether the tool's schema may annotate a property with `x-mcp-header`. Without one the
        SDK's header validation has nothing to compare, and walking the schema on every call was a
        measurable share of the HTTP front's work."""
        declares = self._param_headers.get("", name, schema)
        if declares is None:
            declares = X_MCP_HEADER_KEY in json.dumps(schema, default=str)  # once per listed schema
            self._param_headers.put("", name, schema, declares)
        return declares


async def _unless_disconnected(
    answer: Coroutine[Any, Any, dict[str, Any]], receive: Receive
) -> dict[str, Any] | None:
    """The answer, or None when the client goes away first: then the call is cancelled, and so is
    its request upstream. (Plain asyncio tasks: an anyio task group here cost more than the rest
    of the HTTP front's own work per call.)"""
    answering = asyncio.current_task()
    if answering is None:  # not in a task (never under an ASGI server): nothing to cancel
        return await answer
    went_away = False

    async def watch() -> None:
        nonlocal went_away
        while (await receive())["type"] != "http.disconnect":
            pass
        went_away = True
        answering.cancel()

    # The answer is computed in this task; only the watch needs one of its own.
    watcher = asyncio.get_running_loop().create_task(watch())
    try:
        return await answer
    except asyncio.CancelledError:
        if went_away:
            answering.uncancel()
            return None  # cancelled by the watcher: the client went away
        raise
    finally:
        watcher.cancel()


def build_http_app(settings: Settings, host: str = "127.0.0.1") -> ASGIApp:
    """The whole ASGI application of `mcpwarden serve`."""
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    audit = GroupCommit.for_settings(settings)
    gateway = Gateway(
        settings,
        transport="http",
        audit=audit,
        principal_of=http_principal,
        session_key_of=http_session_key,
    )
    ready = False

    async def healthz(request: Request) -> JSONResponse:
        body = gateway.health()
        body["status"] = "ok" if ready else "starting"
        return JSONResponse(body, status_code=200 if ready else 503)

    security = transport_security(settings, host)
    max_body = settings.gateway.max_request_kb * 1024
    sdk_app = gateway.server.streamable_http_app(
        streamable_http_path=MCP_PATH, host=host, transport_security=security, max_request_body_size=max_body
    )
    mcp_app = HttpFastLane(SessionIdTranslation(sdk_app), FastLane(gateway), MCP_PATH)
    # Authentication runs after Host/Origin and before the body is read; the scope challenge after
    # the body checks (see mcpwarden.auth.http). HTTP always authenticates (API keys by default).
    auth = HttpAuth.from_settings(settings, security, host)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        nonlocal ready
        try:
            async with gateway.running(), gateway.server.session_manager.run():
                ready = True
                yield
        finally:
            ready = False
            audit.close()
            auth.close()

    admin_routes = approval_routes(settings, audit)
    mcp_endpoint = auth.wrap(
        WireCheckMiddleware(auth.scope_challenge(mcp_app), security, max_body, host_checked=True)
    )
    app = Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            *auth.routes,
            Mount(ADMIN_PREFIX, app=auth.wrap(Router(admin_routes, redirect_slashes=False))),
            Mount("/", app=mcp_endpoint),
        ],
        lifespan=lifespan,
    )
    return EndpointFirst(app, MCP_PATH, mcp_endpoint)


class EndpointFirst:
    """The ASGI app `mcpwarden serve` runs: requests for the MCP endpoint go straight to its own
    chain (authentication, wire checks, fast lane, SDK), which answers every outcome itself;
    everything else (lifespan, health, metadata, admin) goes to the Starlette app. Starlette's
    exception and routing layers cost a measurable share of a relayed call and add nothing on
    that path: uvicorn answers an unexpected exception with a plain 500 as they would."""

    def __init__(self, app: Starlette, path: str, endpoint: ASGIApp) -> None:
        self.app = app
        self.path = path
        self.endpoint = endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == self.path:
            await self.endpoint(scope, receive, send)
        else:
            await self.app(scope, receive, send)
