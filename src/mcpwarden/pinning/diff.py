"""What is pinned, and how a change is shown: pure functions over wire-JSON definitions.

A tool's pinned definition is its `title`, `description`, `inputSchema`, `outputSchema` and
`annotations` (everything that reaches the model or steers a client), as canonical JSON (sorted
keys, no whitespace), so reordered keys or reformatted JSON never look like a change while any
changed character does. `_meta` and `icons` are left out: bookkeeping, not instructions. A server's
instructions are pinned the same way, as `{"instructions": text}`.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from mcpwarden.audit.events import canonical_json

PINNED_TOOL_FIELDS = ("title", "description", "inputSchema", "outputSchema", "annotations")


def tool_definition(tool: Mapping[str, Any]) -> dict[str, Any]:
    """The pinned part of a tool (wire JSON, camelCase); absent and null fields are the same."""
    return {key: _strip_nulls(tool[key]) for key in PINNED_TOOL_FIELDS if tool.get(key) is not None}


def instructions_definition(instructions: str | None) -> dict[str, Any]:
    return {"instructions": instructions}


def digest(definition: Mapping[str, Any]) -> str:
    return "sha256:" + hashlib.sha256(canonical_json(dict(definition)).encode("ascii")).hexdigest()


def render_diff(old: Mapping[str, Any] | None, new: Mapping[str, Any], label: str) -> str:
    """A unified diff of the two definitions, pretty-printed with sorted keys (line per field)."""
    before = _pretty(old) if old is not None else []
    after = _pretty(new)
    lines = difflib.unified_diff(
        before,
        after,
        fromfile=f"{label} (pinned)" if old is not None else f"{label} (not pinned before)",
        tofile=f"{label} (now)",
        lineterm="",
    )
    return "\n".join(lines)


def _pretty(definition: Mapping[str, Any]) -> list[str]:
    # ensure_ascii: invisible and odd characters show as \uXXXX escapes in the review (C8).
    return json.dumps(dict(definition), indent=2, sort_keys=True, ensure_ascii=True).splitlines()


def _strip_nulls(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _strip_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return [_strip_nulls(v) for v in value]
    return value
