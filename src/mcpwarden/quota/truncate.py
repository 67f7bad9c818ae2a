"""Capping a result that is over a rule's `max_result_kb` with `on_large_result: truncate`.

The result is the wire-shaped dict (tools/call `content` and `structuredContent`, resources/read
`contents`, prompts/get `messages`, `_meta`). Only long text strings are shortened, the longest
first (water-filling: every string over a common cap is cut to it), so the shape stays valid: a
text block stays a text block and `structuredContent` keeps its keys and types, which keeps it
valid against most output schemas. Each cut string ends with a marker a person and a model can
read, and the result's `_meta` gets `io.mcpwarden/truncated` with the sizes. Base64 payloads
(`data`, `blob`) are never cut, since a cut one is garbage; when shortening text cannot bring the
result under the cap, `cap_result` returns None and the guard refuses it (`result-too-large`).

Sizes are compact JSON bytes as the pipeline measures them (`exchange.response_bytes`).
"""

from __future__ import annotations

import json
from typing import Any, Final

TRUNCATED_META: Final = "io.mcpwarden/truncated"
_BINARY_KEYS: Final = frozenset({"data", "blob"})
_SHORTEST_CUT: Final = 64  # strings shorter than this are left alone
_ROUNDS: Final = 4


def json_size(value: Any) -> int:
    """Compact JSON size in bytes, measured as the pipeline measures `response_bytes`."""
    return len(json.dumps(value, separators=(",", ":"), default=str))


def marker(original_bytes: int, limit_bytes: int) -> str:
    return (
        f"\n[truncated by mcpwarden: the result was {original_bytes} bytes, "
        f"over the {limit_bytes // 1024} KB limit]"
    )


def cap_result(result: dict[str, Any], limit_bytes: int, original_bytes: int | None = None) -> int | None:
    """Shorten `result` in place to at most `limit_bytes`; its new size, or None if it cannot fit."""
    size = json_size(result)
    original = size if original_bytes is None else original_bytes
    if size <= limit_bytes:
        return size
    meta = result.get("_meta")
    if meta is None:
        meta = result["_meta"] = {}
    if isinstance(meta, dict):
        meta[TRUNCATED_META] = {"originalBytes": original, "limitBytes": limit_bytes}
    note = marker(original, limit_bytes)
    note_size = json_size(note) - 2  # without its quotes
    for _ in range(_ROUNDS):
        size = json_size(result)
        if size <= limit_bytes:
            return size
        slots = list(_long_strings(result, note))
        cap = _water_level([encoded for *_, encoded in slots], size - limit_bytes, note_size)
        if cap is None:
            return None
        for container, key, text, encoded in slots:
            if encoded > cap + note_size:
                container[key] = _prefix(text, encoded, cap) + note
    size = json_size(result)
    return size if size <= limit_bytes else None


def _long_strings(value: Any, note: str) -> Any:
    """(container, key, text, encoded size) of every string worth cutting, not yet cut."""
    stack = [value]
    while stack:
        node = stack.pop()
        items: Any = (
            node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
        )
        for key, child in items:
            if isinstance(child, str):
                if len(child) >= _SHORTEST_CUT and key not in _BINARY_KEYS and not child.endswith(note):
                    yield node, key, child, json_size(child) - 2
            elif isinstance(child, dict | list):
                stack.append(child)


def _water_level(sizes: list[int], excess: int, note_size: int) -> int | None:
    """The largest cap such that cutting every string over it (plus the marker) saves `excess`."""

    def saved(cap: int) -> int:
        return sum(size - cap - note_size for size in sizes if size > cap + note_size)

    if not sizes or saved(0) < excess:
        return None
    low, high = 0, max(sizes)
    while low < high:  # largest cap with saved(cap) >= excess; saved() falls as cap grows
        middle = (low + high + 1) // 2
        if saved(middle) >= excess:
            low = middle
        else:
            high = middle - 1
    return low


def _prefix(text: str, encoded: int, cap: int) -> str:
    """The longest prefix (estimated, then checked) whose JSON-encoded size is at most `cap`."""
    length = int(len(text) * cap / encoded) if encoded else 0
    while length > 0 and json_size(text[:length]) - 2 > cap:
        length = int(length * 0.9)
    return text[:length]
