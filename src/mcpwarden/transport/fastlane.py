"""The fast lane: a modern client's plain `tools/call`, relayed as JSON instead of SDK models.

Profiling the gateway showed that its cost per call was not the guards (about 0.3 ms) but the SDK
parsing, validating and re-serialising every message on both sides: the front's runner, typed
params, the upstream session and the result models. A `tools/call` from a 2026-07-28 client is the
one message that is both hot and simple, so both fronts hand exactly that shape here:

    id, method "tools/call", params {name, arguments?, _meta {protocolVersion, clientCapabilities,
    clientInfo?}}

and nothing else. A legacy session, a progress token, a multi round-trip retry, a task, a log
level or any other key takes the SDK path, which stays the reference. Both lanes run the same
Pipeline (guards forward and in reverse, consent, one audit event) and the same gateway relay
rules (catalog check, forwarded capabilities, upstream identity stripped, the result checked
against the client's protocol version); a test holds both lanes to the same answers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import cached_property
from typing import Any, cast

import mcp_types as types
import orjson
from mcp.server import ServerRequestContext
from mcp.server.session import ServerSession
from mcp.shared.exceptions import MCPError
from mcp_types import (
    CLIENT_CAPABILITIES_META_KEY,
    CLIENT_INFO_META_KEY,
    PROTOCOL_VERSION_META_KEY,
    SERVER_INFO_META_KEY,
)
from mcp_types.version import MODERN_PROTOCOL_VERSIONS
from pydantic import BaseModel, ValidationError

from mcpwarden import wirejson
from mcpwarden.gateway import Gateway

logger = logging.getLogger(__name__)

_PLAIN_META = frozenset({PROTOCOL_VERSION_META_KEY, CLIENT_CAPABILITIES_META_KEY, CLIENT_INFO_META_KEY})
_PLAIN_PARAMS = frozenset({"name", "arguments", "_meta"})
_ENVELOPE = frozenset({"jsonrpc", "id", "method", "params"})
_MAX_CACHED_CAPABILITIES = 256


@dataclass(frozen=True, slots=True)
class FastCall:
    """A request the fast lane may answer."""

    request_id: str | int
    params: dict[str, Any]
    protocol_version: str
    capabilities: types.ClientCapabilities


@dataclass(frozen=True, slots=True)
class _CallerSession:
    """What the pipeline and the gateway read of the SDK's session on this lane: what the caller
    declared it can answer (for approvals and forwarded capabilities). A modern request carries it
    in its own `_meta`; there is no connection state to consult."""

    client_capabilities: types.ClientCapabilities


class FastLane:
    """Answers fast calls for one gateway; the fronts decide which messages to offer it."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        # Clients send the same capability object on every request: validate each distinct one once.
        self._capabilities: dict[bytes, types.ClientCapabilities] = {}

    def accept(self, body: Any) -> FastCall | None:
        """The call this decoded message is, if it has exactly the fast lane's shape; else None."""
        if not isinstance(body, dict) or body.get("method") != "tools/call" or body.keys() - _ENVELOPE:
            return None
        request_id = body.get("id")
        if (
            isinstance(request_id, bool)
            or not isinstance(request_id, str | int)
            or body.get("jsonrpc") != "2.0"
        ):
            return None
        params = body.get("params")
        if not isinstance(params, dict) or params.keys() - _PLAIN_PARAMS:
            return None
        if not isinstance(params.get("name"), str) or not isinstance(params.get("arguments", {}), dict):
            return None
        meta = params.get("_meta")
        if not isinstance(meta, dict) or meta.keys() - _PLAIN_META:
            return None
        version = meta.get(PROTOCOL_VERSION_META_KEY)
        if version not in MODERN_PROTOCOL_VERSIONS or not isinstance(version, str):
            return None
        capabilities = self._validated_capabilities(
            meta.get(CLIENT_CAPABILITIES_META_KEY), meta.get(CLIENT_INFO_META_KEY)
        )
        if capabilities is None:
            return None
        return FastCall(request_id, params, version, capabilities)

    async def answer(self, call: FastCall, request: Any = None) -> dict[str, Any]:
        """The JSON-RPC response to one fast call (a result or an error, never an exception).

        `request` is what the front's principal resolver reads (the HTTP request; None on stdio).
        """
        ctx: ServerRequestContext[Any, Any] = ServerRequestContext(
            session=cast(ServerSession, _CallerSession(call.capabilities)),
            lifespan_context={},
            protocol_version=call.protocol_version,
            method="tools/call",
            params=call.params,
            request_id=call.request_id,
            request=request,
        )
        try:
            result = await self.gateway.pipeline(ctx, self.gateway.call_tool_wire)
        except MCPError as exc:
            error = exc.error.model_dump(by_alias=True, mode="json", exclude_none=True)
            return {"jsonrpc": "2.0", "id": call.request_id, "error": error}
        except Exception as exc:  # the pipeline turns failures into errors; this is the last net
            logger.error("fast lane failed: %s", type(exc).__name__)
            error = {"code": types.INTERNAL_ERROR, "message": "internal error"}
            return {"jsonrpc": "2.0", "id": call.request_id, "error": error}
        if isinstance(result, BaseModel):  # a hold answered with an InputRequiredResult
            result = result.model_dump(by_alias=True, mode="json", exclude_none=True)
        elif isinstance(result, dict):  # the upstream's, stamped with our identity after the guards
            result["_meta"] = {**result.get("_meta", {}), SERVER_INFO_META_KEY: self._identity}
        return {"jsonrpc": "2.0", "id": call.request_id, "result": result}

    @cached_property
    def _identity(self) -> dict[str, Any]:
        """The gateway's `serverInfo` stamp, fixed for the life of the server (the SDK's property
        deep-copies it on every access)."""
        return self.gateway.server.server_info_stamp

    def _validated_capabilities(self, capabilities: Any, client_info: Any) -> types.ClientCapabilities | None:
        if not isinstance(capabilities, dict) or not isinstance(client_info, dict | None):
            return None
        try:
            key = orjson.dumps([capabilities, client_info], option=orjson.OPT_SORT_KEYS)
        except TypeError:  # orjson.JSONEncodeError: e.g. an integer beyond 64 bits
            return None
        cached = self._capabilities.get(key)
        if cached is not None:
            return cached
        try:
            validated = types.ClientCapabilities.model_validate(capabilities)
            if client_info is not None:
                types.Implementation.model_validate(client_info)
        except ValidationError:
            return None  # the SDK path answers it with the proper error
        if len(self._capabilities) >= _MAX_CACHED_CAPABILITIES:
            self._capabilities.clear()
        self._capabilities[key] = validated
        return validated


def encode_response(response: dict[str, Any]) -> bytes:
    """One response as a line of JSON; what cannot be encoded becomes an internal error."""
    try:
        return wirejson.dumps(response) + b"\n"
    except (TypeError, ValueError):  # a value a guard or upstream left that JSON lacks
        logger.error("fast lane could not encode a response")
        error = {"code": types.INTERNAL_ERROR, "message": "internal error"}
        return orjson.dumps({"jsonrpc": "2.0", "id": response.get("id"), "error": error}) + b"\n"
