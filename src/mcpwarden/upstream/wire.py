"""The fast lane's side of an upstream: requests and results as JSON, without the SDK's models.

`Gateway.call_tool_wire` sends through `Upstream.request_wire`, which picks the way: a stdio child's
own pipe (`upstream/stdio.WireRequests`), a POST to a modern HTTP upstream (`post_wire` here), or
the upstream session's dispatcher for anything else (legacy HTTP sessions). Every way ends in
`result_of`: the `result` of a well-formed reply, or an `MCPError` the gateway maps like the SDK's.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

import anyio
import httpx2
import mcp_types as types
import orjson
from mcp.shared.exceptions import MCPError

from mcpwarden import reasons

WIRE_ID_PREFIX = "mcpwarden-"  # never one of the SDK session's own (integer) ids
_POST_HEADERS = {"accept": "application/json, text/event-stream", "content-type": "application/json"}
_ids = itertools.count(1)


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


async def post_wire(
    http: httpx2.AsyncClient,
    url: str,
    method: str,
    params: Mapping[str, Any],
    headers: Mapping[str, str],
    timeout: float | None,
    max_bytes: int,
) -> dict[str, Any]:
    """One request to a modern (stateless) Streamable HTTP server, answered as JSON or as SSE.

    `headers` are what the upstream session's stamp produced (protocol version, method, name,
    `Mcp-Param-*`); the client carries the gateway's own credentials, never the caller's. The body
    is read up to `max_bytes`, as a stdio line is (THREATS E4). Closing the request is the modern
    cancellation signal, so a cancelled caller cancels upstream too.
    """
    request_id = f"{WIRE_ID_PREFIX}{next(_ids)}"
    body = orjson.dumps({"jsonrpc": "2.0", "id": request_id, "method": method, "params": params})
    try:
        with anyio.fail_after(timeout):
            async with http.stream(
                "POST", url, content=body, headers={**_POST_HEADERS, **headers}
            ) as response:
                content = await _read_capped(response, max_bytes)
    except TimeoutError:
        raise MCPError(types.REQUEST_TIMEOUT, f"no answer within {timeout} seconds") from None
    except httpx2.HTTPError:
        raise MCPError(types.CONNECTION_CLOSED, "Connection closed") from None
    content_type = response.headers.get("content-type", "").lower()
    reply: Any = None
    if content_type.startswith("application/json"):
        reply = _loads(content)
    elif content_type.startswith("text/event-stream"):
        reply = _reply_in_events(content.decode("utf-8", "replace"), request_id)
    if response.status_code >= 400 and not (isinstance(reply, dict) and "error" in reply):
        # What the SDK's transport says for a failed POST without a JSON-RPC error in it.
        code = types.METHOD_NOT_FOUND if response.status_code == 404 else types.INTERNAL_ERROR
        raise MCPError(code, f"the server answered HTTP {response.status_code}")
    if isinstance(reply, dict) and reply.get("id") not in (request_id, None):
        raise invalid_reply()
    return result_of(reply)


async def _read_capped(response: httpx2.Response, max_bytes: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in response.aiter_bytes():
        size += len(chunk)
        if size > max_bytes:
            raise MCPError(
                types.INTERNAL_ERROR,
                f"the server's answer is over the {max_bytes}-byte limit",
                {"reason": reasons.RESULT_TOO_LARGE, "source": "mcpwarden"},
            )
        chunks.append(chunk)
    return b"".join(chunks)


def _loads(data: bytes | str) -> Any:
    try:
        return orjson.loads(data)
    except ValueError:
        return None


def _reply_in_events(stream: str, request_id: str) -> Any:
    """The reply to `request_id` among the `data:` payloads of an SSE body (notifications skipped)."""
    for event in stream.replace("\r\n", "\n").split("\n\n"):
        data = "\n".join(line[5:].removeprefix(" ") for line in event.split("\n") if line.startswith("data:"))
        message = _loads(data) if data else None
        if isinstance(message, dict) and message.get("id") == request_id and "method" not in message:
            return message
    return None
