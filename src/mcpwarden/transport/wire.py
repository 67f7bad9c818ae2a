"""JSON-RPC shape checks shared by both fronts, before anything reaches the SDK or an upstream.

Malformed JSON gets -32700, a batch or a wrong shape gets -32600, always with `id: null` unless the
message carried a valid id (THREATS E1-E3). The error text never echoes the input: it may hold a
secret.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

import mcp_types as types
from starlette.types import Message, Receive

# Where the HTTP front's wire checks leave the message, when `wirejson.loads_exact` could read it,
# for the layers behind them.
PARSED_MESSAGE_KEY: Final = "mcpwarden.message"


@dataclass(frozen=True, slots=True)
class WireError:
    code: int
    message: str
    request_id: str | int | None = None

    def to_json(self) -> bytes:
        body = {
            "jsonrpc": "2.0",
            "id": self.request_id,
            "error": {"code": self.code, "message": self.message},
        }
        return json.dumps(body, separators=(",", ":")).encode()


def parse_message(data: bytes) -> tuple[dict[str, Any] | None, WireError | None]:
    """The decoded message, or the error to answer it with."""
    try:
        body = json.loads(data)
    except (ValueError, RecursionError):
        return None, WireError(types.PARSE_ERROR, "Parse error: not valid JSON")
    error = check_shape(body)
    return (None, error) if error is not None else (body, None)


def check_shape(body: Any) -> WireError | None:
    if isinstance(body, list):
        return WireError(types.INVALID_REQUEST, "Invalid request: batches are not supported since 2025-06-18")
    if not isinstance(body, dict):
        return WireError(types.INVALID_REQUEST, "Invalid request: a message must be a JSON object")
    request_id = body.get("id")
    id_ok = isinstance(request_id, str) or (isinstance(request_id, int) and not isinstance(request_id, bool))
    echo_id = request_id if id_ok else None
    if body.get("jsonrpc") != "2.0":
        return WireError(types.INVALID_REQUEST, 'Invalid request: "jsonrpc" must be "2.0"', echo_id)
    if "method" in body:
        if not isinstance(body["method"], str):
            return WireError(types.INVALID_REQUEST, "Invalid request: method must be a string", echo_id)
        if "id" in body and not id_ok:
            return WireError(types.INVALID_REQUEST, "Invalid request: id must be a string or an integer")
        if "params" in body and not isinstance(body["params"], dict):
            return WireError(types.INVALID_REQUEST, "Invalid request: params must be an object", echo_id)
    elif "result" in body and "error" in body:
        return WireError(types.INVALID_REQUEST, "Invalid response: both result and error", echo_id)
    elif "result" not in body and "error" not in body:
        return WireError(types.INVALID_REQUEST, "Invalid request: no method, result or error", echo_id)
    return None


def replay_body(body: bytes, original: Receive) -> Receive:
    """An ASGI `receive` that hands an already-read body to the app, then the real stream (which
    reports disconnects), for middleware that must look at a body before passing it on."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await original()

    return receive


async def read_body(receive: Receive) -> bytes:
    """The whole request body (callers have already capped its size, or replay a read one)."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    return b"".join(chunks)
