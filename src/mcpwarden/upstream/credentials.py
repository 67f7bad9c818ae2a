"""The gateway's own credentials for HTTP upstreams; never the client's (THREATS A4, D16).

An upstream gets exactly the headers its configuration names: `headers` (with `${VAR}` from the
environment, expanded at load) and `headers_from_files`, whose values are read from files such
as mounted secrets at every (re)connect, so a rotated secret is picked up by the next reconnect
without a restart. `oauth_client` gets the gateway its own access token by the client
credentials grant (`ClientCredentialsAuth`). The inbound `Authorization` of a client is never
among them: it is consumed by the HTTP front (`mcpwarden.auth.http`) and never reaches the
upstream layer.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator
from pathlib import Path
from urllib.parse import quote_plus

import anyio
import httpx
import httpx2

from mcpwarden.config import ServerSpec, UpstreamOAuthSettings
from mcpwarden.errors import UpstreamError

MAX_SECRET_FILE_BYTES = 16 * 1024
_EXPIRY_MARGIN = 30.0  # seconds
_DEFAULT_LIFETIME = 300.0  # seconds, when the token endpoint does not say


def upstream_headers(server_id: str, spec: ServerSpec, base_dir: Path | None = None) -> dict[str, str]:
    """The headers to send to server `server_id`; raises UpstreamError naming the file, never its content."""
    headers = dict(spec.headers)
    for name, file_name in spec.headers_from_files.items():
        path = Path(file_name)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        try:
            with path.open("rb") as handle:
                raw = handle.read(MAX_SECRET_FILE_BYTES + 1)
        except OSError as exc:
            raise UpstreamError(
                f"server {server_id!r}: cannot read the file for header {name!r} ({path}): {exc.strerror}"
            ) from None
        if len(raw) > MAX_SECRET_FILE_BYTES:
            raise UpstreamError(f"server {server_id!r}: the file for header {name!r} ({path}) is too large")
        try:
            value = raw.decode("utf-8").strip()
        except UnicodeDecodeError:
            raise UpstreamError(
                f"server {server_id!r}: the file for header {name!r} ({path}) is not UTF-8"
            ) from None
        if not value or any(ch in value for ch in "\r\n\0"):
            # A header value must be one line; anything else would let a file inject more headers.
            raise UpstreamError(
                f"server {server_id!r}: the file for header {name!r} ({path}) must hold one line"
            )
        headers[name] = value
    return headers


class ClientCredentialsAuth(httpx2.Auth):
    """Adds the gateway's own OAuth access token (client credentials grant) to upstream requests.

    The token is fetched on first use, cached until shortly before it expires, and fetched again
    once when the upstream answers 401 (revoked or rotated early). The client secret goes only to
    the configured token endpoint, in an HTTP Basic header (RFC 6749 §2.3.1); neither it nor the
    token is ever logged. Token requests follow no redirects and read at most 64 KB.
    """

    requires_response_body = False

    def __init__(self, server_id: str, settings: UpstreamOAuthSettings, timeout: float = 10.0) -> None:
        self.server_id = server_id
        self.settings = settings
        self.timeout = timeout
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = anyio.Lock()
        self.fetches = 0

    async def async_auth_flow(
        self, request: httpx2.Request
    ) -> AsyncGenerator[httpx2.Request, httpx2.Response]:
        request.headers["Authorization"] = f"Bearer {await self.token()}"
        response = yield request
        if response.status_code == 401:
            stale = request.headers["Authorization"].removeprefix("Bearer ")
            request.headers["Authorization"] = f"Bearer {await self.token(stale=stale)}"
            yield request

    async def token(self, stale: str | None = None) -> str:
        """The current access token; a fresh one if `stale` (a token the upstream refused) is it."""
        async with self._lock:
            fresh = self._token is not None and time.monotonic() < self._expires_at
            if fresh and (stale is None or self._token != stale):
                assert self._token is not None
                return self._token
            self._token, lifetime = await self._fetch()
            # Renew a little early, so a token never expires on its way to the upstream.
            self._expires_at = time.monotonic() + max(lifetime - _EXPIRY_MARGIN, lifetime / 2)
            return self._token

    async def _fetch(self) -> tuple[str, float]:
        settings = self.settings
        form = {"grant_type": "client_credentials"}
        if settings.scope:
            form["scope"] = settings.scope
        if settings.resource:
            form["resource"] = settings.resource
        self.fetches += 1
        where = f"server {self.server_id!r}: token endpoint"
        try:
            with anyio.fail_after(self.timeout):
                async with httpx.AsyncClient(
                    timeout=self.timeout, follow_redirects=False, trust_env=False
                ) as http:
                    response = await http.post(
                        settings.token_url,
                        data=form,
                        auth=(quote_plus(settings.client_id), quote_plus(self._secret())),  # RFC 6749 §2.3.1
                        headers={"Accept": "application/json"},
                    )
        except (httpx.HTTPError, TimeoutError, OSError) as exc:
            raise UpstreamError(f"{where} unreachable ({type(exc).__name__})") from None
        if response.status_code != 200:
            raise UpstreamError(f"{where} answered HTTP {response.status_code}")
        if len(response.content) > MAX_SECRET_FILE_BYTES * 4:
            raise UpstreamError(f"{where} answered too large a body")
        try:
            body = response.json()
        except ValueError:
            raise UpstreamError(f"{where} answered something other than JSON") from None
        token = body.get("access_token") if isinstance(body, dict) else None
        token_type = body.get("token_type", "Bearer") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token or any(ch in token for ch in "\r\n\0 "):
            raise UpstreamError(f"{where} answered no usable access_token")
        if not isinstance(token_type, str) or token_type.lower() != "bearer":
            raise UpstreamError(f"{where} answered a token of a type other than Bearer")
        lifetime = body.get("expires_in", _DEFAULT_LIFETIME)
        if isinstance(lifetime, bool) or not isinstance(lifetime, int | float) or lifetime <= 0:
            lifetime = _DEFAULT_LIFETIME
        return token, float(min(lifetime, 86400))

    def _secret(self) -> str:
        settings = self.settings
        if settings.client_secret is not None:
            return settings.client_secret
        assert settings.client_secret_file is not None
        path = Path(settings.client_secret_file)
        try:
            value = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError):
            raise UpstreamError(
                f"server {self.server_id!r}: cannot read the client secret file {path}"
            ) from None
        if not value:
            raise UpstreamError(f"server {self.server_id!r}: the client secret file {path} is empty")
        return value


def upstream_auth(server_id: str, spec: ServerSpec, timeout: float = 10.0) -> ClientCredentialsAuth | None:
    """The auth flow for an HTTP upstream's client, or None when it authenticates by headers only."""
    if spec.oauth_client is None:
        return None
    return ClientCredentialsAuth(server_id, spec.oauth_client, timeout)
