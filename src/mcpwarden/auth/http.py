"""HTTP authentication: every request to the MCP endpoint proves who it is before anything else.

Installed by `transport/http.py` in front of `/mcp` (`HttpAuth.wrap`), in this order:

1. Host and Origin (THREATS A10): a foreign page gets 403/421 before it learns anything else;
2. credentials, from headers only (A13, D*): `?access_token=` is refused (D17), more than one
   `Authorization` header is refused, one longer than `MAX_AUTHORIZATION_BYTES` gets 431 before
   any decoding; then an API key (`mcpw_...`) or a JWT is checked. No or bad credentials get 401
   with `WWW-Authenticate: Bearer resource_metadata="<PRM URL>"` (plus `error="invalid_token"`
   for a bad one) and a one-line JSON body; never a trace, never the token;
3. the identity goes into the ASGI scope under `IDENTITY_SCOPE_KEY`, where the pipeline reads it,
   and as `scope["user"]`, which the SDK's session manager uses to bind a legacy session to the
   credential that opened it: another principal's `Mcp-Session-Id` answers 404 (A6, D21);
4. after the body has passed the wire checks (`HttpAuth.scope_challenge`): a `tools/call` whose
   tool needs a scope the JWT lacks gets 403 `error="insufficient_scope", scope="..."` naming only
   that tool's scopes (A11, D14), with a JSON-RPC error body carrying reason `insufficient-scope`.

RFC 9728 Protected Resource Metadata is served at `/.well-known/oauth-protected-resource` and
`/.well-known/oauth-protected-resource/<path of the resource>` (`HttpAuth.routes`).

The client's credential never leaves this module: upstream connections carry their own
configured headers only (A4, D16), and nothing here logs a token.
"""

from __future__ import annotations

import functools
import json
import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from mcp.server.auth.middleware.bearer_auth import AuthenticatedUser
from mcp.server.auth.provider import AccessToken
from mcp.server.transport_security import TransportSecurityMiddleware, TransportSecuritySettings
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from mcpwarden import reasons
from mcpwarden.auth.jwks import JwksCache
from mcpwarden.auth.jwt import MAX_TOKEN_BYTES, JwtValidator, TokenError
from mcpwarden.auth.keys import ApiKeyStore, looks_like_api_key
from mcpwarden.auth.scopes import ToolScopes
from mcpwarden.config import AuthSettings, Settings
from mcpwarden.exchange import ANONYMOUS, IDENTITY_SCOPE_KEY, Identity
from mcpwarden.transport.wire import read_body, replay_body

logger = logging.getLogger(__name__)

PRM_PATH = "/.well-known/oauth-protected-resource"
MAX_AUTHORIZATION_BYTES = MAX_TOKEN_BYTES + len("Bearer ")
API_KEY_ISSUER = "mcpwarden"
_BEARER = re.compile(r"^Bearer +([A-Za-z0-9\-._~+/]+=*) *$", re.IGNORECASE)
_INSUFFICIENT_SCOPE_CODE = -32003  # the pipeline's code for a denial
_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


class Authenticator:
    """API keys and/or JWTs, as the `auth` settings allow; `authenticate` raises TokenError."""

    def __init__(self, keys: ApiKeyStore | None, tokens: JwtValidator | None) -> None:
        self.keys = keys
        self.tokens = tokens

    @classmethod
    def from_settings(cls, settings: Settings) -> Authenticator:
        # CONTRACT: "auth omitted: stdio needs none; HTTP requires an API key".
        auth = settings.auth or AuthSettings()
        keys = ApiKeyStore(settings.state_dir) if auth.api_keys else None
        if keys is not None and auth.oauth is None and not auth.anonymous and not keys.list():
            logger.warning(
                "no API keys yet, so no HTTP client can connect: mint one with "
                "`mcpwarden keys create --principal NAME -c CONFIG`"
            )
        tokens = None
        if auth.oauth is not None:
            base = settings.source.parent if settings.source is not None else Path.cwd()
            tokens = JwtValidator(auth.oauth, JwksCache(auth.oauth, base_dir=base))
        return cls(keys, tokens)

    async def authenticate(self, token: str) -> Identity:
        if looks_like_api_key(token):
            if self.keys is None:
                raise TokenError("API keys are not accepted here")
            record = self.keys.verify(token)
            if record is None:
                raise TokenError("unknown or revoked API key")
            return Identity(
                name=record.principal,
                roles=frozenset(record.roles),
                method="api-key",
                attributes={"key_id": record.id},
            )
        if self.tokens is None:
            raise TokenError("not a valid API key")
        return await self.tokens.validate(token)

    def close(self) -> None:
        if self.keys is not None:
            self.keys.close()


