"""The scanner's one door to the detection engine (mcpwarden.detect), shared with the gateway.

Every check that judges text goes through here, so the scanner and the gateway reach the same
verdict on the same string, and the scanner depends on a small surface it can name: text and
tool-definition scoring, secret finding, and the renderings that make hidden characters visible.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from mcpwarden.detect import find_secrets, make_visible, render_tool, sanitize, scan, scan_tool

__all__ = ["Detection", "TextKind", "credential_kinds", "detect_text", "detect_tool", "has_hidden", "visible"]

# Personal data the engine also finds; in a config file an address or phone number is not a secret.
_NOT_CREDENTIALS = frozenset({"email", "phone"})

TextKind = Literal[
    "tool_description", "tool_result", "argument", "server_instructions", "elicitation", "sampling"
]


@dataclass(frozen=True)
class Detection:
    score: float
    flagged: bool
    reasons: tuple[str, ...]
    # The text around the first place a rule matched (hidden characters made visible), if any.
    excerpt: str | None = None


def _excerpt(text: str, spans: Any, context: int = 80) -> str | None:
    located = sorted((int(span.start), int(span.end)) for span in spans if 0 <= int(span.start) < len(text))
    if not located:
        return None
    start, end = located[0]
    left, right = max(0, start - context), min(len(text), max(end, start + 1) + context)
    return ("…" if left else "") + make_visible(text[left:right]) + ("…" if right < len(text) else "")


def detect_text(text: str, kind: TextKind) -> Detection:
    finding = scan(text, kind)
    return Detection(
        float(finding.score), bool(finding.flagged), tuple(finding.reasons), _excerpt(text, finding.spans)
    )


def detect_tool(tool: Mapping[str, Any]) -> Detection:
    """Score a whole tool definition: name, description, every schema key and string (C10)."""
    finding = scan_tool(tool)
    excerpt = _excerpt(render_tool(tool), finding.spans)
    return Detection(float(finding.score), bool(finding.flagged), tuple(finding.reasons), excerpt)


def credential_kinds(text: str) -> list[str]:
    """Kinds of credentials (not personal data) found in `text`, e.g. ['github-token']."""
    return [match.kind for match in find_secrets(text) if match.kind not in _NOT_CREDENTIALS]


def has_hidden(text: str) -> bool:
    """True when the text carries escape sequences, controls or invisible characters (C7, C8)."""
    return sanitize(text) != text


def visible(text: str) -> str:
    """The text with hidden characters shown as escapes (`<ESC>`, `<U+200B>`, decoded tag runs)."""
    return make_visible(text)
