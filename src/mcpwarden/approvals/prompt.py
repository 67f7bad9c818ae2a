"""What a human sees before approving a call (THREATS T10, C3, C7, C8).

The prompt names the server, the exposed tool and its tier with reasons, and every argument in
full, normalised: escape sequences, controls and invisible characters are rendered visibly by the
detection engine's `make_visible` (`<ESC>`, `<U+200B>`, `<TAGS:"read .env">`), long runs of
spaces or newlines (used to push a payload out of a dialog) are summarised with their length,
and nested values are shown as canonical JSON, so what the human reads is what the server gets.
`redacted_arguments` is the stored form: the same, with secrets replaced (`approvals list`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from mcpwarden.audit.events import canonical_json
from mcpwarden.detect.normalize import make_visible
from mcpwarden.detect.secrets import redact

MAX_VALUE_CHARS = 2000  # per argument: beyond it, the prompt says how much more the call carries


def visible_value(value: Any) -> str:
    """One argument value as a human should read it: JSON-quoted for strings, hidden chars shown."""
    if isinstance(value, str):
        shown = '"' + make_visible(value.replace("\\", "\\\\").replace('"', '\\"')) + '"'
    else:
        shown = make_visible(canonical_json_lenient(value))
    if len(shown) > MAX_VALUE_CHARS:
        hidden = len(shown) - MAX_VALUE_CHARS
        shown = (
            shown[:MAX_VALUE_CHARS] + f" <… {hidden} more characters not shown; they are part of the call>"
        )
    return shown


def render_prompt(
    *,
    server: str | None,
    tool: str,
    arguments: Mapping[str, Any] | None,
    tier: str | None,
    reasons: Sequence[str],
    approval_id: str,
) -> str:
    lines = [
        "mcpwarden: approve this tool call?",
        f"Server: {make_visible(server or '?')}",
        f"Tool: {make_visible(tool)}" + (f" (risk: {tier})" if tier else ""),
    ]
    if reasons:
        lines.append("Why approval is needed:")
        lines.extend(f"  - {make_visible(reason)}" for reason in reasons)
    if arguments:
        lines.append("Arguments (hidden and control characters shown as <...>):")
        for key in sorted(arguments):
            lines.append(f"  {make_visible(str(key))} = {visible_value(arguments[key])}")
    else:
        lines.append("Arguments: none")
    lines.append(f"Approval id: {approval_id}")
    return "\n".join(lines)


def redacted_arguments(arguments: Mapping[str, Any] | None) -> Any:
    """The arguments as stored for `approvals list`: secrets replaced, hidden characters shown."""

    def clean(value: Any) -> Any:
        if isinstance(value, str):
            return make_visible(redact(value)[0])
        if isinstance(value, Mapping):
            return {make_visible(str(k)): clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [clean(v) for v in value]
        return value

    return clean(dict(arguments or {}))


def canonical_json_lenient(value: Any) -> str:
    try:
        return canonical_json(value)
    except (TypeError, ValueError):
        return json.dumps(value, sort_keys=True, default=str)
