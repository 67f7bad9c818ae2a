"""Asking a human, through the client, whether a held call may go ahead.

A guard that holds a call (Decision HOLD with an `approval_id` and a `prompt`) and can record the
answer (`resolve(approval_id, approved, decided_by)`) gets its answer here when the client can
elicit: a legacy client is sent a real `elicitation/create` request; a modern (stateless) client
gets a multi round-trip `InputRequiredResult` whose `requestState` we sign (HMAC-SHA256, key in
state_dir) and bind to the principal, the call's digest, the approval id, an expiry and a
single-use nonce, because the client echoes it back and may have tampered with it. A client that
cannot elicit gets the hold as an error with the approval id, for `mcpwarden approvals approve`.

After an approved call, an upstream may itself ask for input; its `requestState` is wrapped in
ours (marked approved), so the client's retry continues the approved call instead of asking again.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.shared.exceptions import MCPError
from mcp_types.version import HANDSHAKE_PROTOCOL_VERSIONS

from mcpwarden import reasons
from mcpwarden.audit.events import canonical_json
from mcpwarden.exchange import Decision, Exchange, Verdict, deny

logger = logging.getLogger(__name__)

APPROVAL_KEY = "mcpwarden/approval"  # our key in inputRequests / inputResponses
KEY_FILE = "gateway.key"
STATE_LIFETIME = 600.0  # seconds a signed requestState stays valid
_MRTR_METHODS = frozenset({"tools/call", "resources/read", "prompts/get"})
_SCHEMA = {
    "type": "object",
    "properties": {"approve": {"type": "boolean", "title": "Approve this call?"}},
    "required": ["approve"],
}

Resolver = Callable[[str, bool, str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Continuation:
    """What a verified requestState of ours says about the request that carries it."""

    approved: bool
    approval_id: str | None
    upstream_state: str | None
    answer: bool | None  # the human's answer, when this request carries it


class ConsentBroker:
    def __init__(self, state_dir: Path, timeout: float) -> None:
        self.key = _load_or_create_key(state_dir)
        self.timeout = timeout
        self._used_nonces: dict[str, float] = {}

    # -- signed request state ------------------------------------------------------------------

    def sign(self, payload: dict[str, Any]) -> str:
        body = base64.urlsafe_b64encode(canonical_json(payload).encode()).rstrip(b"=")
        mac = base64.urlsafe_b64encode(hmac.new(self.key, body, hashlib.sha256).digest()).rstrip(b"=")
        return f"mw1.{body.decode()}.{mac.decode()}"

    def verify(self, token: str) -> dict[str, Any] | None:
        parts = token.split(".")
        if len(parts) != 3 or parts[0] != "mw1" or len(token) > 65536:
            return None
        body, mac = parts[1].encode(), parts[2].encode()
        expected = base64.urlsafe_b64encode(hmac.new(self.key, body, hashlib.sha256).digest()).rstrip(b"=")
        if not hmac.compare_digest(mac, expected):
            return None
        try:
            payload = json.loads(base64.urlsafe_b64decode(body + b"=" * (-len(body) % 4)))
        except ValueError:
            return None
        return payload if isinstance(payload, dict) else None

    def continuation(self, exchange: Exchange) -> Continuation | None:
        """Our verified state on this request, consumed (single use); None if it carries none."""
        token = exchange.params.get("requestState")
        if not isinstance(token, str) or not token.startswith("mw1."):
            return None
        payload = self.verify(token)
        now = time.time()
        if (
            payload is None
            or payload.get("p") != exchange.principal
            or payload.get("d") != call_digest(exchange)
            or not isinstance(payload.get("exp"), int | float)
            or payload["exp"] < now
            or self._nonce_used(str(payload.get("n")), now)
        ):
            raise MCPError(
                types.INVALID_PARAMS,
                "requestState is invalid, expired, already used, or for another call",
                {"reason": reasons.INVALID_REQUEST},
            )
        answer: bool | None = None
        responses = exchange.params.get("inputResponses")
        if isinstance(responses, dict) and APPROVAL_KEY in responses:
            answer = _accepted(responses[APPROVAL_KEY])
        upstream_state = payload.get("up")
        return Continuation(
            approved=payload.get("ok") is True,
            approval_id=payload.get("aid") if isinstance(payload.get("aid"), str) else None,
            upstream_state=upstream_state if isinstance(upstream_state, str) else None,
            answer=answer,
        )

    def _nonce_used(self, nonce: str, now: float) -> bool:
        if len(self._used_nonces) > 10_000:
            self._used_nonces = {n: exp for n, exp in self._used_nonces.items() if exp > now}
        if nonce in self._used_nonces:
            return True
        self._used_nonces[nonce] = now + STATE_LIFETIME
        return False

    def state_for(
        self, exchange: Exchange, *, approval_id: str | None, approved: bool, upstream: str | None
    ) -> str:
        return self.sign(
            {
                "v": 1,
                "aid": approval_id,
                "p": exchange.principal,
                "d": call_digest(exchange),
                "exp": int(time.time() + STATE_LIFETIME),
                "n": secrets.token_urlsafe(12),
                "ok": approved,
                "up": upstream,
            }
        )

    # -- asking --------------------------------------------------------------------------------

    async def ask_legacy(self, ctx: ServerRequestContext[Any, Any], prompt: str) -> bool:
        """Send `elicitation/create` and wait (bounded) for the human; no answer is a no."""
        try:
            with anyio.fail_after(self.timeout):
                result = await ctx.session.elicit_form(
                    message=prompt, requested_schema=_SCHEMA, related_request_id=ctx.request_id
                )
        except (TimeoutError, MCPError) as exc:
            logger.info("approval not given: %s", type(exc).__name__)
            return False
        return _accepted(result)

    def input_required(self, exchange: Exchange, approval_id: str, prompt: str) -> types.InputRequiredResult:
        request = types.ElicitRequest(
            params=types.ElicitRequestFormParams(message=prompt, requested_schema=_SCHEMA)
        )
        state = self.state_for(exchange, approval_id=approval_id, approved=False, upstream=None)
        return types.InputRequiredResult(input_requests={APPROVAL_KEY: request}, request_state=state)


def can_elicit(ctx: ServerRequestContext[Any, Any], exchange: Exchange) -> bool:
    capabilities = ctx.session.client_capabilities
    if capabilities is None or capabilities.elicitation is None:
        return False
    return ctx.protocol_version in HANDSHAKE_PROTOCOL_VERSIONS or exchange.method in _MRTR_METHODS


def is_legacy(ctx: ServerRequestContext[Any, Any]) -> bool:
    return ctx.protocol_version in HANDSHAKE_PROTOCOL_VERSIONS


def call_digest(exchange: Exchange) -> str:
    what = {"m": exchange.method, "t": exchange.exposed_name, "a": exchange.arguments}
    return hashlib.sha256(canonical_json(what).encode()).hexdigest()


def held_by_resolvable_guard(decision: Decision, guard: object) -> tuple[str, str, Resolver] | None:
    """(approval id, prompt, resolver) when the hold can be answered by a human here."""
    resolver = getattr(guard, "resolve", None)
    approval_id = decision.data.get("approval_id")
    if decision.verdict is not Verdict.HOLD or resolver is None or not isinstance(approval_id, str):
        return None
    prompt = decision.data.get("prompt")
    return approval_id, prompt if isinstance(prompt, str) else decision.detail, resolver


def declined(detail: str) -> Decision:
    return deny(reasons.APPROVAL_DENIED, detail)


def _accepted(answer: Any) -> bool:
    action: Any
    content: Any
    if isinstance(answer, types.ElicitResult):
        action, content = answer.action, answer.content
    elif isinstance(answer, dict):
        action, content = answer.get("action"), answer.get("content")
    else:
        return False
    return action == "accept" and isinstance(content, dict) and content.get("approve") is True


def _load_or_create_key(state_dir: Path) -> bytes:
    path = state_dir / KEY_FILE
    try:
        key = path.read_bytes()
        if len(key) >= 32:
            return key
    except FileNotFoundError:
        pass
    state_dir.mkdir(parents=True, exist_ok=True)
    key = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key)
    return key
