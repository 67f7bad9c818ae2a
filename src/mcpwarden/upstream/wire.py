"""The fast lane's side of an upstream: requests and results as JSON, without the SDK's models.

`Gateway.call_tool_wire` sends through `Upstream.request_wire`, which picks the way: a stdio child's
own pipe (`upstream/stdio.WireRequests`), a POST to a modern HTTP upstream (`WirePoster` here), or
the upstream session's dispatcher for anything else (legacy HTTP sessions). Every way ends in
`result_of`: the `result` of a well-formed reply, or an `MCPError` the gateway maps like the SDK's.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Mapping
from typing import Any

import aiohttp
import mcp_types as types
import yarl
from mcp.shared.exceptions import MCPError

from mcpwarden import reasons, wirejson
from mcpwarden.upstream.credentials import ClientCredentialsAuth

WIRE_ID_PREFIX = "mcpwarden-"  # never one of the SDK session's own (integer) ids
_POST_HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
_ids = itertools.count(1)
_CONNECT_TIMEOUT = 30.0  # seconds; a request's own timeout applies too


def result_of(reply: Any) -> dict[str, Any]:
    """The result of a JSON-RPC reply; MCPError for an error reply, none, or a malformed one."""
    if reply is None:
        raise MCPError(types.CONNECTION_CLOSED, "Connection closed")
    if isinstance(reply, dict):
        error, result = reply.get("error"), reply.get("result")
        if isinstance(error, dict) and "result" not in reply:
            code, message = error.get("code"), error.get("message")
            if isinstance(code, int) and isinstance(message, str):
                raise MCPError(code, message, error.get("data"))
        elif isinstance(result, dict) and "error" not in reply:
            return result
    raise invalid_reply()


def invalid_reply() -> MCPError:
    return MCPError(
        types.INTERNAL_ERROR,
        "the server sent an invalid reply",
        {"reason": reasons.UPSTREAM_INVALID_REPLY, "source": "mcpwarden"},
    )


class WirePoster:
    """Sends the fast lane's requests to one modern (stateless) Streamable HTTP upstream.

    It uses aiohttp rather than the SDK's httpx2 client: on this project's loopback measurement a
    POST cost httpx2 about three times aiohttp's CPU (687 against 233 µs), the largest single cost
    of a relayed HTTP call.
    Everything else about an HTTP upstream (handshake, listings, SSE subscriptions, legacy
    sessions) stays with the SDK. Requests carry only the gateway's own credentials: the configured
    `headers` and, for an OAuth upstream, the gateway's client-credentials token (fetched again
    once on a 401, as the SDK lane's auth flow does); never the caller's (THREATS A4, D16). No
    cookies are kept and no redirect is followed.
    """

    def __init__(
        self, url: str, headers: Mapping[str, str], auth: ClientCredentialsAuth | None, max_bytes: int
    ) -> None:
        self.url = yarl.URL(url)  # parsed once, not on every request
        self.auth = auth
        self.max_bytes = max_bytes
        self._session = aiohttp.ClientSession(
            headers={**headers, **_POST_HEADERS},
            cookie_jar=aiohttp.DummyCookieJar(),
            # `post` bounds each request as a whole (asyncio.timeout), so aiohttp's own overall
            # timer, armed and cancelled on every request, would only duplicate it.
            timeout=aiohttp.ClientTimeout(total=None, sock_connect=_CONNECT_TIMEOUT),
        )

    async def close(self) -> None:
        await self._session.close()

    async def post(
        self, method: str, params: Mapping[str, Any], headers: Mapping[str, str], timeout: float | None
    ) -> dict[str, Any]:
        """The result of one request, answered as JSON or as SSE; MCPError as `result_of` says.

        `headers` are what the upstream session's stamp produced (protocol version, method, name,
        `Mcp-Param-*`). The body is read up to `max_bytes`, as a stdio line is (THREATS E4).
        Closing the request is the modern cancellation signal, so a cancelled caller cancels
        upstream too.
        """
        request_id = f"{WIRE_ID_PREFIX}{next(_ids)}"
        body = wirejson.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
        try:
            async with asyncio.timeout(timeout):
                status, content_type, content, token = await self._send(body, headers, None)
                if status == 401 and token is not None:  # revoked or rotated early: renew once
                    status, content_type, content, _ = await self._send(body, headers, token)
        except TimeoutError:
            raise MCPError(types.REQUEST_TIMEOUT, f"no answer within {timeout} seconds") from None
        except aiohttp.ClientError:
            raise MCPError(types.CONNECTION_CLOSED, "Connection closed") from None
        reply: Any = None
        if content_type.startswith("application/json"):
            reply = _loads(content)
        elif content_type.startswith("text/event-stream"):
            reply = _reply_in_events(content.decode("utf-8", "replace"), request_id)
        if status >= 300 and not (isinstance(reply, dict) and "error" in reply):
            # What the SDK's transport says for a failed POST without a JSON-RPC error in it.
            code = types.METHOD_NOT_FOUND if status == 404 else types.INTERNAL_ERROR
            raise MCPError(code, f"the server answered HTTP {status}")
        if isinstance(reply, dict) and reply.get("id") not in (request_id, None):
            raise invalid_reply()
        return result_of(reply)

    async def _send(
        self, body: bytes, headers: Mapping[str, str], stale: str | None
    ) -> tuple[int, str, bytes, str | None]:
        """(status, content type, body, the token sent if any); `stale` is a token refused before."""
        token = await self.auth.token(stale=stale) if self.auth is not None else None
        if token is not None:
            headers = {**headers, "authorization": f"Bearer {token}"}
        post = self._session.post(self.url, data=body, headers=headers, allow_redirects=False)
        async with post as response:
            content = await self._read_capped(response)
            return response.status, response.headers.get("content-type", "").lower(), content, token

    async def _read_capped(self, response: aiohttp.ClientResponse) -> bytes:
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.content.iter_any():
            size += len(chunk)
            if size > self.max_bytes:
                raise MCPError(
                    types.INTERNAL_ERROR,
                    f"the server's answer is over the {self.max_bytes}-byte limit",
                    {"reason": reasons.RESULT_TOO_LARGE, "source": "mcpwarden"},
                )
            chunks.append(chunk)
        return b"".join(chunks)


def _loads(data: bytes) -> Any:
    try:
        return wirejson.loads(data)
    except ValueError:
        return None


def _reply_in_events(stream: str, request_id: str) -> Any:
    """The reply to `request_id` among the `data:` payloads of an SSE body (notifications skipped)."""
    for event in stream.replace("\r\n", "\n").split("\n\n"):
        data = "\n".join(line[5:].removeprefix(" ") for line in event.split("\n") if line.startswith("data:"))
        message = _loads(data.encode()) if data else None
        if isinstance(message, dict) and message.get("id") == request_id and "method" not in message:
            return message
    return None
