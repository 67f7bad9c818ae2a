"""The audit event: what the pipeline records about every exchange, once, in its `finally`.

An `AuditEvent` is a plain, typed value. It says who asked what of which upstream, what the guards
decided and why, how long it took and how big it was — and never what the arguments were (only
their digest) or any secret. The sinks (`audit.log`) chain events with SHA-256, so the event also
defines its own *canonical form*: the exact bytes that are hashed. Everything here exists so that
form is the same before a write and after a read, on any machine:

- numbers are normalised at construction (`time` and `latency_ms` to finite floats, `-0.0` to
  `0.0`, sizes to non-negative ints), because SQLite stores a whole float as an integer and would
  otherwise hand back `0.0` for `-0.0`;
- text is made valid UTF-8 (lone surrogates, which JSON escapes can produce, are replaced), because
  SQLite stores UTF-8 and would reject them, losing the event;
- `extra` is copied through canonical JSON, so a caller mutating its dict later cannot change a
  recorded event, and non-JSON values fail at construction, not at write time;
- canonical JSON is sorted keys, no whitespace, ASCII only, floats as `repr`, no NaN/Infinity.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Final

DECISIONS: Final = frozenset({"allow", "deny", "hold", "error"})
MAX_DETAIL_CHARS: Final = 500
_ELLIPSIS: Final = "…"


def canonical_json(value: Any) -> str:
    """The one serialisation that is hashed: deterministic for equal JSON values.

    ASCII-only output keeps the bytes independent of how a store encodes text; `allow_nan=False`
    because NaN and Infinity are not JSON and would not round-trip through other readers.
    """
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def digest_arguments(arguments: Mapping[str, Any] | None) -> str | None:
    """SHA-256 hex of the canonical (already redacted) arguments, or None when there are none."""
    if arguments is None:
        return None
    return hashlib.sha256(canonical_json(dict(arguments)).encode("ascii")).hexdigest()


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One exchange as the audit trail records it. Construction normalises; see the module doc."""

    time: float  # unix seconds when the exchange started
    correlation_id: str  # the exchange id (128 random bits, hex), also returned to clients in error data
    principal: str  # "anonymous", "stdio", an API-key principal, a JWT subject…
    transport: str  # "stdio" | "http"
    method: str  # JSON-RPC method, e.g. "tools/call", "tools/list"
    server: str | None  # upstream server id, when one is addressed
    target: str | None  # tool / prompt / resource name or URI, when one is addressed
    argument_digest: str | None  # sha256 hex of the canonical (redacted) arguments; never the arguments
    decision: str  # "allow" | "deny" | "hold" | "error"
    reason: str  # stable kebab-case reason code, "ok" when allowed
    detail: str  # short human text (never a secret); truncated to MAX_DETAIL_CHARS
    latency_ms: float
    request_bytes: int
    response_bytes: int
    guard: str | None = None  # which guard decided a denial
    extra: Mapping[str, Any] = field(default_factory=dict)  # small JSON-able extras (e.g. cost)

    def __post_init__(self) -> None:
        if self.decision not in DECISIONS:
            raise ValueError(f"decision must be one of {sorted(DECISIONS)}, not {self.decision!r}")
        # Frozen: normalised values are written with object.__setattr__, once, here.
        put = object.__setattr__
        put(self, "time", _finite_float("time", self.time))
        put(self, "latency_ms", _finite_float("latency_ms", self.latency_ms))
        put(self, "request_bytes", _size("request_bytes", self.request_bytes))
        put(self, "response_bytes", _size("response_bytes", self.response_bytes))
        for name in ("correlation_id", "principal", "transport", "method", "reason"):
            put(self, name, _text(name, getattr(self, name)))
        for name in ("server", "target", "argument_digest", "guard"):
            value = getattr(self, name)
            put(self, name, None if value is None else _text(name, value))
        detail = _text("detail", self.detail)
        if len(detail) > MAX_DETAIL_CHARS:
            detail = detail[: MAX_DETAIL_CHARS - len(_ELLIPSIS)] + _ELLIPSIS
        put(self, "detail", detail)
        if not isinstance(self.extra, Mapping):
            raise TypeError("extra must be a mapping")
        if not self.extra:
            put(self, "extra", {})
            return
        try:
            frozen_extra = json.loads(canonical_json(dict(self.extra)))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"extra must hold finite JSON values only: {exc}") from None
        put(self, "extra", frozen_extra)

    def to_dict(self) -> dict[str, Any]:
        """The event's fields as a JSON-able dict (the input of the canonical form)."""
        result = {name: getattr(self, name) for name in EVENT_FIELDS}
        result["extra"] = dict(self.extra)
        return result

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> AuditEvent:
        """Rebuild an event from `to_dict` output; unknown keys are an error, not silently dropped."""
        names = {f.name for f in fields(cls)}
        unknown = set(data) - names
        if unknown:
            raise ValueError(f"unknown audit event fields: {', '.join(sorted(unknown))}")
        return cls(**dict(data))


EVENT_FIELDS: Final[tuple[str, ...]] = tuple(f.name for f in fields(AuditEvent))


def _finite_float(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number, not {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"{name} must be finite, not {number!r}")
    return 0.0 if number == 0 else number  # -0.0 would come back from SQLite as 0.0


def _size(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < 0 or value > 2**63 - 1:
        raise ValueError(f"{name} must be between 0 and 2**63-1, not {value}")
    return int(value)


def _text(name: str, value: object) -> str:
    if type(value) is str and value.isascii():
        return value  # the common case: nothing to repair
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a str, not {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        # Lone surrogates (from JSON "\ud800" escapes) cannot be stored as UTF-8; keep the rest.
        value = value.encode("utf-8", "replace").decode("utf-8")
    return str(value)  # a str subclass would canonicalise differently from the str read back