class HttpAuth:
    """The authentication layer of the HTTP front: middleware, scope challenge, metadata routes."""

    def __init__(
        self,
        authenticator: Authenticator,
        security: TransportSecuritySettings,
        *,
        audience: str | None = None,
        issuer: str | None = None,
        tool_scopes: ToolScopes | None = None,
        anonymous: bool = False,
    ) -> None:
        self.authenticator = authenticator
        self.anonymous = anonymous
        self.security = TransportSecurityMiddleware(security)
        self.audience = audience
        self.issuer = issuer
        self.tool_scopes = tool_scopes

    @classmethod
    def from_settings(
        cls, settings: Settings, security: TransportSecuritySettings, host: str = "127.0.0.1"
    ) -> HttpAuth:
        oauth = settings.auth.oauth if settings.auth is not None else None
        anonymous = settings.auth is not None and settings.auth.anonymous
        if anonymous and host not in _LOOPBACK_HOSTS:
            # Fail closed: an unauthenticated door is only ever opened on this machine.
            logger.error(
                "auth.anonymous is ignored: %s is not a loopback address; credentials required", host
            )
            anonymous = False
        elif anonymous:
            logger.warning("auth.anonymous: HTTP callers without credentials are served as 'anonymous'")
        return cls(
            Authenticator.from_settings(settings),
            security,
            audience=oauth.audience if oauth is not None else None,
            issuer=oauth.issuer if oauth is not None else None,
            tool_scopes=ToolScopes.from_settings(settings),
            anonymous=anonymous,
        )

    def close(self) -> None:
        self.authenticator.close()

    # -- metadata (RFC 9728) --------------------------------------------------------------------

    @property
    def routes(self) -> list[BaseRoute]:
        paths = {PRM_PATH, PRM_PATH + "/mcp"}
        if self.audience is not None:
            resource_path = urlsplit(self.audience).path.rstrip("/")
            if resource_path:
                paths.add(PRM_PATH + resource_path)
        return [Route(path, self._metadata, methods=["GET"]) for path in sorted(paths)]

    async def _metadata(self, request: Request) -> Response:
        body: dict[str, Any] = {
            "resource": self._resource(request.scope),
            "authorization_servers": [self.issuer] if self.issuer is not None else [],
            "bearer_methods_supported": ["header"],
            "resource_name": "mcpwarden",
        }
        if self.tool_scopes is not None:
            body["scopes_supported"] = list(self.tool_scopes.all_scopes)
        return JSONResponse(body, headers={"Cache-Control": "max-age=300"})

    def _resource(self, scope: Scope) -> str:
        if self.audience is not None:
            return self.audience
        return f"{_origin(scope)}/mcp"

    def metadata_url(self, scope: Scope) -> str:
        if self.audience is not None:
            parts = urlsplit(self.audience)
            return f"{parts.scheme}://{parts.netloc}{PRM_PATH}{parts.path.rstrip('/')}"
        return f"{_origin(scope)}{PRM_PATH}/mcp"

    # -- the middleware -------------------------------------------------------------------------

    def wrap(self, app: ASGIApp) -> ASGIApp:
        """`app` behind Host/Origin checks and authentication."""

        async def authenticated(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            refusal = await self.security.validate_request(Request(scope), is_post=False)
            if refusal is None:
                identity, refusal = await self._identify(scope)
                if identity is not None:
                    scope[IDENTITY_SCOPE_KEY] = identity
                    if identity is not ANONYMOUS:
                        scope["user"] = _session_owner(identity)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
            await app(scope, receive, send)

        return authenticated

    async def _identify(self, scope: Scope) -> tuple[Identity | None, Response | None]:
        query = scope.get("query_string", b"")
        if query and any(
            name == "access_token" for name, _ in parse_qsl(query.decode("latin-1"), keep_blank_values=True)
        ):
            return None, self._challenge(scope, 401, "invalid_request", "tokens in the URL are not accepted")
        values = [value for name, value in scope["headers"] if name == b"authorization"]
        if not values:
            if self.anonymous:
                return ANONYMOUS, None
            return None, self._challenge(scope, 401, None, "authentication required")
        if len(values) > 1:
            return None, self._challenge(scope, 401, "invalid_request", "more than one Authorization header")
        if len(values[0]) > MAX_AUTHORIZATION_BYTES:
            return None, self._challenge(scope, 431, "invalid_token", "Authorization header too large")
        match = _BEARER.match(values[0].decode("latin-1"))
        if match is None:
            return None, self._challenge(
                scope, 401, "invalid_token", "expected: Authorization: Bearer <token>"
            )
        try:
            return await self.authenticator.authenticate(match.group(1)), None
        except TokenError as exc:
            logger.info("refused %s %s: %s", scope.get("method"), scope.get("path"), exc)
            return None, self._challenge(scope, 401, "invalid_token", str(exc))
        except Exception as exc:  # fail closed; the message may hold token material, so only its type
            logger.error("authentication failed unexpectedly: %s", type(exc).__name__)
            return None, self._challenge(scope, 401, "invalid_token", "the token could not be checked")

    def _challenge(
        self,
        scope: Scope,
        status: int,
        error: str | None,
        description: str,
        required_scopes: Sequence[str] = (),
    ) -> Response:
        parts = [f'resource_metadata="{self.metadata_url(scope)}"']
        if error is not None:
            parts.append(f'error="{error}"')
            parts.append(f'error_description="{_quoted_safe(description)}"')
        if required_scopes:
            parts.append(f'scope="{" ".join(required_scopes)}"')
        headers = {"WWW-Authenticate": "Bearer " + ", ".join(parts), "Cache-Control": "no-store"}
        body = {"error": error or "unauthorized", "error_description": description}
        return JSONResponse(body, status_code=status, headers=headers)

    # -- per-tool scopes ------------------------------------------------------------------------

    def scope_challenge(self, app: ASGIApp) -> ASGIApp:
        """`app` behind the 403 `insufficient_scope` check; install after the body checks."""
        rules = self.tool_scopes
        if rules is None:
            return app

        async def challenged(scope: Scope, receive: Receive, send: Send) -> None:
            identity = scope.get(IDENTITY_SCOPE_KEY)
            if scope["type"] != "http" or scope["method"] != "POST" or not isinstance(identity, Identity):
                await app(scope, receive, send)
                return
            body = await read_body(receive)
            refusal = self._scope_refusal(scope, identity, rules, body)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
            await app(scope, replay_body(body, receive), send)

        return challenged

    def _scope_refusal(
        self, scope: Scope, identity: Identity, rules: ToolScopes, body: bytes
    ) -> Response | None:
        try:
            message = json.loads(body)
        except ValueError:
            return None  # the wire checks answer malformed bodies; nothing to decide here
        if not isinstance(message, dict) or message.get("method") != "tools/call":
            return None
        params = message.get("params")
        name = params.get("name") if isinstance(params, dict) else None
        if not isinstance(name, str):
            return None
        missing = rules.missing(identity, name)
        if not missing:
            return None
        needed = rules.required(name)
        logger.info("refused %s for %s: needs scope %s", name, identity.name, " ".join(needed))
        response = self._challenge(
            scope, 403, "insufficient_scope", "the token lacks a scope this tool needs", needed
        )
        request_id = message.get("id")
        response.body = json.dumps(
            {
                "jsonrpc": "2.0",
                "id": request_id if isinstance(request_id, str | int) else None,
                "error": {
                    "code": _INSUFFICIENT_SCOPE_CODE,
                    "message": f"calling {name} needs scope {' '.join(needed)}",
                    "data": {"reason": reasons.INSUFFICIENT_SCOPE, "scope": " ".join(needed)},
                },
            },
            separators=(",", ":"),
        ).encode()
        response.headers["content-length"] = str(len(response.body))
        return response


def _session_owner(identity: Identity) -> AuthenticatedUser:
    """The SDK's notion of who opened a session: (client id, issuer, subject); never the token."""
    client = identity.attributes.get("client_id") or identity.attributes.get("azp") or ""
    issuer = identity.attributes.get("iss") if identity.method == "jwt" else API_KEY_ISSUER
    issuer = issuer if isinstance(issuer, str) else None  # a verified token's issuer is a string
    return _owner(f"{identity.method}:{client}", issuer, identity.name, tuple(sorted(identity.scopes)))


@functools.lru_cache(maxsize=1024)
def _owner(client_id: str, issuer: str | None, subject: str, scopes: tuple[str, ...]) -> AuthenticatedUser:
    # One per caller, not one per request: the SDK only reads it.
    token = AccessToken(
        token="", client_id=client_id, scopes=list(scopes), subject=subject, claims={"iss": issuer}
    )
    return AuthenticatedUser(token)


def _origin(scope: Scope) -> str:
    # The Host header has already passed the allow-list (Host/Origin checks run first).
    host = next((value.decode("latin-1") for name, value in scope["headers"] if name == b"host"), None)
    if host is None:
        server = scope.get("server") or ("127.0.0.1", 80)
        host = f"{server[0]}:{server[1]}"
    return f"{scope.get('scheme', 'http')}://{host}"


def _quoted_safe(text: str) -> str:
    return "".join(ch for ch in text if ch.isprintable() and ch not in '"\\')
