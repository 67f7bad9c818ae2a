"""Per-tool OAuth scopes (THREATS A11, D14): which scope a token needs to call which exposed tool.

`oauth.tool_scopes` maps exposed tool names (globs) to one scope each; every matching entry
applies. Scopes are compared as exact tokens: `tools:write-all` or `tools:*` in a token does not
satisfy `tools:write`. API-key and stdio callers are not subject to scopes: their grant is the
operator's own, limited by policy instead; JWT and anonymous callers are. The HTTP front uses
this to answer 403 `insufficient_scope` before a call reaches the pipeline; `guards/scopes.py`
applies the same rules inside it.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping

from mcpwarden.config import Settings
from mcpwarden.exchange import Identity

# Callers whose grant comes from the operator, not from a delegated token; anonymous callers
# (auth.anonymous) hold no scopes, so every scoped tool is refused to them.
_NOT_SCOPED = frozenset({"api-key", "stdio"})


class ToolScopes:
    """The configured tool → scope rules."""

    def __init__(self, rules: Mapping[str, str]) -> None:
        self.rules = tuple(rules.items())

    @classmethod
    def from_settings(cls, settings: Settings) -> ToolScopes | None:
        oauth = settings.auth.oauth if settings.auth is not None else None
        if oauth is None or not oauth.tool_scopes:
            return None
        return cls(oauth.tool_scopes)

    @property
    def all_scopes(self) -> tuple[str, ...]:
        return tuple(sorted({scope for _, scope in self.rules}))

    def required(self, tool: str) -> tuple[str, ...]:
        """Every scope a caller needs for `tool`, in a stable order (empty: none needed)."""
        return tuple(sorted({scope for pattern, scope in self.rules if fnmatch.fnmatchcase(tool, pattern)}))

    def missing(self, identity: Identity, tool: str) -> tuple[str, ...]:
        """The scopes `identity` lacks for `tool`; always empty for API-key and stdio callers."""
        if identity.method in _NOT_SCOPED:
            return ()
        return tuple(scope for scope in self.required(tool) if scope not in identity.scopes)
