"""What is pinned, and how a change is shown: pure functions over wire-JSON definitions.

A tool's pinned definition is its `title`, `description`, `inputSchema`, `outputSchema` and
`annotations` (everything that reaches the model or steers a client), as canonical JSON (sorted
keys, no whitespace), so reordered keys or reformatted JSON never look like a change while any
changed character does. `_meta` and `icons` are left out: bookkeeping, not instructions. Prompts,
resources and resource templates are pinned by the same rule over their own descriptive fields
(`PINNED_FIELDS`); the key they are listed under (a prompt's name, a resource's URI, a template's
URI template) names the pin instead. A server's instructions are pinned as `{"instructions": text}`.
"""

from __future__ import annotations

import difflib
import hashlib
import json
from collections.abc import Mapping
from typing import Any, Literal

from mcpwarden.audit.events import canonical_json
from mcpwarden.router import RESOURCE_SCHEME

DefinitionKind = Literal["tool", "prompt", "resource", "template"]
PinKind = Literal["tool", "prompt", "resource", "template", "instructions"]
PINNED_FIELDS: dict[DefinitionKind, tuple[str, ...]] = {
    "tool": ("title", "description", "inputSchema", "outputSchema", "annotations"),
    "prompt": ("title", "description", "arguments"),
    "resource": ("name", "title", "description", "mimeType", "annotations"),
    "template": ("name", "title", "description", "mimeType", "annotations"),
}
URI_KINDS = frozenset({"resource", "template"})  # exposed as mcpwarden://SERVER/<uri>


def definition_of(kind: DefinitionKind, entry: Mapping[str, Any]) -> dict[str, Any]:
    """The pinned part of a listed entry (wire JSON, camelCase); absent and null fields are the same."""
    return {key: _strip_nulls(entry[key]) for key in PINNED_FIELDS[kind] if entry.get(key) is not None}


def tool_definition(tool: Mapping[str, Any]) -> dict[str, Any]:
    return definition_of("tool", tool)


def exposed_label(server: str, kind: str, name: str, separator: str) -> str:
    """What a pin is called where users see it: the name clients use (and `pins approve` takes)."""
    if kind == "instructions":
        return f"{server} (instructions)"
    if kind in URI_KINDS:
        return f"{RESOURCE_SCHEME}{server}/{name}"
    return f"{server}{separator}{name}"


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
