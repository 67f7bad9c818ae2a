"""The Streamable HTTP front: `POST /mcp` for MCP (both eras), `GET /healthz` for load balancers.

The SDK's Streamable HTTP app does the wire work (headers, versions, legacy sessions, SSE); we
add the gateway's lifespan (upstreams start before the first request and stop after the last), a
readiness endpoint, body-size caps, and Host/Origin checks that are always on: a browser page on
another origin gets 403, a rebinding DNS name gets 421 (THREATS A10, C16, C17).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from mcp.server.transport_security import TransportSecuritySettings
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route

from mcpwarden.audit.log import SqliteAuditLog
from mcpwarden.config import Settings
from mcpwarden.gateway import Gateway
from mcpwarden.guards import build_guards

logger = logging.getLogger(__name__)

LEGACY_SESSION_HEADER = "mcp-session-id"


def http_principal(ctx: Any) -> str:
    """The authenticated caller; authentication middleware (when configured) sets `scope["user"]`."""
    request = getattr(ctx, "request", None)
    user = request.scope.get("user") if isinstance(request, Request) else None
    identity = getattr(user, "identity", None) or getattr(user, "display_name", None)
    return str(identity) if identity else "anonymous"


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


def build_http_app(settings: Settings, host: str = "127.0.0.1") -> Starlette:
    """The whole ASGI application of `mcpwarden serve`."""
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    audit = SqliteAuditLog(settings.state_dir / "audit.db")
    gateway = Gateway(
        settings,
        transport="http",
        guards=build_guards(settings),
        audit=audit,
        principal_of=http_principal,
        session_key_of=http_session_key,
    )
    ready = False

    async def healthz(request: Request) -> JSONResponse:
        body = gateway.health()
        body["status"] = "ok" if ready else "starting"
        return JSONResponse(body, status_code=200 if ready else 503)

    mcp_app = gateway.server.streamable_http_app(
        streamable_http_path="/mcp",
        host=host,
        transport_security=transport_security(settings, host),
        max_request_body_size=settings.gateway.max_request_kb * 1024,
    )

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

    app = Starlette(
        routes=[Route("/healthz", healthz, methods=["GET"]), Mount("/", app=mcp_app)],
        lifespan=lifespan,
    )
    app.state.gateway = gateway
    return app
