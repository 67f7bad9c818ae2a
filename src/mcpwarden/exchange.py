"""The Exchange that travels through the pipeline, and the Decision guards return.

An Exchange is created once per inbound request by the pipeline, after the request has been parsed
and routed, so every guard sees the same principal, server, target and arguments. Guards talk to
each other through `metadata`. A Decision is a value: a denial is returned, never raised.
"""

from __future__ import annotations

import enum
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from mcpwarden import reasons


class Verdict(enum.Enum):
    ALLOW = "allow"
    DENY = "deny"
    HOLD = "hold"  # held for a human's approval


@dataclass(frozen=True, slots=True)
class Decision:
    verdict: Verdict
    reason: str = reasons.OK
    detail: str = ""
    # Extra fields for the client's `error.data` (e.g. approval id, retry_after); never secrets.
    data: Mapping[str, Any] = field(default_factory=dict)

    @property
    def allowed(self) -> bool:
        return self.verdict is Verdict.ALLOW


ALLOW = Decision(Verdict.ALLOW)


def deny(reason: str, detail: str, **data: Any) -> Decision:
    return Decision(Verdict.DENY, reason, detail, data)


def hold(reason: str, detail: str, **data: Any) -> Decision:
    return Decision(Verdict.HOLD, reason, detail, data)


@dataclass(frozen=True, slots=True)
class Identity:
    """Who is calling, as established by the front (stdio user, API key, or JWT)."""

    name: str
    roles: frozenset[str] = frozenset()
    scopes: frozenset[str] = frozenset()
    method: str = "none"  # how it was established: "stdio", "api-key", "jwt", "none"
    attributes: Mapping[str, Any] = field(default_factory=dict)  # e.g. selected token claims


ANONYMOUS = Identity("anonymous")
# Where the HTTP authentication layer leaves the caller's Identity in the ASGI scope.
IDENTITY_SCOPE_KEY = "mcpwarden.identity"


@dataclass(slots=True)
class Exchange:
    """One client request and its outcome, as every guard and the audit trail see it."""

    method: str
    params: dict[str, Any]
    identity: Identity
    transport: str  # "stdio" | "http"
    session_key: str  # identifies the client connection or legacy session (for per-session caps)
    protocol_version: str
    server: str | None = None  # upstream server id, when the request addresses one
    target: str | None = None  # the upstream's own tool / prompt name or resource URI
    exposed_name: str | None = None  # the name the client used (notes__search)
    arguments: dict[str, Any] | None = None
    request_bytes: int = 0
    result: Any = None  # the wire-shaped result (JSON-ready dict) on the way back; guards may edit it
    response_bytes: int = 0
    metadata: dict[str, Any] = field(default_factory=dict)
    # 128 random bits as 32 hex digits (a uuid4's 122 bits took three times as long to make).
    correlation_id: str = field(default_factory=lambda: secrets.token_hex(16))
    started: float = field(default_factory=time.time)
    started_monotonic: float = field(default_factory=time.perf_counter)

    @property
    def principal(self) -> str:
        return self.identity.name
